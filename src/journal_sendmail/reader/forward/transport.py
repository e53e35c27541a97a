"""Transport: hand outgoing mail to an SMTP smarthost or a webhook, and say how it went.

A failure is temporary (4xx, a timeout, a refused or dropped connection, an
HTTP 5xx, 408 or 429, a peer that misbehaves: retried with backoff) or
permanent (an SMTP 5xx, any other HTTP 4xx: given up at once).

A hostile or broken peer costs a bounded amount: every phase (opening a
session, one message, one HTTP request) has an overall deadline, kept by a
watchdog that shuts the socket down when it passes, so a peer that drips one
byte every few seconds or answers ``100 Continue`` forever cannot outlast it
(a per-operation timeout alone would let it); and a reply is capped in lines
and bytes, so endless ``250-`` lines cost no memory.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..safefile import read_secret
from .compose import Outgoing, wire_safe
from .config import Destination

REPLY_LINES = 100  # lines of one SMTP reply (an EHLO answer has a dozen)
REPLY_BYTES = 64 * 1024  # bytes of one SMTP reply
LINE_BYTES = 8192  # bytes of one reply line (smtplib's own _MAXLINE)
RATE_FLOOR = 100_000  # bytes/s: a message's deadline is the timeout plus its size at this rate
ANSWER_BYTES = 4096  # bytes of an HTTP answer's body that are read


class DeliveryError(Exception):
    """The destination did not accept a message."""

    permanent = False
    code = 0  # the SMTP or HTTP code when there was one

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TemporaryFailure(DeliveryError):
    """Retried with backoff, up to max_age."""


class PermanentFailure(DeliveryError):
    """Given up at once."""

    permanent = True


class Transport(Protocol):
    def send(self, out: Outgoing) -> str: ...  # the server's answer, e.g. "250 2.0.0 Ok"

    def close(self) -> None: ...


def read_password(path: str, key: str = "password_file") -> str:
    """The password in ``path`` (first line): a regular file, not a link, owned by root or by
    the user running the forwarder, mode 0600 or less.  ``key`` names the setting in errors.

    Under systemd's ``LoadCredential=NAME:PATH`` the copy in
    ``$CREDENTIALS_DIRECTORY/NAME`` (NAME = the file's base name) is read
    instead: that is how the unprivileged service reads a root-only file
    (systemd made that copy; it is checked the same way).
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and os.path.lexists(os.path.join(creds, os.path.basename(path))):
        path = os.path.join(creds, os.path.basename(path))
    line = read_secret(path, key, 0o177, 4096).split(b"\n", 1)[0]
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _shutdown(fd: int) -> None:
    """Shut the connection on ``fd`` down (through a duplicate: the owner's socket object stays untouched)."""
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    with s, suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)


@dataclass
class Watchdog:
    """Keeps one deadline at a time for one connection: when it passes, the socket is shut down,
    so that whatever call is blocked on it returns at once (an end of file or an error)."""

    expired: bool = False
    _fd: int | None = None
    _deadline: float | None = None
    _closed: bool = False
    _thread: threading.Thread | None = None
    _cv: threading.Condition = field(default_factory=threading.Condition)

    def register(self, sock: socket.socket) -> socket.socket:
        """The connection's socket, as soon as it exists (TLS wrapping keeps its descriptor)."""
        with self._cv:
            self._fd = sock.fileno()
            if self.expired:
                _shutdown(self._fd)
        return sock

    def forget(self) -> None:
        """Before the socket is closed: its descriptor number may be reused at once."""
        with self._cv:
            self._fd = None

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                if self._deadline is None:
                    self._cv.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self.expired = True
                self._deadline = None
                if self._fd is not None:
                    _shutdown(self._fd)

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="journal-mail-forward watchdog", daemon=True)
                self._thread.start()
            self.expired = False
            self._deadline = time.monotonic() + seconds
            self._cv.notify()
        try:
            yield
        finally:
            with self._cv:
                self._deadline = None
                self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._closed = True
            self._fd = None
            self._cv.notify()


class Misbehaving(smtplib.SMTPServerDisconnected):
    """The server's reply broke a cap (too many lines, too many bytes)."""


