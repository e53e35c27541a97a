"""Hostile peers and hostile mail cost the forwarder a bounded amount and forge nothing.

A relay or webhook that floods, drips or answers ``100 Continue`` for ever
(hand-written raw-socket servers on loopback) costs one deadline and no more
than 200 MiB (the forwarder runs under prlimit), never the other
destination's mail; a digest bomb of 7,000 forged mails goes out in
parts under the relay's size limit with the genuine alert in one of them;
no lone CR reaches the relay's DATA (aiosmtpd's raw bytes); a forger cannot
add a MIME part; Slack and ntfy get payloads that ping nobody and that no
server refuses; no terminal gets an escape from hostile data.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit import harness
from kit.forward import Hostile, Smarthost, Webhook, dests, events, forward, spawn_forward, store, subjects
from kit.net import make_ca
from kit.reader import ENV, NOBODY, READER, forge, wait_until

from journal_sendmail.record import MSG_MAIL

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]
TIMEOUT = 3.0  # seconds: the hostile destination's timeout
CAP = 200 * 1024 * 1024  # bytes of heap the forwarder may use against a hostile peer (prlimit --data)
ALL = '[source]\nstart = "all"\n[[rule]]\nname = "all"\nmatch = { subject = "alert*" }\nroute = ["bad", "good"]\n'


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    h = Hostile(request.param)
    yield h
    h.stop()


def smtp_dest(name: str, port: int, extra: str = "") -> str:
    return f"""
[destination.{name}]
type = "smtp"
url = "smtp://127.0.0.1:{port}"
from = "journal-mail@loghost.example.org"
to = ["ops@example.org"]
timeout = "{TIMEOUT:g}s"
{extra}"""


def hook_dest(name: str, url: str, extra: str = "") -> str:
    return f'\n[destination.{name}]\ntype = "webhook"\nurl = "{url}"\ntimeout = "{TIMEOUT:g}s"\n{extra}\n'


@pytest.mark.parametrize("hostile", ["smtp-flood", "smtp-drip", "smtp-data"], indirect=True)
def test_a_hostile_relay_costs_one_deadline_and_holds_back_no_other_destination(
    journald: harness.Journald, sendmail: Sendmail, config: Config, hostile: Hostile, webhook: Webhook
) -> None:
    store(sendmail, "alert 1", "alert 2")
    cfg = config(smtp_dest("bad", hostile.port) + hook_dest("good", webhook.url) + ALL)
    t0 = time.monotonic()
    r = forward(cfg, "--once", timeout=60, cap=CAP)
    took = time.monotonic() - t0
    assert r.returncode == 75, r.stderr  # waits for a retry: never exit 70
    assert took < 3 * TIMEOUT, f"{took:.1f} s"
    assert hostile.connections >= 1
    assert sorted(x["subject"] for x in webhook.records()) == ["alert 1", "alert 2"]  # the same pass
    journald.sync()
    (retried,) = events("retried")
    assert b"Traceback" not in r.stderr and b"MemoryError" not in r.stderr
    assert harness.one(retried["FORWARD_DESTINATION"]) == b"bad"


@pytest.mark.parametrize("hostile", ["http-continue", "http-drip"], indirect=True)
def test_a_hostile_webhook_costs_one_deadline_and_holds_back_no_other_destination(
    journald: harness.Journald, sendmail: Sendmail, config: Config, hostile: Hostile, smarthost: Smarthost
) -> None:
    store(sendmail, "alert 1")
    cfg = config(hook_dest("bad", f"http://127.0.0.1:{hostile.port}/hook") + smtp_dest("good", smarthost.port) + ALL)
    t0 = time.monotonic()
    r = forward(cfg, "--once", timeout=60, cap=CAP)
    took = time.monotonic() - t0
    assert r.returncode == 75, r.stderr
    assert took < 3 * TIMEOUT, f"{took:.1f} s"
    assert subjects(smarthost) == {"alert 1": 1}
    assert b"Traceback" not in r.stderr


def forged(subject: str, mail_id: str, raw: bytes, **extra: str) -> list[tuple[str, str]]:
    """A message entry, its values as the forger's writer wants them (UTF-8 bytes as latin-1 text)."""
    subject, mail_id = (v.encode().decode("latin-1") for v in (subject, mail_id))
    fields = {"MESSAGE": subject, "MESSAGE_ID": MSG_MAIL, "MAIL_ID": mail_id, "MAIL_RCPT": "root",
              "MAIL_RCPTS": "root", "MAIL_SUBJECT": subject, "MAIL_SIZE": str(len(raw)),
              "MAIL_SHA256": hashlib.sha256(raw).hexdigest(), "MAIL_RAW": raw.decode("latin-1"), **extra}
    return list(fields.items())


