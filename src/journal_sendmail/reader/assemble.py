"""Assemble: the whole raw message of a mail, from its entry and its part entries."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..errors import DamagedMail
from ..record import MSG_PART
from .entry import MailEntry, _int


def assemble(entry: MailEntry, open_parts: Callable[[], Any]) -> bytes:
    """The whole raw message of ``entry``, checked against MAIL_SIZE and MAIL_SHA256.

    ``open_parts`` opens a reader on the same journal for the part entries of
    a split message.  Raises DamagedMail when a part is missing or the bytes
    do not match what the sender recorded.
    """
    chunks = [entry.raw]
    if entry.parts > 1:
        found = _parts(open_parts, entry.mail_id)
        missing = [n for n in range(2, entry.parts + 1) if n not in found]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise DamagedMail(entry.mail_id, f"part {shown} of {entry.parts} missing from the journal")
        chunks += [found[n] for n in range(2, entry.parts + 1)]
    raw = b"".join(chunks)
    if entry.size and len(raw) != entry.size:
        raise DamagedMail(entry.mail_id, f"{len(raw)} bytes found, {entry.size} recorded")
    if entry.sha256 and hashlib.sha256(raw).hexdigest() != entry.sha256:
        raise DamagedMail(entry.mail_id, "its SHA-256 does not match MAIL_SHA256")
    return raw


def _parts(open_parts: Callable[[], Any], mail_id: str) -> dict[int, bytes]:
    reader = open_parts()
    try:
        reader.add_match(f"MESSAGE_ID={MSG_PART}".encode())
        reader.add_match(f"MAIL_ID={mail_id}".encode())
        reader.seek_head()
        found: dict[int, bytes] = {}
        while reader._next(1):
            n = _int(reader._get("MAIL_PART"))
            if n is not None and n not in found:
                try:
                    found[n] = reader._get("MAIL_RAW")
                except KeyError:
                    continue
        return found
    finally:
        reader.close()
