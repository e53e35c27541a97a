"""The fields of the entry a python-systemd reader is on, a forged long field left unread.

python-systemd's ``_get_all()`` copies every field whole, and libsystemd 252
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
from typing import Any

from ..record import PART_SIZE_MAX
from .entry import WITHHELD, count

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


def _journal(reader: Any) -> int | None:
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


def raw_length(reader: Any) -> int | None:
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


def entry_fields(reader: Any) -> dict[str, Any]:
    """The fields of the entry ``reader`` is on, as ``_get_all()`` gives them, except a field
    longer than any part, and a MAIL_RAW longer than MAIL_SIZE: never read, given by name
    and length at ``WITHHELD`` (the entry is damaged)."""
    j = _journal(reader)
    if j is None:
        return reader._get_all()  # type: ignore[no-any-return]
    long = _long_fields(j)
    if not long:
        return reader._get_all()  # type: ignore[no-any-return]
    withheld = {name.decode("ascii", "replace"): n for name, n in long
                if n > PART_SIZE_MAX or (name == b"MAIL_RAW" and _beyond_size(reader, n))}
    if not withheld:
        return reader._get_all()  # type: ignore[no-any-return]
    return _without(j, withheld)


def _beyond_size(reader: Any, n: int) -> bool:
    """Is a MAIL_RAW of ``n`` bytes longer than the entry's MAIL_SIZE (or has it none)?"""
    try:
        size = count(reader._get("MAIL_SIZE"), PART_SIZE_MAX * 1024)
    except KeyError:
        size = None
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
