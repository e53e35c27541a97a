"""Query: find the mail in the journal, filter it, reassemble split messages.

Reads with python-systemd's low-level ``_Reader`` (``_next()``/``_get_all()``,
twice as fast as ``systemd.journal.Reader``'s converters, and without its
~16 ms import).  Filters the journal can evaluate are given to it as
matches; only ``--subject`` and ``--grep`` are looked at here.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import DamagedMail, NotFound
from .record import MSG_MAIL, MSG_PART, MSG_REFUSED

LOCAL_ONLY = 1  # SD_JOURNAL_LOCAL_ONLY
US = 1_000_000

Pattern = re.Pattern[str]


@dataclass(frozen=True)
class Source:
    """Where to read: the local journal (all empty), a directory, files or a namespace."""

    directory: str | None = None
    files: tuple[str, ...] = ()
    namespace: str | None = None


@dataclass(frozen=True)
class Filters:
    """What to show.  Values of one kind are alternatives; kinds combine with AND."""

    since: int | None = None  # µs since the epoch
    until: int | None = None
    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    uids: tuple[int, ...] = ()
    callers: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    boots: tuple[str, ...] = ()
    mail_ids: tuple[str, ...] = ()
    spooled: bool = False
    refused: bool = False  # also submissions that were refused but recorded
    subject: Pattern | None = None
    grep: Pattern | None = None

    def matches(self) -> list[str]:
        """The FIELD=value matches the journal evaluates itself.

        >>> Filters(recipients=("root", "ops@x"), uids=(0,)).matches()
        ['MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172', 'MAIL_RCPT=root', 'MAIL_RCPT=ops@x', '_UID=0']
        """
        out = [f"MESSAGE_ID={MSG_MAIL}"] + ([f"MESSAGE_ID={MSG_REFUSED}"] if self.refused else [])
        out += [f"MAIL_ID={v}" for v in self.mail_ids if len(v) == 32]
        out += [f"MAIL_ENVELOPE_FROM={v}" for v in self.senders]
        out += [f"MAIL_RCPT={v}" for v in self.recipients]
        out += [f"_UID={v}" for v in self.uids]
        out += [f"MAIL_CALLER_COMM={v}" for v in self.callers]
        out += [f"_HOSTNAME={v}" for v in self.hosts]
        out += [f"_BOOT_ID={v}" for v in self.boots]
        if self.spooled:
            out.append("MAIL_SPOOLED=yes")
        return out


@dataclass
class MailEntry:
    """One stored message as the reader sees it (the message entry, not its parts)."""

    mail_id: str
    realtime: int = 0  # µs since the epoch
    cursor: str = ""
    kind: str = "mail"  # or "refused"
    envelope_from: str = ""
    recipients: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # MAIL_FROM … as from, to, …
    size: int = 0
    sha256: str = ""
    parts: int = 1
    uid: int | None = None
    username: str | None = None
    hostname: str = ""
    boot_id: str = ""
    caller_comm: str = ""
    caller_pid: int | None = None
    caller_exe: str = ""
    argv: tuple[str, ...] = ()
    invoked_as: str = ""
    spooled: bool = False
    spool_uid: int | None = None
    submitted_at: str = ""
    truncated: int | None = None  # the original size, when the message was cut
    refused: str = ""
    defects: tuple[str, ...] = ()
    text: str | None = None  # MAIL_TEXT: the readable body, when stored
    raw: bytes = b""  # MAIL_RAW of this entry: the whole message, or its first part
    duplicates: int = 0  # other copies of this MAIL_ID in a central journal (see ``central``)

    @property
    def subject(self) -> str:
        return self.headers.get("subject", "")


HEADER_FIELDS = {
    "MAIL_FROM": "from",
    "MAIL_TO": "to",
    "MAIL_CC": "cc",
    "MAIL_BCC": "bcc",
    "MAIL_SUBJECT": "subject",
    "MAIL_DATE": "date",
    "MAIL_MESSAGE_ID": "message_id",
    "MAIL_AUTO_SUBMITTED": "auto_submitted",
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0]
    return bytes(value).decode("utf-8", "replace")


def _int(value: Any) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


_names: dict[int, str | None] = {}


def username(uid: int | None) -> str | None:
    """The login name of ``uid`` on this host (cached), or None."""
    if uid is None:
        return None
    if uid not in _names:
        import pwd

        try:
            _names[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _names[uid] = None
    return _names[uid]


def to_entry(d: dict[str, Any], realtime: int, cursor: str) -> MailEntry:
    """A MailEntry from the fields of one message entry (``_get_all()``).

    Written for speed (``list --json`` reads ~30 fields of every mail): one
    dict lookup and at most one decode per field.
    """
    get = d.get

    def text(name: str) -> str:
        v = get(name)
        if v is None:
            return ""
        if v.__class__ is list:
            v = v[0]
        return v.decode("utf-8", "replace")  # type: ignore[no-any-return]

    def number(name: str) -> int | None:
        v = get(name)
        if v is None:
            return None
        try:
            return int(v[0] if v.__class__ is list else v)
        except ValueError:
            return None

    rcpts = get("MAIL_RCPTS")
    if rcpts is not None:
        recipients = tuple(text("MAIL_RCPTS").split(","))
    else:
        rc = get("MAIL_RCPT", [])
        recipients = tuple(_text([v]) for v in (rc if isinstance(rc, list) else [rc]))
    uid = number("_UID")
    raw = get("MAIL_RAW", b"")
    argv = text("MAIL_ARGV")
    defects = text("MAIL_DEFECTS")
    stored_text = get("MAIL_TEXT")
    return MailEntry(
        mail_id=text("MAIL_ID"),
        realtime=realtime,
        cursor=cursor,
        kind="refused" if get("MESSAGE_ID") == _REFUSED else "mail",
        envelope_from=text("MAIL_ENVELOPE_FROM"),
        recipients=recipients,
        headers={key: text(name) for name, key in HEADER_FIELDS.items() if name in d},
        size=number("MAIL_SIZE") or 0,
        sha256=text("MAIL_SHA256"),
        parts=number("MAIL_PARTS") or 1,
        uid=uid,
        username=_names[uid] if uid in _names else username(uid),
        hostname=text("_HOSTNAME"),
        boot_id=text("_BOOT_ID"),
        caller_comm=text("MAIL_CALLER_COMM"),
        caller_pid=number("MAIL_CALLER_PID"),
        caller_exe=text("MAIL_CALLER_EXE"),
        argv=tuple(argv.split("\n")) if argv else (),
        invoked_as=text("MAIL_INVOKED_AS"),
        spooled=get("MAIL_SPOOLED") == b"yes",
        spool_uid=number("MAIL_SPOOL_UID"),
        submitted_at=text("MAIL_SUBMITTED_AT"),
        truncated=number("MAIL_TRUNCATED"),
        refused=text("MAIL_REFUSED"),
        defects=tuple(defects.split("\n")) if defects else (),
        text=None if stored_text is None else _text(stored_text),
        raw=raw[0] if isinstance(raw, list) else raw,
    )


_REFUSED = MSG_REFUSED.encode()


# -- opening the journal ------------------------------------------------------


def open_reader(source: Source) -> Any:
    """A python-systemd ``_Reader`` on ``source``, with no field truncated."""
    from systemd import _reader  # type: ignore[import-not-found, import-untyped, unused-ignore]

    if source.directory is not None:
        if not os.path.isdir(source.directory):
            raise NotFound(f"{source.directory}: no such directory")
        r = _reader._Reader(0, path=source.directory)
    elif source.files:
        for f in source.files:
            if not os.path.exists(f):
                raise NotFound(f"{f}: no such file")
        r = _reader._Reader(0, files=list(source.files))
    elif source.namespace is not None:
        r = _reader._Reader(LOCAL_ONLY, namespace=source.namespace)
    else:
        r = _reader._Reader(LOCAL_ONLY)
    r.data_threshold = 0  # 0: unlimited; the default would cut MAIL_RAW at 64 KiB
    return r


def machine_id() -> str:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip()
    except OSError:
        return ""


def journal_files(source: Source) -> list[str]:
    """The journal files ``source`` is made of, readable or not."""
    if source.files:
        return list(source.files)
    if source.directory is not None:
        dirs = [source.directory]
    else:
        mid = machine_id()
        suffix = f".{source.namespace}" if source.namespace else ""
        dirs = [f"/run/log/journal/{mid}{suffix}", f"/var/log/journal/{mid}{suffix}"]
    out = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        out += [os.path.join(d, n) for n in names if n.endswith((".journal", ".journal~"))]
    return out


def readability(source: Source, access: Callable[[str], bool] | None = None) -> tuple[list[str], list[str]]:
    """(readable, unreadable) journal files of ``source`` for this process."""
    can = access or (lambda p: os.access(p, os.R_OK))
    files = [f for f in journal_files(source) if os.path.exists(f)]
    return [f for f in files if can(f)], [f for f in files if not can(f)]


# -- time ---------------------------------------------------------------------

_UNITS = {
    "us": 1, "usec": 1, "µs": 1,
    "ms": 1000, "msec": 1000,
    "s": US, "sec": US, "second": US, "seconds": US,
    "m": 60 * US, "min": 60 * US, "minute": 60 * US, "minutes": 60 * US,
    "h": 3600 * US, "hr": 3600 * US, "hour": 3600 * US, "hours": 3600 * US,
    "d": 86400 * US, "day": 86400 * US, "days": 86400 * US,
    "w": 604800 * US, "week": 604800 * US, "weeks": 604800 * US,
    "M": 2629800 * US, "month": 2629800 * US, "months": 2629800 * US,
    "y": 31557600 * US, "year": 31557600 * US, "years": 31557600 * US,
}  # fmt: skip
_SPAN = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Zµ]*)")
_ABS = re.compile(
    r"(?:(?P<date>\d{4}-\d{1,2}-\d{1,2})(?:[ T]|$))?"
    r"(?:(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?)?"
)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_span(text: str) -> int:
    """A time span as systemd writes it, in µs: ``1h 30min``, ``2d``, ``90`` (seconds).

    >>> parse_span("1h 30min"), parse_span("2d"), parse_span("90")
    (5400000000, 172800000000, 90000000)
    """
    pos, total, t = 0, 0.0, text.strip()
    if not t:
        raise ValueError("empty time span")
    while pos < len(t):
        m = _SPAN.match(t, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad time span {text!r}")
        unit = m.group(2) or "s"
        scale = _UNITS.get(unit, _UNITS.get(unit.lower()) if unit != "M" else None)
        if scale is None:
            raise ValueError(f"unknown time unit {unit!r} in {text!r}")
        total += float(m.group(1)) * scale
        pos = m.end()
        while pos < len(t) and t[pos] == " ":
            pos += 1
    return int(total)


def parse_time(text: str, now: float | None = None) -> int:
    """A point in time in journalctl's formats, in µs since the epoch.

    ``now``, ``today``, ``yesterday``, ``tomorrow``, ``@EPOCH``, ``-1h``,
    ``+30min``, ``2h ago``, ``2026-11-20``, ``2026-11-20 10:00[:00]``,
    ``10:00`` (today), an optional weekday first and ``UTC`` last.

    >>> parse_time("@1795248649.5"), parse_time("-1h", now=7200.0)
    (1795248649500000, 3600000000)
    >>> parse_time("2026-11-20 10:00:01 UTC")
    1795168801000000
    """
    now_s = time.time() if now is None else now
    t = " ".join(text.split())
    low = t.lower()
    if low == "now":
        return int(now_s * US)
    if low.startswith("@"):
        return int(float(low[1:]) * US)
    if low.startswith(("-", "+")):
        span = parse_span(t[1:])
        return int(now_s * US) + (span if t[0] == "+" else -span)
    if low.endswith((" ago", " left")):
        span = parse_span(t.rsplit(" ", 1)[0])
        return int(now_s * US) + (span if low.endswith(" left") else -span)
    utc = low.endswith((" utc", "z"))
    if utc:
        t = t[:-1] if low.endswith("z") else t[:-4]
        low = t.lower()
    lt = time.gmtime(now_s) if utc else time.localtime(now_s)
    day = {"today": 0, "yesterday": -1, "tomorrow": 1}.get(low)
    if day is not None:
        return _to_us((lt.tm_year, lt.tm_mon, lt.tm_mday + day, 0, 0, 0), 0, utc)
    words = t.split(" ", 1)
    if words[0].lower()[:3] in _WEEKDAYS and not words[0][:1].isdigit():
        t = words[1] if len(words) > 1 else ""
    m = _ABS.fullmatch(t.replace("T", " ", 1) if re.match(r"\d{4}-\d+-\d+T", t) else t)
    if not t or m is None or not (m.group("date") or m.group("h")):
        raise ValueError(f"bad time {text!r}: want e.g. 2026-11-20 10:00, today, -1h or @1795248649")
    if m.group("date"):
        y, mo, d = (int(x) for x in m.group("date").split("-"))
    else:
        y, mo, d = lt.tm_year, lt.tm_mon, lt.tm_mday
    h, mi, s = int(m.group("h") or 0), int(m.group("m") or 0), int(m.group("s") or 0)
    frac = int((m.group("f") or "0").ljust(6, "0"))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        raise ValueError(f"bad time {text!r}: a field is out of range")
    return _to_us((y, mo, d, h, mi, s), frac, utc)


def _to_us(fields: tuple[int, int, int, int, int, int], frac: int, utc: bool) -> int:
    tm = (*fields, 0, 0, -1)
    secs = calendar.timegm(tm) if utc else time.mktime(tm)
    return int(secs) * US + frac


# -- iterating ----------------------------------------------------------------


def boot_ids(reader: Any) -> list[str]:
    """Boot ids that have mail, oldest first (by their first mail)."""
    first: list[tuple[int, str]] = []
    for raw in reader.query_unique("_BOOT_ID"):
        boot = _text(raw)
        reader.flush_matches()
        reader.add_match(f"MESSAGE_ID={MSG_MAIL}".encode())
        reader.add_match(f"_BOOT_ID={boot}".encode())
        reader.seek_head()
        if reader._next(1):
            first.append((reader._get_realtime(), boot))
    reader.flush_matches()
    return [b for _, b in sorted(first)]


def resolve_boot(reader: Any, spec: str) -> str:
    """``--boot`` value to a boot id: an id, or an offset (0 last, -1 the one before, 1 first)."""
    s = spec.replace("-", "") if len(spec) == 36 else spec
    if re.fullmatch(r"[0-9a-fA-F]{32}", s):
        return s.lower()
    try:
        offset = int(spec or "0")
    except ValueError:
        raise ValueError(f"bad boot {spec!r}: want a boot id or an offset such as 0 or -1") from None
    boots = boot_ids(reader)
    index = len(boots) - 1 + offset if offset <= 0 else offset - 1
    if not 0 <= index < len(boots):
        raise NotFound(f"no boot with offset {spec} among the {len(boots)} boots that have mail")
    return boots[index]


def apply_matches(reader: Any, filters: Filters) -> None:
    reader.flush_matches()
    for m in filters.matches():
        reader.add_match(m.encode("utf-8", "surrogateescape"))


def _wanted(e: MailEntry, filters: Filters, body: Callable[[MailEntry], str]) -> bool:
    if filters.mail_ids and not any(e.mail_id.startswith(p.lower()) for p in filters.mail_ids):
        return False
    if filters.subject is not None and not filters.subject.search(e.subject):
        return False
    return filters.grep is None or filters.grep.search(body(e)) is not None


def mails(
    reader: Any,
    filters: Filters,
    lines: int | None = None,
    reverse: bool = False,
    body: Callable[[MailEntry], str] | None = None,
) -> Iterator[MailEntry]:
    """The mail matching ``filters``, oldest first (newest first with ``reverse``).

    ``lines``: only the newest that many.  ``body`` gives the text ``--grep``
    searches (the stored MAIL_TEXT or the decoded raw message).
    """
    apply_matches(reader, filters)
    get_body = body or (lambda e: e.text or "")
    if lines is None and not reverse:
        yield from _scan(reader, filters, get_body, forward=True)
        return
    newest = _scan(reader, filters, get_body, forward=False)
    if lines is not None:
        chosen: list[MailEntry] = []
        for e in newest:
            if len(chosen) >= lines:
                break
            chosen.append(e)
        yield from chosen if reverse else reversed(chosen)
    else:
        yield from newest


def _scan(reader: Any, filters: Filters, body: Callable[[MailEntry], str], forward: bool) -> Iterator[MailEntry]:
    since, until = filters.since, filters.until
    if forward:
        reader.seek_realtime(since) if since is not None else reader.seek_head()
    else:
        reader.seek_realtime(until + 1) if until is not None else reader.seek_tail()
    step = reader._next if forward else reader._previous
    get_all, get_realtime, get_cursor = reader._get_all, reader._get_realtime, reader._get_cursor
    while step(1):
        t = get_realtime()
        if until is not None and t > until:
            if forward:
                return
            continue
        if since is not None and t < since:
            if forward:
                continue
            return
        e = to_entry(get_all(), t, get_cursor())
        if _wanted(e, filters, body):
            yield e


FOLLOW_MEMORY = 10_000


def follow(
    reader: Any,
    filters: Filters,
    cursor: str | None,
    lines: int | None,
    body: Callable[[MailEntry], str] | None = None,
    timeout: float = 1.0,
) -> Iterator[MailEntry | None]:
    """Mail as it arrives, forever; None after each wait with nothing new.

    Starts after ``cursor`` when given, else with the newest ``lines`` mails
    (``None``: every mail, or every one since ``filters.since``).  New journal
    files (rotation) are picked up by ``wait()``.  A MAIL_ID among the last
    ``FOLLOW_MEMORY`` given out is not given again: journal-upload sends the
    entry at its saved cursor once more when it restarts, so a central
    journal can hold a mail twice, the copies close together.
    """
    get_body = body or (lambda e: e.text or "")
    apply_matches(reader, filters)
    recent: dict[str, None] = {}  # MAIL_IDs given out, oldest first
    pending = False  # is the reader on an entry not yet given out?
    if cursor:
        reader.seek_cursor(cursor)
        pending = bool(reader._next(1)) and not reader.test_cursor(cursor)
    elif lines is None:
        reader.seek_realtime(filters.since) if filters.since is not None else reader.seek_head()
    else:
        reader.seek_tail()
        back = 0
        while back < max(lines, 1) and reader._previous(1):
            back += 1
        pending = lines > 0 and back > 0
    while True:
        while pending or reader._next(1):
            pending = False
            t = reader._get_realtime()
            if filters.since is not None and t < filters.since:
                continue
            if filters.until is not None and t > filters.until:
                continue
            e = to_entry(reader._get_all(), t, reader._get_cursor())
            if (e.mail_id and e.mail_id in recent) or not _wanted(e, filters, get_body):
                continue
            recent[e.mail_id] = None
            if len(recent) > FOLLOW_MEMORY:
                del recent[next(iter(recent))]
            yield e
        yield None
        try:
            reader.wait(int(timeout * US))
        except InterruptedError:
            pass


def central(
    reader: Any,
    filters: Filters,
    lines: int | None = None,
    reverse: bool = False,
    body: Callable[[MailEntry], str] | None = None,
) -> tuple[int, Iterator[MailEntry]]:
    """The mail of a central journal (systemd-journal-remote's files), as ``mails`` gives it.

    Such a journal can hold a MAIL_ID twice (systemd 252's journal-upload
    sends the entry at its saved cursor again when it restarts): each mail
    comes once, with ``duplicates`` counting its other copies.  It stores
    entries as they arrived, and hosts' clocks disagree: mail comes in the
    order of the senders' clocks (_SOURCE_REALTIME_TIMESTAMP, else the
    entry's time, both stamped on the sending host).  Returns how many mails arrived
    after one their sender stamped later, and the mails.  Reads the journal
    twice, so that only (time, MAIL_ID, cursor) of every mail is held at once.
    """
    get_body = body or (lambda e: e.text or "")
    since, until = filters.since, filters.until
    apply_matches(reader, filters)
    reader.seek_head()  # not seek_realtime: the entries are in the order they arrived, not in time order
    seen: set[str] = set()
    order: list[tuple[int, str]] = []  # (sent, cursor) of the first copy of each mail, as they arrived
    copies: dict[str, int] = {}
    while reader._next(1):
        t = reader._get_realtime()
        if (since is not None and t < since) or (until is not None and t > until):
            continue
        cursor = reader._get_cursor()
        mail_id = _field(reader, "MAIL_ID")
        key = _text(mail_id) if mail_id else cursor
        if key in seen:
            copies[key] = copies.get(key, 0) + 1
            continue
        seen.add(key)
        order.append((_int(_field(reader, "_SOURCE_REALTIME_TIMESTAMP")) or t, cursor))
    late, newest = 0, 0
    for sent, _ in order:
        if sent < newest:
            late += 1
        newest = max(newest, sent)
    ordered = sorted(order, key=lambda o: o[0])  # stable: mails stamped alike stay in arrival order

    def fetch(cursor: str) -> MailEntry | None:
        reader.seek_cursor(cursor)
        if not reader._next(1) or not reader.test_cursor(cursor):
            return None
        e = to_entry(reader._get_all(), reader._get_realtime(), cursor)
        e.duplicates = copies.get(e.mail_id or cursor, 0)
        return e if _wanted(e, filters, get_body) else None

    def gen() -> Iterator[MailEntry]:
        if lines is None and not reverse:
            yield from filter(None, map(fetch, (c for _, c in ordered)))
            return
        chosen: list[MailEntry] = []
        for e in filter(None, map(fetch, (c for _, c in reversed(ordered)))):
            if lines is not None and len(chosen) >= lines:
                break
            chosen.append(e)
        yield from chosen if reverse else reversed(chosen)

    return late, gen()


def _field(reader: Any, name: str) -> bytes | None:
    try:
        return reader._get(name)  # type: ignore[no-any-return]
    except KeyError:
        return None


# -- whole messages -----------------------------------------------------------


def assemble(entry: MailEntry, open_parts: Callable[[], Any]) -> bytes:
    """The whole raw message of ``entry``, checked against MAIL_SIZE and MAIL_SHA256.

    ``open_parts`` opens a reader on the same journal for the part entries of
    a split message.  Raises DamagedMail when a part is missing or the bytes
    do not match what the sender recorded.
    """
    chunks = [entry.raw]
    if entry.parts > 1:
        found = _parts(open_parts, entry.mail_id)
        missing = [n for n in range(2, entry.parts + 1) if n not in found]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise DamagedMail(entry.mail_id, f"part {shown} of {entry.parts} missing from the journal")
        chunks += [found[n] for n in range(2, entry.parts + 1)]
    raw = b"".join(chunks)
    if entry.size and len(raw) != entry.size:
        raise DamagedMail(entry.mail_id, f"{len(raw)} bytes found, {entry.size} recorded")
    if entry.sha256 and hashlib.sha256(raw).hexdigest() != entry.sha256:
        raise DamagedMail(entry.mail_id, "its SHA-256 does not match MAIL_SHA256")
    return raw


def _parts(open_parts: Callable[[], Any], mail_id: str) -> dict[int, bytes]:
    reader = open_parts()
    try:
        reader.add_match(f"MESSAGE_ID={MSG_PART}".encode())
        reader.add_match(f"MAIL_ID={mail_id}".encode())
        reader.seek_head()
        found: dict[int, bytes] = {}
        while reader._next(1):
            n = _int(reader._get("MAIL_PART"))
            if n is not None and n not in found:
                try:
                    found[n] = reader._get("MAIL_RAW")
                except KeyError:
                    continue
        return found
    finally:
        reader.close()


def body_text(raw: bytes, stored: str | None) -> str:
    """The readable body ``--grep`` searches: MAIL_TEXT, else decoded from ``raw``."""
    if stored is not None:
        return stored
    from .headers import parse
    from .message import body_of, readable_text

    text, _ = readable_text(raw, parse(raw).content)
    return text if text is not None else body_of(raw).decode("utf-8", "replace")
