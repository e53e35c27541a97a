"""Index: a derived SQLite index of one source's mail, for instant search and stats.

The journal stays the one source of truth.  The index is a cache beside it,
one SQLite file per source under /var/lib/journal-mail/index/, that can be
deleted at any time: ``journal-mail index`` builds it again.

Exact under change, by construction:

* It is kept per journal FILE (identified by device, inode and the file id
  in its header, so a rotated file is the same file): for each, the cursor
  of the last entry indexed and the header's entry count when it was read.
  Journal files only grow until they are archived, so what is not in the
  index is exactly what comes after those cursors: readers read that tail
  from the journal, so a mail stored a second ago is never missing.
* A file that is gone (vacuumed) is never shown from the index, and the
  indexer prunes its rows; a file whose header says it has fewer entries
  than were indexed is not the file that was indexed: the index is not used.
* Rows are put back in the journal's own order (sd-journal's merge: by
  sequence number within one sequence, else by monotonic time within one
  boot, else by wall-clock time), so answers are the same as a scan's.
* A central journal (a directory or files: journal-remote's, one file per
  host) is answered in its own order, which SQL's index on it gives lazily
  (see ``central_order``): each mail once (``first`` marks the copy shown,
  ``copies`` counts the others), ``late`` marks a mail stamped before one
  that came earlier in its sequence; kept here as each batch is written, so
  neither a question nor ``stats`` merges the files.
* A damaged, foreign or older-schema file is never read; the indexer
  rebuilds it.  WAL mode lets readers read while the follower writes; each
  batch of rows commits with its file's cursor, so a killed indexer resumes
  without a duplicate.

Bodies: the readable body (what ``--grep`` searches) is kept up to
BODY_MAX characters in an FTS5 trigram table that pre-filters ``-g`` and
``--subject`` by the longest literal their regular expression requires, and
the web's search by its words (in all three columns: subject, body, who); the
regular expression still decides, on the stored body when it is complete,
else on the body read back from the journal (a longer body is still found).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..schema import MSG_MAIL, MSG_REFUSED, copy_key
from ..users import name_of
from . import safefile
from .assemble import searchable_body
from .entry import SIZE_MAX, MailEntry, count, first_value, to_entry
from .filters import Filters
from .source import Fields, Journal, Source, journal_files, open_reader

INDEX_DIR = "/var/lib/journal-mail/index"
SCHEMA_VERSION = 7  # 5: uid is the spool owner, writer_uid, unit trusted;
# 6: first, copies, late, fts.who; 7: mails_late
BODY_MAX = 16 * 1024  # characters of body kept for search
BATCH = 20000  # rows per transaction (bigger ones make fewer, larger full-text segments to merge)
HEADER = 200  # bytes of a journal file's header read for its id and entry count
_STORED = ("mail_id", "realtime", "cursor", "kind", "envelope_from", "recipients", "headers", "size", "sha256",
           "parts", "uid", "hostname", "boot_id", "caller_comm", "caller_pid", "caller_exe", "caller_unit",
           "systemd_unit", "argv", "invoked_as", "spooled", "spool_uid", "submitted_at", "truncated", "refused",
           "defects", "damaged", "writer_uid")

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY, dev INTEGER NOT NULL, ino INTEGER NOT NULL, file_id TEXT NOT NULL,
    path TEXT NOT NULL, n_entries INTEGER NOT NULL, cursor TEXT, pos INTEGER NOT NULL);
CREATE TABLE mails (
    id INTEGER PRIMARY KEY, file INTEGER NOT NULL, pos INTEGER NOT NULL,
    seqnum_id TEXT NOT NULL, seqnum INTEGER NOT NULL, boot TEXT NOT NULL, monotonic INTEGER NOT NULL,
    realtime INTEGER NOT NULL, xor INTEGER NOT NULL, sent INTEGER NOT NULL, copy_key TEXT NOT NULL,
    kind TEXT NOT NULL, mail_id TEXT NOT NULL, envelope_from TEXT NOT NULL, subject TEXT NOT NULL,
    uid INTEGER, hostname TEXT NOT NULL, boot_id TEXT NOT NULL, caller_comm TEXT NOT NULL, unit TEXT NOT NULL,
    spooled INTEGER NOT NULL, size INTEGER NOT NULL, damaged INTEGER NOT NULL, body_complete INTEGER NOT NULL,
    entry TEXT NOT NULL, first INTEGER NOT NULL DEFAULT 1, copies INTEGER NOT NULL DEFAULT 0,
    late INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rcpt (mail INTEGER NOT NULL, addr TEXT NOT NULL, how INTEGER NOT NULL,
                   PRIMARY KEY (mail, addr)) WITHOUT ROWID;
CREATE VIRTUAL TABLE fts USING fts5(subject, body, who, tokenize = 'trigram case_sensitive 0', detail = column);
CREATE TABLE agg (file INTEGER NOT NULL, kind TEXT NOT NULL, by TEXT NOT NULL, key TEXT NOT NULL,
                  mails INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (file, kind, by, key)) WITHOUT ROWID;
CREATE TABLE seqs (file INTEGER NOT NULL, seqnum_id TEXT NOT NULL, PRIMARY KEY (file, seqnum_id)) WITHOUT ROWID;
CREATE INDEX mails_seqnum ON mails (seqnum);
CREATE INDEX mails_realtime ON mails (realtime);
CREATE INDEX mails_file ON mails (file, pos);
CREATE INDEX mails_uid ON mails (uid);
CREATE INDEX mails_caller ON mails (caller_comm);
CREATE INDEX mails_incomplete ON mails (body_complete) WHERE body_complete = 0;
CREATE INDEX rcpt_addr ON rcpt (addr, mail);
"""


