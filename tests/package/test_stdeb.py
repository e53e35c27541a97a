"""The stdeb path (setup.cfg [sdist_dsc]) still builds a plain Python .deb."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from kit.package import ROOT, run

JUNK = (".git", "deb_dist", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".mypy_cache", ".ruff_cache", ".hypothesis", "*.tar.gz")


@pytest.mark.slow
def test_stdeb_bdist_deb(deb: Path, tmp_path: Path) -> None:
    # In a copy: stdeb writes deb_dist/ and *.egg-info next to setup.py.
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(*JUNK))
    run(["/usr/bin/python3", "setup.py", "--command-packages=stdeb.command", "bdist_deb"],
        cwd=tree, timeout=300, tail=80)
    built = sorted((tree / "deb_dist").glob("python3-journal-sendmail_*_all.deb"))
    assert len(built) == 1, sorted(p.name for p in (tree / "deb_dist").iterdir())
    listing = run(["dpkg-deb", "-c", str(built[0])]).stdout
    assert re.search(r" \./usr/lib/python3/dist-packages/journal_sendmail/cli\.py$", listing, re.M), listing
    assert re.search(r" \./usr/bin/journal-mail$", listing, re.M), listing
    # The plain Python .deb has none of the MTA integration; debian/ stayed out.
    assert not re.search(r" \./(usr/sbin|etc|lib/systemd)/", listing), listing
    fields = run(["dpkg-deb", "-f", str(built[0]), "Version", "Depends", "Conflicts"]).stdout
    assert "python3-systemd" in fields and "Conflicts: journal-sendmail" in fields, fields
    version = run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    assert f"Version: {version}-1" in fields, (version, fields)
