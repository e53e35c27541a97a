"""Configuration: defaults, every key, and errors that name the key; a bad
key falls back to its built-in default and the others are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit.support import ROOT

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
def test_a_bad_key_falls_back_to_its_default_and_the_others_are_kept(line: str, key: str) -> None:
    others = {"identifier": "kept", "spool_max_size": "10M"} if key != "identifier" else {"spool_max_size": "10M"}
    text = "".join(f"{k} = {v}\n" for k, v in others.items())
    cfg = config.parse(f"[journal-sendmail]\n{text}{line}\n", "/etc/journal-sendmail.conf")
    assert [k for k, _ in cfg.problems] == [key]
    assert key in cfg.error and "/etc/journal-sendmail.conf" in cfg.error and "\n" not in cfg.error
    assert cfg.spool_max_size == 10 << 20
    assert cfg.identifier == others.get("identifier", "sendmail")
    defaults = config.Config()
    if key in config.KEYS:
        assert getattr(cfg, key) == getattr(defaults, key)
        assert repr(getattr(defaults, key)).strip("'") in cfg.error  # says what it used instead


@pytest.mark.parametrize(("line", "key"), ERRORS)
def test_check_is_strict_and_names_the_key(line: str, key: str, tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_text(f"[journal-sendmail]\n{line}\n")
    with pytest.raises(ConfigError, match=key) as info:
        config.check(str(p))
    assert info.value.code == 78 and str(p) in info.value.reason


def test_check_accepts_a_good_file_and_a_missing_default(tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_text("[journal-sendmail]\npriority = debug\n")
    assert config.check(str(p)) == str(p)
    assert "absent" in config.check(environ={}, default_path=str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.check(str(tmp_path / "nope.conf"))


def test_two_bad_keys_in_one_line() -> None:
    cfg = config.parse("[journal-sendmail]\ntimeout = banana\npriority = loud\nfacility = local1\n")
    assert [k for k, _ in cfg.problems] == ["timeout", "priority"]
    assert (cfg.timeout, cfg.priority, cfg.facility) == (5.0, 6, 17)
    assert cfg.error.count("\n") == 0 and "timeout" in cfg.error and "priority" in cfg.error


def test_max_below_part_size_keeps_the_good_part_size() -> None:
    cfg = config.parse("[journal-sendmail]\npart_size = 64K\nmax_size = 8K\n")
    assert (cfg.part_size, cfg.max_size) == (64 * 1024, config.Config().max_size)
    assert [k for k, _ in cfg.problems] == ["max_size"]


@pytest.mark.parametrize("text", [
    pytest.param("timeout = 3\n", id="no-section-header"),
    pytest.param("[journal-sendmail]\ntimeout = 3\ntimeout = 4\n", id="duplicate-key"),
], )
def test_an_unparsable_file_means_all_defaults(text: str) -> None:
    cfg = config.parse(text, "/etc/x.conf")
    assert cfg.problems and cfg.problems[0][0] == "" and "/etc/x.conf" in cfg.error
    assert config.replace(cfg, problems=()) == config.Config(path="/etc/x.conf")


def test_unknown_section_is_ignored_and_the_real_one_used() -> None:
    cfg = config.parse("[sendmail]\npriority = 3\n[journal-sendmail]\npriority = 5\n")
    assert cfg.priority == 5 and "unknown section" in cfg.error


def test_missing_default_file_means_defaults(tmp_path: Path) -> None:
    assert config.load(environ={}, default_path=str(tmp_path / "absent.conf")) == config.Config()


def test_environment_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_text("[journal-sendmail]\npriority = debug\n")
    assert config.load(environ={config.ENV_PATH: str(p)}).priority == 7


def test_named_missing_file_means_defaults_and_a_problem(tmp_path: Path) -> None:
    cfg = config.load(environ={config.ENV_PATH: str(tmp_path / "nope.conf")})
    assert "no such configuration file" in cfg.error
    assert config.replace(cfg, problems=()) == config.Config()


def test_unreadable_file_means_defaults_and_a_problem(tmp_path: Path) -> None:
    p = tmp_path / "c.conf"
    p.write_bytes(b"[journal-sendmail]\nidentifier = \xff\n")  # not UTF-8
    cfg = config.load(str(p))
    assert "cannot read" in cfg.error and cfg.identifier == "sendmail"


def test_spool_limit_follows_max_size() -> None:
    assert config.Config(max_size=10 << 20).spool_limit == 11 << 20
    assert config.Config(spool_max_size=5).spool_limit == 5
