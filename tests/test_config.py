"""Configuration: defaults, every key, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT

from journal_sendmail import config
from journal_sendmail.errors import ConfigError


def test_shipped_file_is_all_defaults_and_documents_every_key() -> None:
    text = (ROOT / "conf" / "journal-sendmail.conf").read_text()
    assert config.parse(text) == config.Config(path="<string>")
    for key in config.KEYS:
        assert f"# {key} =" in text, key


def test_uncommented_shipped_file_parses_to_the_defaults() -> None:
    text = (ROOT / "conf" / "journal-sendmail.conf").read_text()
    active = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines())
    assert config.parse(active, "x") == config.Config(path="x")


VALUES = [
    pytest.param("identifier = mta", "identifier", "mta", id="identifier"),
    pytest.param("priority = warning", "priority", 4, id="priority-name"),
    pytest.param("priority = 3", "priority", 3, id="priority-number"),
    pytest.param("facility = local3", "facility", 19, id="facility-name"),
    pytest.param("socket = /run/systemd/journal.mail/socket", "socket", "/run/systemd/journal.mail/socket",
                 id="socket"),
    pytest.param("timeout = 0.5", "timeout", 0.5, id="timeout"),
    pytest.param("part_size = 64K", "part_size", 65536, id="part-size"),
    pytest.param("max_size = 1GiB", "max_size", 1 << 30, id="max-size"),
    pytest.param("store_text = no", "store_text", False, id="store-text"),
    pytest.param("spool = /tmp/spool", "spool", "/tmp/spool", id="spool"),
    pytest.param("spool_max_size = 10M", "spool_max_size", 10 << 20, id="spool-max-size"),
]


@pytest.mark.parametrize(("line", "key", "value"), VALUES)
def test_values(line: str, key: str, value: object) -> None:
    cfg = config.parse(f"[journal-sendmail]\n{line}\n")
    assert getattr(cfg, key) == value


ERRORS = [
    pytest.param("priority = loud", "priority", id="priority"),
    pytest.param("facility = 99", "facility", id="facility"),
    pytest.param("timeout = 0", "timeout", id="timeout-zero"),
    pytest.param("timeout = soon", "timeout", id="timeout-word"),
    pytest.param("part_size = 1k2", "part_size", id="size-syntax"),
    pytest.param("part_size = 1", "part_size", id="part-size-too-small"),
    pytest.param("max_size = 4K", "max_size", id="max-below-part"),
    pytest.param("store_text = perhaps", "store_text", id="bool"),
    pytest.param("socket = relative/path", "socket", id="relative-socket"),
    pytest.param("identifier = two words", "identifier", id="identifier-spaces"),
    pytest.param("colour = blue", "colour", id="unknown-key"),
]


@pytest.mark.parametrize(("line", "key"), ERRORS)
def test_errors_name_the_key(line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        config.parse(f"[journal-sendmail]\n{line}\n", "/etc/journal-sendmail.conf")
    assert info.value.code == 78
    assert "/etc/journal-sendmail.conf" in info.value.reason


def test_unknown_section() -> None:
    with pytest.raises(ConfigError, match="unknown section"):
        config.parse("[sendmail]\npriority = 3\n")


def test_missing_default_file_means_defaults(tmp_path: Path) -> None:
    assert config.load(environ={}, default_path=str(tmp_path / "absent.conf")) == config.Config()


def test_environment_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_text("[journal-sendmail]\npriority = debug\n")
    assert config.load(environ={config.ENV_PATH: str(p)}).priority == 7


def test_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(environ={config.ENV_PATH: str(tmp_path / "nope.conf")})


def test_spool_limit_follows_max_size() -> None:
    assert config.Config(max_size=10 << 20).spool_limit == 11 << 20
    assert config.Config(spool_max_size=5).spool_limit == 5
