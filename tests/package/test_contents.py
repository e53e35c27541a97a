"""What the built .deb holds, checked without installing it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kit.package import ROOT, run

IDS = (
    "4cf50392e5a34635904ffaeffb43b172",
    "aa12d80295f04539a057a77642e355d5",
    "23042c0ef8f74902814ee4284e0a5521",
    "963c70d77fdb45678cf8479f3cbe9fdf",
    "cda5a93613b14aa58d5d8dd0dbbe3c61",
    "c66f6fa4eeab4705b30209695349ff94",
)


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("unpacked")
    run(["dpkg-deb", "-R", str(deb), str(d)])
    return d


def test_launcher_keeps_its_shebang_and_path(unpacked: Path) -> None:
    """dh_python3 must not rewrite "/usr/bin/python3 -IS" (start-up time,
    no site, no environment) nor drop the dist-packages line."""
    text = (unpacked / "usr/sbin/journal-sendmail").read_text()
    assert text.splitlines()[0] == "#!/usr/bin/python3 -IS", text
    assert 'sys.path.append("/usr/lib/python3/dist-packages")' in text, text
    assert text == (ROOT / "bin/journal-sendmail").read_text()


def test_modes_and_conffiles(deb: Path) -> None:
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    assert re.search(r"^drwx-wx-wt root/root .* \./var/spool/journal-sendmail/$", listing, re.M), listing
    assert re.search(r"^-rwxr-xr-x root/root .* \./usr/sbin/journal-sendmail$", listing, re.M), listing
    assert not re.search(r"^\S*[sS]", listing, re.M), "no setuid or setgid file: " + listing


def test_conffiles(unpacked: Path) -> None:
    assert (unpacked / "DEBIAN/conffiles").read_text().split() == [
        "/etc/journal-mail/forward.toml",
        "/etc/journal-sendmail.conf",
        "/etc/logrotate.d/journal-sendmail",
    ]


OPT_IN = ("journal-sendmail-export.service", "journal-mail-index.service", "journal-mail-forward.service",
          "journal-mail-web.service")


def unit_dir(unpacked: Path) -> Path:
    """Where this release's debhelper put the units: lib/ on bookworm, usr/lib/
    on trixie and later (the /usr merge)."""
    found = [d for d in (unpacked / "lib/systemd/system", unpacked / "usr/lib/systemd/system") if d.is_dir()]
    assert len(found) == 1, found
    return found[0]


def test_units_flusher_started_exporter_not(unpacked: Path) -> None:
    """Which units get enabled and restarted is checked on a real install and
    upgrade (tests/host/test_lifecycle.py)."""
    units = sorted(p.name for p in unit_dir(unpacked).iterdir())
    assert units == [
        "journal-mail-failure@.service",
        "journal-mail-failure@.service.d",
        "journal-mail-forward.service",
        "journal-mail-index.service",
        "journal-mail-web.service",
        "journal-sendmail-export.service",
        "journal-sendmail-flush.path",
        "journal-sendmail-flush.service",
    ]
    postinst = (unpacked / "DEBIAN/postinst").read_text()
    # enabled on install: the flusher only; the opt-in units only when the admin had enabled them
    enabled = re.findall(r"^\t+deb-systemd-helper enable '([\w.-]+)'", postinst, re.M)
    assert set(enabled) == {"journal-sendmail-flush.path", "journal-sendmail-flush.service", *OPT_IN}, postinst
    for unit in OPT_IN:
        assert f"deb-systemd-helper debian-installed '{unit}'" in postinst, unit
    # started on install, restarted on upgrade: deb-systemd-invoke starts only enabled units
    started = set(re.findall(r"deb-systemd-invoke \$_dh_action '?([\w.-]+)", postinst))
    assert started == {"journal-sendmail-flush.path", *OPT_IN}, postinst
    prerm = (unpacked / "DEBIAN/prerm").read_text()
    stopped = set(re.findall(r"deb-systemd-invoke stop '?([\w.-]+)", prerm))
    assert stopped == {"journal-sendmail-flush.path", *OPT_IN}, prerm
    # Enabled by the admin or not, the exporter, the indexer, the forwarder and the web inbox are disabled
    # again on purge.
    postrm = (unpacked / "DEBIAN/postrm").read_text()
    for unit in OPT_IN:
        assert unit in postrm, unit


def test_web_inbox_has_its_templates(unpacked: Path) -> None:
    """The templates and style are package data: a .deb without them serves only errors."""
    web = unpacked / "usr/lib/python3/dist-packages/journal_sendmail/reader/web"
    for name in ("templates/base.html", "templates/list.html", "templates/mail.html", "templates/stats.html",
                 "templates/error.html", "static/style.css", "static/live.js"):
        assert (web / name).is_file(), name


def test_docs_are_installed(unpacked: Path) -> None:
    """The design, the platform facts and the fleet guide go where an admin looks for them
    (a source clone's docs/ is not on the server); dh_compress gzips the larger ones."""
    doc = unpacked / "usr/share/doc/journal-sendmail"
    for name in ("design.md", "platform.md", "fleet.md"):
        assert (doc / name).is_file() or (doc / f"{name}.gz").is_file(), sorted(p.name for p in doc.iterdir())


def test_catalog_is_accepted_by_journalctl(unpacked: Path) -> None:
    """journalctl --update-catalog fails on a malformed file, and the dpkg
    trigger with it: build the database from the package alone."""
    run(["journalctl", f"--root={unpacked}", "--update-catalog"])
    listed = run(["journalctl", f"--root={unpacked}", "--list-catalog"]).stdout
    for message_id in IDS:
        assert re.search(rf"^{message_id} journal-sendmail: \S", listed, re.M), listed
    text = run(["journalctl", f"--root={unpacked}", "--dump-catalog", IDS[0]]).stdout
    assert "@MAIL_ID@" in text, text


def test_version_agrees_with_the_module(deb: Path) -> None:
    version = run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    init = (ROOT / "src/journal_sendmail/__init__.py").read_text()
    assert f'__version__ = "{version}"' in init, (
        f"debian/changelog says {version}, src/journal_sendmail/__init__.py does not")
