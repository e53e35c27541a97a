"""Headers and recipients: the header block parsed with the standard ``email``.

Importing ``email`` costs ~17 ms here, more than twice the interpreter's own
start-up, and every cron mail would pay it.  So a fast path takes the header
block when it is trivially simple (printable ASCII, no folding, recipients
that are plain comma-separated tokens, everyday Date, Message-ID and
Content-* values) and everything else goes to ``email``.  RFC 2047 encoded
words in a Subject, or in the display name of a From that is otherwise
simple, are decoded by the email package's own decoder, which costs half as
much to import as its parser; the fast path only checks that they are
whole, well-formed words.  Property tests prove that both paths give the
same answer wherever the fast path accepts the input.  Address, Date,
Message-ID and Content-* headers are recorded as written (encoded words
decoded): the email package re-renders them, and would drop cron's
``root (Cron Daemon)`` comment.
"""

from .dataclass_lite import field, record
from .schema import BLOCK_MAX, HEADER_FIELDS, HEADER_MAX, HEADERS_MAX

ADDRESSES_MAX = 10_000  # addresses read from the address headers

TYPE_CHECKING = False  # typing is not imported on the sender's path
if TYPE_CHECKING:
    from email.message import Message

RCPT_HEADERS = ("to", "cc", "bcc")
RESENT_HEADERS = ("resent-to", "resent-cc", "resent-bcc")
ADDRESS_HEADERS = frozenset(("from", *RCPT_HEADERS, *RESENT_HEADERS))

