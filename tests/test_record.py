"""Record: the fields of an entry, and that no value can inject a field."""

from __future__ import annotations

import pytest

from journal_sendmail import record


def decode(datagram: bytes) -> list[tuple[str, bytes]]:
    """Parse a native-protocol datagram the way journald does (both forms)."""
    out, pos = [], 0
    while pos < len(datagram):
        nl = datagram.index(b"\n", pos)
        line = datagram[pos:nl]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            out.append((name.decode(), value))
            pos = nl + 1
        else:
            size = int.from_bytes(datagram[nl + 1:nl + 9], "little")
            value = datagram[nl + 9:nl + 9 + size]
            assert datagram[nl + 9 + size:nl + 10 + size] == b"\n"
            out.append((line.decode(), value))
            pos = nl + 10 + size
    return out


def mail(**kw: object) -> record.Mail:
    base: dict[str, object] = dict(mail_id="0" * 32, envelope_from="root", recipients=["root"], headers={},
                                   size=5, sha256="x" * 64, argv=("sendmail", "root"), invoked_as="sendmail")
    base.update(kw)
    return record.Mail(**base)  # type: ignore[arg-type]


ATTACKS = [
    pytest.param("x\nMESSAGE_ID=23042c0ef8f74902814ee4284e0a5521", id="newline-field"),
    pytest.param("a=b", id="equals"),
    pytest.param("nul\x00byte", id="nul"),
    pytest.param("\nPRIORITY=0\n", id="priority"),
    pytest.param("MAIL_RCPT\n\x05\x00\x00\x00\x00\x00\x00\x00evil\n", id="binary-form"),
    pytest.param("_UID=0", id="trusted-field"),
]


@pytest.mark.parametrize("evil", ATTACKS)
def test_no_value_can_inject_a_field(evil: str) -> None:
    m = mail(recipients=[evil, "root"], headers={"MAIL_SUBJECT": evil}, envelope_from=evil, full_name=evil,
             argv=("sendmail", evil))
    fields = decode(record.encode(record.mail_fields(m, evil.encode(), 1)))
    names = [n for n, _ in fields]
    assert names.count("MESSAGE_ID") == 1 and names.count("PRIORITY") == 1
    assert dict(fields)["MESSAGE_ID"] == record.MSG_MAIL.encode()
    assert not any(n.startswith("_") for n in names)
    values = [v for n, v in fields if n == "MAIL_RCPT"]
    assert values == [evil.encode(), b"root"]
    assert dict(fields)["MAIL_SUBJECT"] == evil.encode()
    assert b"\n" not in dict(fields)["MESSAGE"]


def test_field_names_are_validated() -> None:
    with pytest.raises(ValueError):
        record.encode([("mail_raw", b"x")])
    with pytest.raises(ValueError):
        record.encode([("_UID", b"0")])
    with pytest.raises(ValueError):
        record.encode([("A" * 65, b"0")])


def test_refused_entry_has_its_own_id_and_warning_priority() -> None:
    fields = dict(record.mail_fields(mail(recipients=[], refused="no recipients"), b"x", 1))
    assert fields["MESSAGE_ID"] == record.MSG_REFUSED.encode()
    assert fields["PRIORITY"] == b"4"
    assert fields["MAIL_REFUSED"] == b"no recipients"
    assert "MAIL_RCPTS" not in fields


def test_split_message_fields() -> None:
    m = mail(size=10)
    first = dict(record.mail_fields(m, b"12345", 2))
    assert first["MAIL_PART"] == b"1" and first["MAIL_PARTS"] == b"2" and first["MAIL_RAW"] == b"12345"
    part = dict(record.part_fields(m, 2, 2, b"67890"))
    assert part["MESSAGE_ID"] == record.MSG_PART.encode()
    assert part["MAIL_ID"] == b"0" * 32 and part["MAIL_PART"] == b"2" and part["MAIL_RAW"] == b"67890"


def test_recipient_fields_are_capped_but_all_are_listed() -> None:
    rcpts = [f"u{i}@x" for i in range(2000)]
    fields = record.mail_fields(mail(recipients=rcpts), b"", 1)
    assert sum(1 for n, _ in fields if n == "MAIL_RCPT") == record.MAX_RCPT_FIELDS
    assert dict(fields)["MAIL_RCPTS"].split(b",") == [r.encode() for r in rcpts]
    assert len(fields) < 1000


def test_summary_is_one_line() -> None:
    line = record.summary(mail(recipients=[f"u{i}" for i in range(9)], headers={"MAIL_SUBJECT": "a\nb\tc"}))
    assert line == "mail from root to u0, u1, u2, u3, u4 and 4 more (5 bytes): a b c"


ENVELOPE = [
    pytest.param("x@y", "u@v", "root", "x@y", id="option-wins"),
    pytest.param("<x@y>", None, "root", "x@y", id="angle-brackets"),
    pytest.param("<>", None, "root", "", id="null-sender"),
    pytest.param(None, "u@v", "root", "u@v", id="from-line"),
    pytest.param(None, None, "alice", "alice", id="login"),
]


@pytest.mark.parametrize(("option", "unixfrom", "login", "expected"), ENVELOPE)
def test_envelope_sender(option: str | None, unixfrom: str | None, login: str, expected: str) -> None:
    from journal_sendmail.submission import envelope_sender

    assert envelope_sender(option, unixfrom, login) == expected
