"""sudo: `Defaults mail_always, mailto=...` mails every use, twice: when the
command is allowed and when it exits (with its status).  Both are stored."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

from kit.callers import SENDMAIL, User, argv, body, private_dir, values

RCPT = "sec@example.org"


def test_sudo_mail_always(user: User, mails: Callable[..., list[dict]]) -> None:
    sudoers = f'Defaults mail_always, mailto="{RCPT}"\n{user.name} ALL=(root) NOPASSWD: /bin/echo\n'
    with private_dir("/etc/sudoers.d") as d:
        (d / "jsm-test").write_text(sudoers)
        (d / "jsm-test").chmod(0o440)
        try:
            run = user.run(["/usr/bin/sudo", "-n", "/bin/echo", "hello"], env={"PATH": "/usr/bin:/bin"})
            assert (run.returncode, run.stdout) == (0, b"hello\n"), run.stderr
            entries = mails(2)
        finally:
            (d / "jsm-test").unlink()

    host = socket.gethostname()
    stamp = rb"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d"  # sudo's own time stamp: "Nov 21 08:30:00"
    line = re.escape(f"{host} : ".encode()) + stamp + re.escape(
        f" : {user.name} : PWD={user.home} ; USER=root ; COMMAND=/bin/echo hello".encode()
    )
    bodies = sorted(body(e["MAIL_RAW"]) for e in entries)
    assert re.fullmatch(line + rb"\n\n", bodies[0]), bodies
    assert re.fullmatch(line + rb" ; EXIT=0\n\n", bodies[1]), bodies
    for entry in entries:
        assert argv(entry) == [SENDMAIL, "-t"]
        assert values(entry, "MAIL_RCPT") == [RCPT.encode()]
        assert entry["MAIL_TO"] == RCPT.encode()
        assert entry["MAIL_FROM"] == user.name.encode()  # sudo writes the invoking user as From:
        assert entry["MAIL_ENVELOPE_FROM"] == user.name.encode()  # no -f: the login of the uid
        assert entry["MAIL_SUBJECT"] == f"*** SECURITY information for {host} ***".encode()
        assert entry["MAIL_AUTO_SUBMITTED"] == b"auto-generated"
        assert entry["MAIL_CALLER_COMM"] == b"sudo"
        assert entry["_UID"] == str(user.uid).encode()  # sudo runs its mailer as the invoking user
        assert "MAIL_AFTER_DOT" not in entry
