"""Nothing lost: the spool when the journal cannot take a message, the flusher,
and the flusher's refusal of everything an attacker can put in the spool."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kit.harness import Journald, one
from kit.support import ROOT, run_sendmail

from journal_sendmail.record import MSG_MAIL, MSG_SPOOL

MAIL = f"MESSAGE_ID={MSG_MAIL}"
SPOOL = Path("/var/spool/journal-sendmail")
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def spool() -> Any:
    """The real spool path (a private tmpfs in the test namespace), emptied."""
    subprocess.run(["find", str(SPOOL), "-mindepth", "1", "-delete"], check=True)
    os.chmod(SPOOL, 0o1733)
    yield SPOOL
    subprocess.run(["find", str(SPOOL), "-mindepth", "1", "-delete"], check=True)


def spooled(d: Path = SPOOL) -> list[str]:
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def no_journal(j: Journald) -> None:
    j.stop()
    if os.path.exists(j.socket_path):
        os.unlink(j.socket_path)


def mail_id(stderr: bytes) -> str:
    m = re.search(rb"mail ([0-9a-f]{32})", stderr)
    assert m, stderr
    return m.group(1).decode()


def test_no_journal_spools_then_flush_reinjects_byte_identical(journald: Journald, bindir: Path, spool: Path) -> None:
    no_journal(journald)
    msg = b"Subject: spooled\nTo: a@x\n\n" + bytes(range(256)) * 40 + b"\n.\nafter\n"
    p = run_sendmail(bindir, ["-v", "-FNamed", "-N", "never", "root"], msg)
    assert p.returncode == 0, p.stderr
    assert b"spooled as" in p.stderr and b"no such socket" in p.stderr
    ids = spooled()
    assert len(ids) == 1 and mail_id(p.stderr).startswith(ids[0])
    st = os.stat(SPOOL / ids[0])
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, 0)

    journald.start()
    q = run_sendmail(bindir, ["-q"])
    assert q.returncode == 0, q.stderr
    assert spooled() == []
    f = journald.entries(MAIL, wait_for=1)
    assert len(f) == 1
    e = f[0]
    body = msg[: msg.index(b"\n.\n") + 1]
    assert one(e["MAIL_RAW"]) == body
    assert one(e["MAIL_SHA256"]).decode() == hashlib.sha256(body).hexdigest()
    assert one(e["MAIL_ID"]).decode() == mail_id(p.stderr)
    assert one(e["MAIL_AFTER_DOT"]) == b"after\n"
    assert (one(e["MAIL_SPOOLED"]), one(e["MAIL_SPOOL_UID"])) == (b"yes", b"0")
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", one(e["MAIL_SUBMITTED_AT"]))
    assert (one(e["MAIL_FULL_NAME"]), one(e["MAIL_DSN_NOTIFY"])) == (b"Named", b"never")
    assert one(e["MAIL_INVOKED_AS"]) == b"sendmail"
    # idempotent: a second flush finds nothing and stores nothing
    assert run_sendmail(bindir, ["-q"]).returncode == 0
    assert len(journald.entries(MAIL)) == 1


def test_reader_lists_reinjected_mail_as_spooled(journald: Journald, bindir: Path, spool: Path) -> None:
    from kit.support import ENV, READER

    assert run_sendmail(bindir, ["root"], b"Subject: direct\n\nx\n").returncode == 0
    journald.stop()
    os.unlink(journald.socket_path)
    assert run_sendmail(bindir, ["root"], b"Subject: via the spool\n\nx\n").returncode == 0
    journald.start()
    assert run_sendmail(bindir, ["-q"]).returncode == 0
    journald.entries(MAIL, wait_for=2)
    p = subprocess.run([*READER, "list", "--spooled", "--json"], capture_output=True, env=ENV, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [(r["subject"], r["spooled"], r["spool_uid"]) for r in rows] == [("via the spool", True, 0)]


def test_big_message_is_spooled_and_reinjected_in_parts(journald: Journald, bindir: Path, spool: Path,
                                                        tmp_path: Path) -> None:
    no_journal(journald)
    data = b"Subject: big\n\n" + os.urandom(3 << 20)
    p = run_sendmail(bindir, ["-i", "-v", "root"], data)
    assert p.returncode == 0 and b"spooled" in p.stderr, p.stderr
    journald.start()
    assert run_sendmail(bindir, ["-q"]).returncode == 0
    e = journald.entries(MAIL, wait_for=1)[0]
    parts = journald.entries("MESSAGE_ID=aa12d80295f04539a057a77642e355d5", wait_for=3)
    chunks = {1: one(e["MAIL_RAW"])} | {int(one(x["MAIL_PART"])): one(x["MAIL_RAW"]) for x in parts}
    assert b"".join(chunks[i] for i in sorted(chunks)) == data


def test_stopped_journald_spools_within_timeout(journald: Journald, bindir: Path, spool: Path,
                                                config_file: Any) -> None:
    env = config_file("timeout = 1\n")
    journald.pause()
    try:
        outcomes = []
        for i in range(30):
            t = time.monotonic()
            p = run_sendmail(bindir, ["-v", "root"], f"Subject: s{i}\n\nx\n".encode(), env=env)
            outcomes.append((p.returncode, time.monotonic() - t, b"spooled" in p.stderr))
            assert p.returncode == 0, p.stderr
            if b"spooled" in p.stderr:
                assert b"timed out after 1 s" in p.stderr
                break
        assert outcomes[-1][2] and outcomes[-1][1] < 2.0, outcomes
    finally:
        journald.resume()
    assert len(spooled()) == 1
    assert run_sendmail(bindir, ["-q"]).returncode == 0
    assert len(journald.entries(MAIL, wait_for=len(outcomes))) == len(outcomes)


@pytest.mark.parametrize("how", ["missing", "read-only", "full"])
def test_spool_failure_too_exits_75_and_claims_nothing(journald: Journald, bindir: Path, tmp_path: Path,
                                                       config_file: Any, how: str) -> None:
    d = tmp_path / "spool"
    if how != "missing":
        d.mkdir(mode=0o1733)
        opts = "ro" if how == "read-only" else "size=64k"
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"{opts},mode=1733", "tmpfs", str(d)], check=True)
    try:
        no_journal(journald)
        p = run_sendmail(bindir, ["root"], b"Subject: x\n\n" + b"y" * 200000, env=config_file(f"spool = {d}\n"))
        assert p.returncode == 75
        line = p.stderr.decode()
        assert line.count("\n") == 1 and "no such socket" in line and "spool failed" in line, line
        if how != "missing":
            assert os.listdir(d) == []
    finally:
        if how != "missing":
            subprocess.run(["umount", str(d)], check=True)


def test_mailq_lists_the_spool(journald: Journald, bindir: Path, spool: Path) -> None:
    no_journal(journald)
    for rcpts in (["a@x", "b@y"], ["c@z"]):
        assert run_sendmail(bindir, ["-f", "sender@x", *rcpts], b"Subject: q\n\nbody\n").returncode == 0
    out = run_sendmail(bindir, [], name="mailq").stdout.decode()
    lines = out.splitlines()
    assert lines[0].startswith("-Queue ID-")
    for name in spooled():
        assert any(line.startswith(name) and "sender@x" in line for line in lines), out
    for rcpt in ("a@x", "b@y", "c@z"):
        assert any(line.strip() == rcpt for line in lines), out
    assert lines[-1] == "-- 1 Kbytes in 2 Requests."


def _fake_spool_file(path: Path, meta: dict[str, Any], raw: bytes) -> None:
    path.write_bytes(b"JOURNAL-SENDMAIL-SPOOL 1\n" + json.dumps(meta).encode() + b"\n" + raw)


def _as_nobody(script: str) -> None:
    subprocess.run([*NOBODY, "sh", "-ec", script], check=True, cwd="/", timeout=60)


def test_attacks_are_refused_reported_and_quarantined(journald: Journald, bindir: Path, spool: Path) -> None:
    secret = Path("/etc/shadow").read_bytes()
    os.chmod(SPOOL, 0o1777)  # let the attacker see what it made, to make links
    _as_nobody(f"""
        cd {SPOOL}
        ln -s /etc/shadow 00000000000000a1
        printf 'JOURNAL-SENDMAIL-SPOOL 1\\n{{}}\\nSubject: mine\\n\\n' > 00000000000000a2
        ln 00000000000000a2 00000000000000a3
        mkfifo 00000000000000a4
        truncate -s 2G 00000000000000a5
        mkdir 00000000000000a6
    """)
    claim = {"mail_id": "f" * 32, "argv": ["sendmail", "root"], "recipients": ["root"], "uid": 0,
             "caller": {"MAIL_CALLER_COMM": "cron", "_UID": "0"}, "submitted_at": 0}
    _fake_spool_file(Path("/tmp/claim"), claim, b"Subject: I am root\n\nclaim\n")
    _as_nobody(f"cp /tmp/claim {SPOOL}/00000000000000b1")
    os.unlink("/tmp/claim")
    orphan = SPOOL / "00000000000000c1"
    _fake_spool_file(orphan, claim, b"x")
    os.chown(orphan, 4242, 4242)  # a uid that is no user
    t = time.monotonic()
    q = run_sendmail(bindir, ["-q"], timeout=60)
    assert q.returncode == 0, q.stderr
    assert time.monotonic() - t < 10, "something blocked the flusher"
    events = journald.entries(f"MESSAGE_ID={MSG_SPOOL}", wait_for=7)
    reasons = {one(e["MAIL_SPOOL_FILE"]).decode(): one(e["MAIL_SPOOL_REASON"]).decode() for e in events}
    assert set(reasons) == {"00000000000000a1", "00000000000000a2", "00000000000000a3", "00000000000000a4",
                            "00000000000000a5", "00000000000000a6", "00000000000000c1"}, reasons
    assert "symbolic link" in reasons["00000000000000a1"]
    assert "2 links" in reasons["00000000000000a2"] and "2 links" in reasons["00000000000000a3"]
    assert "FIFO" in reasons["00000000000000a4"]
    assert "more than the limit" in reasons["00000000000000a5"]
    assert "directory" in reasons["00000000000000a6"]
    assert "uid 4242" in reasons["00000000000000c1"]
    assert all(one(e["PRIORITY"]) == b"4" for e in events)
    assert spooled() == []
    assert sorted(os.listdir(SPOOL / ".quarantine")) == sorted(reasons)
    # the claim of uid 0 was injected as what it is: nobody's mail
    mails = journald.entries(MAIL, wait_for=1)
    assert len(mails) == 1
    e = mails[0]
    assert one(e["MAIL_SPOOL_UID"]) == b"65534" and one(e["MAIL_ENVELOPE_FROM"]) == b"nobody"
    assert one(e["_UID"]) == b"0"  # the flusher's own, trusted uid
    assert one(e["MAIL_CALLER_COMM"]) == b"cron"  # informational, and marked as spooled
    # nothing of /etc/shadow anywhere in the journal
    everything = subprocess.run(["journalctl", "-o", "export", "--no-pager"], capture_output=True, check=True).stdout
    for line in secret.splitlines():
        if b":$" in line or b":!" in line:
            assert line not in everything


@pytest.mark.parametrize("impostor", ["symlink", "directory"])
def test_a_users_quarantine_never_receives_roots_renames(journald: Journald, bindir: Path, spool: Path,
                                                        tmp_path: Path, impostor: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    victim.chmod(0o777)
    os.chmod(SPOOL, 0o1777)
    make = f"ln -s {victim} .quarantine" if impostor == "symlink" else "mkdir -m 777 .quarantine"
    _as_nobody(f"cd {SPOOL} && {make} && mkfifo 00000000000000f1")
    q = run_sendmail(bindir, ["-q"], timeout=60)
    assert q.returncode == 0, q.stderr
    assert os.listdir(victim) == []
    st = os.lstat(SPOOL / ".quarantine")
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700 and not os.path.islink(SPOOL / ".quarantine")
    assert os.listdir(SPOOL / ".quarantine") == ["00000000000000f1"]
    assert len([n for n in os.listdir(SPOOL) if n.startswith(".impostor-")]) == 1
    assert len(journald.entries(f"MESSAGE_ID={MSG_SPOOL}", wait_for=1)) == 1


def test_forged_metadata_cannot_add_fields_or_stop_the_flusher(journald: Journald, bindir: Path,
                                                                 spool: Path) -> None:
    import base64

    b64 = base64.b64encode(b"forged").decode()
    forged = {"mail_id": "e" * 32, "argv": ["sendmail", "root"], "recipients": ["root"],
              "recorded": [["MESSAGE_ID", "x"], ["MAIL_DSN_RET", "hdrs"]],
              "extra": [["MESSAGE_ID", b64], ["PRIORITY", b64], ["_UID", b64], ["MAIL_SMTP_HELO", b64]],
              # a name no journal field can have stopped the flusher for good (exit 70, file kept)
              "caller": {"MAIL_CALLER_X Y": "z", "MAIL_CALLER_COMM": "cron", "MAIL_CALLER_PID": "1; x"},
              "envelope": {"from": ["not", "a", "string"], "rcpts": "root"}, "submitted_at": "yesterday"}
    forged["submitted_at"] = 1795168800
    _fake_spool_file(Path("/tmp/forged"), forged, b"Subject: forged\n\nx\n")
    _fake_spool_file(Path("/tmp/absurd"), {"argv": ["sendmail", "root"], "recipients": ["root"],
                                           "submitted_at": 1e300, "received": -5}, b"Subject: absurd\n\nx\n")
    Path("/tmp/deep").write_bytes(b"JOURNAL-SENDMAIL-SPOOL 1\n" + b"[" * 100000 + b"\n" + b"x")
    Path("/tmp/bad-recipients").write_bytes(b"JOURNAL-SENDMAIL-SPOOL 1\n" + b'{"recipients": [1, 2]}' + b"\nx")
    os.chmod(SPOOL, 0o1777)
    _as_nobody(f"cp /tmp/forged {SPOOL}/00000000000000d1 && cp /tmp/deep {SPOOL}/00000000000000d2 && "
               f"cp /tmp/bad-recipients {SPOOL}/00000000000000d3 && cp /tmp/absurd {SPOOL}/00000000000000d4")
    for p in ("/tmp/forged", "/tmp/deep", "/tmp/bad-recipients", "/tmp/absurd"):
        os.unlink(p)
    mailq = run_sendmail(bindir, [], name="mailq", timeout=60)
    assert mailq.returncode == 0 and b"00000000000000d1" in mailq.stdout, mailq.stderr
    assert b" Kbytes in 4 Requests." in mailq.stdout, mailq.stdout
    q = run_sendmail(bindir, ["-q"], timeout=60)
    assert q.returncode == 0, q.stderr
    e = journald.entries(MAIL, wait_for=1)
    assert len(e) == 1
    f = e[0]
    assert one(f["MESSAGE_ID"]) == MSG_MAIL.encode() and one(f["PRIORITY"]) == b"6"
    assert one(f["_UID"]) == b"0" and one(f["MAIL_SPOOL_UID"]) == b"65534"
    assert one(f["MAIL_DSN_RET"]) == b"hdrs" and one(f["MAIL_SMTP_HELO"]) == b"forged"
    assert one(f["MAIL_CALLER_COMM"]) == b"cron" and "MAIL_CALLER_PID" not in f
    assert one(f["MAIL_SUBMITTED_AT"]) == b"2026-11-20T10:00:00Z"
    events = journald.entries(f"MESSAGE_ID={MSG_SPOOL}", wait_for=3)
    assert sorted(one(x["MAIL_SPOOL_FILE"]) for x in events) == [b"00000000000000d2", b"00000000000000d3",
                                                                 b"00000000000000d4"]
    assert all(one(x["MAIL_SPOOL_REASON"]).startswith(b"malformed") for x in events)


def test_every_smtp_field_may_come_from_the_spool() -> None:
    from journal_sendmail import spool

    smtp = (ROOT / "src" / "journal_sendmail" / "smtp.py").read_text()
    smtp_fields = set(re.findall(r'\("?(MAIL_[A-Z_]+)"?, ', smtp))  # ("MAIL_X", or (MAIL_X, (schema.py's)
    assert smtp_fields and smtp_fields <= spool.EXTRA_FIELDS


def test_non_root_flushes_only_its_own(journald: Journald, bindir: Path, spool: Path) -> None:
    os.chmod(SPOOL, 0o1777)  # listable, so that a user may flush at all
    no_journal(journald)
    assert run_sendmail(bindir, ["root"], b"Subject: root's\n\nx\n").returncode == 0
    p = subprocess.run([*NOBODY, str(bindir / "sendmail"), "root"], input=b"Subject: nobody's\n\nx\n",
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert len(spooled()) == 2
    journald.start()
    q = subprocess.run([*NOBODY, str(bindir / "sendmail"), "-q"], capture_output=True, timeout=30)
    assert q.returncode == 0, q.stderr
    e = journald.entries(MAIL, wait_for=1)
    assert [one(x["MAIL_SUBJECT"]) for x in e] == [b"nobody's"]
    assert one(e[0]["_UID"]) == b"65534"
    left = spooled()
    assert len(left) == 1 and os.stat(SPOOL / left[0]).st_uid == 0


def test_non_root_cannot_list_the_real_spool(journald: Journald, bindir: Path, spool: Path) -> None:
    for args, name in ((["-q"], "sendmail"), ([], "mailq")):
        p = subprocess.run([*NOBODY, str(bindir / name), *args], capture_output=True, timeout=30)
        assert p.returncode == 0
        assert b"only root" in p.stdout + p.stderr


def test_concurrent_flushers_inject_each_message_once(journald: Journald, bindir: Path, spool: Path) -> None:
    no_journal(journald)
    for i in range(40):
        assert run_sendmail(bindir, ["root"], f"Subject: c{i}\n\nx\n".encode()).returncode == 0
    journald.start()
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: run_sendmail(bindir, ["-q"]), range(4)))
    assert [p.returncode for p in runs] == [0, 0, 0, 0], b"".join(p.stderr for p in runs).decode()
    subjects = [one(e["MAIL_SUBJECT"]) for e in journald.entries(MAIL, wait_for=40)]
    assert sorted(subjects) == sorted(f"c{i}".encode() for i in range(40))


@pytest.mark.slow
def test_fault_2000_messages_20_senders_journald_restarted_twice(journald: Journald, bindir: Path, spool: Path,
                                                                   config_file: Any) -> None:
    env = config_file("timeout = 1\n")
    sent: list[str] = []
    lock = threading.Lock()
    failures: list[bytes] = []

    def sender(n: int) -> None:
        for i in range(100):
            p = run_sendmail(bindir, ["-v", "root"], f"Subject: s{n}-{i}\n\nbody {n} {i}\n".encode(), env=env)
            with lock:
                if p.returncode == 0:
                    sent.append(mail_id(p.stderr))
                else:
                    failures.append(p.stderr)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for restart in (1, 2):
        while len(sent) + len(failures) < 600 * restart and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        journald.terminate()  # down for 2 s: senders block, time out, spool
        time.sleep(2)
        journald.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(sent) == 2000
    spooled_count = len(spooled())
    q = run_sendmail(bindir, ["-q"], timeout=300)
    assert q.returncode == 0, q.stderr
    found = [one(e["MAIL_ID"]).decode() for e in journald.entries(MAIL, wait_for=2000, timeout=60)]
    print(f"fault test: sent {len(sent)}, spooled {spooled_count}, in the journal {len(found)}, "
          f"distinct {len(set(found))}")
    assert spooled_count > 0
    assert sorted(found) == sorted(sent)


@pytest.mark.parametrize("unit", ["journal-sendmail-flush.path", "journal-sendmail-flush.service"])
def test_units_verify(unit: str) -> None:
    p = subprocess.run(["systemd-analyze", "verify", str(ROOT / "conf" / unit)], capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