class _Client(smtplib.SMTP):
    """smtplib with the socket shown to a watchdog and a reply capped in lines and bytes."""

    def __init__(self, watchdog: Watchdog, timeout: float, implicit_tls: ssl.SSLContext | None = None) -> None:
        self.watchdog = watchdog
        self.implicit_tls = implicit_tls
        super().__init__(timeout=timeout)  # no host: connect() comes later, under the deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self.watchdog.register(socket.create_connection((host, port), timeout, self.source_address))
        if self.implicit_tls is not None:
            sock = self.implicit_tls.wrap_socket(sock, server_hostname=host)
        return sock

    def getreply(self) -> tuple[int, bytes]:
        # smtplib's own getreply, with caps: it reads continuation lines for as long as they come
        resp: list[bytes] = []
        total = 0
        if self.file is None:
            if self.sock is None:
                raise smtplib.SMTPServerDisconnected("not connected")
            self.file = self.sock.makefile("rb")
        while True:
            try:
                line = self.file.readline(LINE_BYTES + 1)
            except OSError as e:
                self.close()
                raise smtplib.SMTPServerDisconnected(f"connection unexpectedly closed: {e}") from None
            if not line:
                self.close()
                raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")
            total += len(line)
            if len(line) > LINE_BYTES or total > REPLY_BYTES or len(resp) >= REPLY_LINES:
                self.close()
                raise Misbehaving(f"the server's reply is too long (over {REPLY_LINES} lines, {REPLY_BYTES} "
                                  f"bytes or a line of {LINE_BYTES})")
            resp.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
        return code, b"\n".join(resp)

    def close(self) -> None:
        self.watchdog.forget()
        super().close()


def _code_failure(code: int, text: str) -> DeliveryError:
    return (PermanentFailure if 500 <= code < 600 else TemporaryFailure)(f"{code} {text}".strip(), code)


def _text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp


def _reason(e: BaseException, watchdog: Watchdog | None = None, seconds: float = 0.0) -> str:
    if watchdog is not None and watchdog.expired:
        return f"no complete answer within {seconds:g} s"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ssl.SSLCertVerificationError) and _STRICT_ONLY.search(e.verify_message or ""):
        # Python 3.13+ verifies with VERIFY_X509_STRICT: a private CA that worked on 3.11 fails here
        return (f"certificate verify failed: {e.verify_message} (this Python checks certificates"
                " strictly, RFC 5280: a CA certificate needs keyUsage keyCertSign, a server"
                " certificate an Authority Key Identifier; reissue them)")
    return str(e) or type(e).__name__


_STRICT_ONLY = re.compile(r"key usage|key identifier|basic constraints", re.I)


