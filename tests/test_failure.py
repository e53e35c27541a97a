"""failure-mail in process: which run failed (systemd's $MONITOR_* or the
unit's properties), the mail it composes, and that the sender records its
X-Failed-* headers as MAIL_FAILED_* fields (booted: tests/host/test_failure.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from kit.harness import Journald, one

from journal_sendmail import failure, headers
from journal_sendmail.record import MSG_MAIL

FAILED = "0123456789abcdef0123456789abcdef"
RESTARTED = "fedcba9876543210fedcba9876543210"
MONITOR = {"MONITOR_UNIT": "backup.service", "MONITOR_INVOCATION_ID": FAILED, "MONITOR_SERVICE_RESULT": "exit-code",
           "MONITOR_EXIT_CODE": "exited", "MONITOR_EXIT_STATUS": "3"}


class FakeSystem:
    """systemctl and journalctl as a host answers them: ``backup.service``
    failed in run FAILED and runs again as RESTARTED (Restart=)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        cmd = list(cmd)
        self.calls.append(cmd)
        out = b""
        if cmd[:2] == ["systemctl", "show"]:
            unit = cmd[-1]
            props = {"LoadState": "loaded" if unit in ("backup.service", "home.mount") else "not-found",
                     "Result": "signal", "ExecMainCode": "2", "ExecMainStatus": "9", "InvocationID": RESTARTED}
            wanted = cmd[2].removeprefix("--property=").split(",")
            out = "".join(f"{k}={props[k]}\n" for k in wanted if k in props).encode()
        elif cmd[:2] == ["systemctl", "status"]:
            out = f"× {cmd[-1]} - Nightly backup\n     Active: failed (Result: exit-code)\n".encode()
        elif cmd == ["journalctl", "--sync"]:
            pass
        elif cmd[0] == "journalctl" and "-o" in cmd:  # PID 1's last "Failed with result" entry
            assert f"UNIT={'backup.service'}" in cmd and "_PID=1" in cmd, cmd
            out = json.dumps({"INVOCATION_ID": FAILED, "UNIT_RESULT": "signal"}).encode() + b"\n"
        elif cmd[0] == "journalctl":
            out = f"Dec 03 18:00:00 web1 backup[42]: disk full (run {cmd[4].split('=')[1][:8]})\n".encode()
        return subprocess.CompletedProcess(cmd, 0, out, b"")


def test_systemd_names_the_failed_run_even_when_the_unit_runs_again() -> None:
    sys_ = FakeSystem()
    f = failure.find_failure("backup", MONITOR, sys_)
    assert f == failure.Failure("backup.service", "exit-code", "exited", "3", FAILED)
    assert sys_.calls == []  # systemd said it all: no InvocationID of a later run asked for


def test_without_systemds_word_the_properties_and_pid1s_entry_decide() -> None:
    sys_ = FakeSystem()
    other = dict(MONITOR, MONITOR_UNIT="other.service")  # not this instance's unit: not taken
    f = failure.find_failure("backup", other, sys_)
    assert f == failure.Failure("backup.service", "signal", "killed", "KILL", FAILED, source="properties")
    assert failure.subject("web1", f) == "[web1] backup.service failed: signal (SIGKILL)"


def test_an_instance_with_a_type_is_that_unit_when_it_exists() -> None:
    sys_ = FakeSystem()
    assert failure.resolve_unit("home.mount", sys_) == "home.mount"
    assert failure.resolve_unit("backup", sys_) == "backup.service"
    assert failure.resolve_unit("gone.mount", sys_) == "gone.mount.service"


