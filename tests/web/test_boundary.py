"""Who reads the web inbox: exactly those who could read the journal with journalctl.

The attacker is a real unprivileged user (nobody, through setpriv) on the same host;
the servers are real ``journal-mail serve`` processes, started as root and as the
unit's kind of user (a uid of its own with adm and systemd-journal), on every
transport they offer (loopback TCP, IPv6 loopback, the unix socket).  An admin in adm
is a user added to copies of /etc/passwd and /etc/group bind-mounted in the tests'
own mount namespace.
"""

from __future__ import annotations

import base64
import grp
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit.net import free_port
from kit.web import CRON, MDADM, Serve, start_serve, stop

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
ADMIN_UID = 4343  # "jm-admin", in adm: what Debian's installer makes of the first user
ADMIN = ["setpriv", f"--reuid={ADMIN_UID}", f"--regid={ADMIN_UID}", "--init-groups"]
UNIT_UID = 61234  # a DynamicUser= uid (no passwd entry) with the unit's SupplementaryGroups
SOCKET = "/run/journal-mail/web.sock"  # /run is the tests' own tmpfs

# An HTTP client run as another user: status and body as JSON on stdout.
CLIENT = r'''
import http.client, json, socket, sys
target, path = sys.argv[1], sys.argv[2]
headers = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
try:
    if target.startswith("unix:"):
        class C(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(30)
                self.sock.connect(target[5:])
        c = C("localhost", timeout=30)
    else:
        host, port = target.split("//", 1)[1].rsplit(":", 1)
        c = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
except OSError as e:
    print(json.dumps({"status": None, "body": "", "error": f"{type(e).__name__}: {e}"}))
'''


def ask(who: list[str], target: str, path: str, headers: dict[str, str] | None = None) -> tuple[int | None, str]:
    p = subprocess.run([*who, "/usr/bin/python3", "-I", "-c", CLIENT, target, path, json.dumps(headers or {})],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    return got["status"], got["body"]


def gid(name: str) -> int:
    return grp.getgrnam(name).gr_gid


@pytest.fixture(scope="module")
def admin_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """jm-admin (uid 4343) in adm, in this namespace's /etc/passwd and /etc/group only."""
    d = tmp_path_factory.mktemp("etc")
    passwd, group = d / "passwd", d / "group"
    passwd.write_text(Path("/etc/passwd").read_text() + f"jm-admin:x:{ADMIN_UID}:{ADMIN_UID}::/nonexistent:/bin/sh\n")
    lines = []
    for line in Path("/etc/group").read_text().splitlines():
        name, pw, g, members = line.split(":", 3)
        if name == "adm":
            members = ",".join([m for m in members.split(",") if m] + ["jm-admin"])
        lines.append(":".join((name, pw, g, members)))
    lines.append(f"jm-admin:x:{ADMIN_UID}:")
    group.write_text("\n".join(lines) + "\n")
    for f in (passwd, group):
        f.chmod(0o644)
    os.chmod(d, 0o755)
    mounted = []
    try:
        for src, dst in ((passwd, "/etc/passwd"), (group, "/etc/group")):
            subprocess.run(["mount", "--bind", str(src), dst], check=True)
            mounted.append(dst)
        yield
    finally:
        for dst in reversed(mounted):
            subprocess.run(["umount", dst], check=True)


@pytest.fixture(scope="module")
def journal_group(inbox: Serve) -> None:
    """The journal's files in group systemd-journal, as systemd-tmpfiles leaves them on a
    host (setgid directories): what the unit's user reads through its group."""
    sj = gid("systemd-journal")
    for root, _, files in os.walk("/var/log/journal"):
        os.chown(root, -1, sj)
        os.chmod(root, 0o2755)
        for f in files:
            os.chown(os.path.join(root, f), -1, sj)
            os.chmod(os.path.join(root, f), 0o640)


@pytest.fixture
def unix_dir() -> Iterator[None]:
    """/run/journal-mail as the unit's RuntimeDirectory= makes it (0755, the service's user's)."""
    os.makedirs("/run/journal-mail", mode=0o755, exist_ok=True)
    os.chown("/run/journal-mail", UNIT_UID, UNIT_UID)
    os.chmod("/run/journal-mail", 0o755)
    yield
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)


AS_UNIT = ["setpriv", f"--reuid={UNIT_UID}", f"--regid={UNIT_UID}"]


def unit_prefix() -> list[str]:
    return [*AS_UNIT, f"--groups={gid('systemd-journal')},{gid('adm')}"]


def shows_mail(status: int | None, body: str) -> bool:
    return status == 200 and CRON in body and MDADM in body


def refused(status: int | None, body: str) -> bool:
    """No mail: the connection refused, or a 403."""
    return status in (None, 403) and CRON not in body and "mail_id" not in body


