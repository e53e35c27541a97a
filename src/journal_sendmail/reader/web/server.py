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

import errno
import grp
import ipaddress
import os
import resource
import socket
import ssl
import stat
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from ...errors import EX_OK, ConfigError, UsageError
from ..output import Io, Signals
from ..source import Source, open_journal
from .app import Inbox
from .auth import Passwords
from .handler import HEAD_DEADLINE, Handler
from .peers import READER_GROUPS, Readers, tcp_peer_uid, unix_peer_uid

DEFAULT_LISTEN = "127.0.0.1:8025"
UNIT_SOCKET = "/run/journal-mail/web.sock"  # where journal-mail-web.service listens

MAX_CONNECTIONS = 128  # open at once; beyond: 503 and closed
MAX_REJECTING = 16  # 503s being written at once; beyond: closed unanswered


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


def serve(io: Io, source: Source, index: bool, listen: list[str], auth: str | None, tls_cert: str | None,
          tls_key: str | None, quiet: bool = False) -> int:
    addresses = [parse_listen(text) for text in dict.fromkeys(listen or [DEFAULT_LISTEN])]
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("give both --tls-cert and --tls-key, or neither")
    for address in addresses:
        if isinstance(address, tuple) and not loopback(address[0]) and not auth:
            raise UsageError(f"refusing to serve mail on {address[0]}, beyond the loopback, without --auth "
                             "(a password file; see journal-mail(1), SERVE)")
    passwords = Passwords.load(auth) if auth else None
    context = None
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"--tls-cert/--tls-key: {getattr(e, 'strerror', None) or e}") from None
    open_journal(source, None if quiet else io.say).close()  # no journal, or none readable: say so now
    more_files()
    stopping = threading.Event()
    inbox = Inbox(source, index, io, stopping)
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

    def on_stop() -> None:
        stopping.set()
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()

    Signals.install(hup=False, on_stop=on_stop)
    scheme = "https" if context else "http"
    for server, address in zip(servers, addresses, strict=True):
        if isinstance(address, str):
            where = f"{scheme} on unix:{address}"
        else:
            shown = f"[{address[0]}]" if ":" in address[0] else address[0]
            where = f"{scheme}://{shown}:{server.server_address[1]}/"
        if passwords is not None:
            who = f"to the users of the password file {auth}"
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
