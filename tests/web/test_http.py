"""The web inbox over plain HTTP: headers, methods, the API against journal-mail list --json,
exact raw bytes, the password file and the listening rules."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import signal
import sqlite3
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kit import reader
from kit.net import free_port, make_ca
from kit.web import ALT, BACKUP, CRON, HOSTILE, HTML, LATIN, MDADM, SPLIT, Serve, start_serve, stop

PAGES = ["/", "/?q=degraded", "/stats", "/api/mails", "/static/style.css"]


@pytest.mark.parametrize("path", PAGES, ids=PAGES)
def test_security_headers_on_every_page(inbox: Serve, path: str) -> None:
    status, headers, _ = inbox.get(path)
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get(inbox: Serve, method: str) -> None:
    status, headers, _ = inbox.get("/", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert inbox.get("/", method="HEAD")[:3:2] == (200, b"")


def test_api_is_list_json(inbox: Serve) -> None:
    for query, options in [("", []), ("?to=ops@example.org", ["--to", "ops@example.org"]),
                           ("?subject=degraded&reverse=1", ["--subject", "degraded", "-r"]),
                           ("?n=3", ["-n", "3"])]:
        _, headers, body = inbox.get("/api/mails" + query)
        assert headers["Content-Type"].startswith("application/x-ndjson")
        assert body == reader.ok(reader.run_jm("list", "--json", *options)), query
    assert len(body.splitlines()) == 3


def test_directory_source(inbox: Serve) -> None:
    """-D DIR (journal-remote's files on a log host): the same answers as journal-mail -D DIR."""
    (directory,) = Path("/var/log/journal").glob("*/")
    url, proc = start_serve("-D", str(directory))
    try:
        s = Serve(url, proc)
        for query, options in [("", []), ("?to=ops@example.org", ["--to", "ops@example.org"])]:
            assert s.get("/api/mails" + query)[2] == reader.ok(
                reader.run_jm("-D", str(directory), "list", "--json", *options)), query
        page = s.get(f"/mail/{inbox.ids[MDADM]}")[2].decode()
        assert f"journal-mail -D {directory} show {inbox.ids[MDADM]}" in page
        assert s.get(f"/mail/{inbox.ids[SPLIT]}/raw")[2] == inbox.mails[SPLIT]
    finally:
        stop(proc)


def test_one_mail_api(inbox: Serve) -> None:
    status, _, body = inbox.get(f"/api/mails/{inbox.ids[MDADM]}")
    rec = json.loads(body)
    assert status == 200 and rec["subject"] == MDADM
    assert rec["body"] == inbox.mails[MDADM].decode()


@pytest.mark.parametrize("subject", [CRON, BACKUP, SPLIT, LATIN, HOSTILE, HTML, ALT], ids=str.split)
def test_raw_is_exact(inbox: Serve, subject: str) -> None:
    status, headers, body = inbox.get(f"/mail/{inbox.ids[subject]}/raw")
    assert status == 200
    assert headers["Content-Type"] == "message/rfc822"
    assert headers["Content-Security-Policy"].endswith("sandbox") and headers["X-Content-Type-Options"] == "nosniff"
    assert body == inbox.mails[subject]


def test_split_mail_is_in_parts(inbox: Serve) -> None:
    rec = json.loads(inbox.get(f"/api/mails/{inbox.ids[SPLIT]}")[2])
    assert rec["parts"] > 4 and rec["size"] == len(inbox.mails[SPLIT])


def test_search_covers_body_and_fields(inbox: Serve) -> None:
    def subjects(q: str) -> set[str]:
        return {json.loads(line)["subject"] for line in inbox.get(f"/api/mails?q={q}")[2].splitlines()}

    assert subjects("had+been+detected") == {MDADM}  # body
    assert subjects("backup@web2") == {BACKUP}  # from
    assert subjects("line+00399") == {SPLIT}  # body of a split mail
    assert subjects("nothing-like-this") == set()


def test_errors_are_pages(inbox: Serve) -> None:
    assert inbox.get("/mail/" + "0" * 32)[0] == 404
    assert inbox.get("/nowhere")[0] == 404
    status, _, body = inbox.get("/?since=yesterday-ish")
    assert status == 400 and b"yesterday-ish" in body
    assert inbox.get("/?colour=red")[0] == 400


def test_html_part_has_its_own_jail(inbox: Serve) -> None:
    status, headers, _ = inbox.get(f"/mail/{inbox.ids[HTML]}/html")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script" not in csp


def test_foreign_host_header_refused(inbox: Serve) -> None:
    """DNS rebinding: a page on evil.example whose name points at 127.0.0.1 reads nothing."""
    assert inbox.get("/", headers={"Host": "evil.example:8025"})[0] == 421
    assert inbox.get("/", headers={"Host": "localhost:8025"})[0] == 200


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    """A password file made the documented way (python3 -m journal_sendmail.reader.web.auth NAME)."""
    env = reader.ENV if reader.INSTALLED else {**reader.ENV, "PYTHONPATH": str(reader.SRC)}
    line = reader.ok(subprocess.run(["/usr/bin/python3", "-m", "journal_sendmail.reader.web.auth", "admin"],
                                       input=b"s3cret\n", capture_output=True, env=env))
    assert line.startswith(b"admin:scrypt$")
    path = tmp_path / "passwords"
    path.write_bytes(b"# the inbox's users\n" + line)
    return path


def test_auth(inbox: Serve, password_file: Path) -> None:
    url, proc = start_serve("--auth", str(password_file))
    try:
        s = Serve(url, proc)
        status, headers, _ = s.get("/")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        bad = base64.b64encode(b"admin:wrong").decode()
        assert s.get("/", headers={"Authorization": f"Basic {bad}"})[0] == 401
        good = base64.b64encode(b"admin:s3cret").decode()
        assert s.get("/api/mails?n=1", headers={"Authorization": f"Basic {good}"})[0] == 200
    finally:
        stop(proc)


def test_tls(inbox: Serve, password_file: Path, tmp_path: Path) -> None:
    """--tls-cert/--tls-key: HTTPS, with the password asked for over it."""
    ca, certs = make_ca(tmp_path, "localhost")
    cert, key = certs["localhost"]
    url, proc = start_serve("--auth", str(password_file), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        context = ssl.create_default_context(cafile=str(ca))  # the certificate names 127.0.0.1 too
        good = base64.b64encode(b"admin:s3cret").decode()
        req = urllib.request.Request(url.replace("http:", "https:") + "/api/mails?n=1",
                                     headers={"Authorization": f"Basic {good}"})
        with urllib.request.urlopen(req, context=context, timeout=30) as r:
            assert r.status == 200 and json.loads(r.read())["schema"] == 1
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP on the TLS port gets no page
            urllib.request.urlopen(url + "/", timeout=30)
    finally:
        stop(proc)


def test_bad_tls_key(password_file: Path) -> None:
    p = reader.run_jm("serve", "--listen", f"127.0.0.1:{free_port()}", "--tls-cert", "/etc/hostname",
                         "--tls-key", "/etc/hostname")
    assert p.returncode == 78, p.stderr


@pytest.mark.parametrize(("args", "code"), [
    (["--listen", "0.0.0.0:8025"], 64),
    (["--listen", "[::]:8025"], 64),
    (["--listen", "nowhere"], 64),
    (["--tls-cert", "/etc/hostname"], 64),
    (["--auth", "/nonexistent/passwords"], 78),
], ids=["any-ipv4-without-auth", "any-ipv6-without-auth", "bad-listen", "cert-without-key", "missing-auth-file"])
def test_refuses(args: list[str], code: int) -> None:
    p = reader.run_jm("serve", *args)
    assert p.returncode == code, p.stderr


def test_bad_auth_file(tmp_path: Path) -> None:
    f = tmp_path / "passwords"
    f.write_text("admin:plaintext-password\n")
    p = reader.run_jm("serve", "--listen", f"127.0.0.1:{free_port()}", "--auth", str(f))
    assert p.returncode == 78 and b"line 1" in p.stderr


def test_sigterm_and_access_log(inbox: Serve) -> None:
    """SIGTERM ends the server cleanly (exit 0) even with a page's events stream open."""
    url, proc = start_serve()
    Serve(url, proc).get("/?q=x")
    events = urllib.request.urlopen(url + "/api/events", timeout=30)
    assert events.headers["Content-Type"].startswith("text/event-stream")
    assert events.readline().startswith(b"retry:")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    events.close()
    assert proc.returncode == 0
    assert b'"GET /?q=x" 200' in err and b"stopped" in err


def test_unit_shown_and_searched(inbox: Serve) -> None:
    """The unit a mail claims (MAIL_CALLER_UNIT, written here from no unit) is not its unit: the
    UNIT column and ?q= are journald's _SYSTEMD_UNIT only (issue 21: anyone can forge the claim)."""
    import hashlib

    from kit import harness

    from journal_sendmail import journal, record

    raw = b"From: root\nTo: root\nSubject: from a unit\n\nunit mail\n"
    mail = record.Mail(mail_id=os.urandom(16).hex(), envelope_from="root", recipients=["root"],
                       headers={"MAIL_FROM": "root", "MAIL_TO": "root", "MAIL_SUBJECT": "from a unit"}, size=len(raw),
                       sha256=hashlib.sha256(raw).hexdigest(), argv=("/usr/sbin/sendmail", "root"),
                       invoked_as="sendmail", caller={"MAIL_CALLER_COMM": "cron", "MAIL_CALLER_UNIT": "cron.service"})
    sink = journal.Journal(harness.SOCKET, 10)
    journal.write_mail(sink.send, record.mail_fields(mail, raw, 1), ())
    sink.close()
    reader.wait_until(lambda: b"from a unit" in inbox.get("/")[2], what="the unit's mail")
    assert b'<a href="?q=cron.service">cron.service</a>' not in inbox.get("/")[2]
    found = [json.loads(line)["subject"] for line in inbox.get("/api/mails?q=CRON.SERVICE")[2].splitlines()]
    assert found == []
    # ?unit= is journald's word, ?caller_unit= the sender's claim: each a filter, as list --unit, --caller-unit
    assert inbox.get("/api/mails?unit=cron.service")[:3:2] == (200, b"")
    found = [json.loads(line)["subject"] for line in inbox.get("/api/mails?caller_unit=cron.service")[2].splitlines()]
    assert found == ["from a unit"]


def test_ordinary_user_sees_only_own_mail(inbox: Serve, bindir: Path) -> None:
    raw = b"From: me\nTo: root\nSubject: my own mail\n\nmine\n"
    p = subprocess.run([*reader.as_user(reader.USER_UID), str(bindir / "sendmail"), "-i", "root"], input=raw,
                       capture_output=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert p.returncode == 0, p.stderr
    reader.wait_until(lambda: b"my own mail" in inbox.get("/api/mails")[2], what="the user's mail")
    url, proc = start_serve(user=reader.USER_UID)
    try:
        s = Serve(url, proc)
        shown = [json.loads(line)["subject"] for line in s.get("/api/mails")[2].splitlines()]
        assert shown == ["my own mail"]
        assert s.get(f"/mail/{inbox.ids[MDADM]}/raw")[0] == 404  # root's mail: not there for this user
    finally:
        err = stop(proc)
    assert b"showing only the mail readable by uid 4242" in err


def test_index_gives_the_same_pages(inbox: Serve) -> None:
    """With a current index (list and /stats answered from it) every page is the scan's, byte for byte."""
    pages = ["/", "/stats", "/api/mails", "/?to=ops@example.org", "/stats?caller=python3", "/?q=volumes",
             # the search through the index (trigram LIKE on subject, body, who) and without it
             "/?q=no-such-words", "/api/mails?q=had+been+detected", "/api/mails?q=BACKUP@WEB2",
             "/api/mails?q=line+00399", "/api/mails?q=%25", "/api/mails?q=ab", "/api/mails?q=%C3%A9t%C3%A9",
             "/api/mails?q=ops@example&reverse=1&n=2"]
    scanned = {p: inbox.get(p)[2] for p in pages}
    reader.ok(reader.run_jm("index", "--quiet"))
    assert {p: inbox.get(p)[2] for p in pages} == scanned
    # and it is the index that searched: a word only the index's copy of a body has is found
    db = sqlite3.connect("/var/lib/journal-mail/index/local.sqlite3")
    try:
        db.execute("UPDATE fts SET body = body || ' zebra-only-in-the-index' WHERE rowid = "
                   "(SELECT id FROM mails WHERE mail_id = ?)", (inbox.ids[MDADM],))
        db.commit()
        found = [json.loads(line)["subject"] for line in inbox.get("/api/mails?q=zebra-only-in-the")[2].splitlines()]
        assert found == [MDADM]
    finally:
        db.execute("UPDATE fts SET body = replace(body, ' zebra-only-in-the-index', '') WHERE rowid = "
                   "(SELECT id FROM mails WHERE mail_id = ?)", (inbox.ids[MDADM],))
        db.commit()
        db.close()


def test_pages_of_fifty(inbox: Serve) -> None:
    """Newest first, 50 a page, "older" links on: every mail once, in the order of list -r."""
    import hashlib

    from kit import harness

    from journal_sendmail import journal, record

    sink = journal.Journal(harness.SOCKET, 10)
    for i in range(60):
        raw = f"From: root\nTo: root\nSubject: paged {i:02d}\n\nmail {i}\n".encode()
        mail = record.Mail(mail_id=os.urandom(16).hex(), envelope_from="root", recipients=["root"],
                           headers={"MAIL_SUBJECT": f"paged {i:02d}"}, size=len(raw),
                           sha256=hashlib.sha256(raw).hexdigest(), argv=("/usr/sbin/sendmail", "root"),
                           invoked_as="sendmail")
        journal.write_mail(sink.send, record.mail_fields(mail, raw, 1), ())
    sink.close()
    reader.wait_until(lambda: b"paged 59" in inbox.get("/")[2], what="the 60 mails")
    newest_first = [json.loads(line)["mail_id"] for line in reader.ok(
        reader.run_jm("list", "--json", "-r")).splitlines()]
    seen: list[str] = []
    path = "/"
    while path:
        page = inbox.get(path)[2].decode()
        seen += re.findall(r'<td class="subject"><a href="/mail/([0-9a-f]{32})">', page)
        older = re.search(r'<a rel="next" href="([^"]+)">', page)
        path = "/" + html.unescape(older.group(1)) if older else ""
    assert seen == newest_first and len(seen) > 60
    assert len(re.findall(r'<td class="subject">', inbox.get("/?page=1")[2].decode())) == len(seen) - 50
    assert inbox.get("/?page=-1")[0] == 400 and inbox.get("/?page=x")[0] == 400
