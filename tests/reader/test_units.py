"""--unit, --caller-unit and --from as an admin reads them: the unit a mail came from by
journald's word (_SYSTEMD_UNIT only), the unit the sender claims (MAIL_CALLER_UNIT, which
any local user can forge: never taken for the unit), and the sender as the envelope or the
From header gives it; the UNIT column, the JSON fields and stats --by unit; with the index
and without.  The entries here are written from no unit: journald gives them none."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator

import pytest
from kit import harness
from kit.reader import records, run_jm, write_entry

from journal_sendmail import record

MAILS = [
    # subject, envelope sender, From header, the unit sendmail read from its cgroup
    ("cron job", "root", "root (Cron Daemon)", "cron.service"),
    ("shop order", "www-data", "Shop <Shop@Example.org>", "php8.2-fpm.service"),
    ("upgrade", "root", None, "apt-daily-upgrade.service"),
    ("by hand", "alice", "alice@example.com", None),
]


@pytest.fixture(scope="module")
def corpus() -> Iterator[None]:
    harness.clean_journal_dirs()
    j = harness.Journald().start()
    try:
        for subject, sender, from_header, unit in MAILS:
            raw = (f"From: {from_header}\n" if from_header else "").encode() + f"Subject: {subject}\n\nx\n".encode()
            headers = {"MAIL_SUBJECT": subject, **({"MAIL_FROM": from_header} if from_header else {})}
            caller = {"MAIL_CALLER_COMM": "sh", **({"MAIL_CALLER_UNIT": unit} if unit else {})}
            mail = record.Mail(mail_id=os.urandom(16).hex(), envelope_from=sender, recipients=["root"],
                               headers=headers, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                               argv=("sendmail", "root"), invoked_as="sendmail", caller=caller)
            write_entry(record.mail_fields(mail, raw, 1))
        j.sync()
        yield
    finally:
        j.stop()


def subjects(*args: str) -> list[str]:
    return [r["subject"] for r in records(run_jm("list", "--json", *args))]


@pytest.mark.parametrize("index", [False, True], ids=["scan", "index"])
@pytest.mark.parametrize(("args", "want"), [
    (["--unit", "cron.service"], []),  # claimed, not journald's word
    (["--caller-unit", "cron.service"], ["cron job"]),
    (["--caller-unit", "cron.service", "--caller-unit", "apt-daily-upgrade.service"], ["cron job", "upgrade"]),
    (["--caller-unit", "nothing.service"], []),
    (["--from", "www-data"], ["shop order"]),  # the envelope
    (["--from", "shop@example.org"], ["shop order"]),  # the From header's address, any case
    (["--from", "Shop"], []),  # a display name is no address
    (["--from", "root", "--caller-unit", "cron.service"], ["cron job"]),
], ids=["claimed-unit", "caller-unit", "two-units", "no-unit", "from-envelope", "from-header", "from-name",
        "from-and-unit"])
def test_unit_and_from_filters(corpus: None, args: list[str], want: list[str], index: bool) -> None:
    if index:
        assert run_jm("index").returncode == 0
    try:
        assert subjects(*args) == want
        assert subjects(*args, "--no-index") == want
    finally:
        for f in harness_index_files():
            os.unlink(f)


def harness_index_files() -> list[str]:
    d = "/var/lib/journal-mail/index"
    return [os.path.join(d, n) for n in os.listdir(d)] if os.path.isdir(d) else []


def test_unit_is_shown_in_json_table_and_stats(corpus: None) -> None:
    recs = records(run_jm("list", "--json"))
    assert [(r["unit"], r["caller_unit"], r["systemd_unit"]) for r in recs] == [
        (None, "cron.service", None), (None, "php8.2-fpm.service", None),
        (None, "apt-daily-upgrade.service", None), (None, None, None)]
    table = run_jm("list").stdout.decode().splitlines()
    assert "UNIT" in table[0] and "cron.service" not in table[1]
    stats = [json.loads(line) for line in run_jm("stats", "--by", "unit", "--json").stdout.splitlines()]
    assert sorted((s["unit"], s["mails"]) for s in stats) == [("(none)", 4)]
