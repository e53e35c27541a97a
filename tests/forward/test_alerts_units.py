"""The alert policies' pure parts, in-process with an injected clock: repeats, silences, quiet hours, their keys."""

from __future__ import annotations

import io
import json
import os
import tomllib
from pathlib import Path

import pytest

from journal_sendmail.errors import ConfigError
from journal_sendmail.reader.entry import MailEntry
from journal_sendmail.reader.forward import config, expect, hours, prefilter, repeat, rules, silence, status
from journal_sendmail.reader.forward.state import StateError
from journal_sendmail.reader.output import Io

HEAD = ('[destination.ops]\ntype = "webhook"\nurl = "http://127.0.0.1/h"\n'
        '[digest.night]\nto = ["ops"]\n')
THU_0900_UTC = 1796288400.0  # Thursday 2026-12-03 09:00 UTC


def parse(text: str, night: str = "") -> config.Config:
    head = HEAD + night
    return config.parse(tomllib.loads(head + text), "test.toml", head + text)


def mail(subject: str = "SMART error on sda", host: str = "web3", t: float = THU_0900_UTC, uid: int = 0,
         mail_id: str = "ab" * 16) -> rules.Mail:
    e = MailEntry(mail_id=mail_id, uid=uid, hostname=host, headers={"subject": subject}, realtime=int(t * 1e6),
                  caller_comm="smartd", systemd_unit="smartd.service")
    return rules.Mail(e)


def offer(groups: dict, rule: str, values: list[str], interval: float, t: float, mail_id: str,
          went: bool = True) -> bool:
    """What the service does with one mail: counted (False), or sent (True; ``went``: and it went)."""
    if repeat.within(groups, rule, values, interval, t):
        repeat.count(groups, rule, values, t, mail_id)
        return False
    if went:
        repeat.opened(groups, rule, values, interval, t)
    return True


def test_fifty_repeats_in_an_interval_make_one_mail_and_one_summary_counting_49() -> None:
    groups: dict = {}
    sent = []
    for i in range(50):
        t = THU_0900_UTC + i * 60
        if offer(groups, "disks", ["web3", "smartd"], 3600, t, f"id{i}"):
            sent.append(i)
    assert sent == [0]
    assert repeat.due(groups, THU_0900_UTC + 3599) == []  # not before the window ends
    (k,) = repeat.due(groups, THU_0900_UTC + 3600)
    subject, text = repeat.summary(groups[k], "loghost", "ops")
    assert "49 more since 2026-12-03T09:01:00Z, last at 2026-12-03T09:49:00Z" in subject
    assert "id49" in text and "id29" not in text and "(+29 more)" in text  # the newest 20 by MAIL_ID
    assert not repeat.expire(groups, THU_0900_UTC + 3600)  # a window with a count waits for its summary


def test_a_mail_after_the_window_goes_at_once_and_the_ended_windows_summary_still_goes() -> None:
    groups: dict = {}
    for t in (0.0, 10.0, 20.0):
        offer(groups, "r", ["h"], 60, t, f"m{t:.0f}")
    assert offer(groups, "r", ["h"], 60, 100.0, "m100")  # the summary was not sent yet (destination down)
    assert not offer(groups, "r", ["h"], 60, 110.0, "m110")
    assert repeat.due(groups, 120.0) == ['["r", "h"] closed']
    assert repeat.due(groups, 160.0) == ['["r", "h"] closed', '["r", "h"]']
    # another group is its own
    assert offer(groups, "r", ["other"], 60, 110.0, "x")


def test_a_retried_first_mail_is_not_counted_as_its_own_repeat() -> None:
    groups: dict = {}
    assert offer(groups, "r", ["h"], 60, 0.0, "m0", went=False)  # delivery failed: opened() not called
    assert groups == {}
    assert offer(groups, "r", ["h"], 60, 0.0, "m0")  # the retry is still the first
    assert groups[repeat.group_key("r", ["h"])]["count"] == 0


