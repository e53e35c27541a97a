"""journal-upload to journal-remote over HTTPS, with certificates made as docs/fleet.md
makes them: the sender checks the log host against the CA; and what Debian
12's journal-remote does NOT check (the client's certificate), measured, so
that the documentation says what is true."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from kit.fleet import MSG_MAIL, REMOTE, UPLOAD, Host, mail_ids, remote_entries
from kit.net import free_port, make_ca
from kit.support import run_sendmail, wait_until


@pytest.mark.parametrize(
    "client, trust, arrives",
    [
        ("web1", "ca.pem", True),  # the documented setup
        ("web1", "other.pem", False),  # the sender refuses a log host its CA did not sign
        (None, "ca.pem", True),  # Debian 12's journal-remote takes a client without a certificate
    ],
    ids=["documented", "log-host-not-trusted", "client-without-certificate"],
)
def test_upload_over_https(hosts: list[Host], bindir: Path, tmp_path: Path,
                           client: str | None, trust: str, arrives: bool) -> None:
    certs = tmp_path / "certs"  # a CA, certificates it signed for the log host (localhost) and web1; another CA
    make_ca(certs, "localhost", "web1")
    make_ca(certs, ca="other")
    host = hosts[0]
    env = {"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(host.config())}
    p = run_sendmail(bindir, ["-v", "-i", "root"], b"Subject: over TLS\n\nhello\n", env=env)
    assert p.returncode == 0, p.stderr
    mail_id = re.search(rb"mail ([0-9a-f]{32})", p.stderr).group(1).decode()  # type: ignore[union-attr]
    host.sync()

    out, port = tmp_path / "remote", free_port()
    out.mkdir()
    log = open(tmp_path / "journal-remote.log", "wb")
    remote = subprocess.Popen([REMOTE, f"--listen-https=127.0.0.1:{port}", f"--key={certs / 'localhost.key'}",
                               f"--cert={certs / 'localhost.pem'}", f"--output={out}/"], stdout=log, stderr=log)
    try:
        wait_until(lambda: b"Certificate checking disabled" in (tmp_path / "journal-remote.log").read_bytes(),
                   10, "journal-remote to start")
        keys = ([f"--key={certs / (client + '.key')}", f"--cert={certs / (client + '.pem')}"] if client
                else ["--key=-", "--cert=-"])
        up = subprocess.run([UPLOAD, f"--directory={host.journal_dir}", f"--url=https://localhost:{port}",
                             *keys, f"--trust={certs / trust}", f"--save-state={tmp_path / 'state'}",
                             "--follow=no"], capture_output=True, timeout=60)
        if arrives:
            assert up.returncode == 0, up.stderr.decode()
            assert mail_ids(remote_entries(out, f"MESSAGE_ID={MSG_MAIL}")) == {mail_id: 1}
        else:
            # curl's words: "SSL certificate problem" (bookworm, trixie), "... OpenSSL verify result" (forky)
            assert re.search(rb"SSL certificate (problem|OpenSSL verify result)", up.stderr), up.stderr.decode()
            assert not remote_entries(out, f"MESSAGE_ID={MSG_MAIL}")
    finally:
        remote.terminate()
        remote.wait(timeout=10)
        log.close()


def test_journal_remote_cannot_check_clients(tmp_path: Path) -> None:
    """--trust is refused by Debian's builds (12: "--trust", 13 and later: "--trust="): docs/fleet.md tells
    the admin to firewall the port."""
    p = subprocess.run([REMOTE, "--listen-https=127.0.0.1:1", "--trust=/dev/null", f"--output={tmp_path}/"],
                       capture_output=True, timeout=30)
    assert p.returncode != 0 and re.search(rb"Option --trust=? is not available", p.stderr), p.stderr.decode()
