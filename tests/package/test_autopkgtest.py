"""debian/tests through autopkgtest's null runner, on this machine, against
the installed package (tests/run installs the .deb first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kit import harness
from kit.package import ROOT, SANE_PATH, run


def installed_md5sums() -> str:
    path = Path("/var/lib/dpkg/info/journal-sendmail.md5sums")
    return path.read_text() if path.exists() else ""


def test_autopkgtest(deb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The null runner installs "@" with apt, which keeps an installed package
    # of the same version even when it was built from other files; then the
    # tests would check that one instead of the .deb under test.
    shipped = run(["dpkg-deb", "--info", str(deb), "md5sums"]).stdout
    if installed_md5sums() != shipped:
        pytest.fail(f"the installed journal-sendmail is not {deb}: install it first "
                    f"(apt-get install --reinstall {deb})", pytrace=False)
    out = tmp_path / "autopkgtest"
    # autopkgtest clears the environment; CI=true makes a skip in the suite fail.
    ci = [f"--env=CI={os.environ['CI']}"] if "CI" in os.environ else []
    # In the mount namespace pytest started in: the suite inside must not
    # inherit this session's private mounts (a test user's private
    # /etc/passwd, say); it makes its own.
    p = run(
        harness.in_host_namespace(["autopkgtest", f"--env=PATH={SANE_PATH}", *ci, f"--output-dir={out}",
                                   str(deb), f"{ROOT}/", "--", "null"]),
        timeout=900, check=False,
    )
    summary = (out / "summary").read_text() if (out / "summary").exists() else "(no summary)"
    with capsys.disabled():
        print(f"\nautopkgtest summary:\n{summary.rstrip()}")
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-200:])
        pytest.fail(f"autopkgtest exited with {p.returncode}; the whole log is {out}/log; "
                    f"its last 200 lines:\n{tail}", pytrace=False)


def test_installed_suite_depends_on_every_caller() -> None:
    """debian/tests/control must install what tests/callers exercises."""
    control = (ROOT / "debian/tests/control").read_text()
    stanza = next(s for s in control.split("\n\n") if "Tests: installed-suite" in s)
    depends = stanza.split("Depends:", 1)[1].split("Restrictions:", 1)[0]
    listed = {d.strip() for d in depends.split(",") if d.strip()}
    callers = (ROOT / "tests/callers/apt-deps.txt").read_text().split()
    assert not set(callers) - listed, f"add to debian/tests/control: {sorted(set(callers) - listed)}"
