"""Helpers for the caller tests (fixtures are in tests/callers/conftest.py)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import harness

MSG_MAIL = "MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172"
SENDMAIL = "/usr/sbin/sendmail"
USER = "jsmcaller"

def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


@contextmanager
def private_dir(path: str, mode: int = 0o755, owner: tuple[int, int] = (0, 0)) -> Iterator[Path]:
    """An empty tmpfs over ``path`` in this mount namespace, for one test."""
    assert harness.in_private_namespace()
    os.makedirs(path, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"mode={mode:o},uid={owner[0]},gid={owner[1]}", "tmpfs", path)
    try:
        yield Path(path)
    finally:
        subprocess.run(["umount", "-l", path], check=True)


@contextmanager
def private_file(path: str, text: str, mode: int = 0o644) -> Iterator[None]:
    """``path`` reads ``text`` in this mount namespace (a bind mount over it)."""
    src = Path("/run/jsm-callers") / path.strip("/").replace("/", "_")
    src.parent.mkdir(exist_ok=True)
    src.write_text(text)
    src.chmod(mode)
    mount("--bind", str(src), path)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", path], check=True)


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str

    def run(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        """Run ``args`` as this user, with a thin environment, like a login would."""
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "USER": self.name, "LOGNAME": self.name}
        setpriv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]
        kw.setdefault("capture_output", True)
        kw.setdefault("timeout", 30)
        return subprocess.run(setpriv + args, env=kw.pop("env", env), cwd=kw.pop("cwd", self.home), **kw)


def free_id() -> int:
    taken = {p.pw_uid for p in pwd.getpwall()} | {p.pw_gid for p in pwd.getpwall()}
    return next(i for i in range(64100, 65000) if i not in taken)


Entry = dict[str, Any]


def values(entry: Entry, name: str) -> list[bytes]:
    """Every value of a field (a repeated field comes as a list)."""
    v = entry.get(name, [])
    return v if isinstance(v, list) else [v]


def body(raw: bytes) -> bytes:
    """The bytes after the header block."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in raw:
            return raw.split(sep, 1)[1]
    raise AssertionError(f"no header block in {raw!r}")


def argv(entry: Entry) -> list[str]:
    """MAIL_ARGV as a list: what the caller ran."""
    return list(entry["MAIL_ARGV"].decode().split("\n"))


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a daemon we started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
