"""Source: the mail of each sending host after that host's cursor.

A log host's journal (systemd-journal-remote's files) holds hosts whose
clocks disagree and that upload late: one cursor for everything would skip
an entry uploaded after newer ones from other hosts.  So every consumer keeps
a cursor per host (``_HOSTNAME``) and reads each host's entries, matched by
the journal, in that host's own order.  A cursor whose entry was vacuumed
lands on the next entry (``test_cursor`` says so): a gap, reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from ...record import MSG_MAIL, MSG_REFUSED
from ..entry import to_entry
from ..fields import entry_fields
from .rules import Mail

_FORWARDED = re.compile(rb"(?im)^x-journal-mail-forwarded[ \t]*:")


def hosts(reader: Any) -> list[str]:
    """Every host that has entries in the journal."""
    reader.flush_matches()
    return sorted({bytes(h).decode("utf-8", "surrogateescape") for h in reader.query_unique("_HOSTNAME")})


def _match(reader: Any, host: str) -> None:
    reader.flush_matches()
    reader.add_match(f"MESSAGE_ID={MSG_MAIL}".encode())
    reader.add_match(f"MESSAGE_ID={MSG_REFUSED}".encode())
    reader.add_match(b"_HOSTNAME=" + host.encode("utf-8", "surrogateescape"))


def last_cursor(reader: Any, host: str) -> str | None:
    """The cursor of the newest mail of ``host`` (where ``start = "now"`` begins)."""
    _match(reader, host)
    reader.seek_tail()
    return reader._get_cursor() if reader._previous(1) else None  # type: ignore[no-any-return]


def forwarded(raw: bytes) -> bool:
    """Does the header block carry X-Journal-Mail-Forwarded (a mail we sent, come back)?

    >>> forwarded(b"Subject: x\\nX-Journal-Mail-Forwarded: ab\\n\\nbody")
    True
    >>> forwarded(b"Subject: x\\n\\nX-Journal-Mail-Forwarded: 1")
    False
    """
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\r\n\r\n")
    cut = min(x for x in (end, end2, len(raw)) if x >= 0)
    return _FORWARDED.search(raw, 0, cut) is not None


def scan(reader: Any, host: str, cursor: str | None, on_gap: Callable[[str], None]) -> Iterator[Mail]:
    """The mail of ``host`` after ``cursor`` (all of it without one), oldest first in the host's order."""
    _match(reader, host)
    pending = False
    if cursor:
        try:
            reader.seek_cursor(cursor)
        except (OSError, ValueError):
            on_gap(f"cursor of host {host} is not a journal cursor; reading that host from the start")
            reader.seek_head()
        else:
            if not reader._next(1):
                return
            if not reader.test_cursor(cursor):
                on_gap(f"the entry at host {host}'s cursor is gone (vacuumed or rotated away): mail between it "
                       "and the next one may have been lost")
                pending = True
    else:
        reader.seek_head()
    while pending or reader._next(1):
        pending = False
        d = entry_fields(reader)
        e = to_entry(d, reader._get_realtime(), reader._get_cursor())
        yield Mail(e, e.unit, forwarded(e.raw))
