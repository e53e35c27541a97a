"""Reading standard input: the dot rule, streaming, staging of big messages."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journal_sendmail import body, message


class Feed:
    """os.read-like over bytes, in chunks of a chosen size (to cross chunk edges)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def __call__(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + min(n, self.step)]
        self.pos += len(out)
        return out


DOTS = [
    # (input, message, after the dot)
    pytest.param(b"a\n.\nb\n", b"a\n", b"b\n", id="lone-dot"),
    pytest.param(b"a\r\n.\r\nb\r\n", b"a\r\n", b"b\r\n", id="crlf-dot"),
    pytest.param(b".\nrest", b"", b"rest", id="dot-first-line"),
    pytest.param(b"a\n..\nb\n", b"a\n..\nb\n", None, id="two-dots-not-end"),
    pytest.param(b"a\n. \nb\n", b"a\n. \nb\n", None, id="dot-space-not-end"),
    pytest.param(b"a.\nb\n", b"a.\nb\n", None, id="dot-in-line"),
    pytest.param(b"a\n.", b"a\n", b"", id="dot-at-eof"),
    pytest.param(b"a\n.\r", b"a\n", b"", id="dot-cr-at-eof"),
    pytest.param(b"a\n.\n.\nb", b"a\n", b".\nb", id="second-dot-kept-after"),
    pytest.param(b"no dot\n", b"no dot\n", None, id="no-dot"),
    pytest.param(b"", b"", None, id="empty"),
]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1 << 20], ids=lambda s: f"step{s}")
@pytest.mark.parametrize(("data", "msg", "after"), DOTS)
def test_dot_rule(data: bytes, msg: bytes, after: bytes | None, step: int) -> None:
    raw = message.read(Feed(data, step), ignore_dots=False, part_size=4096, max_size=1 << 20)
    assert raw.head == msg
    assert raw.size == len(msg)
    assert raw.sha256 == hashlib.sha256(msg).hexdigest()
    assert raw.after_dot == (after or b"")
    assert raw.after_dot_size == len(after or b"")


@pytest.mark.parametrize(("data", "msg", "after"), DOTS)
def test_ignore_dots_keeps_everything(data: bytes, msg: bytes, after: bytes | None) -> None:
    raw = message.read(Feed(data, 3), ignore_dots=True, part_size=4096, max_size=1 << 20)
    assert raw.head == data and raw.after_dot == b""


def test_terminal_stops_at_the_dot() -> None:
    feed = Feed(b"a\n.\nnot read\n", 1 << 20)
    raw = message.read(feed, ignore_dots=False, part_size=4096, max_size=1 << 20, read_after_dot=False)
    assert raw.head == b"a\n" and raw.after_dot == b"not read\n"  # what came with the same read is kept


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 5])
def test_big_messages_are_staged_and_chunked(size: int) -> None:
    data = os.urandom(size)
    raw = message.read(Feed(data, 1000), ignore_dots=True, part_size=4096, max_size=1 << 20)
    try:
        assert raw.size == size
        assert raw.head == data[:4096]
        assert (raw.fd is not None) == (size > 4096)
        chunks = list(raw.chunks(4096))
        assert b"".join(chunks) == data
        assert len(chunks) == max(1, -(-size // 4096))
        assert raw.sha256 == hashlib.sha256(data).hexdigest()
    finally:
        raw.close()


def test_truncation_keeps_the_head_and_counts_the_rest() -> None:
    data = os.urandom(10000)
    raw = message.read(Feed(data, 999), ignore_dots=True, part_size=4096, max_size=6000)
    try:
        assert raw.truncated and raw.received == 10000 and raw.size == 6000
        assert b"".join(raw.chunks(4096)) == data[:6000]
        assert raw.sha256 == hashlib.sha256(data[:6000]).hexdigest()
    finally:
        raw.close()


def test_after_dot_is_bounded_but_counted() -> None:
    data = b"a\n.\n" + b"x" * 10000
    raw = message.read(Feed(data, 512), ignore_dots=False, part_size=4096, max_size=1 << 20)
    assert raw.after_dot == b"x" * 4096 and raw.after_dot_size == 10000


def test_from_fd_reads_a_region(tmp_path: object) -> None:
    fd = os.memfd_create("t")
    os.write(fd, b"HEADER\n" + b"message bytes")
    raw = message.from_fd(fd, 7, 13, 4)
    os.close(fd)
    try:
        assert b"".join(raw.chunks(4)) == b"message bytes"
        assert raw.head == b"mess"
        assert raw.sha256 == hashlib.sha256(b"message bytes").hexdigest()
    finally:
        raw.close()


BODIES = [
    pytest.param(b"To: a\n\nbody\n", b"body\n", id="lf"),
    pytest.param(b"To: a\r\n\r\nbody\r\n", b"body\r\n", id="crlf"),
    pytest.param(b"\nbody", b"body", id="no-headers-blank-first"),
    pytest.param(b"To: a\n", b"", id="headers-only"),
]


@pytest.mark.parametrize(("raw", "want"), BODIES)
def test_body_of(raw: bytes, want: bytes) -> None:
    assert body.body_of(raw) == want


TEXTS = [
    pytest.param("plain.eml", None, id="plain-same-as-raw"),
    pytest.param("qp-latin1.eml", "café crème soft break\n", id="quoted-printable-latin1"),
    pytest.param("multipart-base64.eml", "Hello été\n", id="multipart-base64"),
    pytest.param("invalid-utf8.eml", "body \ufffd\ufffd( end\n", id="invalid-utf8-replaced"),
]


@pytest.mark.parametrize(("name", "text"), TEXTS)
def test_readable_text(name: str, text: str | None) -> None:
    from kit.support import DATA

    from journal_sendmail import headers

    raw = (DATA / name).read_bytes()
    found, defects = body.readable_text(raw, headers.parse(raw).content)
    assert found == text
    assert defects == []


CONTENT_LINES = [
    b"Content-Type: text/plain", b"Content-Type: text/plain; charset=UTF-8", b"content-type: TEXT/PLAIN; charset=us-ascii",
    b"Content-Type: text/plain; charset=iso-8859-1", b"Content-Type: text/html; charset=utf-8",
    b"Content-Type: text/plain;\n charset=utf-8", b'Content-Type: text/plain; charset="utf-8"',
    b"Content-Type: multipart/mixed; boundary=b", b"Content-Type : text/plain", b"Content-Type: text/plain (c)",
    b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: BASE64", b"content-transfer-encoding:7bit", b"X-Content-Type-Options: nosniff",
    b"Subject: s", b"To: a@b", b"not a header", b"From: x (Content-Type: text/html)",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(CONTENT_LINES), max_size=5), st.sampled_from([b"\n", b"\r\n"]),
       st.sampled_from([b"caf\xc3\xa9 =C3=A9\n", b"aGVsbG8=\n", b"\xff\xfe plain\n", b"--b\nx\n--b--\n"]))
def test_the_plain_text_shortcut_agrees_with_the_parser(lines: list[bytes], eol: bytes, text: bytes) -> None:
    """body.plain_text answers True only where the header parser's way gives the same text."""
    from journal_sendmail import headers

    raw = eol.join(lines + [b""]) + eol + text
    slow, _ = body.readable_text(raw, headers.parse(raw).content)
    slow_text = slow if slow is not None else body.body_of(raw).decode("utf-8", "replace")
    if body.plain_text(raw):
        assert body.body_of(raw).decode("utf-8", "replace") == slow_text
    assert body.searchable(raw, None) == slow_text