SERVERS = {
    "root-tcp": ([], "127.0.0.1"),
    "root-tcp6": ([], "[::1]"),
    "root-unix": ([], "unix"),
    "unit-tcp": (None, "127.0.0.1"),
    "unit-unix": (None, "unix"),
}


@pytest.mark.parametrize("name", list(SERVERS), ids=list(SERVERS))
def test_nobody_gets_no_mail_an_admin_does(inbox: Serve, journal_group: None, admin_user: None, unix_dir: None,
                                            name: str) -> None:
    """As root or as the unit's user, on every transport: nobody is refused (403, or the
    socket's mode), root and an admin in adm read the mail."""
    prefix, where = SERVERS[name]
    listen = f"unix:{SOCKET}" if where == "unix" else f"{where}:{free_port()}"
    url, proc = start_serve(prefix=prefix if prefix is not None else unit_prefix(), listen=listen)
    try:
        for path in ("/api/mails", "/api/mails?uid=0", "/", f"/mail/{inbox.ids[CRON]}/raw", "/stats"):
            status, body = ask(NOBODY, url, path)
            assert refused(status, body), (path, status, body[:300])
        assert shows_mail(*ask(ADMIN, url, "/api/mails"))
        assert shows_mail(*ask([], url, "/api/mails"))  # root
        if where == "unix":
            st = os.stat(SOCKET)
            assert (st.st_mode & 0o777, st.st_gid) == (0o660, gid("adm"))
            # A wrong setup (a socket anyone may open): the kernel's peer check still holds.
            os.chmod(SOCKET, 0o666)
            status, body = ask(NOBODY, url, "/api/mails?uid=0")
            assert status == 403 and CRON not in body
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err
    if where != "unix":
        assert b"uid=65534" in err and b'"GET /api/mails?uid=0" 403' in err


def test_an_ordinary_users_server_is_his_own(inbox: Serve, admin_user: None, bindir: Path) -> None:
    """An ordinary user's own server shows his mail to him (and root) only: not to nobody,
    not even to an admin (who reads it with journalctl, not through his server)."""
    from kit import reader

    user = reader.as_user(reader.USER_UID)
    p = subprocess.run([*user, str(bindir / "sendmail"), "-i", "root"], input=b"Subject: mine\n\nmine\n",
                       capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 0, p.stderr
    reader.wait_until(lambda: b"mine" in inbox.get("/api/mails")[2], what="the user's mail")
    url, proc = start_serve(user=reader.USER_UID)
    try:
        status, body = ask(user, url, "/api/mails")
        assert status == 200 and [json.loads(line)["subject"] for line in body.splitlines()] == ["mine"]
        assert refused(*ask(NOBODY, url, "/api/mails"))
        assert ask(ADMIN, url, "/api/mails")[0] == 403
    finally:
        stop(proc)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    from journal_sendmail.reader.web.auth import hash_password

    path = tmp_path / "passwords"
    path.write_text(f"admin:{hash_password('s3cret')}\n")
    path.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    return path


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet: only the route's source address
            addr = str(s.getsockname()[0])
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_auth_from_a_remote_looking_client(inbox: Serve, password_file: Path) -> None:
    """--auth on an address beyond the loopback: the password decides, whoever asks."""
    addr = non_loopback_address()
    assert addr is not None, "this host has no address beyond the loopback to test with"
    url, proc = start_serve("--auth", str(password_file), listen=f"{addr}:{free_port()}")
    try:
        good = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
        assert ask(NOBODY, url, "/api/mails")[0] == 401
        assert ask(NOBODY, url, "/api/mails", bad)[0] == 401
        assert shows_mail(*ask(NOBODY, url, "/api/mails", good))
        assert shows_mail(*ask([], url, "/api/mails", {**good, "Host": "mail.example.org"}))  # behind a proxy
    finally:
        err = stop(proc)
    assert f"{addr} admin".encode() in err


def test_auth_on_the_unix_socket(inbox: Serve, password_file: Path, unix_dir: None) -> None:
    """A reverse proxy's way in: the unix socket with --auth is open to the proxy's user,
    the password decides (the proxy passes Authorization on)."""
    url, proc = start_serve("--auth", str(password_file), listen=f"unix:{SOCKET}")
    try:
        assert os.stat(SOCKET).st_mode & 0o777 == 0o666
        good = {"Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()}
        assert ask(NOBODY, url, "/api/mails")[0] == 401
        assert shows_mail(*ask(NOBODY, url, "/api/mails", {**good, "Host": "mail.example.org"}))
    finally:
        stop(proc)


def test_without_auth_never_beyond_the_loopback() -> None:
    addr = non_loopback_address()
    assert addr is not None
    from kit import reader

    p = reader.run_jm("serve", "--listen", f"{addr}:{free_port()}")
    assert p.returncode == 64 and b"without --auth" in p.stderr
