"""`python -m device classify` streams (issue 9, item 11): memory does not grow with the
file's length, lines come out as windows are classified, and the result is the same
as classifying the whole file at once, however the file is cut into blocks."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.frontend import LogMelParams, to_float
from device.resample import Resampler, _polyphase_filter, resample
from device.sound.classify import classify_audio, classify_stream, stream_audio
from device.wavfile import read_wav, write_wav

pytestmark = pytest.mark.device_venv

P = LogMelParams()
MiB = 1 << 20


class FeatureModel:
    """A stand-in for the TFLite model whose output depends on every feature value,
    so equal outputs mean equal features (the real model quantizes them first)."""

    labels = [f"class_{i}" for i in range(5)]

    def predict(self, feats: np.ndarray) -> np.ndarray:
        x = np.asarray(feats, dtype=np.float64)
        return np.array([x.sum(), x.std(), x[::2].sum(), x[:, ::3].sum(), x.max()])


def _write_hour(path: Path, rate: int = 16000, minutes: int = 60) -> None:
    """One hour, written a minute at a time: a tone in each minute's first second, then silence."""
    t = np.arange(rate) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for minute in range(minutes):
            block = np.zeros(60 * rate, np.int16)
            block[:rate] = (8000 * np.sin(2 * np.pi * (300 + 20 * minute) * t)).astype(np.int16)
            w.writeframes(block.tobytes())


def test_an_hour_long_file_is_classified_in_flat_memory(tmp_path):
    """Today's whole-file path peaked at 858 MiB on this file; the bound is 200 MiB."""
    if not (PROJECT_ROOT / "models" / "sound.tflite").exists():
        pytest.skip("models/sound.tflite not built yet (make models)")
    wav = tmp_path / "hour.wav"
    _write_hour(wav)
    out = tmp_path / "out.txt"
    peak_file = tmp_path / "vmhwm.txt"
    # The child reports its own high-water mark (VmHWM of the exec'd process). ru_maxrss
    # would also count the pages of the forked pytest parent (hundreds of MiB with
    # TensorFlow loaded by earlier tests), which classify never touches.
    launcher = (
        "import atexit, runpy, sys\n"
        "def peak():\n"
        "    with open('/proc/self/status') as f, open(sys.argv_peak, 'w') as o:\n"
        "        o.write(next(line for line in f if line.startswith('VmHWM')))\n"
        "sys.argv_peak = sys.argv.pop(1)\n"
        "atexit.register(peak)\n"
        "runpy.run_module('device', run_name='__main__', alter_sys=True)\n"
    )
    with open(out, "w") as stdout:
        # --hop 60: one model call a minute keeps the test quick; every window is still read.
        proc = subprocess.run([sys.executable, "-c", launcher, str(peak_file), "classify", "--hop", "60", str(wav)],
                              stdout=stdout, stderr=subprocess.PIPE, cwd=PROJECT_ROOT)
    wav.unlink()  # 115 MB; pytest keeps the last runs' temp folders
    assert proc.returncode == 0, proc.stderr.decode()
    peak_mib = int(peak_file.read_text().split()[1]) * 1024 / MiB  # "VmHWM:  123 kB"
    assert 20 < peak_mib <= 200, f"classify peaked at {peak_mib:.0f} MiB on a 1-hour file"
    rows = out.read_text().splitlines()[1:]
    starts = [float(r.split("-")[0]) for r in rows]
    assert starts == [60.0 * m for m in range(60)]


def test_lines_come_out_before_the_input_ends():
    """An endless source still yields results: nothing waits for the whole input."""

    def endless():
        rng = np.random.default_rng(0)
        while True:
            yield rng.standard_normal(1234) * 0.1

    rows = list(itertools.islice(classify_stream(FeatureModel(), endless(), P), 5))
    assert [r[0] for r in rows] == [0.0, 0.25, 0.5, 0.75, 1.0]


