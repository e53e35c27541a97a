"""The man pages are current with the code, and clean for groff."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from kit.support import ROOT

from journal_sendmail import config, schema

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


def test_every_field_is_in_the_schema() -> None:
    """A field name the sender spells is one schema.py lists (the contract the reader reads)."""
    assert len(schema.FIELDS) == len(set(schema.FIELDS)) >= 40
    assert not sorted(_fields_written_by_the_sender() - set(schema.FIELDS))
    for name in schema.FIELDS:
        assert getattr(schema, name) == name


def test_every_field_is_documented() -> None:
    page = (ROOT / "man" / "journal-sendmail.8").read_text().replace("\\-", "-")
    missing = sorted(n for n in (*schema.FIELDS, *schema.SENDER_FIELDS) if not re.search(rf"\b{n}\b", page))
    assert not missing, missing


def test_every_message_id_is_documented() -> None:
    page = (ROOT / "man" / "journal-sendmail.8").read_text()
    catalog = (ROOT / "conf" / "journal-sendmail.catalog").read_text()
    assert len(schema.MESSAGE_IDS) == 6
    for mid in schema.MESSAGE_IDS:
        assert f"-- {mid}\n" in catalog, mid
        if mid != schema.MSG_FORWARD:  # journal-mail-forward's, in journal-mail-forward.toml(5)
            assert mid[:8] in page, mid
    assert schema.MSG_FORWARD[:8] in (ROOT / "man" / "journal-mail-forward.toml.5").read_text()


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


# docs/design.md is the contract a clone or an installed package carries with it: its
# message ids, journal fields and exit codes must be the code's, in both directions.
DESIGN = ROOT / "docs" / "design.md"
_HEX_ID = re.compile(r"""["']([0-9a-f]{32})["']""")


def _design_section(number: int) -> str:
    """The text of section ``number`` ("## 2. ...") of docs/design.md."""
    text = DESIGN.read_text()
    m = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", text, re.M | re.S)
    assert m, f"docs/design.md has no section {number}"
    return m.group(0)


def _message_ids_in_code() -> dict[str, str]:
    """Every 32-hex-digit string literal in src/ (that is what a message id is), and where."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for mid in _HEX_ID.findall(path.read_text()):
            found.setdefault(mid, str(path.relative_to(ROOT)))
    assert len(found) >= 6, found  # the sender's five and the forwarder's, at least
    return found


def test_design_names_every_message_id_of_the_code() -> None:
    code = _message_ids_in_code()
    documented = set(re.findall(r"\b[0-9a-f]{32}\b", _design_section(2)))
    missing = {mid: where for mid, where in code.items() if mid not in documented}
    assert not missing, f"message ids not in docs/design.md section 2: {missing}"
    stale = sorted(documented - set(code))
    assert not stale, f"docs/design.md names message ids the code does not have: {stale}"


def test_every_message_id_the_design_says_is_written_is_in_the_catalog() -> None:
    written = re.findall(r"^\| `([0-9a-f]{32})` \|", _design_section(2), re.M)
    assert len(written) >= 6, written
    catalog = (ROOT / "conf" / "journal-sendmail.catalog").read_text()
    assert not [mid for mid in written if f"-- {mid}\n" not in catalog]


def _documented_fields() -> set[str]:
    return set(re.findall(r"`((?:MAIL|FORWARD)_[A-Z0-9_]+)`", _design_section(2)))


def test_design_lists_every_field_the_sender_writes() -> None:
    """A field added to the sender (record, headers, options, smtp, spool, caller, cli, or
    schema once it holds the names) fails here until docs/design.md section 2 has it."""
    documented = _documented_fields()
    written = _fields_written_by_the_sender()
    assert "MAIL_RAW" in written and "MAIL_RCPT" in written, written
    missing = sorted(written - documented)
    assert not missing, f"fields the sender writes that docs/design.md section 2 does not list: {missing}"


def test_design_lists_no_field_the_code_does_not_write() -> None:
    forward = (SENDER / "reader" / "forward" / "events.py").read_text()
    assert "(FORWARD_EVENT, " in forward and schema.FORWARD_EVENT == "FORWARD_EVENT"  # its name is schema.py's
    stale = sorted(n for n in _documented_fields() - _fields_written_by_the_sender()
                   if not n.startswith("FORWARD_"))
    assert not stale, f"docs/design.md lists fields no code writes: {stale}"


def test_design_has_every_exit_code() -> None:
    from journal_sendmail import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EX_")}
    assert {0, 64, 75, 78} <= codes, codes
    rows = {int(n) for n in re.findall(r"^\| (\d+) \|", _design_section(4), re.M)}
    assert rows == codes, f"docs/design.md section 4 has {sorted(rows)}, errors.py {sorted(codes)}"


def test_docs_stand_alone() -> None:
    """A clone or the installed package has no ../shared: nothing points there, and every
    relative link between the docs and from the README resolves."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert {"design.md", "platform.md", "style.md", "fleet.md"} <= {p.name for p in pages}
    broken = []
    for page in pages:
        text = page.read_text()
        assert "../shared" not in text and "FACTS.md" not in text, page
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, broken
    shipped = (ROOT / "debian" / "journal-sendmail.docs").read_text().split()
    assert {"docs/design.md", "docs/platform.md", "docs/fleet.md"} <= set(shipped), shipped
