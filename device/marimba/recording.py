"""Reading a marimba recording folder on the box (numpy + the stdlib; OpenCV only for video files).

The folder layout is ``device.marimba.dataset``'s (manifest.json, video.avi or
frames.npy, audio.wav, frame_times.csv). ``read_recording(folder)`` loads it
whole for the device-side tools that need every frame at once (calibration,
transcription); ``training.datasets.marimba_io`` builds on the same pieces.
Every problem is one ``InputFileError`` line naming the file: a missing
manifest, no audio, a video that can't be decoded or was cut short, frame
times that don't match the frames.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from device.errors import InputFileError
from device.jsonfile import read_json_object
from device.marimba.dataset import AUDIO, FRAME_TIMES, FRAMES_NPY, MANIFEST, VIDEO

__all__ = ["read_manifest", "video_path", "read_frames", "read_frame_times", "read_recording_audio",
           "read_recording"]


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's manifest.json as a dict (one line when missing or not JSON)."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise InputFileError(f"{folder}: no such recording folder")
    if not path.is_file():
        from device.marimba.dataset import PARTIAL, interrupted_message

        if (Path(folder) / PARTIAL).is_file():
            raise InputFileError(interrupted_message(Path(folder)))
        raise InputFileError(f"{path}: manifest missing (not a marimba recording folder)")
    m = read_json_object(path, InputFileError, "recording manifest")
    for key in ("video", "audio", "frame_times", "ground_truth"):
        if key in m and not isinstance(m[key], str):
            raise InputFileError(f"{path}: {key} = {m[key]!r}: expected a file name")
    size = m.get("frame_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise InputFileError(f"{path}: frame_size = {size!r}: expected [height, width] in pixels")
    for key in ("fps", "n_frames"):
        v = m.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0):
            raise InputFileError(f"{path}: {key} = {v!r}: expected a number")
    return m


def check_lengths(folder: Path, video: Path, video_s: float, audio: Path, audio_s: float, window_s: float) -> None:
    """Video and audio of one recording must last the same within one frame window (else the audio's
    notes would be paired with the wrong frames)."""
    if abs(video_s - audio_s) > window_s + 1e-6:
        raise InputFileError(f"{folder}: video {video.name} lasts {video_s:.3f} s but audio {audio.name} "
                             f"lasts {audio_s:.3f} s (they differ by more than one {window_s:.3f} s frame window)")


def video_path(folder: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """The recording's video (the manifest's ``video``, else video.avi or frames.npy)."""
    folder = Path(folder)
    name = manifest.get("video")
    if name:
        return folder / name
    for cand in (VIDEO, FRAMES_NPY):
        if (folder / cand).exists():
            return folder / cand
    raise InputFileError(f"{folder}: no video (expected {VIDEO} or {FRAMES_NPY})")


def _gray(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3:
        a = a.mean(axis=2)
    return a if a.dtype == np.uint8 else np.clip(a, 0, 255).astype(np.uint8)


def read_frames(path: str | os.PathLike, expected: int | None = None) -> np.ndarray:
    """All frames of a video file or frames.npy as (N, H, W) uint8; ``expected`` frames or one line why not."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: video file missing")
    if path.suffix.lower() == ".npy":
        try:
            frames = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputFileError(f"{path}: truncated or unreadable frames file ({e})") from None
        if frames.ndim == 4 and frames.shape[3] in (1, 3):
            frames = frames.mean(axis=3)
        if frames.ndim != 3 or len(frames) == 0:
            raise InputFileError(f"{path}: expected (frames, height, width) images, got shape {frames.shape}")
        frames = frames if frames.dtype == np.uint8 else np.clip(frames, 0, 255).astype(np.uint8)
    else:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's chatter on a cut file: we say it once
        try:
            import cv2  # lazily: the box may have no OpenCV (frames.npy recordings need none)
        except ImportError:
            raise InputFileError(f"{path}: reading a video file needs OpenCV (pip install "
                                 "opencv-python-headless); recordings with frames.npy need none") from None
        cap = cv2.VideoCapture(str(path))
        out = []
        try:
            while cap.isOpened():
                ok, img = cap.read()
                if not ok or img is None:
                    break
                out.append(_gray(img))
        finally:
            cap.release()
        if not out:
            raise InputFileError(f"{path}: unreadable video (no frames could be decoded)")
        if len({f.shape for f in out}) > 1:
            raise InputFileError(f"{path}: frames of different sizes in one video")
        frames = np.stack(out)
    if expected is not None and len(frames) != int(expected):
        what = "truncated video" if len(frames) < int(expected) else "more frames than recorded"
        raise InputFileError(f"{path}: {what}: {len(frames)} frames decoded, the manifest says {int(expected)}")
    return frames


