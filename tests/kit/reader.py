"""Helpers for the journal-mail tests: the reader run as a real program, entries written in-process."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from kit import harness
from kit.support import ENV, INSTALLED, READER, ROOT, SRC, wait_until  # noqa: F401 - the tests import them from here

DATA = ROOT / "tests" / "data" / "reader"
USER_UID = 4242  # an ordinary uid (>= 1000, no passwd entry needed): journald gives it its own file




def as_user(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def run_jm(
    *args: str, user: int | None = None, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    """journal-mail ARGS, to completion, output captured."""
    prefix = as_user(user) if user is not None else []
    return subprocess.run(
        [*prefix, *READER, *args], capture_output=True, env={**ENV, **(env or {})}, timeout=120, **kw
    )


def spawn_jm(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """journal-mail ARGS in the background (follow)."""
    return subprocess.Popen([*READER, *args], env={**ENV, **(env or {})}, **kw)


def ok(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def records(proc: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    """The JSON lines of a journal-mail run that must succeed."""
    return [json.loads(line) for line in ok(proc).decode().splitlines()]


def message(subject: str, body: str = "hello\n", to: str = "root", extra: str = "") -> bytes:
    return f"From: tester@example.org\nTo: {to}\nSubject: {subject}\n{extra}\n{body}".encode()


def flush_to_persistent(j: harness.Journald) -> None:
    """Make journald write to /var/log/journal, where it keeps user-UID.journal files."""
    ns = [f"--namespace={j.namespace}"] if j.namespace else []
    subprocess.run(["journalctl", *ns, "--flush"], check=True, timeout=30)


def write_entry(fields: list[tuple[str, bytes]], socket: str = harness.SOCKET) -> None:
    """One entry written in-process with the project's own native-protocol sender."""
    from journal_sendmail import journal, record

    sink = journal.Journal(socket, 10)
    try:
        sink.send(record.encode(fields))
    finally:
        sink.close()


Entry = list[tuple[bytes, bytes]]  # one journal entry in the export format: (name, value) pairs


# -- the export service, run from its unit file -----------------------------------------

UNIT = ROOT / "conf" / "journal-sendmail-export.service"


class Exporter:
    """journal-sendmail-export.service's ExecStart, paths moved under ``tmp``."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "log" / "mail.jsonl"
        self.cursor = tmp / "state" / "export.cursor"
        self.err = tmp / "export.stderr"
        self.log.parent.mkdir(mode=0o750)
        self.cursor.parent.mkdir(mode=0o700)
        exec_start = re.search(r"^ExecStart=(.*)$", UNIT.read_text(), re.M)
        assert exec_start is not None
        argv = shlex.split(exec_start.group(1))
        assert argv[0] == "/usr/bin/journal-mail"
        self.argv = [
            a.replace("/var/log/journal-sendmail", str(self.log.parent)).replace(
                "/var/lib/journal-sendmail", str(self.cursor.parent))
            for a in argv[1:]
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        old = os.umask(0o027)  # the unit's UMask=
        try:
            with open(self.err, "ab") as err:  # a file, not a pipe: nothing can block on it
                self.proc = subprocess.Popen([*READER, *self.argv], stderr=err)
        finally:
            os.umask(old)

    def stop(self, quiet: bool = True) -> bytes:
        """Stop it as systemctl stop does; what it said on stderr (nothing, when ``quiet``)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0
        self.proc = None
        err = self.err.read_bytes()
        assert err == b"" or not quiet, err
        return err

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def subjects(self, *files: Path) -> list[str]:
        out = []
        for f in files or (self.log,):
            if f.exists():
                # whole lines only: the exporter may be writing the last one right now
                out += [json.loads(line)["subject"] for line in f.read_text().split("\n")[:-1]]
        return out


# -- the journal export format (systemd.io, "Journal Export Format") -----------


