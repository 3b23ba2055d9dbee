"""record-marimba keeps what it recorded when it is stopped early (issue 9, item 13):
SIGTERM/SIGINT, a stop request or an error end the recording with every file finished
and the manifest written, so the folder is a valid dataset up to the stop."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.hardware.base import AudioChunk, Frame
from device.marimba.dataset import AUDIO, FRAME_TIMES, MANIFEST, VIDEO
from device.marimba.recorder import record
from device.wavfile import read_wav, write_wav

FPS = 30.0


def check_complete(folder: Path) -> dict:
    """Every file of the dataset agrees with the manifest; returns the manifest."""
    m = json.loads((folder / MANIFEST).read_text())
    audio, rate = read_wav(folder / AUDIO)
    assert rate == m["sample_rate"] and len(audio) == m["audio_samples"] > 0
    rows = (folder / FRAME_TIMES).read_text().splitlines()
    assert rows[0] == "index,time_s" and len(rows) - 1 == m["n_frames"] > 0
    times = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert np.all(np.diff(times) > 0)
    # Video and audio cover the same stretch of time, up to the stop.
    assert abs(m["n_frames"] / m["fps"] - len(audio) / rate) < 1.0
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")], "temp file left behind"
    return m


# ------------------------------------------------------------------ the real command, signalled


@pytest.fixture
def sim_sources(tmp_path):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "camera.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (32, 24), isColor=False)
    assert w.isOpened()
    for i in range(int(20 * FPS)):
        w.write(np.full((24, 32), (i * 7) % 256, np.uint8))
    w.release()
    wav = tmp_path / "mic.wav"
    t = np.arange(20 * 16000) / 16000
    write_wav(wav, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    return video, wav


def _recording(out: Path, video: Path, wav: Path) -> subprocess.Popen:
    """The real command on the sim camera and mic, paced in real time like the real devices."""
    return subprocess.Popen([sys.executable, "-m", "device", "record-marimba", "--seconds", "60", "--out", str(out),
                             "--camera", "sim", "--source", str(video), "--mic", "sim", "--playlist", str(wav)],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _interrupted(out: Path, video: Path, wav: Path, after_s: float, interrupt) -> tuple[subprocess.Popen, str, str]:
    """The command recording, ``after_s`` past its first audio, then ``interrupt(proc)``: (proc, stdout, stderr)."""
    proc = _recording(out, video, wav)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / AUDIO).exists() and (out / AUDIO).stat().st_size > 44 + 2 * 8000:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        time.sleep(after_s)
        interrupt(proc)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_mid_recording_keeps_a_complete_dataset(tmp_path, sim_sources, signum):
    video, wav = sim_sources
    out = tmp_path / "take"
    proc, stdout, stderr = _interrupted(out, video, wav, 1.0, lambda p: p.send_signal(signum))
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert f"stopped early by {signal.Signals(signum).name}" in stdout
    m = check_complete(out)
    assert m["stopped_by"] == signal.Signals(signum).name
    assert 1.0 < m["duration_s"] < 30
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(out / VIDEO))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    assert decoded == m["n_frames"]
    # Training reads it like any other recording.
    from training.datasets.marimba_io import load_recording

    rec = load_recording(out)
    assert len(rec.frames) == m["n_frames"]


# ------------------------------------------------------------------ in process


class PacedCamera:
    """Frames paced at FPS on the monotonic clock; optionally fails after some frames."""

    fps = FPS
    dropped_frames = 0

    def __init__(self, fail_after: int | None = None):
        self.i, self.t0, self.fail_after = 0, None, fail_after

    def start(self):
        self.t0 = time.monotonic()

    def read(self, timeout=None):
        if self.fail_after is not None and self.i >= self.fail_after:
            raise RuntimeError("camera unplugged")
        due = self.t0 + self.i / self.fps
        time.sleep(max(0.0, due - time.monotonic()))
        f = Frame(np.full((24, 32), (self.i * 7) % 256, np.uint8), self.i, due)
        self.i += 1
        return f

    def close(self):
        pass


class PacedMic:
    sample_rate = 16000
    overflows = dropped_samples = 0

    def __init__(self, chunk=800):
        self.chunk, self.n, self.t0 = chunk, 0, None

    def start(self):
        self.t0 = time.monotonic()

    def read(self, timeout=None):
        start, self.n = self.n, self.n + self.chunk
        end_time = self.t0 + (start + self.chunk) / self.sample_rate
        time.sleep(max(0.0, end_time - time.monotonic()))
        return AudioChunk((1000 * np.sin(np.arange(start, start + self.chunk) * 0.05)).astype(np.int16), start,
                          end_time)

    def close(self):
        pass


def test_stop_request_ends_early_and_keeps_the_recording(tmp_path):
    stop = threading.Event()
    threading.Timer(0.6, stop.set).start()
    folder = record(PacedCamera(), PacedMic(), 30.0, tmp_path / "take", stop=stop)
    m = check_complete(folder)
    assert m["stopped_by"] == "stop request" and m["duration_s"] < 10


def test_an_error_mid_recording_still_finishes_the_files(tmp_path):
    with pytest.raises(RuntimeError, match="camera unplugged"):
        record(PacedCamera(fail_after=15), PacedMic(), 30.0, tmp_path / "take")
    m = check_complete(tmp_path / "take")
    assert m["n_frames"] == 15 and "stopped_by" not in m


def test_ctrl_c_inside_a_library_call_still_finishes_the_files(tmp_path):
    """Without main's handlers (record() called from other code) Ctrl-C is a KeyboardInterrupt."""

    class InterruptedCamera(PacedCamera):
        def read(self, timeout=None):
            if self.i >= 10:
                raise KeyboardInterrupt
            return super().read(timeout)

    with pytest.raises(KeyboardInterrupt):
        record(InterruptedCamera(), PacedMic(), 30.0, tmp_path / "take")
    assert check_complete(tmp_path / "take")["n_frames"] == 10


