"""Every filter and every source, on one real journal filled through the real sendmail.

The corpus (one journald for the module, plus a namespaced journald that
calls itself another host) holds mails m1…m7; each case names the ones it
must return, no more, no fewer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kit import harness
from kit.reader import USER_UID, as_user, flush_to_persistent, records, run_jm, wait_until, write_entry

RELAY = "relay-7"  # the hostname of the namespaced journald
NS = "relay"


@dataclass
class Corpus:
    t_mid: float  # between m3 and m4
    boot_id: str
    local_files: list[str]
    relay_files: list[str]
    copy_dir: Path


def send(bindir: Path, args: list[str], data: bytes, prefix: list[str] | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*(prefix or []), str(bindir / "sendmail"), *args], input=data, capture_output=True,
                          env=env or {"PATH": "/usr/bin:/bin"}, timeout=60)  # fmt: skip


def mail(n: int, subject: str, body: str = "hello\n", headers: str = "") -> bytes:
    return f"From: tester@example.org\nSubject: m{n} {subject}\n{headers}\n{body}".encode()


def start_relay_journald() -> subprocess.Popen[bytes]:
    """A namespaced journald whose hostname (its own UTS namespace) is RELAY."""
    sock = f"/run/systemd/journal.{NS}/socket"
    proc = subprocess.Popen(
        ["unshare", "--uts", "sh", "-c", f'hostname {RELAY} && exec {harness.JOURNALD} {NS}'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: os.path.exists(sock) and os.path.exists(f"/run/systemd/journal.{NS}/io.systemd.journal"),
               what="the namespaced journald")  # fmt: skip
    return proc


def files_of(*dirs: str) -> list[str]:
    out = []
    for d in dirs:
        for p in sorted(Path(d).glob("*/*.journal")) if Path(d).exists() else []:
            out.append(str(p))
    return out


@pytest.fixture(scope="module")
def corpus(bindir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    harness.clean_journal_dirs()
    shutil.rmtree(f"/run/systemd/journal.{NS}", ignore_errors=True)
    local = harness.Journald(activated=True).start()
    relay = start_relay_journald()
    tmp = tmp_path_factory.mktemp("corpus")
    try:
        flush_to_persistent(local)
        cron = tmp / "cron"  # a caller whose comm is "cron"
        cron.symlink_to("/bin/sh")
        tmp.chmod(0o755)
        m2 = tmp / "m2.eml"
        m2.write_bytes(mail(2, "Cron <root@vm> backup", "backup done\n"))
        results = [
            send(bindir, ["-f", "alice@example.org", "root"], mail(1, "disk report", "the disk is full\n")),
            send(bindir, [], b"", prefix=[str(cron), "-c", f"{bindir}/sendmail -i ops@example.org < {m2}; true"]),
            send(bindir, ["root"], mail(3, "user mail"), prefix=as_user(USER_UID)),
        ]
        time.sleep(0.05)
        t_mid = time.time()
        time.sleep(0.05)
        results += [
            send(bindir, ["-t"], M4),
            send(bindir, [], mail(5, "refused, no recipients")),
        ]
        write_spooled(6)
        cfg = tmp / "relay.conf"
        cfg.write_text(f"[journal-sendmail]\nsocket = /run/systemd/journal.{NS}/socket\n")
        results.append(send(bindir, ["-f", "relay@example.org", "root"], mail(7, "from the relay"),
                            env={"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(cfg)}))  # fmt: skip
        assert [r.returncode for r in results] == [0, 0, 0, 0, 64, 0], [r.stderr for r in results]
        local.entries(wait_for=6)
        subprocess.run(["journalctl", f"--namespace={NS}", "--sync"], check=True, timeout=30)
        local_files = files_of("/run/log/journal", "/var/log/journal")
        local_files = [f for f in local_files if f".{NS}/" not in f]
        relay_files = [f for f in files_of("/run/log/journal", "/var/log/journal") if f".{NS}/" in f]
        copy_dir = tmp / "copy"
        copy_dir.mkdir()
        for f in local_files:
            shutil.copy(f, copy_dir / f"{hashlib.sha1(f.encode()).hexdigest()[:8]}-{os.path.basename(f)}")
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip().replace("-", "")
        yield Corpus(t_mid, boot, local_files, relay_files, copy_dir)
    finally:
        relay.terminate()
        relay.wait(timeout=10)
        local.stop()


M4 = mail(
    4,
    "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
    "Lieferung =C3=BCberf=C3=A4llig\n",
    "To: a@example.org, b@example.org\nContent-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n",
)


def write_spooled(n: int) -> None:
    """A spool re-injected message, written as journal-sendmail -q writes it (MAIL_SPOOLED…)."""
    from journal_sendmail import record

    raw = mail(n, "spooled", "queued while journald was down\n")
    m = record.Mail(
        mail_id=os.urandom(16).hex(), envelope_from="root", recipients=["root"],
        headers={"MAIL_SUBJECT": f"m{n} spooled"}, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
        argv=("sendmail", "root"), invoked_as="sendmail",
        extra=[("MAIL_SPOOLED", b"yes"), ("MAIL_SPOOL_UID", b"0"), ("MAIL_SUBMITTED_AT", b"2026-11-20T10:00:00Z")],
    )  # fmt: skip
    write_entry(record.mail_fields(m, raw, 1))


def subjects(*args: str, user: int | None = None) -> list[str]:
    return sorted(r["subject"].split()[0] for r in records(run_jm("list", "--json", *args, user=user)))


LOCAL = ["m1", "m2", "m3", "m4", "m6"]
CASES = [
    ("all", [], LOCAL),
    ("from", ["--from", "alice@example.org"], ["m1"]),
    ("to-any-recipient", ["--to", "b@example.org"], ["m4"]),
    ("to-two-values-or", ["--to", "b@example.org", "--to", "ops@example.org"], ["m2", "m4"]),
    ("subject-substring-any-case", ["--subject", "DISK"], ["m1"]),
    ("subject-decoded", ["--subject", "grüße"], ["m4"]),
    ("subject-regex", ["--subject", "/^m[12] /"], ["m1", "m2"]),
    ("uid", ["--uid", str(USER_UID)], ["m3"]),
    ("user-root", ["--user", "root"], ["m1", "m2", "m4", "m6"]),
    ("caller", ["--caller", "cron"], ["m2"]),
    ("host-local", ["--host", socket.gethostname()], LOCAL),
    ("host-other", ["--host", "nowhere"], []),
    ("boot-current", ["--boot"], LOCAL),
    ("boot-offset-0", ["-b", "0"], LOCAL),
    ("boot-other-id", ["--boot", "0" * 32], []),
    ("grep-body-decoded", ["--grep", "überfällig"], ["m4"]),
    ("grep-regex", ["--grep", "disk is (full|empty)"], ["m1"]),
    ("grep-smart-case", ["--grep", "Disk"], []),
    ("spooled", ["--spooled"], ["m6"]),
    ("refused-too", ["--refused", "--subject", "refused"], ["m5"]),
    ("refused-hidden", ["--subject", "refused"], []),
    ("since-today", ["--since", "today"], LOCAL),
    ("since-relative", ["--since", "-1h"], LOCAL),
    ("until-yesterday", ["--until", "yesterday"], []),
    ("combined-and", ["--user", "root", "--subject", "m2", "--caller", "cron"], ["m2"]),
    ("combined-none", ["--from", "alice@example.org", "--caller", "cron"], []),
]


@pytest.mark.parametrize(("args", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_filter(corpus: Corpus, args: list[str], want: list[str]) -> None:
    assert subjects(*args) == want


def test_since_until_split_in_time(corpus: Corpus) -> None:
    assert subjects("--until", f"@{corpus.t_mid}") == ["m1", "m2", "m3"]
    assert subjects("--since", f"@{corpus.t_mid}") == ["m4", "m6"]


def test_boot_by_id(corpus: Corpus) -> None:
    assert subjects("--boot", corpus.boot_id) == LOCAL


def test_lines_and_reverse(corpus: Corpus) -> None:
    newest_two = [r["subject"].split()[0] for r in records(run_jm("list", "--json", "-n", "2"))]
    assert newest_two == ["m4", "m6"]
    rev = [r["subject"].split()[0] for r in records(run_jm("list", "--json", "-r"))]
    assert rev == ["m6", "m4", "m3", "m2", "m1"]
    assert [r["subject"].split()[0] for r in records(run_jm("list", "--json", "-r", "-n", "1"))] == ["m6"]


SOURCES = [
    ("namespace", lambda c: ["--namespace", NS], ["m7"]),
    ("directory-copy", lambda c: ["-D", str(c.copy_dir)], LOCAL),
    ("files-both-hosts", lambda c: ["--file", *c.local_files, *c.relay_files], [*LOCAL, "m7"]),
    ("files-host-filter", lambda c: ["--file", *c.local_files, *c.relay_files, "--host", RELAY], ["m7"]),
]


@pytest.mark.parametrize(("make", "want"), [s[1:] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_sources(corpus: Corpus, make, want: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert subjects(*make(corpus)) == sorted(want)


def test_relay_mail_carries_its_host(corpus: Corpus) -> None:
    (rec,) = records(run_jm("list", "--json", "--namespace", NS))
    assert rec["hostname"] == RELAY and rec["envelope_from"] == "relay@example.org"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["list", "-D", "/nonexistent"], 66),
        (["list", "--file", "/nonexistent.journal"], 66),
        (["list", "--since", "whenever"], 64),
        (["list", "--user", "no-such-user-xyz"], 64),
        (["list", "-b", "-5"], 66),
        (["show", "ffffffffffffffffffffffffffffffff"], 66),
        (["show", "not-hex"], 64),
        (["export", "--format", "eml"], 64),
    ],
    ids=["no-dir", "no-file", "bad-time", "no-user", "no-boot", "no-mail", "bad-id", "eml-needs-dir"],
)
def test_errors_have_sysexits_codes(corpus: Corpus, args: list[str], code: int) -> None:
    proc = run_jm(*args)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith(b"journal-mail: ") and proc.stderr.count(b"\n") == 1
    assert b"Traceback" not in proc.stderr


def test_user_sees_only_own_mail_and_is_told(corpus: Corpus) -> None:
    proc = run_jm("list", "--json", user=USER_UID)
    assert [r["subject"].split()[0] for r in records(proc)] == ["m3"]
    assert b"showing only the mail readable by uid 4242" in proc.stderr


def test_user_show_and_export_own_mail(corpus: Corpus, tmp_path: Path) -> None:
    (rec,) = records(run_jm("list", "--json", user=USER_UID))
    assert rec["uid"] == str(USER_UID) and rec["envelope_from"] == str(USER_UID)
    shown = run_jm("show", "--raw", rec["mail_id"], user=USER_UID, env={})
    assert shown.returncode == 0 and shown.stdout == mail(3, "user mail")
    other = records(run_jm("list", "--json", "--from", "alice@example.org"))[0]["mail_id"]
    assert run_jm("show", other, user=USER_UID).returncode == 66  # root's mail is not readable


def test_user_with_nothing_readable_is_told_why(corpus: Corpus) -> None:
    proc = run_jm("list", user=65534)  # nobody: journald keeps its mail in the system journal
    assert proc.returncode == 77
    assert b"none of the" in proc.stderr and b"readable by" in proc.stderr and b"adm" in proc.stderr
    assert proc.stdout == b""
