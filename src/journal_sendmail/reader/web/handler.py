"""The HTTP side of ``journal-mail serve``: one connection's requests, read under one
deadline per request head, never with a body, answered with the inbox's headers
(none naming the server), closed after an error; who asked (the kernel's word, or
a password) decides what is answered.  The listening socket and its limits are
``server.py``.
"""

from __future__ import annotations

import io as _io
import ipaddress
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from ..output import Io
from .app import Inbox, Response
from .auth import Busy, Passwords
from .peers import Readers

HEAD_DEADLINE = 10.0  # seconds for a whole request head (from the wait for it), not per byte
IO_TIMEOUT = 30.0  # seconds one send may block (a client that reads nothing)


def host_header_name(value: str) -> str:
    """The name in a Host header, without port or brackets, lower case.

    >>> [host_header_name(h) for h in ("[::1]", "[::1]:8025", "LocalHost:80", "127.0.0.1", "")]
    ['::1', '::1', 'localhost', '127.0.0.1', '']
    >>> [host_header_name(h) for h in ("[::1].evil.example", "127.0.0.1:x", "[::1]:80x")]
    ['[::1].evil.example', '127.0.0.1:x', '[::1]:80x']
    """
    value = value.strip().lower()
    if value.startswith("[") and "]" in value:
        name, rest = value[1:].split("]", 1)
    elif value.count(":") == 1:
        name, rest = value.split(":", 1)
        rest = ":" + rest
    else:
        return value
    return name if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else value


