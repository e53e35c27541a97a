"""The one exception hierarchy: each error knows its sysexits code and a stable tag."""

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_SOFTWARE = 70
EX_OSERR = 71
EX_CANTCREAT = 73
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class JournalSendmailError(Exception):
    """Base class: a failure that ends the program with ``code``."""

    code = EX_SOFTWARE
    tag = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UsageError(JournalSendmailError):
    """A bad option, a refused mode or no recipients."""

    code = EX_USAGE
    tag = "usage"


class InputError(JournalSendmailError):
    """Standard input could not be read."""

    code = EX_DATAERR
    tag = "input"


class ConfigError(JournalSendmailError):
    """A key of the configuration file has a bad value."""

    code = EX_CONFIG
    tag = "config"


class JournalError(JournalSendmailError):
    """The journal did not take an entry (missing, refused, timed out)."""

    code = EX_TEMPFAIL
    tag = "journal"


class SpoolError(JournalSendmailError):
    """The spool could not take a message either."""

    code = EX_TEMPFAIL
    tag = "spool"


# The reader's (journal-mail)


class NotFound(JournalSendmailError):
    """A journal directory, file or mail that is not there."""

    code = EX_NOINPUT
    tag = "not-found"


class NoPermission(JournalSendmailError):
    """Journal files exist but none of them is readable by this user."""

    code = EX_NOPERM
    tag = "permission"


class DamagedMail(JournalSendmailError):
    """A stored message that cannot be given back exactly (part missing, digest wrong)."""

    code = EX_DATAERR
    tag = "damaged"

    def __init__(self, mail_id: str, reason: str) -> None:
        super().__init__(f"mail {mail_id} is damaged: {reason}; not written")
        self.mail_id = mail_id


class OutputError(JournalSendmailError):
    """An output file or directory that cannot be created or written."""

    code = EX_CANTCREAT
    tag = "output"
