"""Scenes for display tests (tests/test_display.py and tests/contracts/test_display.py)."""

from __future__ import annotations

import numpy as np

from device.hardware.base import Scene
from device.screen.pictures import DEFAULT_COLOURS, URBANSOUND_CLASSES

MARIMBA_NOTES = (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84, 86, 88, 89)


def spectrogram(seed: int = 0, frames: int = 200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(-6.0, 2.0, size=(frames, 64))).astype(np.float32)


def probs(top: str = "dog_bark", p_top: float = 0.6) -> dict[str, float]:
    rest = (1.0 - p_top) / (len(URBANSOUND_CLASSES) - 1)
    out = {c: rest for c in URBANSOUND_CLASSES}
    out[top] = p_top
    return out


def sound_scene(pictures, **kw) -> Scene:
    """A heard dog bark with its picture (``pictures`` from ``make_class_pictures``)."""
    base = dict(
        mode="sound",
        label="dog_bark",
        picture=str(pictures["dog_bark"]),
        colour=DEFAULT_COLOURS["dog_bark"],
        probabilities=probs(),
        spectrogram=spectrogram(),
        status="test status",
        timestamp=0.0,
    )
    base.update(kw)
    return Scene(**base)


def marimba_scene(**kw) -> Scene:
    """A grey camera view with note 67 struck."""
    cam = np.full((120, 180), 50, np.uint8)
    roll = np.zeros((32, len(MARIMBA_NOTES)))
    roll[-4:, 4] = 1.0
    base = dict(
        mode="marimba",
        camera=cam,
        active_notes={67: 1.0},
        piano_roll=roll,
        note_colours={n: (0.2, 0.4, 0.9) for n in MARIMBA_NOTES} | {67: (1.0, 0.0, 0.6)},
        status="marimba",
        timestamp=0.0,
    )
    base.update(kw)
    return Scene(**base)
