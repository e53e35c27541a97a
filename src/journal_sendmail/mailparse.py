"""Mailparse: the one bounded parse of a message, for the sender and every reader.

The standard ``email`` package does the parsing, with two bounds around it,
because its header parser costs time and memory quadratic in a header's
length (``get_unstructured`` copies the rest of the value at every token,
the address parser likewise): a 1.4 MB Subject of encoded words took
sendmail 52 s and ~24 GB.

- ``headers.bound_block`` measures every header before any parser sees it:
  past ``HEADER_MAX`` bytes a header is cut, past ``WORDS_MAX`` encoded
  words too, past ``BLOCK_MAX`` bytes of header block the rest is left out;
  each cut is a defect (the bytes stay whole in MAIL_RAW).
- ``POLICY`` (the modern ``email.policy.default`` otherwise) hands the
  header parser pieces of at most ``PIECE`` characters, ``PIECE_WORDS``
  encoded words and ``PIECE_ITEMS`` list items: a longer unstructured value
  (a Subject) is parsed piece by piece, split at white space, and joined
  by RFC 2047's rule exactly as the parser joins it (the space between two
  encoded words goes); a longer address list is read by the legacy
  ``email.utils.getaddresses`` (linear); another structured header is cut.
  A header the parser raises on (a RecursionError on deep comments) is kept
  as written, with a defect.

So the cost is linear in the input, and wherever the whole value is within
the pieces' bounds the answer is the ``email`` package's own.
"""

from __future__ import annotations

import re
from email import errors, headerregistry
from email.policy import EmailPolicy
from typing import Any

PIECE = 2048  # characters the header parser is given at once
PIECE_WORDS = 64  # encoded words in one piece
PIECE_ITEMS = 64  # commas in one piece of a structured value
_WS = re.compile(r"[ \t]+")
_ADDRESS = frozenset(
    ("from", "to", "cc", "bcc", "sender", "reply-to", "resent-from", "resent-to", "resent-cc", "resent-bcc",
     "resent-sender"))


class Kept(str):
    """A header kept as written (or decoded piece by piece): the parts of a header
    object that journal-sendmail and its readers use."""

    name: str
    defects: tuple[Any, ...]
    addresses: tuple[Any, ...]

    @classmethod
    def make(cls, name: str, text: str, defects: list[Any], addresses: tuple[Any, ...] = ()) -> Kept:
        self = cls(text)
        self.name, self.defects, self.addresses = name, tuple(defects), addresses
        return self


class _Address:
    """An address found by the legacy parser (``addr_spec`` as the modern one has it)."""

    def __init__(self, display_name: str, addr_spec: str) -> None:
        self.display_name, self.addr_spec = display_name, addr_spec

    def __str__(self) -> str:
        return f"{self.display_name} <{self.addr_spec}>" if self.display_name else self.addr_spec


def small(text: str) -> bool:
    """Is ``text`` within one piece's bounds (the parser is then given it whole)?"""
    return len(text) <= PIECE and text.count("=?") <= PIECE_WORDS and text.count(",") <= PIECE_ITEMS


