"""Indexed: the answers of ``list``, ``stats`` and ``export`` from the mail index.

The index (index.py) answers for what it holds; what the journal has after
its cursors is read from the journal here, and everything is put back in
the order a scan gives, so the answers are the scan's (see index.py).
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..schema import copy_key
from ..users import name_of
from .assemble import searchable_body
from .attrs import BY_STATS, LIST_FILTERS
from .entry import SIZE_MAX, MailEntry, count
from .filters import Filters, wanted
from .index import (
    MASK,
    ORDER,
    QUARTER,
    Index,
    IndexError_,
    JFile,
    current_files,
    distinct,
    entry_from,
    file_reader,
    parse_cursor,
    search_fields,
)
from .query import newest
from .source import Journal, Source


@dataclass
class Row:
    """A candidate mail: from the index, or read from the journal after the index's cursor."""

    key: tuple[str, int, str, int, int, int]  # seqnum_id, seqnum, boot, monotonic, realtime, xor
    sent: int
    copy_key: str
    entry: MailEntry
    body: str | None  # the stored body when complete (None: read it from the journal)
    id: int = 0  # the index's row (0: read from the journal)
    rank: int = 0  # its file's place in sd-journal's list of files: the first of two equal entries wins
    pos: int = 0  # its place in its file
    copies: int = 0  # a central journal's other entries of this mail (index: its ``copies``)
    late: bool = False
    first: int = 1  # index.py's ``first``: 2 when the same entry is in two files


def central_order(r: Row) -> tuple[int, int, str, int, str, int]:
    """A central journal's order: by the sender's stamp, then the entry's time, its boot and
    monotonic time, its sequence (one host's file and its archives) and place in it: a total
    order, so the index gives it lazily and the scan (query.central) sorts by the same."""
    return r.sent, r.key[4], r.key[2], r.key[3], r.key[0], r.key[1]


def _compare(a: Row, b: Row) -> int:
    """sd-journal's order of two entries (journal_file_compare_locations)."""
    (sa, ia, ba, ma, ta, xa), (sb, ib, bb, mb, tb, xb) = a.key, b.key
    if sa == sb and ia != ib:
        return -1 if ia < ib else 1
    if ba == bb and ma != mb:
        return -1 if ma < mb else 1
    if ta != tb:
        return -1 if ta < tb else 1
    return (xa > xb) - (xa < xb)


def journal_order(rows: list[Row]) -> list[Row]:
    """``rows`` in the order sd-journal gives them, each entry once.

    Within one sequence (a local journal) that is the sequence number's.
    Across sequences (journal-remote's files) sd-journal merges its files:
    each step it takes, of every file's next entry beyond the last one given,
    the least (journal_file_compare_locations; the first file it lists wins a
    tie), and an entry it holds equal to the last one given (the same entry
    written into two files) is passed over.  That comparison is not a total
    order, so this merges the same way rather than sorting.
    """
    if len({r.key[0] for r in rows}) <= 1:
        return list(_once(sorted(rows, key=lambda r: (r.key[1], r.rank))))
    files: dict[int, list[Row]] = {}
    for r in rows:
        files.setdefault(r.rank, []).append(r)
    lists = [sorted(files[rank], key=lambda r: r.pos) for rank in sorted(files)]
    heads = [0] * len(lists)
    out: list[Row] = []
    last: Row | None = None
    while True:
        best = -1
        for n, entries in enumerate(lists):
            i = heads[n]
            while last is not None and i < len(entries) and _compare(entries[i], last) <= 0:
                i += 1
            heads[n] = i
            if i < len(entries) and (best < 0 or _compare(entries[i], lists[best][heads[best]]) < 0):
                best = n
        if best < 0:
            return out
        last = lists[best][heads[best]]
        out.append(last)
        heads[best] += 1


def _once(rows: Iterable[Row]) -> Iterator[Row]:
    """Rows of one sequence in order, an entry held twice (two files) given once."""
    last: Row | None = None
    for r in rows:
        if last is None or _compare(last, r) != 0:
            yield r
        last = r