def parse_export(stream: bytes) -> list[Entry]:
    """Entries of an export stream as (name, value) pairs, binary values included."""
    entries: list[Entry] = []
    fields: Entry = []
    pos = 0
    while pos < len(stream):
        nl = stream.index(b"\n", pos)
        line = stream[pos:nl]
        if not line:
            entries.append(fields)
            fields, pos = [], nl + 1
        elif b"=" in line:
            name, _, value = line.partition(b"=")
            fields.append((name, value))
            pos = nl + 1
        else:
            size = int.from_bytes(stream[nl + 1 : nl + 9], "little")
            fields.append((line, stream[nl + 9 : nl + 9 + size]))
            pos = nl + 9 + size + 1
    if fields:
        entries.append(fields)
    return entries


def export(entries: list[Entry]) -> bytes:
    out = bytearray()
    for fields in entries:
        for name, value in fields:
            if b"\n" in value or not value.isascii():
                out += name + b"\n" + len(value).to_bytes(8, "little") + value + b"\n"
            else:
                out += name + b"=" + value + b"\n"
        out += b"\n"
    return bytes(out)


def as_host(entries: list[Entry], host: str, skew_s: int = 0) -> list[Entry]:
    """The entries as a host named ``host`` would have stamped them, its clock ``skew_s`` off."""
    machine, boot = uuid.uuid5(uuid.NAMESPACE_DNS, host).hex, uuid.uuid5(uuid.NAMESPACE_URL, host).hex
    new = {b"_HOSTNAME": host.encode(), b"_MACHINE_ID": machine.encode(), b"_BOOT_ID": boot.encode()}
    out = []
    for fields in entries:
        changed: Entry = []
        for name, value in fields:
            if name in new:
                value = new[name]
            elif name in (b"__REALTIME_TIMESTAMP", b"_SOURCE_REALTIME_TIMESTAMP"):
                value = str(int(value) + skew_s * 1_000_000).encode()
            elif name == b"__CURSOR":
                continue  # journal-remote ignores it; a changed entry has no valid cursor
            changed.append((name, value))
        out.append(changed)
    return out


def remote(stream: bytes, output: Path) -> None:
    """systemd-journal-remote writing ``stream`` into the journal file ``output``."""
    p = subprocess.run(["/lib/systemd/systemd-journal-remote", f"--output={output}", "-"], input=stream,
                       capture_output=True, timeout=60)
    assert p.returncode == 0 and output.exists(), p.stderr.decode()


# Forged entries with a huge MAIL_RAW, written by uid nobody through a sealed memfd as
# journald's native protocol allows (issue 21): ``n`` message entries with MAIL_RAWs of
# ``mib`` MiB (every other one claiming MAIL_SIZE=20), then one well-formed 2-part mail
# of nobody's whose part 2 is ``mib`` MiB.  "random" payloads do not compress: journald
# stores them as they are.
BIG_FORGER = r"""
import fcntl, hashlib, os, socket, sys
n, size, mail, part, payload, base = (int(sys.argv[1]), int(sys.argv[2]) << 20, sys.argv[3], sys.argv[4], sys.argv[5],
                                      int(sys.argv[6]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("/run/systemd/journal/socket")

def send(fields):
    fd = os.memfd_create("forged", os.MFD_ALLOW_SEALING)
    for name, v in fields:
        os.write(fd, name + b"\n" + len(v).to_bytes(8, "little") + v + b"\n")
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    s.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
    os.close(fd)

def body():
    return os.urandom(size) if payload == "random" else b"x" * size

for i in range(n):
    raw = b"Subject: big %d\n\n" % i + body()  # 8 data objects: journald keeps one of identical values
    send([(b"MESSAGE", b"forged"), (b"MESSAGE_ID", mail.encode()), (b"MAIL_ID", b"%032x" % (base + 0xb16 + i)),
          (b"MAIL_RCPT", b"root"), (b"MAIL_SUBJECT", b"big %d" % i),
          (b"MAIL_SIZE", str(len(raw) if i % 2 else 20).encode()),
          (b"MAIL_SHA256", hashlib.sha256(raw).hexdigest().encode()), (b"MAIL_RAW", raw)])
first = b"Subject: big parts\n\n" + b"y" * 4076
mail_id, parted = b"%032x" % (base + 0xbf00), first + b"z" * 4096
send([(b"MESSAGE", b"forged"), (b"MESSAGE_ID", mail.encode()), (b"MAIL_ID", mail_id), (b"MAIL_RCPT", b"root"),
      (b"MAIL_SUBJECT", b"big parts"), (b"MAIL_SIZE", str(len(parted)).encode()), (b"MAIL_PARTS", b"2"),
      (b"MAIL_SHA256", hashlib.sha256(parted).hexdigest().encode()), (b"MAIL_RAW", first)])
send([(b"MESSAGE", b"forged part"), (b"MESSAGE_ID", part.encode()), (b"MAIL_ID", mail_id), (b"MAIL_PART", b"2"),
      (b"MAIL_PARTS", b"2"), (b"MAIL_RAW", body())])
"""
FORGED_IDS = [f"{0xb16 + i:032x}" for i in range(8)] + [f"{0xbf00:032x}"]


