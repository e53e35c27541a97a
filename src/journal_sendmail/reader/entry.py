"""Entry: one stored mail as the reader sees it, built from a journal entry's fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..record import MSG_REFUSED
from ..users import name_of


@dataclass
class MailEntry:
    """One stored message as the reader sees it (the message entry, not its parts)."""

    mail_id: str
    realtime: int = 0  # µs since the epoch
    cursor: str = ""
    kind: str = "mail"  # or "refused"
    envelope_from: str = ""
    recipients: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # MAIL_FROM … as from, to, …
    size: int = 0
    sha256: str = ""
    parts: int = 1
    uid: int | None = None
    username: str | None = None
    hostname: str = ""
    boot_id: str = ""
    caller_comm: str = ""
    caller_pid: int | None = None
    caller_exe: str = ""
    argv: tuple[str, ...] = ()
    invoked_as: str = ""
    spooled: bool = False
    spool_uid: int | None = None
    submitted_at: str = ""
    truncated: int | None = None  # the original size, when the message was cut
    refused: str = ""
    defects: tuple[str, ...] = ()
    text: str | None = None  # MAIL_TEXT: the readable body, when stored
    raw: bytes = b""  # MAIL_RAW of this entry: the whole message, or its first part
    duplicates: int = 0  # other copies of this MAIL_ID in a central journal (see ``central``)

    @property
    def subject(self) -> str:
        return self.headers.get("subject", "")


HEADER_FIELDS = {
    "MAIL_FROM": "from",
    "MAIL_TO": "to",
    "MAIL_CC": "cc",
    "MAIL_BCC": "bcc",
    "MAIL_SUBJECT": "subject",
    "MAIL_DATE": "date",
    "MAIL_MESSAGE_ID": "message_id",
    "MAIL_AUTO_SUBMITTED": "auto_submitted",
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0]
    return bytes(value).decode("utf-8", "replace")


def _int(value: Any) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


def to_entry(d: dict[str, Any], realtime: int, cursor: str) -> MailEntry:
    """A MailEntry from the fields of one message entry (``_get_all()``).

    Written for speed (``list --json`` reads ~30 fields of every mail): one
    dict lookup and at most one decode per field.
    """
    get = d.get

    def text(name: str) -> str:
        v = get(name)
        if v is None:
            return ""
        if v.__class__ is list:
            v = v[0]
        return v.decode("utf-8", "replace")  # type: ignore[no-any-return]

    def number(name: str) -> int | None:
        v = get(name)
        if v is None:
            return None
        try:
            return int(v[0] if v.__class__ is list else v)
        except ValueError:
            return None

    rcpts = get("MAIL_RCPTS")
    if rcpts is not None:
        recipients = tuple(text("MAIL_RCPTS").split(","))
    else:
        rc = get("MAIL_RCPT", [])
        recipients = tuple(_text([v]) for v in (rc if isinstance(rc, list) else [rc]))
    uid = number("_UID")
    raw = get("MAIL_RAW", b"")
    argv = text("MAIL_ARGV")
    defects = text("MAIL_DEFECTS")
    stored_text = get("MAIL_TEXT")
    return MailEntry(
        mail_id=text("MAIL_ID"),
        realtime=realtime,
        cursor=cursor,
        kind="refused" if get("MESSAGE_ID") == _REFUSED else "mail",
        envelope_from=text("MAIL_ENVELOPE_FROM"),
        recipients=recipients,
        headers={key: text(name) for name, key in HEADER_FIELDS.items() if name in d},
        size=number("MAIL_SIZE") or 0,
        sha256=text("MAIL_SHA256"),
        parts=number("MAIL_PARTS") or 1,
        uid=uid,
        username=name_of(uid),
        hostname=text("_HOSTNAME"),
        boot_id=text("_BOOT_ID"),
        caller_comm=text("MAIL_CALLER_COMM"),
        caller_pid=number("MAIL_CALLER_PID"),
        caller_exe=text("MAIL_CALLER_EXE"),
        argv=tuple(argv.split("\n")) if argv else (),
        invoked_as=text("MAIL_INVOKED_AS"),
        spooled=get("MAIL_SPOOLED") == b"yes",
        spool_uid=number("MAIL_SPOOL_UID"),
        submitted_at=text("MAIL_SUBMITTED_AT"),
        truncated=number("MAIL_TRUNCATED"),
        refused=text("MAIL_REFUSED"),
        defects=tuple(defects.split("\n")) if defects else (),
        text=None if stored_text is None else _text(stored_text),
        raw=raw[0] if isinstance(raw, list) else raw,
    )


_REFUSED = MSG_REFUSED.encode()