CENTRAL = """
CREATE INDEX mails_order ON mails (sent, realtime, boot, monotonic, seqnum_id, seqnum) WHERE first > 0;
CREATE INDEX mails_copy ON mails (copy_key);
CREATE INDEX mails_seq ON mails (seqnum_id, seqnum);
CREATE INDEX mails_late ON mails (id) WHERE late = 1 AND first > 0;
"""  # a directory's or files' index: the central order, copies, late (indexed._central)

# Schema 7 adds only mails_late, which indexed._late counts through for every list, stats and
# web page (without it, every row of a log host's million mails: 1.8 s): a schema 6 index gets
# it where it lies instead of being built anew.
MIGRATE = {"6": "CREATE INDEX IF NOT EXISTS mails_late ON mails (id) WHERE late = 1 AND first > 0;"}


class IndexError_(Exception):
    """The index cannot answer (missing, foreign, damaged, older schema, not current): scan instead."""


# -- where ------------------------------------------------------------------------


def index_path(source: Source, directory: str = INDEX_DIR) -> str:
    """The index file of ``source``."""
    if source.directory is not None:
        name = "dir-" + hashlib.sha256(os.path.realpath(source.directory).encode()).hexdigest()[:16]
    elif source.files:
        joined = "\0".join(sorted(os.path.realpath(f) for f in source.files))
        name = "files-" + hashlib.sha256(joined.encode()).hexdigest()[:16]
    elif source.namespace is not None:
        name = "namespace-" + re.sub(r"[^A-Za-z0-9_.-]", "_", source.namespace)
    else:
        name = "local"
    return os.path.join(os.environ.get("JOURNAL_MAIL_INDEX_DIR", directory), name + ".sqlite3")


def describe(source: Source) -> str:
    if source.directory is not None:
        return f"directory {os.path.realpath(source.directory)}"
    if source.files:
        return "files " + " ".join(sorted(os.path.realpath(f) for f in source.files))
    if source.namespace is not None:
        return f"namespace {source.namespace}"
    return "the local journal"


# -- journal files ----------------------------------------------------------------


@dataclass(frozen=True)
class JFile:
    """One journal file as it is now."""

    path: str
    dev: int
    ino: int
    file_id: str
    n_entries: int


