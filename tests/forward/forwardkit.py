"""Helpers for the forwarder's tests: a real SMTP smarthost (aiosmtpd) and a real webhook (http.server) on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from readerkit import ENV, READER

MSG_FORWARD = "cda5a93613b14aa58d5d8dd0dbbe3c61"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes  # as on the wire, CRLF line ends

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    def header(self, name: str) -> str:
        return str(self.message[name] or "")


@dataclass
class Handler:
    """The smarthost's behaviour: answer DATA with ``reply`` (250, or a 4xx/5xx to refuse)."""

    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    reply: str = "250 2.0.0 Ok: queued"
    delay: float = 0.0
    raw: list[bytes] = field(default_factory=list)  # every DATA as the server read it off the wire

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        self.raw.append(envelope.original_content)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reply.startswith("250"):
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self.reply


class Smarthost:
    """aiosmtpd on 127.0.0.1: plain, STARTTLS (``tls``) or implicit TLS (``smtps``), with AUTH (``users``)."""

    def __init__(self, tls: ssl.SSLContext | None = None, smtps: bool = False,
                 users: dict[str, str] | None = None, port: int | None = None, size_limit: int | None = None) -> None:
        self.handler = Handler()
        self.size_limit = size_limit
        self.port = port or free_port()
        self.tls, self.smtps, self.users = tls, smtps, users
        self.controller: Controller | None = None

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.users is not None and \
            self.users.get(data.login.decode()) == data.password.decode()
        return AuthResult(success=ok)

    def start(self) -> Smarthost:
        kw: dict[str, Any] = {}
        if self.size_limit is not None:
            kw.update(data_size_limit=self.size_limit)
        if self.tls is not None and not self.smtps:
            kw.update(tls_context=self.tls, require_starttls=True)
        if self.users is not None:
            kw.update(authenticator=self._auth, auth_required=True, auth_require_tls=self.tls is not None)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     ssl_context=self.tls if self.smtps else None, server_hostname="localhost", **kw)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received


class Webhook:
    """http.server on 127.0.0.1 recording every POST; answers ``status``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.status = 200
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if any(len(v) > 500 for v in self.headers.values()):  # as ntfy does: 431 for a header too big
                    self.send_response(431)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if hook.status == 200:
                    hook.posts.append((dict(self.headers.items()), body))
                    hook.paths.append(self.path)
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.posts]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def forward(config: Path, *args: str, timeout: float = 120, cap: int | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    """journal-mail forward --config CONFIG ARGS, to completion; ``cap``: under that RLIMIT_DATA (bytes)."""
    limit = ["prlimit", f"--data={cap}", "--"] if cap is not None else []
    return subprocess.run([*limit, *READER, "forward", "--config", str(config), *args], capture_output=True,
                          env=ENV, timeout=timeout)


def spawn_forward(config: Path, *args: str, err: Path) -> subprocess.Popen[bytes]:
    with open(err, "ab") as f:
        return subprocess.Popen([*READER, "forward", "--config", str(config), *args], stdout=f, stderr=f, env=ENV)


def events(kind: str | None = None) -> list[dict[str, Any]]:
    """The forwarder's own journal entries (FORWARD_EVENT = ``kind``)."""
    found = harness.read_entries([f"MESSAGE_ID={MSG_FORWARD}"])
    if kind is None:
        return found
    return [e for e in found if harness.one(e["FORWARD_EVENT"]).decode() == kind]


def attachment(r: Received) -> bytes:
    """The message/rfc822 part of a wrapped mail, as the receiver gets it, line ends back to LF."""
    data = r.data.replace(b"\r\n", b"\n")
    boundary = r.message.get_boundary()
    assert boundary
    parts = data.split(b"\n--" + boundary.encode())
    (part,) = [p for p in parts if b"Content-Type: message/rfc822" in p.split(b"\n\n", 1)[0]]
    body = part.split(b"\n\n", 1)[1]
    return body


def make_ca(d: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for localhost/127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    def run(*a: str) -> None:
        subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=d, timeout=60)

    # keyUsage on the CA, key identifiers on the server: Python 3.13 verifies strictly (VERIFY_X509_STRICT)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=journal-mail test CA", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    run("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
        "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


class Hostile:
    """A raw-socket peer on loopback that misbehaves as an attacker's relay or webhook would:

    ``smtp-flood``   greets, then answers EHLO with ``250-`` lines for ever;
    ``smtp-drip``    sends its greeting one byte every ``pace`` seconds, for ever;
    ``smtp-data``    is a fine relay until DATA, then drips its answer;
    ``http-continue`` answers a POST with ``100 Continue`` for ever;
    ``http-drip``    sends its status line one byte every ``pace`` seconds, for ever.

    Each connection is served until the client goes away; ``connections`` counts them.
    """

    def __init__(self, kind: str, pace: float = 0.5) -> None:
        self.kind, self.pace = kind, pace
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _drip(self, c: socket.socket, text: bytes) -> None:
        while not self.stopped.is_set():
            for b in text:
                c.sendall(bytes([b]))
                if self.stopped.wait(self.pace):
                    return

    def _serve(self, c: socket.socket) -> None:
        f = c.makefile("rb")
        try:
            if self.kind == "smtp-flood":
                c.sendall(b"220 hostile ESMTP\r\n")
                f.readline()
                n = 0
                while not self.stopped.is_set():
                    c.sendall(b"".join(b"250-%d flood flood flood flood flood flood\r\n" % (n + i) for i in range(200)))
                    n += 200
            elif self.kind == "smtp-drip":
                self._drip(c, b"220 hostile ESMTP dripping " * 1000)
            elif self.kind == "smtp-data":
                c.sendall(b"220 hostile ESMTP\r\n")
                while line := f.readline():
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        c.sendall(b"250-hostile\r\n250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        c.sendall(b"354 go on\r\n")
                        while f.readline() not in (b".\r\n", b""):
                            pass
                        self._drip(c, b"250 ok, eventually " * 1000)
                        return
                    else:
                        c.sendall(b"250 ok\r\n")
            elif self.kind == "http-continue":
                while f.readline() not in (b"\r\n", b""):
                    pass
                while not self.stopped.is_set():
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    self.stopped.wait(0.05)
            elif self.kind == "http-drip":
                while f.readline() not in (b"\r\n", b""):
                    pass
                self._drip(c, b"HTTP/1.1 200 OK dripping " * 1000)
        except OSError:
            pass
        finally:
            f.close()
            c.close()

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
