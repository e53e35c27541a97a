"""Mail in a journal namespace of its own: ``socket = /run/systemd/journal.mail/socket``
sends to ``systemd-journald mail``; ``journal-mail --namespace mail`` reads it,
and the system journal does not get it.  The namespace's journald.conf is the
one docs/fleet.md gives the admin, taken from there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import harness
from kit.fleet import MSG_MAIL, journal_mail, ok
from kit.support import ROOT, run_sendmail

NS = "mail"
SOCKET = f"/run/systemd/journal.{NS}/socket"
DOC = ROOT / "docs" / "fleet.md"


def documented(path: str) -> str:
    """The text of the fenced block that follows ``path`` in docs/fleet.md."""
    m = re.search(re.escape(path) + r"[^\n]*\n+```[a-z]*\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"docs/fleet.md has no block for {path}"
    return m.group(1)


@pytest.fixture
def etc_systemd(tmp_path: Path) -> Iterator[Path]:
    """/etc/systemd as it is, writable, for this test only (a bind mount in the private namespace)."""
    assert harness.in_private_namespace()
    copy = tmp_path / "etc-systemd"
    shutil.copytree("/etc/systemd", copy, symlinks=True)
    subprocess.run(["mount", "--bind", str(copy), "/etc/systemd"], check=True)
    try:
        yield copy
    finally:
        subprocess.run(["umount", "/etc/systemd"], check=True)


@pytest.fixture
def mail_journald(journald: harness.Journald, etc_systemd: Path) -> Iterator[harness.Journald]:
    """A ``systemd-journald mail`` with the documented journald@mail.conf, next to the system journald."""
    (etc_systemd / f"journald@{NS}.conf").write_text(documented(f"/etc/systemd/journald@{NS}.conf"))
    j = harness.Journald(namespace=NS)
    j.log.unlink(missing_ok=True)
    j.start()
    try:
        yield j
    finally:
        j.stop()
        subprocess.run(["find", "/var/log/journal", "-mindepth", "1", "-name", f"*.{NS}", "-prune",
                        "-exec", "rm", "-rf", "{}", "+"], check=True)


def test_mail_goes_to_its_namespace(mail_journald: harness.Journald, journald: harness.Journald,
                                    bindir: Path, config_file) -> None:  # type: ignore[no-untyped-def]
    line = documented("/etc/journal-sendmail.conf").strip().splitlines()[-1]
    assert line == f"socket = {SOCKET}"
    env = config_file(line + "\n")
    msg = b"From: cron@host\nTo: root\nSubject: nightly backup\n\n\xe9t\xe9 ok\n"
    p = run_sendmail(bindir, ["-v", "-i", "root"], msg, env=env)
    assert p.returncode == 0, p.stderr
    mail_id = re.search(rb"mail ([0-9a-f]{32})", p.stderr).group(1).decode()  # type: ignore[union-attr]

    stored = mail_journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [harness.one(e["MAIL_ID"]).decode() for e in stored] == [mail_id]
    assert harness.one(stored[0]["MAIL_RAW"]) == msg
    assert journald.entries(f"MESSAGE_ID={MSG_MAIL}") == [], "the mail went to the system journal too"

    # persistent, in /var/log/journal/<machine-id>.mail, as Storage=persistent says
    mid = Path("/etc/machine-id").read_text().strip()
    assert list(Path(f"/var/log/journal/{mid}.{NS}").glob("*.journal"))
    # journald understood every line of the documented configuration
    log = mail_journald.log.read_text()
    assert "journald@mail.conf" not in log, log

    listed = [json.loads(x) for x in ok(journal_mail("list", "--namespace", NS, "--json")).splitlines()]
    assert [r["mail_id"] for r in listed] == [mail_id]
    assert ok(journal_mail("show", "--namespace", NS, "--raw", mail_id)) == msg
    assert ok(journal_mail("list", "--json")) == b"", "journal-mail without --namespace reads the system journal"
