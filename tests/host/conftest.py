"""Fixtures of the booted-host tests: the .deb under test, the cached root,
and booted containers with the package installed (one boot per module)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit.host import Host, HostError, NetNS, ensure_root


@pytest.fixture(scope="session")
def deb() -> Path:
    """The .deb under test, from $JOURNAL_SENDMAIL_DEB (tests/run sets it)."""
    value = os.environ.get("JOURNAL_SENDMAIL_DEB")
    if not value:
        pytest.skip("JOURNAL_SENDMAIL_DEB is not set: build the .deb with tools/build-deb "
                    "and point JOURNAL_SENDMAIL_DEB at it")
    if os.geteuid() != 0:
        pytest.skip("booting a container needs root")
    path = Path(value).resolve()
    if not path.is_file():
        pytest.fail(f"JOURNAL_SENDMAIL_DEB={value}: no such file", pytrace=False)
    return path


@pytest.fixture(scope="session")
def host_root(deb: Path) -> Path:
    try:
        return ensure_root()
    except HostError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def netns(deb: Path) -> Iterator[NetNS]:
    ns = NetNS()
    try:
        yield ns
    finally:
        ns.close()


BootFn = Callable[..., Host]


@pytest.fixture(scope="module")
def boot(deb: Path, host_root: Path, netns: NetNS) -> Iterator[BootFn]:
    """boot(name, binds={}, install=True) -> a booted Host with the .deb
    installed over exim4 (with install=False, exim4 still in place); every host
    is stopped (by its PID) when the module ends."""
    hosts: list[Host] = []

    def make(name: str, binds: dict[str, str] | None = None, install: bool = True) -> Host:
        h = Host(name, host_root, netns, {str(deb.parent): "/mnt/deb", **(binds or {})})
        hosts.append(h)
        if install:
            h.sh(f"apt-get install -y -q --no-install-recommends /mnt/deb/{deb.name}", timeout=300)
        return h

    try:
        yield make
    finally:
        for h in hosts:
            h.stop()