def read_frame_times(path: str | os.PathLike, n_frames: int, fps: float) -> np.ndarray:
    """Seconds after audio sample 0 per frame (``index,time_s`` CSV, or a .npy); ``i / fps`` when there is no file."""
    path = Path(path)
    if not path.exists():
        return np.arange(n_frames) / float(fps)
    try:
        if path.suffix == ".npy":
            times = np.load(path, allow_pickle=False).astype(np.float64).reshape(-1)
            return _checked_times(path, times, n_frames)
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        header = [h.strip() for h in rows[0]] if rows else []
        if "time_s" in header:
            col, body = header.index("time_s"), rows[1:]
        else:
            col, body = (0 if rows and len(rows[0]) == 1 else 1), rows
        times = np.array([float(r[col]) for r in body], dtype=np.float64)
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
        raise InputFileError(f"{path}: unreadable frame times ({e})") from None
    return _checked_times(path, times, n_frames)


def _checked_times(path: Path, times: np.ndarray, n_frames: int) -> np.ndarray:
    if len(times) != n_frames:
        raise InputFileError(f"{path}: {len(times)} frame times for {n_frames} video frames")
    if not np.all(np.isfinite(times)):
        raise InputFileError(f"{path}: frame times must be numbers (found NaN or infinity)")
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise InputFileError(f"{path}: frame times must increase")
    return times


def read_recording_audio(folder: str | os.PathLike, manifest: dict[str, Any],
                         sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """(mono float32 audio, its rate); resampled to ``sample_rate`` when given."""
    from device.wavfile import read_wav

    folder = Path(folder)
    path = folder / manifest.get("audio", AUDIO)
    if not path.is_file():
        raise InputFileError(f"{folder}: video without audio ({path.name} missing); the notes come from the "
                             "sound, so a recording needs both")
    samples, rate = read_wav(path)
    if samples.ndim == 2:
        samples = samples.astype(np.float64).mean(axis=1)
    if len(samples) == 0:
        raise InputFileError(f"{path}: audio file is empty")
    audio = np.asarray(samples, dtype=np.float64) / 32768.0
    if sample_rate is not None and int(sample_rate) != int(rate):
        from device.resample import resample

        audio, rate = resample(audio, int(rate), int(sample_rate)), int(sample_rate)
    return audio.astype(np.float32), int(rate)


def read_recording(folder: str | os.PathLike, sample_rate: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float, dict[str, Any]]:
    """A whole recording folder: (frames (N, H, W) uint8, frame_times (N,), audio float32, sample_rate, fps, manifest).

    ``sample_rate``: resample the audio to it (default: the file's rate).
    """
    folder = Path(folder)
    m = read_manifest(folder)
    video = video_path(folder, m)
    audio, rate = read_recording_audio(folder, m, sample_rate)  # before decoding: the cheap refusal first
    try:
        fps = float(m.get("fps", 30.0))
    except (TypeError, ValueError):
        raise InputFileError(f"{folder / MANIFEST}: fps {m.get('fps')!r} is not a number") from None
    if not 0 < fps < 1000:
        raise InputFileError(f"{folder / MANIFEST}: fps {fps:g} is out of range")
    expected = m.get("n_frames")
    frames = read_frames(video, int(expected) if isinstance(expected, (int, float)) and expected > 0 else None)
    declared = m.get("frame_size")
    if declared and tuple(int(v) for v in declared) != frames.shape[1:3]:
        raise InputFileError(f"{video}: frame size {frames.shape[2]}x{frames.shape[1]} differs from the "
                             f"manifest's {int(declared[1])}x{int(declared[0])}")
    times = read_frame_times(folder / m.get("frame_times", FRAME_TIMES), len(frames), fps)
    return frames, times, audio, rate, fps, m
