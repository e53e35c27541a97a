"""The package's life on a booted host of the release under test, as dpkg and
systemd live it: install (the opt-in units stay off), upgrade and reinstall
(every unit the admin enabled runs again, with a new process; configuration,
conffiles, spool, the forwarder's state and the index kept), remove (the
units stopped), purge (nothing left), install again; and the upgrade from
0.1.0, built from its commit in git.  The tests of each host run in file
order."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from kit.host import Host, old_deb

pytestmark = pytest.mark.slow

OPT_IN = ("journal-sendmail-export.service", "journal-mail-index.service", "journal-mail-forward.service",
          "journal-mail-web.service")
MAIL = "MESSAGE_ID=4cf50392e5a34635904ffaeffb43b172"
# A rule that forwards cron's mail to a relay that is not there: the
# forwarder runs, keeps its state, and retries.
FORWARD_TOML = """
[destination.ops]
type = "smtp"
url = "smtp://127.0.0.1:2525"
from = "journal-mail@jsm-life"
to = ["ops@example.org"]
timeout = "5s"

[[rule]]
name = "the test's mail"
match = { subject = "*" }
route = ["ops"]
"""
# what an admin keeps installed: bsd-mailx needs an MTA, and apt 3 (forky)
# puts exim4 back when journal-sendmail goes alone
PURGE = "apt-get purge -y -q journal-sendmail bsd-mailx"


def main_pids(host: Host) -> dict[str, str]:
    return {u: host.sh(f"systemctl show -p MainPID --value {u}").stdout.strip() for u in OPT_IN}


def states(host: Host, *units: str) -> dict[str, tuple[str, str]]:
    out = {}
    for u in units:
        active = host.sh(f"systemctl is-active {u} || true").stdout.strip()
        enabled = host.sh(f"systemctl is-enabled {u} 2>/dev/null || true").stdout.strip()
        out[u] = (active, enabled)
    return out


@pytest.fixture(scope="module")
def upgrade_deb(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb under test with a higher version (0.2.0 -> 0.2.0+upgrade1):
    dpkg runs the upgrade paths of the maintainer scripts, not a reinstall."""
    d = tmp_path_factory.mktemp("upgrade")
    d.chmod(0o755)
    tree = d / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN/control"
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    control.write_text(control.read_text().replace(f"Version: {version}\n", f"Version: {version}+upgrade1\n"))
    out = d / f"journal-sendmail_{version}+upgrade1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True, capture_output=True)
    out.chmod(0o644)
    return out


@pytest.fixture(scope="module")
def host(boot, upgrade_deb: Path) -> Host:  # type: ignore[no-untyped-def]
    return boot("jsm-life", {str(upgrade_deb.parent): "/mnt/upgrade"})  # type: ignore[no-any-return]


def test_install_leaves_the_opt_in_units_off(host: Host) -> None:
    assert states(host, *OPT_IN) == {u: ("inactive", "disabled") for u in OPT_IN}
    assert states(host, "journal-sendmail-flush.path") == {"journal-sendmail-flush.path": ("active", "enabled")}


def _enable_everything(host: Host) -> None:
    host.sh(f"cat > /etc/journal-mail/forward.toml <<'EOF'\n{FORWARD_TOML}\nEOF\n"
            "printf '# changed by the admin\\nidentifier = mta\\n' >> /etc/journal-sendmail.conf")
    host.sh("systemctl enable --now " + " ".join(OPT_IN))
    host.sh("printf 'Subject: before the upgrade\\n\\nx\\n' | /usr/sbin/sendmail life@example.org")
    host.wait_for("grep -q 'before the upgrade' /var/log/journal-sendmail/mail.jsonl", what="the exported mail")
    host.wait_for("test -s /var/lib/journal-mail/index/local.sqlite3"
                  " && journal-mail list --to life@example.org | grep -q 'before the upgrade'", what="the index")
    host.wait_for("test -n \"$(ls -A /var/lib/private/journal-mail/forward)\"", what="the forwarder's state")
    assert all(a == "active" for a, _ in states(host, *OPT_IN).values()), states(host, *OPT_IN)


