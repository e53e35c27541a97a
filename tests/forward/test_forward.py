"""journal-mail forward against a real journald, a real smarthost (aiosmtpd) and a real webhook (http.server).

Mail is stored through the program under test (the ``sendmail`` fixture), then
``journal-mail forward --once`` reads it back and hands on what the rules route.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from kit import harness
from kit.forward import Config, Sendmail, Smarthost, Webhook, attachment, dests, events, forward, mail_ids, store
from kit.reader import ok, run_jm

ROUTES = """
[source]
start = "all"

[[rule]]
name = "noise"
match = { subject = "*noise*" }
action = "drop"

[[rule]]
name = "raid"
match = { subject = ["/DegradedArray/", "SMART error*"], user = "root" }
route = ["ops", "chat"]
"""


def test_routes_drops_and_leaves_the_rest_exactly_once(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, webhook: Webhook
) -> None:
    big = "".join(f"line {n} of a report with some width to it\n" for n in range(4000))  # split into parts
    store(sendmail, "DegradedArray event on /dev/md0", "some noise DegradedArray", "Cron <root@h> backup")
    store(sendmail, "SMART error (FailedReadSmartSelfTest) on sda", body=big)
    cfg = config(dests(smarthost, webhook) + ROUTES)
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    got = sorted(smarthost.received, key=lambda m: m.header("Subject"))
    assert [m.header("Subject") for m in got] == [
        f"[{harness.one(journald.entries('MAIL_SUBJECT=DegradedArray event on /dev/md0')[0]['_HOSTNAME']).decode()}]"
        " DegradedArray event on /dev/md0",
        got[1].header("Subject"),
    ] and got[1].header("Subject").endswith("] SMART error (FailedReadSmartSelfTest) on sda")
    for m in got:
        (mail_id,) = mail_ids(m.header("Subject").split("] ", 1)[1])
        assert m.mail_from == "journal-mail@loghost.example.org" and m.rcpts == ["ops@example.org"]
        assert m.header("Auto-Submitted") == "auto-generated"
        assert m.header("X-Journal-Mail-Forwarded") == mail_id
        assert mail_id in m.header("Message-ID")
        raw = ok(run_jm("show", "--raw", mail_id))
        assert attachment(m) == raw  # the original, byte-exact (LF on disk, CRLF on the wire)
        text = m.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert mail_id in text and "uid 0" in text and "Host:" in text and "Caller:" in text
    assert hashlib.sha256(attachment(got[1])).hexdigest() == harness.one(
        journald.entries("MAIL_SUBJECT=SMART error (FailedReadSmartSelfTest) on sda")[0]["MAIL_SHA256"]).decode()
    hooks = sorted(webhook.records(), key=lambda r: r["subject"])
    assert [h["subject"] for h in hooks] == ["DegradedArray event on /dev/md0",
                                            "SMART error (FailedReadSmartSelfTest) on sda"]
    assert hooks[0]["text"] == "hello\n" and hooks[0]["mail_id"] == mail_ids("DegradedArray event on /dev/md0")[0]
    assert hooks[1]["text"] == big and hooks[0]["forwarded"]["rule"] == "raid"
    journald.sync()
    assert len(events("delivered")) == 4
    # once: a second run sends nothing again
    assert forward(cfg, "--once").returncode == 0
    assert len(smarthost.received) == 2 and len(webhook.posts) == 2


def test_start_now_forwards_only_mail_stored_after_the_first_run(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    cfg = config(dests(smarthost) + '[[rule]]\nmatch = { subject = "alert*" }\nroute = ["ops"]\n')
    store(sendmail, "alert old")
    assert forward(cfg, "--once").returncode == 0
    store(sendmail, "alert new")
    assert forward(cfg, "--once").returncode == 0
    assert [m.header("Subject").split("] ")[1] for m in smarthost.received] == ["alert new"]


def test_dry_run_says_which_rule_decided_and_sends_nothing(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, webhook: Webhook,
    tmp_path: Path
) -> None:
    store(sendmail, "DegradedArray event on /dev/md1", "noise here", "nothing matches me")
    cfg = config(dests(smarthost, webhook) + ROUTES)
    r = forward(cfg, "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "rule 'raid' decided" in out and "-> ops: wrap via smtp://" in out and "-> chat: POST" in out
    assert "rule 'noise' decided" in out and "dropped" in out
    assert "no rule matched" in out and "3 mail(s) looked at" in out
    assert smarthost.handler.attempts == 0 and webhook.posts == [] and not (tmp_path / "state").exists()


def test_resend_mode_keeps_the_original_under_resent_headers(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "resend me")
    cfg = config(dests(smarthost, extra='mode = "resend"') +
                 '[source]\nstart = "all"\n[[rule]]\nmatch = { subject = "resend*" }\nroute = ["ops"]\n')
    assert forward(cfg, "--once").returncode == 0
    (m,) = smarthost.received
    (mail_id,) = mail_ids("resend me")
    assert m.header("Resent-From") == "journal-mail@loghost.example.org"
    assert m.header("Resent-To") == "ops@example.org" and mail_id in m.header("Resent-Message-ID")
    assert m.header("Subject") == "resend me" and m.header("X-Journal-Mail-Forwarded") == mail_id
    raw = ok(run_jm("show", "--raw", mail_id))
    assert m.data.replace(b"\r\n", b"\n").endswith(raw)


def test_a_forwarded_mail_is_never_forwarded_again(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "came back", extra="X-Journal-Mail-Forwarded: 0123456789abcdef0123456789abcdef\n")
    store(sendmail, "first time")
    cfg = config(dests(smarthost) + '[source]\nstart = "all"\n[[rule]]\nname = "all"\nmatch = {}\nroute = ["ops"]\n')
    assert forward(cfg, "--once").returncode == 0
    assert [m.header("Subject").split("] ")[1] for m in smarthost.received] == ["first time"]
    assert "already forwarded" in forward(cfg, "--dry-run").stdout.decode()


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ('[destination.ops]\ntype = "smtp"\nurl = "smtp://127.0.0.1:25"\nfrom = "a@b"\nto = ["x@y"]\n'
         'mode = "forward"\n',
         "destination.ops.mode", 7),
        ('[destination.ops]\ntype = "smtp"\nurl = "http://relay"\nfrom = "a@b"\nto = ["x@y"]\n',
         "destination.ops.url", 4),
        ('[[rule]]\nmatch = { subject = "x" }\nroute = ["ops"]\n\n[[rule]]\nmatch = { colour = "red" }\n'
         'action = "drop"\n',
         "rule[1].route", 4),
        ('[[rule]]\naction = "drop"\n\n[[rule]]\nmatch = { colour = "red" }\naction = "drop"\n',
         "rule[2].match.colour", 6),
        ('[digest.daily]\nto = []\nat = "25:00"\n', "digest.daily.to", 3),
        ('[source]\nstart = "yesterday"\n', "source.start", 3),
        ("[[rule]\nname = 1\n", "line 2", None),
        ('[destination.ops]\ntype = "smtp"\nurl = "smtp://relay.example.org"\nfrom = "a@b"\nto = ["x@y"]\n'
         'username = "u"\npassword_file = "/etc/journal-mail/relay.pass"\n', "destination.ops.username", 7),
    ],
    ids=["bad-mode", "bad-url", "unknown-destination", "unknown-match-key", "bad-digest", "bad-start", "toml-syntax",
         "auth-in-clear"],
)
def test_a_bad_config_exits_78_naming_the_key_and_the_line(
    config: Config, text: str, key: str, line: int | None
) -> None:
    cfg = config(text)  # a state_dir line comes first, so the file's lines are one further down
    r = forward(cfg, "--once")
    err = r.stderr.decode()
    assert r.returncode == 78, err
    assert key in err and "Traceback" not in err
    if line is not None:
        assert f"{cfg}:{line}:" in err


def test_ntfy_and_slack_shapes(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, webhook: Webhook
) -> None:
    store(sendmail, "DegradedArray on md0 — dégradé", body="md0 lost a disk\n")
    cfg = config(dests(smarthost) + f"""
