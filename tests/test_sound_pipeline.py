"""The sound decision logic through the real streaming front end, with a transparent predictor."""

import numpy as np
import pytest

from device.frontend import LogMelParams, mel_filterbank
from device.sound.pipeline import ClassCleared, ClassDetected, SoundPipeline, SoundSettings

pytestmark = pytest.mark.device_venv

P = LogMelParams()
SR = P.sample_rate
LABELS = ["low", "high"]
# Mel bands holding a 400 Hz and a 3 kHz tone.
_FB = mel_filterbank(P.sample_rate, P.n_fft, P.n_mels, P.fmin, P.fmax)
_BIN = lambda hz: int(round(hz * P.n_fft / SR))  # noqa: E731
BAND = {"low": int(np.argmax(_FB[:, _BIN(400)])), "high": int(np.argmax(_FB[:, _BIN(3000)]))}


def band_predict(feats):
    """Probabilities from the energy in each class's mel band: the 'model' is the spectrum itself."""
    e = np.array([feats[:, BAND[k], 0].mean() for k in LABELS])
    z = np.exp(2.0 * (e - e.max()))
    return z / z.sum()


def tone(hz, seconds, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)


def silence(seconds):
    return np.zeros(int(seconds * SR), dtype=np.int16)


def run(pipe, audio, chunk=1600, **step_kw):
    events, base = [], pipe.frontend.samples_seen
    for i in range(0, len(audio), chunk):
        events += pipe.step(audio[i : i + chunk], base + i, **step_kw)
    return events


def test_detects_within_latency_and_clears_on_silence():
    audio = np.concatenate([silence(2.0), tone(400, 1.5), silence(1.5), tone(3000, 1.5), silence(1.5)])
    events = run(SoundPipeline(band_predict, LABELS, P), audio)
    detected = [e for e in events if isinstance(e, ClassDetected)]
    assert [e.label for e in detected] == ["low", "high"]
    assert 0 < detected[0].t - 2.0 <= 0.75
    assert 0 < detected[1].t - 5.0 <= 0.75
    cleared = [e for e in events if isinstance(e, ClassCleared)]
    assert [c.reason for c in cleared] == ["silence", "silence"]


def test_quiet_room_hears_nothing():
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(5 * SR) * 0.002 * 32767).astype(np.int16)  # about -54 dBFS
    pipe = SoundPipeline(band_predict, LABELS, P)
    assert run(pipe, hiss) == []
    assert pipe.counters["inferences"] == 0 and pipe.counters["silent"] > 0


def test_hysteresis_holds_through_wobble():
    wobble = iter([0.8, 0.45, 0.5, 0.4, 0.55, 0.42] * 20)
    predict = lambda feats: np.array([p := next(wobble), 1 - p])  # noqa: E731
    settings = SoundSettings(threshold_on=0.6, threshold_off=0.3, smoothing=0.7)
    events = run(SoundPipeline(predict, LABELS, P, settings), tone(400, 4.0))
    assert [type(e).__name__ for e in events] == ["ClassDetected"]


def test_synth_gate_suppresses_detection():
    audio = np.concatenate([silence(1.0), tone(400, 2.0)])
    pipe = SoundPipeline(band_predict, LABELS, P)
    assert run(pipe, audio, gated=True) == []
    assert pipe.counters["gated"] > 0 and pipe.counters["inferences"] == 0


def test_stale_audio_is_not_classified_as_now():
    now = [100.0]
    pipe = SoundPipeline(band_predict, LABELS, P, SoundSettings(max_latency_s=0.5), clock=lambda: now[0])
    audio = np.concatenate([silence(1.0), tone(400, 2.0)])
    # Captured two seconds before the pipeline got to it: skipped, and counted.
    assert run(pipe, audio, captured_at=98.0) == []
    assert pipe.counters["stale"] > 0 and pipe.counters["inferences"] == 0
    fresh = run(pipe, tone(400, 1.0), captured_at=99.9)
    assert any(isinstance(e, ClassDetected) for e in fresh)


@pytest.mark.parametrize("chunk", [160, 1600, 4001])
def test_same_decisions_for_any_chunk_size(chunk):
    audio = np.concatenate([silence(1.3), tone(3000, 1.2), silence(1.0)])
    ref = run(SoundPipeline(band_predict, LABELS, P), audio, chunk=1600)
    got = run(SoundPipeline(band_predict, LABELS, P), audio, chunk=chunk)
    assert [(type(e), e.label, e.t) for e in got] == [(type(e), e.label, e.t) for e in ref]
