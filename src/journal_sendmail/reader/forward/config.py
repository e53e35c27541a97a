"""Config: /etc/journal-mail/forward.toml into frozen records, the one place that reads it.

tomllib knows no positions, so a bad value is located here by its table and
key in the text: every error says the key and the line, never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ..attrs import GROUP_KEYS as GROUP_KEYS  # the keys come from the attribute table
from ..attrs import MATCH_KEYS as MATCH_KEYS
from ..timespec import US, parse_span
from .hours import Hours
from .hours import parse as parse_hours

DEFAULT_PATH = "/etc/journal-mail/forward.toml"
DEFAULT_STATE_DIR = "/var/lib/journal-mail/forward"
SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TOP_KEYS = ("state_dir", "source", "destination", "rule", "digest", "expect")
SOURCE_KEYS = ("start",)
COMMON_KEYS = ("type", "url", "timeout", "max_age", "rate_limit", "overflow", "hours", "timezone", "quiet_digest")
SMTP_KEYS = ("username", "password_file", "from", "to", "mode", "cafile")
WEBHOOK_KEYS = ("format", "headers", "cafile")
RULE_KEYS = ("name", "match", "route", "digest", "action", "continue", "group_by", "repeat_interval", "hours",
             "timezone", "quiet_digest", "urgent")
EXPECT_KEYS = ("name", "match", "every", "grace", "per", "hosts", "route")
TRUSTED_KEYS = ("unit", "user", "uid")  # an expectation must match on one: journald's word for who sent it
DIGEST_KEYS = ("to", "at", "every", "group_by", "examples", "max_size")
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
UNITS = {"s": US, "m": 60 * US, "h": 3600 * US, "d": 86400 * US, "w": 604800 * US}  # of a duration
DIGEST_MAX_SIZE = 1024 * 1024
DIGEST_MIN_SIZE = 32 * 1024


@dataclass(frozen=True)
class Pattern:
    """One match value: a glob (any case) or a /regex/."""

    text: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class Rule:
    name: str
    match: tuple[tuple[str, tuple[Pattern, ...]], ...]
    route: tuple[str, ...] = ()
    digest: str | None = None
    drop: bool = False
    cont: bool = False
    group_by: tuple[str, ...] = ()  # repeats: the group of a mail (with repeat_interval)
    repeat_interval: float | None = None  # seconds
    hours: Hours | None = None  # quiet hours: outside them, into quiet_digest
    quiet_digest: str | None = None
    urgent: bool = False  # ignores every quiet hours


@dataclass(frozen=True)
class RateLimit:
    count: int
    period: float  # seconds


@dataclass(frozen=True)
class Destination:
    name: str
    type: str  # smtp | webhook
    url: str
    timeout: float = 30.0
    max_age: float = 86400.0
    rate_limit: RateLimit | None = None
    overflow: str | None = None  # the digest that takes what the rate limit holds back
    hours: Hours | None = None  # quiet hours of the destination (a rule's own come first)
    quiet_digest: str | None = None
    # smtp
    scheme: str = ""
    host: str = ""
    port: int = 0
    username: str | None = None
    password_file: str | None = None
    sender: str = ""
    to: tuple[str, ...] = ()
    mode: str = "wrap"
    cafile: str | None = None
    # webhook
    format: str = "json"  # json | ntfy | slack
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Digest:
    name: str
    to: tuple[str, ...]
    at: tuple[int, int] | None = None  # HH, MM (local time)
    every: float | None = None  # seconds
    group_by: tuple[str, ...] = ("host", "caller", "subject")
    examples: int = 1
    max_size: int = DIGEST_MAX_SIZE  # bytes of text in one digest mail


@dataclass(frozen=True)
class Expect:
    """``[[expect]]``: a matching mail per host per ``every``, or a notice to ``route``."""

    name: str
    rule: Rule  # its match, as a rule (route: the notices' destinations)
    every: float
    grace: float = 3600.0
    hosts: tuple[str, ...] = ()  # expected even before they first sent one

    @property
    def route(self) -> tuple[str, ...]:
        return self.rule.route


@dataclass(frozen=True)
class Config:
    path: str
    state_dir: str = DEFAULT_STATE_DIR
    start: str = "now"
    destinations: dict[str, Destination] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    digests: dict[str, Digest] = field(default_factory=dict)
    expects: tuple[Expect, ...] = ()


class _Where:
    """Finds the line of ``table``/``key`` in the text, for error messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str, key: str | None = None, index: int = 0) -> int:
        header = None
        seen = -1
        for n, raw in enumerate(self.lines, 1):
            s = raw.split("#", 1)[0].strip()
            if s.startswith("["):
                name = s.strip("[] ")
                if name == table:
                    seen += 1
                    if seen == index:
                        header = n
                        continue
                if header is not None:
                    break
            elif (header is not None or table == "") and key is not None:
                if re.match(rf'"?{re.escape(key)}"?\s*=', s):
                    return n
        return header or 1


