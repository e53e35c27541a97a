"""Entry: one stored mail as the reader sees it, built from a journal entry's fields.

Any local user can write entries that look like ours: every ``MAIL_*`` field
is the sender's word, only journald's ``_*`` fields are trusted.  So every
field is checked here, once, before anything is allocated from it: an entry
whose id, size, digest or part count no journal-sendmail could have written
is ``damaged`` (shown as such, never given back as a mail), and an
informational number that makes no sense (a caller's pid) is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import schema
from ..schema import MAX_PARTS, MAX_SIZE_CEILING, MSG_REFUSED, PART_SIZE_MAX, PART_SIZE_MIN
from ..users import name_of

PID_MAX = 1 << 22  # the kernel's ceiling for pid_max
UID_MAX = (1 << 32) - 2
SIZE_MAX = 1 << 63
_HEX = b"0123456789abcdef"
WITHHELD = "\0withheld"  # no journal field has this name: {field: length} of the fields not read (fields.py)

Sender = tuple[int | None, str, str]


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
    uid: int | None = None  # the user who submitted it: journald's _UID, or for a spooled mail the spool file's owner
    username: str | None = None
    hostname: str = ""
    boot_id: str = ""
    caller_comm: str = ""
    caller_pid: int | None = None
    caller_exe: str = ""
    caller_unit: str = ""  # MAIL_CALLER_UNIT: the unit the submission ran in, as sendmail read it
    systemd_unit: str = ""  # _SYSTEMD_UNIT: the same, by journald's word
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
    damaged: str = ""  # why this entry cannot be a mail journal-sendmail wrote ("" when it can)
    writer_uid: int | None = None  # journald's _UID: who wrote the entry (root's flusher for a spooled mail)

    @property
    def subject(self) -> str:
        return self.headers.get("subject", "")

    @property
    def unit(self) -> str:
        """The unit the mail came from, by journald's word only (_SYSTEMD_UNIT): MAIL_CALLER_UNIT
        (``caller_unit``) is the sender's claim, which any local user can forge."""
        return self.systemd_unit

    @property
    def sender(self) -> Sender:
        """Who wrote the entry, by journald's trusted fields: a mail is the entries of one sender."""
        return (self.uid if self.writer_uid is None else self.writer_uid, self.hostname, self.boot_id)


def hex_id(value: bytes, length: int) -> bool:
    """Exactly ``length`` lower-case hexadecimal digits.

    >>> hex_id(b"0f" * 16, 32), hex_id(b"0F" * 16, 32), hex_id(b"0f", 32)
    (True, False, False)
    """
    return len(value) == length and not value.translate(None, _HEX)


def count(value: bytes | None, high: int) -> int | None:
    """A decimal number from 0 to ``high``, or None (no sign, space or other digits).

    >>> count(b"42", 100), count(b"-5", 100), count(b"x", 100), count(b"101", 100), count("٣".encode(), 9)
    (42, None, None, None, None)
    """
    if value is None or not 0 < len(value) <= 20 or not value.isdigit():
        return None
    n = int(value)
    return n if n <= high else None


# MAIL_FROM -> from, MAIL_MESSAGE_ID -> message_id, …: the keys of MailEntry.headers (schema.py's table)
HEADER_FIELDS = {name: header.replace("-", "_") for header, name in schema.MESSAGE_HEADER_FIELDS.items()}


def first_value(d: dict[str, Any], name: str) -> bytes | None:
    """The (first) value of field ``name`` in an entry's fields."""
    v = d.get(name)
    return v[0] if isinstance(v, list) else v


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0]
    return bytes(value).decode("utf-8", "replace")


