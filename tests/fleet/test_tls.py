"""journal-upload to journal-remote over HTTPS, with certificates made as docs/fleet.md
makes them: the sender checks the log host against the CA; and what Debian
12's journal-remote does NOT check (the client's certificate), measured, so
that the documentation says what is true."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from fleetkit import MSG_MAIL, REMOTE, UPLOAD, Host, free_port, mail_ids, remote_entries
from support import run_sendmail, wait_until


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> None:
    """A CA, a certificate for the log host (localhost) and one for web1; another CA that signed neither."""
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=journal CA",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=other CA",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "other.key", "-out", "other.pem", cwd=d)
    for h in ("localhost", "web1"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={h}", "-keyout", f"{h}.key",
                "-out", f"{h}.csr", cwd=d)
        (d / f"{h}.ext").write_text(f"subjectAltName=DNS:{h}\nauthorityKeyIdentifier=keyid,issuer\n"
                                   "subjectKeyIdentifier=hash\n")
        openssl("x509", "-req", "-in", f"{h}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "30", "-extfile", f"{h}.ext", "-out", f"{h}.pem", cwd=d)


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
    certs = tmp_path / "certs"
    make_certs(certs)
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
