"""Assemble: the whole raw message of a mail, from its entry and its part entries.

A mail is the entries of ONE sender: a part is joined to a message entry only
when journald's trusted _UID, _HOSTNAME and _BOOT_ID are the same on both,
and only when its number and length are ones the message entry leaves room
for.  Nothing is allocated for a part number before it is checked, so a
forged entry claiming a billion parts costs nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from .. import schema
from ..body import searchable
from ..schema import MSG_PART, SENDER_FIELDS
from .entry import MailEntry, count
from .errors import DamagedMail
from .source import Journal


def assemble(entry: MailEntry, open_parts: Callable[[], Journal]) -> bytes:
    """The whole raw message of ``entry``, checked against MAIL_SIZE and MAIL_SHA256.

    ``open_parts`` opens a reader on the same journal for the part entries of
    a split message.  Raises DamagedMail when the entry is damaged, a part is
    missing, or the bytes do not match what the sender recorded.
    """
    if entry.damaged:
        raise DamagedMail(entry.mail_id, entry.damaged)
    chunks = [entry.raw]
    if entry.parts > 1:
        found = _parts(open_parts, entry)
        if len(found) < entry.parts - 1:
            raise DamagedMail(entry.mail_id, f"part {_missing(found, entry.parts)} of {entry.parts} missing "
                              "from the journal")
        chunks += [found[n] for n in range(2, entry.parts + 1)]
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    got = sum(map(len, chunks))
    if got != entry.size:
        raise DamagedMail(entry.mail_id, f"{got} bytes found, {entry.size} recorded")
    if digest.hexdigest() != entry.sha256:
        raise DamagedMail(entry.mail_id, "its SHA-256 does not match MAIL_SHA256")
    return b"".join(chunks)


def _missing(found: dict[int, bytes], parts: int) -> str:
    """The first ten missing part numbers, found without listing all of them.

    >>> _missing({3: b""}, 4), _missing({}, 10 ** 9)
    ('2, 4', '2, 3, 4, 5, 6, 7, 8, 9, 10, 11 …')
    """
    shown: list[str] = []
    n = 2
    while n <= parts and len(shown) <= 10:
        if n not in found:
            shown.append(str(n))
        n += 1
    return ", ".join(shown[:10]) + (" …" if len(shown) > 10 else "")


def _parts(open_parts: Callable[[], Journal], entry: MailEntry) -> dict[int, bytes]:
    """Part number -> bytes of the parts of ``entry`` from its own sender.

    Every part but the last is as long as the message entry's chunk, the last
    holds the rest: a part of another length is not a part of this mail.
    """
    step = len(entry.raw)
    last = entry.size - step * (entry.parts - 1)
    sender = [str(v).encode() for v in entry.sender]
    reader = open_parts()
    try:
        reader.match(f"MESSAGE_ID={MSG_PART}", f"{schema.MAIL_ID}={entry.mail_id}",
                     *(name.encode() + b"=" + value for name, value in zip(SENDER_FIELDS, sender, strict=True)))
        reader.head()
        found: dict[int, bytes] = {}
        field = reader.single
        while reader.next():
            n = count(field(schema.MAIL_PART), entry.parts)
            if n is None or n < 2 or n in found or count(field(schema.MAIL_PARTS), entry.parts) != entry.parts:
                continue
            if [field(name) for name in SENDER_FIELDS] != sender:
                continue
            want = last if n == entry.parts else step
            if reader.raw_length() not in (None, want):
                continue  # not read: a part of another length (a forged 100 MiB one) is no part of it
            chunk = field(schema.MAIL_RAW)
            if chunk is not None and len(chunk) == want:
                found[n] = chunk
        return found
    finally:
        reader.close()


def searchable_body(entry: MailEntry, open_parts: Callable[[], Journal]) -> str:
    """The readable body ``--grep`` searches: MAIL_TEXT when stored, else decoded from
    the whole message (from the entry's own chunk when the mail is damaged)."""
    if entry.text is not None:
        return entry.text
    try:
        raw = assemble(entry, open_parts)
    except DamagedMail:
        raw = entry.raw
    return searchable(raw, None)
