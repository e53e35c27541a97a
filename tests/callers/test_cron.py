"""cron: a @reboot job's output, mailed to two addresses in one MAILTO."""

from __future__ import annotations

import os
import quopri
import socket
import subprocess
from collections.abc import Callable

from kit.callers import SENDMAIL, User, argv, body, private_dir, private_file, values, wait_exit

OUTPUT = b"first line\n.\nafter a lone dot\n8-bit: \xe9\xfc\xff end\n"
JOB = r"printf 'first line\n.\nafter a lone dot\n8-bit: \351\374\377 end\n'"


def test_cron_reboot_job_mail(user: User, mails: Callable[..., list[dict]]) -> None:
    with private_dir("/etc/cron.d"), private_file("/etc/crontab", "# empty for the test\n"):
        with open("/etc/cron.d/jsm-test", "w") as f:
            f.write(f"MAILTO=a@x,b@y\n@reboot {user.name} {JOB}\n")
        if os.path.exists("/run/crond.reboot"):  # private /run: cron thinks the system just booted
            os.unlink("/run/crond.reboot")
        cron = subprocess.Popen(["/usr/sbin/cron", "-f"], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        try:
            (entry,) = mails(1)
        finally:
            wait_exit(cron)

    assert argv(entry) == [SENDMAIL, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "a@x,b@y"]
    assert sorted(values(entry, "MAIL_RCPT")) == [b"a@x", b"b@y"]
    assert entry["MAIL_RCPTS"] == b"a@x,b@y"
    assert entry["MAIL_ENVELOPE_FROM"] == user.name.encode()
    assert entry["MAIL_FULL_NAME"] == b"CronDaemon"
    assert entry["MAIL_BODY_TYPE"] == b"8BITMIME"
    assert entry["MAIL_TO"].replace(b" ", b"") == b"a@x,b@y"  # the header, decoded
    host = socket.gethostname().encode()
    assert entry["MAIL_SUBJECT"] == b"Cron <" + user.name.encode() + b"@" + host + b"> " + JOB.encode()
    sent = body(entry["MAIL_RAW"])
    head = b"\n" + entry["MAIL_RAW"][: -len(sent)].lower()
    if b"\ncontent-transfer-encoding: quoted-printable" in head:
        sent = quopri.decodestring(sent)  # trixie's cron (3.0pl1-197 and later) sends its bodies so
    assert sent == OUTPUT
    assert "MAIL_AFTER_DOT" not in entry  # -i: the lone dot is data
    assert entry["MAIL_CALLER_COMM"] == b"cron"
    assert entry["_UID"] == str(user.uid).encode()
