"""The failed-unit mail: what journal-mail-failure@.service runs.

``failure-mail INSTANCE`` (``%i`` of ``journal-mail-failure@%N.service``)
writes one mail about the failed unit through /usr/sbin/sendmail, so it is
stored like any other: the subject says host, unit, result and exit status;
the body holds ``systemctl status`` and the last lines the failed invocation
logged; X-Failed-* headers, which the sender records as MAIL_FAILED_*
fields, say the same for rules (journal-sendmail(8)).

Which invocation failed: systemd passes it to a unit that OnFailure= started
($MONITOR_UNIT, $MONITOR_INVOCATION_ID, $MONITOR_SERVICE_RESULT,
$MONITOR_EXIT_CODE, $MONITOR_EXIT_STATUS; systemd 251 and later).  That is
the one to show: a unit with Restart= may already run again (systemd 254 and
later start OnFailure= before each automatic restart) and its InvocationID
property then names the new run.  Without them (two units of one name
triggered the same instance, or a run by hand), the unit's properties say
the result, and PID 1's last "Failed with result" entry for the unit (trusted:
``_PID=1``) names the invocation; its InvocationID property is the last resort.

No reader module is imported: this is a sender-side helper that reads the
journal with journalctl, as the admin would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import EX_OK, EX_SOFTWARE, EX_USAGE, ConfigError
from .schema import MSG_UNIT_FAILURE_RESULT  # PID 1's "Failed with result '…'" (INVOCATION_ID, UNIT_RESULT)

PROG = "failure-mail"
SENDMAIL = "/usr/sbin/sendmail"
SYSTEMCTL = "systemctl"
JOURNALCTL = "journalctl"
TEMPLATE = "journal-mail-failure@"
LINES_DEFAULT = 50
LINES_MAX = 10_000
MAILTO_DEFAULT = "root"
# Unit types a name may end in (systemd.unit(5)); an instance without one is a service.
UNIT_TYPES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
              ".timer", ".slice", ".scope")
_UNIT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:-_.\\@")
# waitid(2)'s si_code as systemctl show gives ExecMainCode, in $EXIT_CODE's words
_CLD = {"1": "exited", "2": "killed", "3": "dumped"}

USAGE = f"""usage: {PROG} UNIT
Store a mail about the failed UNIT (a name; without a type, UNIT.service):
its status and the last journal lines of its failed run, through
{SENDMAIL}.  Run by journal-mail-failure@.service; settings in its
environment: LOG_LINES (default {LINES_DEFAULT}), MAILTO (default {MAILTO_DEFAULT}).
See journal-mail-failure@.service(8).
"""

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[bytes]"]


@dataclass(frozen=True)
class Settings:
    lines: int = LINES_DEFAULT
    to: tuple[str, ...] = (MAILTO_DEFAULT,)


@dataclass(frozen=True)
class Failure:
    unit: str
    result: str = ""
    exit_code: str = ""  # $EXIT_CODE: exited, killed, dumped (or "")
    exit_status: str = ""  # $EXIT_STATUS: the number, or the signal's name without SIG
    invocation: str = ""
    source: str = "systemd"  # "systemd" ($MONITOR_*) or "properties"


def settings(env: Mapping[str, str]) -> Settings:
    """LOG_LINES and MAILTO from the environment.

    >>> settings({})
    Settings(lines=50, to=('root',))
    >>> settings({"LOG_LINES": "0", "MAILTO": "ops@example.org, root"})
    Settings(lines=0, to=('ops@example.org', 'root'))
    >>> settings({"LOG_LINES": "lots"})
    Traceback (most recent call last):
    ...
    journal_sendmail.errors.ConfigError: LOG_LINES='lots': not a whole number from 0 to 10000
    """
    text = env.get("LOG_LINES", str(LINES_DEFAULT)).strip()
    if not (text.isascii() and text.isdigit() and int(text) <= LINES_MAX):
        raise ConfigError(f"LOG_LINES={text!r}: not a whole number from 0 to {LINES_MAX}")
    to = tuple(a for a in env.get("MAILTO", MAILTO_DEFAULT).replace(",", " ").split(" ") if a)
    for addr in to:
        if addr.startswith("-") or not addr.isprintable() or not addr.isascii() or '"' in addr:
            raise ConfigError(f"MAILTO: {addr!r} is not an address")
    if not to:
        raise ConfigError("MAILTO is empty: no one to mail")
    return Settings(int(text), to)


def valid_unit(name: str) -> bool:
    """A unit name's characters, and a sane length (systemd allows 255).

    >>> valid_unit("getty@tty1.service"), valid_unit("a b"), valid_unit("x\\nSubject: y"), valid_unit("")
    (True, False, False, False)
    """
    return 0 < len(name) <= 255 and _UNIT_CHARS.issuperset(name) and not name.startswith("-")


def strip_type(unit: str) -> str:
    """``%N`` of a unit: its name without the type.

    >>> strip_type("backup.service"), strip_type("getty@tty1.service"), strip_type("home.mount")
    ('backup', 'getty@tty1', 'home')
    """
    for suffix in UNIT_TYPES:
        if unit.endswith(suffix):
            return unit[: -len(suffix)]
    return unit


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(SYSTEMD_COLORS="0", SYSTEMD_PAGER="", SYSTEMD_LESS="")
    return subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60,
                          check=False)


def text(out: bytes) -> str:
    return out.decode("utf-8", "replace")


def show(unit: str, run: Runner, names: Sequence[str]) -> dict[str, str]:
    """``systemctl show`` of ``names``: property -> value."""
    p = run([SYSTEMCTL, "show", "--property=" + ",".join(names), "--", unit])
    props: dict[str, str] = {}
    for line in text(p.stdout).splitlines():
        key, eq, value = line.partition("=")
        if eq:
            props[key] = value
    return props


def resolve_unit(instance: str, run: Runner) -> str:
    """The unit an instance names: ``NAME.TYPE`` as it is when that unit is
    known (``%n`` of a mount, say), else ``NAME.service`` (``%N`` of a service)."""
    if instance.endswith(UNIT_TYPES):
        if show(instance, run, ("LoadState",)).get("LoadState", "not-found") != "not-found":
            return instance
    return instance + ".service"


def _exit_from_properties(props: Mapping[str, str]) -> tuple[str, str]:
    """($EXIT_CODE, $EXIT_STATUS) from ExecMainCode and ExecMainStatus."""
    code = _CLD.get(props.get("ExecMainCode", ""), "")
    status = props.get("ExecMainStatus", "")
    if code in ("killed", "dumped") and status.isdigit():
        import signal

        try:
            status = signal.Signals(int(status)).name.removeprefix("SIG")
        except ValueError:
            pass
    return (code, status) if code else ("", "")


def last_failed_invocation(unit: str, run: Runner) -> tuple[str, str]:
    """(invocation id, result) of PID 1's last "Failed with result" entry for ``unit``."""
    p = run([JOURNALCTL, "--no-pager", "-q", "-o", "json", "-n", "1", "--output-fields=INVOCATION_ID,UNIT_RESULT",
             f"MESSAGE_ID={MSG_UNIT_FAILURE_RESULT}", f"UNIT={unit}", "_PID=1", "_UID=0"])
    for line in reversed(text(p.stdout).splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        inv, result = entry.get("INVOCATION_ID"), entry.get("UNIT_RESULT")
        return (inv if isinstance(inv, str) else "", result if isinstance(result, str) else "")
    return "", ""


def find_failure(instance: str, env: Mapping[str, str], run: Runner) -> Failure:
    """What failed, and which run of it: from $MONITOR_* when they name this
    instance's unit, else from the unit's properties and the journal."""
    monitor = env.get("MONITOR_UNIT", "")
    if monitor and valid_unit(monitor) and instance in (monitor, strip_type(monitor)):
        return Failure(monitor, env.get("MONITOR_SERVICE_RESULT", ""), env.get("MONITOR_EXIT_CODE", ""),
                       env.get("MONITOR_EXIT_STATUS", ""), env.get("MONITOR_INVOCATION_ID", ""))
    unit = resolve_unit(instance, run)
    props = show(unit, run, ("Result", "ExecMainCode", "ExecMainStatus", "InvocationID"))
    invocation, result = last_failed_invocation(unit, run)
    code, status = _exit_from_properties(props)
    return Failure(unit, props.get("Result", "") or result, code, status,
                   invocation or props.get("InvocationID", ""), source="properties")


def exit_text(f: Failure) -> str:
    """The subject's parenthesis: the exit status or the signal.

    >>> exit_text(Failure("a", "exit-code", "exited", "3")), exit_text(Failure("a", "signal", "killed", "KILL"))
    ('status 3', 'SIGKILL')
    >>> exit_text(Failure("a", "core-dump", "dumped", "SEGV")), exit_text(Failure("a", "start-limit-hit"))
    ('SIGSEGV, core dumped', '')
    """
    if f.exit_code == "exited" and f.exit_status:
        return f"status {f.exit_status}"
    if f.exit_code in ("killed", "dumped") and f.exit_status:
        name = f.exit_status if f.exit_status.startswith("SIG") or f.exit_status.isdigit() else "SIG" + f.exit_status
        return name + (", core dumped" if f.exit_code == "dumped" else "")
    return ""


def subject(host: str, f: Failure) -> str:
    """``[host] UNIT failed: RESULT (exit status or signal)``.

    >>> subject("web1", Failure("backup.service", "exit-code", "exited", "3"))
    '[web1] backup.service failed: exit-code (status 3)'
    """
    why = exit_text(f)
    return f"[{host}] {f.unit} failed: {f.result or 'unknown result'}" + (f" ({why})" if why else "")


def _safe(value: str) -> str:
    """A header value: one line of printable ASCII (systemd's values are)."""
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in value)[:200]


