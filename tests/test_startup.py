"""The start-up budget of a cron mail: what sendmail imports on that path.

Every cron job's mail pays sendmail's start-up, so the modules of a plain
cron mail's path use ``posix``, ``_socket`` and hand-written checks instead
of ``os`` and ``re`` (~1 ms each under python3 -S), ``email`` (~20 ms),
``dataclasses`` and ``typing`` (~16 ms), ``socket`` (~7 ms: enum, selectors),
``configparser`` and python-systemd, and never the reader wing; nor
``__future__`` (0.56 million instructions, 3% of the interpreter's own
start-up: these modules quote the annotations that name types imported
only for type checkers instead of ``from __future__ import annotations``).  This test
holds that budget, with the provenance wait and MAIL_CALLER_UNIT in place:
it runs the program under test with ``-X importtime`` on a cron mail and
fails when one of them is imported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from kit.harness import Journald, one

from journal_sendmail.record import MSG_MAIL

FORBIDDEN = ("__future__", "os", "re", "email", "dataclasses", "typing", "socket", "enum", "configparser", "systemd",
             "hashlib", "_hashlib",  # OpenSSL: 3 ms; the C sha256 (_sha256, 3.12+: _sha2) instead
             "journal_sendmail.reader")
CRON_MAIL = (
    b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> /usr/local/bin/backup\n"
    b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
    b"X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\nX-Cron-Env: <LOGNAME=root>\n\n"
    b"backup: copied 60 files\n"
)


def imported(importtime_stderr: str) -> list[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = []
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.append(name)
    return names


def forbidden(names: list[str]) -> list[str]:
    """
    >>> forbidden(["posix", "os", "email.parser", "journal_sendmail.reader.cli", "errno", "re"])
    ['os', 'email.parser', 'journal_sendmail.reader.cli', 're']
    """
    return [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]


def test_a_cron_mail_imports_nothing_expensive(journald: Journald, bindir: Path) -> None:
    program = str((bindir / "journal-sendmail").resolve())
    p = subprocess.run(
        ["/usr/bin/python3", "-X", "importtime", "-I", "-S", program, "-FCronDaemon", "-i", "-B8BITMIME",
         "-oem", "root"],
        input=CRON_MAIL, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    names = imported(p.stderr.decode())
    assert "journal_sendmail.cli" in names and "journal_sendmail.deliver" in names, names  # the path was measured
    assert forbidden(names) == [], names
    stored = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [one(e["MAIL_RAW"]) for e in stored] == [CRON_MAIL]


def test_the_program_runs_isolated_as_its_shebang_says(journald: Journald, bindir: Path) -> None:
    """Run as cron runs it (through its "#!/usr/bin/python3 -IS" line), the
    program ignores PYTHON* variables: -I is in effect.  dh-python of trixie
    and later rewrote the line to "#! /usr/bin/python3" (site imported, the
    environment read: 1.66x instead of 1.4x on a cron mail) unless
    debian/rules says --no-shebang-rewrite; installed, this checks the
    package of the release it runs on."""
    program = (bindir / "journal-sendmail").resolve()
    assert program.read_text().splitlines()[0] == "#!/usr/bin/python3 -IS"
    p = subprocess.run(
        [str(program), "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], input=CRON_MAIL, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPROFILEIMPORTTIME": "1", "PYTHONVERBOSE": "1"}, timeout=60,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert b"import time:" not in p.stderr and b"import " not in p.stderr, p.stderr.decode()[-2000:]
    journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
