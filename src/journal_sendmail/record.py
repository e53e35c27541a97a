"""Record: the journal fields of a message, and their native-protocol encoding.

Pure functions, no I/O.  Every value is written in the protocol's binary
form (name, newline, 64-bit length, bytes), so no value, whatever newlines,
``=`` or NULs it holds, can ever start a field of its own.
"""

from .dataclass_lite import field, record
from .schema import (
    MAIL_AFTER_DOT,
    MAIL_AFTER_DOT_SIZE,
    MAIL_ARGV,
    MAIL_CONFIG_ERROR,
    MAIL_CONFIG_KEY,
    MAIL_DEFECTS,
    MAIL_ENVELOPE_FROM,
    MAIL_FULL_NAME,
    MAIL_ID,
    MAIL_INVOKED_AS,
    MAIL_PART,
    MAIL_PARTS,
    MAIL_RAW,
    MAIL_RCPT,
    MAIL_RCPTS,
    MAIL_REFUSED,
    MAIL_SHA256,
    MAIL_SIZE,
    MAIL_SPOOL_FILE,
    MAIL_SPOOL_REASON,
    MAIL_SPOOL_UID,
    MAIL_SUBJECT,
    MAIL_TEXT,
    MAIL_TRUNCATED,
    MAX_RCPT_FIELDS,
    MSG_CONFIG,
    MSG_MAIL,
    MSG_PART,
    MSG_REFUSED,
    MSG_SPOOL,
)

PRIORITY_ERR = 3
PRIORITY_WARNING = 4

Fields = list[tuple[str, bytes]]

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@record
class Mail:
    """Everything the entry of one message says, before encoding."""

    mail_id: str
    envelope_from: str
    recipients: list[str]
    headers: dict[str, str]
    size: int
    sha256: str
    argv: tuple[str, ...]
    invoked_as: str
    identifier: str = "sendmail"
    priority: int = 6
    facility: int = 2
    full_name: str | None = None
    recorded: tuple[tuple[str, str], ...] = ()
    caller: dict[str, str] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)
    text: str | None = None
    received: int | None = None  # set when the message was truncated
    after_dot: bytes | None = None
    after_dot_size: int = 0
    refused: str | None = None  # why the submission was refused (still recorded)
    extra: Fields = field(default_factory=list)  # SMTP envelope, spool fields


def valid_name(name: str) -> bool:
    """Journal field names: A-Z, 0-9 and _, at most 64, no leading digit or _.

    >>> valid_name("MAIL_RCPT"), valid_name("_UID"), valid_name("mail"), valid_name("9A")
    (True, False, False, False)
    """
    return 0 < len(name) <= 64 and "A" <= name[0] <= "Z" and _NAME_CHARS.issuperset(name)


def summary(mail: "Mail") -> str:
    """The one readable MESSAGE line."""
    rcpts = mail.recipients
    shown = ", ".join(rcpts[:5]) + (f" and {len(rcpts) - 5} more" if len(rcpts) > 5 else "")
    subject = mail.headers.get(MAIL_SUBJECT, "")
    line = f"mail from {mail.envelope_from} to {shown or '(no recipients)'} ({mail.size} bytes)"
    if mail.refused:
        line = f"refused {line}: {mail.refused}"
    if subject:
        line += f": {subject}"
    return " ".join(line.split())[:1000]