def required_literal(pattern: re.Pattern[str]) -> str | None:
    """The longest run of literal characters every match of ``pattern`` contains
    (ASCII, at least 3: what the trigram index can look up), or None.

    >>> required_literal(re.compile("DegradedArray")), required_literal(re.compile(r"disk (sda|sdb) full"))
    ('DegradedArray', 'disk ')
    >>> required_literal(re.compile("a|bcdef")), required_literal(re.compile("ab.d"))
    (None, None)
    """
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None
    best, run = "", ""
    for op, av in [*list(parsed), (None, None)]:
        if op is _parser.LITERAL and 0 < av < 128 and chr(av) not in "%_":  # LIKE's own characters
            run += chr(av)
            continue
        if len(run) > len(best):
            best = run
        run = ""
    return best if len(best) >= 3 else None


class Answer:
    """The index's answer to one query, merged with the journal's tail."""

    def __init__(self, idx: Index, source: Source, filters: Filters, open_parts: Callable[[], Journal],
                 search: str | None = None) -> None:
        self.idx, self.source, self.filters, self.open_parts = idx, source, filters, open_parts
        self.search = search
        self.dense: bool | None = None  # does the search find DENSE mails or more?
        now = current_files(source)
        files = {(f.dev, f.ino, f.file_id): f for f in now}
        self.order = order = {(f.dev, f.ino, f.file_id): n for n, f in enumerate(now)}
        self.rank: dict[int, int] = {}  # index file id -> place among the files now
        self.live: list[int] = []  # index file ids still there
        self.all_live = True  # no indexed file vacuumed (and not yet pruned)
        self.tails: list[tuple[JFile, str | None, int]] = []  # (file, cursor, pos) to read from the journal
        seen = set()
        for fid, dev, ino, file_id, n_entries, cursor, pos in idx.db.execute(
                "SELECT id, dev, ino, file_id, n_entries, cursor, pos FROM files"):
            f = files.get((dev, ino, file_id))
            if f is None:
                self.all_live = False
                continue  # vacuumed: never shown
            seen.add((dev, ino, file_id))
            self.live.append(fid)
            self.rank[fid] = order[(dev, ino, file_id)]
            if f.n_entries < n_entries:
                raise IndexError_(f"{f.path} has fewer entries than were indexed")
            if f.n_entries > n_entries:
                self.tails.append((f, cursor, pos))
        for key, f in files.items():
            if key not in seen:
                self.tails.append((f, None, 0))

    def _where(self, text: bool = True) -> tuple[str, list[Any]]:
        f = self.filters
        sql = [] if self.all_live else [f"m.file IN ({','.join(map(str, self.live)) or 'NULL'})"]
        args: list[Any] = []
        sql.append("m.kind IN ('mail', 'refused')" if f.refused else "m.kind = 'mail'")

        def among(column: str, values: Iterable[Any]) -> None:
            vals = list(values)
            if vals:
                sql.append(f"{column} IN ({','.join('?' * len(vals))})")
                args.extend(vals)

        if f.since is not None:
            sql.append("m.realtime >= ?")
            args.append(f.since)
        if f.until is not None:
            sql.append("m.realtime <= ?")
            args.append(f.until)
        if f.recipients:
            marks = ",".join("?" * len(f.recipients))
            sql.append(f"m.id IN (SELECT mail FROM rcpt WHERE how & 1 AND addr IN ({marks}))")
            args.extend(f.recipients)
        for a in {a.filter: a for a in LIST_FILTERS if a.column}.values():  # the attribute table's columns
            among(a.column, getattr(f, a.filter))
        among("m.boot_id", f.boots)
        if f.spooled:
            sql.append("m.spooled = 1")
        ids = [i for i in f.mail_ids]
        if ids:
            sql.append("(" + " OR ".join("m.mail_id LIKE ?" for _ in ids) + ")")
            args.extend(i.replace("%", "").replace("_", "") + "%" for i in ids)
        for q, like in self._text_sets() if text else ():
            sql.append(f"m.id IN ({q})")
            args.append(like)
        if text and _searchable(self.search):
            words = [_phrase(self.search)] * 3
            if self.dense is None:  # a word in many mails: looked up row by row, in order, until a page is full
                found = self.idx.db.execute(f"SELECT 1 FROM ({_SEARCH}) LIMIT {DENSE}", words).fetchall()
                self.dense = len(found) >= DENSE
            sql.append("(m.body_complete = 0 OR EXISTS (SELECT 1 FROM fts WHERE fts.rowid = m.id AND (fts.subject "
                       "LIKE ? OR fts.body LIKE ? OR fts.who LIKE ?)))" if self.dense else f"m.id IN ({_SEARCH})")
            args.extend(words)
        return " AND ".join(sql), args

    def _text_sets(self) -> list[tuple[str, str]]:
        """(query of the rows it can match, its LIKE) for ``--subject`` and ``-g``, by the longest literal
        their regular expression requires; a body longer than the index keeps is looked at whole."""
        out = []
        for column, pattern in (("subject", self.filters.subject), ("body", self.filters.grep)):
            literal = required_literal(pattern) if pattern is not None else None
            if literal is not None:
                out.append((f"SELECT rowid FROM fts WHERE fts.{column} LIKE ?"
                            + (" UNION ALL SELECT id FROM mails WHERE body_complete = 0" if column == "body" else ""),
                            f"%{literal}%"))
        return out

    def _body_sql(self) -> str:
        wanted = self.filters.grep is not None or self.search is not None
        return ", (SELECT body FROM fts WHERE rowid = m.id)" if wanted else ", NULL"

    def rows(self, order: str = "") -> Iterator[Row]:
        yield from self.rows_where(*self._where(), order)

    def rows_where(self, where: str, args: list[Any], order: str = "") -> Iterator[Row]:
        q = (f"SELECT m.seqnum_id, m.seqnum, m.boot, m.monotonic, m.realtime, m.xor, m.sent, m.copy_key, "
             f"m.entry, m.body_complete{self._body_sql()}, m.id, m.file, m.pos, m.copies, m.late, m.first FROM mails m "
             f"WHERE {where} {order}")
        for sid, seq, boot, mono, rt, xor, sent, key, entry, complete, body, id_, fid, pos, copies, late, first in \
                self.idx.db.execute(q, args):
            yield Row((sid, seq, boot, mono, rt, xor & MASK), sent, key, entry_from(entry), body if complete else None,
                      id_, self.rank[fid], pos, copies, bool(late), first)

    def light(self) -> Iterator[Row]:
        """Every row the journal's own matches take (not narrowed by the full-text index: sd-journal
        merges what its matches take), with only what ordering needs (see ``complete``)."""
        where, args = self._where(text=False)
        q = (f"SELECT m.seqnum_id, m.seqnum, m.boot, m.monotonic, m.realtime, m.xor, m.sent, m.copy_key, m.id, "
             f"m.file, m.pos FROM mails m WHERE {where}")
        for sid, seq, boot, mono, rt, xor, sent, key, id_, fid, pos in self.idx.db.execute(q, args):
            yield Row((sid, seq, boot, mono, rt, xor & MASK), sent, key, None, None, id_,  # type: ignore[arg-type]
                      self.rank[fid], pos)

    def text_candidates(self) -> set[int] | None:
        """The rows ``--subject`` and ``-g`` can match, by the full-text index (None: any)."""
        found: set[int] | None = None
        for q, like in self._text_sets():
            ids = {i for (i,) in self.idx.db.execute(q, (like,))}
            found = ids if found is None else found & ids
        if _searchable(self.search):
            ids = {i for (i,) in self.idx.db.execute(_SEARCH, [_phrase(self.search)] * 3)}
            found = ids if found is None else found & ids
        return found

    def complete(self, rows: Iterable[Row], batch: int = 500) -> Iterator[Row]:
        """``rows`` with their entries (and stored bodies) filled in from the index, in order."""
        pending: list[Row] = []

        def flush() -> Iterator[Row]:
            ids = [r.id for r in pending if r.entry is None]
            got: dict[int, tuple[str, int, str | None]] = {}
            if ids:
                q = (f"SELECT m.id, m.entry, m.body_complete{self._body_sql()} FROM mails m "
                     f"WHERE m.id IN ({','.join('?' * len(ids))})")
                got = {i: (e, c, b) for i, e, c, b in self.idx.db.execute(q, ids)}
            for r in pending:
                if r.entry is None:
                    text, complete, body = got[r.id]
                    r.entry, r.body = entry_from(text), body if complete else None
                yield r
            pending.clear()

        for r in rows:
            pending.append(r)
            if len(pending) >= batch:
                yield from flush()
        yield from flush()

    def tail(self) -> list[Row]:
        """What the journal has that the index does not, read now."""
        out, ranks = [], self.order
        for f, cursor, pos in self.tails:
            reader = file_reader(f.path, cursor, self.filters)
            try:
                for t in reader.steps():
                    pos += 1
                    e, get = reader.entry(t), reader.get
                    k = parse_cursor(e.cursor)
                    out.append(Row((k.get("s", ""), int(k.get("i", "0"), 16), k.get("b", ""),
                                    int(k.get("m", "0"), 16), t, int(k.get("x", "0"), 16)),
                                   count(get("_SOURCE_REALTIME_TIMESTAMP"), SIZE_MAX) or t,
                                   copy_key(get, e.cursor), e, None, 0, ranks.get((f.dev, f.ino, f.file_id), 0), pos))
            finally:
                reader.close()
        since, until = self.filters.since, self.filters.until
        return [r for r in out if (since is None or r.entry.realtime >= since)
                and (until is None or r.entry.realtime <= until)]

    def body(self, row: Row) -> str:
        """What ``--grep`` searches: the stored body when complete, else the journal's."""
        if row.body is not None:
            return row.body
        e = row.entry
        if row.id and e.text is None:  # from the index, which keeps no raw bytes
            e = fetch(self.open_parts, e) or e
        return searchable_body(e, self.open_parts)

    def keep(self, row: Row) -> bool:
        return wanted(row.entry, self.filters, lambda e: self.body(row)) and (
            self.search is None or search_matches(row.entry, self.search, lambda: self.body(row)))