def _spool_one(host: Host, subject: str) -> None:
    """A mail left in the spool: the path unit stopped, journald away."""
    host.sh("systemctl stop journal-sendmail-flush.path")
    host.sh("systemctl stop systemd-journald.socket systemd-journald-dev-log.socket systemd-journald-audit.socket"
            " systemd-journald.service")
    try:
        host.sh(f"printf 'Subject: {subject}\\n\\nx\\n' | /usr/sbin/sendmail spool@example.org")
    finally:
        host.sh("systemctl start systemd-journald.socket systemd-journald-dev-log.socket"
                " systemd-journald-audit.socket systemd-journald.service")
    assert host.sh("ls /var/spool/journal-sendmail").stdout.split(), "nothing spooled"


def _kept(host: Host, before: dict[str, str]) -> None:
    after = {f: host.sh(f"sha256sum {f}").stdout for f in before}
    assert after == before
    assert not host.sh("ls /etc/journal-sendmail.conf.dpkg-* /etc/journal-mail/*.dpkg-* 2>/dev/null || true"
                       ).stdout.strip()


@pytest.mark.parametrize("how", ["upgrade", "reinstall"])
def test_enabled_units_run_again_after_an_upgrade_and_keep_their_state(host: Host, upgrade_deb: Path,
                                                                      how: str) -> None:
    if how == "upgrade":
        _enable_everything(host)
    before_pids = main_pids(host)
    kept = ("/etc/journal-sendmail.conf", "/etc/journal-mail/forward.toml")
    before = {f: host.sh(f"sha256sum {f}").stdout for f in kept}
    state = host.sh("ls /var/lib/private/journal-mail/forward").stdout.split()
    subject = f"spooled before the {how}"
    _spool_one(host, subject)
    again = "--reinstall" if how == "reinstall" else ""
    host.sh(f"apt-get install -y -q {again} /mnt/upgrade/{upgrade_deb.name}", timeout=300)
    assert states(host, *OPT_IN) == {u: ("active", "enabled") for u in OPT_IN}
    pids = main_pids(host)
    assert all(pids[u] not in ("0", before_pids[u]) for u in OPT_IN), (before_pids, pids)  # really restarted
    _kept(host, before)
    assert set(state) <= set(host.sh("ls /var/lib/private/journal-mail/forward").stdout.split())
    # the spool is kept and flushed by the restarted path unit
    found = host.wait_entries(MAIL, f"MAIL_SUBJECT={subject}", count=1, fields=("MAIL_SPOOLED",))
    assert [e["MAIL_SPOOLED"] for e in found] == ["yes"]
    # the index answers, current, and so does the exporter
    host.sh(f"printf 'Subject: after the {how}\\n\\nx\\n' | /usr/sbin/sendmail life@example.org")
    host.wait_for(f"grep -q 'after the {how}' /var/log/journal-sendmail/mail.jsonl", what="the exporter")
    host.wait_for(f"journal-mail list --to life@example.org | grep -q 'after the {how}'", what="the index")
    assert "before the upgrade" in host.sh("journal-mail list --to life@example.org").stdout


def test_remove_stops_every_unit(host: Host) -> None:
    host.sh("apt-get remove -y -q journal-sendmail bsd-mailx", timeout=300)
    units = (*OPT_IN, "journal-sendmail-flush.path")
    assert {u: a for u, (a, _) in states(host, *units).items()} == {u: "inactive" for u in units}
    assert not host.sh("ps -eo args | grep '[j]ournal-mail ' || true").stdout.strip()
    # remove keeps the configuration
    assert "identifier = mta" in host.sh("cat /etc/journal-sendmail.conf").stdout