def log_command(invocation: str, lines: int) -> list[str]:
    """journalctl for the invocation's last ``lines`` lines: its processes'
    (``_SYSTEMD_INVOCATION_ID``, journald's word) and PID 1's about it."""
    return [JOURNALCTL, "--no-pager", "-q", f"--lines={lines}", f"_SYSTEMD_INVOCATION_ID={invocation}", "+",
            f"INVOCATION_ID={invocation}", "_PID=1"]


def compose(host: str, f: Failure, s: Settings, run: Runner, date: str) -> bytes:
    """The whole mail, headers and body."""
    status_cmd = [SYSTEMCTL, "status", "--no-pager", "--full", "--lines=0", "--", f.unit]
    status = text(run(status_cmd).stdout).rstrip("\n")
    body = [f"{f.unit} failed on {host}: {f.result or 'unknown result'}"
            + (f" ({exit_text(f)})" if exit_text(f) else "") + ".", ""]
    body += ["$ " + " ".join(status_cmd[:-2] + status_cmd[-1:]), status or "(systemctl status said nothing)", ""]
    if f.invocation and s.lines:
        # journald reads what it has queued (the unit's last output lines
        # among it) before it answers a sync: then the query sees them
        run([JOURNALCTL, "--sync"])
        cmd = log_command(f.invocation, s.lines)
        p = run(cmd)
        logged = text(p.stdout).rstrip("\n")
        body += [f"The last {s.lines} journal lines of the failed run (invocation {f.invocation}):",
                 "$ " + " ".join(cmd), logged or "(no journal lines)"]
        if p.returncode != 0 and p.stderr:
            body.append(f"(journalctl: {text(p.stderr).strip()})")
    elif s.lines:
        body.append("No invocation id for the failed run: its journal lines cannot be told from other runs'.")
    headers = [
        ("From", "root (journal-mail-failure)"),
        ("To", ", ".join(s.to)),
        ("Subject", _safe(subject(host, f))),
        ("Date", date),
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", "8bit"),
        ("X-Failed-Unit", _safe(f.unit)),
        ("X-Failed-Result", _safe(f.result)),
        ("X-Failed-Exit-Code", _safe(f.exit_code)),
        ("X-Failed-Exit-Status", _safe(f.exit_status)),
        ("X-Failed-Invocation-ID", _safe(f.invocation)),
    ]
    head = "".join(f"{k}: {v}\n" for k, v in headers if v)
    return (head + "\n" + "\n".join(body) + "\n").encode("utf-8", "replace")


