"""Hostile mail costs a bounded amount and changes nothing it should not (issue 21).

uid nobody, in the test namespace, as an attacker on the host would:

- sends mail with 1 MiB and 4 MiB headers of encoded words (and a folded
  variant, and a To of many addresses with -t): sendmail stays within 2 s
  and 64 MiB and stores the mail; root's show, list, export and index each
  within 2 s and 200 MiB, never exit 70 (the web page: tests/web/test_hostile_web.py);
- forges entries with a 100 MiB MAIL_RAW (compressible, and random: stored as it is)
  and a 100 MiB part: every reader (list, show, export, stats, the index, follow,
  forward) stays within 200 MiB, calls them damaged, and shows the genuine mails
  around them byte-exact (the web: tests/web/test_hostile_web.py);
- spools a mail that root's flusher re-injects: it is nobody's mail
  everywhere a user is shown or filtered, its caller a claim;
- forges a mail that claims MAIL_CALLER_UNIT=backup.service: --unit and a
  forward rule on ``unit`` do not take it;
- puts ESC, BEL, CR, C1 and bidi controls in a subject, a recipient and a
  spool file name: no such byte reaches the terminal of root's list, show,
  stats, mailq, sendmail -q or forward --dry-run, and JSON escapes them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kit import harness
from kit.net import Recorder
from kit.reader import ENV, FORGED_IDS, READER, as_user, forge_big_raws, run_jm
from kit.support import json_raw, wait_until

from journal_sendmail.record import MSG_MAIL

NOBODY = 65534
SENDMAIL_CAP = 64 * 1024 * 1024
READER_CAP = 200 * 1024 * 1024
SPOOL = Path("/var/spool/journal-sendmail")
Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]


def measured(cmd: list[str], cap: int, tmp: Path, data: bytes = b"", env: dict[str, str] | None = None,
             user: int | None = None) -> tuple[int, bytes, bytes, float, int]:
    """(exit code, stdout, stderr, seconds, peak RSS in bytes) of ``cmd`` under prlimit's
    RLIMIT_DATA ``cap`` (GNU time measures it: a small parent, not pytest)."""
    stats = tmp / "time.out"
    prefix = as_user(user) if user is not None else []
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *prefix, "prlimit", f"--data={cap}",
                        "--", *cmd], input=data, capture_output=True, env=env or ENV, timeout=300, cwd="/")
    seconds, kib = stats.read_text().split()[-2:]
    return p.returncode, p.stdout, p.stderr, float(seconds), int(kib) * 1024


HOSTILE = {
    "encoded-words-1MiB": (b"Subject: ", b"=?utf-8?q?a?= ", 1 << 20),
    "encoded-words-4MiB": (b"Subject: ", b"=?utf-8?q?a?= ", 4 << 20),
    "folded-encoded-words-4MiB": (b"Subject: ", b"=?utf-8?b?w6k=?=\n ", 4 << 20),
    "glued-encoded-words-4MiB": (b"Subject: ", b"=?utf-8?q?a?=", 4 << 20),
    "addresses-4MiB": (b"To: ", b"=?utf-8?q?x?= <a@b.example>, ", 4 << 20),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_huge_headers_cost_a_bounded_amount(case: str, journald: harness.Journald, bindir: Path,
                                            tmp_path: Path) -> None:
    name, unit, size = HOSTILE[case]
    mail = b"From: nobody\nTo: root\n" + name + unit * (size // len(unit)) + b"\nX-After: the huge one\n\nthe body\n"
    code, _, err, seconds, rss = measured([str(bindir / "sendmail"), "-t", "-v"], SENDMAIL_CAP, tmp_path,
                                          mail, {"PATH": "/usr/bin:/bin"}, user=NOBODY)
    assert code == 0, err[-2000:]
    assert seconds <= 2.0 and rss <= SENDMAIL_CAP, (seconds, rss)
    mail_id = re.search(rb"mail ([0-9a-f]{32})", err).group(1).decode()  # type: ignore[union-attr]
    (e,) = journald.entries(f"MAIL_ID={mail_id}", f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert b"kept whole in MAIL_RAW" in harness.one(e["MAIL_DEFECTS"]) or b"legacy parser" in harness.one(
        e["MAIL_DEFECTS"])
    assert harness.one(e["MAIL_SIZE"]) == str(len(mail)).encode()
    assert b"root" in harness.one(e["MAIL_RCPTS"])

    index_env = {**ENV, "JOURNAL_MAIL_INDEX_DIR": str(tmp_path / "index")}
    conf = tmp_path / "forward.toml"
    (tmp_path / "state").mkdir(mode=0o700)
    conf.write_text(f'state_dir = "{tmp_path / "state"}"\n[destination.ops]\ntype = "webhook"\n'
                    'url = "http://127.0.0.1:9/h"\n[[rule]]\nname = "bodies"\nmatch = { body = "*the body*" }\n'
                    'route = ["ops"]\n')
    runs = {
        "show": (["show", mail_id], ENV),
        "show --headers": (["show", "--headers", mail_id], ENV),
        "show --raw": (["show", "--raw", mail_id], ENV),
        "list": (["list", "--no-index"], ENV),
        "list --json": (["list", "--json", "--no-index"], ENV),
        "list --subject": (["list", "--subject", "nothing like it", "--no-index"], ENV),
        "export mbox": (["export", "--format", "mbox", "--no-index"], ENV),
        "export json": (["export", "--format", "json", "--no-index"], ENV),
        "index": (["index"], index_env),
        "list -g (index)": (["list", "-g", "the body"], index_env),
        "forward --dry-run": (["forward", "--config", str(conf), "--dry-run"], ENV),
    }
    for what, (args, env) in runs.items():
        code, out, err, seconds, rss = measured([*READER, *args], READER_CAP, tmp_path, env=env)
        assert code == 0, (what, code, err[-2000:])
        assert seconds <= 2.0 and rss <= READER_CAP, (what, seconds, rss)
        if what == "show --raw":
            assert out == mail
        if what == "list -g (index)":
            assert mail_id[:8].encode() in out
        if what == "forward --dry-run":
            assert b"'bodies'" in out, out[-2000:]


def peak_rss(cmd: list[str], tmp: Path, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes, float, int]:
    """(exit code, stdout, stderr, seconds, peak RSS in bytes) of ``cmd``, run with no cap:
    under an RLIMIT_DATA python-systemd hides a failed allocation (it gives the entry back with
    fields missing), so the peak is measured (GNU time: the process's own maxrss)."""
    stats = tmp / "time.out"
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *cmd], capture_output=True,
                       env=env or ENV, timeout=600, cwd="/")
    seconds, kib = stats.read_text().split()[-2:]
    return p.returncode, p.stdout, p.stderr, float(seconds), int(kib) * 1024


