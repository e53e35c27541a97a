"""Every output format, on mail stored by the real sendmail in a real journald."""

from __future__ import annotations

import fcntl
import hashlib
import json
import mailbox
import os
import shutil
import struct
import subprocess
import termios
from collections.abc import Callable
from pathlib import Path

import pytest
from kit import harness
from kit.reader import DATA, ENV, READER, ok, records, run_jm

SAMPLES = ["qp-latin1.eml", "base64-utf8.eml", "multipart-attachment.eml", "from-lines.eml", "escape-sequences.eml"]
BINARY = b"From: bin@example.org\nSubject: binary\n\n\x00\xff\xfe 8-bit \xe9t\xe9\r\nFrom \x01\n"


@pytest.fixture
def stored(journald: harness.Journald, sendmail: Callable[..., subprocess.CompletedProcess[bytes]]) -> list[bytes]:
    """The sample messages (and an 8-bit one), stored in this order; their raw bytes."""
    raws = [(DATA / n).read_bytes() for n in SAMPLES] + [BINARY]
    for raw in raws:
        proc = sendmail(["-i", "root"], raw)
        assert proc.returncode == 0, proc.stderr
    journald.entries(f"MESSAGE_ID={harness_msg()}", wait_for=len(raws))
    return raws


def harness_msg() -> str:
    from journal_sendmail.record import MSG_MAIL

    return MSG_MAIL


def ids() -> list[str]:
    return [r["mail_id"] for r in records(run_jm("list", "--json"))]