def forge_big_raws(j: harness.Journald, payload: str, n: int = 8, mib: int = 100, base: int = 0) -> None:
    """``n`` forged entries with a ``mib`` MiB MAIL_RAW and a forged ``mib`` MiB part, by nobody
    (their MAIL_IDs ``base`` on from FORGED_IDS')."""
    from journal_sendmail.record import MSG_MAIL, MSG_PART

    subprocess.run([*as_user(65534), "/usr/bin/python3", "-I", "-c", BIG_FORGER, str(n), str(mib), MSG_MAIL,
                    MSG_PART, payload, str(base)], check=True, timeout=600, cwd="/")
    assert j.entries(f"MAIL_ID={base + 0xbf00:032x}", "MESSAGE=forged part", wait_for=1, timeout=300), \
        "journald did not keep the forged entries"


NOBODY = 65534

# The attacker's writer: entries as JSON (values latin-1 strings), plus a flood.
FORGER = r"""
import fcntl, hashlib, json, os, socket, sys
spec = json.load(sys.stdin)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("/run/systemd/journal/socket")
def send(fields):
    out = b""
    for name, value in fields:
        v = value.encode("latin-1")
        out += name.encode() + b"\n" + len(v).to_bytes(8, "little") + v + b"\n"
    if len(out) < 100_000:
        s.send(out)
        return
    fd = os.memfd_create("forged", os.MFD_ALLOW_SEALING)  # too big for a datagram: a sealed memfd
    os.write(fd, out)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    s.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
    os.close(fd)
for fields in spec["entries"]:
    send(fields)
for n in range(spec["flood"]):
    if n % 2:  # a self-consistent mail of nobody's: a mail, shown as nobody's
        raw = "Subject: flood %d\n\nforged\n" % n
        send([("MESSAGE", "flood"), ("MESSAGE_ID", spec["mail"]), ("MAIL_ID", "%032x" % (n + 1 << 64)),
              ("MAIL_RCPT", "root"), ("MAIL_SUBJECT", "flood %d" % n), ("MAIL_SIZE", str(len(raw))),
              ("MAIL_SHA256", hashlib.sha256(raw.encode()).hexdigest()), ("MAIL_RAW", raw)])
    else:  # a billion parts, every one of them
        send([("MESSAGE", "flood"), ("MESSAGE_ID", spec["mail"]), ("MAIL_ID", "%032x" % (n + 1 << 64)),
              ("MAIL_SIZE", "5"), ("MAIL_PARTS", "1000000000"), ("MAIL_PART", "1"), ("MAIL_RAW", "x" * 5)])
"""


def forge(entries: list[list[tuple[str, str]]], flood: int = 0) -> None:
    """Write ``entries`` (and ``flood`` more) into the journal as uid nobody: forged fields."""
    from journal_sendmail.record import MSG_MAIL

    spec = {"entries": entries, "flood": flood, "mail": MSG_MAIL}
    subprocess.run([*as_user(NOBODY), "/usr/bin/python3", "-I", "-c", FORGER], input=json.dumps(spec).encode(),
                   check=True, timeout=300, cwd="/")
