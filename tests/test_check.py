"""`python -m device check`: every backend listed with a reason, the configured synth port looked at."""

import json
import os
import subprocess
import sys

import pytest

from device.config import PROJECT_ROOT
from device.hardware import KINDS

pytestmark = pytest.mark.device_venv


def check(*args):
    r = subprocess.run([sys.executable, "-m", "device", "check", "--json", *args], capture_output=True,
                       text=True, timeout=60, cwd=PROJECT_ROOT, env=dict(os.environ, SDL_VIDEODRIVER="dummy"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_kind_listed_with_sim_usable_and_reasons():
    out = check()
    assert set(out) == set(KINDS) | {"tflite"} and {"mic", "camera", "leds", "display", "synth"} <= set(KINDS)
    for kind in KINDS:
        rows = {r["backend"]: r for r in out[kind]}
        assert rows["sim"]["usable"] is True
        assert all(r["why"] for r in out[kind])
    # No GPIO node on a test machine: the reason names what is missing.
    leds = {r["backend"]: r for r in out["leds"]}
    if not leds["real"]["usable"]:
        assert "GPIO" in leds["real"]["why"] or "RPi" in leds["real"]["why"]
    assert any(r["usable"] for r in out["tflite"])


def test_configured_synth_port_is_probed(tmp_path):
    master, slave = os.openpty()
    try:
        cfg = tmp_path / "box.toml"
        cfg.write_text(f'[synth]\nport = "{os.ttyname(slave)}"\n')
        synth = {r["backend"]: r for r in check("--config", str(cfg))["synth"]}
        assert synth["real"]["usable"] is True, synth["real"]["why"]
        cfg.write_text('[synth]\nport = "/dev/no-such-synth"\n')
        synth = {r["backend"]: r for r in check("--config", str(cfg))["synth"]}
        assert synth["real"]["usable"] is False and "/dev/no-such-synth" in synth["real"]["why"]
    finally:
        os.close(master)
        os.close(slave)


def test_display_row_lists_the_sdl_video_drivers():
    display = {r["backend"]: r for r in check()["display"]}
    # SDL_VIDEODRIVER=dummy: no screen here, but the row still says what this SDL can drive.
    assert display["real"]["usable"] is False
    assert "SDL video drivers:" in display["real"]["why"] and "dummy" in display["real"]["why"]


def test_configured_camera_node_is_probed(tmp_path):
    cfg = tmp_path / "box.toml"
    cfg.write_text('[camera]\ndevice = "/dev/no-such-camera"\n')
    cams = {r["backend"]: r for r in check("--config", str(cfg))["camera"]}
    assert cams["real:opencv"]["usable"] is False
    if "cv2 not installed" not in cams["real:opencv"]["why"]:
        assert "/dev/no-such-camera" in cams["real:opencv"]["why"]