def follow_peak(args: list[str], until: bytes, tmp: Path) -> tuple[bytes, int]:
    """(output, VmHWM) of ``journal-mail follow ARGS`` once ``until`` is in its output."""
    out = tmp / "follow.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen([*READER, "follow", *args], stdout=f, stderr=subprocess.STDOUT, env=ENV)
    try:
        wait_until(lambda: until in out.read_bytes() or proc.poll() is not None, timeout=120,
                   what="follow showing the mail after the forged ones")
        assert proc.poll() is None, out.read_bytes()[-2000:]
        hwm = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
               if line.startswith("VmHWM:")]
        return out.read_bytes(), int(hwm[0].split()[1]) * 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)


GENUINE = [b"Subject: genuine before\n\nreal 1\n",
           b"Subject: genuine in parts\n\n" + b"".join(b"line %07d of a mail of three parts\n" % i
                                                       for i in range(70_000)),
           b"Subject: genuine after\n\nreal 3\n"]


@pytest.mark.parametrize("payload", ["compressible", "random"])
def test_forged_100MiB_raws_cost_readers_at_most_200MiB(payload: str, persistent_journald: harness.Journald,
                                                        sendmail: Sendmail, tmp_path: Path) -> None:
    """8 forged entries with a 100 MiB MAIL_RAW (and a forged 100 MiB part): every reader
    stays within 200 MiB, calls them damaged, and shows the genuine mails byte-exact."""
    ids = []
    for n, mail in enumerate(GENUINE):
        if n == 2:
            forge_big_raws(persistent_journald, payload)
        p = sendmail(["-v", "root"], mail)
        assert p.returncode == 0, p.stderr
        ids.append(re.search(rb"mail ([0-9a-f]{32})", p.stderr).group(1).decode())  # type: ignore[union-attr]
    persistent_journald.entries(f"MAIL_ID={ids[-1]}", wait_for=1)
    index_env = {**ENV, "JOURNAL_MAIL_INDEX_DIR": str(tmp_path / "index")}
    conf = tmp_path / "forward.toml"
    (tmp_path / "state").mkdir(mode=0o700)
    hook = Recorder().start()
    conf.write_text(f'state_dir = "{tmp_path / "state"}"\n[source]\nstart = "all"\n[destination.ops]\n'
                    f'type = "webhook"\nurl = "{hook.url}/h"\n[[rule]]\n'
                    'name = "all"\nroute = ["ops"]\n')
    runs: list[tuple[str, list[str], dict[str, str], tuple[int, ...]]] = [
        ("list -n 10", ["list", "-n", "10", "--no-index"], ENV, (0,)),
        ("list --json", ["list", "--json", "--no-index"], ENV, (0,)),
        ("show (forged)", ["show", FORGED_IDS[0], FORGED_IDS[1]], ENV, (65,)),
        ("show (forged part)", ["show", FORGED_IDS[-1]], ENV, (65,)),
        *[(f"show --raw (genuine {n + 1})", ["show", "--raw", i], ENV, (0,)) for n, i in enumerate(ids)],
        ("export mbox", ["export", "--format", "mbox", "--no-index"], ENV, (65,)),
        ("export json", ["export", "--format", "json", "--no-index"], ENV, (65,)),
        ("stats", ["stats", "--no-index"], ENV, (0,)),
        ("index (build)", ["index"], index_env, (0,)),
        ("list --json (index)", ["list", "--json"], index_env, (0,)),
        ("show --raw (index)", ["show", "--raw", ids[1]], index_env, (0,)),
        ("forward --dry-run", ["forward", "--config", str(conf), "--dry-run"], ENV, (0,)),
        ("forward --once", ["forward", "--config", str(conf), "--once"], ENV, (0,)),
    ]
    peaks: dict[str, int] = {}
    problems = []
    for what, args, env, codes in runs:
        code, out, err, seconds, rss = peak_rss([*READER, *args], tmp_path, env)
        peaks[what] = rss
        print(f"{payload}: {what}: {rss / 2**20:.0f} MiB, {seconds:.2f} s, exit {code}")
        if code not in codes:
            problems.append((what, code, err[-1000:]))
        if what.startswith("list --json"):
            recs = [json.loads(line) for line in out.splitlines()]
            forged = [r for r in recs if r["mail_id"] in FORGED_IDS]
            assert len(forged) == 9 and all("MAIL_RAW of 10485" in (r["damaged"] or "") for r in forged[:8]), \
                [(r["subject"], r["damaged"]) for r in recs]
            # (the forged part is found out only by what reads the parts: show, export)
            assert [r["mail_id"] for r in recs if not r["damaged"]] == [*ids[:2], FORGED_IDS[-1], ids[2]], recs
        if what.startswith("show --raw"):
            assert out == GENUINE[ids.index(args[-1])], (what, out[:200])
        if what == "export mbox":
            assert all(m.split(b"\n\n", 1)[1] in out for m in GENUINE) and b"x" * 64 not in out
        if what == "export json":
            got = {r["mail_id"]: json_raw(r) for r in map(json.loads, out.splitlines()) if r["mail_id"] in ids}
            assert got == dict(zip(ids, GENUINE, strict=True)), what
        if what == "forward --dry-run":
            assert all(i.encode() in out for i in ids), out[-2000:]
        if what == "forward --once":  # it went past every forged entry: the genuine mail after them is sent
            sent = b"\n".join(body for _, body in hook.posts)
            assert all(s in sent for s in (b"genuine before", b"genuine in parts", b"genuine after")), sent[-2000:]
            assert b"x" * 64 not in sent
    hook.stop()
    out, rss = follow_peak(["-n", "20"], b"genuine after", tmp_path)
    peaks["follow"] = rss
    print(f"{payload}: follow: {rss / 2**20:.0f} MiB")
    assert b"genuine before" in out and b"genuine in parts" in out
    assert not problems, problems
    assert all(rss <= READER_CAP for rss in peaks.values()), {k: f"{v / 2**20:.0f} MiB" for k, v in peaks.items()}


