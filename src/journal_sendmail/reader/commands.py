"""Commands: list, show, export, follow and stats, each ``cmd_X(args, io) -> exit code``."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from ..errors import EX_OK
from . import index, query, render
from .entry import MailEntry, Sender
from .errors import DamagedMail, NotFound, OutputError
from .filters import Filters, make_filters
from .output import FLUSH_BYTES, Io, Output, Signals, eml_directory, page, read_cursor, save_cursor, write_eml
from .select import Query, body_of, counted, find, resolved, select, whole
from .source import Journal, Source, open_journal, open_reader, opener, source_of

ALL = -1  # -n all


def query_of(args: argparse.Namespace, mail_ids: Iterable[str] = ()) -> Query:
    """The command line's Query (its filters checked first: a usage error needs no journal)."""
    return Query(source=source_of(args.directory, args.file, args.namespace),
                 filters=make_filters(vars(args), mail_ids), lines=None if args.lines == ALL else args.lines,
                 reverse=args.reverse, index=not args.no_index)


def start(args: argparse.Namespace, io: Io) -> tuple[Journal, Query]:
    """A reader on the command's source and its Query (``--boot`` resolved)."""
    q = query_of(args)
    journal = open_journal(q.source, None if args.quiet else io.say)
    return journal, resolved(q, journal)


def cmd_list(args: argparse.Namespace, io: Io) -> int:
    reader, q = start(args, io)
    out = Output(io.out, None)
    found = damaged = 0
    units: set[str] = set()
    cols, color = render.layout(io.width()), io.color()
    for e in selected(args, io, q, reader):
        damaged += bool(e.damaged)
        units.update(u for u in (e.caller_unit, e.systemd_unit) if u)
        if args.json:
            out.write(render.json_line(render.json_record(e)).encode("utf-8", "surrogateescape"))
        else:
            if not found:
                out.write((render.table_header(cols, color) + "\n").encode())
            out.write((render.table_line(e, cols, color) + "\n").encode("utf-8", "replace"))
        found += 1
    lost = suppressed(reader, q.filters, units) if args.json or not args.quiet else []
    if args.json:
        for s in lost:
            out.write(render.json_line(render.json_note(s)).encode("utf-8", "surrogateescape"))
    elif not found and io.tty():
        out.write(b"-- No mail --\n")
    out.flush()
    notes(io, args, damaged, "listed, marked damaged", lost)
    return EX_OK


def suppressed(reader: Journal, filters: Filters, units: set[str]) -> list[query.Suppressed]:
    """What journald's rate limit dropped of the units the mails shown came from."""
    if not units:
        return []
    return [s for s in query.suppressed(reader, filters.since, filters.until) if s.unit in units]


def notes(io: Io, args: argparse.Namespace, damaged: int, what: str, lost: list[query.Suppressed]) -> None:
    """The notes on the damaged entries (forged or corrupt) a command met and on what
    journald's rate limit dropped of the units of its mails."""
    if args.quiet:
        return
    if damaged:
        io.say(f"note: {damaged} entries look like mail but no journal-sendmail wrote them as they are "
               f"(forged or corrupt; {what}): see TRUST in journal-mail(1)")
    for s in lost:
        io.say(f"note: journald suppressed {s.dropped} messages from {s.unit} on {s.hostname} at "
               f"{render.local_time(s.realtime, '%Y-%m-%d %H:%M:%S')} (its rate limit): mail it sent then "
               "may be lost; see RATE LIMIT in journal-mail(1)")


def selected(args: argparse.Namespace, io: Io, q: Query, reader: Journal) -> Iterator[MailEntry]:
    """The mail ``q`` selects (``select``), with its note on late mail."""
    found = select(q, reader)
    late_note(io, args, found.late)
    return iter(found)