def duration(text: object) -> float:
    """Seconds from a positive number or a span in ``UNITS`` (``timespec.parse_span``, the one
    parser of spans, with forward.toml's units): ``"30s"``, ``"5m"``, ``"2d"``, ``"1h 30m"``.

    >>> duration("90s"), duration("1h"), duration(5), duration("1.5m"), duration("1h 30m")
    (90.0, 3600.0, 5.0, 90.0, 5400.0)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    try:
        us = parse_span(text, UNITS) if isinstance(text, str) else 0
    except ValueError:
        us = 0
    if us > 0:
        return us / US
    raise ValueError(f"want a duration such as 30s, 5m, 1h or 2d, not {text!r}")


def glob_regex(text: str) -> re.Pattern[str]:
    """A glob (any case) or ``/regex/`` as a compiled pattern matched against the whole value
    (a regex is searched: it may match anywhere).

    >>> bool(glob_regex("Cron*").fullmatch("cron <root@h>")), bool(glob_regex("/^Cron /").search("Cron x"))
    (True, True)
    """
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        return re.compile(text[1:-1])
    out = ""
    for c in text:
        out += {"*": ".*", "?": "."}.get(c, re.escape(c))
    return re.compile(out, re.IGNORECASE | re.DOTALL)


def load(path: str = DEFAULT_PATH) -> Config:
    """The configuration in ``path``; ConfigError (exit 78) naming the key and the line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
        doc = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    return parse(doc, path, text)


def parse(doc: dict[str, Any], path: str, text: str = "") -> Config:
    where = _Where(text)

    def bad(table: str, key: str | None, why: str, index: int = 0) -> ConfigError:
        shown = ".".join(p for p in (table, key) if p)
        if table in ("rule", "expect"):
            shown = f"{table}[{index + 1}]" + (f".{key}" if key else "")
        return ConfigError(f"{path}:{where.line(table, key.split('.')[0] if key else None, index)}: "
                           f"{shown}: {why}")

    _known(doc, TOP_KEYS, lambda k, why: bad("", k, why))
    state_dir = doc.get("state_dir", DEFAULT_STATE_DIR)
    if not isinstance(state_dir, str) or not state_dir.startswith("/"):
        raise bad("", "state_dir", "want an absolute path")
    source = _table(doc, "source", bad)
    _known(source, SOURCE_KEYS, lambda k, why: bad("source", k, why))
    start = source.get("start", "now")
    if start not in ("now", "all"):
        raise bad("source", "start", 'want "now" or "all"')

    digests = {name: _digest(name, d, lambda k, why, n=name: bad(f"digest.{n}", k, why))
               for name, d in _table(doc, "digest", bad).items()}
    dests = {name: _destination(name, d, lambda k, why, n=name: bad(f"destination.{n}", k, why))
             for name, d in _table(doc, "destination", bad).items()}
    for name, d in dests.items():
        if d.overflow is not None and d.overflow not in digests:
            raise bad(f"destination.{name}", "overflow", f"no [digest.{d.overflow}]")
        if d.quiet_digest is not None and d.quiet_digest not in digests:
            raise bad(f"destination.{name}", "quiet_digest", f"no [digest.{d.quiet_digest}]")
    for name, g in digests.items():
        for t in g.to:
            if t not in dests:
                raise bad(f"digest.{name}", "to", f"no [destination.{t}]")

    rules_doc = doc.get("rule", [])
    if not isinstance(rules_doc, list):
        raise bad("", "rule", "want [[rule]] tables")
    rules = tuple(_rule(i, r, dests, digests, lambda k, why, i=i: bad("rule", k, why, i))
                  for i, r in enumerate(rules_doc))
    quiet = {r.quiet_digest for r in rules} | {d.quiet_digest for d in dests.values()}
    for name, g in digests.items():
        if g.at is None and g.every is None and name not in quiet:
            raise bad(f"digest.{name}", "at", 'give one of at = "HH:MM" and every = "1h" (only a quiet_digest, '
                      "sent when the hours open, may have neither)")
    expects_doc = doc.get("expect", [])
    if not isinstance(expects_doc, list):
        raise bad("", "expect", "want [[expect]] tables")
    expects: list[Expect] = []
    for i, x in enumerate(expects_doc):
        e = _expect(i, x, dests, lambda k, why, i=i: bad("expect", k, why, i))
        if any(e.name == y.name for y in expects):
            raise bad("expect", "name", f"another [[expect]] is named {e.name!r}", i)
        expects.append(e)
    return Config(path=path, state_dir=state_dir, start=start, destinations=dests, rules=rules, digests=digests,
                  expects=tuple(expects))


