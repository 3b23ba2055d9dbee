"""Sound and marimba on one box: who owns the screen."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import CameraConfig, config_from_dict
from device.hardware.camera import SimCamera
from device.hardware.mic import PlaylistMic
from device.marimba.pipeline import MarimbaPipeline
from device.runtime.app import App, Devices
from test_app import ToneModel, beeps
from test_app_audio_out import ScriptedModel

pytestmark = pytest.mark.device_venv


def test_a_heard_class_owns_the_screen_and_the_camera_view_the_rest(tmp_path):
    """Both modes on: the camera's view is the idle screen; the sound screen shows only while a class is
    heard. A "listening" frame every sound hop used to alternate with the camera's view."""
    cfg = config_from_dict({"app": {"modes": ["sound", "marimba"], "status_file": str(tmp_path / "status.json")},
                            "sound": {"gate_while_synth": False}}, tmp_path / "box.toml")
    frames = 150  # 5 s of camera at 30 fps, paced like the mic
    camera = SimCamera(np.zeros((frames, 96, 160), np.uint8), CameraConfig(realtime=True))
    marimba = MarimbaPipeline(ScriptedModel(np.zeros((frames, 18), np.float32)))
    mic = PlaylistMic(playlist=[beeps(5.0)], realtime=True, chunk_size=800)
    app = App(cfg, Devices(mic=mic, camera=camera), sound_model=ToneModel(), marimba=marimba)
    shown = []
    app._scene_slot.put = lambda scene: shown.append((scene.mode, scene.label))
    assert app.run(seconds=20) == 0
    modes = {mode for mode, _ in shown}
    assert modes == {"sound", "marimba"}, modes
    assert ("sound", None) not in shown  # never "listening" over the camera's view
    assert "beep" in {label for mode, label in shown if mode == "sound"}  # a heard class did take the screen