def test_the_mail_says_it_all_and_the_sender_records_the_facts() -> None:
    f = failure.find_failure("backup", MONITOR, FakeSystem())
    sys_ = FakeSystem()
    mail = failure.compose("web1", f, failure.Settings(lines=20), sys_, "Thu, 03 Dec 2026 18:00:00 +0000")
    head, _, body = mail.decode().partition("\n\n")
    assert "Subject: [web1] backup.service failed: exit-code (status 3)\n" in head + "\n"
    assert "× backup.service - Nightly backup" in body
    assert f"--lines=20 _SYSTEMD_INVOCATION_ID={FAILED} + INVOCATION_ID={FAILED} _PID=1" in body
    assert f"disk full (run {FAILED[:8]})" in body
    assert ["journalctl", "--sync"] in sys_.calls  # before the lines are read
    want = {"MAIL_FAILED_UNIT": "backup.service", "MAIL_FAILED_RESULT": "exit-code", "MAIL_FAILED_EXIT_CODE": "exited",
            "MAIL_FAILED_EXIT_STATUS": "3", "MAIL_FAILED_INVOCATION_ID": FAILED,
            "MAIL_AUTO_SUBMITTED": "auto-generated", "MAIL_TO": "root"}
    fast = headers.parse_fast(head.encode() + b"\n\n")
    assert fast is not None, "the mail takes the sender's fast path"
    slow = headers.parse_email(head.encode() + b"\n\n")
    for parsed in (fast, slow):
        assert {k: parsed.values.get(k) for k in want} == want


def test_no_invocation_no_lines_of_another_run() -> None:
    f = failure.Failure("backup.service", "start-limit-hit")
    body = failure.compose("web1", f, failure.Settings(), FakeSystem(), "x").decode()
    assert "cannot be told from other runs'" in body and "disk full" not in body
    assert "X-Failed-Invocation-ID" not in body and "Subject: [web1] backup.service failed: start-limit-hit\n" in body


@pytest.mark.parametrize("env, why", [
    ({"LOG_LINES": "-1"}, "LOG_LINES='-1'"), ({"LOG_LINES": "10001"}, "LOG_LINES='10001'"),
    ({"MAILTO": " , "}, "MAILTO is empty"), ({"MAILTO": "-oi"}, "MAILTO: '-oi'"),
    ({"MAILTO": "a\nb"}, "MAILTO: 'a\\nb'"),
])
def test_a_bad_setting_exits_78_naming_it(env: dict[str, str], why: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert failure.main(["backup"], env, FakeSystem(), sendmail="/bin/true") == 78
    assert why in capsys.readouterr().err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert failure.main([], {}, FakeSystem(), sendmail="/bin/true") == 64
    assert failure.main(["a\nSubject: x"], {}, FakeSystem(), sendmail="/bin/true") == 64
    assert failure.main(["--help"], {}, FakeSystem(), sendmail="/bin/true") == 0
    assert "LOG_LINES" in capsys.readouterr().out


def test_a_failed_mailer_never_fails_itself() -> None:
    env = dict(MONITOR, MONITOR_UNIT="journal-mail-failure@backup.service")
    assert failure.main(["journal-mail-failure@backup"], env, FakeSystem(), sendmail="/bin/false") == 0
    assert failure.main(["backup"], MONITOR, FakeSystem(), sendmail="/bin/false") == 1


def test_stored_through_sendmail_with_its_fields(journald: Journald, bindir: Path) -> None:
    env = dict(MONITOR, MAILTO="ops@example.org, root", LOG_LINES="7")
    assert failure.main(["backup"], env, FakeSystem(), sendmail=str(bindir / "sendmail")) == 0
    (e,) = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [one(v) for v in e["MAIL_RCPT"]] == [b"ops@example.org", b"root"]
    got = {k: one(e[k]).decode() for k in ("MAIL_FAILED_UNIT", "MAIL_FAILED_RESULT", "MAIL_FAILED_EXIT_CODE",
                                           "MAIL_FAILED_EXIT_STATUS", "MAIL_FAILED_INVOCATION_ID")}
    assert got == {"MAIL_FAILED_UNIT": "backup.service", "MAIL_FAILED_RESULT": "exit-code",
                   "MAIL_FAILED_EXIT_CODE": "exited", "MAIL_FAILED_EXIT_STATUS": "3",
                   "MAIL_FAILED_INVOCATION_ID": FAILED}
    assert one(e["MAIL_SUBJECT"]).decode().endswith("] backup.service failed: exit-code (status 3)")
    assert b"--lines=7 " in one(e["MAIL_RAW"])
