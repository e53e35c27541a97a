"""The package on a booted Debian (systemd as PID 1 under systemd-nspawn):
installed over exim4, cron's real mail, provenance of 1,000 mails from 100
units, 1,000 mails while journald restarts and is killed, the spool and its
path unit, a broken configuration, the exporter across logrotate, a
reinstall over a changed conffile, and purge.  The tests run in file order on
one booted host; the last one purges the package."""

from __future__ import annotations

import collections
import json
import subprocess
import time
from pathlib import Path

import pytest
from kit.host import Host

MSG_MAIL = "4cf50392e5a34635904ffaeffb43b172"
MSG_CONFIG = "c66f6fa4eeab4705b30209695349ff94"
MAIL = f"MESSAGE_ID={MSG_MAIL}"
PROVENANCE = ("_SYSTEMD_UNIT", "_EXE", "_CMDLINE", "MAIL_CALLER_UNIT", "MAIL_SUBJECT", "MAIL_CALLER_COMM")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def host(boot) -> Host:  # type: ignore[no-untyped-def]
    return boot("jsm-host")  # type: ignore[no-any-return]


def test_installs_over_exim4_and_the_path_unit_is_active(host: Host) -> None:
    states = host.sh("dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' exim4-daemon-light journal-sendmail"
                     " 2>/dev/null || true").stdout
    assert "journal-sendmail ii" in states and "exim4-daemon-light ii" not in states, states
    assert host.sh("readlink -f /usr/sbin/sendmail").stdout.strip() == "/usr/sbin/journal-sendmail"
    assert host.sh("systemctl is-active journal-sendmail-flush.path").stdout.strip() == "active"
    assert host.sh("systemctl is-enabled journal-sendmail-export.service || true").stdout.strip() == "disabled"
    assert host.sh("journalctl --list-catalog").stdout.count("journal-sendmail") >= 5


def test_a_real_cron_job_mails_and_journalctl_u_cron_shows_it(host: Host) -> None:
    host.sh("printf 'MAILTO=ops@example.org\\n@reboot root echo cron-says-hello\\n' > /etc/cron.d/jsm-test;"
            " rm -f /run/crond.reboot; systemctl restart cron.service")
    found = host.wait_entries(MAIL, "MAIL_RCPT=ops@example.org", count=1, fields=PROVENANCE)
    assert len(found) == 1, "cron's mail was not stored"
    e = found[0]
    assert e["MAIL_CALLER_COMM"] == "cron" and e["MAIL_SUBJECT"].startswith("Cron <root@")
    assert (e.get("_SYSTEMD_UNIT"), e.get("MAIL_CALLER_UNIT")) == ("cron.service", "cron.service"), e
    assert e.get("_EXE", "").startswith("/usr/bin/python3"), e
    in_unit = host.sh(f"journalctl -u cron.service {MAIL} MAIL_RCPT=ops@example.org -o cat").stdout
    assert "mail from root to ops@example.org" in in_unit, in_unit
    host.sh("rm /etc/cron.d/jsm-test")


def test_mail_lost_to_journald_rate_limit_is_shown_and_units_are_filters(host: Host) -> None:
    """A unit that logs a storm loses its mail to journald's rate limit, silently for
    the sender; journal-mail says so (stderr, and a note in list --json)."""
    host.sh("""systemd-run -q --collect --unit=jsm-flood -p LogRateLimitIntervalSec=2s -p LogRateLimitBurst=5 \\
        sh -c 'printf "Subject: flood before\\n\\nx\\n" | /usr/sbin/sendmail root
               seq 1 300
               printf "Subject: flood lost\\n\\nx\\n" | /usr/sbin/sendmail root
               sleep 4
               printf "Subject: flood after\\n\\nx\\n" | /usr/sbin/sendmail root'""")
    assert host.wait_entries(MAIL, "MAIL_SUBJECT=flood after", count=1, timeout=60), "the last mail never came"
    p = host.sh("journal-mail list --json --unit jsm-flood.service")
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    mails = [r for r in recs if r["kind"] == "mail"]
    notes = [r for r in recs if r["kind"] == "note"]
    assert [r["subject"] for r in mails] == ["flood before", "flood after"], recs  # the one in the storm is gone
    assert all((r["unit"], r["systemd_unit"], r["caller_unit"]) == ("jsm-flood.service",) * 3 for r in mails)
    assert [n["unit"] for n in notes] == ["jsm-flood.service"] and notes[0]["suppressed"] > 0, notes
    assert "journald suppressed" in p.stderr and "jsm-flood.service" in p.stderr, p.stderr
    stats = host.sh("journal-mail stats --by unit --unit jsm-flood.service")
    assert "jsm-flood.service" in stats.stdout and "journald suppressed" in stats.stderr, stats
    quiet = host.sh("journal-mail list --unit cron.service -q")
    assert "jsm-flood" not in quiet.stdout + quiet.stderr
