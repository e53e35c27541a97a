"""The one bounded parse (mailparse.py): linear in its input, and the email package's
own answer wherever the email package finishes.

Agreement: hypothesis makes headers of encoded words (good, broken, glued
together), plain words and white space, and address lists; with the pieces
made tiny (so that every value is parsed in many pieces), the bounded parse
gives the text, and the addresses, that the unbounded email package gives.

Growth: for hostile header blocks of N and 4N bytes (below and above the
caps) the bounded parse takes at most 8 times as long (linear is 4, the
unbounded parser's quadratic 16).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal_sendmail import headers, mailparse


@contextmanager
def tiny_pieces(words: int = 3, size: int = 40) -> Iterator[None]:
    saved = mailparse.PIECE, mailparse.PIECE_WORDS, mailparse.PIECE_ITEMS
    mailparse.PIECE, mailparse.PIECE_WORDS, mailparse.PIECE_ITEMS = size, words, words
    try:
        yield
    finally:
        mailparse.PIECE, mailparse.PIECE_WORDS, mailparse.PIECE_ITEMS = saved


text = st.text(st.sampled_from("aé_ =?-ü€x"), min_size=1, max_size=6)
q_word = text.map(lambda t: "=?utf-8?q?" + "".join(c if c.isalnum() and c.isascii() else
                                                   "".join(f"={b:02X}" for b in c.encode()) for c in t) + "?=")
b_word = text.map(lambda t: "=?utf-8?b?" + __import__("base64").b64encode(t.encode()).decode() + "?=")
latin_word = st.sampled_from(["=?iso-8859-1?q?J=F6rg?=", "=?us-ascii?q?plain?=", "=?ISO-8859-1?B?5A==?="])
broken = st.sampled_from(["=?utf-8?q?", "=?bogus?q?a?=", "=?utf-8?x?a?=", "=?utf-8?b?w6?=", "a=?utf-8?q?b?=",
                          "=?utf-8?q?a?=b", "=?", "?=", "=?=?", "=?utf-8?q?=C3?=", "=41?=", "?=41", "=?utf-8?q?=4",
                          "x?="])
plain = st.sampled_from(["word", "x", "Cron", "<root@h>", "(", ")", '"', "é", "a,b", ";"])
word = st.one_of(q_word, b_word, latin_word, broken, plain)
glued = st.lists(st.one_of(q_word, b_word), min_size=2, max_size=4).map("".join)
space = st.sampled_from([" ", "  ", "\t", " \t "])
unstructured = st.lists(st.tuples(st.one_of(word, glued), space), min_size=1, max_size=40).map(
    lambda ts: "".join(w + s for w, s in ts).rstrip(" \t"))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unstructured)
def test_pieces_agree_with_the_email_package(value: str) -> None:
    whole = policy.default.header_fetch_parse("Subject", value)
    with tiny_pieces():
        assert not mailparse.small(value) or len(value) <= 40
        got = mailparse.POLICY.header_fetch_parse("Subject", value)
    assert str(got) == str(whole)


local = st.text(st.sampled_from("abcxyz09.-_"), min_size=1, max_size=8).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
domain = st.sampled_from(["example.org", "h", "mail.example.co.uk"])
addr = st.builds(lambda lp, d: f"{lp}@{d}", local, domain)
mailbox = st.one_of(
    addr,
    st.builds(lambda n, a: f"{n} <{a}>", st.sampled_from(["Jo", "Mary Ann", "root"]), addr),
    st.builds(lambda n, a: f'"{n}" <{a}>', st.sampled_from(["Smith, Jo", "a (b)", "x"]), addr),
    st.builds(lambda a, c: f"{a} ({c})", addr, st.sampled_from(["Cron Daemon", "the admin"])),
)
address_list = st.lists(mailbox, min_size=1, max_size=30).map(", ".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(address_list)
def test_long_address_lists_give_the_email_packages_addresses(value: str) -> None:
    whole = policy.default.header_fetch_parse("To", value)
    with tiny_pieces():
        got = mailparse.POLICY.header_fetch_parse("To", value)
    assert [a.addr_spec for a in got.addresses] == [a.addr_spec for a in whole.addresses]


def test_a_block_within_the_bounds_is_parsed_as_the_email_package_parses_it() -> None:
    block = (b"From: =?utf-8?q?J=C3=B6rg?= <j@example.org>\nTo: a@x, \"b, c\" <b@y>\n"
             b"Subject: " + b"=?utf-8?q?caf=C3=A9?= " * 200 + b"\n\n")
    got = headers.parse_email(block)
    assert got.values["MAIL_SUBJECT"] == "café" * 200
    assert got.header_recipients == ["a@x", "b@y"]


# -- growth ------------------------------------------------------------------------

SHAPES = {
    "encoded words": lambda n: b"Subject: " + b"=?utf-8?q?a?= " * (n // 14) + b"\n",
    "glued encoded words": lambda n: b"Subject: " + b"=?utf-8?q?a?=" * (n // 13) + b"\n",
    "folded encoded words": lambda n: b"Subject: " + b"=?utf-8?q?a?=\n " * (n // 15) + b"\n",
    "addresses": lambda n: b"To: " + b"a@b.example, " * (n // 13) + b"\n",
    "named addresses": lambda n: b"To: " + b"=?utf-8?q?a?= <a@b>, " * (n // 21) + b"\n",
    "comments": lambda n: b"To: " + b"(" * n + b"\n",
    "many headers": lambda n: b"To: a@b, c@d\n" * (n // 13),
    "many subjects": lambda n: (b"Subject: " + b"=?utf-8?q?a?= " * 500 + b"\n") * (n // 7000 + 1),
}


def cost(parse: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        parse()
        best = min(best, time.process_time() - t)
    return max(best, 0.002)  # below the clock's grain both are "nothing"


@pytest.mark.parametrize("n", [16 * 1024, 256 * 1024], ids=["16KiB", "256KiB"])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_the_parse_grows_linearly(shape: str, n: int) -> None:
    def run(size: int) -> Callable[[], object]:
        block = SHAPES[shape](size) + b"\n" + b"body\n"

        def both() -> object:
            h = headers.parse(block)
            msg, _ = headers.parse_message(block)
            return h, [str(v) for v in msg.values()]  # type: ignore[attr-defined]
        return both

    # The ratio of two CPU times of the same run, not a time: a quadratic parse
    # gives 16 at four times the size, a linear one 4 (a loaded machine slows both).
    small, big = cost(run(n)), cost(run(4 * n))
    assert big / small <= 8, f"{shape}: {small:.3f} s at {n} bytes, {big:.3f} s at {4 * n}"
