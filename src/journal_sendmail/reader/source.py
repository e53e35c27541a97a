"""Source: where journal-mail reads, and the one wrapper over python-systemd's reader.

Reads with python-systemd's low-level ``_Reader`` (``_next()``/``_get_all()``,
twice as fast as ``systemd.journal.Reader``'s converters, and without its
~16 ms import).  This is the only module that touches it: ``Journal`` is the
typed reader the rest of the reader wing uses; opening a source (the local
journal, ``-D``, ``--file``, a namespace), the permission check and reading
an entry again by its cursor live here.

The fields of an entry, a forged long field left unread: python-systemd's
``_get_all()`` copies every field whole, and libsystemd 252
neither stops at the data threshold when it decompresses nor cuts an
uncompressed field: a forged 100 MiB MAIL_RAW cost ~100 MiB decompressed
plus ~100 MiB for Python's copy (measured: a 221 MiB peak for ``list``), or,
stored as it is (random bytes do not compress), the mapped pages of the
file on top (923 MiB for eight).  So the lengths of the entry's fields are
asked first, straight from libsystemd (``sd_journal_enumerate_data``: a
pointer and a length, nothing copied; a field not compressed is not even
read); a field longer than any part, or a MAIL_RAW longer than the entry's
MAIL_SIZE, is never copied: the other fields are read without it, and it is
given by name and length at ``WITHHELD``, which ``to_entry`` calls damaged.

The price: a field's length costs libsystemd 252 a decompression of it, so
every compressed field (a mail's MAIL_RAW, its MAIL_TEXT) is decompressed
twice (measured: +23 µs an entry, ``_get_all()`` alone being 17 µs).

python-systemd has no call for a field's length, so the ``sd_journal *`` is
read out of its ``_Reader`` object (``{PyObject_HEAD; sd_journal *j;}``,
python-systemd 235: the type's size is checked), and checked once per
process against the reader's own answer (the first entry's time).  Without
libsystemd, or when a check fails, the fields come from ``_get_all()`` as
before (to_entry still drops a forged MAIL_RAW; it has cost its copy).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from .. import users
from ..errors import UsageError
from ..schema import PART_SIZE_MAX
from .entry import WITHHELD, MailEntry, count, to_entry
from .errors import NoPermission, NotFound

LOCAL_ONLY = 1  # SD_JOURNAL_LOCAL_ONLY
DATA_THRESHOLD = PART_SIZE_MAX + len("MAIL_RAW=") + 1  # a MAIL_RAW one byte too long is seen as such
Fields = dict[str, Any]  # an entry's fields as ``_get_all()`` gives them: bytes, or a list of them


@dataclass(frozen=True)
class Source:
    """Where to read: the local journal (all empty), a directory, files or a namespace."""

    directory: str | None = None
    files: tuple[str, ...] = ()
    namespace: str | None = None

    @property
    def central(self) -> bool:
        """A directory or files: a central journal (systemd-journal-remote's, one file per host)."""
        return self.directory is not None or bool(self.files)


def source_of(directory: str | None = None, files: tuple[str, ...] | list[str] = (),
              namespace: str | None = None) -> Source:
    if sum((directory is not None, bool(files), namespace is not None)) > 1:
        raise UsageError("give only one of -D, --file and --namespace")
    return Source(directory=directory, files=tuple(files), namespace=namespace)


class _Raw(Protocol):
    """What is used of python-systemd's ``_Reader``."""

    data_threshold: int

    def _next(self, skip: int) -> int: ...
    def _previous(self, skip: int) -> int: ...
    def _get_all(self) -> Fields: ...
    def _get(self, name: str) -> bytes | list[bytes]: ...
    def _get_realtime(self) -> int: ...
    def _get_cursor(self) -> str: ...
    def add_match(self, match: bytes) -> None: ...
    def flush_matches(self) -> None: ...
    def seek_head(self) -> None: ...
    def seek_tail(self) -> None: ...
    def seek_realtime(self, us: int) -> None: ...
    def seek_cursor(self, cursor: str) -> None: ...
    def test_cursor(self, cursor: str) -> bool: ...
    def query_unique(self, name: str) -> set[bytes]: ...
    def wait(self, us: int) -> int: ...
    def fileno(self) -> int: ...
    def process(self) -> int: ...
    def close(self) -> None: ...


class Journal:
    """A reader on one source: matches, seeks, steps, and the entry it is on."""

    def __init__(self, raw: _Raw) -> None:
        self.raw = raw

    def close(self) -> None:
        self.raw.close()

    def fileno(self) -> int:
        return self.raw.fileno()

    def process(self) -> int:
        return self.raw.process()

    def wait(self, us: int) -> int:
        return self.raw.wait(us)

    def match(self, *matches: str | bytes) -> None:
        """Only the entries of these FIELD=value matches (none: every entry)."""
        self.raw.flush_matches()
        for m in matches:
            self.raw.add_match(m if isinstance(m, bytes) else m.encode("utf-8", "surrogateescape"))

    def head(self) -> None:
        self.raw.seek_head()

    def tail(self) -> None:
        self.raw.seek_tail()

    def seek_time(self, us: int) -> None:
        self.raw.seek_realtime(us)

    def seek_cursor(self, cursor: str) -> None:
        self.raw.seek_cursor(cursor)

    def at(self, cursor: str) -> bool:
        return self.raw.test_cursor(cursor)

    def next(self) -> bool:
        return bool(self.raw._next(1))

    def previous(self) -> bool:
        return bool(self.raw._previous(1))

    def steps(self, forward: bool = True) -> Iterator[int]:
        """Step on, entry by entry, giving each one's time (µs)."""
        step, realtime = self.raw._next if forward else self.raw._previous, self.raw._get_realtime
        while step(1):
            yield realtime()

    def realtime(self) -> int:
        return self.raw._get_realtime()

    def cursor(self) -> str:
        return self.raw._get_cursor()

    def get(self, name: str) -> bytes | None:
        """One field of the current entry (its first value); None when it has none."""
        try:
            v = self.raw._get(name)
        except KeyError:
            return None
        return v[0] if isinstance(v, list) else v

    def single(self, name: str) -> bytes | None:
        """One field of the current entry; None when it is missing or given more than once."""
        try:
            v = self.raw._get(name)
        except KeyError:
            return None
        return v if isinstance(v, bytes) else None

    def unique(self, name: str) -> set[bytes]:
        return self.raw.query_unique(name)

    def fields(self) -> Fields:
        return entry_fields(self.raw)

    def raw_length(self) -> int | None:
        return raw_length(self.raw)

    def entry(self, realtime: int | None = None) -> MailEntry:
        """The mail entry the reader is on."""
        return to_entry(self.fields(), self.realtime() if realtime is None else realtime, self.cursor())

    def reread(self, cursor: str) -> MailEntry | None:
        """The entry at ``cursor`` read again, with its raw bytes (None: gone, vacuumed)."""
        self.seek_cursor(cursor)
        if not self.next() or not self.at(cursor):
            return None
        return to_entry(self.fields(), self.realtime(), cursor)


def open_reader(source: Source) -> Journal:
    """A reader on ``source``, with no field truncated."""
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
    return Journal(cast(_Raw, r))


def opener(source: Source) -> Callable[[], Journal]:
    """Opens another reader on ``source`` (for part entries, or a mail read again)."""
    return lambda: open_reader(source)


def open_journal(source: Source, say: Callable[[str], None] | None = None) -> Journal:
    """A reader on the chosen journal; says so (``say``, unless None) when permissions hide mail."""
    readable, unreadable = readability(source)
    who = _who()
    if unreadable and not readable:
        raise NoPermission(
            f"none of the {len(unreadable)} journal files is readable by {who}: root and the groups "
            "adm and systemd-journal read all mail; other users read only their own, which journald "
            "keeps in a file of their own (user-UID.journal) only with persistent storage"
        )
    if not readable and not source.central:
        where = f"namespace {source.namespace}" if source.namespace else "/run/log/journal or /var/log/journal"
        raise NotFound(f"no journal files in {where} (is systemd-journald running?)")
    if unreadable and say is not None:
        say(f"note: showing only the mail readable by {who}, normally your own: {len(unreadable)} of "
            f"{len(readable) + len(unreadable)} journal files are not readable (root and the groups adm "
            "and systemd-journal see all mail)")
    return open_reader(source)


def _who() -> str:
    uid = os.geteuid()
    name = users.name_of(uid)
    return f"user {name} (uid {uid})" if name else f"uid {uid}"


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


# -- an entry's fields, a forged long field left unread ---------------------------------

_PREFIX = len("MAIL_RAW=")
_CHECK_SIZE = 64 * 1024  # a field longer than this is looked at before it is read
_NAME_MAX = 64  # journal field names are at most 64 bytes
_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4
_J_OFFSET = object.__basicsize__  # the sd_journal * right after PyObject_HEAD


class _Lib:
    """libsystemd's calls, typed; ``ok``: the reader layout was checked (None: not yet)."""

    def __init__(self) -> None:
        from systemd import _reader  # type: ignore[import-not-found, import-untyped, unused-ignore]

        self.cls: Any = _reader._Reader
        lib = ctypes.CDLL("libsystemd.so.0")  # the one python-systemd is linked with, already loaded
        self.get_data = lib.sd_journal_get_data
        self.get_data.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_size_t)]
        self.get_data.restype = ctypes.c_int
        self.restart = lib.sd_journal_restart_data
        self.restart.argtypes = [ctypes.c_void_p]
        self.restart.restype = None
        self.enumerate = lib.sd_journal_enumerate_data
        self.enumerate.argtypes = self.get_data.argtypes[:1] + self.get_data.argtypes[2:]
        self.enumerate.restype = ctypes.c_int
        self.realtime = lib.sd_journal_get_realtime_usec
        self.realtime.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
        self.realtime.restype = ctypes.c_int
        self.madvise = ctypes.CDLL(None, use_errno=True).madvise
        self.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.madvise.restype = ctypes.c_int
        self.ok: bool | None = None if self.cls.__basicsize__ == _J_OFFSET + ctypes.sizeof(ctypes.c_void_p) else False


