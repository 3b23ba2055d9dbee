"""The systemd unit: hardened (systemd-analyze security <= 2.0), parseable, and
consistent with the release layout deploy.py builds.

Needs `systemd-analyze` with `--offline` (systemd >= 250; Debian/Ubuntu package
`systemd`). Without it the exposure test skips and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "saysee.service"
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not found (apt-get install -y systemd)")
    help_ = subprocess.run([exe, "security", "--help"], capture_output=True, text=True).stdout
    if "--offline" not in help_:
        pytest.skip("systemd-analyze is too old for --offline (needs systemd >= 250)")
    return exe


def _unit() -> dict[str, list[str]]:
    """Unit file as {"Section.Key": [values...]} (keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def test_exposure_at_most_2():
    exe = _analyze()
    proc = subprocess.run(
        [exe, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = proc.stdout + proc.stderr
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", text)
    assert m, f"no exposure level in systemd-analyze output:\n{text[-2000:]}"
    exposure = float(m.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{proc.stdout}"
    # A typo in a hardening directive is silently ignored by systemd (and would
    # quietly weaken the sandbox): the parser's warnings must be empty.
    problems = [ln for ln in proc.stderr.splitlines() if "ignoring" in ln or "Unknown" in ln]
    assert not problems, "\n".join(problems)


def test_unit_parses_cleanly_in_verify():
    exe = _analyze()
    proc = subprocess.run([exe, "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    # The only acceptable complaint on a workstation: the venv isn't installed here.
    bad = [ln for ln in lines if ln.strip() and "is not executable" not in ln]
    assert not bad, "\n".join(bad)


def test_unit_matches_the_release_layout():
    sys.path.insert(0, str(ROOT / "systemd"))
    try:
        import deploy
    finally:
        sys.path.pop(0)
    u = _unit()
    assert u["Service.Type"] == ["notify"]
    assert u["Service.Restart"] == ["on-failure"]
    assert float(u["Service.WatchdogSec"][0]) <= 30
    assert u["Service.User"] == [deploy.SERVICE_USER]
    assert set(u["Service.SupplementaryGroups"][0].split()) >= {"audio", "video", "gpio", "dialout"}
    exec_start = u["Service.ExecStart"][0].split()
    assert exec_start[0] == f"{deploy.INSTALL_DIR}/current/venv/bin/python"
    assert exec_start[1:4] == ["-m", "device", "run"]
    assert exec_start[exec_start.index("--config") + 1] == deploy.CONFIG_PATH
    assert f"SAYSEE_HOME={deploy.INSTALL_DIR}/current" in " ".join(u["Service.Environment"])
    assert u["Service.WorkingDirectory"] == [f"{deploy.INSTALL_DIR}/current"]
    assert u["Service.RuntimeDirectory"] == ["saysee"]
    assert deploy.STATUS_PATH == "/run/saysee/status.json"
    assert u["Service.PrivateNetwork"] == ["yes"]
    assert u["Service.DevicePolicy"] == ["closed"]
    allowed = " ".join(u["Service.DeviceAllow"])
    for cls in ("alsa", "video4linux", "gpiochip", "ttyUSB", "ttyACM", "ttyAMA", "drm"):
        assert f"char-{cls} " in allowed
    assert u["Install.WantedBy"] == ["multi-user.target"]