class BoundedPolicy(EmailPolicy):
    """``email.policy.default``, whose header parser is never given more than a piece."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        text = value.replace("\r", "").replace("\n", "")  # unfolded, as the default policy does it
        try:
            if small(text):
                return super().header_fetch_parse(name, text)
            return self._big(name, text)
        except Exception as e:  # RecursionError on deep comments, a newline in a name: as written
            defect = errors.HeaderDefect(f"unparsable: {type(e).__name__}: {str(e)[:200]}")
            found = _legacy_addresses(name, text).addresses if name.lower() in _ADDRESS else ()
            return Kept.make(name, text.strip(" \t"), [defect], found)

    def _big(self, name: str, text: str) -> Any:
        low = name.lower()
        if low in _ADDRESS:
            return _legacy_addresses(name, text)
        factory: Any = self.header_factory
        cls = factory[name]
        if issubclass(cls, headerregistry.UnstructuredHeader):
            return self._pieces(name, text)
        # a structured header (Content-Type, Date, Message-ID …) past one piece: cut at the
        # last parameter that fits, parsed as such
        cut = text[:PIECE]
        if ";" in cut:
            cut = cut[:cut.rfind(";")]
        while not small(cut):
            cut = cut[: len(cut) // 2]
        header = super().header_fetch_parse(name, cut)
        return header

    def _pieces(self, name: str, text: str) -> Kept:
        """An unstructured value parsed piece by piece and joined as the parser joins it."""
        out: list[str] = []
        defects: list[Any] = [errors.HeaderDefect(f"{len(text)} characters: decoded in pieces")]
        prev_ew = False
        between = ""
        for i, (piece, sep) in enumerate(_split(text)):
            h = super().header_fetch_parse(name, piece)
            tree = getattr(h, "_parse_tree", None) or []
            first_ew = bool(tree) and tree[0].token_type == "encoded-word"
            if i:
                out.append("" if prev_ew and first_ew else between)  # RFC 2047: no space between words
            out.append(str(h))
            defects.extend(h.defects)
            prev_ew = bool(tree) and tree[-1].token_type == "encoded-word"
            between = sep
        out.append(between)
        return Kept.make(name, "".join(out), defects)


def _split(text: str) -> list[tuple[str, str]]:
    """(piece, the white space after it): pieces of whole tokens within the bounds, split
    at white space; a token of more than ``PIECE_WORDS`` encoded words without space between
    them is split between its words, and an encoded word that the parser would read across
    white space (``=?utf-8?q?a b?=``) stays in one piece."""
    tokens: list[tuple[str, str]] = []
    at = 0
    lead = ""
    m0 = _WS.match(text)
    if m0:
        lead, at = m0.group(), m0.end()
    spans = _Spans(text)
    while at < len(text):
        m = _WS.search(text, at)
        end = m.start() if m else len(text)
        if text.startswith("=?", at):
            reach = spans.end(at)
            if reach is not None and end < reach <= at + PIECE:
                while m and m.start() < reach:  # take the tokens it reaches over
                    m = _WS.search(text, m.end())
                end = m.start() if m else len(text)
        sep = m.group() if m else ""
        tokens.append((text[at:end], sep))
        at = m.end() if m else len(text)
    if not tokens:
        tokens.append(("", ""))
    pieces: list[tuple[str, str]] = []
    cur: list[str] = [lead]
    words = size = 0
    for tok, sep in tokens:
        for sub, subsep in _words(tok, sep):
            w = sub.count("=?")
            if len(cur) > 1 and (words + w > PIECE_WORDS or size + len(sub) > PIECE):
                last_sep = cur.pop()
                pieces.append(("".join(cur), last_sep))
                cur, words, size = [], 0, 0
            cur += [sub, subsep]
            words += w
            size += len(sub) + len(subsep)
    if len(cur) > 1 or cur[0]:
        last_sep = cur.pop() if len(cur) > 1 else ""
        pieces.append(("".join(cur), last_sep))
    return pieces


class _Spans:
    """Where the encoded word the parser reads at a ``=?`` ends, as ``get_encoded_word``
    finds it (the first ``?=`` after it, once more past an ``=XX`` escape), when it decodes
    and ends within a piece.  The ``?=`` found last is kept, so the scan stays linear."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.hit = -1  # the first "?=" at or after an earlier start (len + 1: none)

    def _next(self, start: int) -> int:
        if self.hit < start:
            found = self.text.find("?=", start)
            self.hit = found if found >= 0 else len(self.text) + 1
        return self.hit if self.hit <= len(self.text) else -1

    def end(self, start: int) -> int | None:
        from email import _encoded_words  # type: ignore[attr-defined]  # the parser's own decoder

        text = self.text
        e = self._next(start + 2)
        if e < 0 or e - start > PIECE:
            return None
        tok, end = text[start + 2:e], e + 2
        rest = text[e + 2:e + 4]
        if len(rest) == 2 and all(c in "0123456789abcdefABCDEF" for c in rest) and tok.count("?") < 2:
            e2 = text.find("?=", e + 2, start + PIECE + 2)
            if e2 >= 0:
                tok, end = text[start + 2:e2], e2 + 2
            elif len(text) - start <= PIECE:
                tok, end = text[start + 2:], len(text)  # the parser reads to the end of the value
            else:
                return None
        try:
            _encoded_words.decode("=?" + tok + "?=")
        except Exception:  # ValueError, KeyError: the parser's "not a word" too
            return None
        return end


def _words(tok: str, sep: str) -> list[tuple[str, str]]:
    if tok.count("=?") <= PIECE_WORDS:
        return [(tok, sep)]
    subs = tok.replace("?==?", "?=\0=?").split("\0")
    return [(s, "") for s in subs[:-1]] + [(subs[-1], sep)]


def _legacy_addresses(name: str, text: str) -> Kept:
    from email.utils import getaddresses

    found = tuple(_Address(n, a) for n, a in getaddresses([text]) if a)
    defect = errors.HeaderDefect(f"{len(text)} characters: addresses read by the legacy parser")
    return Kept.make(name, text, [defect], found)


POLICY = BoundedPolicy()
