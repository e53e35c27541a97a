"""A real systemd-journald for tests, in a private mount namespace.

``enter_private_namespace()`` moves this process (and so every child) into a
mount namespace of its own, with tmpfs over /run, /var/log/journal and the
spool: tests never touch the host's journal and need no systemd as PID 1.
``Journald`` then runs /lib/systemd/systemd-journald there; like systemd's
journald.socket it can hold the native socket itself and hand it to
journald (socket activation), so that journald can be killed and restarted
without losing what senders queued meanwhile.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

JOURNALD = "/lib/systemd/systemd-journald"
SOCKET = "/run/systemd/journal/socket"
CLONE_NEWNS = 0x00020000
PRIVATE_DIRS = ("/run", "/var/log/journal", "/var/spool/journal-sendmail", "/var/lib/journal-mail")

_entered = False
_host_namespace_fd: int | None = None


def in_private_namespace() -> bool:
    return _entered


def enter_private_namespace() -> None:
    """unshare(CLONE_NEWNS), make every mount private, tmpfs over our dirs."""
    global _entered, _host_namespace_fd
    if _entered:
        return
    _host_namespace_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    for d in PRIVATE_DIRS:
        mode = "1733" if "spool" in d else "755"
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", d], check=True)
    for d in ("/run/lock", "/run/systemd/journal", "/run/log/journal", "/run/user", "/run/sudo"):
        os.makedirs(d, exist_ok=True)
    os.chmod("/run/lock", 0o1777)
    _entered = True


def in_host_namespace(cmd: list[str]) -> list[str]:
    """``cmd`` run in the mount namespace this process started in, for tools
    that test the machine as it is (autopkgtest), not our private mounts."""
    if _host_namespace_fd is None:
        return cmd
    return ["nsenter", f"--mount=/proc/{os.getpid()}/fd/{_host_namespace_fd}", "--", *cmd]


def clean_journal_dirs() -> None:
    """An empty journal for the next journald."""
    for d in ("/run/systemd/journal", "/run/log/journal", "/var/log/journal"):
        os.makedirs(d, exist_ok=True)  # journald 257 removes /run/log/journal after its flush
        subprocess.run(["find", d, "-mindepth", "1", "-delete"], check=True)


class Journald:
    """One systemd-journald, started and stopped by its PID."""

    def __init__(self, activated: bool = False, namespace: str | None = None) -> None:
        self.activated = activated
        self.namespace = namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.held: socket.socket | None = None
        suffix = f".{namespace}" if namespace else ""
        self.socket_path = f"/run/systemd/journal{suffix}/socket"
        self.log = Path(f"/run/journald{suffix}.log")

    def start(self) -> Journald:
        assert in_private_namespace(), "journald for tests runs only in the private namespace"
        os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
        args = [JOURNALD] + ([self.namespace] if self.namespace else [])
        pass_fds: tuple[int, ...] = ()
        if self.activated:
            if self.held is None:
                if os.path.exists(self.socket_path):
                    os.unlink(self.socket_path)
                self.held = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.held.bind(self.socket_path)
                os.chmod(self.socket_path, 0o666)  # as systemd-journald.socket: SocketMode=0666
            fd = self.held.fileno()
            pass_fds = (fd,)
            args = ["bash", "-c", f'exec 3<&{fd} {fd}<&-; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "bash", *args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, pass_fds=pass_fds, stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        varlink = os.path.join(os.path.dirname(self.socket_path), "io.systemd.journal")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"journald exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if os.path.exists(self.socket_path) and os.path.exists(varlink):
                return
            time.sleep(0.01)
        raise RuntimeError("journald did not come up within 10 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def sync(self) -> None:
        """Wait until journald has written everything it received."""
        ns = [f"--namespace={self.namespace}"] if self.namespace else []
        subprocess.run(["journalctl", *ns, "--sync"], check=True, timeout=30)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Kill journald (the held socket, if any, stays with the queue on it)."""
        self._end(signal.SIGKILL)

    def terminate(self) -> None:
        """Stop journald with SIGTERM, as systemd does on a restart; the held
        socket, and what senders queue on it meanwhile, stays."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.held is not None:
            self.held.close()
            self.held = None

    def entries(self, *matches: str, wait_for: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every entry matching all ``matches`` (FIELD=value), values as bytes.

        With ``wait_for``, keeps looking until that many are there.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            found = read_entries(matches, namespace=self.namespace)
            if len(found) >= wait_for or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def read_entries(
    matches: Iterable[str] = (), namespace: str | None = None, path: str | None = None
) -> list[dict[str, Any]]:
    """Entries as {field: bytes, or list of bytes for a repeated field}."""
    from systemd import journal

    class RawReader(journal.Reader):  # type: ignore[misc]
        def _convert_field(self, key: str, value: bytes) -> bytes:
            return value

    kw: dict[str, Any] = {}
    if path:
        kw["path"] = path
    if namespace:
        kw["namespace"] = namespace
    r = RawReader(**kw)
    r.data_threshold = 1 << 30
    for m in matches:
        r.add_match(m)
    out = [dict(e) for e in r]
    r.close()
    return out


def one(value: Any) -> bytes:
    """The value of a field that must appear once."""
    assert isinstance(value, bytes), f"expected one value, got {value!r}"
    return value
