"""Decided: what the forwarder did with a mail, and which silences run, read back from its own journal
entries (MESSAGE_ID cda5a936…), for the web inbox.

Only entries that journald says the forwarder wrote count: ``_SYSTEMD_UNIT`` is
journal-mail-forward.service, or ``_UID`` is 0 (root running it by hand).  Any
local user can write an entry with that MESSAGE_ID and any MAIL_ID; it is not
shown as the forwarder's word.  The entries are in the journal the forwarder
logs to (the local one), also when the inbox reads a log host's directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...schema import MSG_FORWARD
from ..source import Journal

UNIT = "journal-mail-forward.service"
MAX_EVENTS = 200  # per mail, the newest: a mail retried for a day has about 30
WHAT = {"delivered": "sent", "retried": "retried", "gave-up": "given up", "held": "held into a digest",
        "silenced": "silenced", "repeat-counted": "counted as a repeat", "collected": "collected into a digest"}


@dataclass(frozen=True)
class Event:
    time: int  # µs, journald's
    event: str
    message: str
    destination: str = ""
    rule: str = ""
    silence: str = ""
    until: str = ""  # a silence's end, as the forwarder logged it at its start (RFC 3339)


def _text(d: dict[str, Any], name: str) -> str:
    v = d.get(name)
    if isinstance(v, list):
        v = v[0] if v else b""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))


def trusted(d: dict[str, Any]) -> bool:
    """Did the forwarder write this entry, by journald's word?"""
    return _text(d, "_SYSTEMD_UNIT") == UNIT or _text(d, "_UID") == "0"


def _events(reader: Journal, matches: list[bytes], limit: int) -> list[Event]:
    reader.match(f"MESSAGE_ID={MSG_FORWARD}".encode(), *matches)
    reader.tail()
    out: list[Event] = []
    while len(out) < limit and reader.previous():
        d = reader.fields()
        if not trusted(d):
            continue
        out.append(Event(reader.realtime(), _text(d, "FORWARD_EVENT"), _text(d, "MESSAGE"),
                         _text(d, "FORWARD_DESTINATION"), _text(d, "FORWARD_RULE"), _text(d, "FORWARD_SILENCE"),
                         _text(d, "FORWARD_UNTIL")))
    return out[::-1]


def for_mail(reader: Journal, mail_id: str) -> list[Event]:
    """The forwarder's entries about mail ``mail_id``, oldest first."""
    return _events(reader, [b"MAIL_ID=" + mail_id.encode("ascii", "replace")], MAX_EVENTS)


def running_silences(reader: Journal, now: str) -> list[Event]:
    """The silences the forwarder logged as started and not as ended, whose end (RFC 3339, as ``now``)
    is still to come, each as its start entry."""
    started: dict[str, Event] = {}
    for e in _events(reader, [b"FORWARD_EVENT=silence-start", b"FORWARD_EVENT=silence-end"], 10_000):
        if e.event == "silence-start" and e.silence:
            started[e.silence] = e
        elif e.event == "silence-end":
            started.pop(e.silence, None)
    return [e for e in started.values() if e.until > now]
