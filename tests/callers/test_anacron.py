"""anacron: a job whose output has a lone "." line; anacron calls sendmail
without -i, so the dot ends the message, and what follows must be kept too."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from kit.callers import SENDMAIL, argv, body

OUTPUT = b"before the dot\n.\nafter the dot\nlast line\n"


def test_anacron_job_mail(tmp_path: Path, mails: Callable[..., list[dict]]) -> None:
    output = tmp_path / "output"
    output.write_bytes(OUTPUT)  # anacron eats the backslashes of printf '\n'
    tab = tmp_path / "anacrontab"
    tab.write_text(f"SHELL=/bin/sh\nPATH=/usr/bin:/bin\nMAILTO=ops@example.org\n1 0 jsm.test cat {output}\n")
    spool = tmp_path / "spool"
    spool.mkdir()
    run = subprocess.run(
        ["/usr/sbin/anacron", "-d", "-f", "-n", "-t", str(tab), "-S", str(spool)],
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    (entry,) = mails(1)

    assert argv(entry) == [SENDMAIL, "-FAnacron", "-odi", "ops@example.org"]
    assert entry["MAIL_RCPT"] == b"ops@example.org"
    assert entry["MAIL_ENVELOPE_FROM"] == b"root"
    assert entry["MAIL_SUBJECT"] == f"Anacron job 'jsm.test' on {socket.gethostname()}".encode()
    # without -i the lone dot ends the message; nothing after it is lost
    assert body(entry["MAIL_RAW"]) == b"before the dot\n"
    assert entry["MAIL_AFTER_DOT"] == b"after the dot\nlast line\n"
    assert body(entry["MAIL_RAW"]) + b".\n" + entry["MAIL_AFTER_DOT"] == OUTPUT
    assert entry["MAIL_CALLER_COMM"] == b"anacron"
    assert entry["_UID"] == b"0"
