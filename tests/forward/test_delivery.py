"""Delivery you can trust: a relay that refuses, one that is down and comes back, TLS and AUTH,
a forwarder killed mid-batch, a mail twice in the journal, a vacuumed cursor."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from kit import harness
from kit.forward import Smarthost, Webhook, dests, events, forward, spawn_forward, store, subjects
from kit.net import make_ca
from kit.reader import wait_until

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]
ALL = '[source]\nstart = "all"\n[[rule]]\nname = "all"\nmatch = { subject = "alert*" }\nroute = ["ops", "chat"]\n'


def test_a_relay_that_refuses_5xx_is_given_up_at_once_and_never_holds_back_the_webhook(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, webhook: Webhook
) -> None:
    smarthost.handler.reply = "554 5.7.1 rejected by policy"
    store(sendmail, "alert 1", "alert 2")
    cfg = config(dests(smarthost, webhook) + ALL)
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr  # nothing waits: 5xx is final
    assert smarthost.handler.attempts == 2 and len(webhook.posts) == 2
    journald.sync()
    gave_up = events("gave-up")
    assert len(gave_up) == 2 and all(b"554" in harness.one(e["MESSAGE"]) for e in gave_up)
    smarthost.handler.reply = "250 2.0.0 Ok"
    assert forward(cfg, "--once").returncode == 0
    assert smarthost.handler.attempts == 2 and smarthost.received == [] and len(webhook.posts) == 2


@pytest.mark.parametrize("down", ["4xx", "refused", "webhook-503"])
def test_a_relay_that_is_down_is_retried_until_it_comes_back_and_gets_each_mail_once(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, webhook: Webhook,
    down: str
) -> None:
    store(sendmail, "alert 1", "alert 2")
    cfg = config(dests(smarthost, webhook) + ALL)
    if down == "4xx":
        smarthost.handler.reply = "451 4.3.0 try again later"
    elif down == "refused":
        smarthost.stop()
    else:
        webhook.status = 503
    r = forward(cfg, "--once")
    assert r.returncode == 75, r.stderr
    store(sendmail, "alert 3")
    assert forward(cfg, "--once").returncode == 75
    journald.sync()
    assert events("retried") and not events("gave-up")
    # the destination that works got everything meanwhile, once
    if down == "webhook-503":
        assert subjects(smarthost) == Counter({"alert 1": 1, "alert 2": 1, "alert 3": 1})
        webhook.status = 200
    else:
        assert Counter(r["subject"] for r in webhook.records()) == Counter({"alert 1": 1, "alert 2": 1, "alert 3": 1})
        smarthost.handler.reply = "250 2.0.0 Ok"
        if down == "refused":
            smarthost.start()
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    assert subjects(smarthost) == Counter({"alert 1": 1, "alert 2": 1, "alert 3": 1})
    assert Counter(r["subject"] for r in webhook.records()) == Counter({"alert 1": 1, "alert 2": 1, "alert 3": 1})


def test_max_age_gives_a_mail_up(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    smarthost.handler.reply = "421 4.3.2 shutting down"
    store(sendmail, "alert old")
    cfg = config(dests(smarthost, extra="max_age = 1") + ALL.replace(', "chat"', ""))
    assert forward(cfg, "--once").returncode == 75
    wait_until(lambda: forward(cfg, "--once").returncode == 0, 30, "max_age to pass")
    journald.sync()
    (e,) = events("gave-up")
    assert b"still failing" in harness.one(e["MESSAGE"])


def test_starttls_with_a_test_ca_and_auth_from_a_root_only_password_file(
    journald: harness.Journald, sendmail: Sendmail, config: Config, tmp_path: Path
) -> None:
    ca, certs = make_ca(tmp_path, "localhost")
    cert, key = certs["localhost"]
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    host = Smarthost(tls=tls, users={"loghost": "s3cret"}).start()
    try:
        pw = tmp_path / "relay.pass"
        pw.write_text("s3cret\n")
        pw.chmod(0o644)
        extra = f'username = "loghost"\npassword_file = "{pw}"\ncafile = "{ca}"\n'
        text = dests(host, extra=extra).replace("smtp://", "smtp+starttls://localhost:").replace(
            "localhost:127.0.0.1:", "localhost:")
        cfg = config(text + ALL.replace(', "chat"', ""))
        store(sendmail, "alert over tls")
        r = forward(cfg, "--once")
        assert r.returncode == 78 and b"readable by group or others" in r.stderr  # a secret must be root-only
        pw.chmod(0o600)
        r = forward(cfg, "--once")
        assert r.returncode == 0, r.stderr
        assert subjects(host) == Counter({"alert over tls": 1})
        pw.write_text("wrong\n")
        store(sendmail, "alert bad password")
        assert forward(cfg, "--once").returncode == 75  # not the mail's fault: kept for a retry
    finally:
        host.stop()


def test_smtps_checks_the_certificate(
    journald: harness.Journald, sendmail: Sendmail, config: Config, tmp_path: Path
) -> None:
    ca, certs = make_ca(tmp_path, "localhost")
    cert, key = certs["localhost"]
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    host = Smarthost(tls=tls, smtps=True).start()
    try:
        text = dests(host).replace("smtp://127.0.0.1:", "smtps://localhost:")
        store(sendmail, "alert smtps")
        cfg = config(text + ALL.replace(', "chat"', ""))
        assert forward(cfg, "--once").returncode == 75  # the test CA is not trusted: no delivery
        cfg = config(text.replace('timeout = "10s"', f'timeout = "10s"\ncafile = "{ca}"') + ALL.replace(', "chat"', ""))
        r = forward(cfg, "--once")
        assert r.returncode == 0, r.stderr
        assert subjects(host) == Counter({"alert smtps": 1})
    finally:
        host.stop()


def test_a_forwarder_killed_mid_batch_repeats_at_most_one_mail_with_the_same_message_id(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    n = 12
    store(sendmail, *(f"alert {i}" for i in range(n)))
    smarthost.handler.delay = 0.15  # a slow relay, so that the kill lands mid-batch
    cfg = config(dests(smarthost) + ALL.replace(', "chat"', ""))
    proc = spawn_forward(cfg, "--once", err=tmp_path / "err")
    wait_until(lambda: smarthost.handler.attempts >= 4, 60, "a few mails on the wire")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < len(smarthost.received) < n
    smarthost.handler.delay = 0
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    count = subjects(smarthost)
    assert set(count) == {f"alert {i}" for i in range(n)}
    repeated = [s for s, c in count.items() if c > 1]
    assert len(repeated) <= 1 and all(c <= 2 for c in count.values())
    for s in repeated:
        ids = {m.header("Message-ID") for m in smarthost.received if m.header("Subject").endswith("] " + s)}
        assert len(ids) == 1


def test_a_mail_in_the_journal_twice_is_sent_once(
    journald: harness.Journald, config: Config, smarthost: Smarthost
) -> None:
    """journal-upload re-sends the entry at its saved cursor after a restart: same MAIL_ID, same sender."""
    import hashlib

    from kit.reader import write_entry

    from journal_sendmail.record import MSG_MAIL

    raw = b"To: root\nSubject: alert twice\n\nhello\n"
    fields = [("MESSAGE", b"alert twice"), ("MESSAGE_ID", MSG_MAIL.encode()), ("MAIL_ID", b"ab" * 16),
              ("MAIL_RCPT", b"root"), ("MAIL_SUBJECT", b"alert twice"), ("MAIL_SIZE", str(len(raw)).encode()),
              ("MAIL_SHA256", hashlib.sha256(raw).hexdigest().encode()), ("MAIL_RAW", raw)]
    write_entry(fields)
    write_entry(fields)
    journald.sync()
    cfg = config(dests(smarthost) + ALL.replace(', "chat"', ""))
    assert forward(cfg, "--once").returncode == 0
    assert subjects(smarthost) == Counter({"alert twice": 1})


def test_a_vacuumed_cursor_is_a_logged_gap_and_the_next_mail_still_goes(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "alert before")
    cfg = config(dests(smarthost) + ALL.replace(', "chat"', ""))
    assert forward(cfg, "--once").returncode == 0  # the cursor is at "alert before"
    subprocess.run(["journalctl", "--rotate"], check=True, capture_output=True, timeout=30)
    store(sendmail, "alert after")
    journald.sync()
    subprocess.run(["journalctl", "--vacuum-files=1"], check=True, capture_output=True, timeout=30)
    assert not harness.read_entries(["MAIL_SUBJECT=alert before"])  # its file is gone
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    assert subjects(smarthost) == Counter({"alert before": 1, "alert after": 1})
    journald.sync()
    (gap,) = events("gap")
    assert b"vacuumed" in harness.one(gap["MESSAGE"])
