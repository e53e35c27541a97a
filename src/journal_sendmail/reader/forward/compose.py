"""Compose: what goes out (pure): for one mail, a wrapped or re-sent message or a webhook body;
for a digest, a text mail or a webhook body.  Every webhook shape is here.

The original is attached by hand, not through ``email``'s generator, which
would re-fold and re-encode it: the attached part is the stored bytes.
Messages are built with LF line ends; ``smtp`` sends them as CRLF, the
canonical form on the wire.  Nothing built here holds a lone CR or a NUL
(``wire_safe``): an original or a text with them, which CRLF on the wire
would change or a relay might take for the end of DATA (SMTP smuggling), is
attached as base64 instead, still exact; resend mode wraps such a mail.
The multipart boundary is random and checked against the content, so no
sender can close a part and add one of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate
from typing import Any

from ...body import searchable
from ...printable import printable
from ...users import name_of
from ..entry import MailEntry
from ..render import json_record, rfc3339
from .config import Destination, Digest
from .rules import trusted_uid

FORWARDED = "X-Journal-Mail-Forwarded"
TEXT_MAX = 4000  # characters of the readable body quoted in the short text part
LINE_MAX = 998  # RFC 5322
SUBJECT_MAX = 900  # characters of a Subject we write: one unbreakable word still fits in a line


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Outgoing:
    """One message for a destination: envelope and bytes (LF line ends), or a webhook request."""

    message_id: str
    sender: str = ""
    rcpts: tuple[str, ...] = ()
    data: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()  # webhook: HTTP headers
    summary: str = ""
    url: str = ""  # webhook: where to POST, when not the destination's url (ntfy's JSON publishing)


def wire_safe(data: bytes) -> bool:
    r"""Can ``data`` (LF line ends) go on the wire as CRLF unchanged: no CR that is not before an LF, no NUL.

    >>> wire_safe(b"a\r\nb\n"), wire_safe(b"a\r.\r\nMAIL FROM:<x>\n"), wire_safe(b"a\0b")
    (True, False, False)
    """
    return b"\r" not in data.replace(b"\r\n", b"\n") and b"\0" not in data


def _long_lines(data: bytes) -> bool:
    return max(map(len, data.split(b"\n"))) > LINE_MAX


def boundary_for(*parts: bytes) -> str:
    """A boundary that occurs in none of ``parts`` (random: a sender cannot compute it in advance)."""
    while True:
        b = "=_journal-mail-" + secrets.token_hex(16)
        if not any(b.encode() in p for p in parts):
            return b


def message_id(mail_id: str, sender: tuple[int | None, str, str], dest: str, domain: str) -> str:
    """A Message-ID derived from the mail (MAIL_ID and its sender) and the destination: a re-send has the same one.

    >>> message_id("ab" * 16, (0, "web1", "b" * 32), "ops", "loghost.example.org")
    '<abababababababababababababababab.23cb53544467fd5b@loghost.example.org>'
    """
    h = hashlib.sha256("\0".join([mail_id, str(sender[0]), sender[1], sender[2], dest]).encode(
        "utf-8", "surrogateescape")).hexdigest()
    if not re.fullmatch(r"[0-9a-f]{32}", mail_id):  # a forged entry's MAIL_ID never reaches a header
        mail_id = "x" + hashlib.sha256(mail_id.encode("utf-8", "surrogateescape")).hexdigest()[:31]
    return f"<{mail_id}.{h[:16]}@{clean(domain)}>"


def clean(text: str) -> str:
    """One line (a forged subject's newlines become spaces), through the one filter, ``printable``."""
    return printable(text, one_line=True).strip()


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


def who(e: MailEntry) -> str:
    uid = trusted_uid(e)
    name = name_of(uid)
    return f"{name} (uid {uid})" if name else f"uid {uid}"


def facts(e: MailEntry) -> list[tuple[str, str]]:
    caller = e.caller_comm or "?"
    if e.caller_pid is not None or e.caller_exe:
        caller += f" ({', '.join(x for x in (f'pid {e.caller_pid}' if e.caller_pid else '', e.caller_exe) if x)})"
    return [
        ("Host", e.hostname or "?"),
        ("User", who(e)),
        ("Caller", caller),
        ("Unit", e.unit or "-"),
        ("Time", rfc3339(e.realtime)),
        ("From", e.envelope_from),
        ("To", ", ".join(e.recipients)),
        ("Subject", e.subject),
        ("MAIL_ID", e.mail_id),
    ]


def _domain(addr: str) -> str:
    return addr.rsplit("@", 1)[-1] or "localhost"


def _attachment(raw: bytes) -> bytes:
    """The original as a part: message/rfc822 when it can go on the wire as it is, else base64."""
    if wire_safe(raw) and not _long_lines(raw):
        head = (f'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="original.eml"\n'
                f"Content-Transfer-Encoding: {'7bit' if raw.isascii() else '8bit'}\n\n")
        return head.encode() + raw + b"\n"  # that newline belongs to the boundary (RFC 2046 5.1.1)
    return (b'Content-Type: application/octet-stream; name="original.eml"\n'
            b'Content-Disposition: attachment; filename="original.eml"\n'
            b"Content-Transfer-Encoding: base64\n\n") + base64.encodebytes(raw)


def _new_mail_head(dest: Destination, subject: str, mid: str, now: float, forwarded: str) -> str:
    """The headers of a mail the forwarder writes itself, its stamps included."""
    return "".join([
        header("From", dest.sender),
        header("To", ", ".join(dest.to)),
        header("Subject", _cut(clean(subject), SUBJECT_MAX)),
        f"Date: {formatdate(now, localtime=True)}\n",
        f"Message-ID: {mid}\n",
        "Auto-Submitted: auto-generated\n",
        f"{FORWARDED}: {clean(forwarded)}\n",
    ])


def wrap(e: MailEntry, raw: bytes, dest: Destination, rule: str, now: float, note: str = "") -> Outgoing:
    """A new mail From the forwarder, the original attached as message/rfc822.

    Its text is decoded from the stored raw mail (never MAIL_TEXT, the
    sender's word), sent as base64 unless it is plain short-lined ASCII.
    """
    mid = message_id(e.mail_id, e.sender, dest.name, _domain(dest.sender))
    subject = f"[{e.hostname or '?'}] {e.subject or '(no subject)'}"
    text = f"A mail stored by journal-sendmail, forwarded by journal-mail forward (rule {rule}).\n\n"
    text += "".join(f"{k + ':':<9} {clean(v)}\n" for k, v in facts(e))
    text += f"\n  journal-mail show {clean(e.mail_id)}\n\nThe original is attached, exactly as it was stored.\n"
    if note:
        text += note + "\n"
    body = searchable(raw, None)  # decoded from the stored raw mail: MAIL_TEXT is only the sender's word
    if body.strip():
        cut = body[:TEXT_MAX]
        tail = "\n[…]\n" if len(body) > TEXT_MAX else "" if cut.endswith("\n") else "\n"
        text += "\n--- its text ---\n" + cut + tail
    text_b = text.encode("utf-8", "replace")
    plain = text_b.isascii() and wire_safe(text_b) and not _long_lines(text_b)
    text_part = ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: "
                 + ("7bit\n\n" if plain else "base64\n\n"))
    text_bytes = text_b if plain else base64.encodebytes(text_b)
    original = _attachment(raw)
    boundary = boundary_for(text_bytes, original)
    head = _new_mail_head(dest, subject, mid, now, e.mail_id) + (
        f'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="{boundary}"\n\n')
    data = (head.encode() + f"--{boundary}\n{text_part}".encode() + text_bytes + f"\n--{boundary}\n".encode()
            + original + f"--{boundary}--\n".encode())
    return Outgoing(mid, dest.sender, dest.to, data, summary=subject)


