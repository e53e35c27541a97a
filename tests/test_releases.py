"""Behaviour that must be the same on every supported Debian release, whatever
that release's Python does (bookworm 3.11, trixie 3.13, forky 3.13/3.14):
tools/release-check runs this file inside each release's container."""

from __future__ import annotations

import pytest

from journal_sendmail import headers

MULTIPART = [
    pytest.param(b'Content-Type: multipart/mixed; boundary="b"\n', [], id="with-boundary"),
    pytest.param(b"Content-Type: multipart/alternative;\n boundary=xyz\n", [], id="folded-boundary"),
    pytest.param(b"Content-Type: multipart/mixed\n",
                 ["message: NoBoundaryInMultipartDefect: multipart Content-Type without a boundary"], id="no-boundary"),
    pytest.param(b'Content-Type: multipart/mixed; boundary=""\n',
                 ["message: NoBoundaryInMultipartDefect: multipart Content-Type without a boundary"], id="empty"),
    pytest.param(b"Content-Type: text/plain; charset=utf-8\n", [], id="not-multipart"),
]


@pytest.mark.parametrize("content_type, defects", MULTIPART)
def test_multipart_defect_is_our_own_check(content_type: bytes, defects: list[str]) -> None:
    """Parsing headers only, CPython before 3.13 reported every multipart mail
    as a MultipartInvariantViolationDefect and 3.13 none (gh-106186): the
    defect is decided by journal-sendmail, the same on every release."""
    head = b"To: root\nSubject: multipart\n" + content_type + b"\n--b\nContent-Type: text/plain\n\nhi\n--b--\n"
    found = headers.parse(head)
    assert found.defects == defects
    assert not any("MultipartInvariantViolation" in d for d in found.defects)


def test_parts_stay_clear_of_systemd_260s_limit_for_unprivileged_senders() -> None:
    """systemd 260 and later (forky) keep a non-root sender's entry only up to
    about 31 MiB and drop a bigger one silently: a mail's parts are 1 MiB by
    default, and the man pages say why they must stay small."""
    from kit.support import ROOT

    from journal_sendmail import config

    assert config.Config().part_size == 1024 * 1024
    for page in ("journal-sendmail.8", "journal-sendmail.conf.5"):
        text = (ROOT / "man" / page).read_text()
        assert "systemd 260" in text and "31 MiB" in text, page


def test_a_strictly_refused_certificate_says_why() -> None:
    """Python 3.13 and later verify with VERIFY_X509_STRICT: a private relay CA
    without keyUsage, accepted on bookworm, is refused on trixie and forky, and
    the forwarder's error tells the admin what to reissue."""
    import ssl

    from journal_sendmail.reader.forward import transport

    e = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    e.verify_message = "CA cert does not include key usage extension"
    reason = transport._reason(e)
    assert "CA cert does not include key usage extension" in reason
    assert "keyUsage keyCertSign" in reason and "strictly" in reason
    other = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    other.verify_message = "self-signed certificate"
    assert "strictly" not in transport._reason(other)