def late_note(io: Io, args: argparse.Namespace, late: int) -> None:
    if late and not args.quiet:
        io.say(
            f"note: {late} mail(s) arrived after mail that their senders stamped later (hosts' clocks "
            "differ, or a host uploaded late); shown in the order of the senders' clocks"
        )


def cmd_show(args: argparse.Namespace, io: Io) -> int:
    """Each mail asked for; one that cannot be shown costs a line on stderr and
    the exit code (the first such), never the others."""
    make_filters(vars(args))  # a bad --uid or --user is a usage error before anything is read
    source = source_of(args.directory, args.file, args.namespace)
    reader = open_journal(source, None if args.quiet else io.say)
    chunks = []
    color = io.color()
    code = EX_OK
    for n, mail_id in enumerate(args.mail_ids):
        try:
            e = find(vars(args), mail_id, reader)
            raw = whole(e, source)
        except (DamagedMail, NotFound) as err:
            io.say(err.reason)
            code = code or err.code
            continue
        if args.raw:  # the exact bytes; on a terminal, what could steer it shown as U+FFFD
            chunks.append(render.for_terminal(raw) if io.tty() else raw)
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
    return code


class Writer:
    """Renders mails in one format to an Output (or, for eml, a directory)."""

    def __init__(self, fmt: str, args: argparse.Namespace, io: Io, out: Output | None, directory: int | None,
                 source: Source) -> None:
        self.fmt, self.args, self.io, self.out, self.directory, self.source = fmt, args, io, out, directory, source
        self.cols = render.layout(io.width()) if fmt == "table" and out is not None and out.fd is None else None
        self.color = fmt == "table" and out is not None and out.fd is None and io.color()
        self.damaged = 0
        self.eml_senders: dict[str, Sender] = {}  # file name -> whose mail it holds, this run

    def write(self, e: MailEntry) -> bool:
        """Write one mail; False (and a line on stderr) if it is damaged."""
        if self.fmt == "table":
            assert self.out is not None
            self.out.write((render.table_line(e, self.cols or render.layout(None), self.color) + "\n").encode())
            return True
        try:
            raw = whole(e, self.source)
        except DamagedMail as err:
            self.io.say(err.reason)
            self.damaged += 1
            return False
        if e.truncated is not None and not self.args.quiet:
            self.io.say(f"note: mail {e.mail_id} was cut to {e.size} of {e.truncated} bytes when it was stored")
        if self.fmt == "eml":
            assert self.directory is not None
            write_eml(self.directory, self.eml_name(e), raw, self.args.output or "")
            return True
        assert self.out is not None
        if self.fmt == "mbox":
            mbox = render.mbox_message(e, raw)
            self.out.write(render.for_terminal(mbox) if self.out.fd is None and self.io.tty() else mbox)
        else:
            self.out.write(render.json_line(render.json_record(e, raw)).encode("utf-8", "surrogateescape"))
        return True


    def eml_name(self, e: MailEntry) -> str:
        """The mail's file name; a twin from another sender (forged) gets its uid added, so
        that it never replaces the other's file."""
        name = render.eml_name(e)
        if self.eml_senders.setdefault(name, e.sender) != e.sender:
            name = name.removesuffix(".eml") + f"-uid{e.uid}.eml"
        return name


def cmd_export(args: argparse.Namespace, io: Io) -> int:
    directory = eml_directory(args.output) if args.format == "eml" else None
    reader, q = start(args, io)
    out = None if directory is not None else Output(io.out if args.output is None else None, args.output, append=False)
    writer = Writer(args.format, args, io, out, directory, q.source)
    for e in selected(args, io, replace(q, raw=True), reader):
        writer.write(e)
    if out is not None:
        out.close()
    if writer.damaged:
        io.say(f"{writer.damaged} damaged mail(s) not written")
        return DamagedMail.code
    return EX_OK


