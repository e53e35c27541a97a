"""A booted Debian for the tests: a root of the release under test
($JOURNAL_SENDMAIL_RELEASE: bookworm, trixie or forky) cached under
/var/cache/journal-sendmail-tests, booted with systemd-nspawn on a volatile
overlay (every boot starts from the same clean root), commands run inside
with nsenter, stopped by PID.  The same cache holds each release's "dev"
root, where the package is built and the suite runs (tools/release-check).

Build a cached root by hand (the tests do it when it is missing):

    /usr/bin/python3 tests/kit/host.py [RELEASE [host|dev]]
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
CACHE = Path(os.environ.get("JOURNAL_SENDMAIL_CACHE", "/var/cache/journal-sendmail-tests"))
TOP = Path(__file__).resolve().parents[2]
RELEASES = ("bookworm", "trixie", "forky")
# The release the booted hosts run (tests/run --release sets it).
SUITE = os.environ.get("JOURNAL_SENDMAIL_RELEASE", "bookworm")
if SUITE not in RELEASES:
    raise SystemExit(f"JOURNAL_SENDMAIL_RELEASE={SUITE}: not one of {', '.join(RELEASES)}")
# debootstrap of bookworm has no script named forky: testing is sid's script.
SCRIPTS = {"forky": "sid"}
# The mirror's forky index is a frozen snapshot: its Valid-Until has passed.
APT_OPTS: dict[str, tuple[str, ...]] = {"forky": ("-o", "Acquire::Check-Valid-Until=false")}
# forky's systemd refuses cgroup v1: nspawn must give it the unified hierarchy
# on a cgroup v1 host like this one (trixie and bookworm boot either way).
NSPAWN_ENV: dict[str, dict[str, str]] = {"forky": {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}}
# Every root starts from the same minbase of its release, kept as a directory.
BASE = ("systemd", "systemd-sysv", "dbus", "eatmydata", "python3", "procps")
# What a plain Debian server with an MTA has, plus what the tests use inside:
# exim4 so that the package is installed over a real MTA, bsd-mailx because
# an admin's mail(1) depends on an MTA (apt 3 on forky tries to bring exim4
# back when journal-sendmail goes).  The package's own Depends are added from
# debian/control: the containers reach no mirror.
HOST = ("cron", "logrotate", "systemd-journal-remote", "bsd-mailx", "exim4")
# The release's own build, lintian, and what the unit, integration and caller
# tests need (tests/apt-deps.txt and tests/callers/apt-deps.txt, without the
# browser: tests/web/test_browser.py runs on bookworm only).
BUILD = ("build-essential", "debhelper", "dh-python", "pybuild-plugin-pyproject", "python3-all",
         "python3-setuptools", "lintian", "dpkg-dev")
NO_BROWSER = ("chromium", "chromium-driver", "python3-selenium")
ENV = {"PATH": SANE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}


class HostError(Exception):
    """A command on the host or in a container failed."""


def run(cmd: list[str], *, timeout: float = 300, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` on the host; on failure raise with its output."""
    env = kw.pop("env", None) or {}
    p = subprocess.run(cmd, env=dict(os.environ, PATH=SANE_PATH, DEBIAN_FRONTEND="noninteractive", **env),  # type: ignore[arg-type]
                       text=True, errors="replace", timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
    if check and p.returncode != 0:
        raise HostError(f"$ {shlex.join(cmd)}\nexited with {p.returncode}:\n{p.stdout[-4000:]}")
    return p  # type: ignore[no-any-return]


def find_mirror() -> str:
    """The first URI apt uses for bookworm itself, read from its sources (the
    same mirror serves trixie and forky)."""
    for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(f).read_text()):
            fields = {m.group(1).lower(): m.group(2).split()
                      for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)}
            if "deb" in fields.get("types", ()) and "bookworm" in fields.get("suites", ()) and fields.get("uris"):
                return fields["uris"][0]
    for f in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        if os.path.exists(f):
            for line in Path(f).read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
                    return words[1]
    raise HostError("no Debian mirror for bookworm in /etc/apt/sources.list{,.d/}")


