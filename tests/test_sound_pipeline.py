"""The sound decision logic through the real streaming front end, with a transparent predictor.

Driven by arrays, without threads: stream time is the sample index, so every
assertion about "when" is exact, not timed.
"""

import dataclasses

import numpy as np
import pytest

from device.config import SoundConfig, config_from_dict
from device.errors import ConfigError
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


# ------------------------------------------------------------ both designs

ONSET = SoundConfig(decision="onset")
WINDOW = SoundConfig(decision="window")
DESIGNS = pytest.mark.parametrize("settings", [ONSET, WINDOW], ids=["onset", "window"])


def sure_predict(feats):
    """A confident model: 0.99 for the class whose band holds more energy."""
    e = np.array([feats[:, BAND[k], 0].mean() for k in LABELS])
    return np.where(np.arange(len(LABELS)) == np.argmax(e), 0.99, 0.01)


def kinds(events):
    return [(type(e).__name__, e.label, getattr(e, "reason", None)) for e in events]


def test_sound_settings_are_the_sound_config_section():
    cfg = config_from_dict({"sound": {"decision": "window", "min_sound_s": 0.3, "clear_after_s": 1.0,
                                      "early_exclude": ["high"]}})
    assert SoundSettings is SoundConfig  # one source of every default
    pipe = SoundPipeline(band_predict, LABELS, P, cfg.sound)
    assert (pipe.onset, pipe.hop_s, pipe._clear_hops, pipe.min_sound_s) == (False, 0.25, 4, 0.3)
    # Keys left unset take the design's own values: "window" is the earlier design exactly.
    assert (SoundPipeline(band_predict, LABELS, P, WINDOW).hop_s, WINDOW.decision_min_sound_s) == (0.25, 0.15)
    assert (SoundPipeline(band_predict, LABELS, P, SoundConfig()).hop_s, ONSET.decision_min_sound_s) == (0.05, 0.1)


def test_min_sound_from_config_delays_the_decision():
    audio = np.concatenate([silence(2.0), tone(400, 1.5), silence(1.5)])
    short = run(SoundPipeline(band_predict, LABELS, P, dataclasses.replace(WINDOW, min_sound_s=0.15)), audio)
    longer = run(SoundPipeline(band_predict, LABELS, P, dataclasses.replace(WINDOW, min_sound_s=0.6)), audio)
    assert short[0].t - 2.0 < 0.6 <= longer[0].t - 2.0


def test_hop_that_splits_a_front_end_frame_is_one_config_error():
    with pytest.raises(ConfigError, match=r"\[sound\] hop_s = 0.033: expected a multiple of"):
        SoundPipeline(band_predict, LABELS, P, SoundConfig(hop_s=0.033))


@DESIGNS
def test_no_detection_in_silence_or_reverb_tail(settings):
    # A tone whose exponential reverb tail decays through the -45 dBFS gate, then a quiet room.
    rng = np.random.default_rng(1)
    t = np.arange(int(1.5 * SR)) / SR
    tail = 0.3 * np.exp(-t / 0.15) * np.sin(2 * np.pi * 400 * t)  # -45 dBFS after about 0.6 s
    hiss = rng.standard_normal(int(6.5 * SR)) * 0.002  # about -54 dBFS
    audio = hiss.copy()
    audio[int(2.0 * SR) : int(3.0 * SR)] += 0.3 * np.sin(2 * np.pi * 400 * np.arange(SR) / SR)
    audio[int(3.0 * SR) : int(4.5 * SR)] += tail
    pipe = SoundPipeline(sure_predict, LABELS, P, settings)
    events = run(pipe, (audio * 32767).astype(np.int16))
    assert kinds(events) == [("ClassDetected", "low", None), ("ClassCleared", "low", "silence")]
    # Cleared once the tail is under the gate for clear_after_s (plus one hop of rounding), never re-detected.
    assert events[1].t <= 3.0 + 0.6 + settings.clear_after_s + pipe.hop_s
    assert pipe.counters["silent"] > 0


def test_early_decision_within_two_hops_of_a_sure_onset():
    audio = np.concatenate([silence(2.0), tone(3000, 1.0), silence(1.0)])
    onset = run(SoundPipeline(sure_predict, LABELS, P, ONSET), audio)
    window = run(SoundPipeline(sure_predict, LABELS, P, WINDOW), audio)
    assert onset[0].label == "high" and onset[0].early
    assert 2.0 + ONSET.early_min_sound_s <= onset[0].t <= 2.0 + ONSET.early_min_sound_s + 2 * ONSET.decision_hop_s
    # The earlier design waits for min_sound_s and its 0.25 s hop grid.
    assert window[0].label == "high" and not window[0].early and window[0].t >= 2.0 + WINDOW.decision_min_sound_s
    assert onset[0].t < window[0].t


def test_a_corrected_early_decision_is_a_replacement():
    # Sure of "high" on the first sliver, then the filling window says "low": the early decision is corrected.
    calls = []

    def fickle(feats):
        calls.append(1)
        return np.array([0.02, 0.98]) if len(calls) == 1 else np.array([0.9, 0.1])

    events = run(SoundPipeline(fickle, LABELS, P, ONSET), np.concatenate([silence(2.0), tone(400, 1.0)]))
    assert kinds(events)[:3] == [("ClassDetected", "high", None), ("ClassCleared", "high", "replaced"),
                                 ("ClassDetected", "low", None)]
    assert events[0].early and not events[2].early
    assert events[2].t - events[0].t <= 0.25  # within the settle time: the bench counts it as a flicker


