"""The man pages are current with the code, and clean for groff."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support import ROOT

from journal_sendmail import config, record

PAGES = sorted((ROOT / "man").glob("*.[158]"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page: Path) -> None:
    p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)], capture_output=True,
                       env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80", "LC_ALL": "C.UTF-8"}, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()


def test_every_config_key_is_documented() -> None:
    page = (ROOT / "man" / "journal-sendmail.conf.5").read_text()
    for key in config.KEYS:
        assert f".BR {key} " in page, key


SENDER = ROOT / "src" / "journal_sendmail"


def _fields_written_by_the_sender() -> set[str]:
    """Every ``"MAIL_…"`` name in the sender's modules: its top-level package,
    not the reader wing (which reads fields and writes none)."""
    modules = sorted(SENDER.glob("*.py"))
    assert len(modules) >= 15, modules  # the glob found the tree, not an empty directory
    names: set[str] = set()
    for path in modules:
        names |= set(re.findall(r'"(MAIL_[A-Z0-9_]+)"', path.read_text()))
    return names


def test_every_field_is_documented() -> None:
    page = (ROOT / "man" / "journal-sendmail.8").read_text().replace("\\-", "-")
    missing = sorted(n for n in _fields_written_by_the_sender() if n not in page)
    assert not missing, missing


def test_every_message_id_is_documented() -> None:
    page = (ROOT / "man" / "journal-sendmail.8").read_text()
    for mid in (record.MSG_MAIL, record.MSG_PART, record.MSG_REFUSED, record.MSG_SPOOL, record.MSG_CONFIG):
        assert mid[:8] in page, mid


def test_every_journal_mail_command_and_option_is_documented() -> None:
    import argparse

    from journal_sendmail.reader.cli import build_parser

    page = (ROOT / "man" / "journal-mail.1").read_text().replace("\\-", "-")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 6
    missing = []
    for name, command in sub.choices.items():
        if f".B {name}\n" not in page and f".B journal-mail {name}" not in page:
            missing.append(name)
        for action in command._actions:
            missing += [o for o in action.option_strings if o.startswith("--") and o != "--help" and o not in page]
    assert not missing, missing