_SEARCH = ("SELECT rowid FROM fts WHERE subject LIKE ? UNION ALL SELECT rowid FROM fts WHERE body LIKE ? "
           "UNION ALL SELECT rowid FROM fts WHERE who LIKE ? UNION ALL SELECT id FROM mails WHERE body_complete = 0")
DENSE = 1000


def _searchable(q: str | None) -> bool:
    """Can the trigram index narrow the search for ``q``?  Only for ASCII (its case folding is
    then casefold()'s) of at least three characters (a trigram), without LIKE's own ``%_``."""
    return q is not None and len(q) >= 3 and q.isascii() and not set(q) & set("%_")


def _phrase(q: str | None) -> str:
    return f"%{q}%"


def search_matches(e: MailEntry, q: str, body: Callable[[], str]) -> bool:
    """The web's search (``?q=``): does ``q`` occur, in any case, in the subject, from, to, cc,
    envelope sender, recipients, host, caller, unit or body?"""
    needle = q.casefold()
    return any(needle in f.casefold() for f in search_fields(e)) or needle in body().casefold()


def searched(entries: Iterable[MailEntry], q: str | None, body: Callable[[MailEntry], str]) -> Iterator[MailEntry]:
    """``entries`` the search ``q`` finds (all with None)."""
    for e in entries:
        if q is None or search_matches(e, q, functools.partial(body, e)):
            yield e


