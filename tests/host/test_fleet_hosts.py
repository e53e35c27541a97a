"""Two booted hosts sharing one loopback: systemd-journal-upload.service on
host A, systemd-journal-remote.service on the log host B, set up as
docs/fleet.md says (TLS with a CA of our own); the mail of A's real cron is
read on B with ``journal-mail -D /var/log/journal/remote``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit.host import Host, HostError
from kit.net import make_ca

pytestmark = pytest.mark.slow

CERTS = "/mnt/certs"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a certificate for the log host (loghost) and for host A."""
    d = tmp_path_factory.mktemp("certs")
    d.chmod(0o755)
    make_ca(d, "loghost", "jsm-a")
    for f in d.iterdir():
        f.chmod(0o644)  # copied into the hosts with the modes fleet.md gives
    return d


@pytest.fixture(scope="module")
def fleet(boot, certs: Path) -> Iterator[tuple[Host, Host]]:  # type: ignore[no-untyped-def]
    loghost = boot("jsm-loghost", {str(certs): CERTS})
    loghost.sh(f"""
mkdir -p /etc/ssl/private /etc/ssl/certs /etc/ssl/ca
install -m 0640 -g systemd-journal-remote {CERTS}/loghost.key /etc/ssl/private/journal-remote.pem
install -m 0644 {CERTS}/loghost.pem /etc/ssl/certs/journal-remote.pem
install -m 0644 {CERTS}/ca.pem /etc/ssl/ca/trusted.pem
cat > /etc/systemd/journal-remote.conf <<'EOF'
[Remote]
Seal=false
SplitMode=host
ServerKeyFile=/etc/ssl/private/journal-remote.pem
ServerCertificateFile=/etc/ssl/certs/journal-remote.pem
EOF
# docs/fleet.md: a log host with systemd 258 or later (forky) offers no compression
if [ "$(systemctl --version | awk 'NR == 1 {{print $2}}')" -ge 258 ]; then
    echo 'Compression=no' >> /etc/systemd/journal-remote.conf
fi
systemctl enable --now systemd-journal-remote.socket
""")
    a = boot("jsm-a", {str(certs): CERTS})
    a.sh(f"""
mkdir -p /etc/ssl/private /etc/ssl/certs /etc/ssl/ca
install -m 0640 -g systemd-journal {CERTS}/jsm-a.key /etc/ssl/private/journal-upload.pem
install -m 0644 {CERTS}/jsm-a.pem /etc/ssl/certs/journal-upload.pem
install -m 0644 {CERTS}/ca.pem /etc/ssl/ca/trusted.pem
echo '127.0.0.1 loghost' >> /etc/hosts
cat > /etc/systemd/journal-upload.conf <<'EOF'
[Upload]
URL=https://loghost:19532
ServerKeyFile=/etc/ssl/private/journal-upload.pem
ServerCertificateFile=/etc/ssl/certs/journal-upload.pem
TrustedCertificateFile=/etc/ssl/ca/trusted.pem
EOF
systemctl enable --now systemd-journal-upload.service
""")
    yield a, loghost


def test_mail_from_a_cron_job_on_host_a_is_read_on_the_log_host(fleet: tuple[Host, Host]) -> None:
    a, loghost = fleet
    a.sh("printf 'MAILTO=fleet@example.org\\n@reboot root echo hello from the cron of A\\n' > /etc/cron.d/jsm;"
         " rm -f /run/crond.reboot; systemctl restart cron.service")
    assert len(a.wait_entries("MAIL_RCPT=fleet@example.org", count=1, fields=("MAIL_ID",))) == 1

    def listed() -> list[dict[str, object]]:
        p = loghost.sh("journal-mail -D /var/log/journal/remote list --json --to fleet@example.org", check=False)
        return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]

    try:
        loghost.wait_for("journal-mail -D /var/log/journal/remote list --json --to fleet@example.org | grep -q .",
                         timeout=60, what="A's mail on the log host")
    except HostError as e:
        why = [a.sh("systemctl status systemd-journal-upload.service; journalctl -u systemd-journal-upload -n 20",
                    check=False).stdout,
               loghost.sh("systemctl status systemd-journal-remote.service systemd-journal-remote.socket;"
                          " journalctl -u systemd-journal-remote -n 20; ls -la /var/log/journal/remote",
                          check=False).stdout]
        raise HostError(f"{e}\n" + "\n".join(why)) from None
    mails = listed()
    assert len(mails) == 1, mails
    m = mails[0]
    assert (m["hostname"], m["caller_comm"], m["recipients"]) == ("jsm-a", "cron", ["fleet@example.org"])
    assert str(m["subject"]).startswith("Cron <root@jsm-a>")
    shown = loghost.sh(f"journal-mail -D /var/log/journal/remote show --raw {m['mail_id']}").stdout
    assert "hello from the cron of A" in shown
    unit = loghost.sh("journalctl -D /var/log/journal/remote -o json --output-fields=_SYSTEMD_UNIT,MAIL_CALLER_UNIT"
                      " MAIL_RCPT=fleet@example.org").stdout
    fields = json.loads(unit.splitlines()[0])
    assert (fields.get("_SYSTEMD_UNIT"), fields.get("MAIL_CALLER_UNIT")) == ("cron.service", "cron.service")
    assert loghost.sh("systemctl is-active systemd-journal-remote.service").stdout.strip() == "active"
    assert a.sh("systemctl is-active systemd-journal-upload.service").stdout.strip() == "active"