def test_a_full_length_recording_is_not_marked_stopped(tmp_path):
    m = check_complete(record(PacedCamera(), PacedMic(), 0.5, tmp_path / "take"))
    assert "stopped_by" not in m and abs(m["duration_s"] - 0.5) < 0.25


# ------------------------------------------------------------------ the box's camera size (issue 14, item 6)


@pytest.fixture
def config_size(tmp_path, monkeypatch):
    """A config whose [camera] runs at 128x72; the camera is the sim one, fed frames of another size."""
    import device.hardware.camera as camera_mod
    from device.hardware.camera import SimCamera

    opened = []

    def open_camera(backend, cfg, *, source=None):
        # The lowest layer: the sim camera resizes its frames to the size it is given, like the real ones.
        opened.append(cfg)
        return SimCamera(np.full((30, 240, 320), 128, np.uint8), dataclasses.replace(cfg, loop=True))

    monkeypatch.setattr(camera_mod, "open_camera", open_camera)
    monkeypatch.delenv("SAYSEE_CONFIG", raising=False)
    config = tmp_path / "box.toml"
    config.write_text("[camera]\nwidth = 128\nheight = 72\nfps = 30.0\n")
    wav = tmp_path / "mic.wav"
    write_wav(wav, 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * 48000) / 48000), 48000)
    return config, wav, opened


def _record_main(tmp_path, config, wav, *extra):
    from device.marimba.recorder import main

    out = tmp_path / "take"
    rc = main(["--config", str(config), "--seconds", "0.4", "--out", str(out), "--mic", "sim",
               "--playlist", str(wav), *extra])
    return rc, out


def test_records_at_the_configs_camera_size_and_guides_the_user(tmp_path, config_size, capsys):
    config, wav, opened = config_size
    rc, out = _record_main(tmp_path, config, wav)
    assert rc == 0
    assert (opened[0].width, opened[0].height) == (128, 72)
    assert check_complete(out)["frame_size"] == [72, 128]
    captured = capsys.readouterr()
    assert "play each bar a few times, then play freely; 2 minutes is enough" in captured.out
    assert "128x72" in captured.out
    assert captured.err == ""


