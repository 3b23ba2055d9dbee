"""`python -m device classify FILE.wav`: top-3 sound classes for each 1 s window.

Runs exactly the device path (stdlib WAV reader, numpy resampler, shared front
end, int8 TFLite model) so what it prints is what the box would decide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from device.config import PROJECT_ROOT
from device.frontend import LogMelParams, dbfs, sliding_windows, to_float
from device.model import Model
from device.resample import resample
from device.wavfile import read_wav


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Any integer-PCM WAV -> mono float at the model's rate."""
    data, rate = read_wav(path)
    mono = to_float(data)
    return resample(mono, rate, sample_rate) if rate != sample_rate else mono


def classify_audio(model: Model, audio, params: LogMelParams, top: int = 3):
    """[(start s, level dBFS, [(label, prob) * top])] for each hop-spaced window."""
    rows = []
    n = params.samples_per_window
    for start, feats in sliding_windows(audio, params):
        s = int(round(start * params.sample_rate))
        level = dbfs(audio[s : s + n])
        probs = model.predict(feats)
        best = np.argsort(probs)[::-1][:top]
        rows.append((start, level, [(model.labels[i], float(probs[i])) for i in best]))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device classify", description=__doc__.split("\n")[0])
    ap.add_argument("wav", nargs="+", help="WAV file(s) to classify")
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "sound.tflite"))
    ap.add_argument("--hop", type=float, default=1.0, help="seconds between printed windows (default 1.0)")
    args = ap.parse_args(argv)
    params = LogMelParams()
    # Every input is read before the model loads, so a bad file is reported before anything else.
    audios = [(path, load_audio(path, params.sample_rate)) for path in args.wav]
    model = Model(args.model, expected_frontend=params)
    step = max(1, int(round(args.hop / params.hop_seconds)))
    for path, audio in audios:
        print(f"{path}:")
        rows = classify_audio(model, audio, params)
        for start, level, best in rows[::step]:
            quiet = "  (below silence gate)" if level < params.silence_dbfs else ""
            tops = "  ".join(f"{label} {p:.2f}" for label, p in best)
            print(f"  {start:6.2f}-{start + params.window_seconds:.2f}s  {tops}{quiet}")
    return 0