@dataclass
class Smtp:
    """One SMTP session with the smarthost, opened at the first message and reused for the batch.

    Opening it (connect, greeting, EHLO, STARTTLS, AUTH) has one deadline of
    ``timeout``; each message then has ``timeout`` plus its size at
    RATE_FLOOR, for MAIL, RCPT, DATA and the answer together.
    """

    dest: Destination
    password: str | None = None
    conn: _Client | None = None
    watchdog: Watchdog = field(default_factory=Watchdog)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.dest.cafile)

    def _open(self) -> _Client:
        d = self.dest
        conn = _Client(self.watchdog, d.timeout, self._context() if d.scheme == "smtps" else None)
        try:
            with self.watchdog.within(d.timeout):
                self._handshake(conn)
            return conn
        except smtplib.SMTPResponseException as e:
            conn.close()
            raise _code_failure(e.smtp_code, _text(e.smtp_error)) from None
        except DeliveryError:
            conn.close()
            raise
        except (OSError, smtplib.SMTPException, ValueError) as e:
            conn.close()
            raise TemporaryFailure(f"{d.host}:{d.port}: {_reason(e, self.watchdog, d.timeout)}") from None

    def _handshake(self, conn: _Client) -> None:
        d = self.dest
        conn._host = d.host  # type: ignore[attr-defined]  # smtplib sets it only in its constructor; STARTTLS needs it
        code, msg = conn.connect(d.host, d.port)
        if code != 220:
            raise _code_failure(code if code >= 400 else 421, _text(msg))
        conn.ehlo()
        if d.scheme == "smtp+starttls":
            if not conn.has_extn("starttls"):
                raise TemporaryFailure(f"{d.host}:{d.port} offers no STARTTLS")
            conn.starttls(context=self._context())
            conn.ehlo()
        if d.username is not None:
            try:
                conn.login(d.username, self.password or "")
            except smtplib.SMTPAuthenticationError as e:
                # not the mail's fault: retried, so that fixing the password delivers it
                raise TemporaryFailure(f"authentication as {d.username} refused: {e.smtp_code} "
                                       f"{_text(e.smtp_error)}") from None
            except smtplib.SMTPNotSupportedError:
                raise TemporaryFailure(f"{d.host}:{d.port} offers no AUTH") from None

    def send(self, out: Outgoing) -> str:
        # CRLF line ends on the wire, and never a lone CR or a NUL (compose encodes those)
        data = out.data.replace(b"\r\n", b"\n")
        if not wire_safe(data):
            raise PermanentFailure("refused to send a message with a lone CR or a NUL byte (a bug: compose "
                                   "encodes them)")
        data = data.replace(b"\n", b"\r\n")
        if self.conn is None:
            self.conn = self._open()
        limit = self.dest.timeout + len(data) / RATE_FLOOR
        try:
            with self.watchdog.within(limit):
                refused = self.conn.sendmail(out.sender, list(out.rcpts), data)
        except smtplib.SMTPRecipientsRefused as e:
            self._drop()
            codes = [c for c, _ in e.recipients.values()]
            first = next(iter(e.recipients.values()))
            raise _code_failure(max(codes) if all(c >= 500 for c in codes) else 450, _text(first[1])) from None
        except smtplib.SMTPResponseException as e:
            self._drop()
            if self.watchdog.expired:
                raise TemporaryFailure(f"{self.dest.host}:{self.dest.port}: no complete answer within "
                                       f"{limit:.0f} s") from None
            raise _code_failure(e.smtp_code, _text(e.smtp_error)) from None
        except (OSError, smtplib.SMTPException, ValueError) as e:
            self._drop()
            raise TemporaryFailure(f"{self.dest.host}:{self.dest.port}: {_reason(e, self.watchdog, limit)}") from None
        note = f" ({len(refused)} recipient(s) refused: {', '.join(refused)})" if refused else ""
        return "250 accepted" + note

    def _drop(self) -> None:
        """After a failure: no QUIT (a peer that misbehaves gets no second chance to stall us)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            with suppress(OSError, smtplib.SMTPException), self.watchdog.within(min(self.dest.timeout, 5.0)):
                self.conn.quit()
            self._drop()
        self.watchdog.stop()


def header_value(value: str, limit: int = 1000) -> str:
    """An HTTP header value from anything: printable ASCII only, so http.client never refuses it.

    >>> header_value("ab\\r\\nX-Evil: 1"), header_value("Sauvegarde terminée")
    ('ab  X-Evil: 1', 'Sauvegarde termin?e')
    """
    out = "".join(c if " " <= c <= "~" else " " if c in "\r\n\t" else "?" for c in value)
    return out[:limit]


@dataclass
class Webhook:
    """HTTP(S) POST, one request per message, with one deadline of ``timeout`` for the whole request."""

    dest: Destination
    watchdog: Watchdog = field(default_factory=Watchdog)

    def send(self, out: Outgoing) -> str:
        import http.client
        import urllib.parse

        u = urllib.parse.urlsplit(out.url or self.dest.url)
        wd = self.watchdog
        t = self.dest.timeout
        try:
            if u.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    u.hostname or "", u.port, timeout=t, context=ssl.create_default_context(cafile=self.dest.cafile))
            else:
                conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=t)

            def create(*a: Any, **kw: Any) -> socket.socket:
                return wd.register(socket.create_connection(*a, **kw))

            conn._create_connection = create  # type: ignore[attr-defined]
            try:
                with wd.within(t + len(out.data) / RATE_FLOOR):
                    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
                    headers = {k: header_value(v) for k, v in out.headers} | dict(self.dest.headers)
                    conn.request("POST", path, body=out.data, headers=headers)
                    resp = conn.getresponse()
                    answer = resp.read(ANSWER_BYTES).decode("utf-8", "replace").strip()
            finally:
                wd.forget()
                conn.close()
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise TemporaryFailure(f"{u.hostname}:{u.port or ''}: {_reason(e, wd, t)}") from None
        code = resp.status
        if 200 <= code < 300:
            return f"{code} {resp.reason}"
        why = f"HTTP {code} {resp.reason}{': ' + answer[:200] if answer else ''}"
        if code >= 500 or code in (408, 425, 429):
            raise TemporaryFailure(why, code)
        raise PermanentFailure(why, code)

    def close(self) -> None:
        self.watchdog.stop()


def transport(dest: Destination, password: str | None) -> Transport:
    return Smtp(dest, password) if dest.type == "smtp" else Webhook(dest)
