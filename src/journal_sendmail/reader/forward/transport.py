"""Transport: hand outgoing mail to an SMTP smarthost or a webhook, and say how it went.

A failure is temporary (4xx, a timeout, a refused or dropped connection, an
HTTP 5xx, 408 or 429: retried with backoff) or permanent (an SMTP 5xx, any
other HTTP 4xx: given up at once).  Every socket operation has the
destination's timeout, so a hung relay costs one timeout, never the process.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import stat
from dataclasses import dataclass
from typing import Protocol

from ...errors import ConfigError
from .compose import Outgoing
from .config import Destination


class DeliveryError(Exception):
    """The destination did not accept a message."""

    permanent = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryFailure(DeliveryError):
    """Retried with backoff, up to max_age."""


class PermanentFailure(DeliveryError):
    """Given up at once."""

    permanent = True


class Transport(Protocol):
    def send(self, out: Outgoing) -> str: ...  # the server's answer, e.g. "250 2.0.0 Ok"

    def close(self) -> None: ...


def read_password(path: str) -> str:
    """The password in ``path`` (first line), which must not be readable by group or others.

    Under systemd's ``LoadCredential=NAME:PATH`` the copy in
    ``$CREDENTIALS_DIRECTORY/NAME`` (NAME = the file's base name) is read
    instead: that is how the unprivileged service reads a root-only file.
    """
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and os.path.exists(os.path.join(creds, os.path.basename(path))):
        path = os.path.join(creds, os.path.basename(path))
    else:
        try:
            st = os.stat(path)
        except OSError as e:
            raise ConfigError(f"password_file {path}: {e.strerror or e}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"password_file {path}: readable by group or others (chmod 600 it)")
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"password_file {path}: {e.strerror or e}") from None


def _code_failure(code: int, text: str) -> DeliveryError:
    return (PermanentFailure if 500 <= code < 600 else TemporaryFailure)(f"{code} {text}".strip())


def _text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp


@dataclass
class Smtp:
    """One SMTP connection to the smarthost, opened at the first message and reused for the batch."""

    dest: Destination
    password: str | None = None
    conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.dest.cafile)

    def _open(self) -> smtplib.SMTP:
        d = self.dest
        try:
            if d.scheme == "smtps":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(d.host, d.port, timeout=d.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(d.host, d.port, timeout=d.timeout)
            conn.ehlo()
            if d.scheme == "smtp+starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise TemporaryFailure(f"{d.host}:{d.port} offers no STARTTLS")
                conn.starttls(context=self._context())
                conn.ehlo()
            if d.username is not None:
                try:
                    conn.login(d.username, self.password or "")
                except smtplib.SMTPAuthenticationError as e:
                    conn.close()
                    # not the mail's fault: retried, so that fixing the password delivers it
                    raise TemporaryFailure(f"authentication as {d.username} refused: {e.smtp_code} "
                                           f"{_text(e.smtp_error)}") from None
                except smtplib.SMTPNotSupportedError:
                    conn.close()
                    raise TemporaryFailure(f"{d.host}:{d.port} offers no AUTH") from None
            return conn
        except smtplib.SMTPResponseException as e:
            raise _code_failure(e.smtp_code, _text(e.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as e:
            raise TemporaryFailure(f"{d.host}:{d.port}: {_reason(e)}") from None

    def send(self, out: Outgoing) -> str:
        if self.conn is None:
            self.conn = self._open()
        data = out.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            refused = self.conn.sendmail(out.sender, list(out.rcpts), data)
        except smtplib.SMTPRecipientsRefused as e:
            self.close()
            codes = [c for c, _ in e.recipients.values()]
            first = next(iter(e.recipients.values()))
            raise _code_failure(max(codes) if all(c >= 500 for c in codes) else 450, _text(first[1])) from None
        except smtplib.SMTPResponseException as e:
            self.close()
            raise _code_failure(e.smtp_code, _text(e.smtp_error)) from None
        except (OSError, smtplib.SMTPException) as e:
            self.close()
            raise TemporaryFailure(f"{self.dest.host}:{self.dest.port}: {_reason(e)}") from None
        note = f" ({len(refused)} recipient(s) refused: {', '.join(refused)})" if refused else ""
        return "250 accepted" + note

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, smtplib.SMTPException):
                self.conn.close()
            self.conn = None


def _reason(e: BaseException) -> str:
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
class Webhook:
    """HTTP(S) POST, one request per message."""

    dest: Destination

    def send(self, out: Outgoing) -> str:
        import http.client
        import urllib.parse

        u = urllib.parse.urlsplit(self.dest.url)
        try:
            if u.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    u.hostname or "", u.port, timeout=self.dest.timeout, context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=self.dest.timeout)
            try:
                path = (u.path or "/") + (f"?{u.query}" if u.query else "")
                headers = dict(out.headers) | dict(self.dest.headers)
                conn.request("POST", path, body=out.data, headers=headers)
                resp = conn.getresponse()
                answer = resp.read(4096).decode("utf-8", "replace").strip()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            raise TemporaryFailure(f"{u.hostname}:{u.port or ''}: {_reason(e)}") from None
        code = resp.status
        if 200 <= code < 300:
            return f"{code} {resp.reason}"
        why = f"HTTP {code} {resp.reason}{': ' + answer[:200] if answer else ''}"
        if code >= 500 or code in (408, 425, 429):
            raise TemporaryFailure(why)
        raise PermanentFailure(why)

    def close(self) -> None:
        pass


def transport(dest: Destination, password: str | None) -> Transport:
    return Smtp(dest, password) if dest.type == "smtp" else Webhook(dest)
