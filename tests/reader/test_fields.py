"""reader/fields.py: an entry's fields as python-systemd's ``_get_all()`` gives them, but a
MAIL_RAW longer than MAIL_SIZE or than any part given as its length only, never read.

In-process, on a real journald: the ctypes path must be the one taken on this system
(else the 200 MiB bound of tests/reader/test_hostile_mail.py would rest on luck), give
exactly ``_get_all()`` for genuine mail, and fall back to it when the layout check fails.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kit import harness
from kit.reader import write_entry

from journal_sendmail.reader import source as fields
from journal_sendmail.reader.entry import WITHHELD, to_entry
from journal_sendmail.reader.source import Source, open_reader
from journal_sendmail.record import MSG_MAIL

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]


def entries(reader: Any) -> Iterator[Any]:
    reader.add_match(f"MESSAGE_ID={MSG_MAIL}".encode())
    reader.seek_head()
    while reader._next(1):
        yield reader


def test_genuine_mail_is_get_all_exactly(journald: harness.Journald, sendmail: Sendmail) -> None:
    mails = [b"Subject: one\n\nsmall\n", b"Subject: two\n\n" + b"a long line of a big mail\n" * 100_000,
             b"Subject: three\nTo: a@example.org, b@example.org\n\nthree\n"]
    for m in mails:
        assert sendmail(["root", "x@example.org"], m).returncode == 0
    journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=3)
    reader = open_reader(Source()).raw
    try:
        seen = 0
        for r in entries(reader):
            assert fields.entry_fields(r) == r._get_all()
            assert fields.raw_length(r) == len(r._get("MAIL_RAW"))
            seen += 1
        assert seen == 3
        assert fields._lib is not None and fields._lib.ok is True, "the ctypes path is not taken here"
    finally:
        reader.close()


def forged(raw_size: int, claimed: int) -> list[tuple[str, bytes]]:
    raw = b"Subject: long\n\n" + b"x" * (raw_size - 15)
    return [("MESSAGE", b"f"), ("MESSAGE_ID", MSG_MAIL.encode()), ("MAIL_ID", b"f" * 32),
            ("MAIL_SUBJECT", b"long"), ("MAIL_RCPT", b"a"), ("MAIL_RCPT", b"b"), ("MAIL_SIZE", str(claimed).encode()),
            ("MAIL_SHA256", hashlib.sha256(raw).hexdigest().encode()), ("MAIL_RAW", raw)]


@pytest.mark.parametrize(("raw_size", "claimed", "withheld"), [(200_000, 100, True), (200_000, 200_000, False),
                                                             (200_000, 10**9, False), (60_000, 100, False)])
def test_a_raw_longer_than_its_size_is_not_read(journald: harness.Journald, raw_size: int, claimed: int,
                                                withheld: bool) -> None:
    """Past 64 KiB a MAIL_RAW is held against MAIL_SIZE before it is read (shorter: read, and
    to_entry finds it out all the same)."""
    write_entry(forged(raw_size, claimed))
    journald.entries("MESSAGE=f", wait_for=1)
    reader = open_reader(Source()).raw
    try:
        (r,) = entries(reader)
        d, whole = fields.entry_fields(r), r._get_all()
        if withheld:
            assert d[WITHHELD] == {"MAIL_RAW": raw_size} and "MAIL_RAW" not in d
            assert {k: v for k, v in d.items() if k != WITHHELD} == {k: v for k, v in whole.items() if k != "MAIL_RAW"}
            # (MAIL_RCPT given twice: a list, as ever)
        else:
            assert d == whole
        e = to_entry(d, 0, "")
        assert (e.raw == b"") == bool(e.damaged) == (claimed < raw_size)
        assert e.recipients == ("a", "b")
    finally:
        reader.close()


def test_falls_back_to_get_all(journald: harness.Journald, monkeypatch: pytest.MonkeyPatch) -> None:
    write_entry(forged(200_000, 100))
    journald.entries("MESSAGE=f", wait_for=1)

    class NotAReader:  # another layout: never read as python-systemd's
        def _get_all(self) -> dict[str, Any]:
            return {"MAIL_RAW": b"x"}

    assert fields.entry_fields(NotAReader()) == {"MAIL_RAW": b"x"}
    assert fields.raw_length(NotAReader()) is None
    reader = open_reader(Source()).raw
    try:
        (r,) = entries(reader)
        fields.raw_length(r)
        assert fields._lib is not None
        monkeypatch.setattr(fields._lib, "ok", False)  # the check failed: as before
        assert fields.raw_length(r) is None and fields.entry_fields(r) == r._get_all()
        assert "longer than MAIL_SIZE" in to_entry(fields.entry_fields(r), 0, "").damaged
    finally:
        reader.close()