def test_forged_raws_in_several_files_cost_one_buffer(persistent_journald: harness.Journald, sendmail: Sendmail,
                                                      tmp_path: Path) -> None:
    """libsystemd keeps a decompression buffer per journal file: forged 100 MiB MAIL_RAWs in
    three files cost a reader one buffer, not three (measured without giving the pages
    back: 331 MiB)."""
    for batch in range(3):
        forge_big_raws(persistent_journald, "compressible", n=2, base=batch << 20)
        subprocess.run(["journalctl", "--rotate"], check=True, timeout=60)
    assert sendmail(["root"], GENUINE[0]).returncode == 0
    persistent_journald.entries("MAIL_SUBJECT=genuine before", wait_for=1)
    for args in (["list", "--json", "--no-index"], ["export", "--format", "mbox", "--no-index"]):
        code, out, err, _, rss = peak_rss([*READER, *args], tmp_path)
        assert code in (0, 65) and b"genuine before" in out, (args, code, err[-2000:])
        assert rss <= READER_CAP, (args, f"{rss / 2**20:.0f} MiB")


def no_journal(j: harness.Journald) -> None:
    j.stop()
    if os.path.exists(j.socket_path):
        os.unlink(j.socket_path)


@pytest.fixture
def spool() -> Path:
    subprocess.run(["find", str(SPOOL), "-mindepth", "1", "-delete"], check=True)
    os.chmod(SPOOL, 0o1733)
    return SPOOL


