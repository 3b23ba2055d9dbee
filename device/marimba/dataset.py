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

While a recording runs, ``partial.json`` (its settings) and
``frame_times.partial`` (each frame's raw time, appended as it is written)
are kept beside the media and synced about once a second; the WAV header is
patched after every chunk. A recording killed, cut by a power loss or
stopped by a full card is therefore not lost: ``finish_interrupted`` (the
command ``python -m device record-marimba --finish DIR``) keeps what the
files hold, cut to the span both video and audio cover.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
import wave
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from device.atomic import write_atomic
from device.errors import InputFileError
from device.frontend import DIATONIC_C4_F6

__all__ = ["FORMAT", "VERSION", "MANIFEST", "VIDEO", "FRAMES_NPY", "AUDIO", "FRAME_TIMES", "GROUND_TRUTH",
           "PARTIAL", "check_new_folder", "DatasetWriter", "write_dataset", "finish_interrupted",
           "interrupted_message"]

FORMAT = "saysee-marimba"
VERSION = 1
MANIFEST = "manifest.json"
VIDEO = "video.avi"
FRAMES_NPY = "frames.npy"
AUDIO = "audio.wav"
FRAME_TIMES = "frame_times.csv"
GROUND_TRUTH = "notes.csv"
FOURCC = "FFV1"  # lossless; MJPG as a fallback where FFV1 is missing
PARTIAL = "partial.json"  # a recording under way (or interrupted): its settings
PARTIAL_TIMES = "frame_times.partial"  # raw frame times, one per line, appended as frames are written
FRAMES_RAW = "frames.raw"  # frames appended as bytes when there is no OpenCV (frames.npy at the end)
SYNC_S = 1.0  # how often a running recording's files are synced to the card
COPY_FRAMES = 256  # frames per block when raw frames become frames.npy
CUT_SLACK_FRAMES = 2  # frames past the audio's end a recording keeps: inside training's pairing tolerance (one window)


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
        self._video_mode = video  # "auto" | "avi" | "npy": what frames.raw becomes at close
        self._raw: Any = None  # frames.raw: the frames as they come
        self._frame_size: tuple[int, int] | None = None
        self._times: list[float] = []
        self.audio_start: float | None = None  # set by the recorder as it learns it (kept in partial.json)
        self._journal = {"format": FORMAT, "version": VERSION, "sample_rate": self.sample_rate, "fps": self.fps,
                         "video": video,
                         "notes": self.notes, "source": self.source, "extra": self.extra,
                         "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self._write_journal()
        self._times_file = open(self.folder / PARTIAL_TIMES, "w", encoding="ascii")
        self._wav_file = open(self.folder / AUDIO, "wb")
        self._wav = wave.open(self._wav_file, "wb")  # patches its header after every writeframes
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.sample_rate)
        self._synced = time.monotonic()
        self.audio_samples = 0
        self.closed = False

    def _write_journal(self) -> None:
        self._journal_start = self.audio_start
        write_atomic(self.folder / PARTIAL, json.dumps({**self._journal, "audio_start": self.audio_start,
                                                        "frame_size": self._frame_size}) + "\n")

    def _sync(self) -> None:
        """What was recorded so far onto the card, at most once a second (a power cut then loses ~1 s)."""
        now = time.monotonic()
        if now - self._synced < SYNC_S:
            return
        self._synced = now
        for f in (self._times_file, self._wav_file, self._raw):
            if f is not None and not f.closed:
                f.flush()
                os.fsync(f.fileno())
        if self.audio_start != self._journal_start:  # the journal is rewritten only when it changed
            self._write_journal()

    def _open_video(self, h: int, w: int) -> None:
        # Frames go to frames.raw as they come (what a kill or a power cut leaves is readable: an AVI
        # writer keeps its frames until released) and become video.avi or frames.npy at close.
        self._frame_size = (h, w)
        self._raw = open(self.folder / FRAMES_RAW, "wb")
        self._write_journal()

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
        self._raw.write(np.ascontiguousarray(img).tobytes())
        self._times.append(float(t))
        self._times_file.write(f"{float(t)!r}\n")
        # To the kernel every frame (a kill loses nothing), to the card every SYNC_S (a power cut ~1 s).
        self._raw.flush()
        self._times_file.flush()
        self._sync()

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
              extra: Mapping[str, Any] | None = None, cut_to_audio: bool = False) -> Path:
        """Finish the files and write frame_times.csv, notes.csv and manifest.json. ``cut_to_audio``: frames
        that start after the audio's end are left out (a recording whose mic was pulled out)."""
        if self.closed:
            return self.folder
        self.closed = True
        self._wav.close()
        _close_synced(self._wav_file)
        self._times_file.close()
        _close_synced(self._raw)
        keep = (_covered(self._times, float(audio_start), self.audio_samples / self.sample_rate,
                         CUT_SLACK_FRAMES / self.fps) if cut_to_audio else len(self._times))
        h, w = self._frame_size or (0, 0)
        video_name, fourcc = _encode(self.folder, keep, h, w, self.fps, self._video_mode)
        return _finish(self.folder, self._times[:keep], float(audio_start), video_name, fourcc,
                       self._frame_size, self.fps, self.sample_rate, self.audio_samples, self.notes, self.source,
                       {**self.extra, **(extra or {})}, ground_truth)


