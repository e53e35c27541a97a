"""The forwarder's pure parts: rules, config values, digest times, the composed messages."""

from __future__ import annotations

import email
import email.policy
import os
import time
from collections.abc import Iterator
from pathlib import Path

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
    e = MailEntry(mail_id="ab" * 16, uid=uid, hostname="web1", headers={"subject": subject},  # type: ignore[arg-type]
                  systemd_unit="cron.service", **kw)
    return rules.Mail(e)


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
    out = compose.wrap(e, raw, d, "r", 0.0)
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    (att,) = [p for p in msg.walk() if p.get_filename() == "original.eml"]
    assert att.get_content_type() == "application/octet-stream" and att.get_content() == raw
    assert msg["Subject"] == "[web1] crlf" and msg["X-Journal-Mail-Forwarded"] == "cd" * 16


def rec(i: int, group: str, example: str = "x\n") -> dict[str, object]:
    return {"key": f"k{i}", "group": ["web1", group], "time": 1.0e9 + i, "mail_id": f"{i:032x}", "subject": group,
            "example": example, "note": ""}


def test_a_flooded_bucket_stays_bounded_and_keeps_the_genuine_alert_visible(tmp_path: Path) -> None:
    b = digest.Bucket(str(tmp_path))
    b.add(rec(0, "SMART error on /dev/sda", "SMART overall-health: FAILED\n"))
    for i in range(1, 3 * digest.BUCKET_MAX):
        b.add(rec(i, "Fail", "forged " * 200))
    b.add(rec(10 ** 6, "DegradedArray md0", "md0 lost a disk\n"))
    lines = Path(b.open_path).read_bytes().count(b"\n")
    assert lines < digest.BUCKET_MAX
    assert os.path.getsize(b.open_path) < 16 * 1024 * 1024
    assert b.close_period()
    recs = b.closed()
    g = config.Digest("daily", ("ops",), every=3600.0, group_by=("host", "subject"))
    (part,) = digest.parts(g, recs, "loghost", 1 << 20)
    assert "SMART overall-health: FAILED" in part.text and "md0 lost a disk" in part.text
    assert f"{3 * digest.BUCKET_MAX + 1} mail(s) in 3 group(s)" in part.subject
    fail = part.text.split("subject=Fail", 1)[1].split("\n\n", 1)[0]
    assert f"{3 * digest.BUCKET_MAX - 1} mail(s)" in fail and "more)" in fail


def test_a_big_digest_is_split_into_parts_under_the_size_and_each_group_goes_once() -> None:
    recs = [rec(i, f"Fail {i}", "line\n" * 30) for i in range(1000)]
    g = config.Digest("daily", ("ops",), every=3600.0, group_by=("host", "subject"))
    parts = digest.parts(g, recs, "loghost", 40_000)
    assert len(parts) > 1 and all(len(p.text.encode()) <= 40_000 for p in parts)
    assert all(f"(part {i} of {len(parts)})" in p.subject for i, p in enumerate(parts, 1))
    keys = [k for p in parts for k in p.group_keys]
    assert len(keys) == len(set(keys)) == 1000
    rest = digest.parts(g, recs, "loghost", 40_000, skip=frozenset(parts[0].group_keys))
    assert sum(len(p.group_keys) for p in rest) == 1000 - len(parts[0].group_keys)


@pytest.mark.parametrize("subject", ["a" * 70_000, "é" * 70_000, "word " * 14_000], ids=["one-word", "utf8", "words"])
def test_a_huge_subject_makes_no_header_line_a_relay_refuses(subject: str) -> None:
    e = MailEntry(mail_id="cd" * 16, uid=0, hostname="web1", headers={"subject": subject}, size=5, raw=b"\n\nhi\n")
    d = config.Destination(name="ops", type="smtp", url="smtp://x", sender="f@example.org", to=("o@example.org",))
    out = compose.wrap(e, e.raw, d, "r", 0.0)
    head = out.data.split(b"\n\n", 1)[0]
    assert max(len(line) for line in head.split(b"\n")) <= compose.LINE_MAX
    assert compose.wire_safe(out.data) and max(len(line) for line in out.data.split(b"\n")) <= compose.LINE_MAX


def test_a_chat_gets_a_few_short_digest_messages_saying_what_they_leave_out() -> None:
    recs = [rec(i, f"Fail {i}", "line\n" * 30) for i in range(1000)]
    g = config.Digest("daily", ("ops",), every=3600.0, group_by=("host", "subject"))
    parts = digest.parts(g, recs, "loghost", 4000, chat=True)
    assert len(parts) == digest.CHAT_PARTS and all(len(p.text.encode()) <= 4000 + 200 for p in parts)
    assert "example" not in "".join(p.text for p in parts)
    assert "more group(s)" in parts[-1].text and len({k for p in parts for k in p.group_keys}) == 1000
