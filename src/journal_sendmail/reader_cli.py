"""journal-mail: list, show, export, follow and count the mail stored in the journal.

argv ─> argparse ─> Filters ─> query (journal) ─> render ─> stdout, a file or a pager.
``main(argv) -> int`` is the only place that knows exit codes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, NoReturn

from . import __version__, query, render
from .errors import (
    EX_OK,
    EX_OSERR,
    EX_SOFTWARE,
    EX_USAGE,
    DamagedMail,
    JournalSendmailError,
    NoPermission,
    NotFound,
    OutputError,
    UsageError,
)
from .message import write_all
from .query import Filters, MailEntry, Source

PROG = "journal-mail"
EX_IOERR = 74
FORMATS = ("mbox", "eml", "json")
FOLLOW_FORMATS = ("table", "json", "mbox", "eml")
FLUSH_BYTES = 256 * 1024


# -- command line -------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see journal-mail --help)")


ALL = -1  # -n all


def _lines(text: str) -> int:
    if text == "all":
        return ALL
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"want a number or 'all', not {text!r}")
    return int(text)


def _source_options(top: bool) -> _Parser:
    """Where to read; accepted before the command too (``journal-mail -D DIR list``), so
    after it they default to nothing rather than overwrite what came before."""
    source = _Parser(add_help=False, argument_default=None if top else argparse.SUPPRESS)
    g = source.add_argument_group("where to read (default: the local journal)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("-D", "--directory", metavar="DIR", help="journal files in DIR (e.g. systemd-journal-remote's)")
    x.add_argument("--file", metavar="FILE", nargs="+", action="extend", default=[] if top else argparse.SUPPRESS,
                   help="these journal files")
    x.add_argument("--namespace", metavar="NAME", help="the journal namespace NAME")
    g.add_argument("-q", "--quiet", action="store_true", help="no notes on standard error")
    g.add_argument("--no-pager", action="store_true", help="never page the output")
    return source


def build_parser() -> argparse.ArgumentParser:
    source = _source_options(top=False)

    filters = _Parser(add_help=False)
    f = filters.add_argument_group("filters (repeat one to allow several values; different ones all apply)")
    f.add_argument("-S", "--since", metavar="TIME", help="stored at or after TIME (journalctl's formats)")
    f.add_argument("-U", "--until", metavar="TIME", help="stored at or before TIME")
    f.add_argument("--from", dest="sender", metavar="ADDR", action="append", default=[], help="envelope sender")
    f.add_argument("--to", metavar="ADDR", action="append", default=[], help="envelope recipient")
    f.add_argument("--subject", metavar="TEXT", help="subject contains TEXT (any case), or matches /REGEX/")
    f.add_argument("--uid", metavar="UID", type=int, action="append", default=[], help="submitted by this uid")
    f.add_argument("--user", metavar="NAME", action="append", default=[], help="submitted by this user")
    f.add_argument("--caller", metavar="COMM", action="append", default=[], help="handed over by COMM (cron, sudo…)")
    f.add_argument("--host", metavar="HOST", action="append", default=[], help="stored on HOST")
    f.add_argument("-b", "--boot", metavar="ID", nargs="?", const="0", action="append", help="boot id or offset")
    f.add_argument("-g", "--grep", metavar="REGEX", help="body matches REGEX (any case if REGEX is lower case)")
    f.add_argument("--spooled", action="store_true", help="only mail re-injected from the spool")
    f.add_argument("--refused", action="store_true", help="also submissions refused but recorded")
    f.add_argument("-n", "--lines", metavar="N", type=_lines, help="only the newest N mails ('all': every one)")
    f.add_argument("-r", "--reverse", action="store_true", help="newest first")

    p = _Parser(prog=PROG, description="Read the mail journal-sendmail stored in the systemd journal.",
                parents=[_source_options(top=True)])
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    c = sub.add_parser("list", parents=[source, filters], help="one line per mail, oldest first")
    c.add_argument("--json", action="store_true", help="one JSON object per mail, without the body")

    c = sub.add_parser("show", parents=[source], help="show mails by MAIL_ID (or a unique prefix)")
    c.add_argument("mail_ids", metavar="MAIL_ID", nargs="+")
    x = c.add_mutually_exclusive_group()
    x.add_argument("--raw", action="store_true", help="the message bytes exactly as received")
    x.add_argument("--headers", action="store_true", help="every header of the message")

    c = sub.add_parser("export", parents=[source, filters], help="write whole messages: mbox, eml or JSON lines")
    c.add_argument("--format", choices=FORMATS, default="mbox")
    c.add_argument("-o", "--output", metavar="PATH", help="file (mbox, json; default stdout) or directory (eml)")

    c = sub.add_parser("follow", parents=[source, filters], help="print new mail as it arrives")
    c.add_argument("--format", choices=FOLLOW_FORMATS, default="table")
    c.add_argument("-o", "--output", metavar="PATH", help="append to PATH (reopened on SIGHUP); eml: a directory")
    c.add_argument("--cursor-file", metavar="FILE", help="start after the cursor saved in FILE; keep it there")

    c = sub.add_parser("stats", parents=[source, filters], help="mails and bytes per host, sender, …")
    c.add_argument("--by", choices=render.STATS_KEYS, default="host")
    c.add_argument("--sort", choices=("count", "bytes"), default="count")
    c.add_argument("--json", action="store_true", help="one JSON object per group")
    return p


DASH_VALUES = ("-S", "--since", "-U", "--until", "-b", "--boot")


def join_dash_values(argv: list[str]) -> list[str]:
    """``--since -1h`` and ``-b -1`` as journalctl takes them: argparse would
    read ``-1h`` as an option, so such a value is attached with ``=``.

    >>> join_dash_values(["list", "--since", "-1h", "-b", "-1", "-n", "3"])
    ['list', '--since=-1h', '--boot=-1', '-n', '3']
    """
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg in DASH_VALUES and i + 1 < len(argv) and re.match(r"[-+]\d", argv[i + 1]):
            long = {"-S": "--since", "-U": "--until", "-b": "--boot"}.get(arg, arg)
            out.append(f"{long}={argv[i + 1]}")
            next(it, None)
        elif arg == "--":
            out += argv[i:]
            break
        else:
            out.append(arg)
    return out


def regex(text: str, smart_case: bool) -> re.Pattern[str]:
    """``/REGEX/`` as a regex; otherwise (subject) a case-blind substring or (grep) a smart-case regex.

    >>> bool(regex("/^Cron <.*>$/", False).search("Cron <root@h>")), bool(regex("disk FULL", False).search("Disk full"))
    (True, True)
    """
    try:
        if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
            return re.compile(text[1:-1])
        if smart_case:
            return re.compile(text, 0 if any(c.isupper() for c in text) else re.IGNORECASE)
        return re.compile(re.escape(text), re.IGNORECASE)
    except re.error as e:
        raise UsageError(f"bad regular expression {text!r}: {e}") from None


def make_filters(args: argparse.Namespace, mail_ids: Iterable[str] = ()) -> Filters:
    """Filters from the command line, checked before the journal is opened
    (``--boot`` values stay as given until ``with_boots``)."""

    def when(text: str | None) -> int | None:
        if text is None:
            return None
        try:
            return query.parse_time(text)
        except ValueError as e:
            raise UsageError(str(e)) from None

    uids = list(getattr(args, "uid", []))
    for name in getattr(args, "user", []):
        uids.append(_uid_of(name))
    subject = getattr(args, "subject", None)
    grep = getattr(args, "grep", None)
    ids = tuple(i.lower() for i in mail_ids)
    return Filters(
        since=when(getattr(args, "since", None)),
        until=when(getattr(args, "until", None)),
        senders=tuple(getattr(args, "sender", [])),
        recipients=tuple(getattr(args, "to", [])),
        uids=tuple(uids),
        callers=tuple(getattr(args, "caller", [])),
        hosts=tuple(getattr(args, "host", [])),
        boots=tuple(getattr(args, "boot", None) or []),
        mail_ids=ids,
        spooled=getattr(args, "spooled", False),
        refused=getattr(args, "refused", False) or bool(ids),
        subject=regex(subject, False) if subject is not None else None,
        grep=regex(grep, True) if grep is not None else None,
    )


def with_boots(filters: Filters, reader: Any) -> Filters:
    """``--boot`` offsets and ids resolved against the journal."""
    if not filters.boots:
        return filters
    try:
        return replace(filters, boots=tuple(query.resolve_boot(reader, b) for b in filters.boots))
    except ValueError as e:
        raise UsageError(str(e)) from None


def start(args: argparse.Namespace, io: Io) -> tuple[Any, Filters]:
    """The filters (checked first: a usage error needs no journal) and a reader."""
    filters = make_filters(args)
    reader = open_journal(args, io)
    return reader, with_boots(filters, reader)


def _uid_of(name: str) -> int:
    if name.isdigit():
        return int(name)
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise UsageError(f"no such user {name!r}") from None


# -- the edges: journal, terminal, files ----------------------------------------


@dataclass
class Io:
    """Where the program's output goes, and what it knows of its terminal."""

    out: IO[bytes]
    err: IO[bytes]
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def tty(self) -> bool:
        try:
            return self.out.isatty()
        except (ValueError, OSError):
            return False

    def color(self) -> bool:
        return self.tty() and "NO_COLOR" not in self.environ and self.environ.get("TERM", "") not in ("", "dumb")

    def width(self) -> int | None:
        if not self.tty():
            return None
        try:
            return os.get_terminal_size(self.out.fileno()).columns or 80
        except (OSError, ValueError):
            return int(self.environ.get("COLUMNS", "80"))

    def say(self, line: str) -> None:
        try:
            self.err.write(f"{PROG}: {line}\n".encode("utf-8", "replace"))
            self.err.flush()
        except (OSError, ValueError):
            pass


