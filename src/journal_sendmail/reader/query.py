"""Query: find the mail in the journal, in order, once each (a scan: ``select`` picks it
or the index).  Filters the journal can evaluate are given to it as matches; the
rest are looked at here (``filters.wanted``).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..schema import MSG_JOURNAL_DROPPED, MSG_MAIL, copy_key
from .entry import SIZE_MAX, MailEntry, Sender, _text, count, first_value, to_entry
from .errors import NotFound
from .filters import Filters, wanted
from .source import Journal
from .timespec import US

T = TypeVar("T")


def boot_ids(reader: Journal) -> list[str]:
    """Boot ids that have mail, oldest first (by their first mail)."""
    first: list[tuple[int, str]] = []
    for raw in reader.unique("_BOOT_ID"):
        boot = _text(raw)
        reader.match(f"MESSAGE_ID={MSG_MAIL}", f"_BOOT_ID={boot}")
        reader.head()
        if reader.next():
            first.append((reader.realtime(), boot))
    reader.match()
    return [b for _, b in sorted(first)]


def resolve_boot(reader: Journal, spec: str) -> str:
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


def mails(
    reader: Journal,
    filters: Filters,
    lines: int | None = None,
    reverse: bool = False,
    body: Callable[[MailEntry], str] | None = None,
) -> Iterator[MailEntry]:
    """The mail matching ``filters``, oldest first (newest first with ``reverse``).

    ``lines``: only the newest that many.  ``body`` gives the text ``--grep``
    searches (the stored MAIL_TEXT or the decoded raw message).
    """
    reader.match(*filters.matches())
    if lines is None and not reverse:
        yield from _scan(reader, filters, body, forward=True)
        return
    yield from newest(_scan(reader, filters, body, forward=False), lines, reverse)


def newest(entries: Iterable[T], lines: int | None, reverse: bool) -> Iterator[T]:
    """Of ``entries`` newest first, the newest ``lines`` (None: all), oldest first unless ``reverse``."""
    if lines is None:
        yield from entries
        return
    chosen = list(itertools.islice(entries, lines))
    yield from chosen if reverse else reversed(chosen)


def _scan(reader: Journal, filters: Filters, body: Callable[[MailEntry], str] | None,
          forward: bool) -> Iterator[MailEntry]:
    since, until = filters.since, filters.until
    if forward:
        reader.seek_time(since) if since is not None else reader.head()
    else:
        reader.seek_time(until + 1) if until is not None else reader.tail()
    for t in reader.steps(forward):
        if until is not None and t > until:
            if forward:
                return
            continue
        if since is not None and t < since:
            if forward:
                continue
            return
        e = reader.entry(t)
        if wanted(e, filters, body):
            yield e


FOLLOW_MEMORY = 10_000


def follow(
    reader: Journal,
    filters: Filters,
    cursor: str | None,
    lines: int | None,
    body: Callable[[MailEntry], str] | None = None,
    timeout: float = 1.0,
) -> Iterator[MailEntry | None]:
    """Mail as it arrives, forever; None after each wait with nothing new.

    Starts after ``cursor`` when given, else with the newest ``lines`` mails
    (``None``: every mail, or every one since ``filters.since``).  New journal
    files (rotation) are picked up by ``wait()``.  A MAIL_ID from the same
    sender among the last ``FOLLOW_MEMORY`` given out is not given again: journal-upload sends the
    entry at its saved cursor once more when it restarts, so a central
    journal can hold a mail twice, the copies close together.
    """
    reader.match(*filters.matches())
    recent: dict[tuple[str, Sender], None] = {}  # (MAIL_ID, sender) given out, oldest first
    pending = False  # is the reader on an entry not yet given out?
    if cursor:
        reader.seek_cursor(cursor)
        pending = reader.next() and not reader.at(cursor)
    elif lines is None:
        reader.seek_time(filters.since) if filters.since is not None else reader.head()
    else:
        reader.tail()
        back = 0
        while back < max(lines, 1) and reader.previous():
            back += 1
        pending = lines > 0 and back > 0
    while True:
        while pending or reader.next():
            pending = False
            t = reader.realtime()
            if filters.since is not None and t < filters.since:
                continue
            if filters.until is not None and t > filters.until:
                continue
            e = reader.entry(t)
            key = (e.mail_id, e.sender)
            if (e.mail_id and key in recent) or not wanted(e, filters, body):
                continue
            recent[key] = None
            if len(recent) > FOLLOW_MEMORY:
                del recent[next(iter(recent))]
            yield e
        yield None
        try:
            reader.wait(int(timeout * US))
        except InterruptedError:
            pass


def central(
    reader: Journal,
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
    entry's time, both stamped on the sending host), then of the entry's time,
    its boot and monotonic time, its sequence id and number (the cursor's
    ``b``, ``m``, ``s`` and ``i``); a mail's
    place and entry are its least copy's.  A total order, so the index merges
    it lazily (indexed.central_order).  Returns how many mails are late (their
    sender stamped them before a mail that came earlier in the same sequence:
    one host's file), and the mails.  Reads the journal twice, so that only
    (order, copy key, cursor) of every mail is held at once.
    """
    since, until = filters.since, filters.until
    reader.match(*filters.matches())
    reader.head()  # not seek_time: the entries are in the order they arrived, not in time order
    first: dict[str, tuple[tuple[int, int, str, int, str, int], str, bool]] = {}  # copy key -> (order, cursor, late)
    copies: dict[str, int] = {}
    highest: dict[str, int] = {}  # the latest stamp of a mail in each sequence so far
    get = reader.get
    for t in reader.steps():
        if (since is not None and t < since) or (until is not None and t > until):
            continue
        cursor = reader.cursor()
        order, late, key = _place(get, cursor, t, highest)
        got = first.get(key)
        if got is not None:
            copies[key] = copies.get(key, 0) + 1
        if got is None or order < got[0]:
            first[key] = (order, cursor, late)
    late_mails = sum(1 for _, _, is_late in first.values() if is_late)
    ordered = sorted((order, cursor) for order, cursor, _ in first.values())

    def fetch(cursor: str) -> MailEntry | None:
        e = reader.reread(cursor)
        if e is None:
            return None
        e.duplicates = copies.get(copy_key(get, cursor), 0)
        return e if wanted(e, filters, body) else None

    if lines is None and not reverse:
        return late_mails, filter(None, map(fetch, (c for _, c in ordered)))
    return late_mails, newest(filter(None, map(fetch, (c for _, c in reversed(ordered)))), lines, reverse)


