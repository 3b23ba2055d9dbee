"""`python -m device transcribe VIDEO_OR_RECORDING`: the notes the box would play for a video.

The marimba twin of ``classify``: runs exactly the device path (the box's
``MarimbaPipeline`` built as ``device.runtime.builder`` builds it, int8 TFLite
model, the one peak picker) on a file, and prints one line per struck note::

    onset_s  midi  name  velocity

The input is a recording folder (``python -m device record-marimba`` or the
synthetic renderer: manifest.json, video.avi or frames.npy, audio.wav,
frame_times.csv) or a plain video file (needs OpenCV). Frames are streamed
(a video is decoded frame by frame, frames.npy read a frame at a time), so memory
does not grow with the video's length. ``--compare`` scores the camera's
notes against the notes the recording's audio labeller hears (and against
notes.csv when the folder has ground truth): how well the camera works on
this instrument. Bad input is one line naming the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from device.errors import InputFileError, SaySeeError
from device.marimba.dataset import AUDIO, FRAME_TIMES, GROUND_TRUTH, MANIFEST
from device.marimba.video import FrameFile

ONSET_TOLERANCE_S = 0.05  # a note matches a strike of the same pitch this close (training.scoring uses it too)
# "Motion" between two frames: on a coarse grid (about MOTION_CELLS cells across, whatever the
# resolution; averaging cells takes sensor noise down), this share of cells changes by at least
# MOTION_LEVEL grey levels. A mallet or hand moving over the bars does so in most frame pairs of
# a synthetic video; a still view with sensor noise of sd 10 grey levels does in none.
MOTION_CELLS = 40
MOTION_LEVEL = 16
MOTION_SHARE = 0.002
MIN_MOVING_PAIRS = 3  # fewer frame pairs with motion than this in a whole video: nothing was played


# ------------------------------------------------------------------ input


@dataclass
class Source:
    """What transcribe reads: streamed frames, their times and, for a recording folder, audio and truth."""

    path: Path  # what the user named
    frames: FrameFile
    fps: float
    times: np.ndarray | None = None  # seconds per frame; None: i / fps
    expected_frames: int | None = None  # what the manifest promises
    audio: Path | None = None
    truth: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def video(self) -> Path:
        return self.frames.path


def open_folder(folder: Path) -> Source:
    """A dataset folder: manifest, video (or frames.npy) opened for streaming, frame times, audio and truth."""
    from device.marimba.recording import read_frame_times, read_manifest, video_path

    m = read_manifest(folder)
    video = video_path(folder, m)
    frames = FrameFile(video)
    h, w = frames.frame_size
    declared = m.get("frame_size")
    if declared and tuple(int(v) for v in declared) != (h, w):
        raise InputFileError(f"{video}: frame size {w}x{h} differs from the manifest's "
                             f"{int(declared[1])}x{int(declared[0])}")
    try:
        fps = float(m.get("fps") or frames.fps or 0.0)
    except (TypeError, ValueError):
        fps = 0.0
    if not 0 < fps < 1000:
        raise InputFileError(f"{folder / MANIFEST}: no usable fps ({m.get('fps')!r})")
    # The frame count the recording promises: the manifest's, else the file's own (frames.npy: exact).
    n = m.get("n_frames")
    expected = int(n) if isinstance(n, (int, float)) and n > 0 else frames.declared_frames
    times = None
    if expected is not None:
        times = read_frame_times(folder / str(m.get("frame_times") or FRAME_TIMES), expected, fps)
    audio = folder / str(m.get("audio") or AUDIO)
    truth = folder / str(m.get("ground_truth") or GROUND_TRUTH)
    return Source(path=folder, frames=frames, fps=fps, times=times, expected_frames=expected,
                  audio=audio if audio.exists() else None, truth=truth if truth.is_file() else None, manifest=m)


def open_source(path: str | os.PathLike, default_fps: float) -> Source:
    """A recording folder or a plain video / frames.npy file, opened and checked (one line if bad)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such video file or recording folder")
    if path.is_dir():
        return open_folder(path)
    frames = FrameFile(path)
    return Source(path=path, frames=frames, fps=frames.fps or default_fps)


# ------------------------------------------------------------------ checks


def check_fps(src: Source, spec: Any) -> None:
    if abs(src.fps - spec.fps) > 0.01 * spec.fps:
        raise InputFileError(f"{src.video}: {src.fps:g} fps, but the model was trained on {spec.fps:g} fps "
                             "frame windows; record at the box's [camera] fps")


