"""Command line: one declarative table of the sendmail option union.

The table covers the options of Postfix, Exim, sendmail 8, nullmailer, msmtp
and dma.  Each option is honoured, recorded in the entry, ignored (legacy
flags that mean nothing for a journal) or refused with EX_USAGE (daemon and
test modes, and anything unknown, as every MTA does).  The parser follows
getopt: flags group (``-ti``), values attach or follow (``-fX``, ``-f X``),
``-b``/``-o`` take attached letters (``-bs``, ``-oi``, ``-odi``), ``--`` or
the first non-option ends the options.
"""

from .dataclass_lite import record
from .errors import UsageError

HONOUR, RECORD, IGNORE, REFUSE = "honoured", "recorded", "ignored", "refused"

# How an option takes its argument.
FLAG = "flag"  # no argument: -t
VALUE = "value"  # attached or the next argument: -fX, -f X
OPTIONAL = "optional"  # only attached, may be empty: -q, -q30m, -d, -d0.1


class Option:
    """One row of the table.  A plain class, not a record: building 55 rows
    through record's generic __init__ cost every cron mail 1.1 million
    instructions at import, 5% of the interpreter's own start-up."""

    __slots__ = ("action", "arg", "doc", "kind", "name")

    def __init__(self, name: str, kind: str, arg: str, action: str, doc: str) -> None:
        self.name = name  # as written: "-t", "-bs", "-o*" (any other -o letters)
        self.kind = kind
        self.arg = arg
        self.action = action  # what the parser does, or the journal field it records to
        self.doc = doc

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {self.kind!r}, {self.arg!r}, {self.action!r})"


OPTIONS: "tuple[Option, ...]" = (
    # honoured
    Option("-t", HONOUR, FLAG, "extract", "recipients from To, Cc, Bcc (or Resent-*) too, united with the arguments"),
    Option("-i", HONOUR, FLAG, "ignore_dots", "a line with only a dot does not end the message"),
    Option("-oi", HONOUR, FLAG, "ignore_dots", "same as -i"),
    Option("-f", HONOUR, VALUE, "sender", "envelope sender"),
    Option("-r", HONOUR, VALUE, "sender", "envelope sender (obsolete form of -f)"),
    Option("-F", HONOUR, VALUE, "full_name", "full name of the sender, recorded as MAIL_FULL_NAME"),
    Option("-v", HONOUR, FLAG, "verbose", "say on standard error what was stored"),
    Option("-bm", HONOUR, FLAG, "mode=deliver", "read a message from standard input and store it (the default)"),
    Option("-bs", HONOUR, FLAG, "mode=smtp", "speak SMTP on standard input and output"),
    Option("-bp", HONOUR, FLAG, "mode=mailq", "list the spool (as mailq)"),
    Option("-bi", HONOUR, FLAG, "mode=newaliases", "rebuild aliases (as newaliases): nothing to do, exit 0"),
    Option("-I", HONOUR, FLAG, "mode=newaliases", "same as -bi (Postfix, sendmail 8)"),
    Option("-bv", HONOUR, FLAG, "mode=verify", "verify the recipients without reading a message"),
    Option("-bV", HONOUR, FLAG, "mode=version", "print the version"),
    Option("--version", HONOUR, FLAG, "mode=version", "print the version"),
    Option("--help", HONOUR, FLAG, "mode=help", "print a short usage"),
    Option("--check-config", HONOUR, FLAG, "mode=check-config",
           "check /etc/journal-sendmail.conf, or the file given as the one argument: exit 0, or 78 naming the key"),
    Option("-q", HONOUR, OPTIONAL, "mode=flush", "flush the spool into the journal (-q30m and -qR... as -q)"),
    # recorded in the entry
    Option("-N", RECORD, VALUE, "MAIL_DSN_NOTIFY", "DSN notification request"),
    Option("-R", RECORD, VALUE, "MAIL_DSN_RET", "DSN return request (full or hdrs)"),
    Option("-V", RECORD, VALUE, "MAIL_ENVID", "DSN envelope id"),
    Option("-B", RECORD, VALUE, "MAIL_BODY_TYPE", "body type (7BIT, 8BITMIME)"),
    Option("-h", RECORD, VALUE, "MAIL_HOP_COUNT", "hop count"),
    Option("-p", RECORD, VALUE, "MAIL_PROTOCOL", "received protocol (and host)"),
    Option("-L", RECORD, VALUE, "MAIL_LOG_LABEL", "syslog label of the caller's choice"),
    Option("-C", RECORD, VALUE, "MAIL_CONFIG_FILE", "alternate configuration file of another MTA"),
    Option("-O", RECORD, VALUE, "MAIL_OPTION", "option=value of sendmail 8"),
    Option("-X", RECORD, VALUE, "MAIL_TRAFFIC_LOG", "traffic log file of sendmail 8"),
    # ignored legacy flags
    Option("-o*", IGNORE, FLAG, "", "every other -o letter option (-odi, -oem, -or0s, -om, -o7 ...)"),
    Option("-e", IGNORE, OPTIONAL, "", "error mode (-em, -ep, -eq, -ew)"),
    Option("-d", IGNORE, OPTIONAL, "", "debugging levels"),
    Option("-A", IGNORE, VALUE, "", "-Am, -Ac: submission file of sendmail 8"),
    Option("-U", IGNORE, FLAG, "", "initial user submission"),
    Option("-G", IGNORE, FLAG, "", "gateway submission"),
    Option("-m", IGNORE, FLAG, "", "me too"),
    Option("-n", IGNORE, FLAG, "", "no aliasing"),
    Option("-c", IGNORE, FLAG, "", "connect to hosts only when cheap"),
    Option("-s", IGNORE, FLAG, "", "save From lines"),
    Option("-x", IGNORE, FLAG, "", "dma's and Postfix's no-op flag"),
    Option("-T", IGNORE, VALUE, "", "queue timeout"),
    # refused: daemons, tests, queue surgery
    Option("-bd", REFUSE, FLAG, "", "run as a daemon"),
    Option("-bD", REFUSE, FLAG, "", "run as a daemon in the foreground"),
    Option("-bt", REFUSE, FLAG, "", "address test mode"),
    Option("-be", REFUSE, FLAG, "", "string expansion test (Exim)"),
    Option("-bh", REFUSE, FLAG, "", "SMTP host checking (Exim) or held messages (Postfix)"),
    Option("-bH", REFUSE, FLAG, "", "purge persistent host status"),
    Option("-bP", REFUSE, FLAG, "", "print configuration (Exim)"),
    Option("-bl", REFUSE, FLAG, "", "listen on the network"),
    Option("-b*", REFUSE, FLAG, "", "every other -b mode"),
    Option("-M", REFUSE, VALUE, "", "queue and message surgery (Exim -M...)"),
)

