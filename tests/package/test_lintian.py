"""lintian on the built package: no error or warning; info, pedantic and
experimental tags are shown (overrides live in debian/, each with its reason)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit.package import run


def test_lintian_is_clean(deb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The .changes next to the .deb (tools/build-deb leaves it) covers the
    # source package too.
    changes = sorted(deb.parent.glob(deb.name.split("_")[0] + "_" + deb.name.split("_")[1] + "_*.changes"))
    target = changes[-1] if changes else deb
    # Not --show-overrides: lintian 2.116 then counts overridden warnings
    # as failures.
    p = run(["lintian", "--fail-on", "error,warning", "-I", "-E", "--pedantic", str(target)],
            timeout=300)
    with capsys.disabled():
        print(f"\nlintian -I -E --pedantic {target.name}:")
        print(p.stdout.rstrip() or "(no tags)")
