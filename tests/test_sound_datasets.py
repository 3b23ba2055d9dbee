"""Dataset loaders on small fixture trees: formats, bit depths, rates, channels, lengths, bad input."""

import json
import os

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")
pytest.importorskip("soxr")

from device.errors import InputFileError  # noqa: E402
from training.datasets import (  # noqa: E402
    FORMATS,
    URBANSOUND_CLASSES,
    DatasetWarning,
    load_dataset,
)
from training.datasets.audio_io import content_span, read_audio, write_wav  # noqa: E402
from training.datasets.esc50 import ESC50_TO_URBANSOUND  # noqa: E402
from training.datasets.folders import hash_fold  # noqa: E402

SR = 16000
CLIP = 4 * SR


def _sine(rate, seconds, freq, amp=0.5):
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x, sr=SR):
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


def _corrupt(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))


# ------------------------------------------------------------------ fixtures

US_HEADER = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


@pytest.fixture
def us8k(tmp_path):
    """A tiny UrbanSound8K: 24-bit 48 kHz, stereo 44.1 kHz (long), 8-bit 0.3 s, float 8 kHz, corrupt, missing."""
    root = tmp_path / "UrbanSound8K"
    a = root / "audio"
    (a / "fold1").mkdir(parents=True)
    sf.write(a / "fold1" / "deep.wav", _sine(48000, 1.0, 440, 0.5), 48000, subtype="PCM_24")
    stereo = np.stack([_sine(44100, 5.0, 1000, 0.6), _sine(44100, 5.0, 1000, 0.2)], axis=1)
    sf.write(a / "fold1" / "stereo.wav", stereo, 44100, subtype="PCM_16")
    (a / "fold2").mkdir()
    sf.write(a / "fold2" / "short.wav", _sine(22050, 0.3, 300, 0.5), 22050, subtype="PCM_U8")
    _corrupt(str(a / "fold2" / "corrupt.wav"))
    (a / "fold3").mkdir()
    sf.write(a / "fold3" / "float.wav", _sine(8000, 2.0, 250, 0.25), 8000, subtype="FLOAT")
    sf.write(a / "fold3" / "idle.wav", _sine(16000, 1.0, 60, 0.3), 16000, subtype="PCM_16")
    rows = [
        ("deep.wav", 1, 0, 1, 1, 1, 3, "dog_bark"),
        ("stereo.wav", 2, 0, 5, 1, 1, 8, "siren"),
        ("short.wav", 3, 0, 0.3, 2, 2, 1, "car_horn"),
        ("corrupt.wav", 4, 0, 1, 1, 2, 7, "jackhammer"),
        ("float.wav", 5, 0, 2, 1, 3, 4, "drilling"),
        ("missing.wav", 6, 0, 1, 1, 3, 6, "gun_shot"),
        ("idle.wav", 7, 0, 1, 1, 3, 5, "engine_idling"),  # the official CSV's spelling
    ]
    _write_csv(str(root / "metadata" / "UrbanSound8K.csv"), US_HEADER, rows)
    return root


def _load_quiet(*args, **kwargs):
    with pytest.warns(DatasetWarning):
        return load_dataset(*args, progress=False, **kwargs)


# ------------------------------------------------------------------ UrbanSound8K


