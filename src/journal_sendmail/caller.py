"""Caller: who handed us the mail, read from the parent process in /proc,
and the systemd unit the submission runs in, from our own cgroup."""

import posix

from .schema import MAIL_CALLER_COMM, MAIL_CALLER_EXE, MAIL_CALLER_PID, MAIL_CALLER_UNIT

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