def control_depends(control: Path = TOP / "debian" / "control") -> tuple[str, ...]:
    """The binary package's Depends in debian/control, without substitutions
    or alternatives (the first of each is taken) or version constraints."""
    text = control.read_text()
    m = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", text.split("\nPackage:", 1)[1], re.M)
    names = []
    for item in (m.group(1) if m else "").replace("\n", " ").split(","):
        name = item.split("|")[0].split("(")[0].strip()
        if name and not name.startswith("${"):
            names.append(name)
    return tuple(names)


def _apt_deps(*files: str) -> tuple[str, ...]:
    names: list[str] = []
    for f in files:
        for line in (TOP / f).read_text().splitlines():
            if line.strip() and not line.startswith("#") and line.strip() not in NO_BROWSER:
                names.append(line.strip())
    return tuple(names)


def packages(kind: str) -> tuple[str, ...]:
    """The packages of a root of ``kind``: "host" (booted, the package is
    installed over exim4) or "dev" (builds the package, runs the suite)."""
    if kind == "host":
        extra = HOST
    elif kind == "dev":
        extra = (*BUILD, *_apt_deps("tests/apt-deps.txt", "tests/callers/apt-deps.txt"))
    else:
        raise ValueError(kind)
    return tuple(sorted({*extra, *control_depends()}))


def _key(names: tuple[str, ...]) -> str:
    return hashlib.sha256(" ".join(names).encode()).hexdigest()[:10]


def root_path(release: str = SUITE, kind: str = "host") -> Path:
    """Where the root of this release and package list is cached: a changed
    list is another directory (a new root), never a rebuild under a user."""
    return CACHE / f"{kind}-{release}-{_key(packages(kind))}"


def nspawn_env(release: str) -> dict[str, str]:
    return NSPAWN_ENV.get(release, {})


