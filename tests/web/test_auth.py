"""The password file of serve --auth: salted scrypt lines, checked when read (78 otherwise)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from journal_sendmail.errors import ConfigError
from journal_sendmail.reader.web.auth import Passwords, hash_password

FAST = {"n": 2**4, "r": 8, "p": 1}  # the format's cost fields, kept small for the tests


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_salted_and_checked(tmp_path: Path) -> None:
    one, two = hash_password("pw", **FAST), hash_password("pw", **FAST)
    assert one != two  # a new salt each time
    f = tmp_path / "passwd"
    f.write_text(f"# users\n\nalice:{one}\nbob:{hash_password('other', **FAST)}\n")
    pw = Passwords.load(str(f))
    assert pw.check("alice", "pw") and not pw.check("alice", "PW") and not pw.check("carol", "pw")
    assert pw.check_header(header("bob", "other")) == "bob"
    assert pw.check_header(header("bob", "other")) == "bob"  # remembered
    assert pw.check_header(header("bob", "wrong")) is None
    assert pw.check_header("Basic !!!") is None and pw.check_header("Bearer x") is None
    assert pw.check_header(None) is None


BAD = [
    ("plain", "alice:secret\n"),
    ("md5", "alice:$1$abc$def\n"),
    ("no-name", f":{hash_password('x', **FAST)}\n"),
    ("twice", f"alice:{hash_password('x', **FAST)}\nalice:{hash_password('y', **FAST)}\n"),
    ("n-not-power-of-two", "alice:scrypt$1000$8$1$MDEyMzQ1Njc4OWFiY2RlZg==$" + "A" * 44 + "\n"),
    ("short-salt", "alice:scrypt$16$8$1$AAAA$" + "A" * 44 + "\n"),
    ("empty", "# nobody\n"),
]


@pytest.mark.parametrize("text", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / "passwd"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        Passwords.load(str(f))
    assert e.value.code == 78


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Passwords.load(str(tmp_path / "missing"))


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "symlink", "other-owner", "directory"])
def test_a_file_others_could_change_is_refused(tmp_path: Path, how: str) -> None:
    """Whoever can write the password file can add a user: such a file is refused (78)."""
    real = tmp_path / "real"
    real.write_text(f"admin:{hash_password('pw', **FAST)}\n")
    real.chmod(0o600)
    path = real
    if how == "group-writable":
        real.chmod(0o620)
    elif how == "world-writable":
        real.chmod(0o602)
    elif how == "symlink":
        path = tmp_path / "link"
        path.symlink_to(real)
    elif how == "other-owner":
        os.chown(real, 4242, 4242)
    else:
        path = tmp_path
    with pytest.raises(ConfigError):
        Passwords.load(str(path))
    if how != "directory":
        real.chmod(0o644)
        os.chown(real, 0, 0)
        assert Passwords.load(str(real)).users  # readable by others is fine: salted hashes