def scripted(rows):
    """A model that answers ``rows`` in turn (the last one again and again)."""
    calls = []

    def predict(feats):
        calls.append(1)
        return np.asarray(rows[min(len(calls), len(rows)) - 1], dtype=np.float32)

    return predict


def test_agreeing_windows_decide_early_without_one_sure_window():
    # Never sure (0.7 < early_threshold 0.85), but the first windows of the sound agree: decided after
    # early_agree_s of agreement, well before the running average settles.
    audio = np.concatenate([silence(2.0), tone(3000, 1.0), silence(1.0)])
    agree = run(SoundPipeline(scripted([[0.3, 0.7]]), LABELS, P, ONSET), audio)
    off = run(SoundPipeline(scripted([[0.3, 0.7]]), LABELS, P, dataclasses.replace(ONSET, early_agree_s=0.0)), audio)
    assert agree[0].label == "high" and agree[0].early
    first = 2.0 + ONSET.early_min_sound_s
    assert agree[0].t <= first + ONSET.early_agree_s + ONSET.decision_hop_s
    # Without the rule the same model waits for the settled running average.
    assert off[0].label == "high" and not off[0].early and off[0].t >= agree[0].t + 0.15


def test_windows_that_disagree_or_fall_short_do_not_decide_early():
    audio = np.concatenate([silence(2.0), tone(3000, 1.0), silence(1.0)])
    flip = run(SoundPipeline(scripted([[0.3, 0.7], [0.7, 0.3]] * 3 + [[0.3, 0.7]]), LABELS, P, ONSET), audio)
    weak = run(SoundPipeline(scripted([[0.45, 0.55]]), LABELS, P,
                             dataclasses.replace(ONSET, early_agree_threshold=0.6)), audio)
    assert not any(getattr(e, "early", False) for e in flip) and weak == []
    # Nor a label outside agree_labels (the box passes its built-in classes: taught sounds stay out).
    taught = run(SoundPipeline(scripted([[0.3, 0.7]]), LABELS, P, ONSET, agree_labels=["low"]), audio)
    assert taught[0].label == "high" and not taught[0].early
    # An early-excluded class needs a sure window however long the agreement.
    shot = run(SoundPipeline(scripted([[0.3, 0.7]]), LABELS, P, dataclasses.replace(ONSET, early_exclude=("high",))),
               audio)
    assert not shot[0].early


def test_unknown_never_follows_a_class_within_one_sound():
    # "high" at first, then the model only knows it is none of ours: the picture fades to listening instead of
    # flickering to the teach-me card; after a silence "unknown" may be shown again.
    labels = ["low", "high", "unknown"]
    rows = [[0.0, 0.95, 0.05]] * 8 + [[0.0, 0.0, 1.0]]
    sound = np.concatenate([silence(2.0), tone(3000, 1.5)])
    events = run(SoundPipeline(scripted(rows), labels, P, ONSET), np.concatenate([sound, silence(1.5)]))
    assert kinds(events) == [("ClassDetected", "high", None), ("ClassCleared", "high", "faded")]
    again = run(SoundPipeline(scripted(rows), labels, P, ONSET), np.concatenate([sound, silence(1.5), sound]))
    assert ("ClassDetected", "unknown", None) in kinds(again)[2:]


def test_excluded_class_waits_for_min_sound():
    # Every sudden onset looks like a gun shot at first: such classes are never decided on a sliver.
    settings = dataclasses.replace(ONSET, early_exclude=("high",))
    events = run(SoundPipeline(sure_predict, LABELS, P, settings),
                 np.concatenate([silence(2.0), tone(3000, 1.0), silence(1.0)]))
    assert events[0].label == "high" and events[0].t >= 2.0 + settings.decision_min_sound_s


@DESIGNS
@pytest.mark.parametrize("chunk", [160, 800, 1600, 4001])
def test_same_events_for_any_chunk_size_in_both_designs(settings, chunk):
    audio = np.concatenate([silence(1.3), tone(3000, 0.7), silence(0.9), tone(400, 1.2), silence(1.0)])
    ref = run(SoundPipeline(band_predict, LABELS, P, settings), audio, chunk=1600)
    got = run(SoundPipeline(band_predict, LABELS, P, settings), audio, chunk=chunk)
    assert [e for e in got] == [e for e in ref]
    assert len([e for e in ref if isinstance(e, ClassDetected)]) == 2


def test_a_gap_in_the_stream_restarts_the_windows_at_the_new_position():
    """Audio that went elsewhere (a dropped mic buffer, a teach take) leaves a gap in the sample
    index: the next sound is still heard, timed on the global clock, and no window straddles the gap."""
    pipe = SoundPipeline(band_predict, LABELS, P)
    before = silence(2.0)
    for i in range(0, len(before), 1600):
        assert pipe.step(before[i : i + 1600], i) == []
    gap_end = 10 * SR  # 8 s of audio never reached this pipeline
    after = np.concatenate([tone(3000, 1.5), silence(1.5)])
    events = []
    for i in range(0, len(after), 1600):
        events += pipe.step(after[i : i + 1600], gap_end + i)
    detected = [e for e in events if isinstance(e, ClassDetected)]
    assert [e.label for e in detected] == ["high"]
    # Global stream time, not time since the gap; the first window after a gap needs a full window of audio.
    assert P.window_seconds <= detected[0].t - 10.0 <= P.window_seconds + 0.75
    fresh = run(SoundPipeline(band_predict, LABELS, P), after)
    assert [(e.label, round(e.t + 10.0, 3)) for e in fresh if isinstance(e, ClassDetected)] == \
        [(e.label, round(e.t, 3)) for e in detected]  # as if the stream had started at the gap