def _close_synced(f: Any) -> None:
    if f is not None and not f.closed:
        f.flush()
        os.fsync(f.fileno())
        f.close()


def _fsync_path(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _covered(raw_times: Sequence[float], audio_start: float, audio_s: float, slack_s: float) -> int:
    """How many leading frames start before the audio's end + ``slack_s`` (frames well after it pair with no
    sound; the slack is the pairing tolerance training allows, so the mic's last chunk in flight costs none)."""
    n = len(raw_times)
    while n and raw_times[n - 1] - audio_start > audio_s + slack_s:
        n -= 1
    return n


def _raw_frames(folder: Path, n: int, h: int, w: int) -> Iterable[np.ndarray]:
    """The first ``n`` frames of frames.raw, a block at a time (memory stays flat)."""
    if not n:
        return
    with open(folder / FRAMES_RAW, "rb") as f:
        for i in range(0, n, COPY_FRAMES):
            k = min(COPY_FRAMES, n - i)
            yield np.frombuffer(f.read(k * h * w), np.uint8).reshape(k, h, w)


def _encode(folder: Path, n: int, h: int, w: int, fps: float, mode: str) -> tuple[str, str | None]:
    """frames.raw -> video.avi (lossless FFV1, MJPG where FFV1 is missing; mode auto|avi) or frames.npy
    (mode npy, or no OpenCV); synced, then frames.raw goes. Returns (file name, codec)."""
    cv2 = None
    if mode in ("auto", "avi") and n:
        try:
            import cv2  # lazily: the device may run without OpenCV
        except ImportError:
            if mode == "avi":
                raise
    writer, fourcc = None, None
    if cv2 is not None:
        for fourcc in (FOURCC, "MJPG"):
            writer = cv2.VideoWriter(str(folder / VIDEO), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), isColor=False)
            if writer.isOpened():
                break
            writer = None
    if writer is not None:
        for block in _raw_frames(folder, n, h, w):
            for img in block:
                writer.write(np.ascontiguousarray(img))
        writer.release()
        name = VIDEO
    else:
        out = np.lib.format.open_memmap(folder / FRAMES_NPY, mode="w+", dtype=np.uint8, shape=(n, h, w))
        i = 0
        for block in _raw_frames(folder, n, h, w):
            out[i:i + len(block)] = block
            i += len(block)
        out.flush()
        del out
        name, fourcc = FRAMES_NPY, None
    _fsync_path(folder / name)  # the manifest must never describe frames still in the cache
    (folder / FRAMES_RAW).unlink(missing_ok=True)
    return name, fourcc


