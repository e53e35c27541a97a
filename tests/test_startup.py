"""The start-up budget of a cron mail: what sendmail imports on that path.

Every cron job's mail pays sendmail's start-up, so the modules of a plain
cron mail's path use ``posix``, ``_socket`` and hand-written checks instead
of ``os`` and ``re`` (~1 ms each under python3 -S), ``email`` (~20 ms),
``dataclasses`` and ``typing`` (~16 ms), ``socket`` (~7 ms: enum, selectors),
``configparser`` and python-systemd, and never the reader wing; nor
``__future__`` (0.56 million instructions, 3% of the interpreter's own
start-up: these modules quote the annotations that name types imported
only for type checkers instead of ``from __future__ import annotations``).  This test
holds that budget, with the provenance wait and MAIL_CALLER_UNIT in place:
it runs the program under test with ``-X importtime`` on a cron mail and
fails when one of them is imported.  And it holds the preload: the modules of
that path come straight from their byte-code caches (``preload``), never
through importlib's finders, and from importlib again whenever a cache is
not one importlib would take.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kit.harness import Journald, one
from kit.support import INSTALLED, LAUNCHER, SRC

from journal_sendmail import CRON_PATH
from journal_sendmail.record import MSG_MAIL

FORBIDDEN = ("__future__", "os", "re", "email", "dataclasses", "typing", "socket", "enum", "configparser", "systemd",
             "hashlib", "_hashlib",  # OpenSSL: 3 ms; the C sha256 (_sha256, 3.12+: _sha2) instead
             "journal_sendmail.reader")
CRON_MAIL = (
    b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@web1> /usr/local/bin/backup\n"
    b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
    b"X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\nX-Cron-Env: <LOGNAME=root>\n\n"
    b"backup: copied 60 files\n"
)


def imported(importtime_stderr: str) -> list[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = []
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.append(name)
    return names


def forbidden(names: list[str]) -> list[str]:
    """
    >>> forbidden(["posix", "os", "email.parser", "journal_sendmail.reader.cli", "errno", "re"])
    ['os', 'email.parser', 'journal_sendmail.reader.cli', 're']
    """
    return [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]


PACKAGE = Path("/usr/lib/python3/dist-packages/journal_sendmail") if INSTALLED else SRC / "journal_sendmail"


def cron_mail(program: str | Path) -> list[str]:
    """Send the cron mail through ``program`` under -X importtime; the modules it imported through importlib."""
    p = subprocess.run(
        ["/usr/bin/python3", "-X", "importtime", "-I", "-S", str(program), "-FCronDaemon", "-i", "-B8BITMIME",
         "-oem", "root"],
        input=CRON_MAIL, capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return imported(p.stderr.decode())


def ours(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("journal_sendmail.")]


@pytest.fixture
def package_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The package under test copied to a directory of its own, byte-compiled
    as py3compile does it (timestamp-checked caches), with the launcher
    pointed there: ``(launcher, package directory)``; ``preload=False``
    leaves the preload out of the launcher."""

    def make(preload: bool = True) -> tuple[Path, Path]:
        d = tmp_path / ("with" if preload else "without")
        shutil.copytree(PACKAGE, d / "journal_sendmail", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["/usr/bin/python3", "-m", "compileall", "-q", str(d / "journal_sendmail")], check=True)
        text = LAUNCHER.read_text().replace('sys.path.append("/usr/lib/python3/dist-packages")',
                                            f'sys.path.append({str(d)!r})\nsys.path.append("/usr/lib/python3/dist-packages")')
        if not preload:
            text = text.replace("journal_sendmail.preload()", "pass")
        assert text.count(str(d)) == 1 and (preload or "preload()" not in text)
        launcher = d / "journal-sendmail"
        launcher.write_text(text)
        return launcher, d / "journal_sendmail"

    return make


def test_a_cron_mail_imports_nothing_expensive(journald: Journald, package_copy) -> None:  # type: ignore[no-untyped-def]
    """The whole path, seen without the preload (which hides our own modules from -X importtime)."""
    launcher, _ = package_copy(preload=False)
    names = cron_mail(launcher)
    assert "journal_sendmail.cli" in names and "journal_sendmail.deliver" in names, names  # the path was measured
    assert forbidden(names) == [], names
    # and the preload's list is that path: nothing missing, nothing it does not need
    assert sorted(n.removeprefix("journal_sendmail.") for n in ours(names)) == sorted(CRON_PATH), names
    stored = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [one(e["MAIL_RAW"]) for e in stored] == [CRON_MAIL]


def test_the_program_under_test_preloads_the_whole_cron_path(journald: Journald, bindir: Path,
                                                             package_copy) -> None:  # type: ignore[no-untyped-def]
    """No module of ours on a cron mail's path goes through importlib: each
    comes in order (after those its top imports) from its cache.  Installed,
    that is py3compile's caches of the package on this release; from the
    source tree, a compiled copy of it."""
    launcher = (bindir / "journal-sendmail").resolve() if INSTALLED else package_copy()[0]
    names = cron_mail(launcher)
    assert "journal_sendmail" in names and ours(names) == [], names
    assert forbidden(names) == [], names
    stored = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [one(e["MAIL_RAW"]) for e in stored] == [CRON_MAIL]


@pytest.mark.parametrize("spoil", ["stale source", "hash-based cache", "no cache", "foreign magic"])
def test_a_cache_importlib_would_not_take_is_not_taken(journald: Journald, package_copy, spoil: str) -> None:  # type: ignore[no-untyped-def]
    """From the first module whose cache is not one importlib would use as it
    is, importlib loads the modules (and finds the source newer, recompiles)."""
    launcher, pkg = package_copy()
    cache = pkg / "__pycache__"
    first = cache / f"headers.{sys.implementation.cache_tag}.pyc"
    if spoil == "stale source":
        src = pkg / "headers.py"
        src.write_text(src.read_text() + "\nSPOILED = True\n")
    elif spoil == "hash-based cache":
        subprocess.run(["/usr/bin/python3", "-m", "compileall", "-q", "-f", "--invalidation-mode", "checked-hash",
                        str(pkg / "headers.py")], check=True)
    elif spoil == "no cache":
        first.unlink()
    else:
        data = first.read_bytes()
        first.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    names = cron_mail(launcher)
    # the modules before it came from their caches, it and those after it through importlib
    assert sorted(ours(names)) == sorted(f"journal_sendmail.{n}" for n in CRON_PATH[CRON_PATH.index("headers"):])
    stored = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert [one(e["MAIL_RAW"]) for e in stored] == [CRON_MAIL]


def test_the_program_runs_isolated_as_its_shebang_says(journald: Journald, bindir: Path) -> None:
    """Run as cron runs it (through its "#!/usr/bin/python3 -IS" line), the
    program ignores PYTHON* variables: -I is in effect.  dh-python of trixie
    and later rewrote the line to "#! /usr/bin/python3" (site imported, the
    environment read: 1.66x instead of 1.4x on a cron mail) unless
    debian/rules says --no-shebang-rewrite; installed, this checks the
    package of the release it runs on."""
    program = (bindir / "journal-sendmail").resolve()
    assert program.read_text().splitlines()[0] == "#!/usr/bin/python3 -IS"
    p = subprocess.run(
        [str(program), "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], input=CRON_MAIL, capture_output=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPROFILEIMPORTTIME": "1", "PYTHONVERBOSE": "1"}, timeout=60,
    )
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert b"import time:" not in p.stderr and b"import " not in p.stderr, p.stderr.decode()[-2000:]
    journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
