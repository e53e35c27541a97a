"""The forwarder's documents are current: every key documented, the README's config valid, the unit understood."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from kit.support import ROOT

from journal_sendmail.reader.forward import config

PAGE = ROOT / "man" / "journal-mail-forward.toml.5"
CONFFILE = ROOT / "conf" / "forward.toml"
UNIT = ROOT / "conf" / "journal-mail-forward.service"
KEYS = sorted({*config.TOP_KEYS, *config.SOURCE_KEYS, *config.COMMON_KEYS, *config.SMTP_KEYS, *config.WEBHOOK_KEYS,
               *config.RULE_KEYS, *config.DIGEST_KEYS, *config.EXPECT_KEYS}
              - {"source", "destination", "rule", "digest", "expect"})


@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_in_the_man_page_and_commented_in_the_conffile(key: str) -> None:
    assert re.search(rf"^\.B {key}$", PAGE.read_text(), re.M) or re.search(rf"^\.BR {key} ,", PAGE.read_text(), re.M)
    assert re.search(rf"^#\s*{key} =|[{{,] {key} =", CONFFILE.read_text(), re.M), key


def test_every_match_key_is_documented() -> None:
    text = PAGE.read_text()
    for key in config.MATCH_KEYS:
        assert re.search(rf"^\.BR? (\S+ \", \" )?{key}\b", text, re.M), key


def test_the_shipped_conffile_forwards_nothing_and_uncommented_is_valid(tmp_path: Path) -> None:
    shipped = config.parse(tomllib.loads(CONFFILE.read_text()), str(CONFFILE))
    assert shipped.rules == () and shipped.destinations == {}
    body = re.sub(r"^#(?=\S)", "", CONFFILE.read_text(), flags=re.M)
    skip = ("state_dir", "headers", 'every = "1h"')  # a digest's every: the alternative to at
    body = "\n".join(line for line in body.splitlines() if not line.startswith(skip))
    p = tmp_path / "forward.toml"
    p.write_text(body.replace("…", "x"))
    cfg = config.load(str(p))
    assert [r.name for r in cfg.rules] == ["noise", "disks and arrays", "backups", "rest"]
    assert [x.name for x in cfg.expects] == ["nightly backup"]


def test_the_readme_config_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Forwarding the mail that matters", 1)[1]
    text = re.search(r"```toml\n(.*?)```", section, re.S)
    assert text
    cfg = config.parse(tomllib.loads(text.group(1)), "README.md", text.group(1))
    assert set(cfg.destinations) == {"ops", "chat"} and cfg.destinations["ops"].overflow == "daily"


def test_the_unit_is_understood_by_systemd(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for want in ("DynamicUser=yes", "SupplementaryGroups=systemd-journal", "StateDirectory=journal-mail/forward",
                 "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert want in text
    unit = tmp_path / "journal-mail-forward.service"
    unit.write_text(text.replace("/usr/bin/journal-mail forward --quiet", "/bin/true").replace(
        "ConditionPathExists=/etc/journal-mail/forward.toml\n", "").replace(
        "Documentation=man:journal-mail(1) man:journal-mail-forward.toml(5)\n", ""))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "journal-mail-forward.service" not in p.stderr, p.stderr
    rules = (ROOT / "debian" / "rules").read_text()
    assert "dh_installsystemd --name=journal-mail-forward --no-enable journal-mail-forward.service" in rules
