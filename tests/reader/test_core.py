"""The reader's core in-process, without a journald: the merges of per-file streams,
``required_literal`` (what the index's trigram search may ask for) and ``to_entry``'s
damage rules (what makes an entry not a mail journal-sendmail wrote).  The end-to-end
answers (index against scan) are test_index's; these pin the rules those rest on."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal_sendmail.reader.entry import WITHHELD, to_entry
from journal_sendmail.reader.indexed import Row, central_order, journal_order, required_literal
from journal_sendmail.schema import MSG_MAIL, PART_SIZE_MAX, PART_SIZE_MIN

RAW = b"Subject: hi\n\nhello\n"


def fields(**over: Any) -> dict[str, Any]:
    """The fields of a mail entry as journal-sendmail writes it (one part), ``over`` replacing some
    (None: the field left out)."""
    d: dict[str, Any] = {
        "MESSAGE_ID": MSG_MAIL.encode(), "MAIL_ID": b"ab" * 16, "MAIL_SIZE": str(len(RAW)).encode(),
        "MAIL_SHA256": hashlib.sha256(RAW).hexdigest().encode(), "MAIL_RAW": RAW, "MAIL_RCPT": b"root",
        "MAIL_SUBJECT": b"hi", "_UID": b"0", "_HOSTNAME": b"web1",
    }
    for k, v in over.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def entry(**over: Any) -> Any:
    return to_entry(fields(**over), 1_700_000_000_000_000, "s=1;i=1")


# --- to_entry: damage rules ------------------------------------------------------------------


def test_a_mail_as_written_is_not_damaged() -> None:
    e = entry()
    assert e.damaged == "" and e.raw == RAW and e.size == len(RAW) and e.parts == 1
    assert e.mail_id == "ab" * 16 and e.recipients == ("root",) and e.headers["subject"] == "hi"
    assert e.uid == 0 and not e.spooled


@pytest.mark.parametrize("over, damage", [
    ({"MAIL_ID": [b"ab" * 16, b"cd" * 16]}, "MAIL_ID given 2 times"),
    ({"MAIL_ID": b"AB" * 16}, "MAIL_ID is not 32 hexadecimal digits"),
    ({"MAIL_ID": b"ab" * 15}, "MAIL_ID is not 32 hexadecimal digits"),
    ({"MAIL_ID": None}, "MAIL_ID is not 32 hexadecimal digits"),
    ({"MAIL_SIZE": b"-5"}, "MAIL_SIZE is not a size journal-sendmail writes"),
    ({"MAIL_SIZE": b"5 "}, "MAIL_SIZE is not a size journal-sendmail writes"),
    ({"MAIL_SIZE": str(2 * 1024**3).encode()}, "MAIL_SIZE is not a size journal-sendmail writes"),
    ({"MAIL_SIZE": [b"19", b"19"]}, "MAIL_SIZE given 2 times"),
    ({"MAIL_SHA256": b"00" * 31}, "MAIL_SHA256 is not a SHA-256 digest"),
    ({"MAIL_SHA256": None}, "MAIL_SHA256 is not a SHA-256 digest"),
    ({"MAIL_PARTS": b"0"}, "MAIL_PARTS is not a part count journal-sendmail writes"),
    ({"MAIL_PARTS": b"1000000000"}, "MAIL_PARTS is not a part count journal-sendmail writes"),
    ({"MAIL_PARTS": b"x"}, "MAIL_PARTS is not a part count journal-sendmail writes"),
    ({"MAIL_RAW": RAW + b"more"}, f"MAIL_RAW of {len(RAW) + 4} bytes is longer than MAIL_SIZE"),
    ({WITHHELD: {"MAIL_SUBJECT": 70_000_000}}, "MAIL_SUBJECT of 70000000 bytes is longer than any part"),
    ({WITHHELD: {"MAIL_RAW": PART_SIZE_MAX + 1}, "MAIL_RAW": None},
     f"MAIL_RAW of {PART_SIZE_MAX + 1} bytes is longer than any part"),
], ids=["id-twice", "id-upper", "id-short", "id-missing", "size-sign", "size-space", "size-ceiling", "size-twice",
        "sha-short", "sha-missing", "parts-0", "parts-huge", "parts-text", "raw-over-size", "withheld-field",
        "withheld-raw"])
def test_damage(over: dict[str, Any], damage: str) -> None:
    e = entry(**over)
    assert damage in e.damaged.split("; "), e.damaged


def test_a_raw_longer_than_its_mail_is_never_kept() -> None:
    e = entry(MAIL_RAW=RAW * 2)
    assert e.raw == b"" and "longer than MAIL_SIZE" in e.damaged


def test_parts_must_fit_the_size() -> None:
    part = b"x" * PART_SIZE_MIN
    size = 3 * PART_SIZE_MIN - 1  # three parts of PART_SIZE_MIN, the last one short
    ok = entry(MAIL_RAW=part, MAIL_SIZE=str(size).encode(), MAIL_PARTS=b"3")
    assert ok.damaged == "" and ok.parts == 3
    bad = entry(MAIL_RAW=part, MAIL_SIZE=str(size).encode(), MAIL_PARTS=b"4")
    assert bad.damaged == f"MAIL_PARTS=4 does not fit MAIL_SIZE={size} in parts of {PART_SIZE_MIN} bytes"
    small = entry(MAIL_RAW=b"x" * 100, MAIL_SIZE=b"300", MAIL_PARTS=b"3")  # parts smaller than any part size
    assert "MAIL_PARTS=3 does not fit" in small.damaged


def test_a_spool_claim_counts_only_from_root_or_its_own_user() -> None:
    flushed = entry(MAIL_SPOOLED=b"yes", MAIL_SPOOL_UID=b"1000", _UID=b"0")  # root's flusher re-injected it
    assert flushed.spooled and flushed.uid == 1000 and flushed.spool_uid == 1000 and flushed.writer_uid == 0
    own = entry(MAIL_SPOOLED=b"yes", MAIL_SPOOL_UID=b"1000", _UID=b"1000")  # a user flushing its own mail
    assert own.spooled and own.uid == 1000
    forged = entry(MAIL_SPOOLED=b"yes", MAIL_SPOOL_UID=b"0", _UID=b"1000")  # a user claiming root's mail
    assert not forged.spooled and forged.uid == 1000 and forged.spool_uid is None
    assert forged.damaged == ""  # a claim, not a damage: the mail is the user's


def test_truncated_only_when_more_than_the_mail() -> None:
    assert entry(MAIL_TRUNCATED=b"1000").truncated == 1000
    assert entry(MAIL_TRUNCATED=str(len(RAW)).encode()).truncated is None
    assert entry(MAIL_TRUNCATED=b"lots").truncated is None


def test_repeated_recipient_fields_are_recipients() -> None:
    assert entry(MAIL_RCPT=[b"root", b"ops@example.org"]).recipients == ("root", "ops@example.org")
    assert entry(MAIL_RCPTS=b"a,b", MAIL_RCPT=None).recipients == ("a", "b")


# --- required_literal: what the trigram index may require --------------------------------------

PATTERNS = ["DegradedArray", r"disk (sda|sdb) full", "a|bcdef", "ab.d", r"backup\.tar", "ab*cdef", "x+yzzy",
            "(?:abc)?defg", r"\d+ errors found", "[Dd]egraded", "caf\u00e9 cr\u00e8me", "100%_done", "abc|abc",
            r"^Subject: (re|fwd): [a-z]+ report$", "colou?r chart"]


@pytest.mark.parametrize("pattern, literal", [
    ("DegradedArray", "DegradedArray"), (r"disk (sda|sdb) full", "disk "), ("a|bcdef", None), ("ab.d", None),
    (r"backup\.tar", "backup.tar"), ("ab*cdef", "cdef"), ("(?:abc)?defg", "defg"),
    (r"\d+ errors found", " errors found"),
    ("caf\u00e9 cr\u00e8me", "caf"), ("100%_done", "done"), ("colou?r chart", "r chart"), ("[Dd]egraded", "egraded"),
    ("abcx|abcy", "abc"), ("ab", None),  # re's parser takes the alternatives' common prefix out
])
def test_required_literal(pattern: str, literal: str | None) -> None:
    assert required_literal(re.compile(pattern)) == literal


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_match_contains_the_literal(pattern: str, data: st.DataObject) -> None:
    """Sound for the index: a mail the scan finds contains what the index looked up."""
    compiled = re.compile(pattern)
    literal = required_literal(compiled)
    text = data.draw(st.from_regex(compiled))
    assert compiled.search(text)
    if literal is not None:
        assert len(literal) >= 3 and literal.isascii() and not set(literal) & set("%_")
        assert literal in text, (pattern, literal, text)


# --- the merges of per-file streams ------------------------------------------------------------


def row(seqnum_id: str, seqnum: int, realtime: int, rank: int, pos: int, boot: str = "b1", sent: int | None = None,
        monotonic: int | None = None) -> Row:
    e = entry()
    e.realtime = realtime
    key = (seqnum_id, seqnum, boot, realtime if monotonic is None else monotonic, realtime, seqnum)
    return Row(key=key, sent=realtime if sent is None else sent, copy_key=f"{seqnum_id}/{seqnum}", entry=e,
               body=None, rank=rank, pos=pos)


def test_one_sequence_comes_in_sequence_order_each_entry_once() -> None:
    rows = [row("s1", n, 1000 + n, rank=0 if n < 50 else 1, pos=n % 50) for n in range(100)]
    copy = row("s1", 49, 1049, rank=1, pos=0)  # the same entry in the next file (an archive's last, the new head)
    shuffled = [*rows, copy]
    random.Random(1).shuffle(shuffled)
    out = journal_order(shuffled)
    assert [r.key[1] for r in out] == list(range(100))
    assert out[49].rank == 0  # the first file listed wins


def test_files_of_many_hosts_merge_by_time_each_file_in_its_order() -> None:
    rng = random.Random(2)
    files = []
    distinct = rng.sample(range(1_000_000), 20 * 30)  # no two entries of different hosts at the same time
    for h in range(20):
        times = sorted(distinct[30 * h:30 * h + 30])
        files.append([row(f"host{h}", n + 1, t, rank=h, pos=n, boot=f"boot{h}") for n, t in enumerate(times)])
    every = [r for f in files for r in f]
    rng.shuffle(every)
    out = journal_order(every)
    assert len(out) == len(every)
    assert [r.key[4] for r in out] == sorted(r.key[4] for r in every)
    for f in files:  # a merge: each file's entries keep their place relative to each other
        assert [r for r in out if r.rank == f[0].rank] == f


def test_an_entry_in_two_files_of_a_central_journal_comes_once() -> None:
    a = [row("h1", n, 100 * n, rank=0, pos=n, boot="x") for n in range(1, 6)]
    b = [row("h2", n, 100 * n + 50, rank=1, pos=n, boot="y") for n in range(1, 4)]
    again = row("h1", 3, 300, rank=1, pos=4, boot="x")  # h1's entry 3 uploaded again, into h2's file
    out = journal_order([*a, *b, again])
    assert [(r.key[0], r.key[1]) for r in out] == [("h1", 1), ("h2", 1), ("h1", 2), ("h2", 2), ("h1", 3),
                                                   ("h2", 3), ("h1", 4), ("h1", 5)]


def test_the_central_order_is_total_so_per_file_streams_merge_lazily() -> None:
    """What the index's newest-first page rests on: merging each file's stream (each sorted by
    central_order) with a heap gives exactly the full sort, oldest or newest first, and the
    first N of the lazy merge are the first N of the sort."""
    rng = random.Random(3)
    files = []
    for h in range(50):
        skew = rng.choice((0, 0, -3_600_000_000))  # a host an hour behind: its mail sent "earlier"
        rows = []
        for n in range(40):
            t = rng.randrange(10_000_000)
            rows.append(row(f"s{h}", n + 1, t, rank=h, pos=n, boot=f"b{h % 7}", sent=t + skew,
                            monotonic=rng.randrange(100)))
        rows.append(row(f"s{h}", 41, rows[0].key[4], rank=h, pos=40, boot=f"b{h % 7}", sent=rows[0].sent,
                        monotonic=rows[0].key[3]))  # ties on the stamps: decided by the sequence number
        files.append(rows)
    every = [r for f in files for r in f]
    keys = [central_order(r) for r in every]
    assert len(set(keys)) == len(keys)  # total: no two rows compare equal
    for newest_first in (False, True):
        want = sorted(every, key=central_order, reverse=newest_first)
        streams = [sorted(f, key=central_order, reverse=newest_first) for f in files]
        merged = heapq.merge(*streams, key=central_order, reverse=newest_first)
        assert list(merged) == want
        page = itertools.islice(heapq.merge(*streams, key=central_order, reverse=newest_first), 50)
        assert list(page) == want[:50]