# The fast path checks by hand what would be regular expressions: importing
# ``re`` alone costs ~10 ms here.
_ATOM_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-")
_LABEL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_DAYS = frozenset(("Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CHARSET_CHARS = _LABEL_CHARS | {"_"}
_CTES = frozenset(("7bit", "8bit", "binary", "quoted-printable", "base64"))


def _dot_atom(text: str, chars: frozenset[str] = _ATOM_CHARS) -> bool:
    return all(part and chars.issuperset(part) for part in text.split("."))


def _plain_address(token: str) -> bool:
    """A dot-atom address, ``local`` or ``local@domain.example``."""
    local, at, domain = token.partition("@")
    return _dot_atom(local) and (not at or _dot_atom(domain, _LABEL_CHARS))


def plain_list(value: str) -> list[str] | None:
    """The addresses of a list of plain comma-separated tokens, else None.

    >>> plain_list(" a@x ,b.c@y.z"), plain_list('"a" <b@c>'), plain_list("a,,b")
    (['a@x', 'b.c@y.z'], None, None)
    """
    tokens = [t.strip(" \t") for t in value.split(",")]
    return tokens if all(_plain_address(t) for t in tokens) else None


_COMMENT_CHARS = frozenset(chr(c) for c in range(32, 127)) - set('()\\"')
_PHRASE_CHARS = _ATOM_CHARS | {" "}


def _simple_from(value: str) -> bool:
    """``addr``, ``addr (Full Name)`` (cron's) or ``Full Name <addr>``."""
    if value.endswith(")") and " (" in value:
        addr, _, comment = value[:-1].partition(" (")
        return _plain_address(addr.rstrip(" ")) and _COMMENT_CHARS.issuperset(comment)
    if value.endswith(">") and " <" in value:
        phrase, _, addr = value[:-1].rpartition(" <")
        words = phrase.split(" ")
        return all(words) and _PHRASE_CHARS.issuperset(phrase) and "@" in addr and _plain_address(addr)
    return _plain_address(value)


def _number(text: str, low: int, high: int, width: tuple[int, ...]) -> bool:
    return len(text) in width and text.isascii() and text.isdigit() and low <= int(text) <= high


def _simple_date(value: str) -> bool:
    """``[Sat, ]21 Nov 2026 08:00[:00] +0000`` naming a real day and time."""
    parts = value.split(" ")
    if len(parts) == 6 and parts[0] in _DAYS:
        parts = parts[1:]
    if len(parts) != 5:
        return False
    day, month, year, clock, zone = parts
    hms = clock.split(":")
    return (
        month in _MONTHS
        and _number(year, 1900, 9999, (4,))
        and _number(day, 1, _days_in(_MONTHS.index(month), int(year)), (1, 2))
        and len(hms) in (2, 3)
        and _number(hms[0], 0, 23, (2,))
        and all(_number(x, 0, 59, (2,)) for x in hms[1:])
        and len(zone) == 5
        and zone[0] in "+-"
        and _number(zone[1:3], 0, 23, (2,))
        and _number(zone[3:], 0, 59, (2,))
    )


def _days_in(month: int, year: int) -> int:
    if month == 1:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (3, 5, 8, 10) else 31


def _simple_message_id(value: str) -> bool:
    if len(value) < 5 or value[0] != "<" or value[-1] != ">":
        return False
    local, at, domain = value[1:-1].partition("@")
    return bool(at) and _dot_atom(local) and _dot_atom(domain, _LABEL_CHARS)


def _simple_content_type(value: str) -> bool:
    low = value.lower()
    if low == "text/plain":
        return True
    if not low.startswith("text/plain;"):
        return False
    rest = low[11:].removeprefix(" ")
    return rest.startswith("charset=") and len(rest) > 8 and _CHARSET_CHARS.issuperset(rest[8:])


def _simple_cte(value: str) -> bool:
    return value.lower() in _CTES


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_HEX = frozenset("0123456789ABCDEFabcdef")
_Q_CHARS = frozenset(chr(c) for c in range(33, 127)) - {"?"}


def _encoded_word(token: str) -> bool:
    """One whole, well-formed RFC 2047 word: ``=?charset?Q|B?text?=``.

    >>> _encoded_word("=?utf-8?q?J=C3=B6rg?="), _encoded_word("=?utf-8?b?w6k=?=")
    (True, True)
    >>> _encoded_word("=?utf-8?q?=C?="), _encoded_word("=?utf-8?b?w6k?="), _encoded_word("a=?utf-8?q?b?=")
    (False, False, False)
    """
    if len(token) < 8 or not token.startswith("=?") or not token.endswith("?="):
        return False
    parts = token[2:-2].split("?")
    if len(parts) != 3:
        return False
    charset, encoding, text = parts
    if not charset or not text or not _CHARSET_CHARS.issuperset(charset):
        return False
    if encoding in ("b", "B"):
        data = text.rstrip("=")
        return len(text) % 4 == 0 and len(text) - len(data) <= 2 and _B64_CHARS.issuperset(data)
    if encoding not in ("q", "Q") or not _Q_CHARS.issuperset(text):
        return False
    escapes = text.split("=")[1:]
    return all(len(e) >= 2 and _HEX.issuperset(e[:2]) for e in escapes)


def decode_words(value: str) -> str | None:
    """``value`` with its encoded words decoded by the email package; None
    where one is not a lone, whole, well-formed word, its decoding has a
    defect (an unknown charset, bytes the charset cannot decode) or it
    decodes to a character that is not printable (a control character, a
    separator other than the space).

    Encoded words are decoded one by one with the decoder the email
    package's modern parser uses itself (``email._encoded_words``, private
    but unchanged since Python 3.3), and joined by RFC 2047's rule: the
    space between two encoded words is dropped.  ``email.header``, the public
    legacy decoder, doubles a space after a us-ascii word and costs 0.8 ms
    more to import; the modern parser costs ~14 ms more.

    >>> decode_words("=?utf-8?q?J=C3=B6rg?= =?utf-8?q?_M?=  x =?utf-8?b?w6k=?=")
    'Jörg M  x é'
    >>> decode_words("(=?utf-8?q?a?=)"), decode_words("=?bogus?q?a?=")
    (None, None)
    """
    try:
        from email._encoded_words import decode  # type: ignore[import-not-found]  # no stub: private
    except ImportError:  # a Python without it: the parser decides
        return None
    parts: list[str] = []
    spaces = 0
    after_word = False
    for token in value.split(" "):
        if not token:
            spaces += 1
            continue
        word = "=?" in token
        text = token
        if word:
            if not _encoded_word(token):
                return None
            try:
                text, _charset, _lang, defects = decode(token)
            except Exception:  # not the shape decode() was written for: the parser decides
                return None
            if defects or not text.isprintable():  # a newline, a control: the parser has its defect
                return None
        if parts and not (word and after_word):
            parts.append(" " * (spaces + 1))
        parts.append(text)
        spaces, after_word = 0, word
    return "".join(parts)


def _named_from(value: str) -> bool:
    """Encoded words in From stand in the display name of ``Name <addr>``."""
    return value.endswith(">") and " <" in value and "=?" not in value[value.rfind(" <"):]


# Headers whose encoded words the fast path hands to decode_words.
ENCODED_OK = frozenset(("subject", "auto-submitted", "from"))


# Structured headers the fast path takes only in their everyday form.
SIMPLE_VALUES = {
    "date": _simple_date,
    "message-id": _simple_message_id,
    "content-type": _simple_content_type,
    "content-transfer-encoding": _simple_cte,
}


def _simple_line(line: bytes) -> tuple[str, str] | None:
    """``Name: value`` of printable ASCII ending in LF or CRLF, else None."""
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    else:
        return None
    name, colon, value = line.partition(b":")
    if not colon or not name or min(name) < 33 or max(name) > 126:
        return None
    if value and (min(value) < 32 or max(value) > 126):
        return None
    return name.decode("ascii"), value.decode("ascii")


@record
class Headers:
    """What the header block says."""

    values: dict[str, str] = field(default_factory=dict)  # field name -> decoded value
    header_recipients: list[str] = field(default_factory=list)  # To/Cc/Bcc or Resent-*
    content: dict[str, str] = field(default_factory=dict)  # content-type, -transfer-encoding
    defects: list[str] = field(default_factory=list)
    unixfrom: str | None = None  # the address of a leading "From " line
    fast: bool = False  # parsed by the fast path (its encoded words by decode_words)


def header_end(data: bytes) -> int | None:
    """Where the header block ends: just after its first empty line.

    >>> header_end(b"To: a\\n\\nbody"), header_end(b"\\r\\nbody"), header_end(b"To: a\\n")
    (7, 2, None)
    """
    for blank in (b"\n", b"\r\n"):
        if data.startswith(blank):
            return len(blank)
    ends = [i + n for sep, n in ((b"\n\n", 2), (b"\n\r\n", 3)) if (i := data.find(sep)) >= 0]
    return min(ends) if ends else None



# What any parser is given of a header block (mailparse.py says why): past these
# (and schema.py's HEADER_MAX, BLOCK_MAX and HEADERS_MAX), a header is cut, or
# left out, and a defect says so; MAIL_RAW keeps every byte.
WORDS_MAX = 1024  # RFC 2047 encoded words in one header


def _nth(data: bytes, sub: bytes, n: int) -> int:
    """Where the ``n``-th (from 1) ``sub`` in ``data`` starts; -1 when there are fewer."""
    at = -1
    for _ in range(n):
        at = data.find(sub, at + 1)
        if at < 0:
            break
    return at


def bound_block(block: bytes) -> tuple[bytes, list[str]]:
    r"""The header block as parsers may see it, and a defect for every cut.

    Linear, and nothing is copied when no header is past a bound.

    >>> bound_block(b"Subject: hi\n\n")
    (b'Subject: hi\n\n', [])
    >>> cut, why = bound_block(b"Subject: " + b"=?a?q?b?= " * 1100 + b"\nTo: root\n\n")
    >>> cut.count(b"=?"), cut.endswith(b" \nTo: root\n\n"), why[0][:69]
    (1024, True, 'headers: Subject: 11010 bytes, 1100 encoded words: cut to 10250 bytes')
    """
    if len(block) <= HEADER_MAX and block.count(b"=?") <= WORDS_MAX and block.count(b"\n") <= HEADERS_MAX:
        return block, []
    out: list[bytes] = []
    defects: list[str] = []
    total = left_out = pos = count = 0
    n = len(block)
    while pos < n:
        end = pos
        while True:  # one header: its line and the folded lines after it
            nl = block.find(b"\n", end)
            end = n if nl < 0 else nl + 1
            if end >= n or block[end] not in (32, 9):
                break
        header = block[pos:end]
        pos = end
        if not header.strip(b"\r\n"):
            out.append(header)  # the empty line that ends the block
            continue
        if total + min(len(header), HEADER_MAX) > BLOCK_MAX or count == HEADERS_MAX:
            left_out += 1
            continue
        count += 1
        cut = header[:HEADER_MAX]
        words = cut.count(b"=?")
        if words > WORDS_MAX:
            cut = cut[:_nth(cut, b"=?", WORDS_MAX + 1)]
        if len(cut) < len(header):
            eol = b"\r\n" if header.endswith(b"\r\n") else b"\n"
            cut = cut.rstrip(b"\r\n") + eol
            name = header.split(b":", 1)[0][:64].decode("ascii", "replace")
            defects.append(f"headers: {name}: {len(header)} bytes, {header.count(b'=?')} encoded words: "
                           f"cut to {len(cut)} bytes for the parser (kept whole in MAIL_RAW)")
        out.append(cut)
        total += len(cut)
    if left_out:
        defects.append(f"headers: {left_out} header(s) past the first {HEADERS_MAX} headers or {BLOCK_MAX} bytes "
                       "of the header block left out of the parse (kept whole in MAIL_RAW)")
    return b"".join(out), defects


def header_block(head: bytes) -> tuple[bytes | None, bytes]:
    """Split off a leading ``From `` line and return (it, the header block).

    The block ends at the first empty line (kept) or at the end of ``head``.
    """
    unixfrom = None
    if head.startswith(b"From "):
        nl = head.find(b"\n")
        unixfrom, head = (head, b"") if nl < 0 else (head[: nl + 1], head[nl + 1:])
    end = header_end(head)
    return unixfrom, head if end is None else head[:end]


def parse_message(raw: bytes, headersonly: bool = False) -> tuple[object, list[str]]:
    """``raw`` parsed by the email package within the bounds (mailparse.py): the message
    (an ``email.message.EmailMessage``) and the defects of the bounding.  The one parse of
    a whole message for show, the web inbox, the index and the readable body."""
    from email.parser import BytesParser

    from .mailparse import POLICY

    lead = b""
    rest = raw
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        lead, rest = (raw, b"") if nl < 0 else (raw[: nl + 1], raw[nl + 1:])
    end = header_end(rest)
    block, body = (rest, b"") if end is None else (rest[:end], rest[end:])
    bounded, defects = bound_block(block)
    if bounded is not block:
        raw = lead + bounded + body
    return BytesParser(policy=POLICY).parsebytes(raw, headersonly=headersonly), defects


def _unixfrom_address(line: bytes | None) -> str | None:
    if line is None:
        return None
    parts = line[5:].decode("utf-8", "replace").split()
    return parts[0] if parts else None


def parse(head: bytes) -> "Headers":
    """Parse the header block at the start of ``head``."""
    unixfrom, block = header_block(head)
    block, cuts = bound_block(block)
    found = parse_fast(block)
    if found is None:
        found = parse_email(block)
    found.defects[:0] = cuts
    found.unixfrom = _unixfrom_address(unixfrom)
    return found


def parse_fast(block: bytes) -> "Headers | None":
    """The fast path; None where the block is not trivially simple."""
    lines = block.splitlines(keepends=True)
    if not lines or lines[-1].strip(b"\r\n"):
        return None  # no empty line closes the block
    out = Headers(fast=True)
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for line in lines[:-1]:
        simple = _simple_line(line)
        if simple is None:
            return None  # folding, 8-bit, a bare CR, not a header at all
        name = simple[0].lower()
        value = simple[1].strip(" \t")
        if name in SIMPLE_VALUES and not SIMPLE_VALUES[name](value):
            return None
        decoded = value
        if "=?" in value and name in INTERESTING:
            ok = name in ENCODED_OK and (name != "from" or _named_from(value))
            words = decode_words(value) if ok else None
            if words is None:
                return None
            # The email package strips unstructured text after decoding it.
            decoded = words if name == "from" else words.strip(" \t\r\n")
        addrs: list[str] = []
        if name == "from" and value and _simple_from(value):
            pass  # recorded as written; From gives no recipients
        elif name in ADDRESS_HEADERS and value:
            found_addrs = plain_list(value)
            if found_addrs is None:
                return None
            addrs = found_addrs
        if name in INTERESTING:
            found.setdefault(name, []).append((decoded, addrs))
    _finish(out, found)
    return out


INTERESTING = frozenset(HEADER_FIELDS) | ADDRESS_HEADERS | {"content-type", "content-transfer-encoding"}


def _finish(out: "Headers", found: dict[str, list[tuple[str, list[str]]]]) -> None:
    """Fill ``out`` from every occurrence of the interesting headers, by name."""
    for name, occurrences in found.items():
        if name in HEADER_FIELDS:  # recorded as MAIL_<NAME>
            texts = [text for text, _ in occurrences]
            joined = ", ".join(t for t in texts if t) if name in ADDRESS_HEADERS else texts[0]
            out.values[HEADER_FIELDS[name]] = joined
        elif name.startswith("content-"):
            out.content[name] = occurrences[0][0]
    wanted = RESENT_HEADERS if any(n in found for n in RESENT_HEADERS) else RCPT_HEADERS
    out.header_recipients = [
        a for name in wanted for _, addrs in found.get(name, ()) for a in addrs if a
    ]


def parse_email(block: bytes) -> "Headers":
    """The general path: the standard email package with its modern policy."""
    from email.parser import BytesParser

    from .mailparse import POLICY

    out = Headers()
    try:
        msg = BytesParser(policy=POLICY).parsebytes(block, headersonly=True)
    except Exception as e:  # the email package is not supposed to raise; keep going
        out.defects.append(f"headers: unparsable: {type(e).__name__}: {e}")
        return out
    out.defects.extend(_defect_text("message", d) for d in msg.defects if not _multipart_quirk(d))
    out.defects.extend(_multipart_defects(msg))
    found: dict[str, list[tuple[str, list[str]]]] = {}
    addressed = 0
    for key, raw_value in msg.raw_items():
        name = key.lower()
        if name not in INTERESTING or (name in found and name not in ADDRESS_HEADERS):
            continue  # only the first Subject, Date … is recorded: the others cost nothing
        if name in ADDRESS_HEADERS and addressed >= ADDRESSES_MAX:
            out.defects.append(f"{key}: not parsed: more than {ADDRESSES_MAX} addresses before it")
            continue
        try:
            header = msg.policy.header_fetch_parse(key, raw_value)  # type: ignore[no-untyped-call]
            text, addrs, defects = _decode(header, name)
        except Exception as e:  # e.g. a display name that decodes to a newline: ValueError
            text = _utf8(str(raw_value)).strip(" \t\r\n")
            addrs = _getaddresses(str(raw_value)) if name in ADDRESS_HEADERS else []
            defects = [f"unparsable: {type(e).__name__}: {e}"]
        if name in AS_WRITTEN:
            text = _as_written(str(raw_value), name)
        out.defects.extend(_defect_text(key, d) for d in defects)
        found.setdefault(name, []).append((text, addrs))
        addressed += len(addrs)
    _finish(out, found)
    return out


def _as_written(raw_value: str, name: str) -> str:
    text = _utf8("".join(raw_value.splitlines())).strip(" \t")
    if "=?" in text and name in ADDRESS_HEADERS:
        words = decode_words(text)
        if words is not None:
            return words  # as the fast path decodes them
        from .mailparse import small

        if not small(text):
            return text  # too big for the legacy decoder below: as written
        # Words inside comments or quoted names: the legacy decoder finds them.
        from email.header import decode_header, make_header

        try:
            text = str(make_header(decode_header(text)))
        except Exception:  # undecodable words stay as written
            pass
    return text


# The email package re-renders these (dropping comments, requoting, reformatting
# dates); the entry keeps what was written, with encoded words decoded.
AS_WRITTEN = ADDRESS_HEADERS | {"date", "message-id", "content-type", "content-transfer-encoding"}


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


def _multipart_quirk(defect: object) -> bool:
    # Parsing headers only, CPython before 3.13 flags every multipart message
    # (the body was not parsed), 3.13 none (gh-106186): _multipart_defects
    # decides instead, the same on every Python.
    return type(defect).__name__ == "MultipartInvariantViolationDefect"


def _multipart_defects(msg: "Message") -> list[str]:
    """Our own check of a multipart Content-Type: it needs a boundary (RFC 2046 5.1.1)."""
    try:
        if msg.get_content_maintype() != "multipart" or msg.get_boundary():
            return []
    except Exception as e:  # a header the email package cannot make sense of
        return [f"message: unparsable Content-Type: {type(e).__name__}: {e}"]
    return ["message: NoBoundaryInMultipartDefect: multipart Content-Type without a boundary"]


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
    return plain_list(value) or addresses_email(value)


def addresses_email(value: str) -> list[str]:
    from .mailparse import POLICY

    try:
        header = POLICY.header_fetch_parse("To", value)
        found = [_utf8(a.addr_spec) for a in header.addresses]
    except Exception:
        found = _getaddresses(value)
    return [a for a in found if a]


def _getaddresses(value: str) -> list[str]:
    """The legacy address parser: for what the modern one raises on."""
    from email.utils import getaddresses

    return [_utf8(a) for _, a in getaddresses([value]) if a]