[destination.ntfy]
type = "webhook"
url = "{webhook.url}?to=ntfy"
format = "ntfy"
headers = {{ Authorization = "Bearer t0ken" }}

[destination.slack]
type = "webhook"
url = "{webhook.url}?to=slack"
format = "slack"

[source]
start = "all"

[[rule]]
match = {{ subject = "Degraded*" }}
route = ["ntfy", "slack"]
""")
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    import json

    by_kind = {("ntfy" if b"topic" in b else "slack"): (h, b, p) for (h, b), p in
               zip(webhook.posts, webhook.paths, strict=True)}
    h, b, path = by_kind["ntfy"]
    sent = json.loads(b)  # ntfy's JSON publishing: to the server's root, the topic in the body
    assert path == "/?to=ntfy" and sent["topic"] == "hook" and h["Content-Type"].startswith("application/json")
    assert sent["title"].endswith("] DegradedArray on md0 — dégradé") and "Title" not in h
    assert h["Authorization"] == "Bearer t0ken" and "md0 lost a disk" in sent["message"]
    assert h["X-Journal-Mail-Forwarded"] == mail_ids("DegradedArray on md0 — dégradé")[0]
    h, b, path = by_kind["slack"]
    text = json.loads(b)["text"]
    assert "DegradedArray on md0 — dégradé" in text and "md0 lost a disk" in text and path == "/hook?to=slack"
    assert smarthost.received == []
