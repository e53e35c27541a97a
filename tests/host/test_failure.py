"""journal-mail-failure@.service on a booted host (systemd as PID 1): a unit
that fails mails its status and the last lines of the run that failed (not
an earlier run's, not a restarted one's); with the global drop-in linked as
the man page says, an unrelated unit's failure and a timer's failing service
mail too; a failing mailer starts no mailer.  The tests run in file order on
one booted host."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
from kit.host import Host

pytestmark = pytest.mark.slow

MAIL = "MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172"
FIELDS = ("MAIL_SUBJECT", "MAIL_RAW", "MAIL_RCPT", "MAIL_FAILED_UNIT", "MAIL_FAILED_RESULT", "MAIL_FAILED_EXIT_CODE",
          "MAIL_FAILED_EXIT_STATUS", "MAIL_FAILED_INVOCATION_ID", "MAIL_AUTO_SUBMITTED", "_SYSTEMD_UNIT", "_UID")
MAILER = "journal-mail-failure@"
# The one command of the man page and the README that switches it on for every service.
GLOBAL = ("mkdir -p /etc/systemd/system/service.d && ln -s"
          " /usr/share/journal-sendmail/service.d/journal-mail-failure.conf /etc/systemd/system/service.d/"
          " && systemctl daemon-reload")


@pytest.fixture(scope="module")
def host(boot) -> Host:  # type: ignore[no-untyped-def]
    return boot("jsm-failure")  # type: ignore[no-any-return]


def unit_file(host: Host, name: str, text: str) -> None:
    host.sh(f"cat > {shlex.quote('/etc/systemd/system/' + name)} <<'EOF'\n{text.strip()}\nEOF\nsystemctl daemon-reload")


def mailing_unit(host: Host, name: str, service: str, unit: str = "") -> None:
    """A unit of its own with OnFailure=journal-mail-failure@%N.service."""
    unit_file(host, name, f"[Unit]\nOnFailure={MAILER}%N.service\n{unit}[Service]\n{service.strip()}\n")


def mails_of(host: Host, unit: str, count: int = 1, timeout: float = 60) -> list[dict[str, Any]]:
    """The failure mails stored from the mailer instance of ``unit``."""
    instance = f"{MAILER}{unit.removesuffix('.service')}.service"
    return host.wait_entries(MAIL, f"_SYSTEMD_UNIT={instance}", count=count, timeout=timeout, fields=FIELDS)


def body(e: dict[str, Any]) -> str:
    raw = e["MAIL_RAW"]
    text = bytes(raw).decode() if isinstance(raw, list) else raw
    return text.split("\n\n", 1)[1]


def logged_lines(text: str) -> list[str]:
    """The journal lines the mail quotes: those after its journalctl command."""
    return text.split("\n$ journalctl ", 1)[1].splitlines()[1:]


def wait_state(host: Host, unit: str, state: str, timeout: float = 60) -> None:
    host.wait_for(f"test \"$(systemctl show -p ActiveState --value {shlex.quote(unit)})\" = {state}", timeout=timeout,
                  what=f"{unit} {state}")


def invocations(host: Host, marker: str) -> list[str]:
    """The invocation ids the test unit logged after ``marker`` (oldest first)."""
    out = host.sh(f"journalctl -o cat --grep={shlex.quote(marker)} --no-pager -q || true").stdout
    return re.findall(re.escape(marker) + r" ([0-9a-f]{32})", out)


def test_a_failed_unit_mails_its_status_and_the_last_lines_of_the_run_that_failed(host: Host) -> None:
    mailing_unit(host, "jsm-fail.service", """
Type=oneshot
ExecStart=/bin/sh -c 'if [ -e /run/jsm-fail-now ]; then echo "failing run $$INVOCATION_ID"; \\
    seq -f "line %%g" 1 60; exit 3; fi; echo "good run $$INVOCATION_ID"'