def in_pty(args: list[str], cols: int, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run journal-mail with stdout (and stdin) on a pseudo-terminal ``cols`` wide."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    try:
        proc = subprocess.Popen([*READER, *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                                env={**ENV, "TERM": "xterm", **(env or {})})  # fmt: skip
        os.close(slave)
        out = bytearray()
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        assert proc.stderr is not None
        with proc.stderr:
            err = proc.stderr.read()
        code = proc.wait(timeout=60)
        assert b"Traceback" not in err, err
        return code, bytes(out).replace(b"\r\n", b"\n")
    finally:
        os.close(master)


# -- list ---------------------------------------------------------------------------


@pytest.mark.parametrize("cols", [60, 100], ids=["60-columns", "100-columns"])
def test_list_fits_the_terminal_and_uses_colour(stored: list[bytes], cols: int) -> None:
    code, out = in_pty(["list"], cols)
    assert code == 0
    lines = out.decode().splitlines()
    assert len(lines) == 1 + len(stored)
    plain = [harness_strip(line) for line in lines]
    assert all(len(line) <= cols for line in plain), plain
    assert plain[0].startswith("TIME") and "\x1b[1m" in lines[0]  # colour, on a TTY only
    assert "Grüße aus Köln" in plain[1] or cols < 80


def harness_strip(line: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def test_list_through_a_pipe_has_no_colour_and_whole_subjects(stored: list[bytes]) -> None:
    out = ok(run_jm("list")).decode()
    assert "\x1b" not in out
    assert "Grüße aus Köln" in out and "title \ufffd]0;owned\ufffd here" in out


def test_list_json_one_object_per_mail(stored: list[bytes]) -> None:
    recs = records(run_jm("list", "--json"))
    assert [r["size"] for r in recs] == [len(r) for r in stored]
    assert [r["sha256"] for r in recs] == [hashlib.sha256(r).hexdigest() for r in stored]
    assert all("body" not in r for r in recs)
    assert recs[0]["subject"] == "Grüße aus Köln" and recs[0]["arguments"] == ["-i", "root"]


# -- show ---------------------------------------------------------------------------


def test_show_decodes_the_body(stored: list[bytes]) -> None:
    out = ok(run_jm("show", ids()[0])).decode()
    assert "Grüße aus Köln, die Platte ist zu 99% voll. Weiter." in out
    assert "Subject: Grüße aus Köln" in out and "\x1b" not in out


def test_show_accepts_a_prefix_and_several_ids(stored: list[bytes]) -> None:
    all_ids = ids()
    out = ok(run_jm("show", all_ids[1][:12], all_ids[2])).decode()
    assert "Привет" in out and "plain part wins" in out


@pytest.mark.parametrize("index", range(len(SAMPLES) + 1), ids=[*SAMPLES, "binary"])
def test_show_raw_is_byte_exact(stored: list[bytes], index: int) -> None:
    assert ok(run_jm("show", "--raw", ids()[index])) == stored[index]


def test_show_headers(stored: list[bytes]) -> None:
    out = ok(run_jm("show", "--headers", ids()[0])).decode()
    assert "Content-Transfer-Encoding: quoted-printable" in out and "Weiter" not in out


def test_show_pages_on_a_terminal_only(stored: list[bytes], tmp_path: Path) -> None:
    paged = tmp_path / "paged"
    code, out = in_pty(["show", ids()[2]], 100, env={"PAGER": f"cat > {paged}"})
    assert code == 0 and "plain part wins" in paged.read_text()
    assert b"plain part wins" not in out
    paged.unlink()
    code, out = in_pty(["show", "--no-pager", ids()[2]], 100, env={"PAGER": f"cat > {paged}"})
    assert code == 0 and b"plain part wins" in out and not paged.exists()
    ok(run_jm("show", ids()[2], env={"PAGER": f"cat > {paged}"}))  # a pipe: no pager
    assert not paged.exists()


# -- export -------------------------------------------------------------------------


def test_export_mbox_reads_back_in_python_and_mutt(stored: list[bytes], tmp_path: Path) -> None:
    from kit.support import mboxrd_unescape

    box_path = tmp_path / "mail.mbox"
    ok(run_jm("export", "--format", "mbox", "-o", str(box_path)))
    box = mailbox.mbox(str(box_path))
    try:
        msgs = list(box)
    finally:
        box.close()
    assert len(msgs) == len(stored)
    assert [m["subject"] for m in msgs[:3]] == [
        "=?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=", "backup report", "Logwatch with attachment",
    ]  # fmt: skip
    # byte-exact: the separators are the only lines starting "From "; undo the mboxrd quoting
    import re

    chunks = re.split(rb"(?m)^From [^\n]*\n", box_path.read_bytes())
    assert chunks[0] == b""
    for raw, chunk in zip(stored, chunks[1:], strict=True):
        assert mboxrd_unescape(chunk) == raw + (b"\n" if raw.endswith(b"\n") else b"\n\n")
    # mutt comes with tests/apt-deps.txt; without it this is no test of mutt at all
    if not shutil.which("mutt"):
        pytest.skip("mutt is not installed (tests/run installs it)")
    script = tmp_path / "typescript"
    subprocess.run(
        # a size of its own: script's terminal has none (0x0) when CI's stdin is no terminal, and
        # trixie's mutt then refuses to start ("Error opening terminal")
        ["script", "-qc", "stty rows 24 cols 80; "
         f"mutt -n -F /dev/null -R -f {box_path} -e 'set folder={tmp_path} quit=yes' "
         "-e 'push <quit>'", str(script)],
        env={**ENV, "TERM": "xterm", "HOME": str(tmp_path)}, stdout=subprocess.DEVNULL, timeout=30, check=True,
    )  # fmt: skip
    assert f"Msgs:{len(stored)}".encode() in script.read_bytes()


def test_export_eml_one_exact_file_per_mail(stored: list[bytes], tmp_path: Path) -> None:
    out = tmp_path / "eml"
    ok(run_jm("export", "--format", "eml", "-o", str(out)))
    files = sorted(out.iterdir())
    assert len(files) == len(stored)
    assert sorted(f.read_bytes() for f in files) == sorted(stored)
    assert all(f.name.endswith(".eml") and f.stat().st_mode & 0o077 == 0 for f in files)


def test_export_json_lines_carry_exact_bytes(stored: list[bytes]) -> None:
    from kit.support import json_raw

    recs = records(run_jm("export", "--format", "json"))
    assert [json_raw(r) for r in recs] == stored
    assert recs[-1]["body_base64"] and "body_base64" not in recs[0]
    for r in recs:  # the sendmail-shim fields
        assert isinstance(r["time"], str) and r["time"].endswith("Z")
        assert r["uid"] == "0" and r["username"] == "root" and r["arguments"] == ["-i", "root"]
        assert isinstance(r["body"], str)


def test_export_filters_and_lines(stored: list[bytes]) -> None:
    recs = records(run_jm("export", "--format", "json", "--subject", "backup"))
    assert [r["subject"] for r in recs] == ["backup report"]
    assert len(records(run_jm("export", "--format", "json", "-n", "2"))) == 2


# -- stats --------------------------------------------------------------------------


def test_stats_table_and_json(stored: list[bytes], sendmail: Callable[..., subprocess.CompletedProcess[bytes]],
                              journald: harness.Journald) -> None:  # fmt: skip
    assert sendmail(["-f", "cron@example.org", "ops@example.org", "root"], b"Subject: s\n\nx\n").returncode == 0
    journald.entries(f"MESSAGE_ID={harness_msg()}", wait_for=len(stored) + 1)
    rows = records(run_jm("stats", "--by", "recipient", "--json"))
    total = sum(len(r) for r in stored) + len(b"Subject: s\n\nx\n")
    assert rows[0] == {"recipient": "root", "mails": len(stored) + 1, "bytes": total}
    assert rows[1] == {"recipient": "ops@example.org", "mails": 1, "bytes": 14}
    table = ok(run_jm("stats", "--by", "sender")).decode().splitlines()
    assert table[0].split() == ["MAILS", "BYTES", "SENDER"]
    assert table[1].split()[0] == str(len(stored)) and table[2].split() == ["1", "14", "cron@example.org"]
    for by in ("host", "caller", "unit", "subject", "day", "user"):
        assert json.loads(ok(run_jm("stats", "--by", by, "--json")).splitlines()[0])["mails"] >= 1
