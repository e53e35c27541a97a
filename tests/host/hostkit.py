"""A booted Debian for the tests: a bookworm root cached under
/var/cache/journal-sendmail-tests, booted with systemd-nspawn on a volatile
overlay (every boot starts from the same clean root), commands run inside
with nsenter, stopped by PID.

Build the cached root by hand (the tests do it when it is missing):

    /usr/bin/python3 tests/host/hostkit.py
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

SANE_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
CACHE = Path("/var/cache/journal-sendmail-tests")
SUITE = "bookworm"
# What a plain Debian server with an MTA has, plus what the tests use inside:
# exim4 so that the package is installed over a real MTA.
# (exim4 is installed by apt afterwards: its configuration fails under
# debootstrap.)
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "cron", "logrotate", "python3-systemd",
    "systemd-journal-remote", "procps", "eatmydata",
    "python3-jinja2",  # a Depends of the package (the web inbox): the containers reach no mirror
    "python3-bleach",  # a Depends too (the web inbox's HTML sanitizer; pulls python3-html5lib)
)
MTA = "exim4"
ROOT = CACHE / f"host-{SUITE}-{hashlib.sha256(' '.join((*PACKAGES, MTA)).encode()).hexdigest()[:10]}"
ENV = {"PATH": SANE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}


class HostError(Exception):
    """A command on the host or in a container failed."""


def run(cmd: list[str], *, timeout: float = 300, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` on the host; on failure raise with its output."""
    p = subprocess.run(cmd, env=dict(os.environ, PATH=SANE_PATH, DEBIAN_FRONTEND="noninteractive"),
                       text=True, errors="replace", timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
    if check and p.returncode != 0:
        raise HostError(f"$ {shlex.join(cmd)}\nexited with {p.returncode}:\n{p.stdout[-4000:]}")
    return p  # type: ignore[no-any-return]


def find_mirror() -> str:
    """The first URI apt uses for the suite itself, read from its sources."""
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(f).read_text()):
            fields = {m.group(1).lower(): m.group(2).split()
                      for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)}
            if "deb" in fields.get("types", ()) and SUITE in fields.get("suites", ()) and fields.get("uris"):
                return fields["uris"][0]
    for f in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if os.path.exists(f):
            for line in Path(f).read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    raise HostError(f"no Debian mirror for {SUITE} in /etc/apt/sources.list{{,.d/}}")


