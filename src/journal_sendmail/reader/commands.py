"""Commands: list, show, export, follow and stats, each ``cmd_X(args, io) -> exit code``."""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from .. import users
from ..errors import EX_OK, DamagedMail, NotFound, OutputError, UsageError
from . import index, indexed, query, render
from .assemble import assemble, searchable_body
from .entry import MailEntry, Sender
from .filters import Filters, make_filters
from .output import FLUSH_BYTES, Io, Output, Signals, eml_directory, page, read_cursor, save_cursor, write_eml
from .source import Journal, Source, open_reader
from .source import open_journal as _open
from .source import source_of as _source_of

ALL = -1  # -n all


def limit(lines: int | None) -> int | None:
    return None if lines == ALL else lines


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


def source_of(args: argparse.Namespace) -> Source:
    return _source_of(args.directory, args.file, args.namespace)


def open_journal(args: argparse.Namespace, io: Io) -> Journal:
    return _open(source_of(args), None if args.quiet else io.say)


def parts_opener(args: argparse.Namespace) -> Callable[[], Any]:
    source = source_of(args)
    return lambda: open_reader(source)


def whole(e: MailEntry, args: argparse.Namespace) -> bytes:
    """The complete raw message; DamagedMail if it cannot be given back exactly."""
    return assemble(e, parts_opener(args))


def grep_body(args: argparse.Namespace) -> Callable[[MailEntry], str]:
    opener = parts_opener(args)
    return lambda e: searchable_body(e, opener)


def cmd_list(args: argparse.Namespace, io: Io) -> int:
    reader, filters = start(args, io)
    out = Output(io.out, None)
    found = 0
    damaged = Damaged()
    units = Units()
    entries = units.seen(damaged.counted(selected(args, io, reader, filters, args.reverse)))
    if args.json:
        record, line = render.json_record, render.json_line
        for e in entries:
            out.write(line(record(e)).encode("utf-8", "surrogateescape"))
            found += 1
        for s in units.suppressed(reader, filters):
            out.write(line(render.json_note(s)).encode("utf-8", "surrogateescape"))
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
    damaged.note(io, args, "listed, marked damaged")
    units.note(io, args, reader, filters)
    return EX_OK


class Units:
    """The units the mails shown came from, and what journald's rate limit dropped of theirs."""

    def __init__(self) -> None:
        self.units: set[str] = set()
        self.found: list[query.Suppressed] | None = None

    def seen(self, entries: Iterable[MailEntry]) -> Iterator[MailEntry]:
        for e in entries:
            self.units.update(u for u in (e.caller_unit, e.systemd_unit) if u)
            yield e

    def suppressed(self, reader: Any, filters: Filters) -> list[query.Suppressed]:
        if self.found is None:
            self.found = [s for s in query.suppressed(reader, filters.since, filters.until) if s.unit in self.units]
        return self.found

    def note(self, io: Io, args: argparse.Namespace, reader: Any, filters: Filters) -> None:
        if args.quiet or not self.units:
            return
        for s in self.suppressed(reader, filters):
            io.say(f"note: journald suppressed {s.dropped} messages from {s.unit} on {s.hostname} at "
                   f"{render.local_time(s.realtime, '%Y-%m-%d %H:%M:%S')} (its rate limit): mail it sent then "
                   "may be lost; see RATE LIMIT in journal-mail(1)")


class Damaged:
    """Counts the damaged entries (forged or corrupt) a command met, for one note."""

    def __init__(self) -> None:
        self.count = 0

    def counted(self, entries: Iterable[MailEntry], skip: bool = False) -> Iterator[MailEntry]:
        for e in entries:
            if e.damaged:
                self.count += 1
                if skip:
                    continue
            yield e

    def note(self, io: Io, args: argparse.Namespace, what: str) -> None:
        if self.count and not args.quiet:
            io.say(f"note: {self.count} entries look like mail but no journal-sendmail wrote them as they are "
                   f"(forged or corrupt; {what}): see TRUST in journal-mail(1)")