_lib: _Lib | None = None
_tried = False


def _journal(reader: _Raw) -> int | None:
    """The ``sd_journal *`` of ``reader`` once its layout is checked, else None."""
    global _lib, _tried
    if not _tried:
        _tried = True
        try:
            _lib = _Lib()
        except (OSError, AttributeError, ImportError):
            _lib = None
    lib = _lib
    if lib is None or lib.ok is False or not isinstance(reader, lib.cls):
        return None
    j: int | None = ctypes.c_void_p.from_address(id(reader) + _J_OFFSET).value
    if not j:
        return None
    if lib.ok is None:  # once: libsystemd's word on the entry's time is the reader's
        t = ctypes.c_uint64()
        try:
            if lib.realtime(j, ctypes.byref(t)) < 0:
                return None  # on no entry: checked at the next one
            lib.ok = t.value == reader._get_realtime()
        except OSError:
            return None
        if not lib.ok:
            return None
    return j


def raw_length(reader: _Raw) -> int | None:
    """The length of the current entry's (first) MAIL_RAW value, read nothing of it;
    -1 when it has none, None when it cannot be known without reading it."""
    j = _journal(reader)
    if j is None:
        return None
    assert _lib is not None
    ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
    r = _lib.get_data(j, b"MAIL_RAW", ctypes.byref(ptr), ctypes.byref(size))
    if r < 0:
        return -1 if r == -2 else None  # -ENOENT
    if size.value > PART_SIZE_MAX and ptr.value:
        _release(ptr.value, size.value)
    return size.value - _PREFIX


