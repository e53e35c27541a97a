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

from ...schema import MSG_MAIL, MSG_REFUSED
from ..source import Journal
from .rules import Mail

_FORWARDED = re.compile(rb"(?im)^x-journal-mail-forwarded[ \t]*:")


def hosts(reader: Journal) -> list[str]:
    """Every host that has entries in the journal."""
    reader.match()
    return sorted({bytes(h).decode("utf-8", "surrogateescape") for h in reader.unique("_HOSTNAME")})


def _match(reader: Journal, host: str) -> None:
    reader.match(f"MESSAGE_ID={MSG_MAIL}", f"MESSAGE_ID={MSG_REFUSED}", f"_HOSTNAME={host}")


def last_cursor(reader: Journal, host: str) -> str | None:
    """The cursor of the newest mail of ``host`` (where ``start = "now"`` begins)."""
    _match(reader, host)
    reader.tail()
    return reader.cursor() if reader.previous() else None


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


def scan(reader: Journal, host: str, cursor: str | None, on_gap: Callable[[str], None]) -> Iterator[Mail]:
    """The mail of ``host`` after ``cursor`` (all of it without one), oldest first in the host's order."""
    _match(reader, host)
    pending = False
    if cursor:
        try:
            reader.seek_cursor(cursor)
        except (OSError, ValueError):
            on_gap(f"cursor of host {host} is not a journal cursor; reading that host from the start")
            reader.head()
        else:
            if not reader.next():
                return
            if not reader.at(cursor):
                on_gap(f"the entry at host {host}'s cursor is gone (vacuumed or rotated away): mail between it "
                       "and the next one may have been lost")
                pending = True
    else:
        reader.head()
    while pending or reader.next():
        pending = False
        e = reader.entry()
        yield Mail(e, forwarded(e.raw))
