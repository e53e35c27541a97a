"""Helpers for the forwarder's tests: a real SMTP smarthost (aiosmtpd) and a real webhook (the recorder of
kit.net) on loopback, hostile peers, the forwarder run to completion, and the mail the tests store."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from kit import harness
from kit.net import Recorder, free_port
from kit.reader import ENV, READER, message
from kit.support import python

MSG_FORWARD = "cda5a93613b14aa58d5d8dd0dbbe3c61"


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


class Webhook(Recorder):
    """The recorder, started, as a webhook: its URL is its path /hook; a header over 500
    bytes gets 431, as ntfy answers."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls=tls, max_header=500)
        self.start()

    @property
    def url(self) -> str:
        return f"{self.base}/hook"


def forward(config: Path, *args: str, timeout: float = 120, cap: int | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    """journal-mail forward --config CONFIG ARGS, to completion; ``cap``: under that RLIMIT_DATA (bytes)."""
    limit = ["prlimit", f"--data={cap}", "--"] if cap is not None else []
    return subprocess.run([*limit, *READER, "forward", "--config", str(config), *args], capture_output=True,
                          env=ENV, timeout=timeout)


def spawn_forward(config: Path, *args: str, err: Path) -> subprocess.Popen[bytes]:
    with open(err, "ab") as f:
        return subprocess.Popen([*READER, "forward", "--config", str(config), *args], stdout=f, stderr=f, env=ENV)


def forward_argv(cfg: Path, offset: float, *args: str) -> list[str]:
    """journal-mail forward with its clock (time.time, which the forwarder takes as its ``now``) ``offset``
    seconds ahead of the real one; libfaketime cannot be used: its clock_nanosleep fails Python's short
    sleeps with EINVAL."""
    code = (f"import time; real = time.time; time.time = lambda: real() + {offset!r}; "
            "from journal_sendmail.reader.cli import entry; entry()")
    return [*python(code), "forward", "--config", str(cfg), *args]


def forward_at(cfg: Path, offset: float, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``forward_argv``, run to completion."""
    return subprocess.run(forward_argv(cfg, offset, *args), capture_output=True, env=ENV, timeout=120)


def text_of(m: object) -> str:
    return m.message.get_body(("plain",)).get_content()  # type: ignore[attr-defined, no-any-return]


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


Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]


def dests(smtp: Smarthost, hook: Webhook | None = None, extra: str = "") -> str:
    text = f"""
[destination.ops]
type = "smtp"
url = "smtp://127.0.0.1:{smtp.port}"
from = "journal-mail@loghost.example.org"
to = ["ops@example.org"]
timeout = "10s"
{extra}
"""
    if hook is not None:
        text += f"""
[destination.chat]
type = "webhook"
url = "{hook.url}"
timeout = 10
"""
    return text


def store(sendmail: Sendmail, *subjects: str, body: str = "hello\n", extra: str = "") -> None:
    for s in subjects:
        r = sendmail(["-i", "root"], message(s, body, extra=extra))
        assert r.returncode == 0, r.stderr


def mail_ids(subject: str) -> list[str]:
    return [harness.one(e["MAIL_ID"]).decode() for e in harness.read_entries(["MAIL_SUBJECT=" + subject])]


def subjects(host: Smarthost) -> Counter[str]:
    return Counter(m.header("Subject").split("] ", 1)[1] for m in host.received)
