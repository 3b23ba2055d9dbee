"""Refining an automatic calibration with the marimba model itself (device.marimba.calibrate_refine)."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.errors import SaySeeError
from device.marimba.calibrate_cli import recording_onsets
from device.marimba.calibrate_refine import Budget, calibrate_with_model, pose, pretrained_model, refine_with_model
from device.marimba.pipeline import MarimbaSpec
from device.marimba.rectify import Calibration
from training.datasets.marimba_synth import SynthConfig, render, true_corners

MODEL = PROJECT_ROOT / "models" / "marimba.tflite"
CFG = SynthConfig(seconds=8, max_offset=0.04, scale_range=(0.82, 0.9), max_rotation_deg=4.0)
SMALL = Budget(grid_strikes=10, pose_strikes=16, corner_strikes=24, priors=False, pose_rounds=3, corner_rounds=2)


@pytest.fixture(scope="module")
def model():
    m = pretrained_model(MODEL)
    if m is None:
        pytest.skip(f"{MODEL} missing")
    return m


@pytest.fixture(scope="module")
def video():
    return render(31, CFG)


def _err(cal: Calibration, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(cal.corners_px() - truth, axis=1)


def test_a_box_off_by_a_bar_and_a_half_comes_back_to_the_bars(model, video):
    v = video
    spec = MarimbaSpec.from_metadata(model.metadata)
    truth = true_corners(v.camera, CFG)
    # 1.5 bar pitches along the row and 4% smaller: the model reads bars along the row (where along a bar
    # the mallet lands hardly changes what it hears, so across the row the initial estimate is kept).
    off = pose(truth, 1.5, 0.0, 0.96)
    assert 9.0 < _err(Calibration.from_pixels(off, (96, 160)), truth).max() < 16.0
    initial = Calibration.from_pixels(off, (96, 160), source="auto")
    onsets = recording_onsets(v.audio, v.frame_times, v.notes)
    ref = refine_with_model(model, spec, v.frames, v.frame_times, onsets, initial, budget=SMALL, detail=True)
    err = _err(ref.calibration, truth)
    assert err.max() < 4.0, (err, ref.stages)
    assert ref.score > ref.initial_score + 1.0  # the model hears the strikes through the refined box
    assert ref.calibration.source == "auto"
    again = refine_with_model(model, spec, v.frames, v.frame_times, onsets, initial, budget=SMALL)
    assert again == ref.calibration  # deterministic


def test_a_recording_without_strikes_is_one_line(model, video):
    v = video
    spec = MarimbaSpec.from_metadata(model.metadata)
    initial = Calibration.from_pixels(true_corners(v.camera, CFG), (96, 160), source="auto")
    with pytest.raises(SaySeeError) as e:
        refine_with_model(model, spec, v.frames, v.frame_times, [], initial, budget=SMALL, what="rec9")
    assert str(e.value).startswith("rec9: 0 notes heard") and "\n" not in str(e.value)
    with pytest.raises(SaySeeError, match=r"^rec9: only 0 bars were struck"):
        calibrate_with_model(v.frames, v.frame_times, [], model=model, what="rec9", budget=SMALL)
