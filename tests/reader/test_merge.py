"""The central journal's order, in process: the index's lazy merge (SQL's index on the order,
heapq with the journal's tail) against query.central's sort, and the pieces it is made of."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit.reader import export, remote

from journal_sendmail import record
from journal_sendmail.reader import index, indexed, query
from journal_sendmail.reader.entry import to_entry
from journal_sendmail.reader.filters import Filters
from journal_sendmail.reader.source import Source, open_reader

MAIL = record.MSG_MAIL.encode()


def entries(host: int, n: int, start: int, step: int, rng: random.Random) -> list[list[tuple[bytes, bytes]]]:
    """``n`` mail entries from host ``host``: stamps ``step`` µs apart from ``start``, some equal.

    The entries' own times differ across hosts (a day per host): query.central reads a mail
    back by its cursor, and sd-journal's seek to a cursor can land on another file's entry of
    the same microsecond."""
    boot = f"{host + 1:032x}".encode()
    out = []
    for i in range(n):
        sent = start + (i // 2 if rng.random() < 0.2 else i) * step  # ties in the sender's stamp
        out.append([(b"__REALTIME_TIMESTAMP", str(sent + host * 86_400_000_000).encode()),
                    (b"__MONOTONIC_TIMESTAMP", str(1000 + i).encode()), (b"_BOOT_ID", boot),
                    (b"_HOSTNAME", f"host-{host}".encode()), (b"_UID", b"0"),
                    (b"MESSAGE", f"mail {i} of {host}".encode()),
                    (b"MESSAGE_ID", MAIL), (b"MAIL_ID", f"{host:016x}{i:016x}".encode()),
                    (b"_SOURCE_REALTIME_TIMESTAMP", str(sent).encode())])
    return out


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[list[tuple[bytes, bytes]]]]]:
    monkeypatch.setenv("JOURNAL_MAIL_INDEX_DIR", str(tmp_path / "index"))
    rng = random.Random(3)
    d = tmp_path / "remote"
    d.mkdir()
    made = {}
    for h in range(6):
        mine = entries(h, 30, 1_700_000_000_000_000 + h * 7, 1000 + h, rng)
        if h == 1:
            mine = mine[20:] + mine[:20] + mine[5:9]  # uploaded late, then a part again (copies)
        made[h] = mine
        remote(export(mine), d / f"remote-h{h}.journal")
    remote(export(made[2]), d / "remote-h2-again.journal")  # one upload in two files
    yield d, made[3]


def both(d: Path, filters: Filters, lines: int | None, reverse: bool) -> tuple[list[tuple[str, int]], ...]:
    source = Source(directory=str(d))
    idx = index.open_for_reading(source)
    assert idx is not None
    try:
        late, got = indexed.mails(idx, source, filters, lambda: open_reader(source), lines, reverse, True)
        a = [(e.cursor, e.duplicates) for e in got]
    finally:
        idx.close()
    reader = open_reader(source)
    try:
        late2, scanned = query.central(reader, filters, lines, reverse)
        b = [(e.cursor, e.duplicates) for e in scanned]
    finally:
        reader.close()
    assert late == late2
    return a, b


def build(d: Path) -> None:
    source = Source(directory=str(d))
    b = index.Builder(source, lambda: open_reader(source))
    idx = b.open()
    try:
        b.update(idx)
    finally:
        idx.close()


@pytest.mark.parametrize(("lines", "reverse"), list(itertools.product([None, 0, 1, 7, 500], [False, True])))
def test_the_lazy_merge_is_the_scans_order(fleet: tuple[Path, list[list[tuple[bytes, bytes]]]], lines: int | None,
                                           reverse: bool) -> None:
    d, more = fleet
    build(d)
    a, b = both(d, Filters(), lines, reverse)
    assert a == b and (a or lines == 0)
    # the journal's tail: a new host's file and copies into an indexed one, merged with the index's rows
    remote(export(entries(9, 12, 1_700_000_000_000_500, 2500, random.Random(5))), d / "remote-h9.journal")
    remote(export(more[10:14]), d / "remote-h3.journal")
    a, b = both(d, Filters(), lines, reverse)
    assert a == b
    a, b = both(d, Filters(hosts=("host-3",)), lines, reverse)
    assert a == b and (a or lines == 0)
    if lines is None:
        assert sum(n for _, n in a) == 4  # the copies the tail added to h3's indexed mails


def test_copies_are_one_mail_and_one_entry_in_two_files_is_one(fleet: tuple[Path, Any]) -> None:
    d, _ = fleet
    build(d)
    a, b = both(d, Filters(hosts=("host-1",)), None, False)
    assert a == b and len(a) == 30 and sum(n for _, n in a) == 4
    a, b = both(d, Filters(hosts=("host-2",)), None, False)
    assert a == b and len(a) == 30 and sum(n for _, n in a) == 0


@pytest.mark.parametrize("dense", [5, 10**9], ids=["row-by-row", "set"])
@pytest.mark.parametrize("q", ["HOST-3", "host-", "nowhere-at-all", "st"])
def test_the_search_through_the_index_is_the_scans(fleet: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch,
                                                    dense: int, q: str) -> None:
    """The web's search from the index (its full-text set, or row by row in order when the
    word is in many mails) finds what the scan finds, in the same order."""
    d, _ = fleet
    build(d)
    monkeypatch.setattr(indexed, "DENSE", dense)
    source = Source(directory=str(d))
    idx = index.open_for_reading(source)
    assert idx is not None
    try:
        for lines, reverse in [(None, True), (7, False)]:
            _, got = indexed.mails(idx, source, Filters(), lambda: open_reader(source), lines, reverse, True, q)
            reader = open_reader(source)
            try:
                _, scanned = query.central(reader, Filters(), None, reverse)
                want = [e.cursor for e in indexed.searched(scanned, q, lambda e: e.text or "")]
            finally:
                reader.close()
            if lines is not None:
                want = want[-lines:] if not reverse else want[:lines]
            assert [e.cursor for e in got] == want and (want or q == "nowhere-at-all")
    finally:
        idx.close()


def test_distinct_counts_what_sd_journal_shows() -> None:
    assert index.distinct([]) == 0
    assert index.distinct([("s1", (1,)), ("s1", (1,))]) == 2  # one sequence: two entries
    assert index.distinct([("s1", (1,)), ("s2", (1,))]) == 1  # the same entry in two files
    assert index.distinct([("s1", (1,)), ("s2", (1,)), ("s2", (2,))]) == 2


def test_central_order_is_total_and_the_scans() -> None:
    rows = [indexed.Row(("s", i, "b", m, t, 0), sent, "k", None, None)  # type: ignore[arg-type]
            for i, (sent, t, m) in enumerate(itertools.product([5, 3], [2, 1], [9, 8]))]
    ordered = sorted(rows, key=indexed.central_order)
    assert [(r.sent, r.key[4], r.key[3]) for r in ordered] == sorted((r.sent, r.key[4], r.key[3]) for r in rows)
    assert len({indexed.central_order(r) for r in rows}) == len(rows)


def test_search_matches_fields_and_body_in_any_case() -> None:
    e = to_entry({"MESSAGE_ID": MAIL, "MAIL_ID": b"a" * 32, "_HOSTNAME": b"web7", "MAIL_SUBJECT": b"Disk"},
                       1, "s=1;i=1;b=1;m=1;t=1;x=1")
    assert indexed.search_matches(e, "WEB7", lambda: "")
    assert indexed.search_matches(e, "needle", lambda: "a NEEDLE in it")
    assert not indexed.search_matches(e, "nothing", lambda: "a needle in it")
