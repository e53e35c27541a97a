"""Compose: what goes out for one mail: a wrapped or re-sent message, or a webhook body (pure).

The original is attached by hand, not through ``email``'s generator, which
would re-fold and re-encode it: the attached part is the stored bytes.
Messages are built with LF line ends; ``smtp`` sends them as CRLF, the
canonical form on the wire (an original with CR or NUL bytes, which that
would change, is attached as base64 instead, still exact).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate
from typing import Any

from ...body import searchable
from ...users import name_of
from ..entry import MailEntry
from ..render import json_record, rfc3339
from .config import Destination
from .rules import trusted_uid

FORWARDED = "X-Journal-Mail-Forwarded"
TEXT_MAX = 4000  # characters of the readable body quoted in the short text part
LINE_MAX = 998  # RFC 5322


@dataclass(frozen=True)
class Outgoing:
    """One message for a destination: envelope and bytes (LF line ends), or a webhook request."""

    message_id: str
    sender: str = ""
    rcpts: tuple[str, ...] = ()
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # webhook: HTTP headers
    summary: str = ""


def message_id(mail_id: str, sender: tuple[int | None, str, str], dest: str, domain: str) -> str:
    """A Message-ID derived from the mail (MAIL_ID and its sender) and the destination: a re-send has the same one.

    >>> message_id("ab" * 16, (0, "web1", "b" * 32), "ops", "loghost.example.org")
    '<abababababababababababababababab.23cb53544467fd5b@loghost.example.org>'
    """
    h = hashlib.sha256("\0".join([mail_id, str(sender[0]), sender[1], sender[2], dest]).encode()).hexdigest()
    return f"<{mail_id}.{h[:16]}@{domain}>"


def clean(text: str) -> str:
    """One line: control characters (a forged subject's newlines) become spaces."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def header(name: str, value: str) -> str:
    """One header line, RFC 2047-encoded when not ASCII and folded when long.

    >>> header("Subject", "[web1] disk"), header("Subject", "[web1] Sauvegarde terminée")
    ('Subject: [web1] disk\\n', 'Subject: =?utf-8?q?=5Bweb1=5D_Sauvegarde_termin=C3=A9e?=\\n')
    """
    value = clean(value)
    if value.isascii() and len(name) + len(value) < 76:
        return f"{name}: {value}\n"
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: {Header(value, charset, header_name=name).encode()}\n".replace("\r\n", "\n")


def readable(e: MailEntry, raw: bytes) -> str:
    return searchable(raw, e.text)


def who(e: MailEntry) -> str:
    uid = trusted_uid(e)
    name = name_of(uid)
    return f"{name} (uid {uid})" if name else f"uid {uid}"


def facts(e: MailEntry, unit: str) -> list[tuple[str, str]]:
    caller = e.caller_comm or "?"
    if e.caller_pid is not None or e.caller_exe:
        caller += f" ({', '.join(x for x in (f'pid {e.caller_pid}' if e.caller_pid else '', e.caller_exe) if x)})"
    return [
        ("Host", e.hostname or "?"),
        ("User", who(e)),
        ("Caller", caller),
        ("Unit", unit or "-"),
        ("Time", rfc3339(e.realtime)),
        ("From", e.envelope_from),
        ("To", ", ".join(e.recipients)),
        ("Subject", e.subject),
        ("MAIL_ID", e.mail_id),
    ]


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[-1] or "localhost"


def _attachment(raw: bytes) -> str:
    lines = raw.split(b"\n")
    if b"\r" not in raw.replace(b"\r\n", b"\n") and b"\0" not in raw and max(map(len, lines)) <= LINE_MAX:
        cte = "7bit" if raw.isascii() else "8bit"
        head = (f'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="original.eml"\n'
                f"Content-Transfer-Encoding: {cte}\n\n")
        return head
    return ""


def _new_mail_head(dest: Destination, subject: str, mid: str, now: float, forwarded: str) -> str:
    """The headers of a mail the forwarder writes itself, its stamps included."""
    return "".join([
        header("From", dest.sender),
        header("To", ", ".join(dest.to)),
        header("Subject", subject),
        f"Date: {formatdate(now, localtime=True)}\n",
        f"Message-ID: {mid}\n",
        "Auto-Submitted: auto-generated\n",
        f"{FORWARDED}: {forwarded}\n",
    ])


def wrap(e: MailEntry, raw: bytes, unit: str, dest: Destination, rule: str, now: float) -> Outgoing:
    """A new mail From the forwarder, the original attached as message/rfc822."""
    import base64

    mid = message_id(e.mail_id, e.sender, dest.name, _domain(dest.sender))
    boundary = "=_journal-mail-" + hashlib.sha256(raw).hexdigest()[:24]
    subject = f"[{e.hostname or '?'}] {e.subject or '(no subject)'}"
    text = f"A mail stored by journal-sendmail, forwarded by journal-mail forward (rule {rule}).\n\n"
    text += "".join(f"{k + ':':<9} {clean(v)}\n" for k, v in facts(e, unit))
    text += f"\n  journal-mail show {e.mail_id}\n\nThe original is attached, exactly as it was stored.\n"
    body = readable(e, raw)
    if body.strip():
        cut = body[:TEXT_MAX]
        tail = "\n[…]\n" if len(body) > TEXT_MAX else "" if cut.endswith("\n") else "\n"
        text += "\n--- its text ---\n" + cut + tail
    text_b = text.encode("utf-8", "replace")
    text_part = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: "
    if text_b.isascii() and max(map(len, text_b.split(b"\n"))) <= LINE_MAX:
        text_part += "7bit\n\n"
        text_bytes = text_b
    else:
        text_part += "base64\n\n"
        text_bytes = base64.encodebytes(text_b)
    head = _new_mail_head(dest, subject, mid, now, e.mail_id) + (
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n')
    rfc822 = _attachment(raw)
    if rfc822:
        original = rfc822.encode() + raw + b"\n"  # that newline belongs to the boundary (RFC 2046 5.1.1)
    else:
        original = (b'Content-Type: application/octet-stream; name="original.eml"\n'
                    b'Content-Disposition: attachment; filename="original.eml"\n'
                    b"Content-Transfer-Encoding: base64\n\n") + base64.encodebytes(raw)
    data = (head.encode() + f"--{boundary}\n{text_part}".encode() + text_bytes + f"\n--{boundary}\n".encode()
            + original + f"--{boundary}--\n".encode())
    return Outgoing(mid, dest.sender, dest.to, data, summary=subject)


def resend(e: MailEntry, raw: bytes, dest: Destination, now: float) -> Outgoing:
    """The original with a Resent-* block on top (RFC 5322 3.6.6), for internal relays."""
    mid = message_id(e.mail_id, e.sender, dest.name, _domain(dest.sender))
    head = "".join([
        header("Resent-From", dest.sender),
        header("Resent-To", ", ".join(dest.to)),
        f"Resent-Date: {formatdate(now, localtime=True)}\n",
        f"Resent-Message-ID: {mid}\n",
        f"{FORWARDED}: {e.mail_id}\n",
    ])
    if not e.headers.get("auto_submitted"):
        head += "Auto-Submitted: auto-generated\n"
    return Outgoing(mid, dest.sender, dest.to, head.encode() + raw.replace(b"\r\n", b"\n"),
                    summary=f"[{e.hostname}] {e.subject}")


def webhook(e: MailEntry, raw: bytes, unit: str, dest: Destination, rule: str) -> Outgoing:
    """The request body for a webhook: the ``list --json`` record plus the readable body, or ntfy's or Slack's shape."""
    mid = message_id(e.mail_id, e.sender, dest.name, "journal-mail.invalid")
    title = clean(f"[{e.hostname or '?'}] {e.subject or '(no subject)'}")
    body = readable(e, raw)
    stamps = [(FORWARDED, e.mail_id), ("Idempotency-Key", mid.strip("<>"))]
    if dest.format == "ntfy":
        text = "".join(f"{k}: {clean(v)}\n" for k, v in facts(e, unit)) + "\n" + body[:TEXT_MAX]
        title_h = title if title.isascii() else Header(title, "utf-8").encode()
        return Outgoing(mid, data=text.encode("utf-8", "replace"),
                        headers=(("Content-Type", "text/plain; charset=utf-8"), ("Title", title_h),
                                 ("Tags", "email"), *stamps), summary=title)
    if dest.format == "slack":
        lines = "\n".join(f"*{k}:* {clean(v)}" for k, v in facts(e, unit))
        payload: dict[str, Any] = {"text": f"*{title}*\n{lines}\n```{body[:TEXT_MAX]}```"}
    else:
        payload = json_record(e)
        payload["text"] = body
        payload["unit"] = unit or None
        payload["forwarded"] = {"rule": rule, "destination": dest.name, "message_id": mid}
    return Outgoing(mid, data=json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogateescape"),
                    headers=(("Content-Type", "application/json; charset=utf-8"), *stamps), summary=title)


def plain_mail(dest: Destination, subject: str, text: str, mid: str, now: float) -> Outgoing:
    """A text mail from the forwarder (the digest)."""
    import base64

    head = _new_mail_head(dest, subject, mid, now, "digest") + (
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n")
    return Outgoing(mid, dest.sender, dest.to, head.encode() + base64.encodebytes(text.encode("utf-8", "replace")),
                    summary=subject)
