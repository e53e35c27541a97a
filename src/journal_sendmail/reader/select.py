"""Select: a ``Query`` (which mail, from where, in what order, how many) and the mail it
selects, from the index when a current one answers, else by a scan of the journal.

The CLI, the web inbox and the forwarder build Queries; ``select`` is the one place
that chooses: ``query.mails`` for a local journal, ``query.central`` for a directory
or files (systemd-journal-remote's: each mail once, in the order of the senders'
clocks), ``indexed`` for either when the index is current.  The answers are the same.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import users
from ..errors import UsageError
from . import index, indexed, query, render
from .assemble import assemble, searchable_body
from .entry import MailEntry
from .errors import DamagedMail, NotFound
from .filters import Filters, make_filters
from .source import Journal, Source, open_reader, opener


@dataclass(frozen=True)
class Query:
    source: Source = field(default_factory=Source)
    filters: Filters = field(default_factory=Filters)
    lines: int | None = None  # only the newest that many (None: every one)
    reverse: bool = False  # newest first
    search: str | None = None  # the web's search (``?q=``): indexed.search_matches
    index: bool = True  # may the index answer (``--no-index``: never)
    raw: bool = False  # the entries with their raw bytes (the index keeps none)


@dataclass
class Selection:
    """The mail a Query selects, as it is read; ``late``: how many of a central journal's
    mails came after mail their senders stamped later (known before the first is given)."""

    entries: Iterator[MailEntry]
    late: int = 0

    def __iter__(self) -> Iterator[MailEntry]:
        return self.entries

    def close(self) -> None:
        """Done before the end: the index and readers it holds are closed now."""
        getattr(self.entries, "close", lambda: None)()


def resolved(q: Query, journal: Journal) -> Query:
    """``q`` with its ``--boot`` offsets and ids resolved against the journal."""
    if not q.filters.boots:
        return q
    try:
        boots = tuple(query.resolve_boot(journal, b) for b in q.filters.boots)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return replace(q, filters=replace(q.filters, boots=boots))


def body_of(source: Source) -> functools.partial[str]:
    """What ``--grep`` searches in a mail of ``source``: its readable body."""
    return functools.partial(_body, source)


def _body(source: Source, e: MailEntry) -> str:
    return searchable_body(e, opener(source))


def select(q: Query, journal: Journal) -> Selection:
    """The mail ``q`` selects; ``journal``: a reader on ``q.source`` for a scan."""
    found = _from_index(q) if q.index else None
    if found is not None:
        return found
    if q.search is not None:
        inner = select(replace(q, search=None), journal)
        return Selection(indexed.searched(inner, q.search, body_of(q.source)), inner.late)
    body = body_of(q.source) if q.filters.grep else None
    if not q.source.central:
        return Selection(query.mails(journal, q.filters, q.lines, q.reverse, body))
    late, entries = query.central(journal, q.filters, q.lines, q.reverse, body)
    return Selection(entries, late)


def _from_index(q: Query) -> Selection | None:
    """The index's answer, or None when there is no current index this user may read."""
    idx = index.open_for_reading(q.source)
    if idx is None:
        return None
    try:
        late, entries = indexed.mails(idx, q.source, q.filters, opener(q.source), q.lines, q.reverse,
                                      q.source.central, q.search)
    except index.IndexError_:
        idx.close()
        return None

    def gen() -> Iterator[MailEntry]:
        reader = open_reader(q.source) if q.raw else None
        try:
            for e in entries:
                if reader is not None and not e.raw and e.size:
                    again = reader.reread(e.cursor)  # None: vacuumed since (export says damaged)
                    if again is not None:
                        again.duplicates, e = e.duplicates, again
                yield e
        finally:
            idx.close()
            if reader is not None:
                reader.close()

    return Selection(gen(), late)


@dataclass
class Counts:
    """``stats``' answer: (group, mails, bytes) per key, unsorted; damaged mails not counted;
    the units the mails came from; a central journal's late mails."""

    rows: dict[str, list[tuple[str, int, int]]]
    damaged: int = 0
    units: set[str] = field(default_factory=set)
    late: int = 0


def counted(q: Query, keys: tuple[str, ...], journal: Journal) -> Counts:
    """The stats of every key of ``keys``: counted by the index in SQL when there is a
    current one, else in ONE pass over the mail for all keys."""
    out = Counts({})
    if q.index and (len(keys) == 1 or not q.source.central):
        for by in keys:
            found = _stats_from_index(q, by)
            if found is None:
                break
            out.rows[by], out.damaged, seen, out.late = found
            out.units |= seen
        else:
            return out
        out = Counts({})
    if q.source.central and (not q.index or not index.usable(q.source)):
        late, each = query.central_each(journal, q.filters, body_of(q.source) if q.filters.grep else None)
        _count(out, each, keys)
        out.late = late[0]  # one pass: the order does not matter to counts
    else:
        entries = select(q, journal)
        _count(out, entries, keys)
        out.late = entries.late
    return out


def _count(out: Counts, entries: Iterable[MailEntry], keys: tuple[str, ...]) -> None:
    acc: dict[str, dict[str, list[int]]] = {by: {} for by in keys}
    for e in entries:
        if e.damaged:
            out.damaged += 1
            continue
        out.units.update(u for u in (e.caller_unit, e.systemd_unit) if u)
        for by in keys:
            for k in render.stats_keys(e, by):
                slot = acc[by].setdefault(k, [0, 0])
                slot[0] += 1
                slot[1] += e.size
    out.rows = {by: [(k, c, b) for k, (c, b) in acc[by].items()] for by in keys}


def _stats_from_index(q: Query, by: str) -> tuple[list[tuple[str, int, int]], int, set[str], int] | None:
    """The stats counted by the index in SQL (None: no index, or a filter that needs each mail)."""
    idx = index.open_for_reading(q.source)
    if idx is None:
        return None
    try:
        return indexed.stats(idx, q.source, q.filters, opener(q.source), by)
    except index.IndexError_:
        return None
    finally:
        idx.close()


def whole(e: MailEntry, source: Source) -> bytes:
    """The complete raw message; DamagedMail if it cannot be given back exactly."""
    return assemble(e, opener(source))


def find(given: Mapping[str, Any], mail_id: str, reader: Journal) -> MailEntry:
    """The mail ``mail_id`` (or a unique prefix of it) names, from one sender.

    A MAIL_ID that entries of several senders carry (a forged twin: MAIL_IDs
    are random) names no mail until --uid, --user or --host picks one.
    """
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", mail_id):
        raise UsageError(f"{mail_id!r} is not a MAIL_ID (32 hexadecimal digits, or a prefix of one)")
    found = list(query.mails(reader, make_filters(given, [mail_id])))
    if not found:
        raise NotFound(f"no mail {mail_id} in the journal")
    if len({e.mail_id for e in found}) > 1:
        raise UsageError(f"{mail_id} is the start of {len(found)} MAIL_IDs; give more of it")
    senders = list(dict.fromkeys(e.sender for e in found))
    if len(senders) > 1:
        who = "; ".join(_sender_text(s) for s in senders)
        raise DamagedMail(found[0].mail_id, f"{len(senders)} senders wrote entries with this MAIL_ID ({who}), so all "
                          "but one are forged: pick one with --uid, --user or --host")
    return found[-1]


def _sender_text(sender: tuple[int | None, str, str]) -> str:
    uid, host, boot = sender
    name = users.name_of(uid)
    return f"uid {uid}{f' ({name})' if name else ''} on {host or '?'}, boot {boot[:8] or '?'}"