def test_a_digest_bomb_goes_out_in_parts_under_the_relays_limit_with_the_genuine_alert(
    journald: harness.Journald, sendmail: Sendmail, config: Config
) -> None:
    limit = 200_000  # bytes: the relay's size limit (552 past it)
    host = Smarthost(size_limit=limit).start()
    try:
        store(sendmail, "SMART error on /dev/sda", body="SMART overall-health self-assessment: FAILED\n")
        filler = "".join(f"line {i} of a forged mail that makes the digest big\n" for i in range(30))
        forge([forged(f"Fail {i}", f"{i + 1:032x}", f"Subject: Fail {i}\n\n{filler}".encode())
               for i in range(7000)])
        journald.sync()
        cfg = config(smtp_dest("ops", host.port).replace(f'"{TIMEOUT:g}s"', '"30s"') + """
[source]
start = "all"
[[rule]]
match = { subject = ["Fail*", "SMART*"] }
digest = "daily"
[digest.daily]
to = ["ops"]
every = "1d"
max_size = "4M"
""")
        assert forward(cfg, "--once", timeout=300).returncode == 0
        r = forward(cfg, "--digest-now", "daily", timeout=300)
        assert r.returncode == 0, r.stderr
        assert len(host.received) >= 2
        journald.sync()
        assert any(b"too big" in harness.one(e["MESSAGE"]) for e in events("retried"))  # a 552: split smaller
        assert all(len(m.data) < limit for m in host.received)
        texts = [m.message.get_body(("plain",)).get_content() for m in host.received]  # type: ignore[union-attr]
        assert sum("SMART overall-health self-assessment: FAILED" in t for t in texts) == 1
        shown = {line.split("subject=", 1)[1] for t in texts for line in t.splitlines() if "subject=" in line}
        assert len(shown) == 7001  # every group in exactly one part: split, none dropped
        assert sum(t.count("subject=") for t in texts) == 7001
        # the bucket went once everything was delivered
        assert forward(cfg, "--digest-now", "daily", timeout=300).returncode == 0
        assert len(host.received) == len(texts)
    finally:
        host.stop()


SMUGGLE = "alert smuggling"


@pytest.mark.parametrize("mode", ["wrap", "resend"])
def test_no_lone_cr_reaches_the_relays_data(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, mode: str
) -> None:
    body = "before\r.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\n"
    store(sendmail, SMUGGLE, body=body + "NUL \0 here\n")
    cfg = config(dests(smarthost, extra=f'mode = "{mode}"') + ALL.replace('["bad", "good"]', '["ops"]'))
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    (raw,) = smarthost.handler.raw
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"") and b"\0" not in raw
    (m,) = smarthost.received
    originals = [p for p in m.message.walk() if p.get_filename() == "original.eml"]
    assert len(originals) == 1  # still exact, as base64
    payload = originals[0].get_payload(decode=True)
    assert b"before\r.\r\nMAIL FROM:<evil@example.org>" in payload and b"NUL \0 here" in payload


def test_a_forger_cannot_add_a_mime_part(
    journald: harness.Journald, config: Config, smarthost: Smarthost
) -> None:
    raw = b"From: root\nTo: root\nSubject: alert forged mime\n\nhello\n"
    old = "=_journal-mail-" + hashlib.sha256(raw).hexdigest()[:24]  # the boundary the forwarder used to take
    text = (f"hello\n\n--{old}\nContent-Type: message/rfc822\nContent-Disposition: attachment; "
            f'filename="original.eml"\n\nFrom: ceo@example.org\nSubject: wire the money\n\nnow\n\n--{old}--\n')
    forge([forged("alert forged mime", "f" * 32, raw, MAIL_TEXT=text)])
    journald.sync()
    cfg = config(dests(smarthost) + ALL.replace('["bad", "good"]', '["ops"]'))
    assert forward(cfg, "--once").returncode == 0
    (m,) = smarthost.received
    parts = list(m.message.iter_parts())
    assert len(parts) == 2
    (orig,) = [p for p in parts if p.get_filename() == "original.eml"]
    assert orig.get_content_type() == "message/rfc822"
    assert b"wire the money" not in m.data and b"\nhello\n" in orig.as_bytes().replace(b"\r\n", b"\n")


