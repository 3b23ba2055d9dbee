"""`python -m device record-marimba --seconds N --out DIR`: camera + mic on one clock.

Writes a marimba *dataset folder*, the one layout that training reads for real
recordings and for synthetic videos alike (``training.datasets.marimba_synth``
writes it through ``DatasetWriter`` too)::

    DIR/manifest.json     format "saysee-marimba" v1: fps, frame_size [H, W], n_frames,
                          sample_rate, audio_samples, duration_s, notes, source, file names
    DIR/video.avi         grayscale frames, lossless FFV1 (frames.npy (N, H, W) uint8
                          instead when OpenCV is not installed)
    DIR/audio.wav         mono int16 PCM
    DIR/frame_times.csv   "index,time_s": each frame's capture time in seconds
                          after audio sample 0 (the pairing of video and audio)
    DIR/notes.csv         optional ground truth "onset_s,midi,velocity" (synthetic only;
                          used for evaluation, never for training)

Both streams are stamped with ``time.monotonic``: a frame by its ``captured_at``,
audio by each chunk's arrival time minus its length, the earliest such
estimate (least delayed) fixing when audio sample 0 was heard.
A recording is never overwritten: an existing non-empty DIR is refused.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import threading
import time
import wave
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from device.errors import InputFileError
from device.frontend import DIATONIC_C4_F6

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
        with open(self.folder / FRAME_TIMES, "w") as f:
            f.write("index,time_s\n")
            f.writelines(f"{i},{t:.6f}\n" for i, t in enumerate(times))
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
            with open(self.folder / GROUND_TRUTH, "w") as f:
                f.write("onset_s,midi,velocity\n")
                f.writelines(f"{t:.6f},{int(m)},{int(v)}\n" for t, m, v in ground_truth)
            manifest["ground_truth"] = GROUND_TRUTH
        manifest.update(self.extra)
        manifest.update(extra or {})
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
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


# --------------------------------------------------------------- recording


def record(camera: Any, mic: Any, seconds: float, out: str | os.PathLike, *,
           clock: Callable[[], float] = time.monotonic, notes: Sequence[int] = DIATONIC_C4_F6,
           log: Callable[[str], None] | None = None) -> Path:
    """Capture ``seconds`` of frames and audio from started-or-not Camera/Mic objects into ``out``.

    The mic is read on its own thread; the camera on this one, keeping each
    frame once (by index). Returns the folder.
    """
    folder = check_new_folder(out)
    sr = int(getattr(mic, "sample_rate", 48000))
    writer = DatasetWriter(folder, sr, float(getattr(camera, "fps", 30.0)), notes=notes, source="camera")
    stop = threading.Event()
    starts: list[float] = []  # per chunk: estimated time of file sample 0
    errors: list[BaseException] = []
    first_start: list[int] = []

    def audio_loop() -> None:
        try:
            while not stop.is_set():
                chunk = mic.read(timeout=0.2)
                if chunk is None:
                    if getattr(mic, "is_finished", False):
                        break
                    continue
                samples = np.asarray(chunk.samples)
                if not first_start:
                    first_start.append(int(chunk.start))
                end = int(chunk.start) - first_start[0] + len(samples)
                if end > writer.audio_samples + len(samples):  # the mic dropped audio: keep the timeline
                    writer.add_audio(np.zeros(end - len(samples) - writer.audio_samples, np.int16))
                writer.add_audio(samples)
                starts.append(float(chunk.captured_at) - end / sr)
        except BaseException as e:  # surfaced on the main thread
            errors.append(e)

    mic.start()
    thread = threading.Thread(target=audio_loop, name="record-marimba-mic", daemon=True)
    thread.start()
    camera.start()
    t_end = clock() + float(seconds)
    last_index = None
    frames = 0
    frame_clock = "captured_at"
    try:
        while clock() < t_end and not errors:
            f = camera.read(timeout=0.2)
            arrival = clock()
            if f is None:
                if getattr(camera, "is_finished", False):
                    break
                continue
            if f.index == last_index:
                continue
            if frames == 0 and abs(float(f.captured_at) - arrival) > 1.0:
                # Not stamped on our clock (a sim camera uses the video's own time): use arrival time.
                frame_clock = "arrival"
            last_index = f.index
            writer.add_frame(f.image, arrival if frame_clock == "arrival" else f.captured_at)
            frames += 1
    finally:
        stop.set()
        thread.join(timeout=5.0)
    if errors:
        writer.close()
        raise errors[0]
    if not starts:
        writer.close()
        raise InputFileError(f"{folder}: the microphone delivered no audio; nothing usable was recorded")
    audio_start = min(starts)
    extra = {"clock": "time.monotonic", "frame_clock": frame_clock, "audio_start_monotonic": audio_start,
             "dropped_frames": int(getattr(camera, "dropped_frames", 0)),
             "mic_overflows": int(getattr(mic, "overflows", 0)),
             "mic_dropped_samples": int(getattr(mic, "dropped_samples", 0))}
    out_folder = writer.close(audio_start, extra=extra)
    if log:
        log(f"record-marimba: {frames} frames, {writer.audio_samples / sr:.2f} s audio at {sr} Hz -> {out_folder}")
    return out_folder


def _open(kind: str, backend: str, options: Mapping[str, Any]) -> Any:
    import importlib

    from device.errors import ConfigError

    module = importlib.import_module(f"device.hardware.{kind}")
    opener = getattr(module, f"open_{kind}")
    try:
        return opener(backend=backend, **options)
    except ConfigError:
        if "sample_rate" not in options:
            raise
        # A backend without a rate setting: record at its own rate (training resamples).
        return opener(backend=backend, **{k: v for k, v in options.items() if k != "sample_rate"})


def main(argv: list[str] | None = None, *, camera: Any = None, mic: Any = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device record-marimba",
                                description="Record camera + audio of a marimba for training.")
    p.add_argument("--seconds", type=float, required=True, help="how long to record")
    p.add_argument("--out", required=True, help="new dataset folder (must not exist or be empty)")
    p.add_argument("--camera", default="auto", help="camera backend: auto | real | sim")
    p.add_argument("--device", default=None, help="camera device (picamera2 number, OpenCV index or /dev/videoN)")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None, help="camera frame size")
    p.add_argument("--fps", type=float, default=None, help="camera frame rate (default: the backend's, 30)")
    p.add_argument("--source", default=None, help="sim camera: a video file to play")
    p.add_argument("--mic", default="auto", help="mic backend: auto | real | sim")
    p.add_argument("--mic-device", default=None, help="mic device (index or name substring)")
    p.add_argument("--playlist", nargs="+", default=None, help="sim mic: WAV file(s) to play")
    p.add_argument("--sample-rate", type=int, default=48000, help="audio rate asked of the mic")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    check_new_folder(args.out)  # before opening any device
    cam_opts = {k: v for k, v in (("device", args.device), ("size", args.size), ("fps", args.fps),
                                  ("source", args.source)) if v is not None}
    mic_opts = {k: v for k, v in (("device", args.mic_device), ("playlist", args.playlist)) if v is not None}
    own = []
    try:
        if camera is None:
            camera = _open("camera", args.camera, cam_opts)
            own.append(camera)
        if mic is None:
            mic = _open("mic", args.mic, {**mic_opts, "sample_rate": args.sample_rate})
            own.append(mic)
        record(camera, mic, args.seconds, args.out, log=print)
    finally:
        for dev in own:
            dev.close()
    return 0

