"""The unit drop-in docs/fleet.md gives the admin is one systemd understands."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kit.support import ROOT

DOC = ROOT / "docs" / "fleet.md"


def test_cron_drop_in_is_understood_by_systemd(tmp_path: Path) -> None:
    m = re.search(r"```ini\n# /etc/systemd/system/cron\.service\.d/[^\n]+\n(.*?)```", DOC.read_text(), re.S)
    assert m, "docs/fleet.md has no cron.service.d drop-in"
    assert "LogRateLimitIntervalSec=0" in m.group(1)
    unit = tmp_path / "cron-like.service"
    unit.write_text(m.group(1).replace("[Service]\n", "[Service]\nExecStart=/bin/true\n"))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "cron-like.service" not in p.stderr, p.stderr