def in_root(root: Path, release: str, script: str, *, timeout: float = 1800, volatile: bool = False,
            binds: dict[str, str] | None = None, ro_binds: dict[str, str] | None = None,
            network: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with sh -e in ``root`` under systemd-nspawn, not booted
    (PID 1 is the shell); ``volatile`` keeps the root unchanged."""
    cmd = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", str(root), "--as-pid2",
           "--setenv=DEBIAN_FRONTEND=noninteractive", "--setenv=LANG=C.UTF-8", f"--setenv=PATH={SANE_PATH}",
           f"--machine=jsm-{release}-{uuid.uuid4().hex[:8]}"]
    if volatile:
        cmd.append("--volatile=overlay")
    if not network:
        cmd.append("--private-network")
    for src, dst in (binds or {}).items():
        cmd.append(f"--bind={src}:{dst}")
    for src, dst in (ro_binds or {}).items():
        cmd.append(f"--bind-ro={src}:{dst}")
    return run([*cmd, "sh", "-ec", script], timeout=timeout, check=check, env=nspawn_env(release))


def _apt(release: str) -> str:
    return shlex.join(["apt-get", *APT_OPTS.get(release, ())])


def _sources(release: str) -> str:
    return f"deb {find_mirror()} {release} main\n"


def ensure_base(release: str) -> Path:
    """The minbase of ``release`` (debootstrap, once)."""
    path = CACHE / f"base-{release}-{_key(BASE)}"
    if (path / ".complete").exists():
        return path

    def build(tmp: Path) -> None:
        script = f"/usr/share/debootstrap/scripts/{SCRIPTS.get(release, release)}"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE)}", release, str(tmp),
             find_mirror(), script], timeout=1800)
        (tmp / "etc/apt/sources.list").write_text(_sources(release))
        if release in APT_OPTS:
            (tmp / "etc/apt/apt.conf.d/99jsm-frozen-snapshot").write_text(
                '// the mirror\'s index of this release is a frozen snapshot\n'
                'Acquire::Check-Valid-Until "false";\n')
        # Each boot gets the machine id nspawn passes (--uuid): two hosts differ.
        (tmp / "etc/machine-id").write_text("")
        (tmp / "etc/hostname").unlink(missing_ok=True)

    return _cached(path, build)


def _cached(path: Path, build: Any) -> Path:
    """Build into a fresh directory next to ``path`` and rename it into place;
    if another run finished first, use its root and drop ours."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=path.name + ".part."))
    tmp.chmod(0o755)  # it becomes /: mkdtemp's 0700 locks every other user out
    try:
        build(tmp)
        (tmp / ".complete").write_text(path.name + "\n")
        if not (path / ".complete").exists():  # else another run made it meanwhile, and may be using it
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def ensure_root(release: str = SUITE, kind: str = "host") -> Path:
    """The cached root of ``kind`` for ``release`` (made once from its
    minbase; delete it to rebuild)."""
    path = root_path(release, kind)
    if (path / ".complete").exists():
        return path
    base = ensure_base(release)
    names = packages(kind)

    def build(tmp: Path) -> None:
        run(["cp", "-a", "--reflink=auto", f"{base}/.", str(tmp)], timeout=600)
        (tmp / ".complete").unlink()
        policy = tmp / "usr/sbin/policy-rc.d"  # no daemon starts while we install
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        # exim4 is installed by apt (its configuration fails under debootstrap)
        in_root(tmp, release, f"{_apt(release)} update -q; eatmydata {_apt(release)} install -y -q"
                f" --no-install-recommends {' '.join(names)}; {_apt(release)} clean", timeout=1800)
        policy.unlink()
        # A booted host gets the machine id nspawn passes (--uuid); the suite's
        # journalds in a dev root need one of their own (a namespace journal
        # and the runtime journal are kept under it).
        (tmp / "etc/machine-id").write_text("" if kind == "host" else uuid.uuid4().hex + "\n")
        if kind == "host":
            # no getty on a console nobody reads, no timer starting apt or fstrim mid-test
            for unit in ("console-getty.service", "getty@tty1.service", "apt-daily.timer",
                         "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer", "fstrim.timer",
                         "dpkg-db-backup.timer"):
                os.symlink("/dev/null", tmp / "etc/systemd/system" / unit)
        (tmp / ".packages").write_text(" ".join(names) + "\n")

    return _cached(path, build)


def release_commit(version: str) -> str:
    """The last commit whose debian/changelog names ``version`` on top: the
    parent of the commit that wrote the next version (HEAD if none did)."""
    commits = run(["git", "-C", str(TOP), "log", "--reverse", "--format=%H", "--", "debian/changelog"]).stdout.split()
    seen = False
    for c in commits:
        top = run(["git", "-C", str(TOP), "show", f"{c}:debian/changelog"]).stdout.split("\n", 1)[0]
        now = top.split("(", 1)[1].split(")", 1)[0] if "(" in top else ""
        if now == version:
            seen = True
        elif seen:
            return run(["git", "-C", str(TOP), "rev-parse", f"{c}^"]).stdout.strip()
    if seen:
        return run(["git", "-C", str(TOP), "rev-parse", "HEAD"]).stdout.strip()
    raise HostError(f"no commit of {TOP} has version {version} in debian/changelog")


def old_deb(version: str = "0.1.0") -> Path:
    """The .deb of an earlier release, built (once, cached) from its commit in
    git with that commit's own tools/build-deb on this machine (bookworm, where
    it was released)."""
    commit = release_commit(version)
    path = CACHE / f"old-{version}-{commit[:10]}"
    if (path / ".complete").exists():
        return next(path.glob(f"journal-sendmail_{version}_all.deb"))

    def build(tmp: Path) -> None:
        src = tmp / "src"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(TOP), "archive", "--format=tar", commit], check=True,
                                 stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-C", str(src), "-xf", "-"], input=archive, check=True)
        run([str(src / "tools/build-deb"), str(tmp)], timeout=900)
        shutil.rmtree(src)

    _cached(path, build)
    return next(path.glob(f"journal-sendmail_{version}_all.deb"))


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
                                       env={"PATH": SANE_PATH, **nspawn_env(SUITE)})
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
        # systemctl needs PID 1's private socket, made early in the boot; and until
        # PID 1 has made /run/systemd/system, systemctl answers "offline" at once
        # (sd_booted), even with --wait (seen once on trixie: 11 tests lost to it)
        while True:
            p = self.sh("systemctl is-system-running --wait", check=False, timeout=timeout)
            early = "Failed to connect to" in p.stderr or p.stdout.strip() == "offline"
            if not early or time.monotonic() > deadline:
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
    print(ensure_root(*sys.argv[1:3]))
    sys.exit(0)