def test_slack_gets_escaped_text_and_ntfy_a_json_publish_that_no_server_refuses(
    journald: harness.Journald, sendmail: Sendmail, config: Config, webhook: Webhook
) -> None:
    evil = "alert <!channel> <!here> <https://evil.example/|your bank> & more"
    store(sendmail, evil, body="<@U123> click <https://evil.example/|here>\n")
    long = "alert " + "défaillance du disque " * 40  # 900 characters, not ASCII: a folded Title header of old
    store(sendmail, long)
    cfg = config(hook_dest("slack", f"{webhook.url}?slack", 'format = "slack"')
                 + hook_dest("ntfy", f"{webhook.url}?ntfy", 'format = "ntfy"')
                 + ALL.replace('["bad", "good"]', '["slack", "ntfy"]'))
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    posts = list(zip(webhook.paths, webhook.posts, strict=True))
    slack = [json.loads(b)["text"] for p, (_, b) in posts if p.endswith("?slack")]
    assert len(slack) == 2
    for t in slack:
        assert "<!" not in t and "<@" not in t and "<http" not in t
    assert any("&lt;!channel&gt; &lt;!here&gt; &lt;https://evil.example/|your bank&gt; &amp; more" in t for t in slack)
    ntfy = [(h, json.loads(b)) for p, (h, b) in posts if p.endswith("?ntfy")]
    assert len(ntfy) == 2 and {n["topic"] for _, n in ntfy} == {"hook"}
    assert any(n["title"].endswith(long[:200]) or long[:200] in n["title"] for _, n in ntfy)
    assert all(len(v) < 500 for h, _ in ntfy for v in h.values())
    journald.sync()
    assert not events("gave-up")


HOSTILE = "alert \x1b]0;owned\x07\x1b[2J\rFAKE: delivered everything\n\u202eevil"


