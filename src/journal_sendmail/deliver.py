"""Deliver: a submission into the journal, or into the spool when the journal
cannot take it.  Exit 75 only when neither could."""

from .config import Config
from .errors import JournalError, SpoolError
from .submission import Envelope, Submission, resolve


def store(sub: Submission, env: Envelope, cfg: Config) -> None:
    """Write the submission to the journal: its part entries, then its entry.

    Raises JournalError when the journal does not take it.
    """
    from . import journal, record
    from .body import readable_text

    raw = sub.raw
    text: str | None = None
    text_defects: list[str] = []
    if cfg.store_text and raw.size <= cfg.part_size:
        text, text_defects = readable_text(raw.head, env.headers.content)
    mail = record.Mail(
        mail_id=sub.mail_id,
        envelope_from=env.sender,
        recipients=env.recipients,
        headers=env.headers.values,
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
        defects=env.headers.defects + text_defects,
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

    Sets ``sub.refused`` when it has no recipients (it is still recorded).
    Raises SpoolError (exit 75) when neither the journal nor the spool took it.
    """
    env = resolve(sub)
    try:
        store(sub, env, cfg)
        return "stored in the journal"
    except JournalError as journal_error:
        from . import spool

        try:
            name = spool.write(sub, env, cfg, reason=journal_error.reason)
        except SpoolError as spool_error:
            raise SpoolError(f"{journal_error.reason}; and the spool failed: {spool_error.reason}") from None
        return f"spooled as {name} ({journal_error.reason})"
