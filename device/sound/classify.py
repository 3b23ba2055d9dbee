"""`python -m device classify FILE.wav`: top-3 sound classes for each 1 s window.

Runs exactly the device path (stdlib WAV reader, numpy resampler, shared front
end, int8 TFLite model) so what it prints is what the box would decide.
Files are streamed: read, resampled, windowed and classified block by block,
each line printed as soon as it is known, so memory does not grow with the
file's length (an hour-long recording is fine on a Pi).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np

from device.argtypes import positive_finite
from device.config import PROJECT_ROOT
from device.errors import InputFileError
from device.frontend import LogMelParams, dbfs, iter_windows, to_float
from device.model import Model
from device.resample import Resampler
from device.wavfile import iter_wav, wav_info

BLOCK_SECONDS = 4.0  # WAV read size; any size gives the same output


def stream_audio(path: str | Path, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Any integer-PCM WAV as mono float blocks at ``sample_rate`` (zero-phase resampled)."""
    rate, _, _ = wav_info(path)
    resampler = Resampler(rate, sample_rate, zero_phase=True)
    for block in iter_wav(path, block_frames=max(1, int(block_seconds * rate))):
        yield resampler.process(to_float(block))
    yield resampler.flush()


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Any integer-PCM WAV -> mono float at the model's rate, whole (short files only)."""
    return np.concatenate(list(stream_audio(path, sample_rate)))


def classify_stream(model: Model, chunks, params: LogMelParams, top: int = 3, every: int = 1):
    """Yield (start s, level dBFS, [(label, prob) * top]) for every ``every``-th hop-spaced window."""
    for start, window, feats in iter_windows(chunks, params, every=every):
        probs = model.predict(feats)
        best = np.argsort(probs)[::-1][:top]
        yield start, dbfs(window), [(model.labels[i], float(probs[i])) for i in best]


def classify_audio(model: Model, audio, params: LogMelParams, top: int = 3):
    """[(start s, level dBFS, [(label, prob) * top])] for each hop-spaced window."""
    return list(classify_stream(model, [audio], params, top))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device classify", description=__doc__.split("\n")[0])
    ap.add_argument("wav", nargs="+", help="WAV file(s) to classify")
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "sound.tflite"))
    ap.add_argument("--hop", type=positive_finite, default=1.0, help="seconds between printed windows (default 1.0)")
    ap.add_argument("--taught", metavar="DIR", help="also decide among the sounds taught in DIR, and 'unknown'")
    args = ap.parse_args(argv)
    params = LogMelParams()
    # Every header is checked before the model loads, so a bad file is reported before anything else.
    for path in args.wav:
        if wav_info(path)[2] == 0:  # a header and no sound: nothing to classify (not a made-up window)
            raise InputFileError(f"{path}: holds no audio samples")
    model = Model(args.model, expected_frontend=params)
    if args.taught:
        model = _open_set(model, args.taught, params)
    step = max(1, int(round(args.hop / params.hop_seconds)))
    for path in args.wav:
        print(f"{path}:", flush=True)
        for start, level, best in classify_stream(model, stream_audio(path, params.sample_rate), params, every=step):
            quiet = "  (below silence gate)" if level < params.silence_dbfs else ""
            tops = "  ".join(f"{label} {p:.2f}" for label, p in best)
            print(f"  {start:6.2f}-{start + params.window_seconds:.2f}s  {tops}{quiet}", flush=True)
    return 0


def _open_set(model: Model, taught: str, params: LogMelParams):
    """The model seen through the open-set decision: top-1 may be a taught label or 'unknown'."""
    import sys

    from device.config import TeachConfig
    from device.sound.open_set import OpenSetModel
    from device.sound.taught import TaughtStore
    from device.sound.teach import build_decider, load_taught

    if not getattr(model, "has_embedding", False):
        print(f"classify: note: {args_model_name(model)} has no embedding output: taught sounds are not used, "
              "'unknown' is decided by confidence alone", file=sys.stderr)
    # Read only: a look with another --model must not rewrite the prototypes the box's own model made.
    classes = load_taught(TaughtStore(taught), model, params, params.silence_dbfs, recover=False, save=False)
    return OpenSetModel(model, build_decider(model, TeachConfig(), classes))


def args_model_name(model) -> str:
    return str(getattr(model, "path", "the sound model"))
