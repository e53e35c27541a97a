"""HTTP done right, on raw sockets: no request body taken (a request smuggled in one is
never answered), the connection closed after an error, no Server header even on
http.server's own 414 and 431, ``Host: [::1]`` answered, a deadline for the whole
request head."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from kit.net import free_port, make_ca
from kit.web import Serve, start_serve, stop


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, host: str = "127.0.0.1", family: int = socket.AF_INET) -> bytes:
    """Send ``data``, read until the server closes the connection (a bounded wait)."""
    with socket.socket(family) as s:
        s.settimeout(15)
        s.connect((host, port))
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
        raise AssertionError(f"the server kept the connection open: {got[:300]!r}")


SMUGGLED = b"GET /api/mails?uid=0 HTTP/1.1\r\nHost: localhost\r\n\r\n"


def drip(s: socket.socket, data: bytes) -> float | None:
    """Send ``data`` a byte every half second, as a slow client does; the seconds
    after which the server closed the connection, or None if it never did."""
    started = time.monotonic()
    for byte in data:
        try:
            s.send(bytes([byte]))
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    return time.monotonic() - started
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        except OSError:
            return time.monotonic() - started
        time.sleep(0.5)  # pacing of the slow client
    return None


@pytest.mark.parametrize("framing", [
    b"Content-Length: %d\r\n" % len(SMUGGLED),
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED),
], ids=["content-length", "chunked", "two-lengths"])
def test_body_refused_and_smuggled_request_not_answered(inbox: Serve, framing: bytes) -> None:
    body = SMUGGLED if b"Content-Length" in framing else b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    got = exchange(port_of(inbox.url), b"GET / HTTP/1.1\r\nHost: localhost\r\n" + framing + b"\r\n" + body)
    assert got.startswith(b"HTTP/1.1 413 ")
    assert got.count(b"HTTP/1.1 ") == 1 and b"mail_id" not in got
    assert b"\r\nConnection: close\r\n" in got


def test_connection_closed_after_an_error(inbox: Serve) -> None:
    """A 404 ends the connection: a pipelined second request is not answered."""
    got = exchange(port_of(inbox.url), b"GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n" + SMUGGLED)
    assert got.startswith(b"HTTP/1.1 404 ") and got.count(b"HTTP/1.1 ") == 1 and b"mail_id" not in got


def test_keep_alive_still_works(inbox: Serve) -> None:
    """Two good requests on one connection are both answered (closing is for errors)."""
    with socket.create_connection(("127.0.0.1", port_of(inbox.url)), timeout=15) as s:
        s.sendall(b"GET /static/style.css HTTP/1.1\r\nHost: localhost\r\n\r\n" * 2)
        got = b""
        while got.count(b"HTTP/1.1 200 ") < 2:
            chunk = s.recv(65536)
            assert chunk, got[:300]
            got += chunk


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n", b"414"),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(120)) + b"\r\n", b"431"),
], ids=["414-long-url", "431-long-header", "431-many-headers"])
def test_own_errors_without_server_header(inbox: Serve, request_bytes: bytes, status: bytes) -> None:
    got = exchange(port_of(inbox.url), request_bytes)
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert got.startswith(b"HTTP/1.") and got.split(b" ", 2)[1] == status, got[:200]
    assert b"\r\nserver:" not in head
    assert b"\r\ncontent-security-policy: default-src 'none'" in head


def test_host_ipv6_loopback(inbox: Serve) -> None:
    port = free_port()
    _, proc = start_serve(listen=f"[::1]:{port}")
    try:
        for host in (b"[::1]", b"[::1]:%d" % port):
            got = exchange(port, b"GET /api/mails?n=1 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n",
                           "::1", socket.AF_INET6)
            assert got.startswith(b"HTTP/1.1 200 "), (host, got[:200])
        got = exchange(port, b"GET / HTTP/1.1\r\nHost: [::1].evil.example\r\n\r\n", "::1", socket.AF_INET6)
        assert got.startswith(b"HTTP/1.1 421 ")
    finally:
        stop(proc)


def test_head_deadline_is_for_the_whole_head(inbox: Serve) -> None:
    """A byte every half second restarts no timer: the connection is closed within the
    head's deadline (10 s), with the head unfinished."""
    from journal_sendmail.reader.web.server import HEAD_DEADLINE

    with socket.create_connection(("127.0.0.1", port_of(inbox.url)), timeout=5) as s:
        cut = drip(s, b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 200)
        assert cut is not None and HEAD_DEADLINE - 1 < cut < HEAD_DEADLINE + 3, cut


@pytest.mark.parametrize(("headers", "status"), [
    (b"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n", b"403"),
    (b"Sec-Fetch-Site: same-site\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n", b"403"),
    (b"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: iframe\r\n", b"403"),
    (b"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n", b"200"),
    (b"Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n", b"200"),
    (b"Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n", b"200"),
], ids=["image-from-another-site", "fetch-from-another-port", "frame-from-another-site", "link-followed",
        "own-page", "typed-in"])
def test_other_sites_pages_make_no_work(inbox: Serve, headers: bytes, status: bytes) -> None:
    """A page of another site (or another port of this host, a local attacker's) may not
    have a reader's browser load searches from the inbox; following a link is fine."""
    got = exchange(port_of(inbox.url), b"GET /?q=nothing-matches HTTP/1.1\r\nHost: localhost\r\n" + headers
                   + b"Connection: close\r\n\r\n")
    assert got.split(b" ", 2)[1] == status, got[:200]


def test_tls_handshake_has_one_deadline(tmp_path: Path) -> None:
    """A TLS client that dribbles its hello a byte at a time is cut off within the deadline."""
    from journal_sendmail.reader.web.auth import hash_password
    from journal_sendmail.reader.web.server import HEAD_DEADLINE

    _, certs = make_ca(tmp_path, "localhost")
    (cert, key), pw = certs["localhost"], tmp_path / "pw"
    pw.write_text(f"admin:{hash_password('x')}\n")
    url, proc = start_serve("--auth", str(pw), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        hello = bytes.fromhex("160301") + b"\x02\x00" + b"\x01" * 512  # a record header, then a slow body
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=5) as s:
            cut = drip(s, hello)
        assert cut is not None and cut < HEAD_DEADLINE + 3, cut
    finally:
        stop(proc)
