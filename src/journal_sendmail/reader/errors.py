"""The reader's errors (journal-mail): subclasses of the one hierarchy in
``journal_sendmail.errors``, kept here so that the sender, whose every cron
mail pays for each class it builds at import, never builds them."""

from ..errors import EX_CANTCREAT, EX_DATAERR, EX_NOINPUT, EX_NOPERM, JournalSendmailError


class NotFound(JournalSendmailError):
    """A journal directory, file or mail that is not there."""
    code, tag = EX_NOINPUT, "not-found"


class NoPermission(JournalSendmailError):
    """Journal files exist but none of them is readable by this user."""
    code, tag = EX_NOPERM, "permission"


class DamagedMail(JournalSendmailError):
    """A stored message that cannot be given back exactly (part missing, digest wrong)."""
    code, tag = EX_DATAERR, "damaged"

    def __init__(self, mail_id: str, reason: str) -> None:
        super().__init__(f"mail {mail_id} is damaged: {reason}; not written")
        self.mail_id = mail_id


class OutputError(JournalSendmailError):
    """An output file or directory that cannot be created or written."""
    code, tag = EX_CANTCREAT, "output"