def fetch(open_reader: Callable[[], Journal], e: MailEntry) -> MailEntry | None:
    """The entry of ``e`` read again from the journal, with its raw bytes (None: gone)."""
    reader = open_reader()
    try:
        return reader.reread(e.cursor)
    finally:
        reader.close()


def mails(idx: Index, source: Source, filters: Filters, open_parts: Callable[[], Journal], lines: int | None,
          reverse: bool, central: bool, search: str | None = None) -> tuple[int, Iterator[MailEntry]]:
    """What ``query.mails`` (or ``query.central`` with ``central``) gives, from the index and the
    journal's tail: (late count, entries without their raw bytes).

    Everything that can make the index unusable is found before the first entry
    is given (IndexError_: then scan); the entries are then streamed.
    """
    try:
        ans = Answer(idx, source, filters, open_parts, search)
        tail = ans.tail()
        if central:
            return _central(ans, tail, lines, reverse)
        sids = {row[0] for row in idx.db.execute(
            f"SELECT DISTINCT seqnum_id FROM seqs WHERE file IN ({','.join(map(str, ans.live)) or 'NULL'})")}
        one_sequence = len(sids | {r.key[0] for r in tail}) <= 1
        if not one_sequence:
            ordered = [r.entry for r in ans.complete(_narrowed(ans, journal_order(list(ans.light()) + tail)))
                       if ans.keep(r)]
    except sqlite3.Error as e:
        raise IndexError_(str(e)) from None
    if not one_sequence:
        if lines is not None:
            ordered = ordered[-lines:] if lines else []
        return 0, iter(ordered[::-1] if reverse else ordered)
    # the journal's order is the sequence number's: stream from the index
    tail.sort(key=lambda r: r.key[1])
    if lines is None and not reverse:
        return 0, (r.entry for r in _once(_chain(ans.rows("ORDER BY m.seqnum"), tail)) if ans.keep(r))
    return 0, newest((r.entry for r in _once(_chain(tail[::-1], ans.rows("ORDER BY m.seqnum DESC"))) if ans.keep(r)),
                     lines, reverse)


