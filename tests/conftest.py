"""Fixtures: a private real journald, and the program under test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kit import harness
from kit.support import INSTALLED, IS_ROOT, LAUNCHER, SRC, run_sendmail

if IS_ROOT:
    harness.enter_private_namespace()


def pytest_configure(config: pytest.Config) -> None:
    """The package under test is the one asked for: the installed one (a run with
    JOURNAL_SENDMAIL_UNDER_TEST=installed must say -o pythonpath=tests), or src/."""
    import journal_sendmail

    here = Path(journal_sendmail.__file__).resolve()
    if INSTALLED == here.is_relative_to(SRC):
        raise pytest.UsageError(f"JOURNAL_SENDMAIL_UNDER_TEST={'installed' if INSTALLED else ''}, but "
                                f"journal_sendmail comes from {here.parent} (pytest -o pythonpath=tests?)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root: a private mount namespace and journald")
    for item in items:
        if "journald" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def journald() -> Iterator[harness.Journald]:
    """A fresh, empty, real journald for one test."""
    harness.clean_journal_dirs()
    j = harness.Journald(activated=True).start()
    try:
        yield j
    finally:
        j.stop()


@pytest.fixture(scope="session")
def bindir() -> Iterator[Path]:
    """A directory with sendmail, mailq, newaliases, journal-sendmail and runq
    commands that run the program under test.  It lives outside pytest's
    private (0700) temporary directory, so that other users (nobody) can run
    the commands too."""
    d = Path(tempfile.mkdtemp(prefix="journal-sendmail-bin.", dir="/var/tmp"))
    os.chmod(d, 0o755)
    if INSTALLED:
        target = Path("/usr/sbin/journal-sendmail")
        (d / "journal-sendmail").symlink_to(target)
    else:
        target = d / "journal-sendmail"
        # the source tree first; python-systemd from Debian's directory after it
        # (the sender reads the journal back after a journald restart)
        text = LAUNCHER.read_text().replace(
            'sys.path.append("/usr/lib/python3/dist-packages")',
            f'sys.path.append({str(SRC)!r})\nsys.path.append("/usr/lib/python3/dist-packages")')
        target.write_text(text)
        target.chmod(0o755)
    for name in ("sendmail", "mailq", "newaliases", "runq"):
        (d / name).symlink_to(target)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sendmail(bindir: Path):  # type: ignore[no-untyped-def]
    def run(args: list[str], data: bytes = b"", **kw: object) -> subprocess.CompletedProcess[bytes]:
        return run_sendmail(bindir, args, data, **kw)  # type: ignore[arg-type]

    return run


@pytest.fixture
def config_file(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a configuration file; returns the environment that selects it."""

    def make(text: str) -> dict[str, str]:
        p = tmp_path / "journal-sendmail.conf"
        p.write_text("[journal-sendmail]\n" + text)
        p.chmod(0o644)
        return {"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": str(p)}

    return make





def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (root) nothing may skip: any skip fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", ())) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        if reporter:
            reporter.write_line(f"FAILED: {skipped} test(s) skipped, and nothing may skip in CI", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
