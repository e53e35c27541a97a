"""Paths and helpers shared by the tests (conftest.py holds the fixtures)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DATA = ROOT / "tests" / "data"
LAUNCHER = ROOT / "bin" / "journal-sendmail"
# JOURNAL_SENDMAIL_UNDER_TEST=installed tests /usr/sbin/journal-sendmail and
# the installed Python package instead of the source tree.
INSTALLED = os.environ.get("JOURNAL_SENDMAIL_UNDER_TEST") == "installed"
IS_ROOT = os.geteuid() == 0


def python(code: str, src: bool = not INSTALLED) -> list[str]:
    """A command that runs ``code`` with /usr/bin/python3 (arguments may follow), the
    source tree's package first on its path when ``src`` (the default unless the
    installed package is under test)."""
    prefix = ["/usr/bin/env", f"PYTHONPATH={SRC}"] if src else []
    return [*prefix, "/usr/bin/python3", "-c", code]


# journal-mail as the tests run it: the installed one, or the source tree's
READER = ["/usr/bin/journal-mail"] if INSTALLED else python("from journal_sendmail.reader.cli import entry; entry()")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def run_sendmail(
    bindir: Path,
    args: list[str],
    data: bytes = b"",
    name: str = "sendmail",
    env: dict[str, str] | None = None,
    timeout: float = 60,
    **kw: object,
) -> subprocess.CompletedProcess[bytes]:
    """Run the program under test as ``name`` from ``bindir``, data on stdin."""
    return subprocess.run(
        [str(bindir / name), *args],
        input=data,
        capture_output=True,
        env=env if env is not None else {"PATH": "/usr/bin:/bin"},
        timeout=timeout,
        **kw,  # type: ignore[arg-type]
    )


def wait_until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``cond`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def json_raw(rec: dict[str, object]) -> bytes:
    """The exact message bytes a JSON line of ``export --format json`` carries."""
    import base64

    if "body_base64" in rec:
        return base64.b64decode(str(rec["body_base64"]))
    return str(rec["body"]).encode("utf-8")


def mboxrd_unescape(text: bytes) -> bytes:
    r"""The inverse of mboxrd quoting: one ``>`` less before ``>*From ``.

    >>> mboxrd_unescape(b'a\n>From x\n>>From y\n')
    b'a\nFrom x\n>From y\n'
    """
    import re

    return re.sub(rb"^>(>*From )", rb"\1", text, flags=re.MULTILINE)
