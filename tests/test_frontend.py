"""The shared front end: librosa agreement, batch == streaming, note amplitudes."""

import numpy as np
import pytest

from device.frontend import (
    LogMelParams,
    NoteParams,
    StreamingLogMel,
    dbfs,
    iter_windows,
    log_mel,
    mel_power,
    midi_to_hz,
    note_amplitudes,
    sliding_windows,
    window_features,
)

P = LogMelParams()


def _noisy_chirp(seconds=3.0, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def test_matches_librosa_melspectrogram():
    librosa = pytest.importorskip("librosa")
    x = _noisy_chirp()
    ref = librosa.feature.melspectrogram(
        y=x, sr=P.sample_rate, n_fft=P.n_fft, hop_length=P.hop_length, win_length=P.n_fft,
        window="hann", center=False, power=2.0, n_mels=P.n_mels, fmin=P.fmin, fmax=P.fmax,
    ).T
    ours = mel_power(x, P)
    assert ours.shape == ref.shape
    rel = np.abs(ours - ref) / (np.abs(ref) + 1e-3 * ref.max())
    assert rel.max() <= 1e-3
    log_ref = np.log(ref + P.log_floor)
    assert np.max(np.abs(log_mel(x, P) - log_ref)) <= 1e-3 * np.ptp(log_ref)


@pytest.mark.parametrize("chunk", [1, 257, 1024, 4000, 16000, 7777])
def test_streaming_equals_batch(chunk):
    x = _noisy_chirp(seconds=2.6)
    s = StreamingLogMel(P)
    got = []
    for i in range(0, len(x), chunk):
        got += s.push(x[i : i + chunk])
    batch = sliding_windows(x, P)
    assert len(got) == len(batch) == 1 + (len(x) - P.samples_per_window) // P.samples_per_hop
    for (end, win), (start, ref) in zip(got, batch):
        assert end == int(start * P.sample_rate) + P.samples_per_window
        assert win.shape == P.input_shape
        assert np.max(np.abs(win - ref)) <= 1e-5


@pytest.mark.parametrize("chunk", [1, 257, 4000, 16000, 7777, 10**6])
def test_iter_windows_equals_sliding_windows_however_cut(chunk):
    x = _noisy_chirp(seconds=2.6)
    batch = sliding_windows(x, P)
    got = list(iter_windows((x[i : i + chunk] for i in range(0, len(x), chunk)), P))
    assert len(got) == len(batch)
    n = P.samples_per_window
    for (start, window, feats), (ref_start, ref) in zip(got, batch):
        s = int(round(start * P.sample_rate))
        assert start == ref_start
        assert np.array_equal(window, x[s : s + n].astype(np.float64))
        assert np.array_equal(feats, ref)  # the same computation, not merely close


def test_iter_windows_every_nth_and_short_input():
    x = _noisy_chirp(seconds=3.0)
    every = list(iter_windows([x], P))
    third = list(iter_windows([x[:5000], x[5000:]], P, every=3))
    assert [s for s, _, _ in third] == [s for s, _, _ in every[::3]]
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(third, every[::3]))
    # Shorter than a window: one zero-padded window, as sliding_windows always gave.
    (start, window, feats), = iter_windows([x[:3000], x[3000:4000]], P)
    assert start == 0.0 and len(window) == 4000
    assert np.array_equal(feats, window_features(x[:4000], P))


def test_streaming_computes_only_new_frames(monkeypatch):
    import device.frontend as fe

    calls = []
    real = fe._logmel_from_frames
    monkeypatch.setattr(fe, "_logmel_from_frames", lambda fr, p: calls.append(len(fr)) or real(fr, p))
    s = StreamingLogMel(P)
    x = _noisy_chirp(seconds=3.0)
    s.push(x[: P.samples_per_window])
    for i in range(P.samples_per_window, len(x), P.samples_per_hop):
        s.push(x[i : i + P.samples_per_hop])
    # After the first window each 0.25 s hop adds exactly frames_per_hop new STFT frames.
    assert calls[0] == P.frames_per_window
    assert all(c == P.frames_per_hop for c in calls[1:])


def test_int16_input_and_silence_level():
    x = _noisy_chirp(1.0)
    as_int = (x * 32767).astype(np.int16)
    assert np.max(np.abs(window_features(as_int) - window_features(x))) < 1e-2
    assert dbfs(np.zeros(1600)) < -150
    assert abs(dbfs(np.full(1600, 0.5)) - 20 * np.log10(0.5)) < 1e-6
    assert dbfs(0.001 * np.ones(100)) < P.silence_dbfs


def test_params_roundtrip_and_validation():
    assert LogMelParams.from_dict(P.to_dict()) == P
    with pytest.raises(ValueError, match="unknown"):
        LogMelParams.from_dict({**P.to_dict(), "n_melz": 3})
    with pytest.raises(ValueError):
        LogMelParams(hop_length=333)
    n = NoteParams()
    assert NoteParams.from_dict(n.to_dict()) == n


def test_note_amplitude_of_pure_tone():
    n = NoteParams()
    t = np.arange(n.segment_samples) / n.sample_rate
    f = midi_to_hz(n.notes[5])
    amps = note_amplitudes(0.5 * np.sin(2 * np.pi * f * t), n)
    assert np.argmax(amps) == 5
    assert abs(amps[5] - 0.5) < 0.05
    others = np.delete(amps, 5)
    assert 20 * np.log10(amps[5] / others.max()) >= 20
