"""The MTA's front end: main(argv) -> exit code, the only place that knows them.

argv ─> options ─> Invocation; stdin ─> message ─> headers ─> record ─> journal.
"""

import posix
import sys

from . import __version__
from .config import Config
from .errors import (
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_USAGE,
    InputError,
    JournalError,
    JournalSendmailError,
    UsageError,
)
from .options import Invocation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn


PROG = "journal-sendmail"

USAGE = """usage: sendmail [options] [--] [recipient ...]
  -t            take recipients from To, Cc and Bcc too
  -i, -oi       a line with only a dot does not end the message
  -f sender     envelope sender            -F name   sender's full name
  -bm           store a message (default)  -bs       SMTP on standard input
  -bp, mailq    list the spool             -q        flush the spool
  -bi           newaliases (nothing to do) -bv       verify recipients
  -bV           version                    -v        say what was stored
  --check-config [FILE]  check /etc/journal-sendmail.conf (or FILE): exit 0 or 78
Every message goes into the systemd journal; nothing is sent.
See journal-sendmail(8).
"""


def say(line: str, fd: int = 2, one_line: bool = False) -> None:
    """One line on stderr (or ``fd``) through the printable filter (what it quotes from a
    mail or a spool file cannot steer the terminal); a closed or broken stream is not an error."""
    from .printable import printable

    try:
        posix.write(fd, (printable(line.rstrip("\n"), one_line) + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def ensure_std_fds() -> None:
    """Open /dev/null on closed 0, 1, 2, so no socket or file lands there."""
    for fd in (0, 1, 2):
        try:
            posix.fstat(fd)
        except OSError:
            posix.open("/dev/null", posix.O_RDWR)


def read_stdin(n: int) -> bytes:
    try:
        return posix.read(0, n)
    except OSError as e:
        raise InputError(f"cannot read standard input: {e.strerror}") from None


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = list(sys.argv if argv is None else argv)
    try:
        ensure_std_fds()
        return run(args, environ)
    except JournalSendmailError as e:
        say(f"{PROG}: {e.reason}")
        return e.code
    except KeyboardInterrupt:
        say(f"{PROG}: interrupted; nothing was stored")
        return EX_TEMPFAIL
    except Exception as e:  # never a traceback for a caller like cron
        say(f"{PROG}: internal error: {type(e).__name__}: {e}")
        return EX_SOFTWARE


def leave(code: int) -> "NoReturn":
    """Exit with ``code`` at once, without the interpreter's teardown.

    Freeing every loaded module at exit costs 1.4 ms here with nothing
    loaded and 2-3.5 ms once ``email`` is, a sixth of a cron mail.  Nothing
    is lost by skipping it: everything this program writes goes through
    ``posix.write`` or is closed before ``main`` returns, nothing registers
    at exit, and Python's own stdio buffers are flushed here.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to save
            pass
    posix._exit(code)


# Modes that store mail: a bad configuration is reported in the journal too.
STORING = ("deliver", "smtp", "flush")


def run(args: list[str], environ: dict[str, str] | None) -> int:
    from . import config, options

    cfg = config.load(environ=environ)
    try:
        inv = options.parse(args)
    except UsageError as e:
        report_config(cfg, journal=False)
        return refused_usage(args, e, cfg)
    if inv.mode == "check-config":
        return check_config(inv, environ)
    if inv.mode != "deliver":  # SMTP sessions and spool flushes run long: collect cycles
        import gc

        gc.enable()
    report_config(cfg, journal=inv.mode in STORING)
    handler: Callable[[Invocation, Config], int] = MODES[inv.mode]
    return handler(inv, cfg)


def report_config(cfg: Config, journal: bool) -> None:
    """A bad configuration never costs a mail: say once on stderr what was
    not used, and (``journal``) log it as an entry of its own (c66f6fa4…)."""
    if not cfg.problems:
        return
    say(f"{PROG}: {cfg.error}")
    if journal:
        config_error_entry(cfg)


def config_error_entry(cfg: Config) -> None:
    """The configuration error entry; best effort (the mail itself says it
    too, in MAIL_CONFIG_ERROR)."""
    from .journal import Journal
    from .record import config_error_fields, encode

    sink = Journal(cfg.socket, cfg.timeout)
    try:
        sink.send(encode(config_error_fields(cfg.identifier, cfg.facility, cfg.error,
                                             [key for key, _ in cfg.problems])))
    except JournalError:
        pass
    finally:
        sink.close()


def config_fields(cfg: Config) -> list[tuple[str, bytes]]:
    """MAIL_CONFIG_ERROR for the mail's entry, when the configuration was bad."""
    from .schema import MAIL_CONFIG_ERROR

    return [(MAIL_CONFIG_ERROR, cfg.error.encode("utf-8", "surrogateescape"))] if cfg.problems else []


def check_config(inv: Invocation, environ: dict[str, str] | None) -> int:
    """--check-config [FILE]: 0 and the file's name, or 78 and every problem."""
    from . import config

    if len(inv.recipients) > 1:
        raise UsageError("--check-config takes at most one file")
    checked = config.check(inv.recipients[0] if inv.recipients else None, environ)
    say(f"{checked}: ok", fd=1)
    return EX_OK


def deliver(inv: Invocation, cfg: Config) -> int:
    from . import deliver, message
    from .submission import Submission

    raw = message.read(
        read_stdin,
        ignore_dots=inv.ignore_dots,
        part_size=cfg.part_size,
        max_size=cfg.max_size,
        read_after_dot=not posix.isatty(0),
    )
    try:
        sub = Submission.now(inv, raw, extra=config_fields(cfg))
        where = deliver.accept(sub, cfg)
    finally:
        raw.close()
    if sub.refused:
        say(f"{PROG}: no recipients: the message was recorded as refused (mail {sub.mail_id}, {where})")
        return EX_USAGE
    if inv.verbose:
        say(f"{PROG}: mail {sub.mail_id} ({raw.size} bytes) {where}")
    return EX_OK


def refused_usage(args: list[str], err: UsageError, cfg: Config) -> int:
    """Bad usage: refuse with 64, but record data already waiting on stdin."""
    from . import deliver, message
    from .options import Invocation, program_name
    from .submission import Submission

    if not posix.isatty(0) and _readable_soon(0, min(cfg.timeout, 1.0)):
        raw = message.read(read_stdin, ignore_dots=True, part_size=cfg.part_size, max_size=cfg.max_size)
        try:
            if raw.size:
                inv = Invocation(argv=tuple(args), invoked_as=program_name(args[0] if args else "sendmail"))
                if cfg.problems:
                    config_error_entry(cfg)
                sub = Submission.now(inv, raw, refused=err.reason, extra=config_fields(cfg))
                deliver.accept(sub, cfg)
                say(f"{PROG}: {err.reason} (the message on standard input was recorded as refused)")
                return EX_USAGE
        finally:
            raw.close()
    raise err


def _readable_soon(fd: int, wait: float) -> bool:
    """Is there data (or EOF) on ``fd`` within ``wait`` seconds?  A pipe nobody
    writes to must not hang a caller that only got the options wrong."""
    import select

    try:
        return bool(select.select([fd], [], [], wait)[0])
    except (OSError, ValueError):
        return False


def show_version(inv: Invocation, cfg: Config) -> int:
    name = inv.invoked_as
    label = PROG if name == PROG else f"{name} ({PROG})"
    say(f"{label} {__version__}", fd=1)
    return EX_OK


def show_help(inv: Invocation, cfg: Config) -> int:
    say(USAGE, fd=1)
    return EX_OK


def newaliases(inv: Invocation, cfg: Config) -> int:
    return EX_OK  # no aliases: every address is stored as given


def verify(inv: Invocation, cfg: Config) -> int:
    from .submission import recipients

    rcpts = recipients(inv.recipients, [], False)
    if not rcpts:
        raise UsageError("no recipients to verify")
    for rcpt in rcpts:
        say(f"{rcpt}... deliverable: mailer journal", fd=1)
    return EX_OK


def mailq(inv: Invocation, cfg: Config) -> int:
    from . import flush

    return flush.list_queue(cfg, lambda line: say(line, fd=1, one_line=True))


def flush_spool(inv: Invocation, cfg: Config) -> int:
    from . import flush

    return flush.flush(cfg, lambda line: say(line, one_line=True))


def smtp(inv: Invocation, cfg: Config) -> int:
    from . import deliver, message
    from . import smtp as session
    from .dataclass_lite import replace
    from .submission import Submission

    def store(env: session.Envelope, raw: message.Raw, refused: str | None) -> str | None:
        envelope = replace(inv, recipients=tuple(env.recipients), sender=env.sender, extract=False)
        sub = Submission.now(envelope, raw, refused=refused, extra=env.fields() + config_fields(cfg))
        deliver.accept(sub, cfg)
        return None if sub.refused else sub.mail_id

    return session.run(store, cfg.max_size, cfg.part_size)


MODES: "dict[str, Callable[[Invocation, Config], int]]" = {
    "deliver": deliver,
    "smtp": smtp,
    "mailq": mailq,
    "newaliases": newaliases,
    "verify": verify,
    "version": show_version,
    "help": show_help,
    "flush": flush_spool,
}

