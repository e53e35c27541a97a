"""journal-sendmail and exim4 take each other's place (Provides, Conflicts,
Replaces: mail-transport-agent), in a throwaway chroot: the host's
installed package is untouched."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from kit.package import in_chroot, run

LINKS = ("/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/bin/mailq", "/usr/bin/newaliases")
# Enabled on install?  The exporter is opt-in.
UNITS = {
    "journal-sendmail-flush.path": True,
    "journal-sendmail-flush.service": True,
    "journal-sendmail-export.service": False,
    "journal-mail-index.service": False,
    "journal-mail-forward.service": False,
    "journal-mail-web.service": False,
}


def status(root: Path, package: str) -> str:
    """dpkg's two-letter state of ``package`` ("ii", "rc"), "" when unknown."""
    p = in_chroot(root, f"dpkg-query -W -f '${{db:Status-Abbrev}}' {package} 2>/dev/null || true")
    return p.stdout.strip()


def resolve(root: Path, path: str) -> str:
    return in_chroot(root, f"readlink -f {path} || true").stdout.strip()


def our_paths(deb: Path) -> list[str]:
    """Every file and link the package ships, and the directories named after it."""
    paths = []
    for line in run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines():
        mode, *_, name = line.split(maxsplit=5)
        path = name.split(" -> ")[0].removeprefix(".").rstrip("/")
        if not mode.startswith("d") or "journal" in path.rsplit("/", 1)[-1]:
            paths.append(path)
    return paths


def wanted_by(root: Path, unit: str) -> list[str]:
    text = (root / "lib/systemd/system" / unit).read_text()
    return [t for line in re.findall(r"^WantedBy=(.*)$", text, re.M) for t in line.split()]


def exists(root: Path, path: str) -> bool:
    return os.path.lexists(str(root) + path)


@pytest.mark.slow
def test_takes_over_from_exim4_and_gives_way_again(deb: Path, chroot: Path) -> None:
    root = chroot
    shutil.copy(deb, root / "tmp" / deb.name)
    pkg = f"/tmp/{deb.name}"
    in_chroot(root, "apt-get update -q && apt-get install -y -q --no-install-recommends exim4")
    assert resolve(root, "/usr/sbin/sendmail") == "/usr/sbin/exim4"

    # Ours replaces exim4: apt removes the daemon (the mail-transport-agent).
    out = in_chroot(root, f"apt-get install -y -q --no-install-recommends {pkg}").stdout
    assert status(root, "journal-sendmail") == "ii", out
    assert status(root, "exim4-daemon-light") != "ii", out
    for link in LINKS:
        assert resolve(root, link) == "/usr/sbin/journal-sendmail", (link, out)
    query = in_chroot(root, "update-alternatives --query sendmail").stdout
    assert "Value: /usr/sbin/journal-sendmail" in query, query
    targets = {unit: wanted_by(root, unit) for unit in UNITS}
    for unit, enabled in UNITS.items():
        assert targets[unit] or not enabled, f"{unit} has no WantedBy= to be enabled by"
        for target in targets[unit]:
            link = f"/etc/systemd/system/{target}.wants/{unit}"
            assert exists(root, link) == enabled, (link, out)
    # No journald in the chroot: the mail goes to the spool, exit 0.
    in_chroot(root, "printf 'To: root\\nSubject: chroot\\n\\nspooled\\n' | sendmail -t -i && mailq && newaliases")
    assert os.listdir(root / "var/spool/journal-sendmail"), "sendmail did not spool without a journal"

    # Purge leaves no MTA, no alternatives entry, no file of ours.
    out = in_chroot(root, "apt-get purge -y -q journal-sendmail").stdout
    assert status(root, "journal-sendmail") == "", out
    left = [p for p in (*LINKS, "/etc/alternatives/sendmail", "/var/lib/dpkg/alternatives/sendmail",
                        "/var/spool/journal-sendmail", "/var/log/journal-sendmail",
                        *(f"/etc/systemd/system/{t}.wants/{u}" for u in UNITS for t in targets[u]),
                        *our_paths(deb)) if exists(root, p)]
    assert not left, f"left after purge: {left}\n{out}"

    # exim4 installed over ours removes us cleanly and gets its links back.
    in_chroot(root, f"apt-get install -y -q --no-install-recommends {pkg}")
    out = in_chroot(root, "apt-get install -y -q --no-install-recommends exim4").stdout
    assert status(root, "journal-sendmail") in ("rc", ""), out
    assert status(root, "exim4-daemon-light") == "ii", out
    for link in LINKS:
        assert resolve(root, link) == "/usr/sbin/exim4", (link, out)
    assert not exists(root, "/var/lib/dpkg/alternatives/sendmail"), out
    assert not exists(root, "/etc/alternatives/sendmail"), out