def test_silences_are_added_listed_matched_by_journal_time_and_expired(tmp_path: Path) -> None:
    d = str(tmp_path)
    now = THU_0900_UTC
    s = silence.add(d, silence.parse_match(["host=web3", "subject=SMART*"]), "2d", "disk swapped on Friday", now)
    view = silence.Silences(d)
    assert view.match(mail(t=now + 10), lambda: "") == s
    assert view.match(mail(t=now - 10), lambda: "") is None  # came before the silence
    assert view.match(mail(host="web4", t=now + 10), lambda: "") is None
    assert view.match(mail(t=now + 2 * 86400), lambda: "") is None  # ended by itself
    logged: dict = {}
    assert [(w, x.id) for w, x in view.transitions(logged, now)] == [("start", s.id)]
    assert view.transitions(logged, now + 1) == []  # logged once
    assert not view.refresh()
    assert silence.expire(d, s.id, now + 3600) is not None
    assert silence.expire(d, s.id, now + 3601) is None  # already ended
    assert view.refresh()  # the running service sees the change without a restart
    assert view.match(mail(t=now + 7200), lambda: "") is None
    assert view.match(mail(t=now + 10), lambda: "") is not None  # what came while it ran stays silenced
    assert [w for w, _ in view.transitions(logged, now + 3600)] == ["end"]
    assert oct(os.stat(tmp_path / silence.FILE).st_mode & 0o777) == "0o600"


def test_a_silence_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("{}")
    (tmp_path / silence.FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateError, match=r"silences\.json"):
        silence.Silences(str(tmp_path))


@pytest.mark.parametrize("arg", ["hostweb3", "nokey=x", "host=", "subject=/(/"])
def test_a_bad_silence_match_names_itself(arg: str) -> None:
    with pytest.raises(ConfigError, match="--match") as e:
        silence.parse_match([arg])
    assert e.value.code == 78


def test_quiet_hours_in_a_time_zone_and_across_midnight() -> None:
    h = hours.parse("Mon-Fri 08:00-20:00", "Europe/Berlin")
    assert h.inside(THU_0900_UTC)  # 10:00 in Berlin
    assert not h.inside(THU_0900_UTC + 11 * 3600)  # 21:00
    assert h.next_open(THU_0900_UTC + 11 * 3600) == THU_0900_UTC + 22 * 3600  # Friday 08:00 Berlin (07:00 UTC)
    sat = THU_0900_UTC + 2 * 86400
    assert h.next_open(sat) == THU_0900_UTC + 4 * 86400 - 2 * 3600  # Monday 08:00 Berlin
    night = hours.parse("Fri 22:00-06:00", "UTC")
    assert night.inside(THU_0900_UTC + 86400 + 13 * 3600)  # Fri 22:00
    assert night.inside(THU_0900_UTC + 2 * 86400 - 4 * 3600)  # Sat 05:00
    assert not night.inside(THU_0900_UTC + 2 * 86400 - 2 * 3600)  # Sat 07:00


RULE = """
[[rule]]
name = "disks"
match = { unit = "smartd.service" }
route = ["ops"]
"""


def test_the_new_rule_and_destination_keys_parse() -> None:
    cfg = parse(RULE + 'group_by = ["host"]\nrepeat_interval = "4h"\nhours = "Mon-Fri 08:00-20:00"\n'
                'timezone = "UTC"\nquiet_digest = "night"\n')
    (r,) = cfg.rules
    assert (r.group_by, r.repeat_interval, r.quiet_digest, r.hours and r.hours.tz) == (("host",), 14400.0, "night",
                                                                                       "UTC")
    assert parse(RULE + "repeat_interval = 60\n", 'at = "08:00"\n').rules[0].group_by == ("host", "caller",
                                                                                          "subject")
    assert parse(RULE + "urgent = true\n", 'every = "1h"\n').rules[0].urgent


