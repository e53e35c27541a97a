"""Printable: the one filter for everything either program writes to a terminal.

A subject, an address, a MAIL_ID or a spool file name comes from whoever
sent the mail; on a terminal it must not move the cursor, retitle the
window, ring the bell, overwrite a line (CR) or reorder what is shown
(the bidirectional controls of the "Trojan Source" class).  So C0 and C1
controls other than tab and newline, DEL, the bidi embeddings, overrides,
isolates and marks, and the line and paragraph separators are shown as
U+FFFD.  No imports: the sender uses it too, and a plain cron mail imports
nothing it does not need.
"""

REPLACEMENT = "\ufffd"

# Code points never written raw: C0 but tab and newline, DEL, C1, bidi, separators.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
UNSAFE = frozenset((*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *_BIDI, 0x2028, 0x2029))
_TABLE = {c: REPLACEMENT for c in UNSAFE}
_LINE_TABLE = {**_TABLE, 0x09: " ", 0x0A: " ", 0x0D: " "}
_JSON_TABLE = {c: f"\\u{c:04x}" for c in UNSAFE if c >= 0x7F}


def printable(text: str, one_line: bool = False) -> str:
    r"""``text`` with what could steer a terminal shown as ``�`` (``one_line``: newlines,
    carriage returns and tabs as spaces too).

    >>> printable("a\x1b[2Jb\tc\x07\u202eevil\x9b"), printable("x\r\ny\nz", one_line=True)
    ('a�[2Jb\tc��evil�', 'x y z')
    """
    if one_line:
        return text.replace("\r\n", " ").translate(_LINE_TABLE)
    return text.translate(_TABLE)


def json_escaped(text: str) -> str:
    r"""JSON text (from ``json.dumps``) with DEL, C1 and the bidi controls as ``\u`` escapes
    (json escapes only C0): what a terminal would act on never leaves raw.

    >>> json_escaped('"a\u202eb\x9b"')
    '"a\\u202eb\\u009b"'
    """
    return text.translate(_JSON_TABLE)
