"""Helpers of the package checks: a command runner that fails loudly, the
Debian mirror apt uses, and commands run in a throwaway chroot."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# pybuild, autopkgtest and piuparts break under a pyenv python3 first on PATH.
SANE_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
CACHE = Path("/var/cache/journal-sendmail-tests")
SUITE = "bookworm"
BASE_TARBALL = CACHE / f"{SUITE}-base.tar.gz"


def run(
    cmd: list[str], *, timeout: float = 300, check: bool = True, tail: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with the sane PATH; on failure, fail with its output
    (the last ``tail`` lines of it when ``tail`` is given)."""
    env = dict(os.environ, PATH=SANE_PATH)
    env.setdefault("DEBIAN_FRONTEND", "noninteractive")
    start = time.monotonic()
    p = subprocess.run(
        cmd, env=env, cwd=cwd, text=True, errors="replace", timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    if check and p.returncode != 0:
        lines = p.stdout.splitlines()
        shown = "\n".join(lines[-tail:] if tail else lines)
        what = f"the last {tail} lines of its output" if tail and len(lines) > tail else "its output"
        pytest.fail(
            f"$ {shlex.join(cmd)}\nexited with {p.returncode} after "
            f"{time.monotonic() - start:.0f} s; {what}:\n{shown}",
            pytrace=False,
        )
    return p


def find_mirror() -> str | None:
    """The first URI that serves the suite itself (not -updates or -security)."""
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for f in files:
        for stanza in re.split(r"\n\s*\n", Path(f).read_text()):
            fields: dict[str, list[str]] = {
                m.group(1).lower(): m.group(2).split()
                for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)
            }
            if "deb" in fields.get("types", ()) and SUITE in fields.get("suites", ()) and fields.get("uris"):
                return fields["uris"][0]
    lists = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for f in lists:
        if not os.path.exists(f):
            continue
        for line in Path(f).read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                return words[1]
    return None


def in_chroot(
    root: Path, script: str, *, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` inside the chroot ``root``, in a private mount
    namespace with /proc and the cached .deb archive mounted (both unmounted
    afterwards); apt and dpkg run under eatmydata."""
    archives = CACHE / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    wrapper = r"""
set -e
root=$1 archives=$2 script=$3
mount -t proc proc "$root/proc"
mount --bind "$archives" "$root/var/cache/apt/archives"
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive eatmydata sh -ec "$script"
status=$?
umount "$root/var/cache/apt/archives"
umount "$root/proc"
exit $status
"""
    return run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper, "sh",
         str(root), str(archives), script],
        timeout=timeout, check=check,
    )
