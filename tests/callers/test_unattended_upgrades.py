"""unattended-upgrades: its own summary-mail function, loaded from
/usr/bin/unattended-upgrade and called as the program would after a run."""

from __future__ import annotations

import email.charset
import json
import subprocess
from collections.abc import Callable
from email.message import Message

from kit.callers import SENDMAIL, argv, body

RCPT, SENDER = "admin@example.org", "uu@example.org"

# Runs in its own /usr/bin/python3, as root, as unattended-upgrade itself does.
SCRIPT = f"""
import importlib.machinery, importlib.util, io, json, sys
loader = importlib.machinery.SourceFileLoader("unattended_upgrade", "/usr/bin/unattended-upgrade")
uu = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(uu)
import apt_pkg
apt_pkg.init_config()
apt_pkg.config.set("Unattended-Upgrade::Mail", "{RCPT}")
apt_pkg.config.set("Unattended-Upgrade::Sender", "{SENDER}")
apt_pkg.config.set("Unattended-Upgrade::MailReport", "always")
seen = {{}}
real = uu._send_mail_using_sendmail
def spy(*args):
    seen["args"] = args
    seen["ret"] = real(*args)
    return seen["ret"]
uu._send_mail_using_sendmail = spy
uu.send_summary_mail(["pkg-a", "pkg-b"], True, "All upgrades installed", {{}}, [], [],
                     io.StringIO("Packages that will be upgraded: pkg-a pkg-b (Grüße)\\n"), "")
json.dump(seen, sys.stdout)
"""


def as_unattended_upgrades_writes_it(sender: str, to: str, subject: str, text: str) -> bytes:
    """The message _send_mail_using_sendmail builds (its own five steps)."""
    msg = Message()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Auto-Submitted"] = "auto-generated"
    charset = email.charset.Charset("utf-8")
    charset.body_encoding = email.charset.QP
    msg.set_payload(text, charset)
    return msg.as_string().encode()


def test_unattended_upgrades_summary_mail(mails: Callable[..., list[dict]]) -> None:
    run = subprocess.run(
        ["/usr/bin/python3", "-c", SCRIPT], capture_output=True, timeout=60, env={"PATH": "/usr/sbin:/usr/bin:/bin"}
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["ret"] == 0  # sendmail's exit code, which unattended-upgrades logs
    sender, to, subject, text = seen["args"]
    assert (sender, to) == (SENDER, RCPT)
    assert "pkg-a pkg-b (Grüße)" in text and "SUCCESS" in subject
    (entry,) = mails(1)

    assert argv(entry) == [SENDMAIL, "-oi", "-t"]
    assert entry["MAIL_RCPT"] == RCPT.encode()
    assert entry["MAIL_FROM"] == SENDER.encode()
    assert entry["MAIL_ENVELOPE_FROM"] == b"root"  # -t without -f: the uid's login
    assert entry["MAIL_SUBJECT"] == subject.encode()
    assert entry["MAIL_AUTO_SUBMITTED"] == b"auto-generated"
    assert entry["MAIL_RAW"] == as_unattended_upgrades_writes_it(sender, to, subject, text)
    assert b"Gr=C3=BC=C3=9Fe" in body(entry["MAIL_RAW"])  # quoted-printable on the wire
    assert entry["MAIL_TEXT"].decode() == text  # and decoded for reading
    assert entry["MAIL_CALLER_COMM"] == b"python3"
    assert entry["_UID"] == b"0"