def test_spooled_by_nobody_is_nobodys_everywhere(journald: harness.Journald, bindir: Path, spool: Path,
                                                 tmp_path: Path) -> None:
    no_journal(journald)
    p = subprocess.run([*as_user(NOBODY), str(bindir / "sendmail"), "root"], capture_output=True, timeout=30,
                       input=b"Subject: spooled by nobody\n\nx\n", cwd="/")
    assert p.returncode == 0, p.stderr
    journald.start()
    assert subprocess.run([str(bindir / "sendmail"), "-q"], capture_output=True, timeout=60).returncode == 0
    (e,) = journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    assert harness.one(e["_UID"]) == b"0" and harness.one(e["MAIL_SPOOL_UID"]) == b"65534"
    (rec,) = [json.loads(line) for line in run_jm("list", "--json").stdout.splitlines()]
    assert rec["uid"] == "65534" and rec["username"] == "nobody" and rec["spooled"]
    assert "caller_comm" in rec["claimed"]
    for index in (False, True):
        env = {"JOURNAL_MAIL_INDEX_DIR": str(tmp_path / "index")}
        if index:
            assert run_jm("index", env=env).returncode == 0
        extra = [] if index else ["--no-index"]
        assert run_jm("list", "--json", "--user", "root", *extra, env=env).stdout == b""
        assert run_jm("list", "--json", "--uid", "0", *extra, env=env).stdout == b""
        assert b"spooled by nobody" in run_jm("list", "--json", "--user", "nobody", *extra, env=env).stdout
        table = run_jm("list", *extra, env=env).stdout.decode()
        head, row = table.splitlines()[:2]
        assert row[head.index("USER"):head.index("CALLER")].strip() == "nobody", table
        stats = [json.loads(line) for line in run_jm("stats", "--by", "user", "--json", *extra,
                                                     env=env).stdout.splitlines()]
        assert [(s["user"], s["mails"]) for s in stats] == [("nobody", 1)], stats
    shown = run_jm("show", rec["mail_id"]).stdout.decode()
    assert re.search(r"^User: 65534 \(nobody\)$", shown, re.M), shown
    assert "as the spool file says" in shown


FORWARD_TOML = """state_dir = "{state}"

[destination.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[rule]]
name = "backups"
match = {{ unit = "backup.service" }}
route = ["ops"]

[[rule]]
name = "claims"
match = {{ caller_unit = "backup.service" }}
route = ["ops"]
"""


def test_a_claimed_unit_is_not_the_unit(journald: harness.Journald, bindir: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "JOURNAL_SENDMAIL_CONFIG": "/nonexistent"}
    forger = ("import sys; sys.path.insert(0, sys.argv[1]); from journal_sendmail import journal, record;"
              "j = journal.Journal('/run/systemd/journal/socket', 10);"
              "m = record.Mail(mail_id='ab' * 16, envelope_from='backup', recipients=['root'],"
              " headers={'MAIL_SUBJECT': 'forged backup report'}, size=1, sha256=__import__('hashlib')"
              ".sha256(b'x').hexdigest(), argv=('sendmail', 'root'), invoked_as='sendmail',"
              " caller={'MAIL_CALLER_COMM': 'backup', 'MAIL_CALLER_UNIT': 'backup.service'});"
              "j.send(record.encode(record.mail_fields(m, b'x', 1)))")
    src = str(Path(__file__).resolve().parents[2] / "src")
    subprocess.run([*as_user(NOBODY), "/usr/bin/python3", "-I", "-c", forger, src], check=True, timeout=60,
                   env=env, cwd="/")
    journald.entries("MAIL_ID=" + "ab" * 16, wait_for=1)
    assert run_jm("list", "--json", "--unit", "backup.service").stdout == b""
    assert b"forged backup report" in run_jm("list", "--json", "--caller-unit", "backup.service").stdout
    conf = tmp_path / "forward.toml"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    conf.write_text(FORWARD_TOML.format(state=state))
    p = run_jm("forward", "--config", str(conf), "--dry-run")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "'backups'" not in out and "'claims'" in out, out


