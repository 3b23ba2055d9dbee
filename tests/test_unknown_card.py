"""`unknown` end to end on the output side: no class colour, no sound, a "teach me" card on screen."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
pygame = pytest.importorskip("pygame")

from device.config import config_from_dict  # noqa: E402
from device.runtime.responder import LED_OFF, Midi, Responder  # noqa: E402
from device.screen.palette import CLASS_COLOURS  # noqa: E402
from device.screen.pictures import rgb255, tint  # noqa: E402
from device.screen.render import TEACH_ME, Renderer, surface_to_array  # noqa: E402
from device.sound.labels import UNKNOWN  # noqa: E402
from device.sound.pipeline import ClassDetected  # noqa: E402


class Heard:
    """What a SoundPipeline exposes to the screen, deciding ``current``."""

    def __init__(self, current):
        self.current = current
        self.probabilities = {"dog_bark": 0.4, "siren": 0.3}
        self.spectrogram = np.full((50, 64), -8.0, np.float32)
        self.last = type("Hop", (), {"level_dbfs": -18.0, "t": 2.0})()


@pytest.fixture
def responder(tmp_path):
    # Even a class mapped to a note must stay silent when the decision is unknown.
    cfg = config_from_dict({"app": {"assets_dir": str(tmp_path)},
                            "mapping": {UNKNOWN: {"note": 60}, "dog_bark": {"note": 72}}}, tmp_path / "box.toml")
    return Responder(cfg, labels=("dog_bark", "siren"))


def test_unknown_keeps_the_led_neutral_and_the_synth_silent(responder):
    actions = responder.on_event(ClassDetected(UNKNOWN, 0.9, t=1.0))
    assert actions == [LED_OFF]
    assert not any(isinstance(a, Midi) for a in actions) and responder.due() == []
    assert not responder.is_gated(1.1)  # nothing of ours is sounding


def test_unknown_shows_the_teach_me_card_not_a_class_picture(responder):
    scene = responder.sound_scene(Heard(UNKNOWN)).scene
    assert scene.label == UNKNOWN and scene.picture is None
    r = Renderer()
    frame = r.layout(scene)["frame"]
    teach = surface_to_array(r.render(scene))
    listening = surface_to_array(r.render(responder.sound_scene(Heard(None)).scene))
    dog = surface_to_array(r.render(responder.sound_scene(Heard("dog_bark")).scene))
    corner = (frame.top + 8, frame.left + 30)  # inside the rounded frame, away from text
    assert tuple(teach[corner]) == tint(TEACH_ME, 0.6)
    assert tuple(teach[corner]) not in {rgb255(c) for c in CLASS_COLOURS.values()}
    assert not np.array_equal(teach, listening) and not np.array_equal(teach, dog)
