"""bench/resynth.py: the spectrum scores and the frame -> audio bookkeeping (pure parts)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.resynth import FLOOR, frame_to_audio, spectrum_scores


def test_identical_spectra_correlate_fully_at_zero_distance_and_silence_is_left_out():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.2, (30, 18))
    a[10:20] = 0.0  # ten silent windows on both sides
    corr, lsd = spectrum_scores(a, a.copy())
    assert corr == pytest.approx(1.0) and len(lsd) == 20 and np.allclose(lsd, 0.0)


def test_a_uniform_6db_error_is_a_6db_distance_and_a_lagged_copy_correlates_less():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.01, 0.2, (40, 18))
    _, lsd = spectrum_scores(a, a / 2)
    assert np.allclose(lsd, 20 * np.log10(2))
    corr, _ = spectrum_scores(a[1:], a[:-1])
    assert corr < 0.5
    # Below the floor counts as the floor: a -80 dB vs -100 dB difference is no distance.
    _, lsd = spectrum_scores(np.full((2, 18), FLOOR / 10), np.full((2, 18), FLOOR / 100))
    assert len(lsd) == 0


def test_frame_to_audio_pairs_each_write_with_the_take_of_its_first_sample():
    writes = [(10.0, 0), (10.033, 1600), (10.066, 3200)]
    # The card takes 512 samples at a time; the block starting at 3200 was dropped before it played.
    takes = [(10.05, 0, 512), (10.06, 512, 512), (10.07, 1024, 512), (10.08, 1536, 512), (10.1, 3712, 512)]
    lat = frame_to_audio(writes, takes)
    assert lat == pytest.approx([0.05, 10.08 - 10.033])
