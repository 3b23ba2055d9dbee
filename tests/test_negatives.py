"""The scripted negatives stream: as long as asked, busy 70 % of the time, every kind of household sound."""

import shutil

import numpy as np
import pytest

from training.datasets.negatives import KINDS, music, negatives_stream


def test_music_is_a_loud_finite_signal_with_a_beat():
    x = music(4.0, np.random.default_rng(0))
    assert len(x) == 64000 and np.all(np.isfinite(x)) and np.max(np.abs(x)) > 0.1
    # Drums: energy above 5 kHz (hi-hat, snare) comes in short hits, 20 ms frames far above their median.
    frames = x[: 64000 // 320 * 320].reshape(-1, 320)
    high = (np.abs(np.fft.rfft(frames, axis=1)) ** 2)[:, np.fft.rfftfreq(320, 1 / 16000) > 5000].sum(axis=1)
    assert high.max() > 8 * np.median(high)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_stream_length_busy_fraction_and_kinds():
    audio, events = negatives_stream(minutes=1.5, seed=3)
    assert len(audio) == int(1.5 * 60 * 16000) and np.max(np.abs(audio)) <= 1.0
    busy = sum(b - a for _, a, b in events) / 90.0
    assert 0.6 < busy < 0.8
    assert all(k in KINDS for k, _, _ in events) and len({k for k, _, _ in events}) >= 3
    # Gaps between events are quiet room noise, far under the -45 dBFS gate.
    _, a, b = events[0]
    gap = audio[int(b * 16000) + 1600 : int(events[1][1] * 16000) - 1600]
    assert 20 * np.log10(np.sqrt(np.mean(gap**2)) + 1e-12) < -55


def test_the_open_set_calibration_never_hears_the_test_streams_texts_or_music_generator():
    """Thresholds are chosen on calibration negatives: the false-trigger stream must stay unseen by them."""
    import inspect

    from training import train_sound
    from training.datasets import calibration_music, speech

    stream_texts = {t for ts in speech.SENTENCES.values() for t in ts}
    assert not stream_texts & set(speech.CALIBRATION_SENTENCES)
    assert not set(speech.CALIBRATION_VOICES) & {v for vs in speech.SENTENCE_VOICES.values() for v in vs}
    source = inspect.getsource(train_sound.calibration_negatives)
    assert "negatives.music" not in source and "SENTENCES.values" not in source
    assert "negatives" not in inspect.getsource(calibration_music).split('"""', 2)[2]  # its own generator
