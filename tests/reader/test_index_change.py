"""The mail index exact under change, each test with a journal of its own: vacuum,
a damaged or older index, a killed indexer, the follower."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import harness
from kit.index import INDEX_DIR, both, fill, send
from kit.reader import flush_to_persistent, ok, run_jm, spawn_jm, wait_until


def count_rows(name: str = "local.sqlite3") -> int:
    db = sqlite3.connect(f"file:{INDEX_DIR / name}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM mails").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def fresh(journald: harness.Journald) -> Iterator[harness.Journald]:
    for f in INDEX_DIR.glob("*"):
        f.unlink()
    flush_to_persistent(journald)
    yield journald


def test_vacuumed_entries_are_never_shown_and_are_pruned(fresh: harness.Journald) -> None:
    fill(300, seed=1)
    subprocess.run(["journalctl", "--rotate"], check=True, timeout=60)
    fill(40, seed=2)
    fresh.sync()
    ok(run_jm("index"))
    assert count_rows() == 340
    subprocess.run(["journalctl", "--rotate"], check=True, timeout=60)
    p = subprocess.run(["journalctl", "--vacuum-files=1"], capture_output=True, timeout=60)  # archived files go
    assert p.returncode == 0, p.stderr
    with_index, scan = both("list", "--json")
    assert with_index == scan and scan.count(b"\n") < 340  # what the journal lost, the index does not show
    p = run_jm("index")
    assert p.returncode == 0 and b"pruned" in p.stderr, p.stderr
    assert count_rows() == scan.count(b"\n")


def test_a_damaged_or_older_index_is_never_read_and_is_rebuilt(fresh: harness.Journald) -> None:
    fill(200, seed=3)
    fresh.sync()
    ok(run_jm("index"))
    path = INDEX_DIR / "local.sqlite3"
    db = sqlite3.connect(str(path))
    db.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")  # an index written by an older version
    db.execute("UPDATE mails SET entry = replace(entry, 'report', 'WRONG')")
    db.commit()
    db.close()
    with_index, scan = both("list", "--json")
    assert with_index == scan and b"WRONG" not in with_index
    p = run_jm("index")
    assert p.returncode == 0 and b"rebuilding" in p.stderr and count_rows() == 200, p.stderr
    for f in INDEX_DIR.glob("local.sqlite3*"):
        f.write_bytes(b"not a database, " * 1000)  # damaged
    with_index, scan = both("list", "--json")
    assert with_index == scan
    p = run_jm("index")
    assert p.returncode == 0 and b"rebuilding" in p.stderr and count_rows() == 200, p.stderr
    assert both("list", "--json") == (scan, scan)


def test_a_killed_indexer_resumes_without_a_duplicate(fresh: harness.Journald) -> None:
    fill(25_000, seed=4)
    fresh.sync()
    proc = spawn_jm("index", stderr=subprocess.DEVNULL)

    def some_rows() -> bool:
        try:
            return count_rows() > 0
        except sqlite3.Error:
            return False

    wait_until(some_rows, timeout=120, what="the indexer's first batch")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = count_rows()
    assert 0 < partial < 25_000, partial
    ok(run_jm("index"))
    db = sqlite3.connect(f"file:{INDEX_DIR / 'local.sqlite3'}?mode=ro", uri=True)
    cursors = "SELECT COUNT(*), COUNT(DISTINCT json_extract(entry, '$.cursor')) FROM mails"
    total, distinct = db.execute(cursors).fetchone()
    db.close()
    assert total == distinct == 25_000


def test_follow_keeps_the_index_current_and_stops_on_sigterm(fresh: harness.Journald, bindir: Path) -> None:
    fill(10, seed=5)
    fresh.sync()
    proc = spawn_jm("index", "--follow", stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (INDEX_DIR / "local.sqlite3").exists() and count_rows() == 10, what="the first pass")
        for n in range(3):
            assert send(bindir, ["root"], f"Subject: live {n}\n\nx\n".encode()).returncode == 0
        wait_until(lambda: count_rows() == 13, timeout=30, what="the new mail in the index")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
