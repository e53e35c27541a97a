"""``journal-mail serve``: the HTTP(S) server around the inbox's pages: where it listens
(loopback TCP or a unix socket), who may ask (the kernel's word on the peer, or a
password), the limits that hold before anyone is known, the access log (stderr:
the journal under systemd) and SIGTERM.

Why ``http.server`` hardened here and not waitress (python3-waitress, bookworm and
trixie): the boundary is the peer's uid, which must be read from the accepted socket
(SO_PEERCRED, or the client socket's owner) before a byte of the request counts, and
waitress hands a WSGI application no socket; and waitress answers every request,
event streams included, from a fixed pool of worker threads, so a few open pages
(each holds a stream) would starve the rest.  The limits it would have given are few
and each is a few lines here: a cap on connections and on streams, a deadline for
the whole request head, no request body, a closed connection after an error, a
backed-off accept when file descriptors run out.
"""

from __future__ import annotations

import argparse
import errno
import grp
import io as _io
import ipaddress
import os
import resource
import signal
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ...errors import EX_OK, ConfigError, UsageError
from ..output import Io
from .app import Inbox, Response
from .auth import Busy, Passwords
from .peers import READER_GROUPS, Readers, tcp_peer_uid, unix_peer_uid

DEFAULT_LISTEN = "127.0.0.1:8025"
UNIT_SOCKET = "/run/journal-mail/web.sock"  # where journal-mail-web.service listens

MAX_CONNECTIONS = 128  # open at once; beyond: 503 and closed
MAX_REJECTING = 16  # 503s being written at once; beyond: closed unanswered
HEAD_DEADLINE = 10.0  # seconds for a whole request head (from the wait for it), not per byte
IO_TIMEOUT = 30.0  # seconds one send may block (a client that reads nothing)


def parse_listen(text: str) -> tuple[str, int] | str:
    """``HOST:PORT`` (``[v6]:PORT``) as an address and port, ``unix:PATH`` as the path;
    UsageError otherwise.

    >>> parse_listen("127.0.0.1:8025"), parse_listen("[::1]:80"), parse_listen("localhost:1")
    (('127.0.0.1', 8025), ('::1', 80), ('localhost', 1))
    >>> parse_listen("unix:/run/journal-mail/web.sock")
    '/run/journal-mail/web.sock'
    """
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/") or len(path.encode()) > 100:
            raise UsageError(f"--listen {text!r}: want unix:/ABSOLUTE/PATH (at most 100 bytes)")
        return path
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: want HOST:PORT, e.g. 127.0.0.1:8025 or [::1]:8025, "
                         "or unix:/PATH")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--listen {text!r}: HOST must be an IP address or localhost") from None
    return host, int(port)


def loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


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


