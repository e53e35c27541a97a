"""Headers and recipients: sample messages, and the fast path's proof."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kit.support import DATA

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
    pytest.param("rfc2047-plain-recipients.eml", dict(MAIL_FROM="Sauvegarde été <backup@example.org>",
                                                      MAIL_TO="admin@example.org",
                                                      MAIL_SUBJECT="élève de la sauvegarde OK"),
                 ["admin@example.org"], True, id="rfc2047-plain-recipients"),
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


def _encoded_word(charset: str, encoding: str, text: str, lower_hex: bool) -> str:
    try:
        data = text.encode(charset.partition("*")[0])
    except (LookupError, UnicodeError):
        data = text.encode("utf-8")  # bytes the charset cannot decode, or an unknown charset
    if encoding in "bB":
        body = base64.b64encode(data).decode("ascii")
    else:
        safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/"
        body = "".join("_" if b == 32 else chr(b) if b in safe else f"={b:02X}" for b in data)
        body = body.lower() if lower_hex else body
    return f"=?{charset}?{encoding}?{body}?="


# Encoded words: well formed in every charset, undecodable, or broken in the
# ways real mail breaks them.
LETTERS = ("L", "N", "P", "S", "Zs")
good_word = st.sampled_from([("utf-8", None), ("UTF-8", None), ("iso-8859-1", 255), ("us-ascii", 127)]).flatmap(
    lambda cs: st.builds(_encoded_word, st.just(cs[0]), st.sampled_from(["q", "Q", "b", "B"]),
                         st.text(st.characters(whitelist_categories=LETTERS, max_codepoint=cs[1]),
                                 min_size=1, max_size=8),
                         st.booleans()))
bad_word = st.one_of(
    st.builds(_encoded_word, st.sampled_from(["utf-8*en", "bogus", "us-ascii", "iso-8859-1"]),
              st.sampled_from(["q", "b"]), st.text(max_size=4), st.booleans()),
    st.sampled_from(["=?utf-8?q?=C?=", "=?utf-8?b?w6k?=", "=?utf-8?q?=?=", "=?utf-8?q?a?=b", "a=?utf-8?q?b?=",
                     "=?utf-8?x?a?=", "=??q?a?=", "=?utf-8?q??=", "=?utf-8?Q?=FF?=", "=?utf-8?b?w6k==?=",
                     "(=?utf-8?q?a?=)", "=?utf-8?q?a?b?=", "=?utf-8?b?====?=", "=?utf-8?B?w6kK?=", "=?utf-8?q?=1F?=",
                     "=?utf-8?q?=C2=85?=", "(x)", "<a@b>", ""]),
)
words = st.one_of(*[good_word] * 6, st.sampled_from(["Cron", "a", "Re:", "[x]"]), bad_word)
encoded_text = st.lists(words, min_size=1, max_size=4).flatmap(
    lambda ws: st.sampled_from([" ", "  "]).map(lambda sep: sep.join(ws)))
encoded = st.one_of(encoded_text, st.tuples(encoded_text, token).map(lambda p: f"{p[0]} <{p[1]}>"),
                    st.tuples(token, encoded_text).map(lambda p: f"{p[0]} ({p[1]})"))
value = st.one_of(address_list, text, odd, dates, ids, ctypes, encoded)
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


org_address = st.from_regex(r"[a-z0-9.]{1,8}@[a-z0-9]{1,8}\.org", fullmatch=True)
# Mostly where the fast path takes encoded words (a Subject, From's display
# name), some where it must leave them to the email package.
encoded_line = st.one_of(
    st.tuples(st.sampled_from(["Subject", "subject", "Auto-Submitted"]), encoded_text),
    st.tuples(st.just("From"), st.tuples(encoded_text, org_address).map(lambda p: f"{p[0]} <{p[1]}>")),
    st.tuples(st.sampled_from(["From", "To", "Cc", "X-Mailer"]), encoded),
)
encoded_block = st.lists(encoded_line, min_size=1, max_size=3).map(
    lambda ls: "".join(f"{n}: {v}\n" for n, v in ls) + "\n")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoded_block)
def test_fast_path_decodes_encoded_words_as_email_does(text_block: str) -> None:
    """The same property where encoded words are common.  Only the blocks the
    fast path accepts count: hypothesis fails the test if they are too rare."""
    data = text_block.encode("utf-8")
    fast = headers.parse_fast(data)
    assume(fast is not None)
    slow = headers.parse_email(data)
    assert fast.values == slow.values
    assert fast.header_recipients == slow.header_recipients
    assert slow.defects == []


def test_fast_path_is_taken_for_cron_mail() -> None:
    cron = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> test -x /usr/sbin/anacron\n"
            b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
            b"X-Cron-Env: <SHELL=/bin/sh>\n\nout\n")
    found = headers.parse(cron)
    assert found.fast
    assert found.values["MAIL_FROM"] == "root (Cron Daemon)"  # as written: the email package drops the comment


ENCODED = [
    pytest.param(b"Subject: =?utf-8?b?w6lsw6h2ZQ==?= =?utf-8?q?_et_plus?=\n", "MAIL_SUBJECT", "élève et plus", True,
                 id="subject"),
    pytest.param(b"From: =?utf-8?q?J=C3=B6rg?= <j@x>\n", "MAIL_FROM", "Jörg <j@x>", True, id="from-name"),
    pytest.param(b"From: j@x (=?iso-8859-1?q?Andr=E9?=)\n", "MAIL_FROM", "j@x (André)", False, id="from-comment"),
    pytest.param(b"To: =?utf-8?q?J=C3=B6rg?= <j@x>\n", "MAIL_TO", "Jörg <j@x>", False, id="named-recipient"),
    pytest.param(b"Subject: =?bogus?q?x?=\n", "MAIL_SUBJECT", "x", False, id="unknown-charset"),
    pytest.param(b"Subject: =?utf-8?q?=FF?=\n", "MAIL_SUBJECT", "\ufffd", False, id="undecodable"),
    pytest.param(b"Subject: a=?utf-8?q?b?=\n", "MAIL_SUBJECT", "ab", False, id="inside-a-word"),
]


@pytest.mark.parametrize(("block", "name", "value", "fast"), ENCODED)
def test_encoded_words(block: bytes, name: str, value: str, fast: bool) -> None:
    """Encoded words in a simple Subject or From: the fast path, decoded by
    email.header; anything less plain: the email package's parser."""
    found = headers.parse(block + b"\n")
    assert found.values[name] == value
    assert found.fast is fast


def test_address_headers_are_kept_as_written_and_decoded() -> None:
    h = headers.parse(b"From: =?utf-8?q?J=C3=B6rg?= <j@x> (the admin)\nTo: a@x,b@y\n\n")
    assert h.values == {"MAIL_FROM": "Jörg <j@x> (the admin)", "MAIL_TO": "a@x,b@y"}