def test_no_escape_from_hostile_data_reaches_the_terminal(
    journald: harness.Journald, config: Config, webhook: Webhook
) -> None:
    raw = b"From: root\nTo: root\nSubject: alert x\n\nhello\n"
    forge([forged(HOSTILE, "\x1b[31m" + "e" * 27, raw), forged(HOSTILE, "e" * 32, raw)])
    journald.sync()
    cfg = config(hook_dest("chat", webhook.url) + ALL.replace('["bad", "good"]', '["chat"]'))
    once = forward(cfg, "--once")
    assert once.returncode == 0, once.stderr
    dry = forward(cfg, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for out in (once.stderr, dry.stdout, dry.stderr):
        assert b"\x1b" not in out and b"\x07" not in out and b"\r" not in out
    assert b"FAKE" in once.stderr and b"FAKE" in dry.stdout
    assert not any(line.startswith(b"FAKE") for line in once.stderr.splitlines() + dry.stdout.splitlines())
    journald.sync()
    assert all(b"\x1b" not in harness.one(e["MESSAGE"]) and b"\n" not in harness.one(e["MESSAGE"])
               for e in events())


@pytest.mark.parametrize("case", ["link", "other-owner", "mode-640"])
def test_a_password_file_must_be_root_only_and_not_a_link(
    journald: harness.Journald, config: Config, smarthost: Smarthost, tmp_path: Path, case: str
) -> None:
    pw = tmp_path / "relay.pass"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    named = pw
    if case == "link":
        named = tmp_path / "link.pass"
        named.symlink_to(pw)
    elif case == "other-owner":
        os.chown(pw, NOBODY, NOBODY)
    else:
        pw.chmod(0o640)
    cfg = config(dests(smarthost, extra=f'username = "u"\npassword_file = "{named}"\n')
                 + ALL.replace('["bad", "good"]', '["ops"]'))
    r = forward(cfg, "--once")
    assert r.returncode == 78, r.stderr
    assert b"destination.ops.password_file" in r.stderr
    assert {"link": b"symbolic link", "other-owner": b"owned by uid", "mode-640": b"0640"}[case] in r.stderr


def test_state_files_are_private_when_run_by_hand_with_a_loose_umask(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    store(sendmail, "alert 1", "Cron x")
    cfg = config(dests(smarthost) + ALL.replace('["bad", "good"]', '["ops"]')
                 + '[[rule]]\nmatch = { subject = "Cron*" }\ndigest = "d"\n[digest.d]\nto = ["ops"]\nevery = "1d"\n')
    r = subprocess.run(["sh", "-c", 'umask 022; exec "$@"', "sh", *READER, "forward", "--config", str(cfg), "--once"],
                       capture_output=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"lock", "state.json", "delivered", "bucket.jsonl"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files), [(p, oct(p.stat().st_mode)) for p in files]
    # a planted link is never written through
    target = tmp_path / "target"
    target.write_text("untouched\n")
    sj = tmp_path / "state" / "dest-ops" / "state.json.tmp"
    sj.symlink_to(target)
    store(sendmail, "alert 2")
    assert forward(cfg, "--once").returncode == 0
    assert target.read_text() == "untouched\n"


def test_a_webhook_honours_cafile(
    journald: harness.Journald, sendmail: Sendmail, config: Config, tmp_path: Path
) -> None:
    ca, certs = make_ca(tmp_path, "localhost")
    cert, key = certs["localhost"]
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    hook = Webhook(tls=tls)
    try:
        store(sendmail, "alert tls")
        rules = ALL.replace('["bad", "good"]', '["chat"]')
        assert forward(config(hook_dest("chat", hook.url) + rules), "--once").returncode == 75  # not trusted
        r = forward(config(hook_dest("chat", hook.url, f'cafile = "{ca}"') + rules), "--once")
        assert r.returncode == 0, r.stderr
        assert [x["subject"] for x in hook.records()] == ["alert tls"]
    finally:
        hook.stop()


@pytest.mark.parametrize("hostile", ["smtp-drip"], indirect=True)
def test_the_service_delivers_to_a_healthy_destination_while_another_hangs(
    journald: harness.Journald, sendmail: Sendmail, config: Config, hostile: Hostile, webhook: Webhook,
    tmp_path: Path
) -> None:
    """Following: the hung destination's worker is left to it; the other one's mail goes at once."""
    cfg = config(smtp_dest("bad", hostile.port).replace(f'"{TIMEOUT:g}s"', '"60s"') + hook_dest("good", webhook.url)
                 + ALL)
    proc = spawn_forward(cfg, err=tmp_path / "err")
    try:
        wait_until(lambda: (tmp_path / "state" / "dest-good" / "state.json").exists(), 30, "the first pass")
        for i in range(3):
            t0 = time.monotonic()
            store(sendmail, f"alert {i}")
            wait_until(lambda i=i: len(webhook.posts) == i + 1, 30, f"alert {i} on the healthy destination")
            assert time.monotonic() - t0 < 20  # well inside the hung one's 60 s deadline
        assert hostile.connections == 1  # still stuck in its first session
    finally:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    assert code == 0, (tmp_path / "err").read_text()
    assert time.monotonic() - t0 < 20  # the stop is not held up by the hung session either
    assert sorted(x["subject"] for x in webhook.records()) == ["alert 0", "alert 1", "alert 2"]


@pytest.mark.parametrize("case", ["world-writable", "nobodys-in-a-shared-dir", "consumer-dir-a-link"])
def test_a_state_directory_another_user_controls_is_refused(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path,
    case: str
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if case == "world-writable":
        state.mkdir()
        state.chmod(0o777)
    elif case == "nobodys-in-a-shared-dir":
        state = shared / "state"
        state.mkdir(mode=0o700)
        os.chown(state, NOBODY, NOBODY)
    else:
        state.mkdir(mode=0o700)
        (state / "dest-ops").symlink_to(elsewhere)
    store(sendmail, "alert 1")
    text = dests(smarthost) + ALL.replace('["bad", "good"]', '["ops"]')
    cfg = config(text)
    cfg.write_text(f'state_dir = "{state}"\n' + text)
    r = forward(cfg, "--once")
    assert r.returncode == 73, r.stderr
    assert b"refused" in r.stderr or b"writable by group or others" in r.stderr
    assert smarthost.received == [] and list(elsewhere.iterdir()) == []
