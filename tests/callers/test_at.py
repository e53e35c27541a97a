"""at: a job queued by a non-root user with `at now`, run by `atd -s` (the
queue once) and by `atd -f` (the daemon, as it runs in production)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest
from kit.callers import SENDMAIL, User, argv, body, private_dir, wait_exit

OUTPUT = b"at job output\n.\nafter a lone dot\n"
JOB = b"printf 'at job output\\n.\\nafter a lone dot\\n'\n"
DAEMON = 1  # at's spool belongs to daemon:daemon


@pytest.mark.parametrize("mode", ["-s", "-f"], ids=["atd-s-queue-once", "atd-f-daemon"])
def test_at_job_mail(mode: str, user: User, mails: Callable[..., list[dict]]) -> None:
    with private_dir("/var/spool/cron/atjobs", 0o1770, (DAEMON, DAEMON)), \
            private_dir("/var/spool/cron/atspool", 0o1770, (DAEMON, DAEMON)):
        seq = "/var/spool/cron/atjobs/.SEQ"  # as the package ships it
        with open(seq, "w") as f:
            f.write("0\n")
        os.chown(seq, DAEMON, DAEMON)
        os.chmod(seq, 0o600)
        queued = user.run(["/usr/bin/at", "now"], input=JOB)
        assert queued.returncode == 0, queued.stderr
        assert b"job " in queued.stderr
        atd = subprocess.Popen(["/usr/sbin/atd", mode], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        try:
            (entry,) = mails(1)
        finally:
            wait_exit(atd)

    assert argv(entry) == [SENDMAIL, "-i", user.name]
    assert entry["MAIL_RCPT"] == user.name.encode()
    assert entry["MAIL_ENVELOPE_FROM"] == user.name.encode()
    assert entry["MAIL_SUBJECT"].startswith(b"Output from your job ")
    assert body(entry["MAIL_RAW"]) == OUTPUT
    assert "MAIL_AFTER_DOT" not in entry
    if mode == "-f":
        assert entry["MAIL_CALLER_COMM"] == b"atd"
    else:
        # atd -s exits once it has forked the job: the job's sendmail is
        # usually orphaned by then, and its parent is PID 1 (or a subreaper)
        assert entry["MAIL_CALLER_COMM"] == b"atd" or entry["MAIL_CALLER_PID"] == b"1"
    assert entry["_UID"] == str(user.uid).encode()
