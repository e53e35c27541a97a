"""mail(1): bsd-mailx and GNU mailutils, `mail -s ... -c ... -b ... to`, run by
a user; every recipient, Bcc included, is an envelope recipient."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from kit.callers import SENDMAIL, USER, User, argv, body, values

SUBJECT = "disk report: sda ok"
BODY = "line one\nline two with ünïcödé\nlast line\n".encode()
TO, CC, BCC = "to@example.org", "cc@example.org", "bcc@example.org"

MAILERS = [
    pytest.param(
        ["/usr/bin/bsd-mailx", "-s", SUBJECT, "-c", CC, "-b", BCC, TO],
        [SENDMAIL, "-i", "-t"],
        "{}",
        b"bsd-mailx",
        id="bsd-mailx",
    ),
    # GNU mail has no -c/-b: its way to a Cc and a Bcc is -a (--append) HEADER
    pytest.param(
        ["/usr/bin/mail.mailutils", "-s", SUBJECT, "-a", f"Cc: {CC}", "-a", f"Bcc: {BCC}", TO],
        [SENDMAIL, "-oi", "-f", f"{USER}@{socket.gethostname()}", "-t"],
        "<{}>",  # how mailutils writes the addresses in To, Cc and Bcc
        b"mail.mailutils",
        id="mailutils",
    ),
]


@pytest.mark.parametrize(("command", "expected_argv", "written", "comm"), MAILERS)
def test_mail_command(
    command: list[str],
    expected_argv: list[str],
    written: str,
    comm: bytes,
    user: User,
    mails: Callable[..., list[dict]],
) -> None:
    run = user.run(command, input=BODY)
    assert run.returncode == 0, run.stderr
    (entry,) = mails(1)
    assert argv(entry) == expected_argv
    assert entry["MAIL_BCC"] == written.format(BCC).encode()
    assert entry["MAIL_CALLER_COMM"] == comm
    assert sorted(values(entry, "MAIL_RCPT")) == sorted(v.encode() for v in (TO, CC, BCC))
    assert entry["MAIL_SUBJECT"] == SUBJECT.encode()
    assert entry["MAIL_TO"] == written.format(TO).encode()
    assert entry["MAIL_CC"] == written.format(CC).encode()
    assert body(entry["MAIL_RAW"]) == BODY
    assert entry["MAIL_ENVELOPE_FROM"].split(b"@")[0] == user.name.encode()
    assert entry["_UID"] == str(user.uid).encode()