def _narrowed(ans: Answer, rows: list[Row]) -> list[Row]:
    """``rows`` less the index's rows the full-text index rules out (the journal's tail stays)."""
    candidates = ans.text_candidates()
    return rows if candidates is None else [r for r in rows if not r.id or r.id in candidates]


def _chain(*parts: Iterable[Row]) -> Iterator[Row]:
    for part in parts:
        yield from part


def _central_tail(ans: Answer, tail: list[Row]) -> tuple[list[Row], set[int], dict[int, int], list[Row]]:
    """The journal's tail against the index's mails: (tail rows shown, index rows they displace,
    copies the tail adds to index rows, the rows of mails the index has no copy of).  Each tail
    row's ``copies`` and ``late`` are set."""
    db, plain = ans.idx.db, ans._where(text=False)
    filtered = not _only_text(ans.filters)
    highest: dict[str, int] = {}
    for r in sorted(tail, key=lambda r: (r.key[0], r.key[1])):  # late: as query.central says
        if r.key[0] not in highest:
            q = "SELECT COALESCE(MAX(m.sent), 0) FROM mails m WHERE m.seqnum_id = ? AND m.kind = 'mail'"
            q, args = (q + f" AND {plain[0]}", [r.key[0], *plain[1]]) if filtered else (q, [r.key[0]])
            highest[r.key[0]] = db.execute(q, args).fetchone()[0]
        r.late = r.sent < highest[r.key[0]]
        if r.entry.kind == "mail":
            highest[r.key[0]] = max(highest[r.key[0]], r.sent)
    groups: dict[str, list[Row]] = {}
    for r in tail:
        groups.setdefault(r.copy_key, []).append(r)
    shown, hidden, extra, new = [], set(), {}, []
    for key, rows in groups.items():
        best, n = min(rows, key=central_order), distinct((r.key[0], r.key[2:]) for r in rows)  # see index.distinct
        got = db.execute(f"SELECT id, {', '.join(ORDER)}, copies FROM mails WHERE copy_key = ? AND first > 0",
                         (key,)).fetchone()
        if got is not None and tuple(got[1:7]) < central_order(best):
            extra[got[0]] = n
            continue
        if got is not None:
            hidden.add(got[0])
        else:
            new.append(best)
        best.copies = n - 1 + (got[7] + 1 if got is not None else 0)
        shown.append(best)
    return shown, hidden, extra, new


