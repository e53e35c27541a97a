"""A bad configuration never costs a mail: the mail is stored with built-in
defaults for the bad keys, stderr says so in one line, the entry carries
MAIL_CONFIG_ERROR, and an entry of its own (c66f6fa4…, PRIORITY 3) names the
key.  ``--check-config`` is the strict check (0 or 78)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kit.harness import Journald, one
from kit.support import run_sendmail

from journal_sendmail.record import MSG_CONFIG, MSG_MAIL

MAIL = f"MESSAGE_ID={MSG_MAIL}"
CONFIG = f"MESSAGE_ID={MSG_CONFIG}"
SPOOL = Path("/var/spool/journal-sendmail")

BAD = [
    pytest.param("timeout = banana\n", ["timeout"], id="timeout-banana"),
    pytest.param("part_size = lots\n", ["part_size"], id="part-size"),
    pytest.param("colour = blue\npriority = loud\n", ["colour", "priority"], id="two-keys"),
    pytest.param("socket = relative\n", ["socket"], id="socket"),
]


@pytest.mark.parametrize(("text", "keys"), BAD)
def test_a_bad_key_still_stores_the_mail(journald: Journald, sendmail: Any, config_file: Any, text: str,
                                         keys: list[str]) -> None:
    env = config_file("identifier = kept\n" + text)
    p = sendmail(["root"], b"Subject: still here\n\nx\n", env=env)
    assert p.returncode == 0
    assert p.stderr.count(b"\n") == 1 and p.stderr.startswith(b"journal-sendmail: ")
    assert all(k.encode() in p.stderr for k in keys)
    mail = journald.entries(MAIL, wait_for=1)
    assert len(mail) == 1
    e = mail[0]
    assert one(e["MAIL_SUBJECT"]) == b"still here"
    assert one(e["SYSLOG_IDENTIFIER"]) == b"kept"  # the good key is kept
    assert all(k.encode() in one(e["MAIL_CONFIG_ERROR"]) for k in keys)
    errors = journald.entries(CONFIG, wait_for=1)
    assert len(errors) == 1
    err = errors[0]
    assert one(err["PRIORITY"]) == b"3"
    key_values = err["MAIL_CONFIG_KEY"] if isinstance(err["MAIL_CONFIG_KEY"], list) else [err["MAIL_CONFIG_KEY"]]
    assert sorted(key_values) == sorted(k.encode() for k in keys)
    assert one(err["MAIL_CONFIG_ERROR"]) == one(e["MAIL_CONFIG_ERROR"])


def test_a_good_configuration_writes_no_error(journald: Journald, sendmail: Any, config_file: Any) -> None:
    p = sendmail(["root"], b"Subject: fine\n\nx\n", env=config_file("timeout = 2\n"))
    assert (p.returncode, p.stderr) == (0, b"")
    e = journald.entries(MAIL, wait_for=1)[0]
    assert "MAIL_CONFIG_ERROR" not in e
    assert journald.entries(CONFIG) == []


def test_an_unreadable_file_still_stores_the_mail(journald: Journald, sendmail: Any, tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_bytes(b"[journal-sendmail]\nidentifier = \xff\n")
    r = sendmail(["root"], b"Subject: s\n\nx\n", env={"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(p)})
    assert r.returncode == 0 and b"cannot read" in r.stderr
    assert b"cannot read" in one(journald.entries(MAIL, wait_for=1)[0]["MAIL_CONFIG_ERROR"])


def test_smtp_session_with_a_bad_key(journald: Journald, sendmail: Any, config_file: Any) -> None:
    dialogue = b"HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: smtp\r\n\r\nx\r\n.\r\nQUIT\r\n"
    p = sendmail(["-bs"], dialogue, env=config_file("timeout = banana\n"))
    assert p.returncode == 0 and b"250" in p.stdout
    e = journald.entries(MAIL, wait_for=1)[0]
    assert b"timeout" in one(e["MAIL_CONFIG_ERROR"])
    assert len(journald.entries(CONFIG, wait_for=1)) == 1


def test_flusher_keeps_working_with_a_bad_key(journald: Journald, bindir: Path, config_file: Any) -> None:
    subprocess.run(["find", str(SPOOL), "-mindepth", "1", "-delete"], check=True)
    os.chmod(SPOOL, 0o1733)
    journald.stop()
    os.unlink("/run/systemd/journal/socket")
    p = run_sendmail(bindir, ["root"], b"Subject: spooled\n\nx\n")
    assert p.returncode == 0 and os.listdir(SPOOL)
    journald.start()
    q = run_sendmail(bindir, ["-q"], env=config_file("timeout = banana\n"))
    assert q.returncode == 0 and b"timeout" in q.stderr
    assert [one(e["MAIL_SUBJECT"]) for e in journald.entries(MAIL, wait_for=1)] == [b"spooled"]
    assert [n for n in os.listdir(SPOOL) if not n.startswith(".")] == []
    assert len(journald.entries(CONFIG, wait_for=1)) == 1


@pytest.mark.parametrize(("text", "code", "out"), [
    pytest.param("timeout = 3\n", 0, b"ok", id="good"),
    pytest.param("timeout = banana\n", 78, b"timeout", id="bad-value"),
    pytest.param("colour = blue\n", 78, b"colour", id="unknown-key"),
])
def test_check_config_file(bindir: Path, tmp_path: Path, text: str, code: int, out: bytes) -> None:
    f = tmp_path / "c.conf"
    f.write_text("[journal-sendmail]\n" + text)
    p = run_sendmail(bindir, ["--check-config", str(f)], name="journal-sendmail")
    assert p.returncode == code
    assert out in (p.stdout if code == 0 else p.stderr)
    assert str(f).encode() in p.stdout + p.stderr


def test_check_config_reads_the_configured_file(bindir: Path, config_file: Any, tmp_path: Path) -> None:
    assert run_sendmail(bindir, ["--check-config"], env=config_file("timeout = x\n")).returncode == 78
    assert run_sendmail(bindir, ["--check-config"], env=config_file("timeout = 2\n")).returncode == 0
    missing = run_sendmail(bindir, ["--check-config", str(tmp_path / "nope.conf")])
    assert missing.returncode == 78 and b"no such configuration file" in missing.stderr
    assert run_sendmail(bindir, ["--check-config", "a", "b"]).returncode == 64