""")
    host.sh("systemctl start jsm-fail.service")  # an earlier run that succeeds: no mail, and its lines stay out
    host.sh("touch /run/jsm-fail-now; systemctl start jsm-fail.service || true")
    (good,), (failed,) = invocations(host, "good run"), invocations(host, "failing run")
    (e,) = mails_of(host, "jsm-fail.service")
    hostname = host.sh("hostname").stdout.strip()
    assert e["MAIL_SUBJECT"] == f"[{hostname}] jsm-fail.service failed: exit-code (status 3)", e
    assert (e["MAIL_FAILED_UNIT"], e["MAIL_FAILED_RESULT"], e["MAIL_FAILED_EXIT_CODE"], e["MAIL_FAILED_EXIT_STATUS"],
            e["MAIL_FAILED_INVOCATION_ID"]) == ("jsm-fail.service", "exit-code", "exited", "3", failed), e
    assert (e["_UID"], e["MAIL_RCPT"], e["MAIL_AUTO_SUBMITTED"]) == ("0", "root", "auto-generated"), e
    text = body(e)
    assert "jsm-fail.service" in text.split("$ systemctl status", 1)[1] and "Active: failed" in text, text
    lines = logged_lines(text)
    assert len(lines) == 50, lines
    assert f"failing run {failed}" not in text  # its first lines are older than the last 50
    assert any(line.endswith("line 60") for line in lines) and not any(line.endswith("line 5") for line in lines)
    assert any("jsm-fail.service: Main process exited, code=exited, status=3" in line for line in lines), lines
    # the run before is not the failed run (the status quotes the command line only)
    assert not any("good run" in line or good in line for line in lines), lines
    # the mail is stored, not sent; the mailer finished
    assert host.sh(f"systemctl show -p Result --value {MAILER}jsm-fail.service").stdout.strip() == "success"


def test_a_unit_that_restarts_mails_the_run_that_failed_not_the_next(host: Host) -> None:
    """Restart=: by the time the mailer runs, the unit may run again (systemd 254
    and later start OnFailure= before each restart; 252 once the restarts are
    given up).  Each mail shows the one run whose invocation id it names."""
    mailing_unit(host, "jsm-flap.service", """
ExecStart=/bin/sh -c 'echo "flap run $$INVOCATION_ID"; sleep 0.2; exit 4'
Restart=on-failure
RestartSec=300ms
""", unit="StartLimitIntervalSec=1min\nStartLimitBurst=3\n")
    host.sh("systemctl start jsm-flap.service")
    host.wait_for("test $(systemctl show -p SubState --value jsm-flap.service) = failed", what="jsm-flap to give up")
    runs = invocations(host, "flap run")
    assert len(runs) == 3, runs
    wait_state(host, f"{MAILER}jsm-flap.service", "inactive")
    mails = mails_of(host, "jsm-flap.service")
    assert mails, "no mail"
    for e in mails:
        seen = re.findall(r"flap run ([0-9a-f]{32})", body(e))
        assert seen == [e["MAIL_FAILED_INVOCATION_ID"]], (seen, runs, body(e))
        assert e["MAIL_FAILED_INVOCATION_ID"] in runs
        # The run's own exit; the unit's result is exit-code, or start-limit-hit for the
        # failure that exhausted StartLimitBurst (systemd 262, forky, says so of the last one).
        assert e["MAIL_FAILED_EXIT_STATUS"] == "4", e
        assert e["MAIL_FAILED_RESULT"] in ("exit-code", "start-limit-hit"), e
    print(f"\n3 runs of a Restart= unit: {len(mails)} failure mail(s)")


def test_a_template_instance_keeps_its_escaped_name(host: Host) -> None:
    mailing_unit(host, "jsm-inst@.service",
                 "Type=oneshot\nExecStart=/bin/sh -c 'echo \"instance %I failing\"; kill -KILL $$$$'")
    name = "jsm-inst@a\\x2db.service"
    host.sh(f"systemctl start {shlex.quote(name)} || true")
    (e,) = mails_of(host, name)
    assert e["MAIL_FAILED_UNIT"] == name and e["MAIL_SUBJECT"].endswith(f"{name} failed: signal (SIGKILL)"), e
    assert (e["MAIL_FAILED_EXIT_CODE"], e["MAIL_FAILED_EXIT_STATUS"]) == ("killed", "KILL"), e
    assert "instance a-b failing" in body(e), body(e)


def test_by_hand_it_finds_the_failed_run_without_systemds_help(host: Host) -> None:
    """Run by hand (no $MONITOR_*), the program takes the unit's properties and
    PID 1's last "Failed with result" entry: the same facts."""
    (before,) = mails_of(host, "jsm-fail.service")
    host.sh("LOG_LINES=5 MAILTO=ops@example.org /usr/libexec/journal-sendmail/failure-mail jsm-fail")
    e = host.wait_entries(MAIL, "MAIL_RCPT=ops@example.org", "MAIL_FAILED_UNIT=jsm-fail.service", count=1,
                          fields=FIELDS)[0]
    for f in ("MAIL_SUBJECT", "MAIL_FAILED_RESULT", "MAIL_FAILED_EXIT_CODE", "MAIL_FAILED_EXIT_STATUS",
              "MAIL_FAILED_INVOCATION_ID"):
        assert e[f] == before[f], f
    assert len(logged_lines(body(e))) == 5, body(e)
    bad = host.sh("LOG_LINES=lots /usr/libexec/journal-sendmail/failure-mail jsm-fail", check=False)
    assert bad.returncode == 78 and "LOG_LINES='lots'" in bad.stderr, bad


