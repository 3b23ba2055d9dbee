"""The procedural sound generator: invariants, determinism, variety, onsets, folds, playlists."""

import numpy as np
import pytest

from device.errors import InputFileError
from device.frontend import dbfs, log_mel
from training.datasets import URBANSOUND_CLASSES, load_dataset
from training.datasets.synthetic_sound import (
    UnknownLabelError,
    render_event,
    synthesize_clip,
    synthetic_dataset,
    synthetic_playlist,
)

SR = 16000


def _rms_db(x):
    return 20 * np.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-12))


def _pitch_track(x, sr=SR, frame=1024, hop=512):
    """Frequency of the strongest STFT bin per frame (Hz)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop] * np.hanning(frame)
    return np.argmax(np.abs(np.fft.rfft(frames, axis=1)), axis=1) * sr / frame


@pytest.mark.parametrize("label", URBANSOUND_CLASSES)
def test_clip_invariants_and_known_onset(label):
    ratios = []
    for seed in range(6):
        c = synthesize_clip(label, seed)
        assert c.label == label and c.source == f"synthetic:{seed}"
        assert c.audio.dtype == np.float32 and c.audio.shape == (4 * SR,)
        assert np.all(np.isfinite(c.audio)) and np.max(np.abs(c.audio)) <= 0.99 + 1e-6
        assert 0.2 <= c.onset <= 1.5 and c.onset + 0.05 <= c.offset <= 4.0
        on, off = int(c.onset * SR), int(c.offset * SR)
        event_db, before_db = _rms_db(c.audio[on:off]), _rms_db(c.audio[:on])
        assert -45.0 < event_db < -6.0  # audible above the device's silence gate, never near clipping
        ratios.append(event_db - before_db)
    # Before the onset there is only background, at least 8 dB (SNR) under the event, give or take its drift.
    assert min(ratios) > 5.0 and np.median(ratios) > 12.0


@pytest.mark.parametrize("label", ["siren", "dog_bark", "street_music"])
def test_same_seed_same_clip_other_seed_other_clip(label):
    a, b, c = synthesize_clip(label, 7), synthesize_clip(label, 7), synthesize_clip(label, 8)
    assert np.array_equal(a.audio, b.audio) and (a.onset, a.offset) == (b.onset, b.offset)
    assert not np.allclose(a.audio, c.audio)
    # Classes with the same seed are different draws too (the class is part of the seed).
    assert not np.allclose(a.audio, synthesize_clip("car_horn", 7).audio)


def test_every_class_has_several_variants():
    for label in URBANSOUND_CLASSES:
        variants = {render_event(label, np.random.default_rng(s), SR, 1.0)[1] for s in range(12)}
        assert len(variants) >= 2, label
    sirens = {render_event("siren", np.random.default_rng(s), SR, 1.0)[1] for s in range(30)}
    assert sirens == {"wail", "yelp", "hi-lo"}


def test_two_sirens_have_different_pitch_contours():
    tracks = []
    for seed in (1, 2):
        c = synthesize_clip("siren", seed)
        on = int(c.onset * SR)
        tracks.append(_pitch_track(c.audio[on : on + 2 * SR]))
    a, b = tracks
    assert np.ptp(a) > 100 and np.ptp(b) > 100  # the pitch moves within each siren
    assert np.median(np.abs(np.log2(a / b))) > 0.05  # ... and differently between the two


def test_classes_are_separable_by_simple_statistics():
    # A nearest-centroid classifier on per-band mean/std/flux of event log-mels, no learning beyond
    # averaging, must beat chance (10 %) by far; the CNN does much better (see the training report).
    ds = synthetic_dataset(12, seed=5, clip_seconds=2.5, progress=False)

    def features(c):
        on = int(c.onset * SR)
        s = log_mel(c.audio[on : on + SR])
        return np.concatenate([s.mean(0), s.std(0), np.abs(np.diff(s, axis=0)).mean(0)])

    x = np.array([features(c) for c in ds.clips])
    y = np.array([ds.labels.index(c.label) for c in ds.clips])
    train = np.array([c.fold <= 8 for c in ds.clips])
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mu) / sd
    centroids = np.array([z[train & (y == k)].mean(0) for k in range(10)])
    pred = np.argmin(((z[~train][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y[~train]) >= 0.5


def test_dataset_folds_by_index_and_reproducible_sources():
    ds = synthetic_dataset(12, seed=2, clip_seconds=1.0, progress=False)
    assert ds.labels == URBANSOUND_CLASSES and ds.folds() == list(range(1, 11))
    assert ds.counts() == {name: 12 for name in URBANSOUND_CLASSES}
    for fold in (1, 9, 10):  # every fold holds every class (folds 1 and 2 twice: 12 = 10 + 2)
        assert {c.label for c in ds.clips if c.fold == fold} == set(URBANSOUND_CLASSES)
    assert sum(c.fold == 1 for c in ds.clips) == 20 and sum(c.fold == 10 for c in ds.clips) == 10
    c = ds.clips[37]
    again = synthesize_clip(c.label, int(c.source.split(":")[1]), SR, 1.0)
    assert np.array_equal(c.audio, again.audio) and c.audio.shape == (SR,)
    assert ds.report.format == "synthetic" and ds.report.loaded == 120 and ds.report.skipped == []
    assert "seed 2" in ds.description


def test_dataset_hash_follows_the_seed():
    a = load_dataset("synthetic", n_per_class=2, seed=0, clip_seconds=1.0, progress=False)
    b = load_dataset("synthetic", n_per_class=2, seed=0, clip_seconds=1.0, progress=False, workers=1)
    c = load_dataset("synthetic", n_per_class=2, seed=1, clip_seconds=1.0, progress=False)
    assert a.sha256() == b.sha256() != c.sha256()
    assert a.folds() == [1, 2]


def test_label_subset_and_bad_labels():
    ds = synthetic_dataset(3, labels=("siren", "dog_bark"), clip_seconds=1.0, progress=False)
    assert ds.labels == ("siren", "dog_bark") and len(ds.clips) == 6
    with pytest.raises(UnknownLabelError, match="no recipe for class 'cat'") as e:
        synthesize_clip("cat", 0)
    assert isinstance(e.value, InputFileError) and isinstance(e.value, ValueError)
    with pytest.raises(InputFileError, match="n_per_class"):
        synthetic_dataset(0, progress=False)


def test_playlist_events_sit_in_quiet_gaps():
    labels = ["dog_bark", "siren", "gun_shot", "car_horn"]
    audio, events = synthetic_playlist(labels, seed=3, gap_seconds=1.0)
    assert audio.dtype == np.float32 and [e[0] for e in events] == labels
    assert events[0][1] == pytest.approx(1.0)
    prev_end = 0.0
    for label, onset, offset in events:
        assert onset >= prev_end + 1.0 - 1e-3 and offset > onset  # a full quiet gap before each event
        on, off = int(onset * SR), int(offset * SR)
        assert dbfs(audio[on:off]) > -30.0  # the event is clearly there
        assert dbfs(audio[max(on - int(0.9 * SR), 0) : on]) < -45.0  # and quiet just before it
        prev_end = offset + 0.3  # reverb tail
    assert len(audio) == pytest.approx((prev_end + 1.0) * SR, abs=2)
    silent, _ = synthetic_playlist(["siren"], seed=3, gap_seconds=0.5, noise_dbfs=None)
    assert np.all(silent[: int(0.5 * SR)] == 0.0)
    again, events_again = synthetic_playlist(labels, seed=3, gap_seconds=1.0)
    assert np.array_equal(audio, again) and events == events_again


def test_short_clips_keep_the_event_inside():
    c = synthesize_clip("car_horn", 4, seconds=1.0)
    assert c.audio.shape == (SR,) and 0.05 <= c.onset < c.offset <= 1.0
    with pytest.raises(ValueError):
        synthesize_clip("car_horn", 4, seconds=0.2)
