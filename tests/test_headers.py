"""Headers and recipients: sample messages, and the fast path's proof."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import DATA

from journal_sendmail import headers

SAMPLES = [
    pytest.param("plain.eml", dict(MAIL_FROM="cron@host", MAIL_TO="root", MAIL_SUBJECT="Cron <root@host> run-parts",
                                   MAIL_DATE="Sat, 21 Nov 2026 08:00:00 +0000", MAIL_MESSAGE_ID="<1@host>",
                                   MAIL_AUTO_SUBMITTED="auto-generated"), ["root"], True, id="plain"),
    pytest.param("crlf.eml", dict(MAIL_FROM="php@www", MAIL_TO="a@x, b@y", MAIL_SUBJECT="CRLF headers"),
                 ["a@x", "b@y"], True, id="crlf"),
    pytest.param("from-line.eml", dict(MAIL_TO="root", MAIL_SUBJECT="with a From line"), ["root"], True,
                 id="from-line"),
    pytest.param("8bit-headers.eml", dict(MAIL_TO="root", MAIL_SUBJECT="Cron <root@h> echo café ünïcode"), ["root"],
                 False, id="8bit-utf8"),
    pytest.param("invalid-utf8.eml", dict(MAIL_TO="root", MAIL_SUBJECT="bad \ufffd\ufffd bytes"), ["root"], False,
                 id="invalid-utf8"),
    pytest.param("rfc2047.eml", dict(MAIL_FROM="Jörg <joerg@x>", MAIL_TO='André <andre@y>, "Doe, Jane" <jane@z>',
                                     MAIL_CC="friends: c@x, d@y;", MAIL_SUBJECT="élèVe and more"),
                 ["andre@y", "jane@z", "c@x", "d@y"], False, id="rfc2047-groups-quotes"),
    pytest.param("newline-in-name.eml", dict(MAIL_FROM="é\n <a@example.org>",
                                             MAIL_TO="é\n <c@example.org>, e@example.org",
                                             MAIL_SUBJECT="a display name that decodes to a newline"),
                 ["c@example.org", "e@example.org"], False, id="newline-in-name"),
    pytest.param("folded.eml", dict(MAIL_TO="a@x,  b@y", MAIL_SUBJECT="a long\tfolded subject"), ["a@x", "b@y"],
                 False, id="folded"),
    pytest.param("resent.eml", dict(MAIL_TO="orig@x", MAIL_SUBJECT="resent"), ["new@y", "other@z"], True,
                 id="resent-wins"),
    pytest.param("no-headers.eml", {}, [], False, id="no-headers"),
    pytest.param("empty-body.eml", dict(MAIL_TO="root", MAIL_SUBJECT="empty body"), ["root"], True, id="empty-body"),
]


@pytest.mark.parametrize(("name", "values", "rcpts", "fast"), SAMPLES)
def test_samples(name: str, values: dict[str, str], rcpts: list[str], fast: bool) -> None:
    h = headers.parse((DATA / name).read_bytes())
    assert h.values == values
    assert h.header_recipients == rcpts
    assert h.fast is fast


def test_unix_from_line() -> None:
    assert headers.parse((DATA / "from-line.eml").read_bytes()).unixfrom == "alice@example.org"


def test_defects_are_recorded_not_raised() -> None:
    h = headers.parse(b"hello world\nno header here\n")
    assert any("MissingHeaderBodySeparatorDefect" in d for d in h.defects)


def test_what_the_email_package_raises_on_is_a_defect() -> None:
    # policy.default raises ValueError for a display name that decodes to a
    # newline; the message must still be stored, with its recipients.
    found = headers.parse((DATA / "newline-in-name.eml").read_bytes())
    assert [d.split(": ")[0] for d in found.defects] == ["From", "To"]
    assert all("unparsable: ValueError" in d for d in found.defects)


def test_local_recipient_is_no_defect() -> None:
    assert headers.parse_email(b"To: root\n\n").defects == []


ADDRESS_LISTS = [
    pytest.param("a@x,b@y", ["a@x", "b@y"], id="comma"),
    pytest.param("a@x, b@y", ["a@x", "b@y"], id="comma-space"),
    pytest.param('"x, y" <z@z>', ["z@z"], id="quoted-comma"),
    pytest.param("friends: a@x, b@y;", ["a@x", "b@y"], id="group"),
    pytest.param("undisclosed-recipients:;", [], id="empty-group"),
    pytest.param("a@x (Alice), Bob <b@y>", ["a@x", "b@y"], id="comment-and-name"),
    pytest.param("root", ["root"], id="local"),
    pytest.param("a@x, , b@y", ["a@x", "b@y"], id="empty-element"),
    pytest.param("<@route:a@x>", ["a@x"], id="source-route"),
]


@pytest.mark.parametrize(("value", "expected"), ADDRESS_LISTS)
def test_address_lists(value: str, expected: list[str]) -> None:
    assert headers.addresses(value) == expected


# The property: wherever the fast path accepts a header block, the email
# package says exactly the same.  The strategy builds blocks from the kinds of
# lines that occur in real mail, simple and not, so both outcomes are common.
dates = st.sampled_from(["Sat, 21 Nov 2026 08:00:00 +0000", "1 Jan 2026 00:00 -0130", "Sat, 31 Feb 2026 08:00:00 +0000",
                         "Sat, 21 Nov 2026 25:00:00 +0000", "yesterday", "Sat, 21 Nov 26 08:00:00 GMT"])
ids = st.sampled_from(["<a.b@c.d>", "<a@b>", "a@b", "<a b@c>", "<@>", "<x@y> <z@w>"])
ctypes = st.sampled_from(["text/plain", "text/plain; charset=UTF-8", "TEXT/PLAIN;charset=us-ascii", "text/html",
                          "text/plain; charset=\"utf-8\"", "multipart/mixed", "text/plain; format=flowed"])
names = st.sampled_from(["To", "Cc", "Bcc", "From", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Cron-Env",
                         "Resent-To", "Content-Type", "Content-Transfer-Encoding", "to", "SUBJECT", "cC"])
token = st.from_regex(r"[A-Za-z0-9._+-]{1,8}(@[a-z0-9.-]{1,8})?", fullmatch=True)
address_list = st.lists(token, min_size=1, max_size=4).flatmap(
    lambda toks: st.sampled_from([",", ", ", " ,", "\t,\t"]).map(lambda sep: sep.join(toks)))
text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
odd = st.sampled_from(["root (Cron Daemon)", "a@b.c (x) (y)", "a (b)x", "Joe Bloggs <j@b.c>", "Joe  B <j@b>",
                       "J. B <j@b>", "<j@b>", "Joe <root>", "a@b (x(y))", "a (\\)", "=?utf-8?q?x?=", '"a, b" <c@d>', "x (c)", "g: a@b;", "a\n b", "é", "<a@b>", " ", ""])
value = st.one_of(address_list, text, odd, dates, ids, ctypes)
line = st.tuples(names, st.sampled_from([": ", ":", ":  "]), value, st.sampled_from(["\n", "\r\n", " \n"]))
block = st.lists(line, max_size=8).map(
    lambda ls: "".join(f"{n}{sep}{v}{end}" for n, sep, v, end in ls) + "\n")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block)
def test_fast_path_agrees_with_email(text_block: str) -> None:
    data = text_block.encode("utf-8")
    fast = headers.parse_fast(data)
    if fast is None:
        return
    slow = headers.parse_email(data)
    assert fast.values == slow.values
    assert fast.header_recipients == slow.header_recipients
    assert fast.content == slow.content
    assert slow.defects == []


def test_fast_path_is_taken_for_cron_mail() -> None:
    cron = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> test -x /usr/sbin/anacron\n"
            b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
            b"X-Cron-Env: <SHELL=/bin/sh>\n\nout\n")
    found = headers.parse(cron)
    assert found.fast
    assert found.values["MAIL_FROM"] == "root (Cron Daemon)"  # as written: the email package drops the comment
    assert not headers.parse(cron.replace(b"Cron <root", b"=?utf-8?q?Cron?= <root")).fast


def test_address_headers_are_kept_as_written_and_decoded() -> None:
    h = headers.parse(b"From: =?utf-8?q?J=C3=B6rg?= <j@x> (the admin)\nTo: a@x,b@y\n\n")
    assert h.values == {"MAIL_FROM": "Jörg <j@x> (the admin)", "MAIL_TO": "a@x,b@y"}
