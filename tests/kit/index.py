"""The corpus of the index tests (tests/reader/test_index*.py): varied mails written
in-process with the project's own record, mail through the real sendmail, and the
answer with the index next to the scan's."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from pathlib import Path

from kit.reader import ok, run_jm, write_entry

INDEX_DIR = Path("/var/lib/journal-mail/index")  # a tmpfs of the test namespace (harness.PRIVATE_DIRS)
CALLERS = ["cron", "anacron", "sudo", "php-fpm8.2", "mdadm", "unattended-upgr"]
SENDERS = ["root", "www-data", "backup@example.org", "alice@example.com"]
RCPTS = ["root", "ops@example.org", "admin@example.org", "alice@example.com"]
WORDS = ["disk", "full", "DegradedArray", "backup", "done", "überfällig", "grüße", "reboot", "required", "ok"]
LONG_WORD = "needle-after-the-cut"


def fill(n: int, seed: int = 7) -> None:
    """``n`` varied mails written in-process with the project's own record and sender."""
    from journal_sendmail import body, headers, record

    rng = random.Random(seed)
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 12)))
        rcpts = rng.sample(RCPTS, rng.choice((1, 1, 2, 3)))
        subject = rng.choice([f"Cron <root@web1> job {i % 17}", f"{rng.choice(WORDS)} report {i % 5}",
                              "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Köln", f"DegradedArray event {i % 3}"])
        raw = (f"From: {rng.choice(SENDERS)}\nTo: {', '.join(rcpts)}\nSubject: {subject}\n"
               f"Content-Type: text/plain; charset=utf-8\n\nrun {i}: {words}\n").encode()
        hdrs = headers.parse(raw)
        text, _ = body.readable_text(raw, hdrs.content)
        comm = rng.choice(CALLERS)
        mail = record.Mail(
            mail_id=os.urandom(16).hex(), envelope_from=rng.choice(SENDERS), recipients=rcpts, headers=hdrs.values,
            size=len(raw), sha256=hashlib.sha256(raw).hexdigest(), argv=("sendmail", "-i", *rcpts),
            invoked_as="sendmail", text=text,
            caller={"MAIL_CALLER_PID": str(100 + i), "MAIL_CALLER_COMM": comm, "MAIL_CALLER_EXE": f"/usr/bin/{comm}"},
            extra=[("MAIL_SPOOLED", b"yes"), ("MAIL_SPOOL_UID", b"0"),
                   ("MAIL_SUBMITTED_AT", b"2026-11-20T10:00:00Z")] if i % 97 == 0 else [],
        )
        write_entry(record.mail_fields(mail, raw, 1))


def send(bindir: Path, args: list[str], data: bytes, prefix: list[str] | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*(prefix or []), str(bindir / "sendmail"), *args], input=data, capture_output=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


def both(*args: str) -> tuple[bytes, bytes]:
    """Output of journal-mail ARGS with the index and with --no-index."""
    return ok(run_jm(*args)), ok(run_jm(*args, "--no-index"))