def test_the_global_drop_in_mails_every_services_failure_and_a_timers(host: Host) -> None:
    unit_file(host, "jsm-other.service", """
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo other unit breaks; exit 1'
""")
    host.sh("systemctl start jsm-other.service || true")
    wait_state(host, "jsm-other.service", "failed")
    assert not host.entries(MAIL, f"_SYSTEMD_UNIT={MAILER}jsm-other.service"), "mailed before the opt-in"
    host.sh(GLOBAL)
    assert host.sh("systemctl show -p OnFailure --value jsm-other.service").stdout.strip() == \
        f"{MAILER}jsm-other.service"
    host.sh("systemctl reset-failed jsm-other.service; systemctl start jsm-other.service || true")
    (e,) = mails_of(host, "jsm-other.service")
    assert e["MAIL_FAILED_UNIT"] == "jsm-other.service" and "other unit breaks" in body(e), e
    unit_file(host, "jsm-nightly.service", """
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo nightly job breaks; exit 2'
""")
    unit_file(host, "jsm-nightly.timer", """
[Timer]
OnActiveSec=1s
AccuracySec=1ms
""")
    host.sh("systemctl start jsm-nightly.timer")
    (e,) = mails_of(host, "jsm-nightly.service")
    assert e["MAIL_SUBJECT"].endswith("jsm-nightly.service failed: exit-code (status 2)"), e
    assert "nightly job breaks" in body(e) and "TriggeredBy:" in body(e), body(e)


def test_a_failing_mailer_starts_no_mailer(host: Host) -> None:
    """With the global drop-in on, the mailer is a service too: its own drop-in of
    the same name masks it there, so its failure starts nothing."""
    assert host.sh(f"systemctl show -p OnFailure --value {MAILER}x.service").stdout.strip() == ""
    bad = f"/etc/systemd/system/{MAILER}jsm-bad.service.d"
    host.sh(f"mkdir -p {bad}; printf '[Service]\\nEnvironment=LOG_LINES=many\\n' > {bad}/bad.conf")
    unit_file(host, "jsm-bad.service", """
[Service]
Type=oneshot
ExecStart=/bin/false
""")
    host.sh("systemctl start jsm-bad.service || true")
    wait_state(host, f"{MAILER}jsm-bad.service", "failed")
    status = host.sh(f"systemctl show -p ExecMainStatus --value {MAILER}jsm-bad.service").stdout.strip()
    assert status == "78", status
    log = host.sh(f"journalctl -u {MAILER}jsm-bad.service -o cat --no-pager").stdout
    assert "LOG_LINES='many'" in log, log
    # PID 1 triggers OnFailure= in the state change itself: by now it would have
    pid1 = host.sh(f"journalctl _PID=1 -o cat --no-pager --grep='{MAILER}(jsm-bad|{MAILER})' || true").stdout
    assert "Triggering OnFailure=" not in pid1 and f"{MAILER}{MAILER}" not in pid1, pid1
    units = host.sh(f"systemctl list-units --all --plain --no-legend '{MAILER}{MAILER}*'").stdout
    assert units.strip() == "", units
    assert not host.entries(MAIL, "MAIL_FAILED_UNIT=jsm-bad.service"), "a mail despite the bad setting"


def test_switched_off_again_no_mail(host: Host) -> None:
    host.sh("rm /etc/systemd/system/service.d/journal-mail-failure.conf; systemctl daemon-reload")
    assert host.sh("systemctl show -p OnFailure --value jsm-other.service").stdout.strip() == ""
    host.sh("systemctl reset-failed; systemctl start jsm-other.service || true")
    wait_state(host, "jsm-other.service", "failed")
    # PID 1 triggers OnFailure= in the state change itself: once for the run under the drop-in only
    pid1 = host.sh("journalctl _PID=1 -o cat --no-pager -u jsm-other.service").stdout
    assert pid1.count("Triggering OnFailure=") == 1, pid1
    assert len(host.entries(MAIL, f"_SYSTEMD_UNIT={MAILER}jsm-other.service")) == 1