def _listed_first(ans: Answer, r: Row) -> Row:
    """Of one entry written into several files, the copy in the file sd-journal lists first
    (the scan shows that one: its cursor)."""
    (sid, boot, mono, rt, xor), = ans.idx.db.execute(
        "SELECT seqnum_id, boot, monotonic, realtime, xor FROM mails WHERE id = ?", (r.id,)).fetchall()
    twins = ans.idx.db.execute("SELECT file, entry FROM mails WHERE copy_key = ? AND boot = ? AND monotonic = ? "
                               "AND realtime = ? AND xor = ? AND (seqnum_id != ? OR id = ?)",
                               (r.copy_key, boot, mono, rt, xor, sid, r.id)).fetchall()
    r.entry = entry_from(min(((f, e) for f, e in twins if f in ans.rank), key=lambda t: ans.rank[t[0]])[1])
    return r


def _late(ans: Answer, shown: list[Row], hidden: set[int]) -> int:
    """How many of the mails the index holds (text filters aside) are ``late`` (query.central)."""
    db = ans.idx.db
    where, args = ans._where(text=False)
    if _only_text(ans.filters):
        late = {i for (i,) in db.execute(f"SELECT m.id FROM mails m WHERE {where} AND m.first > 0 AND m.late = 1",
                                         args)}
    else:  # late among the mails these filters take, as the scan sees them
        late = {i for i, first, is_late in db.execute(
            "SELECT id, first, sent < MAX(CASE WHEN kind = 'mail' THEN sent END) OVER (PARTITION BY seqnum_id "
            "ORDER BY seqnum ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
            f"FROM mails m WHERE {where}", args) if first and is_late}
    return len(late - hidden) + sum(r.late for r in shown)


def _central(ans: Answer, tail: list[Row], lines: int | None, reverse: bool) -> tuple[int, Iterator[MailEntry]]:
    """``query.central`` from the index: each mail once (copies counted), in ``central_order``,
    streamed from SQL's index on that order and merged with the journal's tail: a question for
    the newest N costs about N rows, however many files."""
    if not ans.all_live:
        raise IndexError_("a journal file was vacuumed since the index was updated")
    shown, hidden, extra, _ = _central_tail(ans, tail)
    late = _late(ans, shown, hidden)
    newest_first = lines is not None or reverse
    way = " DESC" if newest_first else ""
    where, args = ans._where()

    def indexed() -> Iterator[Row]:
        order = ", ".join(f"m.{c}{way}" for c in ORDER)
        for r in ans.rows_where(f"{where} AND m.first > 0", args, f"ORDER BY {order}"):
            if r.id not in hidden:
                r.copies += extra.get(r.id, 0)
                yield _listed_first(ans, r) if r.first == 2 else r

    merged = heapq.merge(indexed(), sorted(shown, key=central_order, reverse=newest_first), key=central_order,
                         reverse=newest_first)

    def gen(rows: Iterable[Row]) -> Iterator[MailEntry]:
        for r in rows:
            if ans.keep(r):
                r.entry.duplicates = r.copies
                yield r.entry

    return late, gen(merged) if lines is None else newest(gen(merged), lines, reverse)  # a page costs a page