def _whole_file_rows(path, model):
    """What classify computed before it streamed: whole file read, resampled, windowed."""
    data, rate = read_wav(path)
    mono = to_float(data)
    audio = resample(mono, rate, P.sample_rate) if rate != P.sample_rate else mono
    return classify_audio(model, audio, P)


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (48000, 1), (8000, 1)])
@pytest.mark.parametrize("block_seconds", [0.01, 0.37, 2.0, 30.0])
def test_streamed_result_equals_the_whole_file_result(tmp_path, rate, channels, block_seconds):
    rng = np.random.default_rng(rate)
    n = int(3.3 * rate)
    audio = (0.3 * np.sin(np.arange(n) * 2 * np.pi * 440 / rate) + 0.05 * rng.standard_normal(n))
    wav = tmp_path / "x.wav"
    write_wav(wav, np.stack([audio] * channels, axis=1) if channels > 1 else audio, rate)
    model = FeatureModel()
    want = _whole_file_rows(wav, model)
    got = list(classify_stream(model, stream_audio(wav, P.sample_rate, block_seconds), P))
    assert len(got) == len(want) == 1 + (int(3.3 * 16000) - P.samples_per_window) // P.samples_per_hop
    for (s1, l1, b1), (s2, l2, b2) in zip(got, want):
        assert s1 == s2 and l1 == pytest.approx(l2, abs=1e-9)
        assert [lab for lab, _ in b1] == [lab for lab, _ in b2]
        np.testing.assert_allclose([p for _, p in b1], [p for _, p in b2], rtol=1e-9)


def test_every_nth_window_is_the_same_window(tmp_path):
    wav = tmp_path / "x.wav"
    write_wav(wav, np.random.default_rng(1).standard_normal(5 * 16000) * 0.1, 16000)
    model = FeatureModel()
    every = list(classify_stream(model, stream_audio(wav, 16000), P))
    fourth = list(classify_stream(model, stream_audio(wav, 16000), P, every=4))
    assert fourth == every[::4]


def test_short_file_gives_one_padded_window_as_before(tmp_path):
    wav = tmp_path / "x.wav"
    write_wav(wav, np.full(4000, 3000, np.int16), 16000)
    model = FeatureModel()
    got = list(classify_stream(model, stream_audio(wav, 16000), P))
    assert got == _whole_file_rows(wav, model) and len(got) == 1


def test_load_audio_via_stream_equals_the_whole_file_resample(tmp_path):
    from device.sound.classify import load_audio

    x = np.random.default_rng(2).standard_normal(44100 * 2) * 0.1
    wav = tmp_path / "x.wav"
    write_wav(wav, x, 44100)
    data, _ = read_wav(wav)
    np.testing.assert_array_equal(load_audio(wav, 16000), resample(to_float(data), 44100, 16000))


# ------------------------------------------------------------------ the resampler's memory


def _traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_resampler_memory_does_not_grow_with_the_chunk():
    """A 1 s chunk at 384 kHz used to build 16000 x 481 gather matrices (~180 MiB)."""
    x = np.zeros(384000)
    r = Resampler(384000, 16000, zero_phase=True)
    r.process(x[:10])  # build the filter outside the measurement
    peak = _traced_peak(lambda: r.process(x))
    assert peak <= 4 * x.nbytes + 16 * MiB, f"{peak / MiB:.0f} MiB for a {x.nbytes / MiB:.0f} MiB chunk"


def test_resampler_filter_design_needs_no_full_length_temporaries():
    """An awkward ratio (up 2000, down 47999) has a 960 k-tap filter: designing it used to
    take 13 times the filter's size in temporaries (99 MiB for a 7 MiB bank)."""
    _polyphase_filter.cache_clear()
    holder = []
    peak = _traced_peak(lambda: holder.append(_polyphase_filter(2000, 47999)))
    bank = holder[0]
    assert bank.shape == (2000, 480)
    assert peak <= 1.5 * bank.nbytes, f"{peak / MiB:.0f} MiB to build a {bank.nbytes / MiB:.0f} MiB filter"
    _polyphase_filter.cache_clear()