def source_of(args: argparse.Namespace) -> Source:
    if sum((args.directory is not None, bool(args.file), args.namespace is not None)) > 1:
        raise UsageError("give only one of -D, --file and --namespace")
    return Source(directory=args.directory, files=tuple(args.file), namespace=args.namespace)


def open_journal(args: argparse.Namespace, io: Io) -> Any:
    """A reader on the chosen journal; says so when permissions hide mail."""
    source = source_of(args)
    readable, unreadable = query.readability(source)
    who = _who()
    if unreadable and not readable:
        raise NoPermission(
            f"none of the {len(unreadable)} journal files is readable by {who}: root and the groups "
            "adm and systemd-journal read all mail; other users read only their own, which journald "
            "keeps in a file of their own (user-UID.journal) only with persistent storage"
        )
    if not readable and source.directory is None and not source.files:
        where = f"namespace {source.namespace}" if source.namespace else "/run/log/journal or /var/log/journal"
        raise NotFound(f"no journal files in {where} (is systemd-journald running?)")
    if unreadable and not args.quiet:
        io.say(
            f"note: showing only the mail readable by {who}, normally your own: {len(unreadable)} of "
            f"{len(readable) + len(unreadable)} journal files are not readable (root and the groups adm "
            "and systemd-journal see all mail)"
        )
    return query.open_reader(source)


