"""A fleet: three hosts send mail through the real journal-sendmail, each uploads
its journal with systemd-journal-upload to one systemd-journal-remote on
127.0.0.1, and journal-mail on the log host sees every mail of every host,
byte for byte, parts of split messages included.  Uploads resume from their
saved state after journal-upload or journal-remote is killed and restarted.

Why journal namespaces in UTS namespaces and not network namespaces: see
kit/fleet.py.  Nothing is mocked: real journald, real upload, real remote.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
from collections import Counter
from pathlib import Path

from kit.fleet import (
    MSG_MAIL,
    MSG_PART,
    Host,
    Remote,
    Upload,
    journal_mail,
    mail_ids,
    ok,
    remote_entries,
)
from kit.harness import one
from kit.support import DATA, json_raw, run_sendmail, wait_until


def big_message(seed: int, size: int = 300_000) -> bytes:
    """A message of ``size`` bytes that part_size=64K splits into five parts: 8-bit, NUL and CRLF included."""
    rnd = random.Random(seed)
    head = f"From: backup@host\nTo: ops@example.org\nSubject: big report {seed}\n\n".encode()
    body = bytearray()
    while len(head) + len(body) < size:
        line = bytes(rnd.randrange(1, 256) for _ in range(rnd.randrange(20, 120)))
        body += line.replace(b"\n", b"") + rnd.choice([b"\n", b"\r\n", b"\x00\n"])
    return head + bytes(body[: size - len(head)])


FIRST = [  # (id, sendmail arguments, message)
    ("plain", ["-i", "root"], (DATA / "plain.eml").read_bytes()),
    ("8bit-headers", ["-i", "-t"], (DATA / "8bit-headers.eml").read_bytes()),
    ("nul-bytes", ["-i", "ops@example.org"], (DATA / "nul-bytes.eml").read_bytes()),
    ("split", ["-i", "ops@example.org", "root"], b""),  # big_message(), one per host
]


def small(tag: str) -> bytes:
    return f"From: cron@host\nTo: root\nSubject: {tag}\n\nrun {tag}\n".encode()


class Fleet:
    """What the test sent, per host: MAIL_ID -> sha256 of the message."""

    def __init__(self, hosts: list[Host], bindir: Path) -> None:
        self.hosts, self.bindir = hosts, bindir
        self.sent: dict[str, dict[str, str]] = {h.name: {} for h in hosts}
        self.parts: dict[str, int] = {}  # MAIL_ID -> parts, of the split ones
        self.envs = {h.name: {"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(h.config("64K"))} for h in hosts}

    def send(self, host: Host, args: list[str], data: bytes) -> str:
        p = run_sendmail(self.bindir, ["-v", *args], data, env=self.envs[host.name])
        assert p.returncode == 0, p.stderr
        m = re.search(rb"mail ([0-9a-f]{32})", p.stderr)
        assert m, p.stderr
        mail_id = m.group(1).decode()
        self.sent[host.name][mail_id] = hashlib.sha256(data).hexdigest()
        if len(data) > 64 * 1024:
            self.parts[mail_id] = -(-len(data) // (64 * 1024))
        return mail_id

    def all_ids(self) -> set[str]:
        return {i for ids in self.sent.values() for i in ids}

    def sync(self) -> None:
        for h in self.hosts:
            h.sync()


def arrived(fleet: Fleet, remote: Remote) -> bool:
    """Every mail and every part of a split one is in the remote directory."""
    mails = mail_ids(remote_entries(remote.output, f"MESSAGE_ID={MSG_MAIL}"))
    if not fleet.all_ids() <= set(mails):
        return False
    parts = {(one(e["MAIL_ID"]).decode(), int(one(e["MAIL_PART"])))
             for e in remote_entries(remote.output, f"MESSAGE_ID={MSG_PART}")}
    return all((i, n) in parts for i, k in fleet.parts.items() for n in range(2, k + 1))


def supervise(uploads: list[Upload]) -> None:
    """Start again an upload that exited, as Restart=on-failure of systemd-journal-upload.service does."""
    for u in uploads:
        if not u.alive():
            u.start()


def settle(uploads: list[Upload]) -> None:
    """Wait until every upload has saved the cursor of its host's newest entry."""
    for u in uploads:
        wait_until(lambda: u.cursor() == u.host.last_cursor(), 20, f"{u.host.name}'s upload state to catch up")


