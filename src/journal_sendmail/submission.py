"""Submission: one message handed to us, and its envelope, resolved once.

The envelope (the parsed headers, the recipients, the sender) is worked out
here and handed on: to ``record`` for the entry, to ``spool`` for mailq's view.
The caller (who handed us the mail) is read here too, from the parent process
in /proc, and the systemd unit the submission runs in, from our own cgroup
(one module less to load for every cron mail: about 0.3 million instructions).
"""

import posix
import time

from .dataclass_lite import field, record
from .headers import Headers
from .message import Raw
from .options import Invocation
from .schema import MAIL_CALLER_COMM, MAIL_CALLER_EXE, MAIL_CALLER_PID, MAIL_CALLER_UNIT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .record import Fields


@record
class Submission:
    """One message handed to us, with what is known about its submission."""

    inv: Invocation
    raw: Raw
    mail_id: str
    login: str  # the submitting uid's login name: the default envelope sender
    caller: dict[str, str]
    submitted_at: float
    refused: str | None = None
    extra: "Fields" = field(default_factory=list)  # SMTP envelope, spool fields

    @classmethod
    def now(cls, inv: Invocation, raw: Raw, refused: str | None = None, extra: "Fields | None" = None) -> "Submission":
        """A submission made by this process, now."""
        from .users import login_name

        return cls(
            inv=inv,
            raw=raw,
            mail_id=posix.urandom(16).hex(),
            login=login_name(),
            caller=caller_fields(),
            submitted_at=time.time(),
            refused=refused,
            extra=list(extra or ()),
        )


@record
class Envelope:
    """What the submission's headers and options say about where it goes."""

    headers: Headers
    recipients: list[str]
    sender: str


def resolve(sub: "Submission") -> "Envelope":
    """Parse the headers and work out recipients and sender, once.

    Marks the submission refused ("no recipients") when it has none; it is
    still recorded.  A bug in the header parser must not lose the mail: the
    headers are then left unparsed, with a defect saying why.
    """
    from . import headers

    try:
        hdrs = headers.parse(sub.raw.head)
    except Exception as e:
        hdrs = headers.Headers(defects=[f"headers: not parsed: {type(e).__name__}: {e}"])
    rcpts = recipients(sub.inv.recipients, hdrs.header_recipients, sub.inv.extract)
    if not rcpts and sub.refused is None:
        sub.refused = "no recipients"
    return Envelope(headers=hdrs, recipients=rcpts, sender=envelope_sender(sub.inv.sender, hdrs.unixfrom, sub.login))


def recipients(argv_recipients: tuple[str, ...], header_recipients: list[str], extract: bool) -> list[str]:
    """Envelope recipients: every argument is an address list; with -t the
    header recipients are added (Postfix's union), duplicates dropped.

    >>> recipients(("a@x, b@y", "root"), ["b@y", "c@z"], True)
    ['a@x', 'b@y', 'root', 'c@z']
    """
    from .headers import addresses

    found: list[str] = []
    for arg in argv_recipients:
        found.extend(addresses(arg))
    if extract:
        found.extend(header_recipients)
    return list(dict.fromkeys(a for a in found if a))


def envelope_sender(option: str | None, unixfrom: str | None, login: str) -> str:
    """-f/-r, else the address of a leading From line, else the login name.

    >>> envelope_sender("<a@x>", None, "root"), envelope_sender(None, None, "root")
    ('a@x', 'root')
    """
    for candidate in (option, unixfrom):
        if candidate is not None:
            value = candidate.strip()
            if value.startswith("<") and value.endswith(">"):
                value = value[1:-1]
            return value
    return login


# -- the caller ------------------------------------------------------------

# A unit's cgroup is named after it; slices only group units.
UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap")


def unit_of(cgroup: str) -> str | None:
    """The systemd unit of a /proc/PID/cgroup text: the first unit (not
    slice) in the path, as journald's ``_SYSTEMD_UNIT`` has it.  The unified
    hierarchy (``0::``) wins over the v1 ``name=systemd`` one.

    >>> unit_of("0::/system.slice/cron.service\\n")
    'cron.service'
    >>> unit_of("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service")
    'user@1000.service'
    >>> unit_of("1:name=systemd:/system.slice/cron.service\\n0::/\\n")
    'cron.service'
    >>> unit_of("0::/") is None, unit_of("0::/init.scope")
    (True, 'init.scope')
    """
    found: dict[str, str] = {}
    for line in cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" or controllers == "name=systemd":
            for element in path.split("/"):
                if element.endswith(UNIT_SUFFIXES):
                    found.setdefault(controllers, element)
                    break
    return found.get("") or found.get("name=systemd")


def caller_fields(ppid: int | None = None, proc: str = "/proc", self_pid: str = "self") -> dict[str, str]:
    """MAIL_CALLER_PID, _COMM and _EXE of the parent (what can be read), and
    MAIL_CALLER_UNIT, the unit this submission runs in, when there is one."""
    pid = posix.getppid() if ppid is None else ppid
    out = {MAIL_CALLER_PID: str(pid)}
    try:
        with open(f"{proc}/{self_pid}/cgroup", "rb") as f:
            unit = unit_of(f.read().decode("utf-8", "replace"))
        if unit:
            out[MAIL_CALLER_UNIT] = unit
    except OSError:
        pass
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            out[MAIL_CALLER_COMM] = f.read().rstrip(b"\n").decode("utf-8", "replace")
    except OSError:
        pass
    try:
        out[MAIL_CALLER_EXE] = posix.readlink(f"{proc}/{pid}/exe")
    except OSError:
        pass  # another user's process: /proc hides its exe
    return out
