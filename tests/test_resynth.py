"""Additive resynthesis of the marimba model's note amplitudes (device/marimba/resynth.py)."""

from __future__ import annotations

import numpy as np
import pytest

from device.frontend import NoteParams, midi_to_hz, note_targets
from device.marimba.pipeline import MarimbaSpec
from device.marimba.resynth import GATE_AMPLITUDE, Resynth
from device.marimba.tones import PARTIALS

pytestmark = pytest.mark.device_venv

SPEC = MarimbaSpec()
RATE = 48000


def spectrum_at(x: np.ndarray, freqs, rate: int = RATE) -> np.ndarray:
    """Amplitude of the sine at each of ``freqs`` in x (projection on sin/cos: exact, no bin scalloping)."""
    t = np.arange(len(x)) / rate
    return np.array([2 / len(x) * np.hypot(x @ np.sin(2 * np.pi * f * t), x @ np.cos(2 * np.pi * f * t))
                     for f in freqs])


def test_a_constant_amplitude_on_one_note_sounds_its_fundamental_and_partials_only():
    k, amp = 7, 0.1  # C5: its 4x partial (2093 Hz) and 10x (5233 Hz) are no bar's fundamental
    r = Resynth.from_spec(SPEC, RATE)
    a = np.zeros((60, len(SPEC.notes)))
    a[:, k] = amp
    x = r.render(a)
    assert len(x) == 60 * RATE // 30
    steady = x[RATE // 2 :]  # after the envelope's glide in
    f0 = float(midi_to_hz(SPEC.notes[k]))
    partials = spectrum_at(steady, [f0 * ratio for ratio, _, _ in PARTIALS])
    np.testing.assert_allclose(partials, [amp * rel for _, rel, _ in PARTIALS], rtol=0.02)
    # Read back with the training targets' own front end: note k at amp, every other note silent.
    targets = note_targets(x, 60, NoteParams())[20:]
    np.testing.assert_allclose(targets[:, k], amp, rtol=0.03)
    others = np.delete(targets, k, axis=1)
    assert others.max() < amp / 50


def test_two_notes_read_back_as_the_amplitudes_that_drove_them():
    r = Resynth.from_spec(SPEC, RATE)
    a = np.zeros((45, 18))
    a[:, 3], a[:, 12] = 0.2, 0.03
    targets = note_targets(r.render(a), 45, NoteParams())[15:]
    np.testing.assert_allclose(targets[:, 3], 0.2, rtol=0.03)
    np.testing.assert_allclose(targets[:, 12], 0.03, rtol=0.05)


def test_phase_carries_over_block_edges_exactly():
    # Block by block must equal one continuous oscillator bank: no restart, no jump at an edge.
    k, amp = 0, 0.25
    r = Resynth(SPEC.notes, RATE, 30.0, smoothing_s=0.005)
    a = np.zeros((30, 18))
    a[:, k] = amp
    x = r.render(a).astype(np.float64)
    n = np.arange(len(x))
    f0 = float(midi_to_hz(SPEC.notes[k]))
    ideal = sum(amp * rel * np.sin(2 * np.pi * f0 * ratio * n / RATE) for ratio, rel, _ in PARTIALS)
    settled = slice(RATE // 10, None)  # 20 time constants in: the envelope is at amp
    np.testing.assert_allclose(x[settled], ideal[settled], atol=1e-5)


def test_a_sudden_note_glides_in_without_a_click_at_the_block_edge():
    r = Resynth(SPEC.notes, RATE, 30.0)
    a = np.zeros((4, 18))
    a[2:, 5] = 0.3  # switched on between block 1 and block 2
    x = r.render(a).astype(np.float64)
    steps = np.abs(np.diff(x))
    edge = 2 * 1600
    # The largest sample-to-sample step anywhere is the steady note's steepest slope (each
    # partial's 2*pi*f/rate * amplitude, summed), and the edge itself is no larger than the
    # steps after it: the envelope ramps, it doesn't jump.
    f0 = float(midi_to_hz(SPEC.notes[5]))
    slope = sum(2 * np.pi * f0 * ratio / RATE * 0.3 * rel for ratio, rel, _ in PARTIALS)
    assert steps.max() <= slope
    assert steps[edge - 1] <= steps[edge : edge + 50].max()


def test_silence_in_is_silence_out_and_a_note_dies_away_to_exact_zero():
    r = Resynth.from_spec(SPEC, RATE)
    assert not r.render(np.zeros((10, 18))).any()
    a = np.zeros((40, 18))
    a[:5, 9] = 0.2
    x = r.render(a)
    assert np.abs(x[: 5 * 1600]).max() > 0.1
    assert not x[-1600:].any()  # the envelope reached zero, no endless -120 dB hum
    below_gate = np.full((5, 18), GATE_AMPLITUDE / 2)
    assert not Resynth.from_spec(SPEC, RATE).render(below_gate).any()


def test_the_same_input_gives_the_same_samples():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.1, (20, 18)) * (rng.random((20, 18)) < 0.2)
    one, two = Resynth.from_spec(SPEC, RATE), Resynth.from_spec(SPEC, RATE)
    np.testing.assert_array_equal(one.render(a), two.render(a))


def test_blocks_keep_pace_with_a_fractional_frame_rate():
    r = Resynth(SPEC.notes, 44100, 29.97)
    sizes = [len(r.step(np.zeros(18))) for _ in range(300)]
    assert set(sizes) <= {1471, 1472} and sum(sizes) == round(300 * 44100 / 29.97)


def test_levels_go_through_the_models_target_transform():
    r = Resynth.from_spec(SPEC, RATE)
    levels = np.zeros(18, np.float32)
    levels[4] = 0.8
    x = np.concatenate([r.step_levels(levels) for _ in range(30)])
    amp = float(SPEC.target.inverse(np.float32(0.8)))
    assert note_targets(x, 30, NoteParams())[-1, 4] == pytest.approx(amp, rel=0.03)
    with pytest.raises(ValueError, match="expected 18"):
        r.step(np.zeros(5))


def test_a_frame_after_dropped_ones_fills_their_time_in_phase():
    """The box handled every other frame: each block covers two frame periods, so the card never runs dry,
    and the waveform is the same continuous oscillator as if every frame had come."""
    k, amp = 3, 0.25
    every = Resynth(SPEC.notes, RATE, 30.0, smoothing_s=0.005)
    halves = Resynth(SPEC.notes, RATE, 30.0, smoothing_s=0.005)
    a = np.zeros(18)
    a[k] = amp
    full = np.concatenate([every.step(a) for _ in range(30)])
    skipped = np.concatenate([halves.step(a, frames=2) for _ in range(15)])
    assert len(skipped) == len(full) == RATE and halves.blocks == every.blocks == 30
    np.testing.assert_allclose(skipped[RATE // 10:], full[RATE // 10:], atol=1e-4)
    assert len(Resynth(SPEC.notes, RATE, 30.0).step(a, frames=100)) == 4 * RATE // 30  # a stall: capped
