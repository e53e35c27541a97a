"""Fixtures for the caller tests: the real Debian programs calling the INSTALLED
/usr/sbin/sendmail, each inside the private mount namespace of tests/conftest.py.

Nothing here touches the host: the test user lives in private copies of
/etc/passwd, /etc/group and /etc/shadow bind-mounted over the real ones, and
every directory a caller reads or writes (/etc/cron.d, /etc/sudoers.d, at's
spool ...) gets a private tmpfs for the length of one test.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from kit import harness
from kit.callers import MSG_MAIL, SENDMAIL, USER, Entry, User, free_id, private_file
from kit.support import INSTALLED, IS_ROOT

SKIP_REASON = "caller tests need the installed package (JOURNAL_SENDMAIL_UNDER_TEST=installed)"


@pytest.fixture(autouse=True)
def _installed_package_only() -> None:
    if not INSTALLED:
        pytest.skip(SKIP_REASON)
    if not IS_ROOT:
        pytest.skip("caller tests need root: a private mount namespace, journald and the callers' daemons")
    assert os.path.realpath(SENDMAIL) == "/usr/sbin/journal-sendmail", "our package must own /usr/sbin/sendmail"


@pytest.fixture(scope="session")
def user() -> Iterator[User]:
    """A non-root login, ``jsmcaller``, known only inside the namespace."""
    if not (INSTALLED and IS_ROOT):
        pytest.skip(SKIP_REASON)
    try:  # inherited from an enclosing test session's namespace: the same user
        known: int | None = pwd.getpwnam(USER).pw_uid
    except KeyError:
        known = None
    uid = free_id() if known is None else known
    home = f"/run/{USER}"
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, uid)
    os.chmod(home, 0o755)
    files = {
        "/etc/passwd": f"{USER}:x:{uid}:{uid}:journal-sendmail caller test:{home}:/bin/sh\n",
        "/etc/group": f"{USER}:x:{uid}:\n",
        "/etc/shadow": f"{USER}:!:19000:0:99999:7:::\n",
    }
    with ExitStack() as stack:
        for path, line in files.items() if known is None else ():
            original = Path(path)
            stack.enter_context(private_file(path, original.read_text() + line, original.stat().st_mode & 0o777))
        yield User(USER, uid, uid, home)


@pytest.fixture
def mails(journald: harness.Journald) -> Callable[..., list[Entry]]:
    """mails(n, *matches): wait for n mail entries (MESSAGE_ID of a message)."""

    def get(n: int, *matches: str, timeout: float = 20.0) -> list[Entry]:
        found = journald.entries(MSG_MAIL, *matches, wait_for=n, timeout=timeout)
        assert len(found) == n, f"want {n} mail entries, the journal has {len(found)}: {found}"
        return found

    return get