def central_each(reader: Journal, filters: Filters,
                 body: Callable[[MailEntry], str] | None = None) -> tuple[list[int], Iterator[MailEntry]]:
    """What ``central`` gives, each mail once, in the order read: one pass, for counting
    (``stats``).  The list holds ``central``'s late count once the mails are all read."""
    since, until = filters.since, filters.until
    late = [0]

    def gen() -> Iterator[MailEntry]:
        reader.match(*filters.matches())
        reader.head()
        first: dict[str, tuple[tuple[int, int, str, int, str, int], bool]] = {}
        highest: dict[str, int] = {}
        for t in reader.steps():
            if (since is not None and t < since) or (until is not None and t > until):
                continue
            d, cursor = reader.fields(), reader.cursor()
            order, is_late, key = _place(functools.partial(first_value, d), cursor, t, highest)
            got = first.get(key)
            if got is None or order < got[0]:
                first[key] = (order, is_late)
            if got is None:
                e = to_entry(d, t, cursor)
                if wanted(e, filters, body):
                    yield e
        late[0] = sum(1 for _, is_late in first.values() if is_late)

    return late, gen()


def _place(get: Callable[[str], bytes | None], cursor: str, t: int,
           highest: dict[str, int]) -> tuple[tuple[int, int, str, int, str, int], bool, str]:
    """An entry's place in a central journal's order (``central``), whether it is late (``highest``:
    the latest stamp of a mail in each sequence so far, updated), and its copy key."""
    s, i, b, m = cursor.split(";", 4)[:4]
    sent = count(get("_SOURCE_REALTIME_TIMESTAMP"), SIZE_MAX) or t
    late = sent < highest.get(s, 0)
    if get("MESSAGE_ID") == _MAIL:
        highest[s] = max(highest.get(s, 0), sent)
    return (sent, t, b[2:], int(m[2:], 16), s[2:], int(i[2:], 16)), late, copy_key(get, cursor)


_MAIL = MSG_MAIL.encode()


# -- journald's word on mail it dropped -----------------------------------------------

_SUPPRESSED = re.compile(rb"Suppressed (\d+) messages from (\S+)")


@dataclass(frozen=True)
class Suppressed:
    """journald's rate limit dropped messages (mail among them, maybe) from a unit."""

    realtime: int
    hostname: str
    unit: str
    dropped: int


def suppressed(reader: Journal, since: int | None, until: int | None) -> Iterator[Suppressed]:
    """journald's "Suppressed N messages from UNIT" entries between ``since`` and ``until``.

    Only journald's own (``_TRANSPORT=driver``, a trusted field): anyone can
    write the message id, and a forged note must not cry wolf.
    """
    reader.match(f"MESSAGE_ID={MSG_JOURNAL_DROPPED}", "_TRANSPORT=driver")
    reader.seek_time(since) if since is not None else reader.head()
    for t in reader.steps():
        if until is not None and t > until:
            continue
        m = _SUPPRESSED.fullmatch(reader.get("MESSAGE") or b"")
        if m is not None:
            yield Suppressed(t, _text(reader.get("_HOSTNAME")), m.group(2).decode("utf-8", "replace"),
                             int(m.group(1)))
