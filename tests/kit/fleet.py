"""Helpers for the fleet tests: hosts, a log host, the uploads between them, and journal-mail.

A "host" is a ``systemd-journald NAME`` (a journal namespace, listening on
/run/systemd/journal.NAME/socket) started by ``unshare -m --uts`` with its own
hostname, and its own /etc/machine-id and boot id bind-mounted in its private
mount namespace.  So each host stamps its own ``_HOSTNAME``, ``_MACHINE_ID``
and ``_BOOT_ID`` and keeps its files in /var/log/journal/<its machine id>.NAME,
exactly like separate machines, while the test process (the mount namespace
all of this runs in, see kit/harness.py) still reaches every socket and journal
directory: a child mount namespace shares the tmpfs it was copied from, only
its own bind mounts stay private.  Network namespaces would add nothing here:
journal-upload and journal-remote talk HTTP over 127.0.0.1 either way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from kit import harness
from kit.net import free_port
from kit.support import ENV, READER, wait_until

JOURNALD = "/lib/systemd/systemd-journald"
REMOTE = "/lib/systemd/systemd-journal-remote"
UPLOAD = "/lib/systemd/systemd-journal-upload"
MSG_MAIL = "4cf50392e5a34635904ffaeffb43b172"
MSG_PART = "aa12d80295f04539a057a77642e355d5"


def journal_mail(*args: str) -> subprocess.CompletedProcess[bytes]:
    """journal-mail ARGS (the source tree, or the installed one), to completion."""
    return subprocess.run([*READER, *args], capture_output=True, env=ENV, timeout=120)


def ok(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


class Host:
    """One machine of the fleet: a journald of its own, with its own hostname, machine id and boot id."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.machine_id = uuid.uuid4().hex
        self.boot_id = str(uuid.uuid4())
        self.socket = f"/run/systemd/journal.{name}/socket"
        self.journal_dir = f"/var/log/journal/{self.machine_id}.{name}"
        self.proc: subprocess.Popen[bytes] | None = None
        (self.workdir / "machine-id").write_text(self.machine_id + "\n")
        (self.workdir / "boot_id").write_text(self.boot_id + "\n")

    def config(self, part_size: str = "64K") -> Path:
        """A journal-sendmail.conf that sends to this host's journald."""
        p = self.workdir / "journal-sendmail.conf"
        p.write_text(f"[journal-sendmail]\nsocket = {self.socket}\npart_size = {part_size}\n")
        p.chmod(0o644)
        return p

    def start(self) -> "Host":
        assert harness.in_private_namespace(), "hosts run only in the private namespace"
        script = (
            f"hostname {self.name}"
            f" && mount --bind {self.workdir / 'machine-id'} /etc/machine-id"
            # under systemd-nspawn (tools/release-check) boot_id is nspawn's mount of a deleted
            # file, and nothing can be mounted on that: take it away first
            " && { umount /proc/sys/kernel/random/boot_id 2>/dev/null || true; }"
            f" && mount --bind {self.workdir / 'boot_id'} /proc/sys/kernel/random/boot_id"
            f" && exec {JOURNALD} {self.name}"
        )
        log = open(self.workdir / "journald.log", "ab")
        with log:
            # unshare and sh exec: the PID we hold is journald's own
            self.proc = subprocess.Popen(["unshare", "-m", "--uts", "sh", "-c", script], stdout=log, stderr=log)
        varlink = f"/run/systemd/journal.{self.name}/io.systemd.journal"
        wait_until(lambda: self._alive() and os.path.exists(self.socket) and os.path.exists(varlink),
                   10, f"journald of {self.name}")
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"journald of {self.name} exited: {(self.workdir / 'journald.log').read_text()[-2000:]}")
        return True

    def sync(self) -> None:
        subprocess.run(["journalctl", f"--namespace={self.name}", "--sync"], check=True, timeout=30)

    def reboot(self) -> None:
        """Stop journald and start it again under a new boot id, as after a reboot."""
        self.stop()
        self.boot_id = str(uuid.uuid4())
        (self.workdir / "boot_id").write_text(self.boot_id + "\n")
        self.start()

    def last_cursor(self) -> str:
        """The cursor of the newest entry in this host's journal."""
        out = subprocess.run(["journalctl", f"--directory={self.journal_dir}", "-n", "1", "-q", "--show-cursor",
                              "-o", "cat", "--output-fields=MESSAGE_ID"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return next(ln[11:] for ln in out.splitlines() if ln.startswith("-- cursor: "))

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


def systemd_version(program: str = REMOTE) -> int:
    out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
    return int(out.split()[1])


def no_compression() -> None:
    """What docs/fleet.md tells the admin of a log host with systemd 258 or later: Compression=no in
    journal-remote.conf (journal-upload 262 stops for good at an entry it cannot compress smaller,
    "No buffer space available").  Written under /run/systemd/journal-remote.conf.d/: our /run is
    the private namespace's."""
    assert harness.in_private_namespace()
    if systemd_version() >= 258:
        d = Path("/run/systemd/journal-remote.conf.d")
        d.mkdir(parents=True, exist_ok=True)
        (d / "50-no-compression.conf").write_text("[Remote]\nCompression=no\n")


class Remote:
    """systemd-journal-remote listening on 127.0.0.1, writing into ``output``."""

    def __init__(self, output: Path, port: int | None = None) -> None:
        self.output = output
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        output.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Remote":
        no_compression()
        with open(self.output.parent / "journal-remote.log", "ab") as log:
            self.proc = subprocess.Popen(
                [REMOTE, f"--listen-http=127.0.0.1:{self.port}", f"--output={self.output}/"],
                stdout=log, stderr=log,
            )

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "journal-remote exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(listening, 10, "journal-remote to listen")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)
        self.proc = None


class Upload:
    """systemd-journal-upload of one host's journal directory, following it, with a state file."""

    def __init__(self, host: Host, remote: Remote) -> None:
        self.host, self.remote = host, remote
        self.state = host.workdir / "upload.state"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> "Upload":
        with open(self.host.workdir / "journal-upload.log", "ab") as log:
            self.proc = subprocess.Popen(
                [UPLOAD, f"--directory={self.host.journal_dir}", f"--url={self.remote.url}",
                 f"--save-state={self.state}"],
                stdout=log, stderr=log,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cursor(self) -> str:
        """The LAST_CURSOR journal-upload saved (empty before its first upload)."""
        try:
            text = self.state.read_text()
        except FileNotFoundError:
            return ""
        return next((ln[12:] for ln in text.splitlines() if ln.startswith("LAST_CURSOR=")), "")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop(self.proc, sig)
        self.proc = None


def remote_entries(directory: Path, *matches: str) -> list[dict[str, Any]]:
    return harness.read_entries(matches, path=str(directory))


def mail_ids(entries: list[dict[str, Any]]) -> Counter[str]:
    """How often each MAIL_ID occurs among ``entries``."""
    return Counter(harness.one(e["MAIL_ID"]).decode() for e in entries)
