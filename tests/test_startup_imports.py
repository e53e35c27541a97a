"""The start-up path of a plain cron mail stays cheap: it imports none of the
modules that cost more than the interpreter's own start-up (DESIGN.md §3),
with the provenance wait and MAIL_CALLER_UNIT in place."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import Journald

# os and re (~1 ms each under -S), email (~20 ms), dataclasses and typing
# (~16 ms), socket (~7 ms: enum, selectors), the reader wing, python-systemd.
FORBIDDEN = ("os", "re", "email", "dataclasses", "typing", "socket", "enum", "configparser", "systemd",
             "journal_sendmail.reader", "journal_sendmail.reader_cli", "journal_sendmail.query",
             "journal_sendmail.render")
CRON = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]
MESSAGE = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> run-parts /etc/cron.hourly\n"
           b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
           b"X-Cron-Env: <SHELL=/bin/sh>\n\nrun-parts: /etc/cron.hourly/backup exited with return code 1\n")


def test_a_cron_mail_imports_nothing_costly(journald: Journald, bindir: Path) -> None:
    p = subprocess.run(["/usr/bin/python3", "-I", "-S", "-X", "importtime", str(bindir / "journal-sendmail"), *CRON],
                       input=MESSAGE, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.decode().splitlines()
                if line.startswith("import time:")}
    assert "journal_sendmail.journal" in imported  # the measurement saw the whole path
    costly = sorted(m for m in imported if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN)
    assert costly == []
