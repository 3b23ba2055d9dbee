"""Augmentations do what they say: measured on signals whose answer is known."""

import numpy as np
import pytest

pytest.importorskip("soxr")

from training.augment import (  # noqa: E402
    augment_waveform,
    fit_length,
    freq_mask,
    gain,
    mic_band,
    mix_noise,
    pitch_shift,
    reverb,
    room_realism,
    shift,
    spec_augment,
    time_mask,
    time_shift,
    time_stretch,
)

SR = 16000


def _sine(freq, seconds=1.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _burst(at=0.3, seconds=1.0, length=0.05):
    x = np.zeros(int(seconds * SR), dtype=np.float32)
    x[int(at * SR) : int((at + length) * SR)] = 0.5
    return x


def _centre(x):
    e = np.square(x, dtype=np.float64)
    return float(np.sum(e * np.arange(len(x))) / np.sum(e)) / SR


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _peak_hz(x):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * SR / len(x)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_time_shift_moves_energy_without_wrapping():
    x = _burst(at=0.3)
    later = time_shift(x, rng(), 0.2)
    assert _centre(later) == pytest.approx(_centre(x) + 0.2, abs=1e-3) and len(later) == len(x)
    assert np.sum(later**2) == pytest.approx(np.sum(x**2))
    earlier = time_shift(x, rng(), -0.4)  # the burst would leave the start: it is gone, not wrapped to the end
    assert np.all(earlier == 0.0)
    assert np.array_equal(shift(x, 0), x) and np.all(shift(x, 10 * len(x)) == 0)
    drawn = [_centre(time_shift(x, rng(s), (-0.1, 0.1))) - _centre(x) for s in range(20)]
    assert max(np.abs(drawn)) <= 0.1 + 1e-4 and np.std(drawn) > 0.02


def test_gain_scales_rms():
    x = _sine(300)
    assert _rms(gain(x, rng(), 6.0)) == pytest.approx(_rms(x) * 10 ** (6 / 20), rel=1e-5)
    assert _rms(gain(x, rng(), -20.0)) == pytest.approx(_rms(x) / 10, rel=1e-5)


@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_mix_noise_hits_the_snr(snr):
    x = _sine(440)
    y = mix_noise(x, rng(), snr)
    assert 20 * np.log10(_rms(x) / _rms(y - x)) == pytest.approx(snr, abs=0.05)


def test_mix_noise_uses_a_given_recording_and_leaves_silence_alone():
    x = _sine(440)
    hum = _sine(60, seconds=0.3, amp=1.0)  # shorter than x: looped
    y = mix_noise(x, rng(), 20.0, noise=hum)
    added = y - x
    assert _peak_hz(added) == pytest.approx(60, abs=2)
    assert 20 * np.log10(_rms(x) / _rms(added)) == pytest.approx(20.0, abs=0.2)
    silent = np.zeros(SR, dtype=np.float32)
    assert np.array_equal(mix_noise(silent, rng(), 10.0), silent)


@pytest.mark.parametrize("semitones", [12.0, -5.0])
def test_pitch_shift_changes_pitch_not_length(semitones):
    x = _sine(500)
    y = pitch_shift(x, rng(), semitones, SR)
    assert len(y) == len(x) and y.dtype == np.float32
    assert _peak_hz(y[2000:-2000]) == pytest.approx(500 * 2 ** (semitones / 12), rel=0.02)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_length_by_the_rate_and_keeps_pitch(rate):
    x = _sine(700)
    y = time_stretch(x, rng(), rate)
    assert len(y) == pytest.approx(len(x) / rate, abs=1)
    assert _peak_hz(y[1000:-1000]) == pytest.approx(700, abs=5)
    burst = _burst(at=0.5, seconds=1.0, length=0.1)
    assert _centre(time_stretch(burst, rng(), rate)) == pytest.approx(0.55 / rate, abs=0.01)


def test_masks_set_whole_bands_and_frames():
    feats = rng(1).uniform(1.0, 2.0, size=(97, 64)).astype(np.float32)
    original = feats.copy()
    f = freq_mask(feats, rng(2), max_width=8, count=1, fill=0.0)
    zero_cols = np.flatnonzero(np.all(f == 0.0, axis=0))
    assert 0 < len(zero_cols) <= 8 and np.all(np.diff(zero_cols) == 1)  # one contiguous band of mels
    keep = np.setdiff1d(np.arange(64), zero_cols)
    assert np.array_equal(f[:, keep], feats[:, keep])
    t = time_mask(feats, rng(3), max_width=10, count=1, fill=0.0)
    zero_rows = np.flatnonzero(np.all(t == 0.0, axis=1))
    assert 0 < len(zero_rows) <= 10 and np.all(np.diff(zero_rows) == 1)
    assert np.array_equal(feats, original)  # inputs are never modified


def test_spec_augment_fills_with_the_mean_and_keeps_shape():
    feats = rng(4).normal(-5.0, 2.0, size=(97, 64, 1)).astype(np.float32)
    out = spec_augment(feats, rng(5), time_masks=2, time_width=12, freq_masks=2, freq_width=8)
    assert out.shape == feats.shape and out.dtype == np.float32
    changed = out != feats
    assert changed.any()
    assert np.allclose(out[changed], np.mean(feats))
    assert np.array_equal(spec_augment(feats, rng(5)), spec_augment(feats, rng(5)))


def test_augment_waveform_strength_zero_is_identity_and_output_is_stable():
    x = _sine(440) + _burst()
    assert np.array_equal(augment_waveform(x, rng(), SR, strength=0.0), x)
    ys = [augment_waveform(x, rng(s), SR, strength=1.0) for s in range(8)]
    for y in ys:
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert sum(not np.allclose(y, x) for y in ys) == len(ys)
    assert np.array_equal(augment_waveform(x, rng(3), SR, strength=0.7), augment_waveform(x, rng(3), SR, strength=0.7))
    levels = [20 * np.log10(_rms(y) / _rms(x)) for y in ys]
    assert max(np.abs(levels)) < 16.0  # gain up to 12 dB plus what noise adds


def test_augment_waveform_rejects_a_strength_in_the_sample_rate_slot():
    with pytest.raises(TypeError, match="looks like a strength"):
        augment_waveform(_sine(440), rng(), 0.5)


def test_fit_length():
    x = np.arange(5, dtype=np.float32)
    assert np.array_equal(fit_length(x, 3), [0, 1, 2]) and np.array_equal(fit_length(x, 7), [0, 1, 2, 3, 4, 0, 0])


# ------------------------------------------------------------------ room realism


def _band_rms(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(np.sqrt(spec[(f >= lo) & (f < hi)].sum()))


def test_reverb_keeps_length_and_adds_a_decaying_tail_after_a_click():
    x = np.zeros(SR, np.float32)
    x[1000] = 1.0
    y = reverb(x, np.random.default_rng(0), SR, rt60=0.5, wet=0.5)
    assert len(y) == len(x) and y[1000] == pytest.approx(1.0, abs=0.05)
    early = np.sqrt(np.mean(y[1500:3000] ** 2))
    late = np.sqrt(np.mean(y[6000:7500] ** 2))
    assert early > 0 and late < early  # energy after the direct sound, decaying
    assert np.max(np.abs(y[:1000])) < 1e-6  # nothing before the sound (causal)


def test_mic_band_cuts_lows_and_highs_but_keeps_the_middle():
    t = np.arange(SR) / SR
    lows = np.sin(2 * np.pi * 40 * t).astype(np.float32)
    mid = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    highs = np.sin(2 * np.pi * 7800 * t).astype(np.float32)
    rng = lambda: np.random.default_rng(1)  # noqa: E731
    kw = dict(low_hz=300.0, high_hz=3000.0, tilt_db=0.0)
    keep_mid = _band_rms(mic_band(mid, rng(), SR, **kw), 900, 1100) / _band_rms(mid, 900, 1100)
    keep_low = _band_rms(mic_band(lows, rng(), SR, **kw), 30, 50) / _band_rms(lows, 30, 50)
    keep_high = _band_rms(mic_band(highs, rng(), SR, **kw), 7700, 7900) / _band_rms(highs, 7700, 7900)
    # 12 dB/octave edges: 40 Hz is ~3 octaves under 300 Hz, 7.8 kHz ~1.4 octaves over 3 kHz
    assert keep_mid > 0.9 and keep_low < 0.05 and keep_high < 0.2


def test_room_realism_adds_noise_at_the_asked_snr_and_leaves_silence_alone():
    x = _sine(1000, amp=0.3)
    y = room_realism(x, np.random.default_rng(2), SR, snr_db=10.0, p_reverb=0.0, p_mic=0.0, p_noise=1.0)
    noise = y - x
    snr = 20 * np.log10(np.sqrt(np.mean(x**2)) / np.sqrt(np.mean(noise**2)))
    assert snr == pytest.approx(10.0, abs=0.2)
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(room_realism(silent, np.random.default_rng(3), SR), silent)