def stats(idx: Index, source: Source, filters: Filters, open_parts: Callable[[], Journal],
          by: str) -> tuple[list[tuple[str, int, int]], int, set[str], int] | None:
    """((key, mails, bytes) of the undamaged mails, damaged ones left out, the units they came
    from, late mails of a central journal), counted in SQL; None when a filter needs each mail
    looked at (then the caller counts).  A central journal's mail is counted once (``first``)."""
    if (filters.subject is not None or filters.grep is not None or filters.senders or filters.units
            or filters.caller_units or any(len(i) != 32 for i in filters.mail_ids)):
        return None  # decided per mail (filters.wanted)
    acc: dict[str, list[int]] = {}

    def add(key: str, n: int, size: int | None) -> None:
        slot = acc.setdefault(key or "(none)", [0, 0])
        slot[0] += n
        slot[1] += size or 0

    try:
        ans = Answer(idx, source, filters, open_parts)
        tail, late, once = ans.tail(), 0, ""
        if source.central:
            if not ans.all_live:
                raise IndexError_("a journal file was vacuumed since the index was updated")
            shown, hidden, _, tail = _central_tail(ans, tail)
            late, once = _late(ans, shown, hidden), " AND m.first > 0"
        if _unfiltered(filters):
            found = _stats_counted(ans, by, filters.refused)
            units = set(_stats_counted(ans, "unit", filters.refused)[0]) - {"(none)"}
            return (*_with_tail(found[0], found[1], tail, by), units | _tail_units(tail), late)
        where, args = ans._where()
        where += once
        damaged = idx.db.execute(f"SELECT COUNT(*) FROM mails m WHERE {where} AND m.damaged = 1", args).fetchone()[0]
        where += " AND m.damaged = 0"
        if by == "recipient":
            q = (f"SELECT r.addr, COUNT(*), SUM(m.size) FROM mails m JOIN rcpt r ON r.mail = m.id AND r.how & 2 "
                 f"WHERE {where} GROUP BY r.addr")
            n, size = idx.db.execute(f"SELECT COUNT(*), SUM(m.size) FROM mails m WHERE {where} AND NOT EXISTS "
                                     "(SELECT 1 FROM rcpt r WHERE r.mail = m.id AND r.how & 2)", args).fetchone()
            if n:
                add("(none)", n, size)
        else:
            column = {"sender": "m.envelope_from", "user": "m.uid",
                      "day": "date(m.realtime / 1000000, 'unixepoch', 'localtime')"}.get(by) or BY_STATS[by].column
            q = f"SELECT {column}, COUNT(*), SUM(m.size) FROM mails m WHERE {where} GROUP BY {column}"
        for key, n, size in idx.db.execute(q, args):
            if by == "user":
                key = name_of(key) or ("" if key is None else str(key))
            add("" if key is None else str(key), n, size)
        units = {u for (u,) in idx.db.execute(f"SELECT DISTINCT m.unit FROM mails m WHERE {where}", args) if u}
    except sqlite3.Error as e:
        raise IndexError_(str(e)) from None
    return (*_with_tail(acc, damaged, tail, by), units | _tail_units(tail), late)


def _tail_units(tail: list[Row]) -> set[str]:
    return {u for r in tail for u in (r.entry.caller_unit, r.entry.systemd_unit) if u}


def _unfiltered(f: Filters) -> bool:
    """Only the kinds of mail asked for: the ``agg`` table's counts answer."""
    return f == Filters(refused=f.refused)


def _only_text(f: Filters) -> bool:
    """No filter but ``--subject`` and ``-g`` (which ``late`` does not look at): the index's flag answers."""
    return _unfiltered(dataclasses.replace(f, subject=None, grep=None)) and not f.refused


def _stats_counted(ans: Answer, by: str, refused: bool) -> tuple[dict[str, list[int]], int]:
    """The groups of ``by`` from the counts kept per journal file, mapped to this reader's
    login names (user) and local days (day)."""
    from .render import local_time

    files = ",".join(map(str, ans.live)) or "NULL"
    kinds = "('mail', 'refused')" if refused else "('mail')"
    acc: dict[str, list[int]] = {}
    q = (f"SELECT key, SUM(mails), SUM(bytes) FROM agg WHERE by = ? AND kind IN {kinds} AND file IN ({files}) "
         "GROUP BY key HAVING SUM(mails) > 0")
    for key, n, size in ans.idx.db.execute(q, (by,)):
        if by == "user":
            key = (name_of(int(key)) or key) if key else ""
        elif by == "day":
            key = local_time(int(key) * QUARTER, "%Y-%m-%d")
        slot = acc.setdefault(key or "(none)", [0, 0])
        slot[0] += n
        slot[1] += size
    damaged = ans.idx.db.execute(f"SELECT COALESCE(SUM(mails), 0) FROM agg WHERE by = 'damaged' AND kind IN {kinds} "
                                 f"AND file IN ({files})").fetchone()[0]
    return acc, int(damaged)


def _with_tail(acc: dict[str, list[int]], damaged: int, tail: list[Row],
               by: str) -> tuple[list[tuple[str, int, int]], int]:
    from .render import stats_keys

    for r in tail:
        if r.entry.damaged:
            damaged += 1
            continue
        for k in stats_keys(r.entry, by):
            slot = acc.setdefault(k, [0, 0])
            slot[0] += 1
            slot[1] += r.entry.size
    return [(k, c, b) for k, (c, b) in acc.items()], damaged