def _table(doc: dict[str, Any], name: str, bad: Any) -> dict[str, Any]:
    t = doc.get(name, {})
    if not isinstance(t, dict):
        raise bad("", name, "want a table")
    return t


def _known(d: dict[str, Any], keys: tuple[str, ...], bad: Any, kind: str = "") -> None:
    """Every key of table ``d`` is one of ``keys``: a ConfigError naming the first one that is not."""
    for k in d:
        if k not in keys:
            raise bad(k, f"unknown key{kind} (known: {', '.join(sorted(set(keys)))})")


def _strings(value: object) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _match(r: dict[str, Any], bad: Any) -> tuple[tuple[str, tuple[Pattern, ...]], ...]:
    """A rule's or an expectation's ``match`` table."""
    match_doc = r.get("match", {})
    if not isinstance(match_doc, dict):
        raise bad("match", "want a table such as { caller = \"sudo\" }")
    match = []
    for k, v in match_doc.items():
        if k not in MATCH_KEYS:
            raise bad(f"match.{k}", f"unknown match key (known: {', '.join(MATCH_KEYS)})")
        values = _strings(v) if not isinstance(v, int) else (str(v),)
        if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and v:
            values = tuple(str(x) for x in v)
        if values is None:
            raise bad(f"match.{k}", "want a string, a /regex/ or a list of them")
        pats = []
        for t in values:
            try:
                pats.append(Pattern(t, glob_regex(t)))
            except re.error as e:
                raise bad(f"match.{k}", f"bad regular expression {t!r}: {e}") from None
        match.append((k, tuple(pats)))
    return tuple(match)


def _rule(i: int, r: Any, dests: dict[str, Destination], digests: dict[str, Digest], bad: Any) -> Rule:
    if not isinstance(r, dict):
        raise bad(None, "want a table")
    _known(r, RULE_KEYS, bad)
    name = r.get("name", f"rule {i + 1}")
    if not isinstance(name, str):
        raise bad("name", "want a string")
    match = _match(r, bad)
    route = r.get("route", [])
    route_t = _strings(route) if route != [] else ()
    if route_t is None:
        raise bad("route", "want a list of destination names")
    for d in route_t:
        if d not in dests:
            raise bad("route", f"no [destination.{d}]")
    digest = r.get("digest")
    if digest is not None and (not isinstance(digest, str) or digest not in digests):
        raise bad("digest", f"no [digest.{digest}]")
    action = r.get("action")
    if action not in (None, "drop"):
        raise bad("action", 'the only action is "drop"')
    cont = r.get("continue", False)
    if not isinstance(cont, bool):
        raise bad("continue", "want true or false")
    if action == "drop" and (route_t or digest):
        raise bad("action", "a rule that drops routes nowhere")
    if action is None and not route_t and digest is None:
        raise bad(None, 'wants route = […], digest = "NAME" or action = "drop"')
    repeat_interval = None
    if "repeat_interval" in r:
        repeat_interval = _number_or(r, "repeat_interval", 0.0, bad)
    group_by: tuple[str, ...] = ()
    if "group_by" in r:
        if repeat_interval is None:
            raise bad("group_by", "groups repeats: needs repeat_interval")
        g = _strings(r["group_by"])
        if g is None or any(x not in GROUP_KEYS for x in g):
            raise bad("group_by", f"want a list of {', '.join(GROUP_KEYS)}")
        group_by = g
    elif repeat_interval is not None:
        group_by = ("host", "caller", "subject")
    if (repeat_interval is not None or "hours" in r or "quiet_digest" in r) and not route_t:
        raise bad("repeat_interval" if repeat_interval is not None else "hours", "only for a rule with a route")
    hours, quiet = _hours(r, digests, bad)
    urgent = r.get("urgent", False)
    if not isinstance(urgent, bool):
        raise bad("urgent", "want true or false")
    if urgent and hours is not None:
        raise bad("urgent", "an urgent rule ignores quiet hours: give it no hours")
    return Rule(name=name, match=match, route=route_t, digest=digest, drop=action == "drop", cont=cont,
                group_by=group_by, repeat_interval=repeat_interval, hours=hours, quiet_digest=quiet, urgent=urgent)


