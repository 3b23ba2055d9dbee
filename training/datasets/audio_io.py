"""Audio files in and out (soundfile + soxr), and the shared "list of files -> Dataset" step.

Any format libsndfile reads (WAV of any bit depth incl. 24-bit, FLAC, OGG, ...),
any channel count (averaged to mono) and any rate (resampled with soxr).
A file that can't be used raises :class:`InputFileError` naming it.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from device.errors import InputFileError
from device.frontend import pad_or_crop

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MAX_WARNINGS = 20  # per load; the rest are summarised, the report lists them all


def read_audio(path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate``; with ``max_seconds`` only its start is read, so
    a 20-minute file kept for its first seconds costs those seconds of memory."""
    import soundfile as sf
    import soxr

    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputFileError(f"{p}: no such file")
    if os.path.isdir(p):
        raise InputFileError(f"{p}: is a folder, not an audio file")
    try:
        frames = -1
        if max_seconds is not None:
            frames = int(np.ceil(max_seconds * sf.info(p).samplerate)) + 64  # the resampler's edge, generously
        data, rate = sf.read(p, frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError, OSError) as e:
        # soundfile's errors (LibsndfileError is a RuntimeError) start with "Error opening '<path>': ".
        reason = getattr(e, "error_string", None) or str(e).split(": ", 1)[-1]
        raise InputFileError(f"{p}: not a readable audio file ({reason.strip().rstrip('.')})") from None
    if data.shape[0] == 0:
        raise InputFileError(f"{p}: contains no audio samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise InputFileError(f"{p}: contains NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono (or (samples, channels)) audio in [-1, 1] as a WAV file, clipping overs."""
    import soundfile as sf

    p = os.fspath(path)
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    try:
        if os.path.dirname(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
        sf.write(p, x, int(sample_rate), subtype=subtype, format="WAV")
    except (RuntimeError, TypeError, ValueError, OSError) as e:
        raise InputFileError(f"{p}: can't write WAV ({e})") from None


def content_span(audio: np.ndarray, sample_rate: int, threshold_dbfs: float = -60.0,
                 frame_seconds: float = 0.01) -> tuple[float, float]:
    """(start, end) seconds of the part of a signal above ``threshold_dbfs`` (10 ms frames).

    Used as onset/offset for real files, whose padding and digital silence
    should not become labelled training windows. All-quiet audio gives the whole span.
    """
    x = np.asarray(audio, dtype=np.float32)
    hop = max(int(frame_seconds * sample_rate), 1)
    n = len(x) // hop
    if n == 0:
        return 0.0, len(x) / sample_rate
    rms = np.sqrt(np.mean(np.square(x[: n * hop].reshape(n, hop)), axis=1))
    loud = np.flatnonzero(rms >= 10.0 ** (threshold_dbfs / 20.0))
    if len(loud) == 0:
        return 0.0, len(x) / sample_rate
    return loud[0] * hop / sample_rate, min((loud[-1] + 1) * hop, len(x)) / sample_rate


def default_workers() -> int:
    # Decoding and soxr release the GIL, so threads overlap file reads and resampling.
    return max(1, min(8, os.cpu_count() or 1))


def warn_skipped(skipped: Sequence[tuple[str, str]], what: str) -> None:
    """One DatasetWarning per skipped file (the first MAX_WARNINGS), then a summary."""
    from training.datasets import DatasetWarning

    for f, reason in skipped[:MAX_WARNINGS]:
        warnings.warn(f"{f}: skipped: {reason}", DatasetWarning, stacklevel=3)
    if len(skipped) > MAX_WARNINGS:
        warnings.warn(f"{what}: {len(skipped) - MAX_WARNINGS} more files skipped; see the dataset report",
                      DatasetWarning, stacklevel=3)


def load_files(entries: Sequence[tuple[str, str, int]], *, sample_rate: int, clip_seconds: float,
               progress: bool, workers: int | None, desc: str):
    """Read (path, label, fold) entries into clips, in order; returns (clips, skipped).

    Each clip is padded/cropped to ``clip_seconds``; onset/offset come from
    :func:`content_span` of the real (unpadded) audio.
    """
    from training.datasets import Clip

    n = int(round(clip_seconds * sample_rate))

    def one(entry):
        path, label, fold = entry
        try:
            x = read_audio(path, sample_rate, max_seconds=clip_seconds)
        except InputFileError as e:
            msg = str(e)
            return None, (path, msg[len(path) + 2:] if msg.startswith(path + ": ") else msg)
        onset, offset = content_span(x[:n], sample_rate)
        return Clip(np.ascontiguousarray(pad_or_crop(x, n)), label, int(fold), path,
                    onset=round(onset, 4), offset=round(offset, 4)), None

    clips, skipped = [], []
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        results = pool.map(one, entries)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(entries), desc=desc, unit="file", leave=False)
        for clip, skip in results:
            if clip is not None:
                clips.append(clip)
            else:
                skipped.append(skip)
    warn_skipped(skipped, desc)
    return clips, skipped


def load_entries_or_fail(entries: Sequence[tuple[str, str, int]], root: str, name: str, skipped: list, *,
                         sample_rate: int, clip_seconds: float, progress: bool, workers: int | None):
    """load_files for a whole dataset; adds the unreadable files to ``skipped`` and refuses an empty result."""
    clips, bad = load_files(entries, sample_rate=sample_rate, clip_seconds=clip_seconds, progress=progress,
                            workers=workers, desc=name)
    skipped += bad
    if not clips:
        example = f", e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise InputFileError(f"{root}: no {name} clip could be loaded ({len(skipped)} skipped{example})")
    return clips
