"""SMTP on standard input and output (``sendmail -bs``), one journal entry per message.

``Session`` is the whole protocol as a pure state machine: it is fed the
bytes the client sent and returns the replies, and hands each finished
message to a ``store`` function; ``serve`` is the I/O loop at the edge.

Why not aiosmtpd, which docs/style.md names: measured on bookworm, importing
``aiosmtpd.smtp`` costs ~58 ms (asyncio, ssl, logging, email, attrs) on an
interpreter that starts in ~6 ms, and every PHP or Symfony mail sent through
``-bs`` would pay it; and it is built around an asyncio transport for a
socket: ``loop.connect_read_pipe`` refuses a regular file ("Pipe transport is
for pipes/sockets only"), so ``sendmail -bs < session.txt`` could not work.
The subset of RFC 5321 a local submission needs (no relaying, no TLS, no
AUTH) is the few hundred lines below.

What the session advertises and does:
  * EHLO: PIPELINING, SIZE <max_size>, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES;
  * MAIL/RCPT parameters SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT
    are checked and recorded (MAIL_SMTP_MAIL_PARAMS, MAIL_SMTP_RCPT_PARAMS),
    never acted on: nothing is sent, so no delivery status notification either;
  * DATA ends at a line that is only ``.`` (CRLF or a bare LF); a leading dot
    is removed from every other line; the message is stored as received
    otherwise, line endings included;
  * a message over max_size gets 552 and is not stored; one the journal and
    the spool both refused gets 451 (the client keeps it and retries);
  * a session cut off in DATA records what came as a refused submission.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable

from . import message
from .dataclass_lite import field, record
from .errors import EX_OK, EX_TEMPFAIL, JournalSendmailError
from .record import Fields
from .schema import MAIL_PROTOCOL, MAIL_SMTP_HELO, MAIL_SMTP_MAIL_PARAMS, MAIL_SMTP_RCPT_PARAMS

CRLF = b"\r\n"
MAX_COMMAND_LINE = 4096  # RFC 5321 says 512, but parameters and SMTPUTF8 grow it
MAX_RECIPIENTS = 1000  # RFC 5321 4.5.3.1.8: at least 100
MAX_ERRORS = 20  # then 421: someone fed a file that is not an SMTP session
IDLE_TIMEOUT = 300.0  # RFC 5321 4.5.3.2.7: a server waits 5 minutes for a command

# SMTP parameters that MAIL and RCPT take; anything else gets 555.
MAIL_PARAMS = ("SIZE", "BODY", "SMTPUTF8", "RET", "ENVID")
RCPT_PARAMS = ("NOTIFY", "ORCPT")

HELP = (
    "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
    "214-2.0.0 Every message is stored in the systemd journal; nothing is sent.",
    "214 2.0.0 See journal-sendmail(8).",
)
NOT_IMPLEMENTED = frozenset(("EXPN", "STARTTLS", "AUTH", "BDAT", "ETRN", "TURN", "ATRN", "SEND", "SOML", "SAML"))


class SyntaxProblem(Exception):
    """A command argument that breaks the grammar: its reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@record
class Envelope:
    """One transaction: what HELO, MAIL and RCPT said."""

    helo: str | None = None
    esmtp: bool = False
    sender: str = ""
    mail_params: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    rcpt_params: list[tuple[str, list[str]]] = field(default_factory=list)

    def fields(self) -> Fields:
        """The SMTP envelope as extra journal fields."""
        out: Fields = [(MAIL_PROTOCOL, b"ESMTP" if self.esmtp else b"SMTP")]
        if self.helo is not None:
            out.append((MAIL_SMTP_HELO, _enc(self.helo)))
        if self.mail_params:
            out.append((MAIL_SMTP_MAIL_PARAMS, _enc(" ".join(self.mail_params))))
        lines = [f"<{addr}> {' '.join(params)}" for addr, params in self.rcpt_params if params]
        if lines:
            out.append((MAIL_SMTP_RCPT_PARAMS, _enc("\n".join(lines))))
        return out