class MotionMeter:
    """Counts consecutive frame pairs in which something moved (to tell a still camera view)."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.pairs = 0
        self.moving = 0

    def update(self, frame: np.ndarray) -> None:
        img = np.asarray(frame)
        c = max(1, img.shape[1] // MOTION_CELLS)
        h, w = img.shape[0] // c * c, img.shape[1] // c * c
        cur = img[:h, :w].reshape(h // c, c, w // c, c).mean(axis=(1, 3), dtype=np.float32)
        if self._prev is not None and self._prev.shape == cur.shape:
            self.pairs += 1
            if np.count_nonzero(np.abs(cur - self._prev) >= MOTION_LEVEL) >= max(1.0, MOTION_SHARE * cur.size):
                self.moving += 1
        self._prev = cur

    @property
    def still(self) -> bool:
        return self.pairs > 0 and self.moving < MIN_MOVING_PAIRS


def no_motion_message(video: Path | str) -> str:
    """The one line for a video in which nothing moves (shared with calibration, where it is an error)."""
    return f"no motion in {video}: is the camera pointed at the bars?"


# ------------------------------------------------------------------ scoring


def match_onsets(reference: Sequence[tuple[float, int]], estimated: Sequence[tuple[float, int]],
                 tolerance: float = ONSET_TOLERANCE_S) -> int:
    """Matched pairs (same MIDI note, onsets within ``tolerance``), each note used once.

    Per note, a sweep in time order pairing each reference with the earliest
    unused estimate in reach: for equal-width windows on a line this is a
    maximum matching, the count mir_eval's bipartite matching gives.
    """
    tp = 0
    for note in {int(m) for _, m in reference} & {int(m) for _, m in estimated}:
        ref = sorted(t for t, m in reference if int(m) == note)
        est = sorted(t for t, m in estimated if int(m) == note)
        j = 0
        for t in ref:
            while j < len(est) and est[j] < t - tolerance - 1e-9:
                j += 1
            if j < len(est) and est[j] <= t + tolerance + 1e-9:
                tp += 1
                j += 1
    return tp


def score(reference: Sequence[tuple[float, int]], estimated: Sequence[tuple[float, int]],
          tolerance: float = ONSET_TOLERANCE_S) -> dict[str, Any]:
    tp = match_onsets(reference, estimated, tolerance)
    fp, fn = len(estimated) - tp, len(reference) - tp
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def read_truth(path: Path) -> list[tuple[float, int]]:
    """notes.csv ("onset_s,midi,velocity") -> [(onset, midi)]."""
    try:
        rows = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1), ndmin=2, dtype=np.float64)
    except (OSError, ValueError, IndexError) as e:
        raise InputFileError(f"{path}: unreadable ground-truth notes ({e})") from None
    return [(float(t), int(m)) for t, m in rows]


def audio_notes(src: Source, n_frames: int, spec: Any) -> list[tuple[float, int]]:
    """The notes the recording's audio labeller hears (the reference real recordings train on).

    The audio is read whole (about 11 MB a minute at 48 kHz); the frames never are.
    """
    from device.frontend import NoteParams
    from device.marimba.labeller import heard_events
    from device.marimba.pipeline import NoteOn
    from device.marimba.recording import read_recording_audio

    params = NoteParams(fps=spec.fps, frames_per_window=spec.frames_per_window, notes=spec.notes)
    audio, _ = read_recording_audio(src.path, src.manifest, params.sample_rate)
    return [(e.t, e.note) for e in heard_events(audio, spec, params) if isinstance(e, NoteOn)]


# ------------------------------------------------------------------ pipeline


def load_pipeline(config: Any, model: str | None, calibration: str | None, src: Source) -> Any:
    """The box's marimba pipeline, built by ``builder.load_models`` as ``run`` builds it.

    The config's [marimba] model, threads, peak overrides and calibration, with
    ``model`` / ``calibration`` on top; the video stands in for the camera, so
    a frame shape the rectifier can't adapt is refused here, naming the video.
    """
    from device.runtime.builder import load_models

    h, w = src.frames.frame_size
    marimba = {k: v for k, v in (("model", model), ("calibration", calibration)) if v}
    cfg = dataclasses.replace(config, app=dataclasses.replace(config.app, modes=("marimba",)),
                              camera=dataclasses.replace(config.camera, height=h, width=w),
                              marimba=dataclasses.replace(config.marimba, **marimba))
    try:
        _, pipeline = load_models(cfg)
    except SaySeeError as e:
        # The frame-shape refusal speaks of "camera WxH ..." (the box's camera); here the video is that camera.
        if not str(e).startswith("camera "):
            raise
        then = "" if cfg.marimba.calibration else ", then transcribe with --calibration FILE"
        raise InputFileError(f"{src.video}: {e}{then}") from None
    return pipeline


def transcribe(src: Source, pipeline: Any, on_note=None) -> tuple[list[Any], MotionMeter]:
    """Stream ``src`` through ``pipeline``; (NoteOn events, motion meter). ``on_note(e)`` sees each at once."""
    from device.hardware.base import Frame
    from device.marimba.pipeline import NoteOn

    times = src.times
    meter = MotionMeter()
    notes: list[Any] = []

    def handle(events):
        for e in events:
            if isinstance(e, NoteOn):
                notes.append(e)
                if on_note:
                    on_note(e)

    for i, image in enumerate(src.frames):
        if times is not None and i >= len(times):
            raise InputFileError(f"{src.video}: more frames than the {len(times)} frame times of the recording")
        meter.update(image)
        handle(pipeline.step(Frame(image, i, float(times[i]) if times is not None else i / src.fps)))
    handle(pipeline.picker.flush())
    src.frames.check_complete(src.expected_frames, "the manifest's count" if src.expected_frames is not None else "")
    return notes, meter


# ------------------------------------------------------------------ command line


def _line(e: Any) -> str:
    from device.marimba.pipeline import note_name

    return f"{e.t:8.3f}  {e.note:4d}  {note_name(e.note):4s}  {e.velocity:8d}"


def _score_line(what: str, s: dict[str, Any]) -> str:
    return (f"# against {what}: precision {s['precision']:.3f}  recall {s['recall']:.3f}  F1 {s['f1']:.3f}  "
            f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']}; {1000 * ONSET_TOLERANCE_S:.0f} ms onset tolerance)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device transcribe", description=__doc__.split("\n")[0])
    ap.add_argument("input", help="recording folder (record-marimba) or video file")
    ap.add_argument("--model", default=None, help="marimba model (default: the config's [marimba] model)")
    ap.add_argument("--calibration", default=None,
                    help="where the bars are in the picture: a JSON from calibrate-marimba (default: the config's)")
    ap.add_argument("--config", default=None, help="config file (default /etc/saysee/config.toml if present)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--compare", action="store_true",
                    help="score the notes against the notes heard in the recording's audio (and notes.csv)")
    args = ap.parse_args(argv)
    from device.sound.teach import load_config

    cfg = load_config(args.config)
    # The input is checked before the model loads, so a bad file is reported before anything else.
    src = open_source(args.input, cfg.camera.fps)
    if args.compare:
        _check_audio(src)
    pipeline = load_pipeline(cfg, args.model, args.calibration, src)
    check_fps(src, pipeline.spec)
    if not args.json:
        print(f"# onset_s  midi  name  velocity   ({src.path})", flush=True)
    notes, meter = transcribe(src, pipeline, None if args.json else lambda e: print(_line(e), flush=True))
    warnings = [no_motion_message(src.video)] if meter.still else []
    for w in warnings:
        print(f"transcribe: warning: {w}", file=sys.stderr)
    n_frames = src.frames.decoded
    scores: dict[str, Any] = {}
    if args.compare:
        est = [(e.t, e.note) for e in notes]
        scores["audio"] = score(audio_notes(src, n_frames, pipeline.spec), est)
        if src.truth is not None:
            scores["ground_truth"] = score(read_truth(src.truth), est)
    if args.json:
        from device.marimba.pipeline import note_name

        print(json.dumps({
            "input": str(src.path), "video": str(src.video), "model": str(getattr(pipeline.model, "path", "")),
            "calibration": args.calibration, "fps": src.fps, "frames": n_frames,
            "frame_size": list(src.frames.frame_size),
            "notes": [{"onset_s": round(e.t, 4), "midi": e.note, "name": note_name(e.note), "velocity": e.velocity}
                      for e in notes],
            "warnings": warnings, "compare": scores or None}, indent=2))
        return 0
    seconds = n_frames / src.fps
    print(f"# {len(notes)} notes in {seconds:.2f} s ({n_frames} frames at {src.fps:g} fps)")
    if "audio" in scores:
        print(_score_line(f"the notes heard in {src.audio.name} (audio labeller)", scores["audio"]))
    if "ground_truth" in scores:
        print(_score_line(f"{src.truth.name} (ground truth)", scores["ground_truth"]))
    return 0


def _check_audio(src: Source) -> None:
    """--compare needs the recording's audio: one line when there is none."""
    from device.wavfile import wav_info

    if not src.path.is_dir():
        raise InputFileError(f"{src.path}: no audio to compare with: a plain video's sound is not read; "
                             f"--compare needs a recording folder with {AUDIO} (record-marimba)")
    if src.audio is None:
        raise InputFileError(f"{src.path / str(src.manifest.get('audio') or AUDIO)}: no audio in this recording; "
                             "--compare needs the recording's sound")
    rate, _, samples = wav_info(src.audio)  # a damaged header is one line now, not after the video
    n = src.expected_frames
    if n:  # the frames the recording promises: a cut audio file would score the camera against half the notes
        from device.frontend import NoteParams
        from device.marimba.recording import check_lengths

        t = src.times
        video_s = float(t[-1] + 1.0 / src.fps - max(t[0], 0.0)) if t is not None and len(t) else n / src.fps
        check_lengths(src.path, src.video, video_s, src.audio, samples / rate, NoteParams().frames_per_window / src.fps)


if __name__ == "__main__":  # pragma: no cover
    try:
        sys.exit(main())
    except SaySeeError as e:
        print(f"transcribe: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