def to_entry(d: dict[str, Any], realtime: int, cursor: str) -> MailEntry:
    """A MailEntry from the fields of one message entry (``source.Journal.fields``).

    Written for speed (``list --json`` reads ~30 fields of every mail): one
    dict lookup and at most one decode per field.
    """
    get = d.get
    damaged: list[str] = []

    def text(name: str) -> str:
        v = get(name)
        if v is None:
            return ""
        if v.__class__ is list:
            v = v[0]
        return v.decode("utf-8", "replace")  # type: ignore[no-any-return]

    def single(name: str) -> bytes | None:
        """A field journal-sendmail writes once: given twice, the entry is not ours."""
        v = get(name)
        if v.__class__ is list:
            damaged.append(f"{name} given {len(v)} times")
            return None
        return v  # type: ignore[no-any-return]

    def number(name: str, high: int) -> int | None:
        v = get(name)
        return None if v is None or v.__class__ is list else count(v, high)

    mail_id = single(schema.MAIL_ID) or b""
    if not hex_id(mail_id, 32):
        damaged.append("MAIL_ID is not 32 hexadecimal digits")
    size_field = single(schema.MAIL_SIZE)
    size = count(size_field, MAX_SIZE_CEILING)
    if size is None:
        damaged.append("MAIL_SIZE is not a size journal-sendmail writes")
    sha256 = single(schema.MAIL_SHA256)
    if sha256 is None or not hex_id(sha256, 64):
        damaged.append("MAIL_SHA256 is not a SHA-256 digest")
    withheld: dict[str, int] = get(WITHHELD) or {}
    for name, length in withheld.items():
        if name != schema.MAIL_RAW:
            damaged.append(f"{name} of {length} bytes is longer than any part")
    raw = single(schema.MAIL_RAW) or b""
    n = withheld.get(schema.MAIL_RAW, len(raw))
    if schema.MAIL_RAW in withheld or n > PART_SIZE_MAX or (size is not None and n > size):
        # longer than any part or than the mail: forged; never kept (fields.py did not even
        # read it, where it could: the entry's fields came without it)
        damaged.append(f"MAIL_RAW of {n}{'' if withheld or n <= PART_SIZE_MAX else '+'} bytes is longer than "
                       f"{'any part' if n > PART_SIZE_MAX else 'MAIL_SIZE'}")
        raw = b""
    parts_field = single(schema.MAIL_PARTS)
    parts = 1 if parts_field is None else count(parts_field, MAX_PARTS)
    if parts is None or parts < 1:
        damaged.append("MAIL_PARTS is not a part count journal-sendmail writes")
        parts = 1
    elif size is not None and parts > 1 and (len(raw) < PART_SIZE_MIN or parts != -(-size // len(raw))):
        damaged.append(f"MAIL_PARTS={parts} does not fit MAIL_SIZE={size} in parts of {len(raw)} bytes")
    rcpts = get(schema.MAIL_RCPTS)
    if rcpts is not None:
        recipients = tuple(text(schema.MAIL_RCPTS).split(","))
    else:
        rc = get(schema.MAIL_RCPT, [])
        recipients = tuple(_text([v]) for v in (rc if isinstance(rc, list) else [rc]))
    writer = number(schema.TRUSTED_UID, UID_MAX)
    # A spooled mail is re-injected by root's flusher, which read the spool file's owner
    # (MAIL_SPOOL_UID): that is its user.  The same claim from anyone else is no claim.
    claim = number(schema.MAIL_SPOOL_UID, UID_MAX)
    spooled = get(schema.MAIL_SPOOLED) == b"yes" and writer is not None and (writer == 0 or claim == writer)
    spool_uid = claim if spooled else None  # (a user flushing only its own mail: its own uid)
    uid = spool_uid if spool_uid is not None else writer
    truncated = number(schema.MAIL_TRUNCATED, SIZE_MAX)
    argv = text(schema.MAIL_ARGV)
    defects = text(schema.MAIL_DEFECTS)
    stored_text = get(schema.MAIL_TEXT)
    return MailEntry(
        mail_id=mail_id.decode("utf-8", "replace"),
        realtime=realtime,
        cursor=cursor,
        kind="refused" if get("MESSAGE_ID") == _REFUSED else "mail",
        envelope_from=text(schema.MAIL_ENVELOPE_FROM),
        recipients=recipients,
        headers={key: text(name) for name, key in HEADER_FIELDS.items() if name in d},
        size=size or 0,
        sha256=(sha256 or b"").decode("ascii", "replace"),
        parts=parts,
        uid=uid,
        username=name_of(uid),
        hostname=text(schema.TRUSTED_HOSTNAME),
        boot_id=text(schema.TRUSTED_BOOT_ID),
        caller_comm=text(schema.MAIL_CALLER_COMM),
        caller_pid=number(schema.MAIL_CALLER_PID, PID_MAX),
        caller_exe=text(schema.MAIL_CALLER_EXE),
        caller_unit=text(schema.MAIL_CALLER_UNIT),
        systemd_unit=text(schema.TRUSTED_UNIT),
        argv=tuple(argv.split("\n")) if argv else (),
        invoked_as=text(schema.MAIL_INVOKED_AS),
        spooled=spooled,
        spool_uid=spool_uid,
        submitted_at=text(schema.MAIL_SUBMITTED_AT),
        truncated=truncated if truncated is not None and truncated > (size or 0) else None,
        refused=text(schema.MAIL_REFUSED),
        defects=tuple(defects.split("\n")) if defects else (),
        text=None if stored_text is None else _text(stored_text),
        raw=raw,
        damaged="; ".join(damaged),
        writer_uid=writer,
    )


_REFUSED = MSG_REFUSED.encode()