BY_NAME = {o.name: o for o in OPTIONS}
MODES_BY_NAME = {"mailq": "mailq", "newaliases": "newaliases", "runq": "flush"}


@record(frozen=True)
class Invocation:
    """What the command line asks for."""

    argv: tuple[str, ...]
    invoked_as: str = "sendmail"
    mode: str = "deliver"
    extract: bool = False
    ignore_dots: bool = False
    sender: str | None = None
    full_name: str | None = None
    verbose: bool = False
    recipients: tuple[str, ...] = ()
    recorded: tuple[tuple[str, str], ...] = ()
    ignored: tuple[str, ...] = ()


def program_name(argv0: str) -> str:
    """The name this was invoked as: the last path element."""
    return argv0.rsplit("/", 1)[-1] or "sendmail"


def _lookup(letter: str, rest: str) -> "tuple[Option, str]":
    """Find the row for ``-<letter><rest>``; for -b/-o the sub-letters count."""
    if letter in "bo":
        if not rest:
            raise UsageError(f"option -{letter} needs a letter (such as -{letter}{'m' if letter == 'b' else 'i'})")
        exact = BY_NAME.get(f"-{letter}{rest}")
        if exact is None and letter == "o" and rest in ("itrue", "i=true"):
            exact = BY_NAME["-oi"]
        return exact or BY_NAME[f"-{letter}*"], rest
    opt = BY_NAME.get(f"-{letter}")
    if opt is None:
        raise UsageError(f"unknown option -{letter}")
    return opt, rest


def parse(argv: list[str] | tuple[str, ...]) -> "Invocation":
    """Turn argv (with argv[0]) into an Invocation; UsageError when refused.

    >>> inv = parse(["/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"])
    >>> inv.ignore_dots, inv.full_name, inv.recipients, inv.recorded
    (True, 'CronDaemon', ('root',), (('MAIL_BODY_TYPE', '8BITMIME'),))
    """
    args = list(argv)
    name = program_name(args[0]) if args else "sendmail"
    state: dict[str, object] = {"mode": MODES_BY_NAME.get(name, "deliver")}
    recorded: list[tuple[str, str]] = []
    ignored: list[str] = []
    i = 1
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            opt = BY_NAME.get(arg.split("=", 1)[0])
            if opt is None or "=" in arg:
                raise UsageError(f"unknown option {arg}")
            _apply(opt, "", state, recorded, ignored, arg)
            continue
        if not arg.startswith("-") or arg == "-":
            i -= 1
            break
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            rest = arg[pos + 1:]
            if letter in "bo" and not rest and i < len(args):
                rest = args[i]  # -o i, -b m: the letters may follow
                i += 1
            opt, rest = _lookup(letter, rest)
            if letter in "bo":
                # the sub-letters are the whole rest of the argument
                _apply(opt, rest, state, recorded, ignored, arg)
                break
            if opt.arg == FLAG:
                _apply(opt, "", state, recorded, ignored, f"-{letter}")
                pos += 1
                continue
            if opt.arg == OPTIONAL:
                _apply(opt, rest, state, recorded, ignored, arg)
                break
            value = rest
            if not value:
                if i >= len(args):
                    raise UsageError(f"option -{letter} needs a value")
                value = args[i]
                i += 1
            _apply(opt, value, state, recorded, ignored, arg)
            break
    return Invocation(
        argv=tuple(args),
        invoked_as=name,
        recipients=tuple(args[i:]),
        recorded=tuple(recorded),
        ignored=tuple(ignored),
        **state,  # type: ignore[arg-type]
    )


def _apply(
    opt: "Option",
    value: str,
    state: dict[str, object],
    recorded: list[tuple[str, str]],
    ignored: list[str],
    given: str,
) -> None:
    if opt.kind == REFUSE:
        if opt.name == "-b*":
            raise UsageError(f"mode {given} is not supported; journal-sendmail only stores mail")
        raise UsageError(f"option {opt.name} is not supported ({opt.doc}); journal-sendmail only stores mail")
    if opt.kind == IGNORE:
        ignored.append(given)
    elif opt.kind == RECORD:
        recorded.append((opt.action, value))
    elif opt.action.startswith("mode="):
        state["mode"] = opt.action[5:]
    elif opt.action in ("sender", "full_name"):
        state[opt.action] = value
    else:
        state[opt.action] = True
