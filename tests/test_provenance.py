"""Provenance: the sender stays alive until journald has handled its entry,
so journald's trusted fields (_EXE, _CMDLINE, _SYSTEMD_UNIT) are there; and
MAIL_CALLER_UNIT from our own cgroup.  tests/host/ checks the same with
systemd as PID 1 and real units."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kit.harness import Journald, one

from journal_sendmail.submission import caller_fields, unit_of
from journal_sendmail.record import MSG_MAIL

MAIL = f"MESSAGE_ID={MSG_MAIL}"

CGROUPS = [
    ("0::/system.slice/cron.service\n", "cron.service"),
    ("0::/system.slice/apt-daily-upgrade.service\n", "apt-daily-upgrade.service"),
    ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-x.scope\n", "user@1000.service"),
    ("0::/user.slice/user-1000.slice/session-4.scope\n", "session-4.scope"),
    ("0::/system.slice/system-getty.slice/getty@tty1.service\n", "getty@tty1.service"),
    ("0::/machine.slice/systemd-nspawn@web.service/payload/system.slice/cron.service\n",
     "systemd-nspawn@web.service"),
    ("0::/init.scope\n", "init.scope"),
    ("0::/\n", None),
    ("0::/process_api/abc\n", None),
    ("", None),
    # cgroup v1 (hybrid): name=systemd names the unit, the unified line may be empty
    ("12:memory:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/\n", "cron.service"),
    ("1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n", "b.service"),
    ("4:memory:/system.slice/cron.service\n", None),  # not the systemd hierarchy
]


@pytest.mark.parametrize(("text", "unit"), CGROUPS, ids=[u or f"none-{i}" for i, (_, u) in enumerate(CGROUPS)])
def test_unit_of_cgroup(text: str, unit: str | None) -> None:
    assert unit_of(text) == unit


def test_caller_fields_read_the_unit_from_our_cgroup(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self/cgroup").write_text("0::/system.slice/cron.service\n")
    (tmp_path / "42").mkdir()
    (tmp_path / "42/comm").write_text("cron\n")
    out = caller_fields(ppid=42, proc=str(tmp_path))
    assert out == {"MAIL_CALLER_PID": "42", "MAIL_CALLER_COMM": "cron", "MAIL_CALLER_UNIT": "cron.service"}
    (tmp_path / "self/cgroup").write_text("0::/\n")
    assert "MAIL_CALLER_UNIT" not in caller_fields(ppid=42, proc=str(tmp_path))


def test_sender_waits_until_journald_has_handled_its_entry(
    journald: Journald, bindir: Path, config_file: Any
) -> None:
    """journald stopped while the mail is sent: the sender must still be
    there when journald runs again, or journald finds no /proc/PID to read
    _EXE and _CMDLINE from (without the wait, this entry has neither)."""
    env = config_file("timeout = 60\n")
    journald.pause()
    try:
        p = subprocess.Popen([str(bindir / "sendmail"), "-v", "root"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert p.stdin is not None
        p.stdin.write(b"Subject: who sent me?\n\nx\n")
        p.stdin.close()
        time.sleep(1.5)  # not an assertion: time for the sender to queue its entry and wait
        still_there = p.poll() is None
    finally:
        journald.resume()
    p.stdin = None  # closed above; communicate() must not flush it
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert still_there, "the sender exited before journald had handled its entry"
    entry = journald.entries(MAIL, wait_for=1)[0]
    assert one(entry["MAIL_SUBJECT"]) == b"who sent me?"
    assert one(entry["_EXE"]).startswith(b"/usr/bin/python3")
    assert b"sendmail" in one(entry["_CMDLINE"])
    assert one(entry["_PID"]) == str(p.pid).encode()


def test_stopped_journald_costs_the_timeout_not_a_hang(
    journald: Journald, bindir: Path, config_file: Any
) -> None:
    """The wait ends at the configured timeout: exit 0 (the entry is queued
    for journald, as before), and it is stored once journald runs again."""
    env = config_file("timeout = 1\n")
    journald.pause()
    try:
        p = subprocess.run([str(bindir / "sendmail"), "root"], input=b"Subject: queued\n\nx\n",
                           capture_output=True, env=env, timeout=30)
    finally:
        journald.resume()
    assert p.returncode == 0 and p.stderr == b""
    entries = journald.entries(MAIL, wait_for=1)
    assert [one(e["MAIL_SUBJECT"]) for e in entries] == [b"queued"]


def test_the_empty_datagram_makes_no_entry(journald: Journald, sendmail: Any) -> None:
    for i in range(5):
        assert sendmail(["root"], f"Subject: n{i}\n\nx\n".encode()).returncode == 0
    journald.sync()
    from kit.harness import read_entries

    ours = [e for e in read_entries() if e.get("_PID") and e.get("_COMM") != b"systemd-journal"
            and "SYSLOG_IDENTIFIER" in e and one(e["SYSLOG_IDENTIFIER"]) == b"sendmail"]
    assert len(ours) == 5
    assert all(one(e["MESSAGE_ID"]) == MSG_MAIL.encode() for e in ours)


SPOOL = Path("/var/spool/journal-sendmail")


def _start_sender(bindir: Path, env: dict[str, str], subject: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([str(bindir / "sendmail"), "-v", "root"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdin is not None
    p.stdin.write(f"Subject: {subject}\n\nx\n".encode())
    p.stdin.close()
    p.stdin = None
    return p


def _empty_spool() -> None:
    subprocess.run(["find", str(SPOOL), "-mindepth", "1", "-delete"], check=True)
    SPOOL.chmod(0o1733)


def test_an_entry_lost_by_a_killed_journald_is_spooled(journald: Journald, bindir: Path, config_file: Any) -> None:
    """journald took the entry and died before writing it (SIGKILL, a
    watchdog abort): the next journald takes the empty datagram as usual, so
    only the journal can tell; the sender asks it and spools the mail."""
    _empty_spool()
    env = config_file("timeout = 60\n")
    journald.kill()  # the socket (systemd's, here the harness's) stays
    p = _start_sender(bindir, env, "taken and lost")
    assert journald.held is not None
    journald.held.settimeout(30)
    taken = journald.held.recv(1 << 20)  # what a journald killed while handling it took
    assert b"taken and lost" in taken
    journald.start()  # the next journald: takes the empty datagram
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert b"spooled as" in err and b"restarted" in err, err
    assert journald.entries(MAIL) == []
    q = subprocess.run([str(bindir / "sendmail"), "-q"], capture_output=True, env={"PATH": "/usr/bin:/bin"})
    assert q.returncode == 0, q.stderr
    entries = journald.entries(MAIL, wait_for=1)
    assert [(one(e["MAIL_SUBJECT"]), one(e["MAIL_SPOOLED"])) for e in entries] == [(b"taken and lost", b"yes")]


def test_entries_queued_across_a_journald_restart_are_not_spooled(
    journald: Journald, bindir: Path, config_file: Any
) -> None:
    """Another journald answered, but it has the entry: nothing to spool."""
    _empty_spool()
    env = config_file("timeout = 60\n")
    journald.kill()
    p = _start_sender(bindir, env, "queued across a restart")
    time.sleep(1)  # not an assertion: time for the sender to queue its entry and wait
    journald.start()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0 and b"stored in the journal" in err, err
    entries = journald.entries(MAIL, wait_for=1)
    assert [one(e["MAIL_SUBJECT"]) for e in entries] == [b"queued across a restart"]
    assert [n for n in SPOOL.iterdir() if not n.name.startswith(".")] == []