GET = "python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' "


def test_the_web_inbox_service_is_unprivileged_and_shows_the_mail(host: Host) -> None:
    """journal-mail-web.service, shipped disabled: started, it serves the journal's mail on the
    loopback as a dynamic user (groups systemd-journal, adm), and stops cleanly on SIGTERM."""
    assert host.sh("systemctl is-enabled journal-mail-web.service || true").stdout.strip() == "disabled"
    host.sh("systemctl start journal-mail-web.service")
    host.wait_for(GET + "http://127.0.0.1:8025/ > /dev/null", what="the web inbox")
    mails = host.sh(GET + "'http://127.0.0.1:8025/api/mails?to=ops@example.org'").stdout
    assert '"subject":"Cron <root@' in mails, mails
    assert "Cron &lt;root@" in host.sh(GET + "http://127.0.0.1:8025/").stdout
    pid = host.sh("systemctl show -p MainPID --value journal-mail-web.service").stdout.strip()
    uid, groups = host.sh(f"stat -c %u /proc/{pid}; grep ^Groups: /proc/{pid}/status").stdout.split("\n", 1)
    assert int(uid) >= 61184, uid  # systemd's range of dynamic users
    journal_gid = host.sh("getent group systemd-journal | cut -d: -f3").stdout.strip()
    assert journal_gid in groups.split(), groups
    host.sh("systemctl stop journal-mail-web.service")
    assert host.sh("systemctl show -p Result --value journal-mail-web.service").stdout.strip() == "success"
    log = host.sh("journalctl -u journal-mail-web.service -o cat").stdout
    assert '"GET /api/mails?to=ops@example.org" 200' in log and "stopped" in log, log


def test_1000_mails_from_100_units_all_carry_their_unit(host: Host) -> None:
    host.sh("""
for u in $(seq 1 100); do
    systemd-run -q --collect --unit=jsm-burst-$u sh -c '
        for m in $(seq 1 10); do
            printf "Subject: burst %s %s\\n\\nx\\n" "$0" "$m" | /usr/sbin/sendmail -i burst@example.org || exit 1
        done' $u
done""", timeout=300)
    found = host.wait_entries(MAIL, "MAIL_RCPT=burst@example.org", count=1000, timeout=180, fields=PROVENANCE)
    counts = {f: sum(1 for e in found if e.get(f)) for f in ("_SYSTEMD_UNIT", "_EXE", "_CMDLINE", "MAIL_CALLER_UNIT")}
    print(f"\n1,000 mails from 100 units: {len(found)} stored; with {counts}")
    assert len(found) == 1000
    assert counts == {"_SYSTEMD_UNIT": 1000, "_EXE": 1000, "_CMDLINE": 1000, "MAIL_CALLER_UNIT": 1000}
    for e in found:
        unit = f"jsm-burst-{e['MAIL_SUBJECT'].split()[1]}.service"
        assert e["_SYSTEMD_UNIT"] == e["MAIL_CALLER_UNIT"] == unit, e
    assert len({e["MAIL_SUBJECT"] for e in found}) == 1000


def _journald(host: Host) -> str:
    return host.sh("systemctl show -p MainPID --value systemd-journald.service").stdout.strip()


def _count(host: Host, path: str) -> int:
    return int(host.sh(f"cat {path} 2>/dev/null | wc -l").stdout)