def _finish(folder: Path, raw_times: Sequence[float], audio_start: float, video_name: str, fourcc: str | None,
            frame_size: tuple[int, int] | None, fps: float, sample_rate: int, audio_samples: int,
            notes: Sequence[int], source: str, extra: Mapping[str, Any],
            ground_truth: Sequence[tuple[float, int, int]] | None = None) -> Path:
    """frame_times.csv, notes.csv, then the manifest (last: a folder with one is finished); the journal goes."""
    times = np.asarray(raw_times, dtype=np.float64) - float(audio_start)
    write_atomic(folder / FRAME_TIMES, "index,time_s\n" + "".join(f"{i},{t:.6f}\n" for i, t in enumerate(times)))
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "video": video_name, "video_codec": fourcc, "audio": AUDIO, "frame_times": FRAME_TIMES,
        "fps": fps, "frame_size": list(frame_size or (0, 0)), "n_frames": len(times),
        "sample_rate": sample_rate, "audio_samples": audio_samples,
        "duration_s": round(audio_samples / sample_rate, 6), "notes": list(notes),
    }
    if ground_truth is not None:
        write_atomic(folder / GROUND_TRUTH, "onset_s,midi,velocity\n"
                     + "".join(f"{t:.6f},{int(m)},{int(v)}\n" for t, m, v in ground_truth))
        manifest["ground_truth"] = GROUND_TRUTH
    manifest.update(extra)
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    for name in (PARTIAL, PARTIAL_TIMES):
        (folder / name).unlink(missing_ok=True)
    return folder


def interrupted_message(folder: Path) -> str:
    """The one line for a folder whose recording never finished."""
    return (f"{folder}: an interrupted recording (no {MANIFEST}); `python -m device record-marimba --finish "
            f"{folder}` keeps what it holds")


def finish_interrupted(folder: str | os.PathLike, log: Any = None) -> Path:
    """Make an interrupted recording usable: the frames both the video and its times file hold, cut to the
    span the audio covers, and a manifest marked ``interrupted``. Memory stays flat in the recording's size."""
    from device.wavfile import AtomicWavWriter, iter_wav

    folder = Path(folder)
    if (folder / MANIFEST).is_file():
        raise InputFileError(f"{folder}: already a finished recording ({MANIFEST} is there)")
    try:
        journal = json.loads((folder / PARTIAL).read_text())
        fps, sr = float(journal["fps"]), int(journal["sample_rate"])
    except FileNotFoundError:
        raise InputFileError(f"{folder}: no {PARTIAL}: not a recording made by record-marimba") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputFileError(f"{folder / PARTIAL}: damaged ({e})") from None
    times = []
    with contextlib.suppress(FileNotFoundError):
        for line in (folder / PARTIAL_TIMES).read_text(encoding="ascii", errors="replace").splitlines():
            try:
                times.append(float(line))
            except ValueError:
                break  # the line being written when it stopped
    audio_start = journal.get("audio_start")
    if audio_start is None or not times:
        raise InputFileError(f"{folder}: stopped before any audio or frame was recorded; nothing to keep")
    # The audio as far as the file really holds it (a power cut may leave less than the header says).
    held_audio = sum(len(block) for block in iter_wav(folder / AUDIO))
    h, w = journal.get("frame_size") or (0, 0)
    raw = folder / FRAMES_RAW
    held = raw.stat().st_size // max(1, h * w) if raw.exists() else 0
    keep = _covered(times[:held], float(audio_start), held_audio / sr, CUT_SLACK_FRAMES / fps)
    if keep == 0:
        raise InputFileError(f"{folder}: no frame could be kept (none was written that the audio covers)")
    # ... and no longer than the frames kept (the last second of frames may not have reached the card).
    samples = min(held_audio, int(np.ceil((times[keep - 1] - float(audio_start) + 1.0 / fps) * sr)))
    with AtomicWavWriter(folder / AUDIO, sr) as out:  # replaces audio.wav once written and synced
        left = samples
        for block in iter_wav(folder / AUDIO):
            out.write(block[:left])
            left -= len(block[:left])
            if not left:
                break
    audio_s = samples / sr
    video_name, fourcc = _encode(folder, keep, int(h), int(w), fps, str(journal.get("video", "auto")))
    extra = dict(journal.get("extra") or {})
    extra.update({"interrupted": True, "finished_by": "record-marimba --finish",
                  "audio_start_monotonic": audio_start})
    out = _finish(folder, times[:keep], float(audio_start), video_name, fourcc, (int(h), int(w)), fps, sr, samples,
                  journal.get("notes") or DIATONIC_C4_F6, journal.get("source", "camera"), extra)
    if log:
        log(f"record-marimba: kept {keep} frames and {audio_s:.2f} s of audio of the interrupted recording {folder}")
    return out


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
