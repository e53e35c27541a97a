"""The options table: every caller's real command line, and what is refused."""

from __future__ import annotations

import pytest

from journal_sendmail import options
from journal_sendmail.errors import UsageError
from journal_sendmail.options import parse

# (argv, expected attributes) — the first rows are the exact command lines of
# Debian's callers (docs/platform.md, read from their source).
ACCEPTED = [
    pytest.param(["/usr/sbin/sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "a@x,b@y"],
                 dict(full_name="CronDaemon", ignore_dots=True, recipients=("a@x,b@y",),
                      recorded=(("MAIL_BODY_TYPE", "8BITMIME"),), ignored=("-oem",)), id="cron"),
    pytest.param(["/usr/sbin/sendmail", "-FAnacron", "-odi", "root"],
                 dict(full_name="Anacron", ignore_dots=False, recipients=("root",), ignored=("-odi",)), id="anacron"),
    pytest.param(["sendmail", "-i", "alice"], dict(ignore_dots=True, recipients=("alice",)), id="at"),
    pytest.param(["sendmail", "-t"], dict(extract=True, ignore_dots=False, recipients=()), id="sudo"),
    pytest.param(["sendmail", "-i", "-t", "-f", "me@x"], dict(extract=True, ignore_dots=True, sender="me@x"),
                 id="bsd-mailx"),
    pytest.param(["sendmail", "-oi", "-f", "user@host", "-t"],
                 dict(extract=True, ignore_dots=True, sender="user@host"), id="mailutils"),
    pytest.param(["sendmail", "-i", "-f", "me@x", "--", "a@x", "-b@y"],
                 dict(ignore_dots=True, sender="me@x", recipients=("a@x", "-b@y")), id="s-nail"),
    pytest.param(["/usr/sbin/sendmail", "-oi", "-t"], dict(extract=True, ignore_dots=True),
                 id="unattended-upgrades"),
    pytest.param(["sendmail", "-t", "-oi"], dict(extract=True, ignore_dots=True), id="cron-apt"),
    pytest.param(["sendmail", "-f", "<fail2ban@host>", "a@x, b@y"],
                 dict(sender="<fail2ban@host>", recipients=("a@x, b@y",)), id="fail2ban"),
    pytest.param(["/usr/sbin/sendmail", "-t", "-i", "-fwww@host"], dict(extract=True, ignore_dots=True,
                 sender="www@host"), id="php"),
    pytest.param(["sendmail", "-oem", "-oi", "-f", "me@x", "-N", "failure,delay", "-R", "hdrs", "-B8BITMIME",
                  "--", "you@y"],
                 dict(sender="me@x", recipients=("you@y",), recorded=(("MAIL_DSN_NOTIFY", "failure,delay"),
                      ("MAIL_DSN_RET", "hdrs"), ("MAIL_BODY_TYPE", "8BITMIME"))), id="mutt"),
    pytest.param(["sendmail", "-f", "env@x", "-i", "a@x"], dict(sender="env@x", recipients=("a@x",)),
                 id="git-send-email"),
    pytest.param(["sendmail", "-bs", "-odb", "-oem"], dict(mode="smtp", ignored=("-odb", "-oem")), id="symfony-bs"),
    # the option syntax
    pytest.param(["sendmail", "-ti", "root"], dict(extract=True, ignore_dots=True), id="grouped-flags"),
    pytest.param(["sendmail", "-r", "x@y", "root"], dict(sender="x@y"), id="r-separate"),
    pytest.param(["sendmail", "-rx@y", "root"], dict(sender="x@y"), id="r-attached"),
    pytest.param(["sendmail", "-F", "Full Name", "root"], dict(full_name="Full Name"), id="F-separate"),
    pytest.param(["sendmail", "-o", "i", "root"], dict(ignore_dots=True), id="o-separate"),
    pytest.param(["sendmail", "-oitrue", "root"], dict(ignore_dots=True), id="oitrue-exim"),
    pytest.param(["sendmail", "-or0s", "-om", "-o7", "-oQ/var/spool", "root"],
                 dict(ignored=("-or0s", "-om", "-o7", "-oQ/var/spool")), id="legacy-o"),
    pytest.param(["sendmail", "-em", "-d0.1", "-Am", "-U", "-G", "-m", "-n", "-c", "-s", "-x", "-T", "1h", "root"],
                 dict(recipients=("root",)), id="legacy-flags"),
    pytest.param(["sendmail", "-V", "envid1", "-h", "17", "-p", "ESMTP:host", "-L", "label", "-C", "/etc/x.cf",
                  "-O", "DeliveryMode=b", "-X", "/tmp/t", "root"],
                 dict(recorded=(("MAIL_ENVID", "envid1"), ("MAIL_HOP_COUNT", "17"), ("MAIL_PROTOCOL", "ESMTP:host"),
                                ("MAIL_LOG_LABEL", "label"), ("MAIL_CONFIG_FILE", "/etc/x.cf"),
                                ("MAIL_OPTION", "DeliveryMode=b"), ("MAIL_TRAFFIC_LOG", "/tmp/t"))), id="recorded"),
    pytest.param(["sendmail", "root", "-t"], dict(extract=False, recipients=("root", "-t")), id="first-non-option-ends"),
    pytest.param(["sendmail", "-v", "root"], dict(verbose=True), id="verbose"),
    # modes
    pytest.param(["mailq"], dict(mode="mailq", invoked_as="mailq"), id="as-mailq"),
    pytest.param(["/usr/bin/newaliases"], dict(mode="newaliases", invoked_as="newaliases"), id="as-newaliases"),
    pytest.param(["runq"], dict(mode="flush"), id="as-runq"),
    pytest.param(["sendmail", "-bp"], dict(mode="mailq"), id="bp"),
    pytest.param(["sendmail", "-bi"], dict(mode="newaliases"), id="bi"),
    pytest.param(["sendmail", "-I"], dict(mode="newaliases"), id="I"),
    pytest.param(["sendmail", "-bm", "root"], dict(mode="deliver"), id="bm"),
    pytest.param(["sendmail", "-bv", "root"], dict(mode="verify"), id="bv"),
    pytest.param(["sendmail", "-bV"], dict(mode="version"), id="bV"),
    pytest.param(["journal-sendmail", "--version"], dict(mode="version", invoked_as="journal-sendmail"),
                 id="long-version"),
    pytest.param(["sendmail", "-q"], dict(mode="flush"), id="q"),
    pytest.param(["sendmail", "-q30m"], dict(mode="flush"), id="q-interval"),
    pytest.param(["sendmail", "-qRexample.org"], dict(mode="flush"), id="q-site"),
]


@pytest.mark.parametrize(("argv", "expected"), ACCEPTED)
def test_accepted(argv: list[str], expected: dict[str, object]) -> None:
    inv = parse(argv)
    assert inv.argv == tuple(argv)
    for name, value in expected.items():
        assert getattr(inv, name) == value, name


REFUSED = [
    pytest.param(["sendmail", "-bd"], "-bd is not supported", id="daemon"),
    pytest.param(["sendmail", "-bD"], "-bD is not supported", id="daemon-foreground"),
    pytest.param(["sendmail", "-bt"], "-bt is not supported", id="address-test"),
    pytest.param(["sendmail", "-be"], "-be is not supported", id="expansion-test"),
    pytest.param(["sendmail", "-bh"], "-bh is not supported", id="host-check"),
    pytest.param(["sendmail", "-bP"], "-bP is not supported", id="print-config"),
    pytest.param(["sendmail", "-bz"], "mode -bz is not supported", id="unknown-mode"),
    pytest.param(["sendmail", "-Mrm", "id"], "-M is not supported", id="exim-queue-surgery"),
    pytest.param(["sendmail", "-Z", "root"], "unknown option -Z", id="unknown-letter"),
    pytest.param(["sendmail", "-tZ", "root"], "unknown option -Z", id="unknown-in-group"),
    pytest.param(["sendmail", "--frobnicate"], "unknown option --frobnicate", id="unknown-long"),
    pytest.param(["sendmail", "--version=2"], "unknown option --version=2", id="long-with-value"),
    pytest.param(["sendmail", "-f"], "option -f needs a value", id="missing-value"),
    pytest.param(["sendmail", "-b"], "option -b needs a letter", id="bare-b"),
]


@pytest.mark.parametrize(("argv", "message"), REFUSED)
def test_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse(argv)
    assert info.value.code == 64
    assert "\n" not in info.value.reason


def test_every_option_is_documented_in_the_man_page() -> None:
    import re

    from kit.support import ROOT

    page = (ROOT / "man" / "journal-sendmail.8").read_text()
    for opt in options.OPTIONS:
        escaped = opt.name.rstrip("*").replace("-", "\\-")
        assert re.search(re.escape(escaped) + r"(?![A-Za-z])", page), opt.name
        if opt.kind == options.RECORD:
            assert opt.action in page, opt.action


def test_table_names_valid_fields() -> None:
    from journal_sendmail.record import valid_name

    for opt in options.OPTIONS:
        if opt.kind == options.RECORD:
            assert valid_name(opt.action), opt
