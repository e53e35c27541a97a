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


# The reader's own (journal-mail) live in reader/errors.py: the sender never builds them.
