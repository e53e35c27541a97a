"""Status: what the forwarder holds, read from its state directory (``journal-mail forward status``), and the
``silence`` commands that change it.

Nothing here takes the service's lock nor writes its state: status reads the
state.json files as the last save left them (at most a batch old), silences
are changed under their own lock (``silence``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

from ...errors import EX_NOINPUT, EX_OK, ConfigError
from ...printable import printable
from ...users import name_of
from ..output import Io
from ..render import rfc3339
from . import silence
from .config import Config
from .state import StateError, check_dir, nofollow, safe_name


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    if math.isinf(t):
        return "when the hours open"
    return rfc3339(int(t * 1_000_000))


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8", opener=nofollow) as f:
            doc = json.load(f)
        return doc if isinstance(doc, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise StateError(f"{path}: unreadable ({e})") from None


def _lines(path: str) -> int:
    try:
        with open(path, "rb", opener=nofollow) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def collect(cfg: Config, now: float) -> dict[str, Any]:
    """Everything ``status`` shows, as one JSON-able document."""
    top = cfg.state_dir
    out: dict[str, Any] = {"state_dir": top, "time": rfc3339(int(now * 1_000_000)),
                           "destinations": [], "silences": [], "digests": [], "expectations": []}
    for name, d in cfg.destinations.items():
        st = _read(os.path.join(top, f"dest-{safe_name(name)}", "state.json"))
        retry = st.get("retry", {})
        repeats = st.get("repeats", {})
        out["destinations"].append({
            "name": name, "url": d.url, "last_success": _when(st.get("status", {}).get("last_success")),
            "pending_retries": len(retry),
            "next_retry": _when(min((r["next"] for r in retry.values()), default=None)),
            "repeat_groups": len([k for k in repeats if not k.endswith(" closed")]),
            "repeats_held": sum(w.get("count", 0) for w in repeats.values()),
            "hosts": len(st.get("cursors", {}))})
    for s in silence.read(top) if os.path.isdir(top) else []:
        out["silences"].append({**s.record(), "active": s.active(now), "start": _when(s.start), "end": _when(s.end)})
    for name, g in cfg.digests.items():
        gdir = os.path.join(top, f"digest-{safe_name(name)}")
        st = _read(os.path.join(gdir, "state.json"))
        due = st.get("next_due")
        opens = st.get("hours", {}).get("open")
        if opens is not None and (due is None or opens < due):
            due = opens
        out["digests"].append({"name": name, "to": list(g.to), "next_due": _when(due),
                               "open_mails": _lines(os.path.join(gdir, "bucket.jsonl")),
                               "sending_mails": _lines(os.path.join(gdir, "sending.jsonl"))})
    seen = _read(os.path.join(top, "expect-all", "state.json")).get("expect", {}).get("seen", {})
    for x in cfg.expects:
        hosts = seen.get(x.name, {})
        out["expectations"].append({"name": x.name, "every": x.every, "grace": x.grace, "hosts": [
            {"host": h, "last_seen": _when(rec.get("at")), "claimed": _when(rec.get("claimed")),
             "mail_id": rec.get("mail_id", ""), "missing": "missing" in rec.get("told", {}).values()}
            for h, rec in sorted(hosts.items())]})
    return out


def text(doc: dict[str, Any]) -> str:
    lines = [f"journal-mail forward status at {doc['time']} (state {doc['state_dir']})", "", "destinations:"]
    for d in doc["destinations"]:
        lines.append(f"  {d['name']}: {d['url']}, last success {d['last_success']}, {d['pending_retries']} "
                     f"waiting for a retry (next {d['next_retry']}), {d['repeat_groups']} repeat group(s) open "
                     f"holding {d['repeats_held']}")
    lines += ["", "silences:"]
    active = [s for s in doc["silences"] if s["active"]]
    for s in doc["silences"]:
        what = " ".join(f"{k}={v}" for k, v in s["match"])
        lines.append(f"  {s['id']}: {what} from {s['start']} until {s['end']}"
                     f"{'' if s['active'] else ' (not running)'}{': ' + s['comment'] if s['comment'] else ''}")
    if not doc["silences"]:
        lines.append("  (none)")
    lines += ["", "digests:"]
    for g in doc["digests"]:
        lines.append(f"  {g['name']}: next due {g['next_due']}, {g['open_mails']} mail(s) collected"
                     + (f", {g['sending_mails']} being sent" if g["sending_mails"] else "")
                     + f", to {', '.join(g['to'])}")
    lines += ["", "expectations:"]
    for x in doc["expectations"]:
        lines.append(f"  {x['name']}: every {x['every']:.0f} s, grace {x['grace']:.0f} s")
        for h in x["hosts"]:
            lines.append(f"    {h['host']}: last seen {h['last_seen']}" + (" MISSING" if h["missing"] else ""))
        if not x["hosts"]:
            lines.append("    (no host seen yet)")
    lines.append("")
    lines.append(f"{len(active)} silence(s) running")
    return "\n".join(lines) + "\n"


def _write(io: Io, s: str) -> None:
    io.out.write("\n".join(printable(x, one_line=True) for x in s.split("\n")).encode("utf-8", "replace"))
    io.out.flush()


def command(io: Io, cfg: Config, what: str, as_json: bool = False, match: tuple[str, ...] = (), duration: str = "",
            comment: str = "", sid: str = "", now: Callable[[], float] = time.time,
            log: Callable[..., None] | None = None) -> int:
    """``forward status`` (``what``: "status") and ``forward silence add|list|expire`` (``what``: which)."""
    if what == "status":
        doc = collect(cfg, now())
        _write(io, json.dumps(doc, ensure_ascii=False, indent=1) + "\n" if as_json else text(doc))
        return EX_OK
    if log is None:
        from .events import Events

        log = Events()
    top = cfg.state_dir
    if what == "add":
        pairs = silence.parse_match(match)
        os.makedirs(top, mode=0o700, exist_ok=True)
        check_dir(top)  # one another user could write is refused (73), as the service refuses it
        s = silence.add(top, pairs, duration, comment, now(), by=name_of(os.getuid()) or str(os.getuid()))
        log("silence-added", f"silence {s.id} ({s.describe()}) added until {_when(s.end)}"
            f"{': ' + s.comment if s.comment else ''}", silence=s.id)
        _write(io, f"{s.id}\n")
        return EX_OK
    if what == "expire":
        s2 = silence.expire(top, sid, now()) if os.path.isdir(top) and check_dir(top) else None
        if s2 is None:
            io.say(f"no silence {sid} running (journal-mail forward silence list)")
            return EX_NOINPUT
        log("silence-expired", f"silence {s2.id} ({s2.describe()}) ended by hand", silence=s2.id)
        return EX_OK
    if what == "list":
        doc = collect(cfg, now())
        if as_json:
            _write(io, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in doc["silences"]))
        else:
            _write(io, "".join(f"{s['id']}  {'running' if s['active'] else 'ended  '}  until {s['end']}  "
                               + " ".join(f"{k}={v}" for k, v in s["match"])
                               + (f"  # {s['comment']}" if s["comment"] else "") + "\n" for s in doc["silences"]))
        return EX_OK
    raise ConfigError(f"forward silence: unknown command {what!r}")