def test_purge_then_install_again_starts_from_nothing(host: Host, deb: Path) -> None:
    host.sh(PURGE, timeout=300)
    left = host.sh("ls -d /etc/journal-sendmail.conf /etc/journal-mail /var/lib/journal-mail"
                   " /var/lib/private/journal-mail /var/spool/journal-sendmail /var/log/journal-sendmail"
                   " /var/lib/journal-sendmail 2>/dev/null"
                   " || true").stdout.split()
    assert left == []
    assert host.sh("find /etc/systemd -name '*journal-mail*' -o -name '*journal-sendmail*'").stdout.split() == []
    host.sh(f"apt-get install -y -q --no-install-recommends /mnt/deb/{deb.name}", timeout=300)
    assert states(host, *OPT_IN) == {u: ("inactive", "disabled") for u in OPT_IN}
    assert states(host, "journal-sendmail-flush.path") == {"journal-sendmail-flush.path": ("active", "enabled")}
    host.sh("printf 'Subject: installed again\\n\\nx\\n' | /usr/sbin/sendmail again@example.org")
    assert host.wait_entries(MAIL, "MAIL_SUBJECT=installed again", count=1)


@pytest.fixture(scope="module")
def old(boot) -> Host:  # type: ignore[no-untyped-def]
    """A host with 0.1.0 installed over exim4, the exporter enabled, the
    configuration changed, a mail exported and one left in the spool."""
    deb = old_deb("0.1.0")
    h = boot("jsm-old", {str(deb.parent): "/mnt/old"}, install=False)
    h.sh(f"apt-get install -y -q --no-install-recommends /mnt/old/{deb.name}", timeout=300)
    assert h.sh("dpkg-query -W -f '${Version}' journal-sendmail").stdout == "0.1.0"
    h.sh("printf '# changed by the admin\\nidentifier = mta\\n' >> /etc/journal-sendmail.conf")
    h.sh("systemctl enable --now journal-sendmail-export.service")
    h.sh("printf 'Subject: under 0.1.0\\n\\nx\\n' | /usr/sbin/sendmail old@example.org")
    h.wait_for("grep -q 'under 0.1.0' /var/log/journal-sendmail/mail.jsonl", what="0.1.0's exporter")
    _spool_one(h, "spooled under 0.1.0")
    return h  # type: ignore[no-any-return]


def test_upgrade_from_0_1_0(old: Host, deb: Path) -> None:
    conf = old.sh("sha256sum /etc/journal-sendmail.conf").stdout
    pid = old.sh("systemctl show -p MainPID --value journal-sendmail-export.service").stdout.strip()
    old.sh("apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
           f" /mnt/deb/{deb.name}", timeout=300)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    assert old.sh("dpkg-query -W -f '${Version}' journal-sendmail").stdout == version
    assert old.sh("sha256sum /etc/journal-sendmail.conf").stdout == conf
    assert states(old, *OPT_IN) == {"journal-sendmail-export.service": ("active", "enabled"),
                                    **{u: ("inactive", "disabled") for u in OPT_IN[1:]}}
    assert old.sh("systemctl show -p MainPID --value journal-sendmail-export.service").stdout.strip() != pid
    found = old.wait_entries(MAIL, "MAIL_SUBJECT=spooled under 0.1.0", count=1, fields=("MAIL_SPOOLED",))
    assert [e["MAIL_SPOOLED"] for e in found] == ["yes"]
    old.sh("printf 'Subject: under the new version\\n\\nx\\n' | /usr/sbin/sendmail old@example.org")
    old.wait_for("grep -q 'under the new version' /var/log/journal-sendmail/mail.jsonl", what="the new exporter")
    exported = old.sh("cat /var/log/journal-sendmail/mail.jsonl").stdout
    subjects = [json.loads(line)["subject"] for line in exported.splitlines()]
    assert subjects.count("under 0.1.0") == 1, subjects  # the cursor was kept: nothing exported twice
    assert "spooled under 0.1.0" in subjects and "under the new version" in subjects, subjects
    listed = old.sh("journal-mail list --to old@example.org").stdout
    assert "under 0.1.0" in listed and "under the new version" in listed, listed
    old.sh(PURGE, timeout=300)
    assert old.sh("ls -d /etc/journal-sendmail.conf /var/log/journal-sendmail /var/lib/journal-sendmail"
                  " 2>/dev/null || true").stdout.split() == []
