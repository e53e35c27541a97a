"""Split messages: a 30 MB mail exported byte-exact, and damaged copies detected, never written."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kit import harness
from kit.reader import ok, records, run_jm, write_entry

from journal_sendmail.record import MSG_MAIL, MSG_PART

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]


def big_message(size: int) -> bytes:
    """Text lines with ``From `` lines (mbox quoting) and 8-bit bytes, ``size`` bytes in all."""
    head = b"From: logwatch@example.org\nTo: root\nSubject: a very big report\n\n"
    line = b"From the depths: " + os.urandom(24).hex().encode() + b" \xe9\xe8 >From x\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[:size]


@pytest.mark.slow
def test_30mb_message_is_exported_byte_exact(journald: harness.Journald, sendmail: Sendmail, tmp_path: Path) -> None:
    raw = big_message(30 * 1024 * 1024)
    digest = hashlib.sha256(raw).hexdigest()
    assert sendmail(["-i", "root"], raw, timeout=120).returncode == 0
    (entry,) = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1, timeout=60)
    parts = int(harness.one(entry["MAIL_PARTS"]))
    assert parts >= 30
    (rec,) = records(run_jm("list", "--json"))
    assert rec["parts"] == parts and rec["size"] == len(raw) and rec["sha256"] == digest

    assert hashlib.sha256(ok(run_jm("show", "--raw", rec["mail_id"]))).hexdigest() == digest
    ok(run_jm("export", "--format", "eml", "-o", str(tmp_path / "eml")))
    (eml,) = (tmp_path / "eml").iterdir()
    assert hashlib.sha256(eml.read_bytes()).hexdigest() == digest
    from kit.support import json_raw, mboxrd_unescape

    (exported,) = records(run_jm("export", "--format", "json"))
    assert hashlib.sha256(json_raw(exported)).hexdigest() == digest
    mbox = ok(run_jm("export", "--format", "mbox"))
    first_line, rest = mbox.split(b"\n", 1)
    assert first_line.startswith(b"From logwatch@example.org ") or first_line.startswith(b"From root ")
    framed = raw + (b"\n" if raw.endswith(b"\n") else b"\n\n")  # a final newline, then the empty line
    assert mboxrd_unescape(rest) == framed


def copy_without(entry: dict[str, Any], **changes: bytes) -> list[tuple[str, bytes]]:
    """The fields a client wrote (no trusted _ or __ fields), with ``changes``."""
    fields: list[tuple[str, bytes]] = []
    for name, value in entry.items():
        if name.startswith("_") or name in changes:
            continue
        for v in value if isinstance(value, list) else [value]:
            fields.append((name, v))
    return fields + list(changes.items())


def test_damaged_mail_is_reported_and_not_written(journald: harness.Journald, sendmail: Sendmail,
                                                  tmp_path: Path) -> None:  # fmt: skip
    raw = big_message(3 * 1024 * 1024 + 5)
    assert sendmail(["-i", "root"], raw).returncode == 0
    assert sendmail(["root"], b"Subject: small and fine\n\nok\n").returncode == 0
    entries = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=2)
    split = next(e for e in entries if "MAIL_PARTS" in e)
    small = next(e for e in entries if "MAIL_PARTS" not in e)
    assert len(journald.entries(f"MESSAGE_ID={MSG_PART}")) == 3
    # corrupted copies: the split mail under a new id, so none of its parts exist;
    # the small one with a digest that does not match its bytes
    missing_id, bad_id = os.urandom(16).hex(), os.urandom(16).hex()
    write_entry(copy_without(split, MAIL_ID=missing_id.encode(), MAIL_SUBJECT=b"parts missing"))
    write_entry(copy_without(small, MAIL_ID=bad_id.encode(), MAIL_SHA256=b"0" * 64, MAIL_SUBJECT=b"bad digest"))
    journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=4)

    for fmt in ("mbox", "json"):
        proc = run_jm("export", "--format", fmt)
        assert proc.returncode == 65, proc.stderr
        err = proc.stderr.decode()
        assert f"mail {missing_id} is damaged: part 2, 3, 4 of 4 missing" in err
        assert f"mail {bad_id} is damaged: its SHA-256 does not match" in err
        assert missing_id.encode() not in proc.stdout and b"bad digest" not in proc.stdout
        if fmt == "json":
            from kit.support import json_raw

            got = [json.loads(line) for line in proc.stdout.splitlines()]
            assert [json_raw(r) for r in got] == [raw, b"Subject: small and fine\n\nok\n"]
        else:
            assert proc.stdout.count(b"\nSubject: small and fine\n") == 1
            assert raw in proc.stdout.replace(b"\n>From ", b"\nFrom ")
    eml_dir = tmp_path / "eml"
    assert run_jm("export", "--format", "eml", "-o", str(eml_dir)).returncode == 65
    assert len(list(eml_dir.iterdir())) == 2
    for mail_id in (missing_id, bad_id):
        proc = run_jm("show", mail_id)
        assert proc.returncode == 65 and b"damaged" in proc.stderr and proc.stdout == b""
    assert len(records(run_jm("list", "--json"))) == 4  # list still shows what is there