def ensure_root() -> Path:
    """The cached root (built once with debootstrap; delete it to rebuild)."""
    if (ROOT / ".complete").exists():
        return ROOT
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=ROOT.name + ".part."))
    tmp.chmod(0o755)  # it becomes /: mkdtemp's 0700 locks every other user out
    try:
        run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp),
             find_mirror()], timeout=1800)
        policy = tmp / "usr/sbin/policy-rc.d"  # no daemon starts while we install
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        run(["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", str(tmp),
             "--setenv=DEBIAN_FRONTEND=noninteractive", "sh", "-ec",
             f"apt-get update -q; apt-get install -y -q --no-install-recommends {MTA}; apt-get clean"],
            timeout=900)
        policy.unlink()
        # Each boot gets the machine id nspawn passes (--uuid): two hosts differ.
        (tmp / "etc/machine-id").write_text("")
        (tmp / "etc/hostname").unlink(missing_ok=True)
        # no getty on a console nobody reads, no timer starting apt or fstrim mid-test
        for unit in ("console-getty.service", "getty@tty1.service", "apt-daily.timer",
                     "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "fstrim.timer"):
            os.symlink("/dev/null", tmp / "etc/systemd/system" / unit)
        (tmp / ".complete").write_text(" ".join((*PACKAGES, MTA)) + "\n")
        if not (ROOT / ".complete").exists():  # else another run made it meanwhile, and may be using it
            if ROOT.exists():
                shutil.rmtree(ROOT)
            tmp.rename(ROOT)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ROOT


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class NetNS:
    """A network namespace of its own (a sleeping process holds it), so the
    containers share one loopback and nothing of the host's ports."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.proc.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise HostError("unshare --net did not start")
            time.sleep(0.02)
        self.path = f"/proc/{self.proc.pid}/ns/net"
        run(["nsenter", f"--net={self.path}", "ip", "link", "set", "lo", "up"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Host:
    """One booted container; ``sh()`` runs a shell script inside it."""

    def __init__(self, name: str, root: Path, netns: NetNS, binds: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"jsm-host-{name}.", suffix=".log", dir="/var/tmp",
                                               delete=False)
        cmd = ["systemd-nspawn", "--register=no", "--keep-unit", "-q", "-b", "-D", str(root),
               "--volatile=overlay", f"--machine={name}", f"--uuid={uuid.uuid4()}",
               f"--network-namespace-path={netns.path}", "--console=passive"]
        for src, dst in (binds or {}).items():
            cmd.append(f"--bind-ro={src}:{dst}")
        self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                       env={"PATH": SANE_PATH})
        self.pid = 0
        try:
            self._wait_booted()
        except BaseException:
            self.stop()
            raise

    def _wait_booted(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.pid:
            if self.nspawn.poll() is not None:
                raise HostError(f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.console()}")
            # the container's PID 1 is nspawn's child (or, with some
            # options, its grandchild)
            for pid in [*_children(self.nspawn.pid), *(g for c in _children(self.nspawn.pid) for g in _children(c))]:
                if _comm(pid) == "systemd":
                    self.pid = pid
                    break
            if time.monotonic() > deadline:
                raise HostError(f"no container systemd after {timeout} s:\n{self.console()}")
            time.sleep(0.05)
        while True:  # systemctl needs PID 1's private socket, made early in the boot
            p = self.sh("systemctl is-system-running --wait", check=False, timeout=timeout)
            if "Failed to connect to bus" not in p.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if p.stdout.strip() not in ("running", "degraded"):
            failed = self.sh("systemctl --failed", check=False).stdout
            raise HostError(f"{self.name} did not boot: {p.stdout}{p.stderr}\n{failed}")

    def console(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def sh(self, script: str, *, check: bool = True, timeout: float = 120,
           input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with sh -e inside the container (all its namespaces)."""
        cmd = ["nsenter", "-t", str(self.pid), "-a", "env", "-i", *(f"{k}={v}" for k, v in ENV.items()),
               "sh", "-ec", script]
        p = subprocess.run(cmd, input=input.decode("latin-1") if input is not None else None,
                           text=True, errors="replace", timeout=timeout, capture_output=True)
        if check and p.returncode != 0:
            raise HostError(f"[{self.name}] $ {script}\nexited with {p.returncode}:\n{p.stdout[-3000:]}\n"
                            f"{p.stderr[-3000:]}")
        return p

    def entries(self, *matches: str, fields: tuple[str, ...] = (),
                directory: str | None = None) -> list[dict[str, Any]]:
        """Journal entries matching all ``matches`` (FIELD=value), as dicts
        of str (only ``fields`` when given), read with journalctl inside."""
        args = ["journalctl", "--no-pager", "-q", "-o", "json", "--all"]
        if directory:
            args += ["-D", directory]
        if fields:
            args.append("--output-fields=" + ",".join(fields))
        p = self.sh(shlex.join([*args, *matches]), timeout=120)
        return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]

    def wait_entries(self, *matches: str, count: int, timeout: float = 60, fields: tuple[str, ...] = (),
                     directory: str | None = None) -> list[dict[str, Any]]:
        """entries(), once there are at least ``count`` (or the timeout came)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.entries(*matches, fields=fields, directory=directory)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def wait_for(self, script: str, timeout: float = 60, what: str = "") -> None:
        """Until ``script`` succeeds inside; HostError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while self.sh(script, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise HostError(f"[{self.name}] timed out after {timeout} s waiting for {what or script}")
            time.sleep(0.2)

    def stop(self, timeout: float = 60) -> None:
        """poweroff inside, wait for nspawn by its PID; SIGKILL if it hangs."""
        if self.nspawn.poll() is None and self.pid:
            subprocess.run(["nsenter", "-t", str(self.pid), "-a", "systemctl", "poweroff", "--no-block"],
                           capture_output=True, timeout=30, check=False)
        try:
            self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            # a SIGKILL to nspawn alone leaves the container running: kill its
            # PID 1 (and with it the whole PID namespace) first
            if self.pid and _comm(self.pid) == "systemd":
                os.kill(self.pid, signal.SIGKILL)
            self.nspawn.send_signal(signal.SIGKILL)
            self.nspawn.wait(30)
        self.log.close()
        os.unlink(self.log.name)


if __name__ == "__main__":
    print(ensure_root())
    sys.exit(0)