def _release(address: int, size: int) -> None:
    """Give back the pages of a long field libsystemd decompressed: its buffer lives as long
    as the journal file is open, one per file.  Whole pages inside the field only (malloc's
    bookkeeping is outside it); their content is scratch, overwritten by the next field
    decompressed.  For a field not compressed it is the file's mapping: dropped pages are
    read again from the file if ever wanted."""
    assert _lib is not None
    start = -(-address // _PAGE) * _PAGE
    end = (address + size) // _PAGE * _PAGE
    if end > start:
        _lib.madvise(start, end - start, _MADV_DONTNEED)


def _long_fields(j: int) -> list[tuple[bytes, int]]:
    """(name, length of the value) of the current entry's fields longer than ``_CHECK_SIZE``,
    nothing copied (one pass over the entry's fields, as ``_get_all()`` makes: libsystemd
    decompresses each compressed field once, whatever is asked of it)."""
    assert _lib is not None
    ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
    bptr, bsize = ctypes.byref(ptr), ctypes.byref(size)
    enumerate_data = _lib.enumerate
    out = []
    _lib.restart(j)
    while enumerate_data(j, bptr, bsize) > 0:
        if size.value > _CHECK_SIZE and ptr.value:
            name = ctypes.string_at(ptr.value, min(size.value, _NAME_MAX + 1)).partition(b"=")[0]
            out.append((name, size.value - len(name) - 1))
            if size.value > PART_SIZE_MAX:
                _release(ptr.value, size.value)
    return out


def entry_fields(reader: _Raw) -> Fields:
    """The fields of the entry ``reader`` is on, as ``_get_all()`` gives them, except a field
    longer than any part, and a MAIL_RAW longer than MAIL_SIZE: never read, given by name
    and length at ``WITHHELD`` (the entry is damaged)."""
    j = _journal(reader)
    if j is None:
        return reader._get_all()
    long = _long_fields(j)
    if not long:
        return reader._get_all()
    withheld = {name.decode("ascii", "replace"): n for name, n in long
                if n > PART_SIZE_MAX or (name == b"MAIL_RAW" and _beyond_size(reader, n))}
    if not withheld:
        return reader._get_all()
    return _without(j, withheld)


def _beyond_size(reader: _Raw, n: int) -> bool:
    """Is a MAIL_RAW of ``n`` bytes longer than the entry's MAIL_SIZE (or has it none)?"""
    try:
        v = reader._get("MAIL_SIZE")
    except KeyError:
        return True
    size = count(v, PART_SIZE_MAX * 1024) if isinstance(v, bytes) else None
    return size is None or n > size


def _without(j: int, withheld: dict[str, int]) -> dict[str, Any]:
    """The fields, every one named in ``withheld`` left unread (and any MAIL_RAW)."""
    assert _lib is not None
    out: dict[str, Any] = {WITHHELD: withheld}
    ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
    _lib.restart(j)
    while _lib.enumerate(j, ctypes.byref(ptr), ctypes.byref(size)) > 0:
        if not ptr.value:
            continue
        length = size.value
        name, eq, _ = ctypes.string_at(ptr.value, min(length, _NAME_MAX + 1)).partition(b"=")
        key = name.decode("ascii", "replace")
        if not eq or key in withheld or key == "MAIL_RAW":  # (a second, shorter MAIL_RAW: damaged all the same)
            if length > PART_SIZE_MAX:
                _release(ptr.value, length)
            continue
        value = ctypes.string_at(ptr.value + len(name) + 1, length - len(name) - 1)
        old = out.get(key)
        if old is None:
            out[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            out[key] = [old, value]
    return out
