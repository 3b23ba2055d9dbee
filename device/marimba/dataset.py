"""The marimba dataset folder: one layout for real recordings and synthetic videos.

``python -m device record-marimba`` writes it from a camera and a mic,
``training.datasets.marimba_synth`` writes rendered videos into it, and
``training.datasets.marimba_io`` reads it for training::

    DIR/manifest.json     format "saysee-marimba" v1: fps, frame_size [H, W], n_frames,
                          sample_rate, audio_samples, duration_s, notes, source, file names
    DIR/video.avi         grayscale frames, lossless FFV1 (frames.npy (N, H, W) uint8
                          instead when OpenCV is not installed)
    DIR/audio.wav         mono int16 PCM
    DIR/frame_times.csv   "index,time_s": each frame's capture time in seconds
                          after audio sample 0 (the pairing of video and audio)
    DIR/notes.csv         optional ground truth "onset_s,midi,velocity" (synthetic only;
                          used for evaluation, never for training)

The manifest is written last (atomically), so a folder that has one is a
finished recording. A dataset folder is never overwritten: an existing
non-empty folder is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import wave
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from device.atomic import write_atomic
from device.errors import InputFileError
from device.frontend import DIATONIC_C4_F6

__all__ = ["FORMAT", "VERSION", "MANIFEST", "VIDEO", "FRAMES_NPY", "AUDIO", "FRAME_TIMES", "GROUND_TRUTH",
           "check_new_folder", "DatasetWriter", "write_dataset"]

FORMAT = "saysee-marimba"
VERSION = 1
MANIFEST = "manifest.json"
VIDEO = "video.avi"
FRAMES_NPY = "frames.npy"
AUDIO = "audio.wav"
FRAME_TIMES = "frame_times.csv"
GROUND_TRUTH = "notes.csv"
FOURCC = "FFV1"  # lossless; MJPG as a fallback where FFV1 is missing


def check_new_folder(folder: str | os.PathLike) -> Path:
    """Refuse an existing non-empty folder (recordings are never overwritten)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputFileError(f"{folder}: already exists and is not empty; recordings are never "
                             "overwritten, choose a new folder")
    return folder