def mail_fields(mail: "Mail", first_chunk: bytes, parts: int) -> Fields:
    """The fields of the message entry (id 4cf50392…, or 23042c0e… if refused)."""
    out: Fields = []

    def add(name: str, value: str | bytes | int) -> None:
        if isinstance(value, int):
            value = str(value)
        out.append((name, value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")))

    add("MESSAGE", summary(mail))
    add("MESSAGE_ID", MSG_REFUSED if mail.refused else MSG_MAIL)
    add("PRIORITY", PRIORITY_WARNING if mail.refused else mail.priority)
    add("SYSLOG_FACILITY", mail.facility)
    add("SYSLOG_IDENTIFIER", mail.identifier)
    add(MAIL_ID, mail.mail_id)
    if mail.refused:
        add(MAIL_REFUSED, mail.refused)
    add(MAIL_ENVELOPE_FROM, mail.envelope_from)
    if mail.full_name is not None:
        add(MAIL_FULL_NAME, mail.full_name)
    for rcpt in mail.recipients[:MAX_RCPT_FIELDS]:
        add(MAIL_RCPT, rcpt)
    if mail.recipients:
        add(MAIL_RCPTS, ",".join(mail.recipients))
    for name, value in mail.headers.items():
        add(name, value)
    add(MAIL_SIZE, mail.size)
    add(MAIL_SHA256, mail.sha256)
    if parts > 1:
        add(MAIL_PART, 1)
        add(MAIL_PARTS, parts)
    add(MAIL_RAW, first_chunk)
    if mail.text is not None:
        add(MAIL_TEXT, mail.text)
    add(MAIL_ARGV, "\n".join(mail.argv))
    add(MAIL_INVOKED_AS, mail.invoked_as)
    for name, value in sorted(mail.caller.items()):
        add(name, value)
    for name, value in mail.recorded:
        add(name, value)
    if mail.defects:
        add(MAIL_DEFECTS, "\n".join(mail.defects))
    if mail.received is not None:
        add(MAIL_TRUNCATED, mail.received)
    if mail.after_dot is not None:
        add(MAIL_AFTER_DOT, mail.after_dot)
        if mail.after_dot_size > len(mail.after_dot):
            add(MAIL_AFTER_DOT_SIZE, mail.after_dot_size)
    out.extend(mail.extra)
    return out


def part_fields(mail: "Mail", part: int, parts: int, chunk: bytes) -> Fields:
    """The fields of part entry ``part`` (2..parts) of a split message."""
    return [
        ("MESSAGE", f"part {part} of {parts} of mail {mail.mail_id}".encode()),
        ("MESSAGE_ID", MSG_PART.encode()),
        ("PRIORITY", str(mail.priority).encode()),
        ("SYSLOG_FACILITY", str(mail.facility).encode()),
        ("SYSLOG_IDENTIFIER", mail.identifier.encode("utf-8", "surrogateescape")),
        (MAIL_ID, mail.mail_id.encode()),
        (MAIL_PART, str(part).encode()),
        (MAIL_PARTS, str(parts).encode()),
        (MAIL_RAW, chunk),
    ]


def spool_event_fields(
    identifier: str, facility: int, message: str, name: str, reason: str, owner: int | None, priority: int
) -> Fields:
    """The fields of a spool event (id 963c70d7…): a spool file refused."""
    fields: Fields = [
        ("MESSAGE", message.encode("utf-8", "replace")),
        ("MESSAGE_ID", MSG_SPOOL.encode()),
        ("PRIORITY", str(priority).encode()),
        ("SYSLOG_FACILITY", str(facility).encode()),
        ("SYSLOG_IDENTIFIER", identifier.encode("utf-8", "surrogateescape")),
        (MAIL_SPOOL_FILE, name.encode("utf-8", "surrogateescape")),
        (MAIL_SPOOL_REASON, reason.encode("utf-8", "surrogateescape")),
    ]
    if owner is not None:
        fields.append((MAIL_SPOOL_UID, str(owner).encode()))
    return fields


def config_error_fields(identifier: str, facility: int, error: str, keys: list[str]) -> Fields:
    """The fields of a configuration error (id c66f6fa4…): the mail was
    stored with built-in defaults for ``keys`` ("" for the whole file)."""
    fields: Fields = [
        ("MESSAGE", f"bad configuration, built-in defaults used: {error}".encode("utf-8", "replace")),
        ("MESSAGE_ID", MSG_CONFIG.encode()),
        ("PRIORITY", str(PRIORITY_ERR).encode()),
        ("SYSLOG_FACILITY", str(facility).encode()),
        ("SYSLOG_IDENTIFIER", identifier.encode("utf-8", "surrogateescape")),
        (MAIL_CONFIG_ERROR, error.encode("utf-8", "surrogateescape")),
    ]
    fields += [(MAIL_CONFIG_KEY, key.encode("utf-8", "surrogateescape")) for key in dict.fromkeys(keys) if key]
    return fields


def encode(fields: Fields) -> bytes:
    """The native-protocol datagram for ``fields``, every value in binary form.

    >>> encode([("MAIL_SUBJECT", b"a\\nMESSAGE_ID=x")])
    b'MAIL_SUBJECT\\n\\x0e\\x00\\x00\\x00\\x00\\x00\\x00\\x00a\\nMESSAGE_ID=x\\n'
    """
    out = bytearray()
    for name, value in fields:
        if not valid_name(name):
            raise ValueError(f"invalid journal field name {name!r}")
        out += name.encode("ascii")
        out += b"\n"
        out += len(value).to_bytes(8, "little")
        out += value
        out += b"\n"
    return bytes(out)