def selected(args: argparse.Namespace, io: Io, reader: Any, filters: Filters, reverse: bool,
             need_raw: bool = False, search: str | None = None) -> Iterator[MailEntry]:
    """The mail to show: ``query.mails``, or for a directory or files (a central
    journal, from systemd-journal-remote) ``query.central``: each mail once, in
    the order of the senders' clocks.  A current index of the source answers
    the same, faster (``--no-index``: never); ``need_raw``: with the raw bytes; ``search``:
    only those the web's search finds (indexed.search_matches)."""
    central = args.directory is not None or bool(args.file)
    found = None if getattr(args, "no_index", False) else _from_index(args, filters, reverse, central, need_raw,
                                                                        search)
    if found is not None:
        late, entries = found
    elif search is not None:
        return indexed.searched(selected(args, io, reader, filters, reverse, need_raw), search, grep_body(args))
    elif not central:
        body = grep_body(args) if filters.grep else None
        return query.mails(reader, filters, limit(args.lines), reverse, body)
    else:
        body = grep_body(args) if filters.grep else None
        late, entries = query.central(reader, filters, limit(args.lines), reverse, body)
    late_note(io, args, late)
    return entries


def late_note(io: Io, args: argparse.Namespace, late: int) -> None:
    if late and not args.quiet:
        io.say(
            f"note: {late} mail(s) arrived after mail that their senders stamped later (hosts' clocks "
            "differ, or a host uploaded late); shown in the order of the senders' clocks"
        )


def _from_index(args: argparse.Namespace, filters: Filters, reverse: bool, central: bool,
                need_raw: bool, search: str | None = None) -> tuple[int, Iterator[MailEntry]] | None:
    """The index's answer, or None when there is no current index this user may read."""
    source = source_of(args)
    idx = index.open_for_reading(source)
    if idx is None:
        return None
    try:
        late, entries = indexed.mails(idx, source, filters, parts_opener(args), limit(args.lines), reverse, central,
                                      search)
    except index.IndexError_:
        idx.close()
        return None

    def gen() -> Iterator[MailEntry]:
        reader = open_reader(source) if need_raw else None
        try:
            for e in entries:
                if reader is not None and not e.raw and e.size:
                    e = _refetch(reader, e)
                yield e
        finally:
            idx.close()
            if reader is not None:
                reader.close()

    return late, gen()


def _refetch(reader: Journal, e: MailEntry) -> MailEntry:
    """``e`` read again from the journal by its cursor, with its raw bytes (the index keeps none)."""
    again = reader.reread(e.cursor)
    if again is None:
        return e  # vacuumed since: export says it is damaged, as a scan that met it would not have shown it
    again.duplicates = e.duplicates
    return again


def find(args: argparse.Namespace, io: Io, mail_id: str, reader: Any) -> MailEntry:
    """The mail ``mail_id`` (or a unique prefix of it) names, from one sender.

    A MAIL_ID that entries of several senders carry (a forged twin: MAIL_IDs
    are random) names no mail until --uid, --user or --host picks one.
    """
    if not re.fullmatch(r"[0-9a-fA-F]{1,32}", mail_id):
        raise UsageError(f"{mail_id!r} is not a MAIL_ID (32 hexadecimal digits, or a prefix of one)")
    found = list(query.mails(reader, make_filters(args, [mail_id])))
    if not found:
        raise NotFound(f"no mail {mail_id} in the journal")
    if len({e.mail_id for e in found}) > 1:
        raise UsageError(f"{mail_id} is the start of {len(found)} MAIL_IDs; give more of it")
    senders = list(dict.fromkeys(e.sender for e in found))
    if len(senders) > 1:
        who = "; ".join(_sender_text(s) for s in senders)
        raise DamagedMail(found[0].mail_id, f"{len(senders)} senders wrote entries with this MAIL_ID ({who}), so all "
                          "but one are forged: pick one with --uid, --user or --host")
    return found[-1]


