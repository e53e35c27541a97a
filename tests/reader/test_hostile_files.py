"""Root's outputs never go through a link nor into a directory another user controls.

uid nobody plants, in a sticky world-writable directory (as /tmp is), a
directory of its own, a symbolic link to a directory, and symbolic links to
a file of root's; root's ``export --format eml -o DIR``, ``follow --format
eml -o DIR``, ``-o FILE``, ``--cursor-file`` and the index are pointed at
them.  Each is refused with exit 73 and a clear reason, and the target of
every link is unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit.reader import as_user, message, run_jm, spawn_jm, wait_until

NOBODY = 65534
ORIGINAL = b"* * * * * root true # root's own file\n"
Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sticky, world-writable directory like /tmp (pytest's own is root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="jm-hostile.", dir="/var/tmp"))
    os.chmod(d, 0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_nobody(*cmd: str) -> None:
    subprocess.run([*as_user(NOBODY), *cmd], check=True, timeout=30, cwd="/")


@pytest.fixture
def planted(shared: Path, tmp_path: Path) -> dict[str, Path]:
    """Root's target file and directory, and nobody's links and directories pointing at them."""
    target_dir = tmp_path / "cron.d"
    target_dir.mkdir()
    target = target_dir / "job"
    target.write_bytes(ORIGINAL)
    as_nobody("mkdir", str(shared / "nobodys"))
    as_nobody("ln", "-s", str(target_dir), str(shared / "dirlink"))
    for name in ("out", "cursor"):
        as_nobody("ln", "-s", str(target), str(shared / name))
    open_dir = tmp_path / "open"  # root's, but writable by everyone and not sticky
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    return {"target": target, "target_dir": target_dir, "shared": shared, "open": open_dir}


def unchanged(p: dict[str, Path]) -> None:
    assert p["target"].read_bytes() == ORIGINAL
    assert sorted(os.listdir(p["target_dir"])) == ["job"]


@pytest.mark.usefixtures("journald")
def test_planted_links_and_directories_are_refused(planted: dict[str, Path], sendmail: Sendmail) -> None:
    assert sendmail(["root"], message("to export")).returncode == 0
    shared = planted["shared"]
    cases = {
        "eml into nobody's directory": ["export", "--format", "eml", "-o", str(shared / "nobodys")],
        "eml into a link to root's directory": ["export", "--format", "eml", "-o", str(shared / "dirlink")],
        "eml under a link": ["export", "--format", "eml", "-o", str(shared / "dirlink" / "new")],
        "eml into a directory writable by all": ["export", "--format", "eml", "-o", str(planted["open"])],
        "follow eml into nobody's directory": ["follow", "-n", "all", "--format", "eml", "-o",
                                               str(shared / "nobodys")],
        "export -o a link": ["export", "--format", "mbox", "-o", str(shared / "out")],
        "list -o into nobody's directory": ["export", "--format", "json", "-o", str(shared / "nobodys" / "x")],
        "follow -o a link": ["follow", "-n", "all", "--format", "json", "-o", str(shared / "out")],
        "the cursor file a link": ["follow", "-n", "all", "--format", "json", "-o", str(shared / "roots"),
                                   "--cursor-file", str(shared / "cursor")],
    }
    for what, args in cases.items():
        p = run_jm(*args)
        assert p.returncode == 73, (what, p.returncode, p.stderr)
        assert b"refused" in p.stderr and b"Traceback" not in p.stderr, (what, p.stderr)
        unchanged(planted)


@pytest.mark.usefixtures("journald")
def test_the_index_refuses_a_directory_of_nobodys(planted: dict[str, Path], sendmail: Sendmail) -> None:
    assert sendmail(["root"], message("to index")).returncode == 0
    shared = planted["shared"]
    as_nobody("mkdir", str(shared / "nobodys" / "index"))
    p = run_jm("index", env={"JOURNAL_MAIL_INDEX_DIR": str(shared / "nobodys" / "index")})
    assert p.returncode == 73 and b"refused" in p.stderr, p.stderr
    p = run_jm("index", env={"JOURNAL_MAIL_INDEX_DIR": str(shared / "dirlink")})
    assert p.returncode == 73 and b"refused" in p.stderr, p.stderr
    unchanged(planted)


@pytest.mark.usefixtures("journald")
def test_safe_outputs_still_work(tmp_path: Path, sendmail: Sendmail) -> None:
    """The same commands into root's own places write what they always wrote."""
    assert sendmail(["root"], message("kept")).returncode == 0
    eml = tmp_path / "a" / "eml"
    assert run_jm("export", "--format", "eml", "-o", str(eml)).returncode == 0
    (f,) = eml.iterdir()
    assert b"Subject: kept" in f.read_bytes() and f.stat().st_mode & 0o777 == 0o600
    assert eml.stat().st_mode & 0o777 == 0o700
    out = tmp_path / "out.json"
    cursor = tmp_path / "cursor"
    out.write_bytes(b"")
    p = spawn_jm("follow", "-n", "all", "--format", "json", "-o", str(out), "--cursor-file", str(cursor))
    try:
        wait_until(lambda: cursor.exists() and b'"subject":"kept"' in out.read_bytes(), what="follow's output")
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert cursor.read_text().startswith("s=") and cursor.stat().st_mode & 0o777 == 0o600
    idx = tmp_path / "index"
    assert run_jm("index", env={"JOURNAL_MAIL_INDEX_DIR": str(idx)}).returncode == 0
    assert any(n.endswith(".sqlite3") for n in os.listdir(idx))