def _to_int16(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 2:
        a = a.mean(axis=1) if a.dtype != np.int16 else a.astype(np.int32).mean(axis=1).astype(np.int16)
    if a.dtype == np.int16:
        return a
    return np.clip(np.rint(np.asarray(a, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)


class DatasetWriter:
    """Streams frames and audio into a new dataset folder; ``close`` writes the rest.

    Frames are added with their times (``add_frame``), audio as chunks
    (``add_audio``; int16, or float in [-1, 1]) from any one thread. The frame
    times must already be relative to audio sample 0 unless ``close`` gets
    ``audio_start`` (a time on the frames' clock at which sample 0 was heard).
    """

    def __init__(self, folder: str | os.PathLike, sample_rate: int, fps: float, *,
                 notes: Sequence[int] = DIATONIC_C4_F6, source: str = "camera",
                 video: str = "auto", extra: Mapping[str, Any] | None = None):
        self.folder = check_new_folder(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sample_rate, self.fps = int(sample_rate), float(fps)
        self.notes, self.source, self.extra = [int(n) for n in notes], source, dict(extra or {})
        self._video_mode = video  # "auto" | "avi" | "npy"
        self._writer: Any = None
        self._npy_frames: list[np.ndarray] = []
        self._frame_size: tuple[int, int] | None = None
        self._times: list[float] = []
        self._wav = wave.open(str(self.folder / AUDIO), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.sample_rate)
        self.audio_samples = 0
        self.closed = False

    def _open_video(self, h: int, w: int) -> None:
        self._frame_size = (h, w)
        if self._video_mode in ("auto", "avi"):
            try:
                import cv2  # lazily: the device may run without OpenCV
            except ImportError:
                if self._video_mode == "avi":
                    raise
                cv2 = None
            if cv2 is not None:
                for fourcc in (FOURCC, "MJPG"):
                    wr = cv2.VideoWriter(str(self.folder / VIDEO), cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                         (w, h), isColor=False)
                    if wr.isOpened():
                        self._writer, self.fourcc = wr, fourcc
                        return
        self._video_mode, self.fourcc = "npy", None

    def add_frame(self, image: np.ndarray, t: float) -> None:
        img = np.asarray(image)
        if img.ndim == 3:
            img = img.mean(axis=2)
        img = np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img
        if self._frame_size is None:
            self._open_video(*img.shape)
        if img.shape != self._frame_size:
            raise InputFileError(f"{self.folder / VIDEO}: frame size {img.shape[1]}x{img.shape[0]} differs from "
                                 f"the first frame's {self._frame_size[1]}x{self._frame_size[0]}")
        if self._writer is not None:
            self._writer.write(np.ascontiguousarray(img))
        else:
            self._npy_frames.append(img.copy())
        self._times.append(float(t))

    def add_frames(self, frames: Iterable[np.ndarray], times: Iterable[float]) -> None:
        for img, t in zip(frames, times):
            self.add_frame(img, t)

    def add_audio(self, samples: np.ndarray) -> None:
        a = _to_int16(samples)
        self._wav.writeframes(a.astype("<i2").tobytes())
        self.audio_samples += len(a)

    @property
    def n_frames(self) -> int:
        return len(self._times)

    def close(self, audio_start: float = 0.0, ground_truth: Sequence[tuple[float, int, int]] | None = None,
              extra: Mapping[str, Any] | None = None) -> Path:
        """Finish the files and write frame_times.csv, notes.csv and manifest.json."""
        if self.closed:
            return self.folder
        self.closed = True
        self._wav.close()
        if self._writer is not None:
            self._writer.release()
            video_name = VIDEO
        else:
            h, w = self._frame_size or (0, 0)
            np.save(self.folder / FRAMES_NPY, np.stack(self._npy_frames) if self._npy_frames
                    else np.zeros((0, h, w), np.uint8))
            video_name = FRAMES_NPY
        times = np.asarray(self._times, dtype=np.float64) - float(audio_start)
        write_atomic(self.folder / FRAME_TIMES,
                     "index,time_s\n" + "".join(f"{i},{t:.6f}\n" for i, t in enumerate(times)))
        manifest: dict[str, Any] = {
            "format": FORMAT, "version": VERSION, "source": self.source,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "video": video_name, "video_codec": getattr(self, "fourcc", None),
            "audio": AUDIO, "frame_times": FRAME_TIMES,
            "fps": self.fps, "frame_size": list(self._frame_size or (0, 0)), "n_frames": len(times),
            "sample_rate": self.sample_rate, "audio_samples": self.audio_samples,
            "duration_s": round(self.audio_samples / self.sample_rate, 6), "notes": self.notes,
        }
        if ground_truth is not None:
            write_atomic(self.folder / GROUND_TRUTH, "onset_s,midi,velocity\n"
                         + "".join(f"{t:.6f},{int(m)},{int(v)}\n" for t, m, v in ground_truth))
            manifest["ground_truth"] = GROUND_TRUTH
        manifest.update(self.extra)
        manifest.update(extra or {})
        # Written last: a folder with a manifest is a finished recording.
        write_atomic(self.folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        return self.folder


def write_dataset(folder: str | os.PathLike, frames: np.ndarray, frame_times: Sequence[float],
                  audio: np.ndarray, sample_rate: int, fps: float, *,
                  ground_truth: Sequence[tuple[float, int, int]] | None = None, **kwargs: Any) -> Path:
    """Write a whole recording at once (what the synthetic renderer uses)."""
    w = DatasetWriter(folder, sample_rate, fps, **kwargs)
    try:
        w.add_frames(frames, frame_times)
        w.add_audio(audio)
    finally:
        out = w.close(0.0, ground_truth)
    return out
