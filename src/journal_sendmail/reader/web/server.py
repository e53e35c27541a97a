"""``journal-mail serve``: the HTTP(S) server around the inbox's pages, its address
and password checks, access log (stderr: the journal under systemd) and SIGTERM.

``http.server`` is enough: a few admins read a log host's mail, each page is one
journal or index read; a thread per request keeps a live page's events stream
from holding up the others.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ...errors import EX_OK, ConfigError, UsageError
from ..output import Io
from .app import Inbox, Response
from .auth import Passwords

DEFAULT_LISTEN = "127.0.0.1:8025"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) as an address and port; UsageError otherwise.

    >>> parse_listen("127.0.0.1:8025"), parse_listen("[::1]:80"), parse_listen("localhost:1")
    (('127.0.0.1', 8025), ('::1', 80), ('localhost', 1))
    """
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: want HOST:PORT, e.g. 127.0.0.1:8025 or [::1]:8025")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--listen {text!r}: HOST must be an IP address or localhost") from None
    return host, int(port)


def loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], inbox: Inbox, passwords: Passwords | None, io: Io,
                 tls: ssl.SSLContext | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.inbox, self.passwords, self.io, self.tls = inbox, passwords, io, tls
        super().__init__(address, Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the request's own thread: the TLS handshake too, so that a client that
        connects and says nothing holds up only itself."""
        if self.tls is not None:
            request.settimeout(Handler.timeout)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.io.say(f"{client_address[0]}: TLS: {getattr(e, 'reason', None) or e}")
                return
        super().finish_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "journal-mail"
    timeout = 30  # seconds a client may take to send its request (or a TLS handshake)
    sys_version = ""
    protocol_version = "HTTP/1.1"

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
            user = srv.passwords.check_header(self.headers.get("Authorization")) or ""
            if not user:
                self.send_response_only(401)
                res = Response(401, b"who are you?\n", "text/plain; charset=utf-8",
                               [("WWW-Authenticate", 'Basic realm="journal-mail", charset="UTF-8"')])
                self.finish_answer(res, head, started, "-")
                return
        elif not self.host_allowed():
            self.send_response_only(421)
            res = Response(421, b"this inbox answers only to its loopback address (DNS rebinding?)\n",
                           "text/plain; charset=utf-8")
            self.finish_answer(res, head, started, user)
            return
        try:
            res = srv.inbox.handle(self.command, self.path)
        except Exception as e:  # a bug, or the OS: one line in the log, a 500 to the browser, never a traceback
            srv.io.say(f"internal error: {type(e).__name__}: {e}")
            res = Response(500, b"internal error: see the server's log\n", "text/plain; charset=utf-8")
        self.send_response_only(res.status)
        self.finish_answer(res, head, started, user)

    def host_allowed(self) -> bool:
        """Without passwords, only a Host header naming the loopback: a page elsewhere that
        points a name of its own at 127.0.0.1 (DNS rebinding) reads nothing."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def finish_answer(self, res: Response, head: bool, started: float, user: str) -> None:
        self.send_header("Date", self.date_time_string())
        for k, v in res.all_headers():
            self.send_header(k, v)
        sent = 0
        try:
            if isinstance(res.body, bytes):
                self.send_header("Content-Length", str(len(res.body)))
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
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # the journal failed under a stream already begun: end it, say why
            self.close_connection = True
            self.server.io.say(f"internal error: {type(e).__name__}: {e}")
        finally:
            close = getattr(res.body, "close", None)
            if close is not None:
                close()
        ms = (time.monotonic() - started) * 1000
        self.server.io.say(f'{self.client_address[0]} {user or "-"} "{self.command} {self.path}" '
                           f"{res.status} {sent} {ms:.0f}ms")

    def log_message(self, format: str, *args: Any) -> None:
        line = format % args
        if not line.startswith("Request timed out"):  # a browser's idle keep-alive connection: no news
            self.server.io.say("http: " + line)


def serve(args: argparse.Namespace, io: Io, parser: Callable[[], argparse.ArgumentParser]) -> int:
    host, port = parse_listen(args.listen or DEFAULT_LISTEN)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    if not loopback(host) and not args.auth:
        raise UsageError(f"refusing to serve mail on {host}, beyond the loopback, without --auth "
                         "(a password file; see journal-mail(1), SERVE)")
    passwords = Passwords.load(args.auth) if args.auth else None
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"--tls-cert/--tls-key: {getattr(e, 'strerror', None) or e}") from None
    from ..commands import open_journal

    open_journal(args, io).close()  # no journal, or none readable: say so now, not on each page
    stopping = threading.Event()
    server = Server((host, port), Inbox(args, io, parser, stopping), passwords, io, context)

    def on_stop(signum: int, frame: object) -> None:
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    scheme = "https" if context else "http"
    shown = f"[{host}]" if ":" in host else host
    io.say(f"serving the mail on {scheme}://{shown}:{server.server_address[1]}/"
           f"{' (password file ' + args.auth + ')' if args.auth else ''}")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    io.say("stopped")
    return EX_OK