def test_1000_mails_from_10_senders_while_journald_restarts_and_is_killed(host: Host) -> None:
    script = """
rm -f /tmp/sent /tmp/codes
for s in $(seq 1 10); do
    ( for m in $(seq 1 100); do
        printf "Subject: storm %s-%s\\n\\nx\\n" $s $m | /usr/sbin/sendmail -i storm@example.org
        echo "$s-$m $?" >> /tmp/codes
      done ) &
done
wait
"""
    senders = subprocess.Popen(["nsenter", "-t", str(host.pid), "-a", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while _count(host, "/tmp/codes") < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [_journald(host)]
        host.sh("systemctl restart systemd-journald.service")
        pids.append(_journald(host))
        while _count(host, "/tmp/codes") < 500 and time.monotonic() < deadline:
            time.sleep(0.1)
        host.sh("systemctl kill -s SIGKILL systemd-journald.service")
        sent_by_then = _count(host, "/tmp/codes")
        out, _ = senders.communicate(timeout=300)
        host.wait_for("systemctl is-active systemd-journald.service", what="journald back after SIGKILL")
        pids.append(_journald(host))
    finally:
        if senders.poll() is None:
            senders.kill()
            senders.wait()
    codes = host.sh("cat /tmp/codes").stdout.split("\n")
    codes = [line for line in codes if line]
    failed = [line for line in codes if not line.endswith(" 0")]
    assert len(codes) == 1000 and not failed, [*failed[:10], out.decode(errors="replace")[-2000:]]
    host.wait_for("test -z \"$(ls /var/spool/journal-sendmail)\"", timeout=60, what="the spool to be flushed")
    found = host.wait_entries(MAIL, "MAIL_RCPT=storm@example.org", count=1000, timeout=60,
                              fields=("MAIL_SUBJECT", "MAIL_SPOOLED"))
    assert len(set(pids)) == 3 and sent_by_then < 1000, (pids, sent_by_then)  # really three journalds, mid-burst
    subjects = collections.Counter(e["MAIL_SUBJECT"] for e in found)
    spooled = sum(1 for e in found if e.get("MAIL_SPOOLED") == "yes")
    print(f"\n1,000 mails from 10 senders, journald restarted and SIGKILLed: {len(found)} entries, "
          f"{len(subjects)} distinct, {spooled} through the spool, every sender exit 0")
    assert len(subjects) == 1000 and max(subjects.values()) == 1, subjects.most_common(3)


def test_journald_sockets_stopped_spooled_then_reinjected_by_the_path_unit(host: Host) -> None:
    host.sh("systemctl stop systemd-journald.socket systemd-journald-dev-log.socket systemd-journald-audit.socket"
            " systemd-journald.service")
    try:
        p = host.sh("printf 'Subject: while journald was away\\n\\nx\\n' | /usr/sbin/sendmail -v away@example.org")
        assert "spooled as" in p.stderr, p.stderr
        assert host.sh("ls /var/spool/journal-sendmail").stdout.split()
    finally:
        host.sh("systemctl start systemd-journald.socket systemd-journald-dev-log.socket"
                " systemd-journald-audit.socket systemd-journald.service")
    found = host.wait_entries(MAIL, "MAIL_RCPT=away@example.org", count=1,
                              fields=("MAIL_SUBJECT", "MAIL_SPOOLED", "_SYSTEMD_UNIT"))
    assert [(e["MAIL_SUBJECT"], e["MAIL_SPOOLED"]) for e in found] == [("while journald was away", "yes")]
    assert found[0]["_SYSTEMD_UNIT"] == "journal-sendmail-flush.service"
    host.wait_for("test -z \"$(ls /var/spool/journal-sendmail)\"", timeout=30, what="an empty spool")


def test_a_broken_configuration_still_stores_the_mail(host: Host) -> None:
    host.sh("cp /etc/journal-sendmail.conf /tmp/conf.orig; printf 'timeout = banana\\n' >> /etc/journal-sendmail.conf")
    try:
        check = host.sh("journal-sendmail --check-config", check=False)
        assert check.returncode == 78 and "timeout" in check.stderr
        p = host.sh("printf 'Subject: despite the typo\\n\\nx\\n' | /usr/sbin/sendmail typo@example.org")
        assert p.stderr.count("\n") == 1 and "timeout" in p.stderr
        mail = host.wait_entries(MAIL, "MAIL_RCPT=typo@example.org", count=1,
                                 fields=("MAIL_SUBJECT", "MAIL_CONFIG_ERROR"))
        assert len(mail) == 1 and "banana" in mail[0]["MAIL_CONFIG_ERROR"]
        errors = host.wait_entries(f"MESSAGE_ID={MSG_CONFIG}", count=1,
                                   fields=("PRIORITY", "MAIL_CONFIG_KEY", "MAIL_CONFIG_ERROR"))
        assert len(errors) == 1 and (errors[0]["PRIORITY"], errors[0]["MAIL_CONFIG_KEY"]) == ("3", "timeout")
        explained = host.sh(f"journalctl -x -q MESSAGE_ID={MSG_CONFIG} --no-pager").stdout
        assert "--check-config" in explained
    finally:
        host.sh("cp /tmp/conf.orig /etc/journal-sendmail.conf")
    assert host.sh("journal-sendmail --check-config").returncode == 0


def test_the_exporter_across_logrotate(host: Host) -> None:
    host.sh("systemctl enable --now journal-sendmail-export.service")
    host.sh("printf 'Subject: before rotation\\n\\nx\\n' | /usr/sbin/sendmail rot@example.org")
    host.wait_for("grep -q 'before rotation' /var/log/journal-sendmail/mail.jsonl", what="the first mail exported")
    host.sh("logrotate -f /etc/logrotate.d/journal-sendmail")
    host.sh("printf 'Subject: after rotation\\n\\nx\\n' | /usr/sbin/sendmail rot@example.org")
    host.wait_for("grep -q 'after rotation' /var/log/journal-sendmail/mail.jsonl", what="the second mail exported")
    host.sh("systemctl is-active journal-sendmail-export.service")
    rotated = host.sh("ls /var/log/journal-sendmail/").stdout.split()
    assert "mail.jsonl.1" in rotated, rotated
    old, new = ([json.loads(line)["subject"] for line in host.sh(f"cat {f}").stdout.split("\n") if line]
                for f in ("/var/log/journal-sendmail/mail.jsonl.1", "/var/log/journal-sendmail/mail.jsonl"))
    assert old[-1:] == ["before rotation"] and "after rotation" not in old
    assert new == ["after rotation"]


def test_a_second_install_keeps_a_modified_conffile(host: Host, deb: Path) -> None:
    host.sh("printf '# changed by the admin\\nidentifier = mta\\n' >> /etc/journal-sendmail.conf")
    before = host.sh("sha256sum /etc/journal-sendmail.conf").stdout
    host.sh(f"apt-get install -y -q --reinstall /mnt/deb/{deb.name}", timeout=300)
    assert host.sh("sha256sum /etc/journal-sendmail.conf").stdout == before
    assert not host.sh("ls /etc/journal-sendmail.conf.dpkg-* 2>/dev/null || true").stdout.strip()
    host.sh("printf 'Subject: after reinstall\\n\\nx\\n' | /usr/sbin/sendmail again@example.org")
    found = host.wait_entries(MAIL, "MAIL_RCPT=again@example.org", count=1, fields=("SYSLOG_IDENTIFIER",))
    assert [e["SYSLOG_IDENTIFIER"] for e in found] == ["mta"]
    assert host.sh("systemctl is-active journal-sendmail-flush.path").stdout.strip() == "active"


def test_purge_leaves_nothing(host: Host, deb: Path) -> None:
    shipped = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = []
    for line in shipped.splitlines():
        mode, *_, name = line.split(maxsplit=5)
        path = name.split(" -> ")[0].removeprefix(".").rstrip("/")
        if not mode.startswith("d") or "journal-sendmail" in path.rsplit("/", 1)[-1]:
            paths.append(path)
    # bsd-mailx (in the root: an admin's mail(1)) needs an MTA: apt 3 (forky) would install exim4
    # to keep it, apt 2 removes it; an admin names both
    host.sh("apt-get purge -y -q journal-sendmail bsd-mailx", timeout=300)
    assert host.sh("dpkg-query -W -f '${db:Status-Abbrev}' exim4-daemon-light 2>/dev/null || true"
                   ).stdout.strip() in ("", "un", "rc")
    assert host.sh("dpkg-query -W -f '${db:Status-Abbrev}' journal-sendmail 2>/dev/null || true").stdout.strip() \
        in ("", "un")
    left = host.sh("for p in " + " ".join(paths) + " /var/spool/journal-sendmail /var/log/journal-sendmail"
                   " /var/lib/journal-sendmail /etc/journal-sendmail.conf /usr/sbin/sendmail /usr/lib/sendmail"
                   " /usr/bin/mailq /usr/bin/newaliases; do [ -e $p ] || [ -L $p ] && echo $p; done; true").stdout
    assert left.split() == []
    links = host.sh("find /etc/systemd /etc/alternatives /var/lib/dpkg/alternatives -name '*journal-sendmail*'"
                    " -o -name sendmail").stdout
    assert links.split() == []