class HeadReader(_io.RawIOBase):
    """The connection's reading side, with one deadline for a whole request head
    (the socket's own timeout starts again with every byte: a client sending one byte
    a second would hold its thread for ever)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request head took too long")
            self.sock.settimeout(min(left, IO_TIMEOUT))
        return self.sock.recv_into(b)


class Served(Protocol):
    """What a connection's handler needs of ``server.Server`` (named here, not
    imported: the server imports this module)."""

    inbox: Inbox
    io: Io
    passwords: Passwords | None
    readers: Readers
    unix: bool

    def peer_uid(self, sock: socket.socket, client_address: Any) -> int | None: ...


class Handler(BaseHTTPRequestHandler):
    server: Served  # type: ignore[assignment]
    server_version = "journal-mail"
    timeout = IO_TIMEOUT
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.head = HeadReader(self.connection)
        self.rfile = _io.BufferedReader(self.head)
        self.peer = self.server.peer_uid(self.connection, self.client_address) \
            if self.server.passwords is None or self.server.unix else None
        self.who = f"unix:uid={self.peer}" if self.server.unix else str(self.client_address[0])

    def handle_one_request(self) -> None:
        self.head.deadline = time.monotonic() + HEAD_DEADLINE
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.head.deadline = None
        self.connection.settimeout(IO_TIMEOUT)
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or ()}
        if self.headers.get_all("Transfer-Encoding") or lengths - {"0"}:
            # Never read: whatever follows is not taken as the next request (a proxy that
            # reuses its upstream connection would otherwise hand one user's answer to another).
            self.send_error(413, "this inbox takes no request body")
            return False
        return True

    def handle_expect_100(self) -> bool:
        return True  # no "100 Continue": the body is refused above

    def send_response(self, code: int, message: str | None = None) -> None:
        """As http.server's, without a Server header (on its own 400, 414 and 431 too)."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, 414, 431, 413 above) with the
        inbox's headers, and the connection closed."""
        self.close_connection = True
        short = self.responses.get(code, ("error", ""))[0]
        body = f"{code} {message or short}\n".encode("utf-8", "replace")
        self.send_response(code, message)
        for k, v in Response(code, body, "text/plain; charset=utf-8").all_headers():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        line = (getattr(self, "requestline", "") or "")[:200]
        self.server.io.say(f'{self.who} - "{line.encode("ascii", "backslashreplace").decode()}" {code}')

    def do_GET(self) -> None:
        self.answer(head=False)

    def do_HEAD(self) -> None:
        self.answer(head=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # POST, PUT, DELETE …: 405, the inbox changes nothing
            return lambda: self.answer(head=False)
        raise AttributeError(name)

    def answer(self, head: bool) -> None:
        started = time.monotonic()
        srv = self.server
        user = "-"
        if srv.passwords is not None:
            try:
                user = srv.passwords.check_header(self.headers.get("Authorization")) or ""
            except Busy:
                self.finish_answer(Response(503, b"too many password checks now; try again\n",
                                            "text/plain; charset=utf-8", [("Retry-After", "2")]),
                                   head, started, "-")
                return
            if not user:
                res = Response(401, b"who are you?\n", "text/plain; charset=utf-8",
                               [("WWW-Authenticate", 'Basic realm="journal-mail", charset="UTF-8"')])
                self.finish_answer(res, head, started, "-")
                return
        elif not srv.readers.allowed(self.peer):
            res = Response(403, b"this inbox shows its mail only to users who may read the journal "
                           b"(root, adm, systemd-journal) or with --auth\n", "text/plain; charset=utf-8")
            self.finish_answer(res, head, started, f"uid={self.peer}")
            return
        elif not srv.unix and not self.host_allowed():
            res = Response(421, b"this inbox answers only to its loopback address (DNS rebinding?)\n",
                           "text/plain; charset=utf-8")
            self.finish_answer(res, head, started, user)
            return
        if srv.passwords is None:
            user = f"uid={self.peer}"
        if not self.fetch_allowed():
            res = Response(403, b"a request another site's page made: only this inbox's own pages, "
                           b"or a link followed\n", "text/plain; charset=utf-8")
            self.finish_answer(res, head, started, user)
            return
        try:
            res = srv.inbox.handle(self.command, self.path)
        except Exception as e:  # a bug, or the OS: one line in the log, a 500 to the browser, never a traceback
            srv.io.say(f"internal error: {type(e).__name__}: {e}")
            res = Response(500, b"internal error: see the server's log\n", "text/plain; charset=utf-8")
        self.finish_answer(res, head, started, user)

    def fetch_allowed(self) -> bool:
        """What a browser says made the request (Sec-Fetch-*): a page of another site, or of
        another port of this host, may have a reader's browser follow a link here, but not
        load images, scripts, frames or fetches from it (each could start a search of the
        whole journal: the reader's uid, the attacker's choice of work)."""
        site = self.headers.get("Sec-Fetch-Site")
        if site in (None, "same-origin", "none"):
            return True
        return self.headers.get("Sec-Fetch-Mode") == "navigate" and \
            self.headers.get("Sec-Fetch-Dest") in ("document", None)

    def host_allowed(self) -> bool:
        """Without passwords, only a Host header naming the loopback: a page elsewhere that
        points a name of its own at 127.0.0.1 (DNS rebinding) reads nothing."""
        host = host_header_name(self.headers.get("Host") or "")
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def finish_answer(self, res: Response, head: bool, started: float, user: str) -> None:
        self.send_response_only(res.status)
        self.send_header("Date", self.date_time_string())
        for k, v in res.all_headers():
            self.send_header(k, v)
        sent = 0
        try:
            if isinstance(res.body, bytes):
                self.send_header("Content-Length", str(len(res.body)))
                if res.status >= 400:  # after an error, nothing more on this connection
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if not head:
                    self.wfile.write(res.body)
                    sent = len(res.body)
            else:
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if not head:
                    for chunk in res.body:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # the journal failed under a stream already begun: end it, say why
            self.close_connection = True
            self.server.io.say(f"internal error: {type(e).__name__}: {e}")
        finally:
            close = getattr(res.body, "close", None)
            if close is not None:
                close()
        ms = (time.monotonic() - started) * 1000
        self.server.io.say(f'{self.who} {user or "-"} "{self.command} {self.path}" '
                           f"{res.status} {sent} {ms:.0f}ms")

    def log_message(self, format: str, *args: Any) -> None:
        line = format % args
        if not line.startswith(("Request timed out", '"')):  # an idle keep-alive connection: no news
            self.server.io.say("http: " + line)
