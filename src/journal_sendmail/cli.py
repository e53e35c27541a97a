"""The MTA's front end: main(argv) -> exit code, the only place that knows them.

argv ─> options ─> Invocation; stdin ─> message ─> headers ─> record ─> journal.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Callable

from . import __version__
from .config import Config
from .errors import EX_OK, EX_SOFTWARE, EX_USAGE, JournalSendmailError, UsageError
from .options import Invocation

if TYPE_CHECKING:
    from . import message, record

PROG = "journal-sendmail"

USAGE = f"""usage: sendmail [options] [--] [recipient ...]
  -t            take recipients from To, Cc and Bcc too
  -i, -oi       a line with only a dot does not end the message
  -f sender     envelope sender            -F name   sender's full name
  -bm           store a message (default)  -bs       SMTP on standard input
  -bp, mailq    list the spool             -q        flush the spool
  -bi           newaliases (nothing to do) -bv       verify recipients
  -bV           version                    -v        say what was stored
Every message goes into the systemd journal; nothing is sent.
See journal-sendmail(8).
"""


def say(line: str, fd: int = 2) -> None:
    """One line on stderr (or ``fd``); a closed or broken stream is not an error."""
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def ensure_std_fds() -> None:
    """Open /dev/null on closed 0, 1, 2, so no socket or file lands there."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)


def read_stdin(n: int) -> bytes:
    from .errors import InputError

    try:
        return os.read(0, n)
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
        return 75
    except Exception as e:  # never a traceback for a caller like cron
        say(f"{PROG}: internal error: {type(e).__name__}: {e}")
        return EX_SOFTWARE


def run(args: list[str], environ: dict[str, str] | None) -> int:
    from . import config, options

    cfg = config.load(environ=environ)
    try:
        inv = options.parse(args)
    except UsageError as e:
        return refused_usage(args, e, cfg)
    handler: Callable[[Invocation, Config], int] = MODES[inv.mode]
    return handler(inv, cfg)


def deliver(inv: Invocation, cfg: Config) -> int:
    from . import message

    raw = message.read(
        read_stdin,
        ignore_dots=inv.ignore_dots,
        part_size=cfg.part_size,
        max_size=cfg.max_size,
        read_after_dot=not os.isatty(0),
    )
    try:
        mail_id = accept(inv, cfg, raw)
    finally:
        raw.close()
    if mail_id is None:
        say(f"{PROG}: no recipients: the message was recorded as refused")
        return EX_USAGE
    if inv.verbose:
        say(f"{PROG}: stored mail {mail_id} ({raw.size} bytes) in the journal")
    return EX_OK


def accept(
    inv: Invocation,
    cfg: Config,
    raw: "message.Raw",
    refused: str | None = None,
    extra: "record.Fields | None" = None,
) -> str | None:
    """Store a message in the journal or, failing that, in the spool.

    Returns its MAIL_ID (None when it had no recipients and was recorded as
    refused); raises a JournalSendmailError when neither could take it.
    """
    return store(inv, cfg, raw, refused, extra)


def store(
    inv: Invocation,
    cfg: Config,
    raw: "message.Raw",
    refused: str | None = None,
    extra: "record.Fields | None" = None,
) -> str | None:
    """Write one message to the journal; its MAIL_ID, or None if it had no recipients."""
    from . import caller, headers, journal, message, record

    hdrs = headers.parse(raw.head)
    rcpts = record.recipients(inv.recipients, hdrs.header_recipients, inv.extract)
    if not rcpts and refused is None:
        refused = "no recipients"
    split = raw.size > cfg.part_size
    text, text_defects = None, []
    if cfg.store_text and not split:
        text, text_defects = message.readable_text(raw.head, hdrs.content)
    mail = record.Mail(
        mail_id=os.urandom(16).hex(),
        envelope_from=record.envelope_sender(inv.sender, hdrs.unixfrom, caller.login_name()),
        recipients=rcpts,
        headers=hdrs.values,
        size=raw.size,
        sha256=raw.sha256,
        argv=inv.argv,
        invoked_as=inv.invoked_as,
        identifier=cfg.identifier,
        priority=cfg.priority,
        facility=cfg.facility,
        full_name=inv.full_name,
        recorded=inv.recorded,
        caller=caller.caller_fields(),
        defects=hdrs.defects + text_defects,
        text=text,
        received=raw.received if raw.truncated else None,
        after_dot=raw.after_dot if raw.after_dot_size or raw.after_dot else None,
        after_dot_size=raw.after_dot_size,
        refused=refused,
        extra=list(extra or ()),
    )
    chunks = raw.chunks(cfg.part_size)
    first = next(chunks)
    parts = max(1, -(-raw.size // cfg.part_size))
    rest = (record.part_fields(mail, n, parts, chunk) for n, chunk in enumerate(chunks, 2))
    sink = journal.Journal(cfg.socket, cfg.timeout)
    try:
        journal.write_mail(sink.send, record.mail_fields(mail, first, parts), rest)
    finally:
        sink.close()
    return None if refused else mail.mail_id


def refused_usage(args: list[str], err: UsageError, cfg: Config) -> int:
    """Bad usage: refuse with 64, but record data already waiting on stdin."""
    from . import message
    from .options import Invocation, program_name

    if not os.isatty(0) and _readable_now(0):
        raw = message.read(read_stdin, ignore_dots=True, part_size=cfg.part_size, max_size=cfg.max_size)
        try:
            if raw.size:
                inv = Invocation(argv=tuple(args), invoked_as=program_name(args[0] if args else "sendmail"))
                store(inv, cfg, raw, refused=err.reason)
                say(f"{PROG}: {err.reason} (the message on standard input was recorded as refused)")
                return EX_USAGE
        finally:
            raw.close()
    raise err


def _readable_now(fd: int) -> bool:
    """Is there data (or EOF) on ``fd`` without waiting?  A pipe nobody writes
    to must not hang a caller that only got the options wrong."""
    import select

    try:
        return bool(select.select([fd], [], [], 0)[0])
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
    from .record import recipients

    rcpts = recipients(inv.recipients, [], False)
    if not rcpts:
        raise UsageError("no recipients to verify")
    for rcpt in rcpts:
        say(f"{rcpt}... deliverable: mailer journal", fd=1)
    return EX_OK


def mailq(inv: Invocation, cfg: Config) -> int:
    from . import spool

    return spool.list_queue(cfg, lambda line: say(line, fd=1))


def flush(inv: Invocation, cfg: Config) -> int:
    from . import spool

    return spool.flush(cfg, lambda line: say(line))


def smtp(inv: Invocation, cfg: Config) -> int:
    raise UsageError("-bs (SMTP on standard input) is not implemented yet")


MODES: dict[str, Callable[[Invocation, Config], int]] = {
    "deliver": deliver,
    "smtp": smtp,
    "mailq": mailq,
    "newaliases": newaliases,
    "verify": verify,
    "version": show_version,
    "help": show_help,
    "flush": flush,
}