def _who() -> str:
    uid = os.geteuid()
    name = query.username(uid)
    return f"user {name} (uid {uid})" if name else f"uid {uid}"


def parts_opener(args: argparse.Namespace) -> Callable[[], Any]:
    source = source_of(args)
    return lambda: query.open_reader(source)


def whole(e: MailEntry, args: argparse.Namespace) -> bytes:
    """The complete raw message; DamagedMail if it cannot be given back exactly."""
    return query.assemble(e, parts_opener(args))


def grep_body(args: argparse.Namespace) -> Callable[[MailEntry], str]:
    def body(e: MailEntry) -> str:
        if e.text is not None:
            return e.text
        try:
            raw = whole(e, args)
        except DamagedMail:
            raw = e.raw
        return query.body_text(raw, None)

    return body


class Output:
    """Bytes to stdout, a file (appended, reopened on demand) or nowhere yet.

    Buffered: ``write`` collects, ``flush`` writes everything out.
    """

    def __init__(self, stream: IO[bytes] | None, path: str | None, append: bool = True) -> None:
        self.stream = stream
        self.path = path
        self.append = append
        self.fd: int | None = None
        self.buf = bytearray()
        if path is not None:
            self.reopen()

    def reopen(self) -> None:
        assert self.path is not None
        self.flush()
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if self.append else os.O_TRUNC)
        try:
            fd = os.open(self.path, flags, 0o640)
        except OSError as e:
            raise OutputError(f"cannot open {self.path}: {e.strerror}") from None
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd
        self.append = True  # a reopened file is appended to, never truncated

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            if self.stream is not None:
                self.stream.flush()
            return
        data, self.buf = bytes(self.buf), bytearray()
        if self.fd is not None:
            try:
                write_all(self.fd, data)
            except OSError as e:
                raise OutputError(f"cannot write {self.path}: {e.strerror}") from None
        elif self.stream is not None:
            self.stream.write(data)
            self.stream.flush()

    def close(self) -> None:
        self.flush()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def write_eml(directory: str, e: MailEntry, raw: bytes) -> None:
    """One file per mail, written under a temporary name and renamed into place."""
    path = os.path.join(directory, render.eml_name(e))
    tmp = os.path.join(directory, f".{render.eml_name(e)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, raw)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None


def eml_directory(path: str | None) -> str:
    if path is None:
        raise UsageError("--format eml writes one file per mail: give the directory with --output DIR")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {path}: {e.strerror}") from None
    return path


def read_cursor(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise NotFound(f"cannot read the cursor file {path}: {e}") from None


def save_cursor(path: str, cursor: str) -> None:
    """Atomically: a crash leaves the old cursor or the new one, never half of one."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(cursor + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot save the cursor in {path}: {e.strerror}") from None


def page(text: bytes, io: Io, no_pager: bool) -> None:
    """Through a pager like journalctl's (``$SYSTEMD_PAGER``, ``$PAGER``, less) on a TTY."""
    pager = io.environ.get("SYSTEMD_PAGER", io.environ.get("PAGER", "less"))
    if no_pager or not io.tty() or pager.strip() in ("", "cat") or text.count(b"\n") < 2:
        io.out.write(text)
        io.out.flush()
        return
    import subprocess

    env = dict(io.environ)
    env.setdefault("LESS", "FRSXMK")
    env.setdefault("LESSCHARSET", "utf-8")
    try:
        proc = subprocess.Popen(["sh", "-c", pager], stdin=subprocess.PIPE, stdout=io.out, env=env)
    except OSError:
        io.out.write(text)
        return
    assert proc.stdin is not None
    try:
        proc.stdin.write(text)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early
    proc.wait()


# -- commands -------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, io: Io) -> int:
    reader, filters = start(args, io)
    out = Output(io.out, None)
    found = 0
    entries = selected(args, io, reader, filters, args.reverse)
    if args.json:
        record, line = render.json_record, render.json_line
        for e in entries:
            out.write(line(record(e)).encode("utf-8", "surrogateescape"))
            found += 1
    else:
        cols = render.layout(io.width())
        color = io.color()
        for e in entries:
            if not found:
                out.write((render.table_header(cols, color) + "\n").encode())
            out.write((render.table_line(e, cols, color) + "\n").encode("utf-8", "replace"))
            found += 1
        if not found and io.tty():
            out.write(b"-- No mail --\n")
    out.flush()
    return EX_OK


def limit(lines: int | None) -> int | None:
    return None if lines == ALL else lines


def selected(args: argparse.Namespace, io: Io, reader: Any, filters: Filters, reverse: bool) -> Iterator[MailEntry]:
    """The mail to show: ``query.mails``, or for a directory or files (a central
    journal, from systemd-journal-remote) ``query.central``: each mail once, in
    the order of the senders' clocks."""
    body = grep_body(args) if filters.grep else None
    if args.directory is None and not args.file:
        return query.mails(reader, filters, limit(args.lines), reverse, body)
    late, found = query.central(reader, filters, limit(args.lines), reverse, body)
    if late and not args.quiet:
        io.say(
            f"note: {late} mail(s) arrived after mail that their senders stamped later (hosts' clocks "
            "differ, or a host uploaded late); shown in the order of the senders' clocks"
        )
    return found


def find(args: argparse.Namespace, io: Io, mail_id: str, reader: Any) -> MailEntry:
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", mail_id):
        raise UsageError(f"{mail_id!r} is not a MAIL_ID (32 hexadecimal digits, or a prefix of one)")
    found = list(query.mails(reader, make_filters(args, [mail_id])))
    if not found:
        raise NotFound(f"no mail {mail_id} in the journal")
    if len({e.mail_id for e in found}) > 1:
        raise UsageError(f"{mail_id} is the start of {len(found)} MAIL_IDs; give more of it")
    return found[-1]


def cmd_show(args: argparse.Namespace, io: Io) -> int:
    reader = open_journal(args, io)
    chunks = []
    color = io.color()
    for n, mail_id in enumerate(args.mail_ids):
        e = find(args, io, mail_id, reader)
        raw = whole(e, args)
        if args.raw:
            chunks.append(raw)
            continue
        text = render.headers_text(raw) if args.headers else render.show_text(e, raw, color=color)
        if n:
            chunks.append(b"\n")
        chunks.append(text.encode("utf-8", "replace"))
    if args.raw:
        for chunk in chunks:
            io.out.write(chunk)
        io.out.flush()
    else:
        page(b"".join(chunks), io, args.no_pager)
    return EX_OK


class Writer:
    """Renders mails in one format to an Output (or, for eml, a directory)."""

    def __init__(self, fmt: str, args: argparse.Namespace, io: Io, out: Output | None, directory: str | None) -> None:
        self.fmt, self.args, self.io, self.out, self.directory = fmt, args, io, out, directory
        self.cols = render.layout(io.width()) if fmt == "table" and out is not None and out.fd is None else None
        self.color = fmt == "table" and out is not None and out.fd is None and io.color()
        self.damaged = 0

    def write(self, e: MailEntry) -> bool:
        """Write one mail; False (and a line on stderr) if it is damaged."""
        if self.fmt == "table":
            assert self.out is not None
            self.out.write((render.table_line(e, self.cols or render.layout(None), self.color) + "\n").encode())
            return True
        try:
            raw = whole(e, self.args)
        except DamagedMail as err:
            self.io.say(err.reason)
            self.damaged += 1
            return False
        if e.truncated is not None and not self.args.quiet:
            self.io.say(f"note: mail {e.mail_id} was cut to {e.size} of {e.truncated} bytes when it was stored")
        if self.fmt == "eml":
            assert self.directory is not None
            write_eml(self.directory, e, raw)
            return True
        assert self.out is not None
        if self.fmt == "mbox":
            self.out.write(render.mbox_message(e, raw))
        else:
            self.out.write(render.json_line(render.json_record(e, raw)).encode("utf-8", "surrogateescape"))
        return True


def cmd_export(args: argparse.Namespace, io: Io) -> int:
    directory = eml_directory(args.output) if args.format == "eml" else None
    reader, filters = start(args, io)
    out = None if directory else Output(io.out if args.output is None else None, args.output, append=False)
    writer = Writer(args.format, args, io, out, directory)
    for e in selected(args, io, reader, filters, args.reverse):
        writer.write(e)
    if out is not None:
        out.close()
    if writer.damaged:
        io.say(f"{writer.damaged} damaged mail(s) not written")
        return DamagedMail.code
    return EX_OK


@dataclass
class Flags:
    """What the signal handlers ask the follow loop to do."""

    stop: bool = False
    reopen: bool = False


def cmd_follow(args: argparse.Namespace, io: Io) -> int:
    directory = eml_directory(args.output) if args.format == "eml" else None
    reader, filters = start(args, io)
    out = None if directory else Output(io.out if args.output is None else None, args.output)
    writer = Writer(args.format, args, io, out, directory)
    cursor = read_cursor(args.cursor_file) if args.cursor_file else None
    flags = Flags()

    def on_stop(signum: int, frame: object) -> None:
        flags.stop = True

    def on_hup(signum: int, frame: object) -> None:
        flags.reopen = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    # -n N: the newest N first; -n all (or --since): everything there is; else only new mail
    lines = None if args.lines == ALL or (args.lines is None and args.since) else (args.lines or 0)
    last = cursor
    saved = cursor

    def commit() -> None:
        nonlocal saved
        if out is not None:
            out.flush()
        if args.cursor_file and last and last != saved:
            save_cursor(args.cursor_file, last)
            saved = last

    stream: Iterator[MailEntry | None] = query.follow(
        reader, filters, cursor, lines, grep_body(args) if filters.grep else None
    )
    try:
        for e in stream:
            # Signal handlers run as soon as the reader returns, so a mail that
            # arrives after logrotate's SIGHUP already goes to the new file.
            if flags.reopen and out is not None and out.path is not None:
                commit()
                out.reopen()
                flags.reopen = False
            if e is not None:
                writer.write(e)
                last = e.cursor
                if out is not None and len(out.buf) >= FLUSH_BYTES:
                    commit()
            else:
                commit()
            if flags.stop:
                break
    finally:
        commit()
        if out is not None:
            out.close()
    return EX_OK


def cmd_stats(args: argparse.Namespace, io: Io) -> int:
    reader, filters = start(args, io)
    entries = selected(args, io, reader, filters, False)
    rows = render.stats_rows(entries, args.by, args.sort)
    if args.json:
        text = "".join(render.json_line({args.by: k, "mails": c, "bytes": b}) for k, c, b in rows)
    else:
        text = render.stats_table(rows, args.by, io.width())
    io.out.write(text.encode("utf-8", "replace"))
    io.out.flush()
    return EX_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Io], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "export": cmd_export,
    "follow": cmd_follow,
    "stats": cmd_stats,
}


def main(argv: list[str] | None = None, io: Io | None = None) -> int:
    io = io or Io(out=sys.stdout.buffer, err=sys.stderr.buffer)
    try:
        args = build_parser().parse_args(join_dash_values(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        io.say(e.reason)
        return EX_USAGE
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else EX_OK
    try:
        return COMMANDS[args.command](args, io)
    except JournalSendmailError as e:
        io.say(e.reason)
        return e.code
    except BrokenPipeError:
        # The reader went away (``| head``): not an error; keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, io.out.fileno())
        return EX_OK
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        io.say(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        return EX_OSERR
    except Exception as e:  # a bug: one line, never a traceback
        io.say(f"internal error: {type(e).__name__}: {e}")
        return EX_SOFTWARE


def entry() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
