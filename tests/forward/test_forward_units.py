"""The forwarder's pure parts: rules, config values, digest times, the composed messages."""

from __future__ import annotations

import email
import email.policy
import os
import time
from collections.abc import Iterator

import pytest

from journal_sendmail.reader.entry import MailEntry
from journal_sendmail.reader.forward import compose, config, digest, rules


def cfg_rules(text: str) -> config.Config:
    import tomllib

    head = ('[destination.ops]\ntype = "webhook"\nurl = "http://127.0.0.1/h"\n'
            '[destination.page]\ntype = "webhook"\nurl = "http://127.0.0.1/p"\n'
            '[digest.daily]\nto = ["ops"]\nevery = "1h"\n')
    return config.parse(tomllib.loads(head + text), "test.toml", head + text)


def mail(subject: str = "s", uid: int | None = 0, **kw: object) -> rules.Mail:
    e = MailEntry(mail_id="ab" * 16, uid=uid, hostname="web1", headers={"subject": subject}, **kw)  # type: ignore[arg-type]
    return rules.Mail(e, unit="cron.service")


RULES = """
[[rule]]
name = "page"
match = { subject = ["/Degraded/", "smart*"] }
route = ["page"]
continue = true

[[rule]]
name = "root"
match = { user = "root", unit = "cron.*" }
route = ["ops"]

[[rule]]
name = "drop"
match = { host = "WEB*" }
action = "drop"
"""


@pytest.mark.parametrize(
    ("m", "decided", "route", "dropped"),
    [
        (mail("DegradedArray on md0"), ("page", "root"), ("page", "ops"), False),
        (mail("SMART error", uid=33), ("page", "drop"), ("page",), True),
        (mail("backup", uid=33), ("drop",), (), True),
        (mail("degradedarray"), ("root",), ("ops",), False),  # a /regex/ keeps its case
        (mail("x", uid=0, spooled=True, spool_uid=33), ("drop",), (), True),  # root's flusher: the submitter counts
        (mail("DegradedArray", damaged="MAIL_SIZE is not a size"), (), (), False),
    ],
    ids=["continue-then-route", "continue-then-drop", "glob-any-case", "regex-case", "spooled-uid", "damaged"],
)
def test_decide(m: rules.Mail, decided: tuple[str, ...], route: tuple[str, ...], dropped: bool) -> None:
    d = rules.decide(cfg_rules(RULES).rules, m, lambda: "")
    assert (d.rules, d.route, d.dropped) == (decided, route, dropped)


def test_no_rule_means_the_journal_only() -> None:
    m = rules.Mail(MailEntry(mail_id="ab" * 16, uid=33, hostname="db1"))
    d = rules.decide(cfg_rules(RULES).rules, m, lambda: "")
    assert d.rules == () and d.route == () and not d.dropped


@pytest.mark.parametrize(("text", "seconds"), [("45", 45), ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert config.duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1s", "1y", "soon", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        config.duration(text)


@pytest.fixture
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.mark.parametrize(
    ("now", "due"),
    [("2026-11-29T06:59:00", "2026-11-29T07:00:00"), ("2026-11-29T07:00:00", "2026-11-30T07:00:00"),
     ("2026-11-29T23:30:00", "2026-11-30T07:00:00")],
    ids=["before", "at-the-minute-itself", "after"],
)
def test_a_digest_at_hh_mm_is_due_at_the_next_one_never_now(utc: None, now: str, due: str) -> None:
    import datetime as dt

    g = config.Digest("daily", ("ops",), at=(7, 0))
    t = dt.datetime.fromisoformat(now + "+00:00").timestamp()
    assert digest.first_due(g, t) == dt.datetime.fromisoformat(due + "+00:00").timestamp()


def test_wrap_keeps_an_original_with_cr_bytes_exact_as_base64() -> None:
    raw = b"From: php\r\nSubject: crlf and a bare \r here\r\n\r\nbody\r\n"
    e = MailEntry(mail_id="cd" * 16, uid=33, hostname="web1", headers={"subject": "crlf"}, size=len(raw), raw=raw)
    d = config.Destination(name="ops", type="smtp", url="smtp://x", sender="f@example.org", to=("o@example.org",))
    out = compose.wrap(e, raw, "", d, "r", 0.0)
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    (att,) = [p for p in msg.walk() if p.get_filename() == "original.eml"]
    assert att.get_content_type() == "application/octet-stream" and att.get_content() == raw
    assert msg["Subject"] == "[web1] crlf" and msg["X-Journal-Mail-Forwarded"] == "cd" * 16