Store = Callable[[Envelope, message.Raw, str | None], str | None]
"""store(envelope, raw, refused) -> MAIL_ID (None: recorded as refused);
raises JournalSendmailError when the message could not be kept."""


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def parse_path(arg: str, keyword: str) -> tuple[str, list[str]]:
    """Split ``FROM:<a@b> SIZE=1`` into the address and the parameters.

    The path may lack its angle brackets (as Postfix and sendmail accept),
    have a space after the colon, or carry an obsolete source route.

    >>> parse_path("FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM")
    ('a@b', ['SIZE=10', 'BODY=8BITMIME'])
    >>> parse_path('to: <"x y"@b>', "TO"), parse_path("TO:<@r1,@r2:u@d>", "TO")
    (('"x y"@b', []), ('u@d', []))
    """
    head, colon, rest = arg.partition(":")
    if not colon or head.strip().upper() != keyword:
        raise SyntaxProblem(f"501 5.5.4 Syntax: {'MAIL FROM' if keyword == 'FROM' else 'RCPT TO'}:<address>")
    rest = rest.lstrip(" ")
    if rest.startswith("<"):
        end = _closing_bracket(rest)
        if end < 0:
            raise SyntaxProblem("501 5.1.7 Bad address syntax: missing >")
        addr, params = rest[1:end], rest[end + 1:]
        if params and not params.startswith(" "):
            raise SyntaxProblem("501 5.5.4 Syntax: a space must separate the address from its parameters")
    else:
        addr, _, params = rest.partition(" ")
        if not addr:
            raise SyntaxProblem("501 5.1.7 Bad address syntax: no address")
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]  # RFC 5321 4.1.1.3: a source route may be ignored
    if any(c in addr for c in "\r\n\0\t") or (addr and not addr.isprintable()):
        raise SyntaxProblem("501 5.1.7 Bad address syntax: control characters")
    return addr, params.split()


def _closing_bracket(text: str) -> int:
    """Index of the ``>`` that ends the path starting at text[0] == "<"."""
    quoted = escaped = False
    for i, c in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return i
    return -1


def check_params(params: list[str], allowed: tuple[str, ...], max_size: int) -> dict[str, str]:
    """Validate MAIL or RCPT parameters; their values by upper-case name.

    >>> check_params(["size=12", "BODY=8bitmime", "SMTPUTF8"], MAIL_PARAMS, 100)
    {'SIZE': '12', 'BODY': '8BITMIME', 'SMTPUTF8': ''}
    """
    seen: dict[str, str] = {}
    for param in params:
        name, eq, value = param.partition("=")
        key = name.upper()
        if not name or not (name.replace("-", "").isalnum() and name.isascii()) or (eq and not value):
            raise SyntaxProblem(f"501 5.5.4 Bad parameter syntax: {param}")
        if key not in allowed:
            raise SyntaxProblem(f"555 5.5.4 Unsupported parameter: {name}")
        if key in seen:
            raise SyntaxProblem(f"501 5.5.4 Parameter given twice: {name}")
        seen[key] = _check_value(key, value, eq == "=", max_size)
    return seen


def _check_value(key: str, value: str, has_value: bool, max_size: int) -> str:
    upper = value.upper()
    if key == "SMTPUTF8":
        if has_value:
            raise SyntaxProblem("501 5.5.4 SMTPUTF8 takes no value")
        return ""
    if not has_value:
        raise SyntaxProblem(f"501 5.5.4 {key} needs a value")
    if key == "SIZE":
        if not (value.isascii() and value.isdigit()) or len(value) > 20:
            raise SyntaxProblem("501 5.5.4 Bad SIZE syntax")
        if int(value) > max_size:
            raise SyntaxProblem(f"552 5.3.4 Message size exceeds fixed maximum message size ({max_size})")
        return value
    if key == "BODY":
        if upper not in ("7BIT", "8BITMIME"):
            raise SyntaxProblem("501 5.5.4 Unsupported BODY type (7BIT or 8BITMIME)")
        return upper
    if key == "RET":
        if upper not in ("FULL", "HDRS"):
            raise SyntaxProblem("501 5.5.4 Bad RET value (FULL or HDRS)")
        return upper
    if key == "NOTIFY":
        words = upper.split(",")
        if words != ["NEVER"] and not all(w in ("SUCCESS", "FAILURE", "DELAY") for w in words):
            raise SyntaxProblem("501 5.5.4 Bad NOTIFY value (NEVER, or SUCCESS,FAILURE,DELAY)")
        return upper
    # ENVID and ORCPT: xtext, printable ASCII; ORCPT is addr-type;address
    if not all(" " < c < "\x7f" for c in value) or len(value) > 500:
        raise SyntaxProblem(f"501 5.5.4 Bad {key} value")
    if key == "ORCPT" and ";" not in value:
        raise SyntaxProblem("501 5.5.4 Bad ORCPT value (addr-type;address)")
    return value