HOSTILE_TEXT = "\x1b]0;owned\x07\x1b[2J\rfake line\u202egnp.exe\x9b31m\u2066x\u2069"


def test_no_hostile_byte_reaches_a_terminal(journald: harness.Journald, bindir: Path, spool: Path,
                                            tmp_path: Path) -> None:
    bad = HOSTILE_TEXT.encode()
    # a mail with it in the subject (raw 8-bit, as cron's may be) and the From
    assert subprocess.run([*as_user(NOBODY), str(bindir / "sendmail"), "root"], timeout=30, cwd="/",
                          input=b"From: x" + bad + b" <x@y>\nSubject: " + bad + b"\n\nbody " + bad + b"\n",
                          capture_output=True).returncode == 0
    journald.entries(f"MESSAGE_ID={MSG_MAIL}", wait_for=1)
    (rec,) = [json.loads(line) for line in run_jm("list", "--json").stdout.splitlines()]
    outputs = {
        "list": run_jm("list").stdout,
        "show": run_jm("show", rec["mail_id"]).stdout,
        "show --headers": run_jm("show", "--headers", rec["mail_id"]).stdout,
        "stats": run_jm("stats", "--by", "subject").stdout,
        "list --json": run_jm("list", "--json").stdout,
    }
    # on a terminal (a pty: it writes CR LF for LF itself), even --raw and mbox
    tty = {}
    for what, args in (("show --raw (tty)", ["show", "--raw", rec["mail_id"]]),
                       ("export mbox (tty)", ["export", "--format", "mbox"]),
                       ("list (tty)", ["list"])):
        p = subprocess.run(["script", "-qec", shlex.join([*READER, *args]), "/dev/null"], capture_output=True,
                           env={**ENV, "TERM": "xterm", "NO_COLOR": "1"}, timeout=60)
        assert p.returncode == 0, (what, p.stdout[-2000:])
        tty[what] = p.stdout
    # spool metadata and a spool file name of nobody's: mailq and sendmail -q
    os.chmod(SPOOL, 0o1777)
    no_journal(journald)
    assert subprocess.run([*as_user(NOBODY), str(bindir / "sendmail"), "-f", "a" + HOSTILE_TEXT, "root"],
                          input=b"Subject: q\n\nx\n", capture_output=True, timeout=30, cwd="/").returncode == 0
    subprocess.run([*as_user(NOBODY), "sh", "-c", f"printf x > '{SPOOL}/{HOSTILE_TEXT}'"], check=True, cwd="/")
    outputs["mailq"] = subprocess.run([str(bindir / "mailq")], capture_output=True, timeout=30).stdout
    journald.start()
    q = subprocess.run([str(bindir / "sendmail"), "-q"], capture_output=True, timeout=60)
    outputs["sendmail -q"] = q.stdout + q.stderr
    assert b"refused" in outputs["sendmail -q"]
    conf = tmp_path / "forward.toml"
    conf.write_text(f'state_dir = "{tmp_path / "state"}"\n[destination.ops]\ntype = "webhook"\n'
                    'url = "http://127.0.0.1:9/h"\n[[rule]]\nname = "all"\nroute = ["ops"]\n')
    (tmp_path / "state").mkdir(mode=0o700)
    forged_id = "\x1b]0;owned\x07" + "0" * 20
    subprocess.run([*as_user(NOBODY), "/usr/bin/python3", "-I", "-c",
                    "import socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);"
                    "s.connect('/run/systemd/journal/socket');"
                    f"s.send(b'MESSAGE=f\\nMESSAGE_ID={MSG_MAIL}\\nMAIL_ID=' + sys.argv[1].encode() + b'\\n')",
                    forged_id], check=True, cwd="/", timeout=30)
    journald.entries("MESSAGE=f", wait_for=1)
    outputs["forward --dry-run"] = run_jm("forward", "--config", str(conf), "--dry-run").stdout
    assert b"0" * 20 in outputs["forward --dry-run"]
    for what, out in tty.items():
        assert b"body" in out or b"USER" in out, (what, out[:2000])
        assert b"\x1b" not in out and b"\x07" not in out and not re.search(b"\r(?!\n)", out), (what, out[:3000])
        assert not re.search("[\x80-\x9f\u202a-\u202e\u2066-\u2069]", out.decode("utf-8", "replace")), what
    for what, out in outputs.items():
        assert out, what
        for byte in (b"\x1b", b"\x07", b"\r"):
            assert byte not in out, (what, byte, out[:3000])
        text = out.decode("utf-8", "replace")
        assert not re.search("[\x80-\x9f\u202a-\u202e\u2066-\u2069]", text), (what, text[:3000])