@pytest.mark.parametrize(("extra", "key"), [
    ('group_by = ["host"]\n', "group_by"),
    ('repeat_interval = "soon"\n', "repeat_interval"),
    ('repeat_interval = "1h"\ngroup_by = ["colour"]\n', "group_by"),
    ('hours = "Mon-Fri 08:00-20:00"\n', "hours"),
    ('hours = "weekdays"\nquiet_digest = "night"\n', "hours"),
    ('hours = "Mon-Fri 08:00-20:00"\nquiet_digest = "nope"\n', "quiet_digest"),
    ('hours = "Mon-Fri 08:00-20:00"\nquiet_digest = "night"\ntimezone = "Mars/Olympus"\n', "timezone"),
    ('timezone = "UTC"\n', "timezone"),
    ('urgent = "yes"\n', "urgent"),
    ('urgent = true\nhours = "Mon-Fri 08:00-20:00"\nquiet_digest = "night"\n', "urgent"),
    ('repeats = 3\n', "repeats"),
])
def test_a_bad_key_exits_78_naming_it(extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(RULE + extra, 'every = "1d"\n')
    assert e.value.code == 78 and f".{key}:" in str(e.value), str(e.value)


def test_a_digest_without_a_schedule_must_be_a_quiet_digest() -> None:
    with pytest.raises(ConfigError, match=r"digest\.night\.at"):
        parse(RULE)


def test_status_and_silence_commands_in_process(tmp_path: Path) -> None:
    cfg = parse(RULE + 'hours = "Mon-Fri 08:00-20:00"\nquiet_digest = "night"\n')
    cfg = config.Config(path="t", state_dir=str(tmp_path / "state"), destinations=cfg.destinations, rules=cfg.rules,
                        digests=cfg.digests)
    logged: list = []

    def run(*argv: str) -> tuple[int, str]:
        out = io.BytesIO()
        what = argv[1] if argv[0] == "silence" else argv[0]
        code = status.command(Io(out, io.BytesIO()), cfg, what, "--json" in argv, ("host=web3",), "2d", "swap",
                              argv[-1], now=lambda: THU_0900_UTC, log=lambda *x, **k: logged.append(x[0]))
        return code, out.getvalue().decode()

    code, sid = run("silence", "add")
    sid = sid.strip()
    assert code == 0 and len(sid) == 8 and logged == ["silence-added"]
    assert f"{sid}  running  until 2026-12-05T09:00:00Z  host=web3  # swap" in run("silence", "list")[1]
    doc = json.loads(run("status", "--json")[1])
    assert [s["id"] for s in doc["silences"]] == [sid] and doc["digests"][0]["name"] == "night"
    assert "1 silence(s) running" in run("status")[1]
    assert run("silence", "expire", sid)[0] == 0 and logged[-1] == "silence-expired"
    assert run("silence", "expire", sid)[0] == 66
    assert "0 silence(s) running" in run("status")[1]


def test_a_mail_counts_as_seen_at_its_own_time_only_where_that_is_possible() -> None:
    floor, now = 1000.0, 1060.0  # the previous pass began at 1000: the entry was not in the journal then
    assert expect.seen_at(1030.0, floor, now) == 1030.0  # a clock that agrees
    assert expect.seen_at(1030.0 - 7200, floor, now) == floor  # two hours behind, or a late upload
    assert expect.seen_at(1030.0 + 7200, floor, now) == now  # ahead: never in the future
    assert expect.seen_at(500.0, None, now) == 500.0  # the first pass: its word, up to now


def test_missing_then_resolved_is_told_once_to_each_destination() -> None:
    hosts: dict = {}
    expect.observe(hosts, "web3", 0.0, 0.0, "m1")
    rec = hosts["web3"]
    assert expect.state(rec, 5400.0, 3600.0, 1800.0, 0.0) == "ok"
    st = expect.state(rec, 5401.0, 3600.0, 1800.0, 0.0)
    assert st == "missing" and expect.to_tell(rec, st, ("ops", "chat")) == ["ops", "chat"]
    rec["told"]["ops"] = "missing"  # chat failed: told again next pass
    assert expect.to_tell(rec, st, ("ops", "chat")) == ["chat"]
    expect.observe(hosts, "web3", 100.0, 6000.0, "m2")
    assert expect.state(rec, 6001.0, 3600.0, 1800.0, 0.0) == "ok"
    assert expect.to_tell(rec, "ok", ("ops", "chat")) == ["ops"]  # chat never heard it was missing
    expect.observe(hosts, "web3", 50.0, 10.0, "old")  # an older mail read later moves nothing back
    assert rec["mail_id"] == "m2"
    subject, text = expect.notice("backup", "web3", rec, "ok", 3600, 1800, "loghost")
    assert subject == "[loghost] resolved: backup from web3 came again at 1970-01-01T01:40:00Z"
    assert "its own time said 1970-01-01T00:01:40Z" in text


def test_an_expectation_added_later_counts_its_listed_hosts_from_its_own_first_pass() -> None:
    rec0: dict = {"started": 0.0}  # an older state: one start for every expectation
    assert expect.first_pass(rec0, "backup", 0.0) == 0.0
    later = 3 * 86400.0  # "smart" added to the running forwarder three days on
    assert expect.first_pass(rec0, "smart", later) == later and expect.first_pass(rec0, "backup", later) == 0.0
    ghost: dict = {"told": {}}  # listed in "smart", never seen
    assert expect.state(ghost, later + 60, 86400.0, 7200.0, expect.first_pass(rec0, "smart", later + 60)) == "ok"
    assert expect.state(ghost, later + 86400 + 7201, 86400.0, 7200.0, expect.first_pass(rec0, "smart", 0)) == "missing"
    assert expect.state(ghost, later + 60, 86400.0, 7200.0, 0.0) == "missing"  # what the shared start said


EXPECT = '[[expect]]\nname = "backup"\nmatch = { unit = "backup.service" }\nevery = "1d"\nroute = ["ops"]\n'


def test_an_expectation_parses() -> None:
    (x,) = parse(EXPECT + 'grace = "2h"\nhosts = ["web1", "web2"]\nper = "host"\n', 'every = "1d"\n').expects
    assert (x.name, x.every, x.grace, x.hosts, x.route) == ("backup", 86400.0, 7200.0, ("web1", "web2"), ("ops",))


@pytest.mark.parametrize(("text", "key"), [
    (EXPECT.replace('unit = "backup.service"', 'subject = "backup*"'), "expect[1].match"),
    (EXPECT.replace('every = "1d"\n', ""), "expect[1].every"),
    (EXPECT + 'grace = "later"\n', "expect[1].grace"),
    (EXPECT + 'per = "unit"\n', "expect[1].per"),
    (EXPECT.replace('["ops"]', '["nope"]'), "expect[1].route"),
    (EXPECT + 'hosts = "web1"\nhosts2 = 1\n', "expect[1].hosts2"),
    (EXPECT + EXPECT, "expect[2].name"),
])
def test_a_bad_expectation_exits_78_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text, 'every = "1d"\n')
    assert e.value.code == 78 and f"{key}:" in str(e.value), str(e.value)


