"""Rules that trust only journald: forged entries, digests, rate limits, and the following service."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from kit import harness
from kit.forward import Smarthost, dests, events, forward, mail_ids, spawn_forward, store, subjects
from kit.reader import NOBODY, forge, wait_until

from journal_sendmail.record import MSG_MAIL

Sendmail = Callable[..., subprocess.CompletedProcess[bytes]]
Config = Callable[[str], Path]

ROOT_ONLY = """
[source]
start = "all"

[[rule]]
name = "root's urgent mail"
match = { user = "root", subject = "URGENT*" }
route = ["ops"]

[[rule]]
name = "uid 0"
match = { uid = 0, subject = "/^uid0/" }
route = ["ops"]
"""


def forged_mail(subject: str, mail_id: str, **extra: str) -> list[tuple[str, str]]:
    raw = f"From: root\nTo: root\nSubject: {subject}\n\nforged by nobody\n"
    fields = [("MESSAGE", subject), ("MESSAGE_ID", MSG_MAIL), ("MAIL_ID", mail_id), ("MAIL_RCPT", "root"),
              ("MAIL_ENVELOPE_FROM", "root"), ("MAIL_SUBJECT", subject), ("MAIL_SIZE", str(len(raw))),
              ("MAIL_SHA256", hashlib.sha256(raw.encode()).hexdigest()), ("MAIL_RAW", raw)]
    return fields + list(extra.items())


def test_a_forged_entry_never_matches_a_rule_for_root(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "URGENT: the real one", "uid0 real")
    real = mail_ids("URGENT: the real one")[0]
    forge([
        # self-consistent, claiming to be root's mail re-injected from the spool
        forged_mail("URGENT: forged spool", "1" * 32, MAIL_SPOOLED="yes", MAIL_SPOOL_UID="0"),
        forged_mail("uid0 forged", "2" * 32, MAIL_SPOOLED="yes", MAIL_SPOOL_UID="0", _UID="0"),
        # a twin of root's genuine MAIL_ID
        forged_mail("URGENT: twin", real),
        # damaged: a size that does not fit
        [*forged_mail("URGENT: damaged", "3" * 32)[:6], ("MAIL_SIZE", "-5"), ("MAIL_RAW", "x")],
    ])
    journald.sync()
    assert len(harness.read_entries([f"MESSAGE_ID={MSG_MAIL}", f"_UID={NOBODY}"])) == 4
    cfg = config(dests(smarthost) + ROOT_ONLY)
    r = forward(cfg, "--once")
    assert r.returncode == 0, r.stderr
    assert subjects(smarthost) == Counter({"URGENT: the real one": 1, "uid0 real": 1})
    (m,) = [m for m in smarthost.received if "URGENT" in m.header("Subject")]
    assert m.header("X-Journal-Mail-Forwarded") == real
    out = forward(cfg, "--dry-run").stdout.decode()
    assert "not forwarded: damaged" in out and out.count("no rule matched") == 3


DIGEST = """
[source]
start = "all"

[[rule]]
name = "cron"
match = { subject = "Cron*" }
digest = "daily"