def resend(e: MailEntry, raw: bytes, dest: Destination, rule: str, now: float) -> Outgoing:
    """The original with a Resent-* block on top (RFC 5322 3.6.6), for internal relays.

    An original that cannot go on the wire as it is (a lone CR, a NUL, a line
    over 998 bytes) is wrapped instead, attached as base64: sent, and exact.
    """
    lf = raw.replace(b"\r\n", b"\n")
    if not wire_safe(lf) or _long_lines(lf):
        return wrap(e, raw, dest, rule, now, note="(Wrapped, not re-sent: the original holds a bare CR, "
                    "a NUL byte or an overlong line, which cannot go on the wire as they are.)")
    mid = message_id(e.mail_id, e.sender, dest.name, _domain(dest.sender))
    head = "".join([
        header("Resent-From", dest.sender),
        header("Resent-To", ", ".join(dest.to)),
        f"Resent-Date: {formatdate(now, localtime=True)}\n",
        f"Resent-Message-ID: {mid}\n",
        f"{FORWARDED}: {clean(e.mail_id)}\n",
    ])
    if not e.headers.get("auto_submitted"):
        head += "Auto-Submitted: auto-generated\n"
    return Outgoing(mid, dest.sender, dest.to, head.encode() + lf, summary=f"[{e.hostname}] {e.subject}")