def _hours(d: dict[str, Any], digests: dict[str, Digest] | None, bad: Any) -> tuple[Hours | None, str | None]:
    """``hours``, ``timezone`` and ``quiet_digest`` (which go together); ``digests`` None: checked later."""
    has = [k for k in ("hours", "quiet_digest") if k in d]
    if "timezone" in d and "hours" not in d:
        raise bad("timezone", "the time zone of hours: needs hours")
    if len(has) == 1:
        raise bad(has[0], "hours and quiet_digest go together (outside the hours, mail goes into that digest)")
    if not has:
        return None, None
    tz = d.get("timezone", "")
    if not isinstance(tz, str):
        raise bad("timezone", "want a name such as Europe/Berlin")
    if not isinstance(d["hours"], str):
        raise bad("hours", 'want such as "Mon-Fri 08:00-20:00"')
    try:
        hours = parse_hours(d["hours"], tz)
    except ValueError as e:
        raise bad("timezone" if "time zone" in str(e) else "hours", str(e)) from None
    quiet = d["quiet_digest"]
    if not isinstance(quiet, str) or (digests is not None and quiet not in digests):
        raise bad("quiet_digest", f"no [digest.{quiet}]")
    return hours, quiet


def _expect(i: int, x: Any, dests: dict[str, Destination], bad: Any) -> Expect:
    if not isinstance(x, dict):
        raise bad(None, "want a table")
    _known(x, EXPECT_KEYS, bad)
    name = x.get("name")
    if not isinstance(name, str) or not name:
        raise bad("name", "want a name, such as \"nightly backup\"")
    match = _match(x, bad)
    if not any(k in TRUSTED_KEYS for k, _ in match):
        raise bad("match", "any local user can forge every other key, and so keep the expectation met: match on "
                  "unit, user or uid too (user = \"*\" to take anyone's word on purpose)")
    if "every" not in x:
        raise bad("every", "want a period, such as \"1d\"")
    every = _number_or(x, "every", 0.0, bad)
    grace = _number_or(x, "grace", 3600.0, bad)
    if x.get("per", "host") != "host":
        raise bad("per", 'the only one is "host"')
    hosts = _strings(x.get("hosts", [])) if x.get("hosts", []) != [] else ()
    if hosts is None:
        raise bad("hosts", "want a list of host names")
    route = _strings(x.get("route"))
    if route is None:
        raise bad("route", "want a list of destination names")
    for d in route:
        if d not in dests:
            raise bad("route", f"no [destination.{d}]")
    return Expect(name=name, rule=Rule(name=f"expect {name}", match=match, route=route), every=every, grace=grace,
                  hosts=hosts)


def _number_or(d: dict[str, Any], key: str, default: float, bad: Any) -> float:
    if key not in d:
        return default
    try:
        return duration(d[key])
    except ValueError as e:
        raise bad(key, str(e)) from None


def _rate(d: dict[str, Any], bad: Any) -> RateLimit | None:
    v = d.get("rate_limit")
    if v is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*\.?\d*[smhdw]?)\s*", v) if isinstance(v, str) else None
    if not m or int(m.group(1)) < 1:
        raise bad("rate_limit", 'want "N/period", such as "10/1h"')
    try:
        period = duration(m.group(2) or "1")
    except ValueError as e:
        raise bad("rate_limit", str(e)) from None
    return RateLimit(int(m.group(1)), period)