[digest.daily]
to = ["ops"]
every = "1h"
group_by = ["host", "subject"]
"""


def test_a_digest_is_never_sent_at_once_lists_each_group_and_is_not_sent_empty(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    store(sendmail, "Cron <root@h> backup", "Cron <root@h> backup", body="backup failed: disk full\n")
    store(sendmail, "Cron <root@h> logrotate")
    cfg = config(dests(smarthost) + DIGEST)
    assert forward(cfg, "--once").returncode == 0
    assert smarthost.received == []  # collected, not due: a first start sends nothing
    r = forward(cfg, "--digest-now", "daily")
    assert r.returncode == 0, r.stderr
    (m,) = smarthost.received
    text = m.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "3 mail(s) in 2 group(s)" in m.header("Subject") and m.header("Auto-Submitted") == "auto-generated"
    backup = text.split("1. ", 1)[1].split("\n2. ", 1)[0]
    assert "subject=Cron <root@h> backup" in backup and "2 mail(s), first " in backup
    assert "backup failed: disk full" in backup
    assert "journal-mail show " + " ".join(mail_ids("Cron <root@h> backup")) in backup
    assert "journal-mail show " + mail_ids("Cron <root@h> logrotate")[0] in text
    assert forward(cfg, "--digest-now").returncode == 0
    assert len(smarthost.received) == 1  # empty: nothing sent
    journald.sync()
    assert len(events("digest-sent")) == 1


def test_over_the_rate_limit_mail_goes_into_a_digest_instead_of_being_lost(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    cfg = config(dests(smarthost, extra='rate_limit = "2/1h"\noverflow = "over"') + """
[source]
start = "all"
[[rule]]
match = { subject = "alert*" }
route = ["ops"]
[digest.over]
to = ["ops"]
every = "1d"
""")
    store(sendmail, *(f"alert {i}" for i in range(5)))
    assert forward(cfg, "--once").returncode == 0
    assert subjects(smarthost) == Counter({"alert 0": 1, "alert 1": 1})
    assert forward(cfg, "--digest-now", "over").returncode == 0
    digest = smarthost.received[-1].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "3 mail(s)" in digest and "over ops's rate limit" in digest
    assert all(f"alert {i}" in digest for i in (2, 3, 4))


def test_the_service_follows_new_mail_and_reloads_on_sighup(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    rules = '[[rule]]\nmatch = { subject = "alert*" }\nroute = ["ops"]\n'
    cfg = config(dests(smarthost) + rules)
    proc = spawn_forward(cfg, err=tmp_path / "err")
    try:
        wait_until(lambda: (tmp_path / "state" / "dest-ops" / "state.json").exists(), 30, "the first pass")
        store(sendmail, "page me", "alert one")  # once alert one is forwarded, page me was passed over
        wait_until(lambda: len(smarthost.received) == 1, 30, "alert one forwarded")
        cfg.write_text(cfg.read_text().replace('"alert*"', '["alert*", "page*"]'))
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: journald.sync() or bool(events("reloaded")), 30, "the reload")
        store(sendmail, "page me again")
        wait_until(lambda: len(smarthost.received) == 2, 30, "page me again forwarded")
        cfg.write_text("this is = = not toml")
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: journald.sync() or bool(events("reload-failed")), 30, "the refused reload")
        store(sendmail, "page me a third time")
        wait_until(lambda: len(smarthost.received) == 3, 30, "the old rules kept after a bad reload")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "err").read_text()
    assert subjects(smarthost) == Counter({"alert one": 1, "page me again": 1, "page me a third time": 1})


def test_refused_submissions_match_only_a_rule_that_asks_for_them(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost
) -> None:
    r = sendmail(["-t"], b"Subject: alert nobody to send to\n\nno recipients\n")  # refused (64), still recorded
    assert r.returncode == 64
    store(sendmail, "alert normal")
    rules = '[source]\nstart = "all"\n[[rule]]\nmatch = { subject = "alert*" }\nroute = ["ops"]\n'
    cfg = config(dests(smarthost) + rules)
    assert forward(cfg, "--once").returncode == 0
    assert subjects(smarthost) == Counter({"alert normal": 1})
    cfg = config(dests(smarthost) + rules.replace('match = { subject = "alert*" }',
                                                  'match = { subject = "alert*", kind = "refused" }'))
    for d in (cfg.parent / "state").iterdir():
        subprocess.run(["rm", "-rf", str(d)], check=True)
    assert forward(cfg, "--once").returncode == 0
    assert subjects(smarthost) == Counter({"alert normal": 1, "alert nobody to send to": 1})


def test_a_run_by_root_leaves_the_state_owned_by_the_services_user(
    journald: harness.Journald, sendmail: Sendmail, config: Config, smarthost: Smarthost, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4242, 4242)  # as StateDirectory= with DynamicUser= leaves it
    store(sendmail, "alert owned")
    cfg = config(dests(smarthost) + DIGEST.replace('"Cron*"', '"alert*"'))
    assert forward(cfg, "--once").returncode == 0
    files = [p for p in state.rglob("*")]
    assert len(files) >= 5 and {(p.stat().st_uid, p.stat().st_gid) for p in files} == {(4242, 4242)}, files