def journal_file(path: str) -> JFile | None:
    """Identity and entry count from the file's header (None: unreadable or not a journal file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        head = os.pread(fd, HEADER, 0)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode) or len(head) < 160 or not head.startswith(b"LPKSHHRH"):
        return None
    # struct Header: signature[8], flags 2x le32, state, reserved[7], file_id[16] at 24, ...,
    # n_entries le64 at 152 (systemd's src/libsystemd/sd-journal/journal-def.h)
    return JFile(path, st.st_dev, st.st_ino, head[24:40].hex(), int.from_bytes(head[152:160], "little"))


def current_files(source: Source) -> list[JFile]:
    return [f for f in map(journal_file, journal_files(source)) if f is not None]


def parse_cursor(cursor: str) -> dict[str, str]:
    """``s=…;i=…;b=…;m=…;t=…;x=…`` into its parts.

    >>> parse_cursor("s=ab;i=1f;b=cd;m=2;t=3;x=4")["i"]
    '1f'
    """
    return dict(part.split("=", 1) for part in cursor.split(";") if "=" in part)


# -- opening --------------------------------------------------------------------------


def connect(path: str, write: bool) -> sqlite3.Connection:
    if write:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA cache_size = -65536")  # 64 MiB: the full-text index merges in memory
    else:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
    return db


class Index:
    """An open index file."""

    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self.db = db
        self.path = path

    def close(self) -> None:
        self.db.close()

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def check(self, source: Source) -> None:
        """IndexError_ unless this is a current-schema index of ``source``."""
        try:
            schema, about = self.meta("schema"), self.meta("source")
        except sqlite3.Error as e:
            raise IndexError_(f"{self.path}: {e}") from None
        if schema != str(SCHEMA_VERSION):
            raise IndexError_(f"{self.path}: schema {schema}, this journal-mail reads {SCHEMA_VERSION}")
        if about != describe(source):
            raise IndexError_(f"{self.path}: an index of {about}, not of {describe(source)}")


def open_for_reading(source: Source) -> Index | None:
    """The source's index when it can be used by this user, else None (then scan)."""
    path = index_path(source)
    if not os.access(path, os.R_OK):
        return None
    try:
        idx = Index(connect(path, write=False), path)
        idx.check(source)
    except (sqlite3.Error, IndexError_):
        return None
    return idx


def usable(source: Source) -> bool:
    idx = open_for_reading(source)
    if idx is not None:
        idx.close()
    return idx is not None


# -- building ---------------------------------------------------------------------


def entry_json(e: MailEntry) -> str:
    return json.dumps({k: getattr(e, k) for k in _STORED}, ensure_ascii=False, separators=(",", ":"))


def entry_from(text: str) -> MailEntry:
    d = json.loads(text)
    for key in ("recipients", "argv", "defects"):
        d[key] = tuple(d[key])
    e = MailEntry(**d)
    e.username = name_of(e.uid)
    return e


def search_fields(e: MailEntry) -> tuple[str, ...]:
    """What the web's search (``?q=``) looks at besides the body; the index keeps all but the
    subject (its own column) in ``fts.who``."""
    h = e.headers
    return (e.subject, h.get("from", ""), h.get("to", ""), h.get("cc", ""), e.envelope_from, ",".join(e.recipients),
            e.hostname, e.caller_comm, e.unit)