def test_an_expectation_on_claims_only_is_allowed_when_the_admin_says_so() -> None:
    text = EXPECT.replace('unit = "backup.service"', 'subject = "backup*", user = "*"')
    assert parse(text, 'every = "1d"\n').expects[0].name == "backup"


def test_the_prefilter_finds_exactly_what_matching_every_table_finds() -> None:
    import random

    rng = random.Random(7)
    words = ["web1", "WEB2", "web*", "/^web/", "backup.service", "cron.service", "root", "0", "smartd", "s?artd"]
    tables = []
    for i in range(300):
        keys = rng.sample(["host", "unit", "user", "uid", "caller", "subject"], rng.randint(1, 3))
        pats = {k: [rng.choice(words) for _ in range(rng.randint(1, 2))] for k in keys}
        text = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in pats.items()) + " }"
        r = parse(f'[[rule]]\nname = "t{i}"\nmatch = {text}\nroute = ["ops"]\n', 'every = "1h"\n').rules[0]
        tables.append((r.name, r))
    index = prefilter.Prefilter(tables)
    assert index.by and index.rest
    for host in ("web1", "web2", "db1"):
        for unit in ("backup.service", "cron.service"):
            for uid in (0, 1000):
                e = MailEntry(mail_id="x", uid=uid, hostname=host, headers={"subject": "web1"}, caller_comm="smartd",
                              systemd_unit=unit)
                m = rules.Mail(e)
                want = sorted(n for n, r in tables if rules.matches(r, m, lambda: ""))
                assert sorted(index.matching(m, lambda: "")) == want


def test_a_silence_file_broken_by_hand_is_said_once_and_the_silences_read_before_stay(tmp_path: Path) -> None:
    s = silence.add(str(tmp_path), silence.parse_match(["host=web3"]), "1h", "", THU_0900_UTC)
    view = silence.Silences(str(tmp_path))
    (tmp_path / silence.FILE).write_text("{ not json")
    with pytest.raises(StateError, match="unreadable"):
        view.refresh()
    assert not view.refresh()  # said once
    assert [x.id for x in view.all] == [s.id]
