"""The synthetic marimba renderer and the dataset-folder layout it shares with the recorder."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from device.errors import InputFileError
from device.frontend import DIATONIC_C4_F6
from device.hardware.base import AudioChunk, Frame
from device.marimba.dataset import (
    AUDIO,
    FRAME_TIMES,
    GROUND_TRUTH,
    MANIFEST,
    VIDEO,
    check_new_folder,
    write_dataset,
)
from device.marimba.recorder import record
from training.datasets.marimba_synth import SynthConfig, _mallet_state, _score, render, render_notes, render_sound, write

SHORT = SynthConfig(seconds=4.0)


@pytest.fixture(scope="module")
def video20():
    t0 = time.perf_counter()
    v = render(11)
    return v, time.perf_counter() - t0


def test_twenty_seconds_render_fast_and_well_formed(video20):
    v, seconds = video20
    assert seconds < 8.0  # ~1.5 s on one core
    assert v.frames.shape == (600, 96, 160) and v.frames.dtype == np.uint8
    assert len(v.audio) == 20 * 48000 and v.audio.dtype == np.float32
    assert np.allclose(v.frame_times, np.arange(600) / 30)
    assert 20 <= len(v.events) <= 150
    onsets = np.array([e[0] for e in v.events])
    assert np.all(np.diff(onsets) >= 0) and onsets[0] > 0 and onsets[-1] < 20 - 0.3
    assert {m for _, m, _ in v.events} <= set(DIATONIC_C4_F6)
    assert all(50 <= vel <= 127 for _, _, vel in v.events)
    assert np.abs(v.audio).max() < 1.0
    # Frames move (mallets), the picture has contrast (bars vs table).
    assert np.abs(np.diff(v.frames.astype(np.int16), axis=0)).mean() > 0.2
    assert v.frames.std() > 20


def test_chords_and_no_fast_restrike_of_a_bar():
    _, events = render_sound(12, SynthConfig(seconds=30.0))
    onsets = np.array([e[0] for e in events])
    assert np.sum(np.diff(onsets) == 0) >= 2  # two mallets strike together sometimes
    for note in set(m for _, m, _ in events):
        t = np.array([o for o, m, _ in events if m == note])
        assert np.all(np.diff(t) >= SynthConfig().same_note_gap - 1e-9)


def test_deterministic_by_seed():
    a, b, c = render(5, SHORT), render(5, SHORT), render(6, SHORT)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.events == b.events
    assert a.camera == b.camera
    assert not np.array_equal(a.frames, c.frames) and a.events != c.events
    audio, events = render_sound(5, SHORT)  # the sound alone matches the full render
    assert np.array_equal(audio, a.audio) and events == a.events


def test_camera_pose_differs_per_video():
    poses = [render(s, SynthConfig(seconds=0.2)).camera for s in range(4)]
    offsets = {tuple(np.round(p["offset_px"], 3)) for p in poses}
    assert len(offsets) == 4
    for p in poses:
        assert abs(p["rotation_deg"]) <= SynthConfig().max_rotation_deg


def test_mallet_reaches_the_bar_at_each_strike():
    rng = np.random.default_rng(0)
    score = _score(rng, SHORT)
    x_of_bar = lambda b: (b + 0.5) / 18  # noqa: E731
    for strikes in score:
        for s in strikes:
            x, _, h = _mallet_state(strikes, s.t, x_of_bar, (0.5, 0.0))
            assert h == pytest.approx(0.0, abs=1e-9)
            assert x == pytest.approx(x_of_bar(s.bar), abs=1e-9)
            _, _, h_before = _mallet_state(strikes, s.t - 0.06, x_of_bar, (0.5, 0.0))
            assert h_before > 0.2  # raised shortly before: the dip is visible


def test_strike_changes_the_struck_bar_region():
    v = render(7, SHORT)
    onset, note, _ = v.events[0]
    i = int(round(onset * 30))
    assert note in DIATONIC_C4_F6
    # The head occludes/darkens or lightens the struck bar's column region versus 0.3 s earlier/later.
    diff = np.abs(v.frames[i].astype(int) - v.frames[max(i - 9, 0)].astype(int)).mean(axis=0)
    assert diff.max() > 5


# ------------------------------------------------------------ folder layout


def test_write_and_load_round_trip(tmp_path):
    from training.datasets.marimba_io import load_recording

    v = render(3, SHORT)
    folder = write(v, tmp_path / "rec", SHORT)
    for name in (MANIFEST, VIDEO, AUDIO, FRAME_TIMES, GROUND_TRUTH):
        assert (folder / name).is_file(), name
    m = json.loads((folder / MANIFEST).read_text())
    assert m["format"] == "saysee-marimba" and m["source"] == "synthetic"
    assert m["frame_size"] == [96, 160] and m["n_frames"] == 120 and m["sample_rate"] == 48000
    assert m["synthetic"]["seed"] == 3
    rec = load_recording(folder)
    assert rec.frames.shape == v.frames.shape
    assert np.abs(rec.frames.astype(int) - v.frames).max() <= (0 if m["video_codec"] == "FFV1" else 40)
    assert np.abs(rec.audio - v.audio).max() < 1e-4  # int16 WAV
    assert np.allclose(rec.frame_times, v.frame_times, atol=1e-6)
    assert [(round(t, 5), n, vel) for t, n, vel in rec.notes] == [(round(t, 5), n, vel) for t, n, vel in v.events]


def test_never_overwrites(tmp_path):
    v = render(3, SynthConfig(seconds=0.5))
    write(v, tmp_path / "rec")
    with pytest.raises(InputFileError, match="already exists and is not empty"):
        write(v, tmp_path / "rec")
    (tmp_path / "empty").mkdir()
    assert check_new_folder(tmp_path / "empty") == tmp_path / "empty"


def test_npy_frames_when_no_video_writer(tmp_path):
    from training.datasets.marimba_io import load_recording

    frames = np.random.default_rng(0).integers(0, 255, (6, 24, 32), dtype=np.uint8)
    folder = write_dataset(tmp_path / "r", frames, np.arange(6) / 30, np.zeros(9600, np.float32), 48000, 30,
                           video="npy")
    assert (folder / "frames.npy").is_file() and not (folder / VIDEO).exists()
    rec = load_recording(folder)
    assert np.array_equal(rec.frames, frames)


# ------------------------------------------------------------------ recorder


class FakeCamera:
    fps = 30.0
    dropped_frames = 0

    def __init__(self, size=(24, 32)):
        self.size, self.i, self.t0 = size, 0, None

    def start(self):
        self.t0 = time.monotonic()

    def read(self, timeout=None):
        due = self.t0 + self.i / self.fps
        time.sleep(max(0.0, due - time.monotonic()))
        img = np.full(self.size, (self.i * 7) % 256, np.uint8)
        f = Frame(img, self.i, due)
        self.i += 1
        return f

    def close(self):
        pass


class FakeMic:
    sample_rate = 48000
    overflows = dropped_samples = 0

    def __init__(self, chunk=2400, latency=0.01):
        self.chunk, self.latency, self.n, self.t0 = chunk, latency, 0, None
        self.lock = threading.Lock()

    def start(self):
        self.t0 = time.monotonic()

    def read(self, timeout=None):
        with self.lock:
            start = self.n
            self.n += self.chunk
        end_time = self.t0 + (start + self.chunk) / self.sample_rate
        time.sleep(max(0.0, end_time - time.monotonic()))
        samples = (1000 * np.sin(np.arange(start, start + self.chunk) * 0.05)).astype(np.int16)
        return AudioChunk(samples, start, end_time + self.latency)

    def close(self):
        pass


def test_recorder_writes_the_same_layout(tmp_path):
    from training.datasets.marimba_io import load_recording

    cam, mic = FakeCamera(), FakeMic()
    folder = record(cam, mic, 0.6, tmp_path / "take")
    m = json.loads((folder / MANIFEST).read_text())
    assert m["source"] == "camera" and m["clock"] == "time.monotonic" and m["frame_clock"] == "captured_at"
    assert m["frame_size"] == [24, 32]
    rec = load_recording(folder)
    assert 10 <= len(rec.frames) <= 25
    assert rec.notes is None
    # Frame times are relative to audio sample 0: the camera started just after the mic.
    assert -0.05 < rec.frame_times[0] < 0.1
    assert np.all(np.diff(rec.frame_times) > 0)
    assert abs(rec.duration - 0.6) < 0.25


def test_recorder_cli_refuses_existing_folder(tmp_path, capsys):
    from device.__main__ import main

    (tmp_path / "take").mkdir()
    (tmp_path / "take" / "x").write_text("keep me")
    assert main(["record-marimba", "--seconds", "1", "--out", str(tmp_path / "take")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "take" in err[0] and "not empty" in err[0]
    assert (tmp_path / "take" / "x").read_text() == "keep me"


def test_recorder_main_with_injected_devices(tmp_path, capsys):
    from device.marimba.recorder import main

    assert main(["--seconds", "0.3", "--out", str(tmp_path / "t")], camera=FakeCamera(), mic=FakeMic()) == 0
    assert (tmp_path / "t" / MANIFEST).is_file()
    assert "record-marimba:" in capsys.readouterr().out


def test_virtual_synth_plays_the_bar_the_model_was_trained_on():
    # The sim's synth and the training renderer once had their own partial tables
    # (4x partial at 0.06 vs 0.05, decays 0.6/sqrt vs 0.4/f): one sound now.
    from device.hardware.virtual_synth import marimba_tone
    from device.marimba import tones

    sr = 48000
    f0 = 440 * 2 ** ((60 - 69) / 12)
    synth = marimba_tone(60, 127, sr)
    trained = render_notes([(0.0, 60, 127)], 1.5, sr)

    def level(x, f, t0, t1):
        seg = np.asarray(x[int(t0 * sr) : int(t1 * sr)], np.float64)
        t = np.arange(len(seg)) / sr
        return abs(np.dot(seg, np.exp(-2j * np.pi * f * t))) / len(seg)  # one DFT bin, exactly at f

    for x in (synth, trained):
        assert level(x, f0, 0.01, 0.05) > 0
    # Same overtone balance at the strike and the same ringing of the fundamental.
    balance = [level(x, 4 * f0, 0.01, 0.03) / level(x, f0, 0.01, 0.03) for x in (synth, trained)]
    assert balance[0] == pytest.approx(balance[1], rel=0.05)
    ringing = [level(x, f0, 0.4, 0.45) / level(x, f0, 0.05, 0.1) for x in (synth, trained)]
    assert ringing[0] == pytest.approx(ringing[1], rel=0.05)
    assert ringing[0] == pytest.approx(np.exp(-0.35 / tones.decay_time(f0)), rel=0.05)
