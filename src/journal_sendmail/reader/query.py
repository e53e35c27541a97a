"""Query: find the mail in the journal, in order, once each.

Reads with python-systemd's low-level ``_Reader`` (``_next()``/``_get_all()``,
twice as fast as ``systemd.journal.Reader``'s converters, and without its
~16 ms import).  Filters the journal can evaluate are given to it as
matches; the rest are looked at here (``filters.wanted``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import NotFound
from ..record import MSG_MAIL, PART_SIZE_MAX
from .entry import SIZE_MAX, MailEntry, Sender, _text, count, to_entry
from .fields import entry_fields
from .filters import Filters, wanted
from .timespec import US

LOCAL_ONLY = 1  # SD_JOURNAL_LOCAL_ONLY
DATA_THRESHOLD = PART_SIZE_MAX + len("MAIL_RAW=") + 1  # a MAIL_RAW one byte too long is seen as such


@dataclass(frozen=True)
class Source:
    """Where to read: the local journal (all empty), a directory, files or a namespace."""

    directory: str | None = None
    files: tuple[str, ...] = ()
    namespace: str | None = None


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
    # No field of ours is longer than a part (MAIL_RAW, at most PART_SIZE_MAX): a longer
    # one is forged, and entry.py calls it damaged and drops it before anything keeps it.
    # Where libsystemd honours the threshold it is read only that far; bookworm's 252
    # (measured) reads it whole all the same: one such field at a time, never more.
    # The default would cut MAIL_RAW at 64 KiB.
    r.data_threshold = DATA_THRESHOLD
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
            names = os.listdir(d)  # in the directory's order, as sd-journal adds them (it matters for ties)
        except OSError:
            continue
        out += [os.path.join(d, n) for n in names if n.endswith((".journal", ".journal~"))]
    return out


def readability(source: Source, access: Callable[[str], bool] | None = None) -> tuple[list[str], list[str]]:
    """(readable, unreadable) journal files of ``source`` for this process."""
    can = access or (lambda p: os.access(p, os.R_OK))
    files = [f for f in journal_files(source) if os.path.exists(f)]
    return [f for f in files if can(f)], [f for f in files if not can(f)]


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
    get_realtime, get_cursor = reader._get_realtime, reader._get_cursor
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
        e = to_entry(entry_fields(reader), t, get_cursor())
        if wanted(e, filters, body):
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
    files (rotation) are picked up by ``wait()``.  A MAIL_ID from the same
    sender among the last ``FOLLOW_MEMORY`` given out is not given again: journal-upload sends the
    entry at its saved cursor once more when it restarts, so a central
    journal can hold a mail twice, the copies close together.
    """
    get_body = body or (lambda e: e.text or "")
    apply_matches(reader, filters)
    recent: dict[tuple[str, Sender], None] = {}  # (MAIL_ID, sender) given out, oldest first
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
            e = to_entry(entry_fields(reader), t, reader._get_cursor())
            key = (e.mail_id, e.sender)
            if (e.mail_id and key in recent) or not wanted(e, filters, get_body):
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
    entry's time, both stamped on the sending host), then of the entry's time,
    its boot and monotonic time, its sequence id and number (the cursor's
    ``b``, ``m``, ``s`` and ``i``); a mail's
    place and entry are its least copy's.  A total order, so the index merges
    it lazily (indexed.central_order).  Returns how many mails are late (their
    sender stamped them before a mail that came earlier in the same sequence:
    one host's file), and the mails.  Reads the journal twice, so that only
    (order, copy key, cursor) of every mail is held at once.
    """
    get_body = body or (lambda e: e.text or "")
    since, until = filters.since, filters.until
    apply_matches(reader, filters)
    reader.seek_head()  # not seek_realtime: the entries are in the order they arrived, not in time order
    first: dict[bytes, tuple[tuple[int, int, str, int, str, int], str, bool]] = {}  # copy key -> (order, cursor, late)
    copies: dict[bytes, int] = {}
    highest: dict[str, int] = {}  # the latest stamp of a mail in each sequence so far
    while reader._next(1):
        t = reader._get_realtime()
        if (since is not None and t < since) or (until is not None and t > until):
            continue
        cursor = reader._get_cursor()
        s, i, b, m = cursor.split(";", 4)[:4]
        sent = count(_field(reader, "_SOURCE_REALTIME_TIMESTAMP"), SIZE_MAX) or t
        late = sent < highest.get(s, 0)
        if _field(reader, "MESSAGE_ID") == MSG_MAIL.encode():
            highest[s] = max(highest.get(s, 0), sent)
        order = (sent, t, b[2:], int(m[2:], 16), s[2:], int(i[2:], 16))
        key = _copy_key(reader, cursor)
        got = first.get(key)
        if got is not None:
            copies[key] = copies.get(key, 0) + 1
        if got is None or order < got[0]:
            first[key] = (order, cursor, late)
    late_mails = sum(1 for _, _, is_late in first.values() if is_late)
    ordered = sorted((order, cursor) for order, cursor, _ in first.values())

    def fetch(cursor: str) -> MailEntry | None:
        reader.seek_cursor(cursor)
        if not reader._next(1) or not reader.test_cursor(cursor):
            return None
        e = to_entry(entry_fields(reader), reader._get_realtime(), cursor)
        e.duplicates = copies.get(_copy_key(reader, cursor), 0)
        return e if wanted(e, filters, get_body) else None

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

    return late_mails, gen()


def central_each(reader: Any, filters: Filters,
                 body: Callable[[MailEntry], str] | None = None) -> tuple[list[int], Iterator[MailEntry]]:
    """What ``central`` gives, each mail once, in the order read: one pass, for counting
    (``stats``).  The list holds ``central``'s late count once the mails are all read."""
    get_body = body or (lambda e: e.text or "")
    since, until = filters.since, filters.until
    late = [0]

    def gen() -> Iterator[MailEntry]:
        apply_matches(reader, filters)
        reader.seek_head()
        first: dict[bytes, tuple[tuple[int, int, str, int, str, int], bool]] = {}
        highest: dict[str, int] = {}
        mail = MSG_MAIL.encode()
        while reader._next(1):
            t = reader._get_realtime()
            if (since is not None and t < since) or (until is not None and t > until):
                continue
            d, cursor = entry_fields(reader), reader._get_cursor()
            s, i, b, m = cursor.split(";", 4)[:4]
            sent = count(_one(d.get("_SOURCE_REALTIME_TIMESTAMP")), SIZE_MAX) or t
            is_late = sent < highest.get(s, 0)
            if _one(d.get("MESSAGE_ID")) == mail:
                highest[s] = max(highest.get(s, 0), sent)
            order = (sent, t, b[2:], int(m[2:], 16), s[2:], int(i[2:], 16))
            mail_id = _one(d.get("MAIL_ID"))
            key = b"\0".join([mail_id, *(_one(d.get(n)) or b"" for n in ("_UID", "_HOSTNAME", "_BOOT_ID"))]) \
                if mail_id else cursor.encode()
            got = first.get(key)
            if got is None or order < got[0]:
                first[key] = (order, is_late)
            if got is None:
                e = to_entry(d, t, cursor)
                if wanted(e, filters, get_body):
                    yield e
        late[0] = sum(1 for _, is_late in first.values() if is_late)

    return late, gen()


def _one(v: Any) -> bytes | None:
    return v[0] if isinstance(v, list) else v  # type: ignore[no-any-return]


def _copy_key(reader: Any, cursor: str) -> bytes:
    """What makes two entries copies of one mail: the same MAIL_ID from the same
    sender (journald's _UID, _HOSTNAME, _BOOT_ID).  The same MAIL_ID from
    another sender is another mail (a forged twin), never a duplicate."""
    mail_id = _field(reader, "MAIL_ID")
    if not mail_id:
        return cursor.encode()
    return b"\0".join([mail_id, *(_field(reader, name) or b"" for name in ("_UID", "_HOSTNAME", "_BOOT_ID"))])


def _field(reader: Any, name: str) -> bytes | None:
    try:
        return reader._get(name)  # type: ignore[no-any-return]
    except KeyError:
        return None


# -- journald's word on mail it dropped -----------------------------------------------

MSG_SUPPRESSED = "a596d6fe7bfa4994828e72309e95d61e"  # systemd's SD_MESSAGE_JOURNAL_DROPPED
_SUPPRESSED = re.compile(rb"Suppressed (\d+) messages from (\S+)")


@dataclass(frozen=True)
class Suppressed:
    """journald's rate limit dropped messages (mail among them, maybe) from a unit."""

    realtime: int
    hostname: str
    unit: str
    dropped: int


def suppressed(reader: Any, since: int | None, until: int | None) -> Iterator[Suppressed]:
    """journald's "Suppressed N messages from UNIT" entries between ``since`` and ``until``.

    Only journald's own (``_TRANSPORT=driver``, a trusted field): anyone can
    write the message id, and a forged note must not cry wolf.
    """
    reader.flush_matches()
    reader.add_match(f"MESSAGE_ID={MSG_SUPPRESSED}".encode())
    reader.add_match(b"_TRANSPORT=driver")
    reader.seek_realtime(since) if since is not None else reader.seek_head()
    while reader._next(1):
        t = reader._get_realtime()
        if until is not None and t > until:
            continue
        m = _SUPPRESSED.fullmatch(_field(reader, "MESSAGE") or b"")
        if m is not None:
            yield Suppressed(t, _text(_field(reader, "_HOSTNAME")), m.group(2).decode("utf-8", "replace"),
                             int(m.group(1)))
