"""The validation take chooses the peak picker's constants: the grid must reach high enough for an
instrument whose model outputs are high away from strikes too (fine-tuning on a look never trained on)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mir_eval")

from device.marimba.pipeline import MarimbaSpec  # noqa: E402
from training.train_marimba import tune_peaks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _take(rng: np.random.Generator, spec: MarimbaSpec, seconds: float = 12.0, fps: float = 30.0,
          strike: float = 0.95, passing: float | None = 0.6, manifest: dict | None = None):
    """Levels with real strikes peaking at ``strike`` and mallet-passing bumps peaking at ``passing``, on quiet
    ground; ``manifest`` says which look the take is (training.train_marimba.look_of)."""
    times = np.arange(int(seconds * fps)) / fps
    levels = np.full((len(times), len(spec.notes)), 0.02, np.float32)
    reference = []

    def bump(i: int, j: int, height: float) -> None:
        levels[i, j] = max(levels[i, j], height)
        for k, decay in ((1, 0.6), (2, 0.35), (3, 0.2)):  # a strike rings on for a few windows
            if i + k < len(times):
                levels[i + k, j] = max(levels[i + k, j], height * decay)

    for i in range(15, len(times) - 10, 23):
        j = int(rng.integers(len(spec.notes)))
        bump(i, j, strike)
        reference.append((float(times[i]), int(spec.notes[j]), 90))
    for i in range(26, len(times) - 10, 23) if passing else ():  # between the strikes, never at one
        bump(i, int(rng.integers(len(spec.notes))), passing)
    return levels, SimpleNamespace(name="val", times=times, reference=reference,
                                   rec=SimpleNamespace(manifest=manifest or {}))


def test_the_validation_take_can_choose_a_threshold_above_the_own_looks_range():
    spec = MarimbaSpec.from_metadata(json.loads((ROOT / "models" / "marimba.json").read_text()))
    levels, prep = _take(np.random.default_rng(0), spec)
    peaks, info = tune_peaks([levels], [prep], spec)
    assert peaks.threshold > 0.6  # the 0.6 bumps are not strikes
    assert info["validation_f1"] == pytest.approx(1.0)


def test_joint_tuning_weighs_the_users_take_and_the_own_look_alike():
    """train_marimba --peaks-on val+replay: the user's take wants a threshold above its 0.6 bumps, the
    project's own look (strikes peaking at 0.55 there) one below 0.55. Alone, the user's take picks the high
    one and the own look gets nothing; the mean of the two looks' F1 picks one that keeps the own look."""
    spec = MarimbaSpec.from_metadata(json.loads((ROOT / "models" / "marimba.json").read_text()))
    user = _take(np.random.default_rng(0), spec)
    own = _take(np.random.default_rng(1), spec, strike=0.55, passing=None, manifest={"synthetic": {"seed": 1}})
    alone, _ = tune_peaks([user[0]], [user[1]], spec)
    joint, info = tune_peaks([user[0], own[0]], [user[1], own[1]], spec, by_look=True)
    assert alone.threshold > 0.6 and joint.threshold < 0.55
    assert info["objective"] == "mean of each look's F1" and 0.75 < info["validation_f1"] < 1.0
