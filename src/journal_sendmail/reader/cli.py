"""journal-mail: list, show, export, follow and count the mail stored in the journal.

argv ─> argparse ─> commands ─> query (journal) ─> render ─> output.
``main(argv) -> int`` is the only place that knows exit codes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn

from .. import __version__
from ..errors import EX_OK, EX_OSERR, EX_SOFTWARE, EX_USAGE, JournalSendmailError, UsageError
from . import render
from .attrs import LIST_FILTERS
from .commands import ALL, COMMANDS
from .output import PROG, Io

FORMATS = ("mbox", "eml", "json")
FOLLOW_FORMATS = ("table", "json", "mbox", "eml")

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see journal-mail --help)")


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
    for a in LIST_FILTERS:  # the attribute table's
        f.add_argument(f"--{a.name.replace('_', '-')}", dest=a.name, metavar=a.metavar or a.name.upper(),
                       type=int if a.name == "uid" else str, action="append", default=[], help=a.help)
    f.add_argument("--subject", metavar="TEXT", help="subject contains TEXT (any case), or matches /REGEX/")
    f.add_argument("-b", "--boot", metavar="ID", nargs="?", const="0", action="append", help="boot id or offset")
    f.add_argument("-g", "--grep", metavar="REGEX", help="body matches REGEX (any case if REGEX is lower case)")
    f.add_argument("--spooled", action="store_true", help="only mail re-injected from the spool")
    f.add_argument("--refused", action="store_true", help="also submissions refused but recorded")
    f.add_argument("-n", "--lines", metavar="N", type=_lines, help="only the newest N mails ('all': every one)")
    f.add_argument("-r", "--reverse", action="store_true", help="newest first")
    f.add_argument("--no-index", action="store_true", help="read the journal itself, never the index")

    p = _Parser(prog=PROG, description="Read the mail journal-sendmail stored in the systemd journal.",
                parents=[_source_options(top=True)])
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    c = sub.add_parser("list", parents=[source, filters], help="one line per mail, oldest first")
    c.add_argument("--json", action="store_true", help="one JSON object per mail, without the body")

    c = sub.add_parser("show", parents=[source], help="show mails by MAIL_ID (or a unique prefix)")
    c.add_argument("mail_ids", metavar="MAIL_ID", nargs="+")
    c.add_argument("--uid", metavar="UID", type=int, action="append", default=[],
                   help="only the entries this uid wrote (when a forged twin shares the MAIL_ID)")
    c.add_argument("--user", metavar="NAME", action="append", default=[], help="only the entries this user wrote")
    c.add_argument("--host", metavar="HOST", action="append", default=[], help="only the entries of HOST")
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

    c = sub.add_parser("index", parents=[source], help="build or update the index of the source (root)")
    c.add_argument("--rebuild", action="store_true", help="make it anew")
    c.add_argument("--follow", action="store_true", help="keep it current as mail arrives, until SIGTERM")

    c = sub.add_parser("forward", parents=[source], help="forward the mail that matters (forward.toml)")
    c.add_argument("--config", metavar="FILE", help="the rules (default /etc/journal-mail/forward.toml)")
    c.add_argument("--once", action="store_true", help="handle what is new, retry what waits, then exit")
    c.add_argument("--dry-run", action="store_true", help="say what each rule decides; send nothing")
    c.add_argument("--digest-now", metavar="NAME", nargs="?", const="", help="send digest NAME (all: none given) now")
    forward_commands(c)

    c = sub.add_parser("serve", parents=[source], help="a read-only web inbox (http://127.0.0.1:8025/)")
    c.add_argument("--listen", metavar="HOST:PORT", action="append",
                   help="where to listen: HOST:PORT or unix:PATH, again for more (default 127.0.0.1:8025; "
                   "beyond the loopback only with --auth)")
    c.add_argument("--auth", metavar="FILE", help="HTTP basic auth: NAME:scrypt$… lines (see journal-mail(1))")
    c.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM; with --tls-key)")
    c.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    c.add_argument("--no-index", action="store_true", help="read the journal itself, never the index")
    return p


def forward_commands(c: argparse.ArgumentParser) -> None:
    """``journal-mail forward silence add|list|expire`` and ``forward status``."""
    fsub = c.add_subparsers(dest="forward_command", metavar="{silence,status}")
    s = fsub.add_parser("silence", help="hold back the mail that matches, for a while").add_subparsers(
        dest="silence_command", required=True, metavar="{add,list,expire}")
    a = s.add_parser("add", help="silence the mail that matches every --match, for --for")
    a.add_argument("--match", metavar="KEY=VALUE", nargs="+", action="extend", required=True,
                   help="a match key of forward.toml and a glob or /regex/ (again: all must hold)")
    a.add_argument("--for", dest="duration", metavar="DURATION", required=True, help="how long: 2h, 2d, 1w")
    a.add_argument("--comment", metavar="TEXT", default="", help="why (shown by list, logged)")
    s.add_parser("list", help="the silences running and those ended this week").add_argument(
        "--json", action="store_true", help="one JSON object per silence")
    s.add_parser("expire", help="end a silence now").add_argument("id", metavar="ID")
    fsub.add_parser("status", help="destinations, silences, digests, repeats, expectations").add_argument(
        "--json", action="store_true", help="one JSON document")


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


RUN = COMMANDS


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
        return RUN[args.command](args, io)
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
