"""piuparts: install and purge in a clean bookworm leave nothing behind."""

from __future__ import annotations

from pathlib import Path

from kit.package import SUITE, run


def test_piuparts_install_purge(deb: Path, base_tarball: Path, mirror: str, tmp_path: Path) -> None:
    log = tmp_path / "piuparts.log"
    run(
        ["piuparts", f"--basetgz={base_tarball}", f"--distribution={SUITE}", f"--mirror={mirror}",
         "--no-upgrade-test", f"--log-file={log}", str(deb)],
        timeout=900, tail=150,
    )