def slack_escape(text: str) -> str:
    """Text that Slack shows as it is: ``&``, ``<`` and ``>`` escaped (Slack's own rule), so that
    ``<!channel>``, ``<!here>``, ``<@U123>`` and ``<https://x|text>`` ping nobody and hide no link.

    >>> slack_escape("<!channel> <https://evil|bank> & co")
    '&lt;!channel&gt; &lt;https://evil|bank&gt; &amp; co'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _utf8_cut(text: str, limit: int) -> str:
    b = text.encode("utf-8", "replace")
    return text if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


CHAT_MAX = {"ntfy": 4000, "slack": 30_000}  # bytes: ntfy's default limit is 4096; Slack shortens past 40,000


def _json(mid: str, payload: dict[str, Any], summary: str, stamps: tuple[tuple[str, str], ...], errors: str,
          url: str = "") -> Outgoing:
    return Outgoing(mid, data=json.dumps(payload, ensure_ascii=False).encode("utf-8", errors), url=url,
                    headers=(("Content-Type", "application/json; charset=utf-8"), *stamps), summary=summary)


def _slack(title: str, lines: str, text: str) -> dict[str, Any]:
    return {"text": f"*{slack_escape(title)}*\n{lines}```{slack_escape(text)}```"}


def ntfy(url: str, title: str, message: str, mid: str, stamps: tuple[tuple[str, str], ...]) -> Outgoing:
    """A JSON publish to ntfy (topic, title, message in the body): no header of ours carries the
    subject, so a long or non-ASCII title cannot make the server refuse a header (431).

    >>> o = ntfy("https://ntfy.example.org/alerts", "[web1] é", "hi", "<m@x>", ())
    >>> o.url, json.loads(o.data)["topic"], json.loads(o.data)["title"]
    ('https://ntfy.example.org/', 'alerts', '[web1] é')
    """
    u = urllib.parse.urlsplit(url)
    path, _, topic = u.path.rstrip("/").rpartition("/")
    base = urllib.parse.urlunsplit((u.scheme, u.netloc, path + "/", u.query, ""))
    payload = {"topic": urllib.parse.unquote(topic), "title": title[:250], "message":
               _utf8_cut(message, CHAT_MAX["ntfy"]), "tags": ["email"]}
    return _json(mid, payload, title, stamps, "replace", base)


def webhook(e: MailEntry, raw: bytes, dest: Destination, rule: str) -> Outgoing:
    """The request body for a webhook: the ``list --json`` record plus the readable body, or ntfy's or Slack's shape."""
    mid = message_id(e.mail_id, e.sender, dest.name, "journal-mail.invalid")
    title = clean(f"[{e.hostname or '?'}] {e.subject or '(no subject)'}")
    body = searchable(raw, None)
    stamps = ((FORWARDED, clean(e.mail_id)), ("Idempotency-Key", mid.strip("<>")))
    if dest.format == "ntfy":
        text = "".join(f"{k}: {clean(v)}\n" for k, v in facts(e)) + "\n" + body[:TEXT_MAX]
        return ntfy(dest.url, title, text, mid, stamps)
    if dest.format == "slack":
        payload = _slack(title, "".join(f"*{k}:* {slack_escape(clean(v))}\n" for k, v in facts(e)),
                         body[:TEXT_MAX])
    else:
        payload = json_record(e)
        payload["text"] = body
        payload["unit"] = e.unit or None
        payload["forwarded"] = {"rule": rule, "destination": dest.name, "message_id": mid}
    return _json(mid, payload, title, stamps, "surrogateescape")


def outgoing(d: Destination, e: MailEntry, raw: bytes, rule: str, now: float) -> Outgoing:
    """What goes to ``d`` for one mail."""
    if d.type == "webhook":
        return webhook(e, raw, d, rule)
    if d.mode == "resend":
        return resend(e, raw, d, rule, now)
    return wrap(e, raw, d, rule, now)


def chat(d: Destination) -> bool:
    """Is ``d`` a chat (ntfy, Slack): a notification, not the record."""
    return d.type == "webhook" and d.format in ("ntfy", "slack")


def digest_limit(g: Digest, d: Destination) -> int:
    """The most text bytes of one digest mail to ``d``: the digest's max_size, or less for a chat."""
    return min(g.max_size, CHAT_MAX[d.format]) if chat(d) else g.max_size


def digest(d: Destination, name: str, subject: str, text: str, mid: str, now: float) -> Outgoing:
    """One mail of digest ``name`` for ``d``: a text mail, or a webhook body."""
    if d.type == "smtp":
        return plain_mail(d, subject, text, mid, now)
    stamps = ((FORWARDED, "digest"),)
    if d.format == "ntfy":
        return ntfy(d.url, subject, text, mid, stamps)
    payload = (_slack(subject, "", text) if d.format == "slack"
               else {"digest": name, "subject": subject, "text": text, "message_id": mid})
    return _json(mid, payload, subject, stamps, "strict")


def plain_mail(dest: Destination, subject: str, text: str, mid: str, now: float) -> Outgoing:
    """A text mail from the forwarder (the digest)."""
    head = _new_mail_head(dest, subject, mid, now, "digest") + (
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n")
    return Outgoing(mid, dest.sender, dest.to, head.encode() + base64.encodebytes(text.encode("utf-8", "replace")),
                    summary=subject)
