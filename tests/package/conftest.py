"""Fixtures for the package checks: the built .deb, the Debian mirror, a
cached bookworm base tarball and throwaway chroots made from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit.package import BASE_TARBALL, CACHE, SUITE, find_mirror, run


@pytest.fixture(scope="session")
def deb() -> Path:
    """The .deb under test, from $JOURNAL_SENDMAIL_DEB (tests/run sets it)."""
    value = os.environ.get("JOURNAL_SENDMAIL_DEB")
    if not value:
        pytest.skip("JOURNAL_SENDMAIL_DEB is not set: build the .deb with tools/build-deb "
                    "and point JOURNAL_SENDMAIL_DEB at it")
    path = Path(value).resolve()
    if not path.is_file():
        pytest.fail(f"JOURNAL_SENDMAIL_DEB={value}: no such file", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("the package checks need root (autopkgtest, piuparts, chroots)")
    return path


@pytest.fixture(scope="session")
def mirror() -> str:
    """The Debian mirror apt uses here, read from its sources at run time."""
    uri = find_mirror()
    if uri is None:
        pytest.fail("no Debian mirror for bookworm in /etc/apt/sources.list{,.d/}", pytrace=False)
    return uri


@pytest.fixture(scope="session")
def base_tarball(mirror: str) -> Path:
    """A minimal bookworm (debootstrap minbase + eatmydata), cached under
    /var/cache/journal-sendmail-tests; piuparts and the chroot tests start
    from it.  Delete the file to make a fresh one."""
    if BASE_TARBALL.exists():
        return BASE_TARBALL
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="journal-sendmail-base.") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", "--include=eatmydata", SUITE, str(root), mirror],
            timeout=900)
        # No daemon may start in the chroot (exim4, for one, would try).
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        run(["chroot", str(root), "apt-get", "clean"])
        part = BASE_TARBALL.with_suffix(".part")
        run(["tar", "-czf", str(part), "--one-file-system", "-C", str(root), "."], timeout=300)
        part.rename(BASE_TARBALL)
    return BASE_TARBALL


@pytest.fixture
def chroot(base_tarball: Path) -> Iterator[Path]:
    """A throwaway chroot unpacked from the base tarball (removed afterwards)."""
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="journal-sendmail-chroot."))
    try:
        run(["tar", "-xzf", str(base_tarball), "-C", str(root)], timeout=300)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        yield root
    finally:
        # in_chroot unmounts what it mounted, so nothing of the host is below.
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)