class Server(ThreadingHTTPServer):
    """One listening socket, a thread per connection up to MAX_CONNECTIONS."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the backlog: a burst waits there (socketserver's 5 drops SYNs: seconds of retry)

    def __init__(self, address: tuple[str, int] | str, inbox: Inbox, passwords: Passwords | None, io: Io,
                 tls: ssl.SSLContext | None = None) -> None:
        self.unix = isinstance(address, str)
        if isinstance(address, str):
            self.address_family = socket.AF_UNIX
        else:
            self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.inbox, self.passwords, self.io, self.tls = inbox, passwords, io, tls
        self.readers = Readers()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.rejecting = threading.BoundedSemaphore(MAX_REJECTING)
        self.backoff = 0.0
        super().__init__(address, Handler)  # type: ignore[arg-type]

    def server_bind(self) -> None:
        if not self.unix:
            super().server_bind()
            return
        path = str(self.server_address)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a socket left by a server that was killed
        except FileNotFoundError:
            pass
        old = os.umask(0o177)  # nobody else may connect until the mode is set below
        try:
            self.socket.bind(path)
        finally:
            os.umask(old)
        mode, group = socket_mode(self.passwords is not None)
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, mode)
        self.server_name, self.server_port = path, 0

    def server_close(self) -> None:
        super().server_close()
        if self.unix:
            try:
                os.unlink(str(self.server_address))
            except OSError:
                pass

    def get_request(self) -> tuple[Any, Any]:
        """accept(), backed off while file descriptors are used up: the listening socket
        stays readable then, and retrying at once would spin (the clients wait in the
        backlog until a connection ends)."""
        try:
            conn, addr = self.socket.accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                if not self.backoff:
                    self.io.say(f"accept: {e.strerror}: waiting for connections to end")
                self.backoff = min(1.0, (self.backoff or 0.05) * 2)
                time.sleep(self.backoff)
            raise
        self.backoff = 0.0
        return conn, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.reject(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.slots.release()

    def reject(self, request: socket.socket) -> None:
        """503 to a connection over the cap, written by a short-lived thread (a bounded
        number of them; beyond, the connection is closed unanswered)."""
        if not self.rejecting.acquire(blocking=False):
            request.close()
            return

        def answer() -> None:
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                b"Content-Length: 25\r\nRetry-After: 2\r\nConnection: close\r\n\r\n"
                                b"too many connections now\n")
                request.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and request.recv(65536):
                    pass  # what it sent, read, so that closing resets nothing before it read the answer
            except OSError:
                pass
            finally:
                request.close()
                self.rejecting.release()

        threading.Thread(target=answer, daemon=True).start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's own thread: the TLS handshake too, so that a client that
        connects and says nothing holds up only itself."""
        if self.tls is not None:
            request.settimeout(HEAD_DEADLINE)
            # One deadline for the whole handshake too (the timeout is per read): cut after it.
            timer = threading.Timer(HEAD_DEADLINE, _cut, (request,))
            timer.daemon = True
            timer.start()
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.io.say(f"{client_address[0] if client_address else 'unix'}: TLS: "
                            f"{getattr(e, 'reason', None) or e}")
                return
            finally:
                timer.cancel()
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line in the log, never a traceback (a thread that could not start, …)."""
        e = sys.exc_info()[1]
        self.io.say(f"internal error: {type(e).__name__}: {e}")

    def peer_uid(self, sock: socket.socket, client_address: Any) -> int | None:
        if self.unix:
            return unix_peer_uid(sock)
        host, port = self.server_address[:2]
        return tcp_peer_uid((client_address[0], client_address[1]), (str(host), int(port)))


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def socket_mode(with_passwords: bool) -> tuple[int, int | None]:
    """The unix socket's mode and group: with passwords anyone may connect (the password
    decides); without, only the group that reads the journal, when this server is in it
    (never wider than the peer check: that is the boundary, the mode a second wall)."""
    if with_passwords:
        return 0o666, None
    mine = {os.getegid(), *os.getgroups()}
    for name in READER_GROUPS:
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        if gid in mine or os.geteuid() == 0:
            return 0o660, gid
    return 0o600, None


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


class Handler(BaseHTTPRequestHandler):
    server: Server
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


def more_files() -> None:
    """The soft limit on open files raised to the hard one (at most 65536): each event
    stream and page holds a journal reader with every journal file open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def serve(args: argparse.Namespace, io: Io, parser: Callable[[], argparse.ArgumentParser]) -> int:
    listen = args.listen if isinstance(args.listen, list) else [args.listen] if args.listen else []
    addresses = [parse_listen(text) for text in dict.fromkeys(listen or [DEFAULT_LISTEN])]
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    for address in addresses:
        if isinstance(address, tuple) and not loopback(address[0]) and not args.auth:
            raise UsageError(f"refusing to serve mail on {address[0]}, beyond the loopback, without --auth "
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
    more_files()
    stopping = threading.Event()
    inbox = Inbox(args, io, parser, stopping)
    servers: list[Server] = []
    try:
        for address in addresses:
            try:
                servers.append(Server(address, inbox, passwords, io, context))
            except OSError as e:
                where = f"unix:{address}" if isinstance(address, str) else f"{address[0]}:{address[1]}"
                raise ConfigError(f"--listen {where}: {e.strerror or e}") from None
    except BaseException:
        for s in servers:
            s.server_close()
        raise

    def on_stop(signum: int, frame: object) -> None:
        stopping.set()
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    scheme = "https" if context else "http"
    for server, address in zip(servers, addresses, strict=True):
        if isinstance(address, str):
            where = f"{scheme} on unix:{address}"
        else:
            shown = f"[{address[0]}]" if ":" in address[0] else address[0]
            where = f"{scheme}://{shown}:{server.server_address[1]}/"
        if passwords is not None:
            who = f"to the users of the password file {args.auth}"
        elif server.readers.privileged:
            who = "to root and the members of adm and systemd-journal (the peer's uid, from the kernel)"
        else:
            who = f"to uid {os.geteuid()} (and root) only"
        io.say(f"serving the mail on {where} {who}")
    others = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
              for s in servers[1:]]
    for t in others:
        t.start()
    try:
        servers[0].serve_forever(poll_interval=0.5)
        for t in others:
            t.join()
    finally:
        for s in servers:
            s.server_close()
    io.say("stopped")
    return EX_OK