def test_fleet(hosts: list[Host], bindir: Path, tmp_path: Path) -> None:
    fleet = Fleet(hosts, bindir)
    remote = Remote(tmp_path / "remote").start()
    uploads = [Upload(h, remote).start() for h in hosts]
    try:
        # 1. every host sends mail, a split one of five parts among them
        for n, h in enumerate(hosts):
            for _id, args, data in FIRST:
                fleet.send(h, args, data or big_message(n))
        fleet.sync()
        wait_until(lambda: arrived(fleet, remote), 30, "the first mails at the log host")
        settle(uploads)

        # 2. journal-upload crashes (SIGKILL) and comes back; host3 reboots meanwhile
        for u in uploads:
            u.stop(signal.SIGKILL)
        hosts[2].reboot()
        for h in hosts:
            fleet.send(h, ["-i", "root"], small(f"{h.name} after upload restart"))
        fleet.sync()
        for u in uploads:
            u.start()
        wait_until(lambda: arrived(fleet, remote), 30, "the mails sent while journal-upload was down")
        settle(uploads)

        # 3. journal-remote crashes; mail sent meanwhile waits in the hosts' journals.  An
        # upload that finds the log host gone exits, and is restarted as
        # Restart=on-failure of systemd-journal-upload.service does.
        remote.stop(signal.SIGKILL)
        for h in hosts:
            fleet.send(h, ["-i", "root"], small(f"{h.name} while journal-remote is down"))
            fleet.send(h, ["-i", "root"], small(f"{h.name} while journal-remote is down, 2"))
        fleet.sync()
        remote.start()
        wait_until(lambda: supervise(uploads) or arrived(fleet, remote), 30,
                   "the mails sent while journal-remote was down")
        for h in hosts:
            fleet.send(h, ["-i", "root"], small(f"{h.name} after remote restart"))
        fleet.sync()
        wait_until(lambda: supervise(uploads) or arrived(fleet, remote), 30, "the last mails")
        settle(uploads)
    finally:
        for u in uploads:
            u.stop()
        remote.stop()

    check_log_host(fleet, remote, uploads)


def check_log_host(fleet: Fleet, remote: Remote, uploads: list[Upload]) -> None:
    out = str(remote.output)
    stored = remote_entries(remote.output, f"MESSAGE_ID={MSG_MAIL}")
    copies = mail_ids(stored)
    assert fleet.all_ids() == set(copies), "the log host has mail nobody sent, or lost some"
    # systemd 252's journal-upload sends the entry at its saved cursor again
    # when it starts: at most one extra copy of one entry per restart
    extra = sum(c - 1 for c in copies.values())
    restarts = sum(u.starts - 1 for u in uploads)
    assert extra <= restarts, f"{extra} duplicate mail entries after {restarts} restarts of journal-upload"

    # list: every mail once, from the host that sent it; duplicates flagged
    listed = [json.loads(line) for line in ok(journal_mail("list", "-D", out, "--json")).splitlines()]
    ids = Counter(r["mail_id"] for r in listed)
    assert ids == Counter(fleet.all_ids()), "journal-mail list shows a mail twice, or misses one"
    host_of = {i: h for h, sent in fleet.sent.items() for i in sent}
    assert all(r["hostname"] == host_of[r["mail_id"]] for r in listed)
    assert sum(r["duplicates"] for r in listed) == extra
    boots = {h: {r["boot_id"] for r in listed if r["hostname"] == h} for h in fleet.sent}
    assert [len(b) for b in boots.values()] == [1, 1, 2], boots  # host3 rebooted
    table = ok(journal_mail("-D", out, "list")).decode().splitlines()  # source options before the command too
    assert len(table) == 1 + len(ids), table
    assert {ln.split()[2] for ln in table[1:]} == {i[:8] for i in ids}

    # stats --by host
    stats = {r["host"]: r["mails"]
             for r in map(json.loads, ok(journal_mail("stats", "-D", out, "--by", "host", "--json")).splitlines())}

    # export: every message byte for byte, split ones reassembled from their parts
    exported = [json.loads(line) for line in ok(journal_mail("export", "-D", out, "--format", "json")).splitlines()]
    assert Counter(r["mail_id"] for r in exported) == Counter(fleet.all_ids())
    found: dict[str, dict[str, str]] = {h: {} for h in fleet.sent}
    for r in exported:
        found[r["hostname"]][r["mail_id"]] = hashlib.sha256(json_raw(r)).hexdigest()
    split = {r["mail_id"]: r["parts"] for r in exported if r["parts"] > 1}
    assert split == fleet.parts and len(split) == len(fleet.hosts)
    mbox = ok(journal_mail("export", "-D", out, "--format", "mbox"))
    assert mbox.count(b"\nFrom ") + mbox.startswith(b"From ") >= len(ids)

    for h in fleet.sent:
        print(f"{h}: sent {len(fleet.sent[h])}, found {len(found[h])} (stats {stats.get(h)}),"
              f" split {sum(1 for i in fleet.sent[h] if i in split)}")
    print(f"log host: {len(stored)} mail entries for {len(copies)} mails ({extra} duplicate(s) from"
          f" {restarts} restarts of journal-upload), shown once each")
    for h in fleet.sent:
        assert len(found[h]) == len(fleet.sent[h]) == stats[h]
        assert found[h] == fleet.sent[h], f"{h}: a message differs from what was sent"
