"""Body: the readable text of a message (MAIL_TEXT, and what ``--grep`` searches).

The raw message is stored as received; this is the one place that decodes a
body: the first text part, transfer-decoded, as UTF-8.
"""

PLAIN_CHARSETS = ("", "us-ascii", "utf-8", "utf8")


def body_of(raw: bytes) -> bytes:
    """The bytes after the header block (after the first empty line)."""
    from .headers import header_end

    end = header_end(raw)
    return b"" if end is None else raw[end:]


def readable_text(raw: bytes, content: dict[str, str]) -> tuple[str | None, list[str]]:
    """The readable body: the first text part, transfer-decoded, as a str.

    Returns (None, []) when that would equal the raw body, so the entry does
    not carry the same bytes twice; the list holds parser defects.
    """
    ctype = content.get("content-type", "").lower()
    cte = content.get("content-transfer-encoding", "").strip().lower()
    charset = ""
    if "charset=" in ctype:
        charset = ctype.split("charset=", 1)[1].split(";")[0].strip(' "\t')
    plain = (not ctype or ctype.split(";")[0].strip() == "text/plain") and charset in PLAIN_CHARSETS
    if plain and cte in ("", "7bit", "8bit", "binary"):
        body = body_of(raw)
        try:
            body.decode("utf-8")
            return None, []
        except UnicodeDecodeError:
            return body.decode("utf-8", "replace"), []
    from email.message import EmailMessage

    from .headers import parse_message

    try:
        msg = parse_message(raw)[0]
        assert isinstance(msg, EmailMessage)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                text = part.get_content()
                if isinstance(text, str):
                    same = text.encode("utf-8", "surrogateescape") == body_of(raw)
                    return (None if same else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")), []
        return None, []
    except Exception as e:  # a body the email package chokes on is still stored raw
        return None, [f"body: {type(e).__name__}: {e}"]


def searchable(raw: bytes, stored: str | None) -> str:
    """The readable body to search: MAIL_TEXT when stored, else decoded from ``raw``."""
    if stored is not None:
        return stored
    if plain_text(raw):
        return body_of(raw).decode("utf-8", "replace")
    from .headers import parse

    text, _ = readable_text(raw, parse(raw).content)
    return text if text is not None else body_of(raw).decode("utf-8", "replace")


_SIMPLE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789/;=-. ")


def plain_text(raw: bytes) -> bool:
    r"""Is the body plain text that ``readable_text`` would give back as it is?  Decided
    from the header block alone, only when the answer cannot differ from the header
    parser's (a journal-mail index decodes every body: parsing them costs twice as much).

    >>> plain_text(b"Subject: x\n\nbody"), plain_text(b"Content-Type: text/plain; charset=UTF-8\n\nx")
    (True, True)
    >>> plain_text(b"Content-Type: text/html\n\nx"), plain_text(b"Content-Transfer-Encoding: base64\n\nx")
    (False, False)
    >>> plain_text(b"Content-Type: text/plain;\n charset=latin1\n\nx")
    False
    """
    from .headers import header_block

    _, block = header_block(raw)
    low = b"\n" + block.lower()
    if b"content-t" not in low:
        return True
    values: dict[bytes, bytes] = {}
    for name in (b"content-type", b"content-transfer-encoding"):
        at = low.find(b"\n" + name + b":")
        if low.count(name) != (at >= 0):
            return False  # odd spacing, a repeat, the name inside another header: the parser decides
        if at < 0:
            continue
        end = low.find(b"\n", at + 1)
        end = len(low) if end < 0 else end
        if low[end + 1:end + 2] in (b" ", b"\t"):
            return False  # folded
        value = low[at + len(name) + 2:end].strip(b" \t\r")
        if not _SIMPLE.issuperset(value):
            return False
        values[name] = value
    ctype = values.get(b"content-type", b"").decode()
    charset = ctype.split("charset=", 1)[1].split(";")[0].strip() if "charset=" in ctype else ""
    plain = (not ctype or ctype.split(";")[0].strip() == "text/plain") and charset in PLAIN_CHARSETS
    return plain and values.get(b"content-transfer-encoding", b"").decode() in ("", "7bit", "8bit", "binary")