def _sender_text(sender: tuple[int | None, str, str]) -> str:
    uid, host, boot = sender
    name = users.name_of(uid)
    return f"uid {uid}{f' ({name})' if name else ''} on {host or '?'}, boot {boot[:8] or '?'}"


def cmd_show(args: argparse.Namespace, io: Io) -> int:
    """Each mail asked for; one that cannot be shown costs a line on stderr and
    the exit code (the first such), never the others."""
    make_filters(args)  # a bad --uid or --user is a usage error before anything is read
    reader = open_journal(args, io)
    chunks = []
    color = io.color()
    code = EX_OK
    for n, mail_id in enumerate(args.mail_ids):
        try:
            e = find(args, io, mail_id, reader)
            raw = whole(e, args)
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

    def __init__(self, fmt: str, args: argparse.Namespace, io: Io, out: Output | None, directory: int | None) -> None:
        self.fmt, self.args, self.io, self.out, self.directory = fmt, args, io, out, directory
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
            raw = whole(e, self.args)
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
    reader, filters = start(args, io)
    out = None if directory is not None else Output(io.out if args.output is None else None, args.output, append=False)
    writer = Writer(args.format, args, io, out, directory)
    for e in selected(args, io, reader, filters, args.reverse, need_raw=True):
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
    reader, filters = start(args, io)
    out = None if directory is not None else Output(io.out if args.output is None else None, args.output)
    writer = Writer(args.format, args, io, out, directory)
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
        reader, filters, cursor, lines, grep_body(args) if filters.grep else None
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
    reader, filters = start(args, io)
    damaged = Damaged()
    units = Units()
    rows = None
    if not args.no_index:
        rows = stats_from_index(args, filters, damaged, units, io)
    central = args.directory is not None or bool(args.file)
    if rows is None and central and (args.no_index or not index.usable(source_of(args))):
        late, each = query.central_each(reader, filters, grep_body(args) if filters.grep else None)
        rows = render.stats_rows(units.seen(damaged.counted(each, skip=True)), args.by, args.sort)
        late_note(io, args, late[0])  # one pass: the order does not matter to counts
    elif rows is None:
        entries = units.seen(damaged.counted(selected(args, io, reader, filters, False), skip=True))
        rows = render.stats_rows(entries, args.by, args.sort)
    else:
        rows = render.stats_sorted(rows, args.by, args.sort)
    if args.json:
        text = "".join(render.json_line({args.by: k, "mails": c, "bytes": b}) for k, c, b in rows)
    else:
        text = render.stats_table(rows, args.by, io.width())
    io.out.write(text.encode("utf-8", "replace"))
    io.out.flush()
    damaged.note(io, args, "not counted")
    units.note(io, args, reader, filters)
    return EX_OK


def stats_from_index(args: argparse.Namespace, filters: Filters, damaged: Damaged,
                      units: Units, io: Io | None = None) -> list[tuple[str, int, int]] | None:
    """The stats counted by the index in SQL (None: no index, or a filter that needs each mail)."""
    source = source_of(args)
    idx = index.open_for_reading(source)
    if idx is None:
        return None
    try:
        found = indexed.stats(idx, source, filters, parts_opener(args), args.by)
    except index.IndexError_:
        return None
    finally:
        idx.close()
    if found is None:
        return None
    rows, damaged.count, seen, late = found
    units.units.update(seen)
    if io is not None:
        late_note(io, args, late)
    return rows


def cmd_index(args: argparse.Namespace, io: Io) -> int:
    """Build or update the source's index; with --follow, keep it current until SIGTERM."""
    source = source_of(args)
    open_journal(args, io).close()
    say = (lambda line: None) if args.quiet else io.say
    builder = index.Builder(source, parts_opener(args), progress=say)
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
    from .forward.command import run  # the forwarder's imports cost nothing to the other commands

    return run(args, io, open_journal, source_of)


COMMANDS: dict[str, Callable[[argparse.Namespace, Io], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "export": cmd_export,
    "follow": cmd_follow,
    "stats": cmd_stats,
    "index": cmd_index,
    "forward": cmd_forward,
}
