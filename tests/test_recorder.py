"""record-sound: takes land as complete WAVs under final names, never overwrite,
and a SIGTERM mid-take leaves nothing half-written."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from device.errors import SaySeeError
from device.hardware.base import AudioChunk, Display, Leds, Mic
from device.sound.recorder import RecorderError, main, record_takes, remove_stale_partials, validate_label, write_take

pytestmark = pytest.mark.device_venv

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
NAME_RE = re.compile(r"^dog_bark_\d{8}-\d{6}_\d+(-\d+)?\.wav$")


class ArrayMic(Mic):
    """A finite in-memory mic: chunks of a ramp so continuity between takes is checkable."""

    backend = "sim"

    def __init__(self, samples: np.ndarray, chunk: int = 1000, sample_rate: int = RATE):
        self.samples = np.asarray(samples, dtype=np.int16)
        self.chunk, self.sample_rate, self.pos, self.started = chunk, sample_rate, 0, False

    def start(self) -> None:
        self.started = True

    def read(self, timeout=None):
        if self.pos >= len(self.samples):
            return None
        x = self.samples[self.pos : self.pos + self.chunk]
        chunk = AudioChunk(samples=x, start=self.pos, captured_at=time.monotonic())
        self.pos += len(x)
        return chunk

    @property
    def is_finished(self) -> bool:
        return self.pos >= len(self.samples)


def ramp(seconds: float) -> np.ndarray:
    return (np.arange(int(seconds * RATE)) % 30000).astype(np.int16)


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        return data, w.getframerate(), w.getnchannels(), w.getsampwidth()


def final_wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def write_tone(path: Path, seconds: float) -> Path:
    x = (np.sin(np.arange(int(seconds * RATE)) * 2 * np.pi * 440 / RATE) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(x.tobytes())
    return path


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize("bad", ["", "   ", "a/b", "../up", "a\\b", ".hidden", "_private", "x" * 65, "bad:name", "tab\tname"])
def test_bad_labels_are_one_line_errors(bad):
    with pytest.raises(RecorderError) as e:
        validate_label(bad)
    assert "\n" not in str(e.value) and "--label" in str(e.value)


@pytest.mark.parametrize("good", ["dog_bark", "siren", "car-horn", "Hund bellt", "chien_aboie2", "v1.2"])
def test_good_labels(good):
    assert validate_label(good) == good


def test_bad_label_from_the_cli_exits_non_zero_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "device", "record-sound", "--label", "a/b", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "path separators" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing created for a bad label


# ------------------------------------------------------------------ takes


def test_takes_are_complete_contiguous_wavs(tmp_path):
    src = ramp(4.0)
    mic = ArrayMic(src)
    logs = []
    res = record_takes(mic, "dog_bark", 0.5, 3, tmp_path, countdown=0.25, log=logs.append)
    assert mic.started and len(res.saved) == 3 and res.discarded == 0
    files = final_wavs(tmp_path / "dog_bark")
    assert [p.name for p in files] == sorted(p.name for p in res.saved)
    for i, path in enumerate(sorted(res.saved, key=lambda p: int(p.stem.split("_")[-1]))):
        assert NAME_RE.match(path.name), path.name
        data, rate, ch, width = read_wav(path)
        assert (rate, ch, width, len(data)) == (RATE, 1, 2, 8000)
        # countdown 0.25 s, take 0.5 s, countdown, take...: each take is exactly the audio after its countdown.
        start = int((0.25 + i * 0.75) * RATE)
        np.testing.assert_array_equal(data, src[start : start + 8000])
    assert any("saved" in line for line in logs)
    assert not list((tmp_path / "dog_bark").glob(".*"))  # no temp files left


def test_never_overwrites_an_existing_file(tmp_path):
    fixed = time.mktime((2024, 6, 12, 10, 15, 30, 0, 0, -1))
    folder = tmp_path / "dog_bark"
    folder.mkdir()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(fixed))
    precious = folder / f"dog_bark_{stamp}_1.wav"
    precious.write_bytes(b"not a take, but someone's file")
    for _ in range(2):
        record_takes(ArrayMic(ramp(2.0)), "dog_bark", 0.25, 2, tmp_path, countdown=0, log=lambda s: None,
                     now=lambda: fixed)
    assert precious.read_bytes() == b"not a take, but someone's file"
    names = sorted(p.name for p in final_wavs(folder))
    assert names == sorted([
        precious.name, f"dog_bark_{stamp}_1-2.wav", f"dog_bark_{stamp}_1-3.wav",
        f"dog_bark_{stamp}_2.wav", f"dog_bark_{stamp}_2-2.wav",
    ])


def test_write_take_is_atomic_and_cleans_up(tmp_path):
    path = write_take(tmp_path, "x_1", np.arange(100, dtype=np.int16), RATE)
    assert path.name == "x_1.wav" and read_wav(path)[0].tolist() == list(range(100))
    assert [p.name for p in tmp_path.iterdir()] == ["x_1.wav"]


def test_source_ending_mid_take_discards_it(tmp_path):
    res = record_takes(ArrayMic(ramp(1.2)), "dog_bark", 0.5, 3, tmp_path, countdown=0, log=lambda s: None)
    assert len(res.saved) == 2 and res.discarded == 1 and res.stopped_by == "end of input"
    assert len(final_wavs(tmp_path / "dog_bark")) == 2


def test_stop_event_mid_take_discards_it(tmp_path):
    stop = threading.Event()

    class StoppingMic(ArrayMic):
        def read(self, timeout=None):
            if self.pos >= int(0.75 * RATE):  # in the middle of take 2
                stop.set()
            return super().read(timeout)

    res = record_takes(StoppingMic(ramp(5.0)), "dog_bark", 0.5, 4, tmp_path, countdown=0, stop=stop,
                       log=lambda s: None)
    assert len(res.saved) == 1 and res.discarded == 1
    assert len(final_wavs(tmp_path / "dog_bark")) == 1


def test_stale_partials_are_removed(tmp_path):
    old = tmp_path / ".dog_bark_x_1.123.wav.partial"
    new = tmp_path / ".dog_bark_y_1.456.wav.partial"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_partials(tmp_path) == 1
    assert not old.exists() and new.exists()


class RecordingDisplay(Display):
    def __init__(self):
        self.statuses = []

    def show(self, scene):
        self.statuses.append(scene.status)


class RecordingLeds(Leds):
    def __init__(self):
        self.states = []

    def set(self, rgb, brightness=1.0):
        self.states.append((tuple(rgb), brightness))


def test_countdown_goes_to_display_and_leds(tmp_path, capsys):
    display, leds = RecordingDisplay(), RecordingLeds()
    rc = main(["--label", "dog_bark", "--seconds", "0.25", "--count", "1", "--countdown", "3", "--out", str(tmp_path)],
              mic=ArrayMic(ramp(5.0)), display=display, leds=leds)
    assert rc == 0
    assert display.statuses[:4] == ["3", "2", "1", "recording 1/1"]
    assert leds.states[-1][1] == 0.0  # off at the end
    out = capsys.readouterr().out
    assert "  3\n  2\n  1\n" in out


def test_a_broken_display_never_costs_a_take(tmp_path):
    class BrokenDisplay(Display):
        def show(self, scene):
            raise RuntimeError("screen unplugged")

    logs = []
    res = record_takes(ArrayMic(ramp(3.0)), "dog_bark", 0.25, 2, tmp_path, countdown=1, display=BrokenDisplay(),
                       log=logs.append)
    assert len(res.saved) == 2
    assert sum("display failed" in line for line in logs) == 1


def test_folder_loader_sees_only_complete_takes(tmp_path):
    folders = pytest.importorskip("training.datasets.folders")
    record_takes(ArrayMic(ramp(2.0)), "dog_bark", 0.25, 2, tmp_path, countdown=0, log=lambda s: None)
    record_takes(ArrayMic(ramp(2.0)), "siren", 0.25, 1, tmp_path, countdown=0, log=lambda s: None)
    (tmp_path / "dog_bark" / ".dog_bark_x_3.1.wav.partial").write_bytes(b"RIFF")
    files = folders.list_class_files(str(tmp_path))
    assert sorted(files) == ["dog_bark", "siren"]
    assert len(files["dog_bark"]) == 2 and all(NAME_RE.match(f) for f in files["dog_bark"])


# ------------------------------------------------------------------ the real process, killed


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-u", "-m", "device", "record-sound", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigterm_mid_take_leaves_only_complete_takes(tmp_path):
    pytest.importorskip("device.hardware.mic")
    tone = write_tone(tmp_path / "tone.wav", 12.0)
    out = tmp_path / "data"
    # Real-time sim mic: 1 s takes, so the process is mid-take most of the time.
    proc = _run_cli(["--label", "dog_bark", "--seconds", "1", "--count", "6", "--countdown", "0",
                     "--out", str(out), "--sim", str(tone), "--realtime"])
    try:
        saw_saved = False
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "take 1/6: saved" in line:
                saw_saved = True
                break
        assert saw_saved, proc.stderr.read() if proc.poll() is not None else "no take saved in 30 s"
        time.sleep(0.4)  # ~40 % into take 2
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "discarded" in rest and "Traceback" not in err
    folder = out / "dog_bark"
    files = final_wavs(folder)
    # Normally exactly take 1; a very loaded machine may let take 2 finish first.
    # Either way: every file under a final name is a complete take.
    assert 1 <= len(files) <= 2, [p.name for p in files]
    for path in files:
        assert NAME_RE.match(path.name)
        data, rate, ch, width = read_wav(path)
        assert (rate, ch, width, len(data)) == (RATE, 1, 2, RATE)
    assert not list(folder.glob(".*")), "a temp file was left behind"

    # A second run into the same folder adds takes and never touches the old ones.
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    proc2 = _run_cli(["--label", "dog_bark", "--seconds", "1", "--count", "2", "--countdown", "0",
                      "--out", str(out), "--sim", str(tone), "--fast"])
    _, err2 = proc2.communicate(timeout=60)
    assert proc2.returncode == 0, err2
    after = final_wavs(folder)
    assert len(after) == len(files) + 2
    for name, digest in before.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    for path in after:
        assert len(read_wav(path)[0]) == RATE


def test_config_mic_section_is_used(tmp_path):
    pytest.importorskip("device.hardware.mic")
    write_tone(tmp_path / "tone.wav", 3.0)
    cfg = tmp_path / "box.toml"
    cfg.write_text('[mic]\nbackend = "sim"\nplaylist = ["tone.wav"]\nrealtime = false\n')
    proc = subprocess.run([sys.executable, "-m", "device", "record-sound", "--label", "siren", "--seconds", "0.5",
                           "--count", "2", "--countdown", "0.5", "--config", str(cfg), "--out", str(tmp_path / "d")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(final_wavs(tmp_path / "d" / "siren")) == 2


def test_mic_running_out_is_reported(tmp_path):
    pytest.importorskip("device.hardware.mic")
    tone = write_tone(tmp_path / "tone.wav", 1.0)
    proc = subprocess.run([sys.executable, "-m", "device", "record-sound", "--label", "siren", "--seconds", "0.75",
                           "--count", "3", "--countdown", "0", "--sim", str(tone), "--fast",
                           "--out", str(tmp_path / "d")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "ran out of audio after 1 of 3" in proc.stderr
    assert len(final_wavs(tmp_path / "d" / "siren")) == 1


def test_recorder_error_is_a_saysee_error():
    assert issubclass(RecorderError, SaySeeError)


class PulledMic(ArrayMic):
    """A USB mic pulled out: after its samples, reads time out for ever and it never says it finished."""

    def read(self, timeout=None):
        if self.pos >= len(self.samples):
            time.sleep(timeout or 0)
            return None
        return super().read(timeout)

    @property
    def is_finished(self) -> bool:
        return False


def test_a_mic_pulled_out_stops_recording_and_keeps_the_takes_saved(tmp_path):
    res = record_takes(PulledMic(ramp(1.8)), "dog_bark", 0.5, 5, tmp_path, countdown=0.25, log=lambda s: None)
    assert res.lost_input and "microphone stopped delivering" in res.stopped_by
    assert len(res.saved) == 2 and len(final_wavs(tmp_path / "dog_bark")) == 2 and res.discarded == 1


def test_a_full_card_is_one_line_and_the_takes_saved_before_it_stay(tmp_path, monkeypatch):
    from device.sound import recorder

    real, calls = recorder.write_take, []

    def full_after_two(folder, stem, samples, rate):
        calls.append(stem)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return real(folder, stem, samples, rate)

    monkeypatch.setattr(recorder, "write_take", full_after_two)
    with pytest.raises(RecorderError, match=r"take 3 not saved \(No space left on device\); 2 take\(s\) saved"):
        record_takes(ArrayMic(ramp(4.0)), "dog_bark", 0.5, 4, tmp_path, countdown=0.25, log=lambda s: None)
    assert len(final_wavs(tmp_path / "dog_bark")) == 2


def test_progress_is_reported_while_a_take_records(tmp_path):
    lines = []
    record_takes(ArrayMic(ramp(3.0)), "dog_bark", 2.0, 1, tmp_path, countdown=0.0, log=lambda s: None,
                 log_progress=lines.append)
    assert lines == ["   0.1 / 2 s", "   1.0 / 2 s", "   2.0 / 2 s"]  # the first chunk, then each second
