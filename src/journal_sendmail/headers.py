"""Headers and recipients: the header block parsed with the standard ``email``.

Importing ``email`` costs ~15 ms, twice the interpreter's own start-up, and
every cron mail would pay it.  So a fast path takes the header block when it
is trivially simple (ASCII, no encoded words, no folding, recipients that
are plain comma-separated tokens) and everything else goes to ``email``.  A
property test proves that both give the same answer wherever the fast path
accepts the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Headers recorded as MAIL_<NAME> fields, by lower-case name.
RECORDED = {
    "from": "MAIL_FROM",
    "to": "MAIL_TO",
    "cc": "MAIL_CC",
    "bcc": "MAIL_BCC",
    "subject": "MAIL_SUBJECT",
    "date": "MAIL_DATE",
    "message-id": "MAIL_MESSAGE_ID",
    "auto-submitted": "MAIL_AUTO_SUBMITTED",
}
RCPT_HEADERS = ("to", "cc", "bcc")
RESENT_HEADERS = ("resent-to", "resent-cc", "resent-bcc")
ADDRESS_HEADERS = frozenset(("from",) + RCPT_HEADERS + RESENT_HEADERS)

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9-]+"
_TOKEN = rf"{_ATOM}(?:\.{_ATOM})*(?:@{_LABEL}(?:\.{_LABEL})*)?"  # a dot-atom address
PLAIN_LIST = re.compile(rf"[ \t]*{_TOKEN}(?:[ \t]*,[ \t]*{_TOKEN})*[ \t]*")
_SIMPLE_LINE = re.compile(rb"([!-9;-~]+):([ -~]*)\r?\n")
# Structured headers the fast path takes only in their everyday form.
_DAY = r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
SIMPLE_VALUES = {
    "date": re.compile(rf"{_DAY}(\d{{1,2}}) ({_MONTH}) (\d{{4}}) (?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)? [+-](?:[01]\d|2[0-3])[0-5]\d"),
    "message-id": re.compile(rf"<{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*>"),
    "content-type": re.compile(r"text/plain(?:; ?charset=[A-Za-z0-9_-]+)?", re.IGNORECASE),
    "content-transfer-encoding": re.compile(r"7bit|8bit|binary|quoted-printable|base64", re.IGNORECASE),
}


@dataclass
class Headers:
    """What the header block says."""

    values: dict[str, str] = field(default_factory=dict)  # field name -> decoded value
    header_recipients: list[str] = field(default_factory=list)  # To/Cc/Bcc or Resent-*
    content: dict[str, str] = field(default_factory=dict)  # content-type, -transfer-encoding
    defects: list[str] = field(default_factory=list)
    unixfrom: str | None = None  # the address of a leading "From " line
    fast: bool = False  # parsed without the email package


def header_block(head: bytes) -> tuple[bytes | None, bytes]:
    """Split off a leading ``From `` line and return (it, the header block).

    The block ends at the first empty line (kept) or at the end of ``head``.
    """
    unixfrom = None
    if head.startswith(b"From "):
        nl = head.find(b"\n")
        unixfrom, head = (head, b"") if nl < 0 else (head[: nl + 1], head[nl + 1:])
    m = re.search(rb"(?:^|\n)\r?\n", head)
    return unixfrom, head if m is None else head[: m.end()]


def _unixfrom_address(line: bytes | None) -> str | None:
    if line is None:
        return None
    parts = line[5:].decode("utf-8", "replace").split()
    return parts[0] if parts else None


def parse(head: bytes) -> Headers:
    """Parse the header block at the start of ``head``."""
    unixfrom, block = header_block(head)
    found = parse_fast(block)
    if found is None:
        found = parse_email(block)
    found.unixfrom = _unixfrom_address(unixfrom)
    return found


def parse_fast(block: bytes) -> Headers | None:
    """The fast path; None where the block is not trivially simple."""
    if b"=?" in block:
        return None
    lines = block.splitlines(keepends=True)
    if not lines or lines[-1].strip(b"\r\n"):
        return None  # no empty line closes the block
    out = Headers(fast=True)
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for line in lines[:-1]:
        m = _SIMPLE_LINE.fullmatch(line)
        if m is None:
            return None  # folding, 8-bit, a bare CR, not a header at all
        name = m.group(1).decode("ascii").lower()
        value = m.group(2).decode("ascii").strip(" \t")
        addrs: list[str] = []
        if name in SIMPLE_VALUES:
            simple = SIMPLE_VALUES[name].fullmatch(value)
            if simple is None or name == "date" and not _real_day(*simple.groups()):
                return None
        if name in ADDRESS_HEADERS and value:
            if PLAIN_LIST.fullmatch(value) is None:
                return None
            addrs = [a.strip(" \t") for a in value.split(",")]
            value = ", ".join(addrs)
        if name in INTERESTING:
            found.setdefault(name, []).append((value, addrs))
    _finish(out, found)
    return out


INTERESTING = frozenset(RECORDED) | ADDRESS_HEADERS | {"content-type", "content-transfer-encoding"}


def _real_day(day: str, month: str, year: str) -> bool:
    """Does the month have that day (a date the email package would refuse)?"""
    y = int(year)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= int(day) <= days["JanFebMarAprMayJunJulAugSepOctNovDec".index(month) // 3] and y >= 1900


def _finish(out: Headers, found: dict[str, list[tuple[str, list[str]]]]) -> None:
    """Fill ``out`` from every occurrence of the interesting headers, by name."""
    for name, occurrences in found.items():
        if name in RECORDED:
            texts = [text for text, _ in occurrences]
            joined = ", ".join(t for t in texts if t) if name in ADDRESS_HEADERS else texts[0]
            out.values[RECORDED[name]] = joined
        elif name.startswith("content-"):
            out.content[name] = occurrences[0][0]
    wanted = RESENT_HEADERS if any(n in found for n in RESENT_HEADERS) else RCPT_HEADERS
    out.header_recipients = [
        a for name in wanted for _, addrs in found.get(name, ()) for a in addrs if a
    ]


def parse_email(block: bytes) -> Headers:
    """The general path: the standard email package with its modern policy."""
    from email import policy
    from email.parser import BytesParser

    out = Headers()
    try:
        msg = BytesParser(policy=policy.default).parsebytes(block, headersonly=True)
    except Exception as e:  # the email package is not supposed to raise; keep going
        out.defects.append(f"headers: unparsable: {type(e).__name__}: {e}")
        return out
    out.defects.extend(_defect_text("message", d) for d in msg.defects)
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for key, raw_value in msg.raw_items():
        name = key.lower()
        if name not in INTERESTING:
            continue
        header = msg.policy.header_fetch_parse(key, raw_value)
        text, addrs, defects = _decode(header, name)
        if name in AS_WRITTEN:
            # the email package re-renders these; the entry keeps what was written
            text = _utf8("".join(str(raw_value).splitlines())).strip(" \t")
        out.defects.extend(_defect_text(key, d) for d in defects)
        found.setdefault(name, []).append((text, addrs))
    _finish(out, found)
    return out


AS_WRITTEN = frozenset(("date", "message-id", "content-type", "content-transfer-encoding"))


def _decode(header: object, name: str) -> tuple[str, list[str], list[object]]:
    """(decoded text, addresses, defects) of one header object."""
    defects = list(getattr(header, "defects", ()))
    try:
        text = _utf8(str(header)).strip(" \t\r\n")
    except Exception as e:
        return "", [], [*defects, f"undecodable: {e}"]
    addresses: list[str] = []
    if name in ADDRESS_HEADERS:
        try:
            addresses = [_utf8(a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]
        except Exception:
            addresses = addresses_email(text)
        defects = [d for d in defects if not _local_name_defect(d)]
    return text, [a for a in addresses if a], defects


def _local_name_defect(defect: object) -> bool:
    # "root" is a fine recipient for a sendmail: a local user, not a defect.
    return "local part with no domain" in str(defect)


def _utf8(text: str) -> str:
    """Bytes the parser kept as surrogates become UTF-8, or U+FFFD where invalid."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _defect_text(where: str, defect: object) -> str:
    name = type(defect).__name__ if not isinstance(defect, str) else "Defect"
    return f"{where}: {name}: {defect}"


def addresses(value: str) -> list[str]:
    """The addresses in one address list: an argument or a header value.

    >>> addresses("a@x,b@y")
    ['a@x', 'b@y']
    >>> addresses('"x, y" <z@z>, friends: c@x, d@y;, root (the admin)')
    ['z@z', 'c@x', 'd@y', 'root']
    """
    if PLAIN_LIST.fullmatch(value):
        return [a.strip(" \t") for a in value.split(",")]
    return addresses_email(value)


def addresses_email(value: str) -> list[str]:
    from email import policy

    try:
        header = policy.default.header_factory("To", value)
        found = [_utf8(a.addr_spec) for a in header.addresses]
    except Exception:
        from email.utils import getaddresses

        found = [a for _, a in getaddresses([value])]
    return [a for a in found if a]
