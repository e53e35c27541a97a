"""Bounds: what any parser is given of a header block, measured before it sees it.

Linear passes over bytes, with no imports: the sender's fast path uses them on
every mail (mailparse.py says why the bounds are there).
"""

from __future__ import annotations


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



# What any parser is given of a header block (mailparse.py says why): past these,
# a header is cut, or left out, and a defect says so; MAIL_RAW keeps every byte.
HEADER_MAX = 64 * 1024  # bytes of one header, its folded lines together
BLOCK_MAX = 1024 * 1024  # bytes of the header block
WORDS_MAX = 1024  # RFC 2047 encoded words in one header
HEADERS_MAX = 1000  # headers in the block (a long Received chain has a hundred)


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