def _destination(name: str, d: Any, bad: Any) -> Destination:
    if not isinstance(d, dict):
        raise bad(None, "want a table")
    kind = d.get("type")
    if kind not in ("smtp", "webhook"):
        raise bad("type", 'want "smtp" or "webhook"')
    _known(d, COMMON_KEYS + (SMTP_KEYS if kind == "smtp" else WEBHOOK_KEYS), bad, f" for type {kind}")
    url = d.get("url")
    if not isinstance(url, str):
        raise bad("url", "missing or not a string")
    overflow = d.get("overflow")
    if overflow is not None and not isinstance(overflow, str):
        raise bad("overflow", "want a digest name")
    rate = _rate(d, bad)
    if overflow is not None and rate is None:
        raise bad("overflow", "needs rate_limit")
    cafile = d.get("cafile")
    if cafile is not None and not isinstance(cafile, str):
        raise bad("cafile", "want a path")
    hours, quiet = _hours(d, None, bad)
    base: dict[str, Any] = dict(name=name, type=kind, url=url, timeout=_number_or(d, "timeout", 30.0, bad),
                                max_age=_number_or(d, "max_age", 86400.0, bad), rate_limit=rate, overflow=overflow,
                                cafile=cafile, hours=hours, quiet_digest=quiet)
    if kind == "webhook":
        m = re.fullmatch(r"(https?)://([^/:]+|\[[^]]+\])(?::(\d+))?(/.*)?", url)
        if not m:
            raise bad("url", "want http://HOST[:PORT]/PATH or https://…")
        fmt = d.get("format", "json")
        if fmt not in ("json", "ntfy", "slack"):
            raise bad("format", 'want "json", "ntfy" or "slack"')
        headers = d.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise bad("headers", "want a table of strings")
        for k, v in headers.items():
            if not re.fullmatch(r"[A-Za-z0-9-]+", k) or not all(" " <= c <= "~" for c in v):
                raise bad("headers", f"{k!r}: want a header name and a printable ASCII value")
        return Destination(**base, format=fmt, headers=tuple(headers.items()))
    m = re.fullmatch(r"(smtp|smtp\+starttls|smtps)://([^/:]+|\[[^]]+\])(?::(\d+))?/?", url)
    if not m:
        raise bad("url", "want smtp://HOST[:PORT], smtp+starttls://HOST[:PORT] or smtps://HOST[:PORT]")
    scheme, host = m.group(1), m.group(2).strip("[]")
    port = int(m.group(3)) if m.group(3) else SCHEMES[scheme]
    sender = d.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        raise bad("from", "want the forwarder's address, such as journal-mail@loghost.example.org")
    to = _strings(d.get("to"))
    if to is None:
        raise bad("to", "want a list of addresses")
    mode = d.get("mode", "wrap")
    if mode not in ("wrap", "resend"):
        raise bad("mode", 'want "wrap" or "resend"')
    user, pw = d.get("username"), d.get("password_file")
    if (user is None) != (pw is None) or not all(isinstance(v, str) for v in (user or "", pw or "")):
        raise bad("password_file" if user is not None else "username", "username and password_file go together")
    if pw is not None and not pw.startswith("/"):
        raise bad("password_file", "want an absolute path")
    if user is not None and scheme == "smtp" and host not in ("localhost", "127.0.0.1", "::1"):
        raise bad("username", "AUTH over plain smtp:// would send the password in clear: use smtp+starttls:// "
                  "or smtps://")
    return Destination(**base, scheme=scheme, host=host, port=port, username=user, password_file=pw, sender=sender,
                       to=to, mode=mode)


def _digest(name: str, d: Any, bad: Any) -> Digest:
    if not isinstance(d, dict):
        raise bad(None, "want a table")
    _known(d, DIGEST_KEYS, bad)
    to = _strings(d.get("to"))
    if to is None:
        raise bad("to", "want a list of destination names")
    at, every = None, None
    if "at" in d and "every" in d:
        raise bad("at", 'give one of at = "HH:MM" and every = "1h"')
    if "at" in d:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(d["at"]))
        if not m:
            raise bad("at", 'want "HH:MM"')
        at = (int(m.group(1)), int(m.group(2)))
    elif "every" in d:
        every = _number_or(d, "every", 3600.0, bad)
    group_by = _strings(d.get("group_by", ["host", "caller", "subject"]))
    if group_by is None or any(g not in GROUP_KEYS for g in group_by):
        raise bad("group_by", f"want a list of {', '.join(GROUP_KEYS)}")
    examples = d.get("examples", 1)
    if not isinstance(examples, int) or isinstance(examples, bool) or not 0 <= examples <= 10:
        raise bad("examples", "want a number from 0 to 10")
    max_size = DIGEST_MAX_SIZE
    if "max_size" in d:
        v = d["max_size"]
        m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)i?B?\s*", v) if isinstance(v, str) else None
        if isinstance(v, int) and not isinstance(v, bool):
            max_size = v
        elif m:
            max_size = int(m.group(1)) * SIZE_UNITS[m.group(2).lower()]
        else:
            raise bad("max_size", 'want a size such as "1M" or "256k"')
        if max_size < DIGEST_MIN_SIZE:
            raise bad("max_size", f"want at least {DIGEST_MIN_SIZE // 1024}k (one group must fit)")
    return Digest(name=name, to=to, at=at, every=every, group_by=group_by, examples=examples, max_size=max_size)