def test_another_size_than_the_boxs_is_recorded_with_one_warning(tmp_path, config_size, capsys):
    config, wav, _ = config_size
    rc, out = _record_main(tmp_path, config, wav, "--size", "64", "48")
    assert rc == 0
    assert check_complete(out)["frame_size"] == [48, 64]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "warning" in lines[0], lines
    assert "64x48" in lines[0] and "128x72" in lines[0] and str(config) in lines[0]


def test_without_a_config_the_defaults_are_the_boxs_size():
    import argparse

    from device.config import Config
    from device.marimba.recorder import camera_config

    args = argparse.Namespace(device=None, fps=None, size=None)
    cam = camera_config(Config(), args)
    assert (cam.width, cam.height, cam.fps) == (Config().camera.width, Config().camera.height, Config().camera.fps)
    args.size, args.fps = (320, 240), 15.0
    cam = camera_config(Config(), args)
    assert (cam.width, cam.height, cam.fps) == (320, 240, 15.0)


def test_a_killed_recording_is_not_lost_finish_keeps_it(tmp_path, sim_sources):
    """kill -9 (or a power cut) mid-recording: no manifest, but the journal, the patched WAV header and the
    frames so far let --finish keep what both video and audio cover; until then readers say so in one line."""
    video, wav = sim_sources
    out = tmp_path / "take"
    _interrupted(out, video, wav, 2.0, lambda p: p.kill())
    assert not (out / MANIFEST).exists()
    from device.errors import InputFileError
    from device.marimba.recording import read_manifest

    with pytest.raises(InputFileError, match="an interrupted recording .* record-marimba --finish"):
        read_manifest(out)
    r = subprocess.run([sys.executable, "-m", "device", "record-marimba", "--finish", str(out)], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = check_complete(out)
    assert m["interrupted"] is True and m["n_frames"] >= 30  # at least a second of the two
    assert not (out / "partial.json").exists() and not (out / "frame_times.partial").exists()
    from training.datasets.marimba_io import load_recording

    assert len(load_recording(out).frames) == m["n_frames"]


class SilencedMic(PacedMic):
    """A USB mic pulled out after ``seconds``: reads then time out, and it never says it finished."""

    is_finished = False

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def read(self, timeout=None):
        if self.n >= self.seconds * self.sample_rate:
            time.sleep(timeout or 0)
            return None
        return super().read(timeout)


def test_a_microphone_pulled_out_stops_the_recording_in_one_line_and_keeps_it(tmp_path):
    from device.errors import InputFileError

    lines = []
    with pytest.raises(InputFileError, match=r"the microphone stopped delivering at 1\.0 s \(unplugged\?\); "
                                             r"what came before was kept"):
        record(PacedCamera(), SilencedMic(1.0), 30.0, tmp_path / "take", progress=lines.append)
    m = check_complete(tmp_path / "take")
    assert m["stopped_by"].startswith("the microphone stopped delivering")
    assert lines and lines[0].startswith("record-marimba:   1.0 / 30 s")  # a progress line every second


def test_without_opencv_frames_stream_to_disk_and_end_as_frames_npy(tmp_path):
    """No OpenCV on the box: frames go to frames.raw as they come (memory flat), frames.npy at the end."""
    from device.marimba.dataset import FRAMES_NPY, FRAMES_RAW, DatasetWriter

    w = DatasetWriter(tmp_path / "rec", 16000, FPS, video="npy")
    frames = [np.full((24, 32), i, np.uint8) for i in range(40)]
    for i, f in enumerate(frames):
        w.add_frame(f, i / FPS)
    assert (tmp_path / "rec" / FRAMES_RAW).stat().st_size >= 40 * 24 * 32 - 8192  # on disk as they come
    w.add_audio(np.zeros(int(40 / FPS * 16000), np.int16))
    w.close()
    assert np.array_equal(np.load(tmp_path / "rec" / FRAMES_NPY), np.stack(frames))
    assert not (tmp_path / "rec" / FRAMES_RAW).exists()