def cmd_follow(args: argparse.Namespace, io: Io) -> int:
    cursor = read_cursor(args.cursor_file) if args.cursor_file else None
    directory = eml_directory(args.output) if args.format == "eml" else None
    reader, q = start(args, io)
    filters = q.filters
    out = None if directory is not None else Output(io.out if args.output is None else None, args.output)
    writer = Writer(args.format, args, io, out, directory, q.source)
    flags = Signals.install()  # SIGHUP: reopen the output (logrotate)
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
        reader, filters, cursor, lines, body_of(q.source) if filters.grep else None
    )
    try:
        for e in stream:
            # Signal handlers run as soon as the reader returns, so a mail that
            # arrives after logrotate's SIGHUP already goes to the new file.
            if flags.hup and out is not None and out.path is not None:
                commit()
                out.reopen()
                flags.hup = False
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
    reader, q = start(args, io)
    found = counted(q, (args.by,), reader)
    late_note(io, args, found.late)
    rows = render.stats_sorted(found.rows[args.by], args.by, args.sort)
    if args.json:
        text = "".join(render.json_line({args.by: k, "mails": c, "bytes": b}) for k, c, b in rows)
    else:
        text = render.stats_table(rows, args.by, io.width())
    io.out.write(text.encode("utf-8", "replace"))
    io.out.flush()
    notes(io, args, found.damaged, "not counted", [] if args.quiet else suppressed(reader, q.filters, found.units))
    return EX_OK


def cmd_index(args: argparse.Namespace, io: Io) -> int:
    """Build or update the source's index; with --follow, keep it current until SIGTERM."""
    source = source_of(args.directory, args.file, args.namespace)
    open_journal(source, None if args.quiet else io.say).close()
    say = (lambda line: None) if args.quiet else io.say
    builder = index.Builder(source, opener(source), progress=say)
    try:
        idx = builder.open(rebuild=args.rebuild)
    except (OSError, sqlite3.Error) as e:
        raise OutputError(f"cannot write the index {builder.path}: {getattr(e, 'strerror', None) or e}") from None
    flags = Signals.install(hup=False)
    watch = open_reader(source) if args.follow else None
    try:
        while True:
            try:
                added = builder.update(idx)
            except index.IndexError_ as e:
                say(f"{e}: rebuilding the index")
                idx.close()
                idx = builder.open(rebuild=True)
                continue
            if added or not args.follow:
                total = idx.db.execute("SELECT COUNT(*) FROM mails").fetchone()[0]
                say(f"index {builder.path}: {added} mail(s) added, {total} in all")
            if not args.follow or flags.stop:
                break
            if watch is not None:
                watch.tail()
                watch.previous()
                while not flags.stop and watch.wait(1_000_000) == 0:  # NOP: nothing new for a second
                    pass
    finally:
        idx.close()
        if watch is not None:
            watch.close()
    return EX_OK


def cmd_forward(args: argparse.Namespace, io: Io) -> int:
    from .forward.command import policy, run  # the forwarder's imports cost nothing to the other commands

    if getattr(args, "forward_command", None):  # status, silence add|list|expire
        return policy(io, args.config, getattr(args, "silence_command", None) or "status",
                      getattr(args, "json", False), tuple(getattr(args, "match", ())), getattr(args, "duration", ""),
                      getattr(args, "comment", ""), getattr(args, "id", ""))
    return run(io, source_of(args.directory, args.file, args.namespace), args.config, args.once, args.dry_run,
               args.digest_now, args.quiet)


def cmd_serve(args: argparse.Namespace, io: Io) -> int:
    from .web.server import serve  # Jinja2 and http.server only for the web inbox

    return serve(io, source_of(args.directory, args.file, args.namespace), not args.no_index, args.listen or [],
                 args.auth, args.tls_cert, args.tls_key, args.quiet)


COMMANDS: dict[str, Callable[[argparse.Namespace, Io], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "export": cmd_export,
    "follow": cmd_follow,
    "stats": cmd_stats,
    "index": cmd_index,
    "forward": cmd_forward,
    "serve": cmd_serve,
}