def say(line: str) -> None:
    try:
        sys.stderr.write(f"{PROG}: {line}\n")
        sys.stderr.flush()
    except OSError:
        pass


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, run: Runner = _run,
         sendmail: str = SENDMAIL) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if env is None else env
    if args in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return EX_OK
    if len(args) != 1 or not valid_unit(args[0]):
        sys.stderr.write(USAGE)
        return EX_USAGE
    instance = args[0]
    try:
        s = settings(environ)
    except ConfigError as e:
        say(f"bad setting: {e.reason}")
        return e.code
    from email.utils import formatdate

    f = find_failure(instance, environ, run)
    host = socket.gethostname()
    mail = compose(host, f, s, run, formatdate(localtime=True))
    p = subprocess.run([sendmail, "-i", "--", *s.to], input=mail, capture_output=True, timeout=120, check=False)
    if p.stderr:
        say(text(p.stderr).strip())
    print(f"{PROG}: mail about {f.unit} (invocation {f.invocation or 'unknown'}) stored for {', '.join(s.to)}"
          if p.returncode == 0 else f"{PROG}: sendmail exited with {p.returncode}", flush=True)
    # The mailer of a failed mailer never fails itself: no chain of them,
    # whatever the drop-ins say (the template's own drop-in already masks
    # the global one).
    if strip_type(f.unit).startswith(TEMPLATE):
        return EX_OK
    return p.returncode if p.returncode >= 0 else EX_SOFTWARE


if __name__ == "__main__":
    raise SystemExit(main())
