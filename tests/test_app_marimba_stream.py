"""The marimba worker on a live camera that stalls, and at the end of a stream: no note is left open."""

from __future__ import annotations

import time

import numpy as np
import pytest

from device.config import config_from_dict
from device.hardware.base import Camera, Frame
from device.hardware.synth import RecordingSynth
from device.marimba.pipeline import MarimbaPipeline, MarimbaSpec
from device.runtime.app import App, Devices

pytestmark = pytest.mark.device_venv

SPEC = MarimbaSpec()


class OneStrike:
    """A model that sees one strike of the fifth bar in its 5th-7th windows."""

    input_shape = SPEC.input_shape

    def __init__(self):
        self.k = 0

    def predict(self, x):
        y = np.zeros(len(SPEC.notes), np.float32)
        y[4] = {4: 0.3, 5: 0.9, 6: 0.7}.get(self.k, 0.0)
        self.k += 1
        return y


class StallingCamera(Camera):
    """A live camera at 30 fps whose frames stop for ``stall_s`` after frame 9 (a loose cable), then end."""

    fps = 30.0
    plays_out = True

    def __init__(self, stall_s: float, frames: int = 30):
        self.i, self.frames, self.stall_s, self.stall_until = 0, frames, stall_s, None

    def start(self):
        pass

    def read(self, timeout=None):
        now = time.monotonic()
        if self.stall_until is not None and now < self.stall_until:
            time.sleep(timeout or 0)
            return None
        if self.i == 9 and self.stall_until is None and self.stall_s:
            self.stall_until = now + self.stall_s
        if self.i >= self.frames:
            return None
        time.sleep(1 / self.fps)
        frame = Frame(np.full((96, 160), 100, np.uint8), self.i, time.monotonic())
        self.i += 1
        return frame

    @property
    def is_finished(self):
        return self.i >= self.frames

    def close(self):
        pass


def _run(tmp_path, camera):
    cfg = config_from_dict({"app": {"status_file": str(tmp_path / "s.json"), "status_interval_s": 0.2,
                                    "modes": ["marimba"]}}, tmp_path / "box.toml")
    synth = RecordingSynth()
    app = App(cfg, Devices(camera=camera, synth=synth), marimba=MarimbaPipeline(OneStrike(), spec=SPEC))
    app.run(seconds=10)
    return [(t, m.type) for t, m in synth.messages if m.type in ("note_on", "note_off")]


def test_a_note_ends_on_time_while_the_camera_stalls(tmp_path):
    notes = _run(tmp_path, StallingCamera(stall_s=3.0))
    on = next(t for t, kind in notes if kind == "note_on")
    off = next(t for t, kind in notes if kind == "note_off")
    assert off - on < 1.0, notes  # hold_s and a read timeout, not the 3 s stall


def test_the_last_note_of_a_stream_is_ended(tmp_path):
    """A video that ends right after a strike: its NoteOff is an event too (scores and the screen see it)."""
    notes = _run(tmp_path, StallingCamera(stall_s=0.0, frames=9))
    assert [kind for _, kind in notes] == ["note_on", "note_off"]


def test_frames_far_apart_in_time_make_no_window_together():
    """A camera that stalls keeps numbering its frames on: the time between them shows the gap."""
    pipe = MarimbaPipeline(OneStrike(), spec=SPEC)
    for i, t in enumerate([0.0, 1 / 30, 2 / 30, 3 / 30, 2.0, 2 + 1 / 30]):
        pipe.step(Frame(np.full((96, 160), 100, np.uint8), i, t))
    assert pipe.gaps == 1 and pipe.windows == 2  # frames 0-2, 1-3; then 4-5 wait for a third