class Session:
    """One SMTP session: ``receive(bytes) -> replies``; ``closed`` once it is over.

    >>> stored = []
    >>> s = Session(lambda env, raw, refused: stored.append(raw.read_all()) or "ID", hostname="h")
    >>> s.greeting()
    b'220 h ESMTP journal-sendmail\\r\\n'
    >>> s.receive(b"HELO c\\r\\nMAIL FROM:<a@h>\\r\\nRCPT TO:<b@h>\\r\\nDATA\\r\\n")
    b'250 h\\r\\n250 2.1.0 Ok\\r\\n250 2.1.5 Ok\\r\\n354 End data with <CR><LF>.<CR><LF>\\r\\n'
    >>> s.receive(b"Subject: x\\r\\n\\r\\n..hi\\r\\n.\\r\\nQUIT\\r\\n")
    b'250 2.0.0 Ok: queued as ID\\r\\n221 2.0.0 Bye\\r\\n'
    >>> stored, s.closed
    ([b'Subject: x\\r\\n\\r\\n.hi\\r\\n'], True)
    """

    def __init__(
        self,
        store: Store,
        *,
        hostname: str = "localhost",
        max_size: int = 128 * 1024 * 1024,
        part_size: int = 1024 * 1024,
        max_recipients: int = MAX_RECIPIENTS,
        max_errors: int = MAX_ERRORS,
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.max_size = max_size
        self.part_size = part_size
        self.max_recipients = max_recipients
        self.max_errors = max_errors
        self.closed = False
        self.stored = 0  # messages accepted with 250
        self.failed = 0  # messages answered with 451
        self.errors = 0
        self.helo: str | None = None
        self.esmtp = False
        self.env: Envelope | None = None  # set by MAIL
        self._buf = bytearray()
        self._overlong = False
        self._in_data = False
        self._data = bytearray()
        self._data_bol = True
        self._data_size = 0  # bytes of DATA received, kept or not

    # -- the I/O edge calls these ---------------------------------------

    def greeting(self) -> bytes:
        return self._reply([f"220 {self.hostname} ESMTP journal-sendmail"])

    def receive(self, data: bytes) -> bytes:
        """Take what the client sent; return every reply it has earned, in order."""
        self._buf += data
        out: list[str] = []
        pos = 0
        buf = self._buf
        while not self.closed and pos < len(buf):
            if self._in_data:
                pos, replies = self._data_from(pos)
                out += replies
                if self._in_data:
                    break
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > MAX_COMMAND_LINE:
                    self._overlong = True
                    pos = len(buf)
                break
            line = bytes(buf[pos:nl])
            pos = nl + 1
            if self._overlong:
                self._overlong = False
                out += self._error("500 5.5.2 Error: line too long")
                continue
            out += self.command(line.removesuffix(b"\r"))
        del buf[:pos]
        if self.closed:
            buf.clear()
        return self._reply(out)

    def eof(self) -> bytes:
        """The client went away (no QUIT): keep what was accepted, record a cut DATA."""
        self._cut("the SMTP session ended")
        return b""

    def timeout(self) -> bytes:
        """The client said nothing for too long."""
        self._cut("the SMTP session timed out")
        return self._reply(["421 4.4.2 Error: timeout exceeded"])

    def _cut(self, why: str) -> None:
        if self._in_data and self.env is not None and (self._data_size or self._buf):
            self._keep(bytes(self._buf))  # a held-back "." or ".\r" is data after all
            self._buf.clear()
            self._finish_data(refused=f"{why} before the final dot of DATA")
        self.closed = True

    # -- commands -------------------------------------------------------

    def command(self, line: bytes) -> list[str]:
        """One command line (without its line end) -> its replies."""
        text = line.decode("utf-8", "surrogateescape")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        handler = getattr(self, f"smtp_{verb}", None) if verb.isalpha() and verb.isascii() else None
        if handler is None:
            if verb in NOT_IMPLEMENTED:
                return self._error(f"502 5.5.1 Error: command {verb} not implemented")
            if not text.strip():
                return self._error("500 5.5.2 Error: bad syntax")
            return self._error("500 5.5.2 Error: command not recognized")
        try:
            replies: list[str] = handler(arg.strip(" "))
        except SyntaxProblem as e:
            return self._error(e.reply)
        return replies

    def smtp_HELO(self, arg: str) -> list[str]:
        return self._hello(arg, esmtp=False)

    def smtp_EHLO(self, arg: str) -> list[str]:
        return self._hello(arg, esmtp=True)

    def _hello(self, arg: str, esmtp: bool) -> list[str]:
        if not arg or not arg.isprintable():
            raise SyntaxProblem(f"501 5.5.4 Syntax: {'EHLO' if esmtp else 'HELO'} hostname")
        self.helo, self.esmtp, self.env = arg, esmtp, None  # RFC 5321 4.1.4: like RSET
        if not esmtp:
            return [f"250 {self.hostname}"]
        return [
            f"250-{self.hostname}",
            "250-PIPELINING",
            f"250-SIZE {self.max_size}",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250 ENHANCEDSTATUSCODES",
        ]

    def smtp_MAIL(self, arg: str) -> list[str]:
        if self.env is not None:
            raise SyntaxProblem("503 5.5.1 Error: nested MAIL command")
        addr, params = parse_path(arg, "FROM")
        values = check_params(params, MAIL_PARAMS, self.max_size)
        if not addr.isascii() and "SMTPUTF8" not in values:
            raise SyntaxProblem("553 5.6.7 Non-ASCII address without the SMTPUTF8 parameter")
        self.env = Envelope(helo=self.helo, esmtp=self.esmtp, sender=addr, mail_params=params)
        return ["250 2.1.0 Ok"]

    def smtp_RCPT(self, arg: str) -> list[str]:
        if self.env is None:
            raise SyntaxProblem("503 5.5.1 Error: need MAIL command")
        addr, params = parse_path(arg, "TO")
        if not addr:
            raise SyntaxProblem("501 5.1.3 Bad recipient address syntax: empty")
        check_params(params, RCPT_PARAMS, self.max_size)
        if not addr.isascii() and "SMTPUTF8" not in {p.upper() for p in self.env.mail_params}:
            raise SyntaxProblem("553 5.6.7 Non-ASCII address without the SMTPUTF8 parameter")
        if len(self.env.recipients) >= self.max_recipients:
            return ["452 4.5.3 Error: too many recipients"]
        self.env.recipients.append(addr)
        self.env.rcpt_params.append((addr, params))
        return ["250 2.1.5 Ok"]

    def smtp_DATA(self, arg: str) -> list[str]:
        if arg:
            raise SyntaxProblem("501 5.5.4 Syntax: DATA takes no argument")
        if self.env is None:
            raise SyntaxProblem("503 5.5.1 Error: need MAIL command")
        if not self.env.recipients:
            raise SyntaxProblem("554 5.5.1 Error: no valid recipients")
        self._in_data, self._data_bol, self._data_size = True, True, 0
        self._data = bytearray()
        return ["354 End data with <CR><LF>.<CR><LF>"]

    def smtp_RSET(self, arg: str) -> list[str]:
        if arg:
            raise SyntaxProblem("501 5.5.4 Syntax: RSET takes no argument")
        self.env = None
        return ["250 2.0.0 Ok"]

    def smtp_NOOP(self, arg: str) -> list[str]:
        return ["250 2.0.0 Ok"]

    def smtp_VRFY(self, arg: str) -> list[str]:
        if not arg:
            raise SyntaxProblem("501 5.5.4 Syntax: VRFY address")
        return ["252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"]

    def smtp_HELP(self, arg: str) -> list[str]:
        return list(HELP)

    def smtp_QUIT(self, arg: str) -> list[str]:
        self.closed = True
        return ["221 2.0.0 Bye"]

    # -- DATA -----------------------------------------------------------

    def _data_from(self, pos: int) -> tuple[int, list[str]]:
        """Consume DATA bytes from the buffer at ``pos``; the new position and replies."""
        buf = self._buf
        view = bytes(buf[pos:])
        found = message.find_dot_line(view, self._data_bol)
        if isinstance(found, tuple):
            self._keep(view[: found[0]])
            return pos + found[1], self._finish_data()
        # An int is where a dot line may be starting ("." or ".\r" at the end):
        # hold that back until more arrives.
        take = len(view) if found is None else found
        self._keep(view[:take])
        return pos + take, []

    def _keep(self, block: bytes) -> None:
        """Dot-unstuff one block of DATA and keep it (when within max_size)."""
        if not block:
            return
        starts_line = self._data_bol
        self._data_bol = block.endswith(b"\n")
        if starts_line and block.startswith(b"."):
            block = block[1:]
        block = block.replace(b"\n.", b"\n")
        self._data_size += len(block)
        if self._data_size <= self.max_size:
            self._data += block

    def _finish_data(self, refused: str | None = None) -> list[str]:
        env, data, size = self.env, self._data, self._data_size
        self._in_data, self.env, self._data = False, None, bytearray()
        assert env is not None
        if size > self.max_size:
            return self._error(f"552 5.3.4 Message size exceeds fixed maximum message size ({self.max_size})")
        raw = message.from_bytes(data, self.part_size, self.max_size)
        try:
            mail_id = self.store(env, raw, refused)
        except JournalSendmailError as e:
            self.failed += 1
            return [f"451 4.3.0 Error: the message could not be stored: {_one_line(e.reason)}"]
        finally:
            raw.close()
        if refused is not None:
            return []
        if mail_id is None:
            return self._error("554 5.5.1 Error: no valid recipients (recorded as refused)")
        self.stored += 1
        return [f"250 2.0.0 Ok: queued as {mail_id}"]

    # -- replies --------------------------------------------------------

    def _error(self, reply: str) -> list[str]:
        """A 5xx reply to a command; too many of them end the session."""
        self.errors += 1
        if self.errors < self.max_errors:
            return [reply]
        self.closed = True
        return [reply, f"421 4.7.0 {self.hostname} Error: too many errors"]

    @staticmethod
    def _reply(lines: list[str]) -> bytes:
        return b"".join(_enc(line) + CRLF for line in lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def serve(
    session: Session,
    fd_in: int = 0,
    fd_out: int = 1,
    timeout: float = IDLE_TIMEOUT,
    read_size: int = 256 * 1024,
) -> None:
    """Run ``session`` over two file descriptors until QUIT, EOF or a timeout.

    Every reply earned by the input read so far is written before the next
    read may block, so a pipelining client and a lock-step one both work.
    """
    pending = session.greeting()
    while True:
        if pending:
            try:
                message.write_all(fd_out, pending)
            except OSError:
                session.eof()  # the client is gone: nobody to answer
                return
            pending = b""
        if session.closed:
            return
        try:
            ready = select.select([fd_in], [], [], timeout)[0]
        except (OSError, ValueError):
            ready = [fd_in]  # not selectable: just read
        if not ready:
            pending = session.timeout()
            continue
        try:
            chunk = os.read(fd_in, read_size)
        except OSError:
            chunk = b""
        if not chunk:
            pending = session.eof()
            continue
        pending = session.receive(chunk)


def run(store: Store, max_size: int, part_size: int) -> int:
    """The -bs mode on stdin/stdout: EX_TEMPFAIL if a message could not be stored."""
    session = Session(store, hostname=os.uname().nodename or "localhost", max_size=max_size, part_size=part_size)
    serve(session)
    return EX_TEMPFAIL if session.failed else EX_OK
