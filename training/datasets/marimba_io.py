"""Reading marimba dataset folders (recorded or synthetic) for training.

The layout is defined by ``device.marimba.dataset`` (manifest.json, video.avi
or frames.npy, audio.wav, frame_times.csv, optional notes.csv). Every problem
is an ``InputFileError`` whose one-line message names the file: a video
without audio, an unreadable video or WAV, frame times that don't match the
frames, a wrong frame size, or video and audio whose lengths differ by more
than one frame window.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from device.errors import InputFileError
from device.frontend import NoteParams
from device.marimba.dataset import AUDIO, FRAME_TIMES, MANIFEST, PARTIAL, interrupted_message
from device.marimba.recording import check_lengths, read_frame_times, read_frames, read_manifest, video_path

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".npy")


@dataclass
class Recording:
    """One dataset folder loaded: frames, their times, the audio, ground truth if any."""

    folder: Path
    frames: np.ndarray  # (N, H, W) uint8
    frame_times: np.ndarray  # (N,) seconds after audio sample 0
    audio: np.ndarray  # (samples,) float32 mono at sample_rate
    sample_rate: int
    fps: float
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[tuple[float, int, int]] | None = None  # ground truth (onset_s, midi, velocity)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:3])  # type: ignore[return-value]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def find_recordings(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Dataset folders under ``paths``: each path is a folder with a manifest, or holds such folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputFileError(f"{p}: no such dataset folder")
        if (p / MANIFEST).is_file():
            found.append(p)
            continue
        if not p.is_dir():
            raise InputFileError(f"{p}: not a dataset folder (expected a folder holding {MANIFEST})")
        subs = sorted(d for d in p.rglob(MANIFEST))
        for partial in sorted(p.rglob(PARTIAL)):  # never skipped in silence: the user may want it kept
            if not (partial.parent / MANIFEST).is_file():
                warnings.warn(f"skipped: {interrupted_message(partial.parent)}", stacklevel=2)
        if not subs:
            raise InputFileError(f"{p}: no marimba recordings found (no {MANIFEST} in it or below)")
        found += [s.parent for s in subs]
    return found


# The numpy-only reading is the box's (calibrate-marimba and transcribe read recordings there too).
_manifest = read_manifest
_video_path = video_path


def read_video(path: Path) -> np.ndarray:
    """All frames of a video file (or a frames.npy) as (N, H, W) uint8 grayscale."""
    return read_frames(path)


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at ``sample_rate`` (resampled with soxr when the file differs)."""
    if not path.is_file():
        raise InputFileError(f"{path}: audio file missing")
    import soundfile as sf

    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types (LibsndfileError, RuntimeError, ...) for bad files
        raise InputFileError(f"{path}: unreadable audio ({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    audio = audio.mean(axis=1)
    if len(audio) == 0:
        raise InputFileError(f"{path}: audio file is empty")
    if sr != sample_rate:
        import soxr

        audio = soxr.resample(audio, sr, sample_rate).astype(np.float32)
    return audio


def read_ground_truth(path: Path) -> list[tuple[float, int, int]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return sorted((float(r["onset_s"]), int(r["midi"]), int(r.get("velocity") or 100)) for r in rows)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"{path}: unreadable ground-truth notes ({e})") from None


def load_recording(folder: str | os.PathLike, params: NoteParams = NoteParams(),
                   frame_size: Sequence[int] | None = None) -> Recording:
    """Load and check one dataset folder; ``frame_size`` (H, W) is required of its video if given."""
    folder = Path(folder)
    m = _manifest(folder)
    video = _video_path(folder, m)
    audio_name = m.get("audio")
    audio_path = folder / audio_name if audio_name else folder / AUDIO
    if not audio_path.exists():
        raise InputFileError(f"{video}: video without audio (expected {audio_path.name} in {folder})")
    fps = float(m.get("fps", params.fps))
    if abs(fps - params.fps) > 1e-6 * params.fps:
        raise InputFileError(f"{folder / MANIFEST}: {fps:g} fps, but the front end expects {params.fps:g} fps")
    frames = read_video(video)
    h, w = frames.shape[1:3]
    declared = m.get("frame_size")
    if declared and tuple(int(v) for v in declared) != (h, w):
        raise InputFileError(f"{video}: frame size {w}x{h} differs from the manifest's "
                             f"{int(declared[1])}x{int(declared[0])}")
    if frame_size is not None and tuple(int(v) for v in frame_size) != (h, w):
        raise InputFileError(f"{video}: wrong frame size {w}x{h} (expected {int(frame_size[1])}x{int(frame_size[0])})")
    audio = read_audio(audio_path, params.sample_rate)
    times = read_frame_times(folder / m.get("frame_times", FRAME_TIMES), len(frames), fps)
    window = params.frames_per_window / fps
    video_len = float(times[-1] + 1.0 / fps - max(times[0], 0.0))
    audio_len = len(audio) / params.sample_rate
    check_lengths(folder, video, video_len, audio_path, audio_len, window)
    gt = m.get("ground_truth")
    notes = read_ground_truth(folder / gt) if gt and (folder / gt).exists() else None
    return Recording(folder=folder, frames=frames, frame_times=times, audio=audio, sample_rate=params.sample_rate,
                     fps=fps, manifest=m, notes=notes)


def usable_windows(rec: Recording, params: NoteParams = NoteParams()) -> np.ndarray:
    """Indices i of windows (frames i..i+k-1) whose audio segment lies inside the recording."""
    k = params.frames_per_window
    n = len(rec.frames) - k + 1
    if n <= 0:
        return np.zeros(0, np.int64)
    starts = rec.frame_times[:n]
    ends = starts + params.segment_samples / params.sample_rate
    return np.flatnonzero((starts >= 0) & (ends <= len(rec.audio) / params.sample_rate + 1e-9))


def load_recordings(paths: Iterable[str | os.PathLike], params: NoteParams = NoteParams(),
                    frame_size: Sequence[int] | None = None, progress: bool = False) -> list[Recording]:
    """Load every dataset folder under ``paths``; all must share one frame size."""
    folders = find_recordings(paths)
    it: Iterable[Path] = folders
    if progress:
        from tqdm import tqdm

        it = tqdm(folders, desc="load recordings", unit="rec", leave=False)
    out = []
    for f in it:
        rec = load_recording(f, params, frame_size)
        frame_size = frame_size or rec.frame_size
        out.append(rec)
    return out
