"""Deliver: a submission into the journal, or into the spool when the journal
cannot take it.  Exit 75 only when neither could."""

from __future__ import annotations

import posix  # not os: python3 -S has not loaded it, and importing it costs every mail ~1 ms
import time

from .config import Config
from .errors import JournalError, SpoolError
from .message import Raw
from .options import Invocation
from .record import Fields
from .struct import field, record


@record
class Submission:
    """One message handed to us, with what is known about its submission."""

    inv: Invocation
    raw: Raw
    mail_id: str
    login: str  # the submitting uid's login name: the default envelope sender
    caller: dict[str, str]
    submitted_at: float
    refused: str | None = None
    extra: Fields = field(default_factory=list)

    @classmethod
    def now(cls, inv: Invocation, raw: Raw, refused: str | None = None, extra: Fields | None = None) -> Submission:
        """A submission made by this process, now."""
        from .caller import caller_fields, login_name

        return cls(
            inv=inv,
            raw=raw,
            mail_id=posix.urandom(16).hex(),
            login=login_name(),
            caller=caller_fields(),
            submitted_at=time.time(),
            refused=refused,
            extra=list(extra or ()),
        )


def store(sub: Submission, cfg: Config) -> None:
    """Write the submission to the journal: its part entries, then its entry.

    Sets ``sub.refused`` when it has no recipients (it is still recorded).
    Raises JournalError when the journal does not take it.
    """
    from . import headers, journal, message, record

    raw = sub.raw
    try:
        hdrs = headers.parse(raw.head)
    except Exception as e:  # a parser bug must not lose the mail: store it raw, and say why
        hdrs = headers.Headers(defects=[f"headers: not parsed: {type(e).__name__}: {e}"])
    rcpts = record.recipients(sub.inv.recipients, hdrs.header_recipients, sub.inv.extract)
    if not rcpts and sub.refused is None:
        sub.refused = "no recipients"
    text: str | None = None
    text_defects: list[str] = []
    if cfg.store_text and raw.size <= cfg.part_size:
        text, text_defects = message.readable_text(raw.head, hdrs.content)
    mail = record.Mail(
        mail_id=sub.mail_id,
        envelope_from=record.envelope_sender(sub.inv.sender, hdrs.unixfrom, sub.login),
        recipients=rcpts,
        headers=hdrs.values,
        size=raw.size,
        sha256=raw.sha256,
        argv=sub.inv.argv,
        invoked_as=sub.inv.invoked_as,
        identifier=cfg.identifier,
        priority=cfg.priority,
        facility=cfg.facility,
        full_name=sub.inv.full_name,
        recorded=sub.inv.recorded,
        caller=sub.caller,
        defects=hdrs.defects + text_defects,
        text=text,
        received=raw.received if raw.truncated else None,
        after_dot=raw.after_dot if raw.after_dot_size else None,
        after_dot_size=raw.after_dot_size,
        refused=sub.refused,
        extra=sub.extra,
    )
    chunks = raw.chunks(cfg.part_size)
    first = next(chunks)
    parts = max(1, -(-raw.size // cfg.part_size))
    rest = (record.part_fields(mail, n, parts, chunk) for n, chunk in enumerate(chunks, 2))
    sink = journal.Journal(cfg.socket, cfg.timeout)
    try:
        journal.write_mail(sink.send, record.mail_fields(mail, first, parts), rest)
        sink.confirm()  # journald handled it (provenance), and did not lose it in a restart
    finally:
        sink.close()


def accept(sub: Submission, cfg: Config) -> str:
    """Store the submission in the journal, or spool it; say where it went.

    Raises SpoolError (exit 75) when neither the journal nor the spool took it.
    """
    try:
        store(sub, cfg)
        return "stored in the journal"
    except JournalError as journal_error:
        from . import spool

        try:
            name = spool.write(sub, cfg, reason=journal_error.reason)
        except SpoolError as spool_error:
            raise SpoolError(f"{journal_error.reason}; and the spool failed: {spool_error.reason}") from None
        return f"spooled as {name} ({journal_error.reason})"