class Builder:
    """Writes the index of one source: ``update`` adds what is new, prunes what is gone."""

    def __init__(self, source: Source, open_parts: Callable[[], Journal],
                 progress: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.open_parts = open_parts
        self.progress = progress
        self.path = index_path(source)
        self.central = source.central

    def open(self, rebuild: bool = False) -> Index:
        """The index, created (or, when damaged, foreign, older or ``rebuild``, made anew)."""
        directory = os.path.dirname(self.path)
        # /var/lib/journal-mail 0755: for adm too.  sqlite opens files by name: the directory
        # and every one on the way must be ours (or root's) and writable by nobody else.
        os.close(safefile.open_dir(directory, create=True, mode=0o750, parents_mode=0o755))
        for suffix in ("", "-wal", "-shm"):
            if os.path.islink(self.path + suffix):
                raise safefile.UnsafePath(f"{self.path}{suffix}: a symbolic link; refused")
        if not rebuild and os.path.exists(self.path):
            try:
                idx = Index(connect(self.path, write=True), self.path)
                self._migrate(idx)
                idx.check(self.source)
                idx.db.execute("SELECT COUNT(*) FROM files").fetchone()
                return idx
            except (sqlite3.Error, IndexError_) as e:
                if self.progress:
                    self.progress(f"rebuilding the index: {e}")
                try:
                    idx.close()
                except Exception:
                    pass
        for suffix in ("", "-wal", "-shm", ".new"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass
        new = self.path + ".new"
        old = os.umask(0o027)  # 0640: it holds mail bodies
        try:
            db = connect(new, write=True)
        finally:
            os.umask(old)
        db.executescript(SCHEMA + (CENTRAL if self.central else ""))
        db.execute("INSERT INTO fts (fts, rank) VALUES ('automerge', 8)")  # fewer, larger merges while indexing
        db.executemany("INSERT INTO meta VALUES (?, ?)",
                       [("schema", str(SCHEMA_VERSION)), ("source", describe(self.source)),
                        ("created", str(int(time.time())))])
        db.close()
        _own(new)
        os.rename(new, self.path)
        return Index(connect(self.path, write=True), self.path)

    def _migrate(self, idx: Index) -> None:
        """Bring an index of an older schema that MIGRATE knows to SCHEMA_VERSION."""
        schema = idx.meta("schema")
        if schema in MIGRATE and idx.meta("source") == describe(self.source):
            with idx.db:
                if self.central:
                    idx.db.execute(MIGRATE[schema])
                idx.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    def update(self, idx: Index) -> int:
        """Index what the journal has after the saved cursors; prune vanished files.  Rows added."""
        db = idx.db
        known = {(r[1], r[2], r[3]): r for r in db.execute("SELECT id, dev, ino, file_id, n_entries, cursor, pos "
                                                              "FROM files")}
        now = current_files(self.source)
        present = {(f.dev, f.ino, f.file_id) for f in now}
        gone = [row[0] for key, row in known.items() if key not in present]
        if gone:
            db.execute("BEGIN")
            keys = [k for fid in gone for (k,) in db.execute("SELECT copy_key FROM mails WHERE file = ?", (fid,))]
            for fid in gone:
                ids = "SELECT id FROM mails WHERE file = ?"
                db.execute(f"DELETE FROM fts WHERE rowid IN ({ids})", (fid,))
                db.execute(f"DELETE FROM rcpt WHERE mail IN ({ids})", (fid,))
                db.execute("DELETE FROM mails WHERE file = ?", (fid,))
                db.execute("DELETE FROM agg WHERE file = ?", (fid,))
                db.execute("DELETE FROM seqs WHERE file = ?", (fid,))
                db.execute("DELETE FROM files WHERE id = ?", (fid,))
            if self.central:
                _regroup(db, keys)
            db.execute("COMMIT")
            if self.progress:
                self.progress(f"pruned {len(gone)} journal file(s) that are gone (vacuumed)")
        added = 0
        for f in now:
            row = known.get((f.dev, f.ino, f.file_id))
            if row is not None and row[4] == f.n_entries:
                continue  # nothing new in it
            if row is not None and row[4] > f.n_entries:
                raise IndexError_(f"{f.path} has fewer entries than were indexed: rebuild")
            if row is None:
                db.execute("INSERT INTO files (dev, ino, file_id, path, n_entries, cursor, pos) VALUES "
                           "(?, ?, ?, ?, 0, NULL, 0)", (f.dev, f.ino, f.file_id, f.path))
                fid, cursor, pos = db.execute("SELECT last_insert_rowid()").fetchone()[0], None, 0
            else:
                fid, cursor, pos = row[0], row[5], row[6]
            added += self._index_file(db, fid, f, cursor, pos)
        if added >= 1000:  # the query planner's statistics, so that it picks the right index
            db.execute("ANALYZE mails")
            db.execute("ANALYZE rcpt")
        return added

    def _index_file(self, db: sqlite3.Connection, fid: int, f: JFile, cursor: str | None, pos: int) -> int:
        added = 0
        reader = file_reader(f.path, cursor)
        try:
            rows: list[_Row] = []
            last = cursor
            started = time.monotonic()
            for t in reader.steps():
                c = reader.cursor()
                d = reader.fields()
                pos += 1
                rows.append(self._row(d, t, c, fid, pos))
                last = c
                if len(rows) >= BATCH:
                    added += self._commit(db, fid, rows, last, pos, None)
                    rows = []
                    if self.progress and time.monotonic() - started > 2:
                        self.progress(f"{f.path}: {added} mails indexed")
                        started = time.monotonic()
            added += self._commit(db, fid, rows, last, pos, f.n_entries)
        finally:
            reader.close()
        return added

    def _row(self, d: Fields, t: int, c: str, fid: int, pos: int) -> _Row:
        e = to_entry(d, t, c)
        body = searchable_body(e, self.open_parts)
        k = parse_cursor(c)
        sent = count(first_value(d, "_SOURCE_REALTIME_TIMESTAMP"), SIZE_MAX) or t
        how: dict[str, int] = {}
        for v in _many(d.get("MAIL_RCPT")):
            a = v.decode("utf-8", "replace")
            how[a] = how.get(a, 0) | 1
        for a in e.recipients:
            how[a] = how.get(a, 0) | 2
        key = copy_key(functools.partial(first_value, d), c)
        return _Row(fid, pos, k.get("s", ""), int(k.get("i", "0"), 16), k.get("b", ""), int(k.get("m", "0"), 16),
                t, _signed(int(k.get("x", "0"), 16)), sent, key, e.kind, e.mail_id, e.envelope_from,
                e.subject, e.uid, e.hostname, e.boot_id, e.caller_comm, e.unit, int(e.spooled), e.size,
                int(bool(e.damaged)),
                int(len(body) <= BODY_MAX), entry_json(e), body[:BODY_MAX], how, e)

    def _commit(self, db: sqlite3.Connection, fid: int, rows: list[_Row], cursor: str | None,
                pos: int, n_entries: int | None) -> int:
        """Rows, their counts and the file's cursor in one transaction: a kill leaves all or nothing."""
        first = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM mails").fetchone()[0]
        ids = range(first, first + len(rows))
        acc: dict[tuple[str, str, str], list[int]] = {}
        marks = self._late(db, rows) if self.central else [(1, 0)] * len(rows)  # (first, late)
        for row in rows if not self.central else ():  # a central index counts each mail once: _regroup
            for by, key in _groups(row.e):
                slot = acc.setdefault((row.kind, by, key), [0, 0])
                slot[0] += 1
                slot[1] += row.size
        db.execute("BEGIN")
        db.executemany(_INSERT, [(i, *row[:_COLUMNS], *mark) for i, row, mark in zip(ids, rows, marks, strict=True)])
        db.executemany("INSERT INTO fts (rowid, subject, body, who) VALUES (?, ?, ?, ?)",
                       [(i, row.subject, row.body, "\n".join(search_fields(row.e)[1:]))
                        for i, row in zip(ids, rows, strict=True)])
        db.executemany("INSERT INTO rcpt VALUES (?, ?, ?)",
                       [(i, a, h) for i, row in zip(ids, rows, strict=True) for a, h in row.how.items()])
        db.executemany("INSERT INTO agg VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (file, kind, by, key) DO UPDATE SET "
                       "mails = mails + excluded.mails, bytes = bytes + excluded.bytes",
                       [(fid, kind, by, key, n, size) for (kind, by, key), (n, size) in acc.items()])
        db.executemany("INSERT OR IGNORE INTO seqs VALUES (?, ?)", [(fid, s) for s in {row.seqnum_id for row in rows}])
        if self.central:
            _regroup(db, {row.copy_key for row in rows})
        if n_entries is None:
            db.execute("UPDATE files SET cursor = ?, pos = ? WHERE id = ?", (cursor, pos, fid))
        else:
            db.execute("UPDATE files SET cursor = ?, pos = ?, n_entries = ? WHERE id = ?",
                       (cursor, pos, n_entries, fid))
        db.execute("COMMIT")
        return len(rows)


    def _late(self, db: sqlite3.Connection, rows: list[_Row]) -> list[tuple[int, int]]:
        """(first, late) of new rows of a central index: ``late`` when a mail before it in its
        sequence (by seqnum, copies included, refused entries not) was stamped later."""
        highest: dict[str, int] = {}
        out = []
        for row in rows:
            seq, sent = row.seqnum_id, row.sent
            if seq not in highest:
                highest[seq] = db.execute("SELECT COALESCE(MAX(sent), 0) FROM mails WHERE seqnum_id = ? AND "
                                          "seqnum < ? AND kind = 'mail'", (seq, row.seqnum)).fetchone()[0]
            out.append((0, int(sent < highest[seq])))
            if row.kind == "mail":
                highest[seq] = max(highest[seq], sent)
        return out


# One mail's row as the builder makes it: the mails table's columns (as many as _COLUMNS, in its
# order), then its body for the full-text table, its recipients (address -> how: 1 MAIL_RCPT,
# 2 the entry's recipients) and the entry.
_Row = collections.namedtuple("_Row", "file pos seqnum_id seqnum boot monotonic realtime xor sent copy_key kind "
                              "mail_id envelope_from subject uid hostname boot_id caller_comm unit spooled size "
                              "damaged body_complete entry body how e")
_COLUMNS = _Row._fields.index("body")
_INSERT = (f"INSERT INTO mails (id, {', '.join(_Row._fields[:_COLUMNS])}, first, late) "
           f"VALUES ({', '.join('?' * (_COLUMNS + 3))})")

ORDER = ("sent", "realtime", "boot", "monotonic", "seqnum_id", "seqnum")  # a central journal's (indexed.central_order)


def _regroup(db: sqlite3.Connection, keys: Iterable[str]) -> None:
    """Mark again the copies of each mail of ``keys``: the least in ``ORDER`` is shown
    (``first``, counted in ``agg``), ``copies`` the number of its other entries.  One entry
    written into two files (the same boot, monotonic and wall-clock time and hash: sd-journal
    shows it once) is one: ``first`` is then 2 and the reader shows the copy in the file
    sd-journal lists first."""
    acc: dict[tuple[int, str, str, str], list[int]] = {}
    marks = []
    for key in set(keys):
        rows = db.execute(f"SELECT id, file, kind, first, copies, entry, seqnum_id, boot, monotonic, realtime, xor "
                          f"FROM mails WHERE copy_key = ? ORDER BY {', '.join(ORDER)}", (key,)).fetchall()
        if not rows:
            continue
        n = distinct((r[6], r[7:]) for r in rows) - 1
        lead = 2 if any(r[7:] == rows[0][7:] and r[6] != rows[0][6] for r in rows) else 1
        for k, (id_, fid, kind, first, copies, entry, *_) in enumerate(rows):
            if (k == 0) != bool(first):
                e, sign = entry_from(entry), 1 if k == 0 else -1
                for by, g in _groups(e):
                    slot = acc.setdefault((fid, kind, by, g), [0, 0])
                    slot[0] += sign
                    slot[1] += sign * e.size
            mark = (lead, n) if k == 0 else (0, 0)
            if (first, copies) != mark:
                marks.append((*mark, id_))
    db.executemany("UPDATE mails SET first = ?, copies = ? WHERE id = ?", marks)
    db.executemany("INSERT INTO agg VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (file, kind, by, key) DO UPDATE "
                   "SET mails = mails + excluded.mails, bytes = bytes + excluded.bytes",
                   [(*k, n, size) for k, (n, size) in acc.items()])


def distinct(entries: Iterable[tuple[str, tuple[Any, ...]]]) -> int:
    """How many entries sd-journal shows of (sequence id, (boot, monotonic, realtime, hash)):
    two of one sequence are two; of two sequences, with all four equal, one.

    >>> distinct([("s1", (1,)), ("s1", (1,)), ("s2", (1,)), ("s2", (2,))])
    3
    """
    per: dict[tuple[Any, ...], dict[str, int]] = {}
    for seq, same in entries:
        counts = per.setdefault(same, {})
        counts[seq] = counts.get(seq, 0) + 1
    return sum(max(c.values()) for c in per.values())


QUARTER = 900 * 1_000_000  # µs: every time zone's offset is a whole number of quarter hours


def _groups(e: MailEntry) -> list[tuple[str, str]]:
    """The (stats key, group) pairs one mail is counted in by the ``agg`` table.

    ``user`` is kept by uid and ``day`` by quarter hour (UTC): the reader maps
    them to login names and local days of its own.
    """
    if e.damaged:
        return [("damaged", "")]
    from .render import stats_keys

    out = [(by, k) for by in ("host", "sender", "caller", "unit", "subject", "recipient") for k in stats_keys(e, by)]
    out.append(("user", "" if e.uid is None else str(e.uid)))
    out.append(("day", str(e.realtime // QUARTER)))
    return out


def _own(path: str) -> None:
    """root:adm 0640, as Debian keeps logs: those who may read the system journal."""
    import grp

    try:
        gid = grp.getgrnam("adm").gr_gid
    except KeyError:
        gid = -1
    try:
        os.chown(path, -1, gid)
        os.chmod(path, 0o640)
        os.chown(os.path.dirname(path), -1, gid)
    except PermissionError:
        pass  # not root: the index is then this user's own


def _signed(u64: int) -> int:
    """A 64-bit hash as SQLite stores integers (signed); ``& MASK`` gives it back."""
    return u64 - (1 << 64) if u64 >= 1 << 63 else u64


MASK = (1 << 64) - 1


def _many(v: Any) -> list[bytes]:
    return [] if v is None else v if isinstance(v, list) else [v]


def file_reader(path: str, cursor: str | None, filters: Filters | None = None) -> Journal:
    """A reader on one journal file, placed after ``cursor`` (its entry must be there)."""
    reader = open_reader(Source(files=(path,)))
    kinds = [f"MESSAGE_ID={mid}" for mid in (MSG_MAIL, MSG_REFUSED)]
    if cursor:  # placed first, then the matches (the cursor's entry need not match the filters)
        reader.match(*kinds)
        reader.seek_cursor(cursor)
        if not reader.next() or not reader.at(cursor):
            reader.close()
            raise IndexError_(f"{path}: the indexed cursor is no longer there")
    else:
        reader.head()
    reader.match(*(kinds if filters is None else filters.matches()))
    return reader