def test_urbansound8k_normalises_depth_rate_channels_and_length(us8k):
    with pytest.warns(DatasetWarning) as record:
        ds = load_dataset("urbansound8k", us8k, progress=False)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "fold2/corrupt.wav: skipped: not a readable audio file (" in messages[0]
    assert messages[1].endswith("fold3/missing.wav: skipped: no such file")
    assert ds.labels == URBANSOUND_CLASSES
    clips = {os.path.basename(c.source): c for c in ds.clips}
    assert sorted(clips) == ["deep.wav", "float.wav", "idle.wav", "short.wav", "stereo.wav"]
    assert clips["idle.wav"].label == "engine_idle"
    for c in ds.clips:
        assert c.audio.dtype == np.float32 and c.audio.shape == (CLIP,)
    # Content survives: frequency (resampling is right), level (scaling and downmix are right).
    assert (clips["deep.wav"].label, clips["deep.wav"].fold) == ("dog_bark", 1)
    assert _peak_hz(clips["deep.wav"].audio[:SR]) == pytest.approx(440, abs=2)
    assert _rms(clips["deep.wav"].audio[1000:15000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    stereo = clips["stereo.wav"].audio  # 5 s cropped to 4 s, channels averaged: 0.4 amplitude
    assert _peak_hz(stereo) == pytest.approx(1000, abs=2)
    assert _rms(stereo[1000:-1000]) == pytest.approx(0.4 / np.sqrt(2), rel=0.01)
    assert clips["stereo.wav"].offset == pytest.approx(4.0)
    short = clips["short.wav"]  # 0.3 s, 8-bit: zero padding after 0.3 s, span says so
    assert _peak_hz(short.audio[: int(0.3 * SR)]) == pytest.approx(300, abs=60)
    assert np.all(short.audio[int(0.3 * SR) + 64 :] == 0.0)
    assert short.onset == 0.0 and short.offset == pytest.approx(0.3, abs=0.011)
    assert _peak_hz(clips["float.wav"].audio[: 2 * SR]) == pytest.approx(250, abs=2)
    assert ds.folds() == [1, 2, 3]


def test_urbansound8k_reports_skipped_files(us8k):
    ds = _load_quiet("urbansound8k", us8k)
    rep = ds.report
    assert rep.format == "urbansound8k" and rep.path == str(us8k) and rep.loaded == 5
    skipped = {os.path.basename(f): reason for f, reason in rep.skipped}
    assert set(skipped) == {"corrupt.wav", "missing.wav"}
    assert "not a readable audio file" in skipped["corrupt.wav"]
    assert "no such file" in skipped["missing.wav"]
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["loaded"] == 5 and len(d["skipped"]) == 2 and {"file", "reason"} <= set(d["skipped"][0])
    assert "5 clips" in ds.description and "2 skipped" in ds.description


def test_urbansound8k_fold_selection(us8k):
    with pytest.warns(DatasetWarning, match="missing.wav"):
        ds = load_dataset("urbansound8k", us8k, progress=False, folds=(1, 3))
    assert ds.folds() == [1, 3] and len(ds.clips) == 4
    with pytest.raises(InputFileError, match=r"UrbanSound8K\.csv: no fold\(s\) \[7\]"):
        load_dataset("urbansound8k", us8k, progress=False, folds=(1, 7))


def test_urbansound8k_bad_metadata(tmp_path, us8k):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match=r"UrbanSound8K\.csv: metadata file not found"):
        load_dataset("urbansound8k", empty)
    _write_csv(str(us8k / "metadata" / "UrbanSound8K.csv"), ("slice_file_name", "classID"), [("a.wav", 1)])
    with pytest.raises(InputFileError, match=r"UrbanSound8K\.csv: missing column\(s\) fold, class"):
        load_dataset("urbansound8k", us8k, progress=False)


def test_all_files_unreadable_is_an_error(tmp_path):
    root = tmp_path / "us"
    _corrupt(str(root / "audio" / "fold1" / "x.wav"))
    _write_csv(str(root / "metadata" / "UrbanSound8K.csv"), US_HEADER, [("x.wav", 1, 0, 1, 1, 1, 3, "dog_bark")])
    with pytest.warns(DatasetWarning), pytest.raises(InputFileError, match=r"no UrbanSound8K clip could be loaded.*x\.wav"):
        load_dataset("urbansound8k", root, progress=False)


def test_hash_is_stable_and_sees_changes(us8k):
    a = _load_quiet("urbansound8k", us8k)
    b = _load_quiet("urbansound8k", us8k)
    assert a.sha256() == b.sha256() and len(a.sha256()) == 64
    sf.write(us8k / "audio" / "fold3" / "float.wav", _sine(8000, 2.0, 260, 0.25), 8000, subtype="FLOAT")
    assert _load_quiet("urbansound8k", us8k).sha256() != a.sha256()


# ------------------------------------------------------------------ ESC-50

ESC_HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


@pytest.fixture
def esc50(tmp_path):
    root = tmp_path / "ESC-50"
    rows = [("1-1-A-0.wav", 1, 0, "dog", "True"), ("1-2-A-1.wav", 1, 1, "rooster", "True"),
            ("2-3-A-42.wav", 2, 42, "siren", "False"), ("3-4-A-44.wav", 3, 44, "engine", "False"),
            ("4-5-A-43.wav", 4, 43, "car_horn", "False"), ("5-6-A-41.wav", 5, 41, "chainsaw", "True")]
    (root / "audio").mkdir(parents=True)
    for i, (name, *_rest) in enumerate(rows):
        sf.write(root / "audio" / name, _sine(44100, 5.0, 200 + 100 * i, 0.3), 44100)
    _write_csv(str(root / "meta" / "esc50.csv"), ESC_HEADER, [r + (f"src{i}", "A") for i, r in enumerate(rows)])
    return root


def test_esc50_all_categories_in_target_order(esc50):
    ds = load_dataset("esc50", esc50, progress=False)
    assert ds.labels == ("dog", "rooster", "chainsaw", "siren", "car_horn", "engine")
    assert ds.folds() == [1, 2, 3, 4, 5] and len(ds.clips) == 6
    assert all(c.audio.shape == (CLIP,) for c in ds.clips)  # 5 s cropped to the default 4 s
    five = load_dataset("esc50", esc50, progress=False, clip_seconds=5.0)
    assert all(c.audio.shape == (5 * SR,) for c in five.clips)


def test_esc50_map_keeps_only_clear_matches(esc50):
    ds = load_dataset("esc50", esc50, progress=False, map_to_urbansound=True)
    assert ds.labels == URBANSOUND_CLASSES
    assert sorted(c.label for c in ds.clips) == ["car_horn", "dog_bark", "engine_idle", "siren"]
    assert ESC50_TO_URBANSOUND == {"dog": "dog_bark", "siren": "siren", "car_horn": "car_horn",
                                   "engine": "engine_idle"}
    assert set(ESC50_TO_URBANSOUND.values()) <= set(URBANSOUND_CLASSES)
    ten = load_dataset("esc50", esc50, progress=False, esc10_only=True)
    assert sorted(c.label for c in ten.clips) == ["chainsaw", "dog", "rooster"]


# ------------------------------------------------------------------ folders


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / "DATA"
    (root / "dog_bark").mkdir(parents=True)
    (root / "siren").mkdir()
    (root / ".cache").mkdir()  # hidden: not a class
    sf.write(root / "dog_bark" / "a.wav", _sine(16000, 1.0, 500), 16000)
    sf.write(root / "dog_bark" / "b.flac", _sine(48000, 1.0, 600), 48000)
    sf.write(root / "dog_bark" / "c.ogg", _sine(16000, 1.0, 700), 16000, format="OGG", subtype="VORBIS")
    (root / "dog_bark" / "notes.txt").write_text("not audio")
    sf.write(root / "siren" / "x.WAV", _sine(16000, 1.0, 900), 16000)
    _corrupt(str(root / "siren" / "broken.wav"))
    return root


def test_folders_layout_formats_and_hash_folds(folders):
    with pytest.warns(DatasetWarning, match="broken.wav"):
        ds = load_dataset("folders", folders, progress=False)
    assert ds.labels == ("dog_bark", "siren")
    names = sorted(os.path.basename(c.source) for c in ds.clips)
    assert names == ["a.wav", "b.flac", "c.ogg", "x.WAV"]
    for c in ds.clips:
        assert c.audio.shape == (CLIP,) and c.fold == hash_fold(os.path.basename(c.source))
        assert 1 <= c.fold <= 5 and c.offset == pytest.approx(1.0, abs=0.02)
    b = next(c for c in ds.clips if c.source.endswith("b.flac"))
    assert _peak_hz(b.audio[:SR]) == pytest.approx(600, abs=2)
    assert [os.path.basename(f) for f, _ in ds.report.skipped] == ["broken.wav"]


def test_folders_fold_file_overrides_hash(folders):
    (folders / "folds.csv").write_text("file,fold\ndog_bark/a.wav,4\n./siren/x.WAV,2\n")
    ds = _load_quiet("folders", folders)
    folds = {os.path.basename(c.source): c.fold for c in ds.clips}
    assert folds["a.wav"] == 4 and folds["x.WAV"] == 2 and folds["b.flac"] == hash_fold("b.flac")
    assert hash_fold("a.wav") == hash_fold("a.wav") and {hash_fold(f"f{i}.wav") for i in range(50)} == {1, 2, 3, 4, 5}


def test_folders_empty_class_folder_is_named(folders):
    (folders / "car_horn").mkdir()
    (folders / "car_horn" / "readme.txt").write_text("nothing here")
    with pytest.raises(InputFileError, match=r"car_horn: class folder has no audio files"):
        load_dataset("folders", folders, progress=False)


def test_folders_need_two_classes(tmp_path):
    root = tmp_path / "one"
    (root / "dog_bark").mkdir(parents=True)
    sf.write(root / "dog_bark" / "a.wav", _sine(16000, 1.0, 500), 16000)
    with pytest.raises(InputFileError, match=r"one: found 1 class folder\(s\) \(dog_bark\); need at least 2"):
        load_dataset("folders", root, progress=False)


def test_folders_class_with_only_unreadable_files(folders):
    os.remove(folders / "siren" / "x.WAV")
    with pytest.warns(DatasetWarning), pytest.raises(InputFileError, match=r"siren: no readable audio \(1 file"):
        load_dataset("folders", folders, progress=False)


# ------------------------------------------------------------------ load_dataset errors


def test_unknown_format_lists_the_choices():
    with pytest.raises(InputFileError) as e:
        load_dataset("urbansound9k", "/tmp")
    assert str(e.value) == f"unknown dataset FORMAT 'urbansound9k' (expected one of {', '.join(FORMATS)})"


def test_missing_or_wrong_path_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(InputFileError, match=f"{missing}: no such dataset folder"):
        load_dataset("esc50", missing)
    f = tmp_path / "file.wav"
    f.write_bytes(b"x")
    with pytest.raises(InputFileError, match="file.wav: not a folder"):
        load_dataset("folders", f)
    with pytest.raises(InputFileError, match="needs a dataset folder"):
        load_dataset("urbansound8k")
    with pytest.raises(InputFileError, match="synthetic dataset is generated"):
        load_dataset("synthetic", tmp_path)


def test_unknown_option_is_an_input_error(folders):
    with pytest.raises(InputFileError, match=r"unknown option\(s\) fold \(accepted: folds, n_folds"):
        load_dataset("folders", folders, fold=3)


# ------------------------------------------------------------------ audio_io


def test_read_audio_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    _corrupt(str(bad))
    with pytest.raises(InputFileError, match=r"bad\.wav: not a readable audio file"):
        read_audio(bad)
    with pytest.raises(InputFileError, match=r"gone\.wav: no such file"):
        read_audio(tmp_path / "gone.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputFileError, match=r"empty\.wav: contains no audio samples"):
        read_audio(empty)


def test_write_then_read_round_trip(tmp_path):
    x = _sine(16000, 0.5, 440, 0.5)
    p = tmp_path / "sub" / "tone.wav"
    write_wav(p, np.concatenate([x, [1.7]]), 16000)  # the over is clipped, not wrapped
    y = read_audio(p, 16000)
    assert len(y) == len(x) + 1 and np.max(np.abs(y[:-1] - x)) < 1e-4 and y[-1] == pytest.approx(1.0, abs=1e-4)
    assert len(read_audio(p, 8000)) == pytest.approx(len(y) / 2, abs=2)


def test_content_span_trims_silence():
    x = np.concatenate([np.zeros(SR // 2), _sine(SR, 1.0, 300), np.zeros(SR)])
    start, end = content_span(x, SR)
    assert start == pytest.approx(0.5, abs=0.011) and end == pytest.approx(1.5, abs=0.011)
    assert content_span(np.zeros(SR), SR) == (0.0, 1.0)


def test_a_file_name_that_is_not_utf8_still_gets_a_fold():
    """A card written on another system (Latin-1 names, decoded by Python as surrogates)."""
    latin1 = os.fsdecode(b"caf\xe9.wav")
    assert 1 <= hash_fold(latin1) <= 5
    assert hash_fold("café.wav") == 1 + int(__import__("hashlib").sha1("café.wav".encode()).hexdigest()[:8], 16) % 5


def test_a_long_file_is_read_only_as_far_as_its_clip(tmp_path):
    """The clip of a 2-minute 48 kHz file equals the first seconds of the whole file, read with less memory."""
    from training.datasets.audio_io import load_files, read_audio, write_wav

    rng = np.random.default_rng(0)
    long = tmp_path / "long.wav"
    write_wav(long, 0.1 * rng.standard_normal(48000 * 120).astype(np.float32), 48000)
    (clip,), _ = load_files([(str(long), "x", 1)], sample_rate=16000, clip_seconds=4.0, progress=False, workers=1,
                            desc="t")
    whole = read_audio(long, 16000)[: 4 * 16000]
    assert clip.audio.shape == (4 * 16000,)
    assert np.max(np.abs(clip.audio[: -160] - whole[: -160])) < 1e-3  # the resampler's last 10 ms may differ
