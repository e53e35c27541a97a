"""journal-mail-web.service as shipped, on a booted Debian (systemd as PID 1): a local
user without the groups reads no mail through it on any transport it offers (as with
journalctl), an admin in adm reads it all."""

from __future__ import annotations

import json

import pytest
from kit.host import Host

MSG_MAIL = "4cf50392e5a34635904ffaeffb43b172"
SOCKET = "/run/journal-mail/web.sock"
SECRET = "root-secret-mail"

pytestmark = pytest.mark.slow

# An HTTP client (run as another user inside the host): status and body as JSON.
CLIENT = r'''
import http.client, json, socket, sys
target, path = sys.argv[1], sys.argv[2]
try:
    if target.startswith("unix:"):
        class C(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(30)
                self.sock.connect(target[5:])
        c = C("localhost", timeout=30)
    else:
        c = http.client.HTTPConnection("127.0.0.1", int(target), timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
except OSError as e:
    print(json.dumps({"status": None, "body": "", "error": f"{type(e).__name__}: {e}"}))
'''


@pytest.fixture(scope="module")
def host(boot) -> Host:  # type: ignore[no-untyped-def]
    h: Host = boot("jsm-web")
    h.sh("useradd -m alice && useradd -m -G adm admin1")
    h.sh(f"cat > /usr/local/bin/jsm-client.py <<'EOF'\n{CLIENT}\nEOF")
    h.sh(f"printf 'Subject: {SECRET}\\n\\nthe body only root and adm may read\\n' | /usr/sbin/sendmail root")
    assert h.wait_entries(f"MESSAGE_ID={MSG_MAIL}", f"MAIL_SUBJECT={SECRET}", count=1)
    h.sh("systemctl start journal-mail-web.service")
    h.wait_for(f"test -S {SOCKET} && python3 /usr/local/bin/jsm-client.py 8025 /api/mails | grep -q status",
               what="the web inbox on both transports")
    return h


def ask(host: Host, user: str, target: str, path: str = "/api/mails") -> tuple[int | None, str]:
    out = host.sh(f"runuser -u {user} -- python3 /usr/local/bin/jsm-client.py {target} '{path}'").stdout
    got = json.loads(out)
    return got["status"], got["body"]


def test_the_socket_is_the_units(host: Host) -> None:
    assert host.sh("systemctl is-enabled journal-mail-web.service || true").stdout.strip() == "disabled"
    assert host.sh(f"stat -c '%a %G' {SOCKET}").stdout.split() == ["660", "adm"]
    assert host.sh(f"stat -c '%a' {SOCKET.rsplit('/', 1)[0]}").stdout.strip() == "755"


def test_a_user_without_the_groups_reads_nothing(host: Host) -> None:
    """alice: journalctl shows her no root mail, nor does the inbox (socket: refused by its
    mode; TCP: 403, the kernel says who she is); nobody the same."""
    mine = host.sh(f"runuser -u alice -- journalctl MESSAGE_ID={MSG_MAIL} -o cat 2>&1 || true").stdout
    assert SECRET not in mine
    for user in ("alice", "nobody"):
        for target in (f"unix:{SOCKET}", "8025"):
            for path in ("/api/mails", "/api/mails?uid=0", "/", "/stats"):
                status, body = ask(host, user, target, path)
                assert status in (None, 403) and SECRET not in body and "mail_id" not in body, (user, target, path,
                                                                                                 status)
    # A wrong setup (the socket opened to all): the kernel's peer check still refuses her.
    host.sh(f"chmod 666 {SOCKET}")
    try:
        assert ask(host, "alice", f"unix:{SOCKET}")[0] == 403
    finally:
        host.sh(f"chmod 660 {SOCKET}")


def test_an_admin_in_adm_reads_the_mail(host: Host) -> None:
    assert SECRET in host.sh(f"runuser -u admin1 -- journalctl MESSAGE_ID={MSG_MAIL} -o cat").stdout
    for target in (f"unix:{SOCKET}", "8025"):
        status, body = ask(host, "admin1", target)
        assert status == 200 and SECRET in body, (target, status, body[:300])


def test_the_log_says_who_asked_and_it_stops_cleanly(host: Host) -> None:
    uid = host.sh("id -u alice").stdout.strip()
    host.sh("systemctl stop journal-mail-web.service")
    assert host.sh("systemctl show -p Result --value journal-mail-web.service").stdout.strip() == "success"
    log = host.sh("journalctl -u journal-mail-web.service -o cat").stdout
    assert f'uid={uid} "GET /api/mails?uid=0" 403' in log, log
    assert host.sh(f"test -e {SOCKET} || echo gone").stdout.strip() == "gone"
