"""`python -m device record-marimba --seconds N --out DIR`: camera + mic on one clock.

Writes a marimba dataset folder (``device.marimba.dataset``: the one layout
training reads for real recordings and synthetic videos alike).

Both streams are stamped with ``time.monotonic``: a frame by its ``captured_at``,
audio by each chunk's arrival time minus its length, the earliest such
estimate (least delayed) fixing when audio sample 0 was heard.
SIGTERM/SIGINT end the recording early as if its time were up: the files are
finished and the manifest written, so what was recorded so far is kept (the
manifest says ``"stopped_by"``), and the command exits 128+signal.

The camera and mic come from the running config (``--config``, else
/etc/saysee/config.toml when present), so a recording has the frame size and
rate the box's camera delivers; command-line options override it, with a
warning when the frames then differ from the box's size (a model trained or
calibrated on them would not fit the box's camera).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from device.argtypes import positive_finite
from device.errors import InputFileError
from device.frontend import DIATONIC_C4_F6
from device.hardware.base import INPUT_STALL_S
from device.marimba.dataset import DatasetWriter, check_new_folder, finish_interrupted

GUIDE = "play each bar a few times, then play freely; 2 minutes is enough"
DEFAULT_SECONDS = 120.0  # the guide's 2 minutes
PROGRESS_S = 1.0  # a progress line this often while recording


def record(camera: Any, mic: Any, seconds: float, out: str | os.PathLike, *,
           clock: Callable[[], float] = time.monotonic, notes: Sequence[int] = DIATONIC_C4_F6,
           log: Callable[[str], None] | None = None, stop: threading.Event | None = None,
           box_size: tuple[int, int] | None = None, box_source: str = "the config",
           warn: Callable[[str], None] | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """Capture ``seconds`` of frames and audio from started-or-not Camera/Mic objects into ``out``.

    The mic is read on its own thread; the camera on this one, keeping each
    frame once (by index). Setting ``stop`` (e.g. from a signal handler) ends
    the recording early and keeps it; so does any exception, which is then
    re-raised. ``box_size`` (width, height) is the size the box runs its
    camera at (``box_source`` names where it was read): a first frame of
    another size gets one ``warn`` line; ``progress`` gets a line every second. A mic or camera that stops
    delivering for INPUT_STALL_S stops the recording (kept) with one line. Returns the folder.
    """
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InputFileError(f"{out}: --seconds {seconds:g}: must be a positive, finite number of seconds")
    folder = check_new_folder(out)
    sr = int(getattr(mic, "sample_rate", 48000))
    writer = DatasetWriter(folder, sr, float(getattr(camera, "fps", 30.0)), notes=notes, source="camera")
    stop = stop if stop is not None else threading.Event()
    mic_done = threading.Event()
    starts: list[float] = []  # per chunk: estimated time of file sample 0
    errors: list[BaseException] = []
    first_start: list[int] = []

    def audio_loop() -> None:
        try:
            while not mic_done.is_set():
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
                writer.audio_start = min(writer.audio_start or starts[-1], starts[-1])  # kept in the journal
        except BaseException as e:  # surfaced on the main thread
            errors.append(e)

    frames = 0
    frame_clock = "captured_at"
    thread = threading.Thread(target=audio_loop, name="record-marimba-mic", daemon=True)
    lost: list[str] = []  # an input that stopped delivering (unplugged): the recording stops, kept
    try:
        mic.start()
        thread.start()
        camera.start()
        t0 = clock()
        t_end = t0 + seconds
        last_index = None
        last_frame_at, next_progress = t0, t0 + PROGRESS_S
        while clock() < t_end and not errors and not stop.is_set():
            f = camera.read(timeout=0.2)
            arrival = clock()
            if arrival >= next_progress and progress is not None:
                next_progress = arrival + PROGRESS_S
                progress(f"record-marimba: {arrival - t0:5.1f} / {seconds:g} s, {frames} frames, "
                         f"{writer.audio_samples / sr:5.1f} s audio")
            heard = writer.audio_samples / sr
            if arrival - t0 > INPUT_STALL_S and heard < arrival - t0 - INPUT_STALL_S - 1.0:
                lost.append(f"the microphone stopped delivering at {heard:.1f} s (unplugged?)")
                break
            if f is None:
                if getattr(camera, "is_finished", False):
                    break
                if arrival - last_frame_at > INPUT_STALL_S:
                    lost.append(f"the camera stopped delivering at {last_frame_at - t0:.1f} s (unplugged?)")
                    break
                continue
            last_frame_at = arrival
            if f.index == last_index:
                continue
            if frames == 0 and abs(float(f.captured_at) - arrival) > 1.0:
                # Not stamped on our clock (a sim camera uses the video's own time): use arrival time.
                frame_clock = "arrival"
            last_index = f.index
            if frames == 0 and box_size is not None and warn is not None:
                size_warning(np.asarray(f.image).shape, box_size, box_source, warn)
            try:
                writer.add_frame(f.image, arrival if frame_clock == "arrival" else f.captured_at)
            except OSError as e:  # a full card: stop, keep what is there
                errors.append(e)
                break
            frames += 1
    finally:
        # Whatever ended the loop (time up, a stop request, Ctrl-C, an error), what was
        # recorded is finished and kept: the files are closed and the manifest written.
        mic_done.set()
        if thread.is_alive():
            thread.join(timeout=5.0)
        extra = {"clock": "time.monotonic", "frame_clock": frame_clock,
                 "audio_start_monotonic": min(starts) if starts else None,
                 "dropped_frames": int(getattr(camera, "dropped_frames", 0)),
                 "mic_overflows": int(getattr(mic, "overflows", 0)),
                 "mic_dropped_samples": int(getattr(mic, "dropped_samples", 0))}
        if stop.is_set():
            extra["stopped_by"] = getattr(stop, "reason", None) or "stop request"
        if lost:
            extra["stopped_by"] = lost[0]
        try:
            # Frames after the audio's end (a mic pulled out) would pair with no sound: left out.
            out_folder = writer.close(min(starts) if starts else 0.0, extra=extra, cut_to_audio=True)
        except OSError as e:  # a full card: what was recorded stays, to be finished once there is room
            raise InputFileError(f"{folder}: could not finish the recording ({e.strerror or e}); free some "
                                 f"space, then `python -m device record-marimba --finish {folder}` keeps "
                                 "what was recorded") from None
    if errors:
        e = errors[0]
        if isinstance(e, OSError):
            raise InputFileError(f"{folder}: recording stopped: {e.strerror or e}") from None
        raise e
    if lost:
        raise InputFileError(f"{out_folder}: {lost[0]}; what came before was kept")
    if not starts:
        raise InputFileError(f"{folder}: the microphone delivered no audio; nothing usable was recorded")
    if log:
        stopped = f" (stopped early by {extra['stopped_by']})" if "stopped_by" in extra else ""
        log(f"record-marimba: {frames} frames, {writer.audio_samples / sr:.2f} s audio at {sr} Hz -> "
            f"{out_folder}{stopped}")
    return out_folder


def size_warning(shape: Sequence[int], box_size: tuple[int, int], box_source: str,
                 warn: Callable[[str], None]) -> None:
    """One line when frames of ``shape`` (H, W, ...) differ from the box's camera size (W, H)."""
    h, w = int(shape[0]), int(shape[1])
    bw, bh = box_size
    if (w, h) != (bw, bh):
        warn(f"record-marimba: warning: recording {w}x{h} frames but the box runs its camera at {bw}x{bh} "
             f"([camera] in {box_source}): a model trained or calibrated on this recording will not fit "
             f"the box's camera; record at {bw}x{bh} (drop --size) or change [camera] width/height")


def camera_config(cfg: Any, args: argparse.Namespace) -> Any:
    """The config's [camera] with the command-line options on top."""
    from device.config import config_from_dict

    section: dict[str, Any] = {k: v for k, v in (("device", args.device), ("fps", args.fps)) if v is not None}
    if args.size:
        section["width"], section["height"] = args.size
    # The command-line options go through the same validation as a config file's [camera].
    given = config_from_dict({"camera": section}, "record-marimba options").camera
    return dataclasses.replace(cfg.camera, **{k: getattr(given, k) for k in section})


def _open_camera(cfg: Any, args: argparse.Namespace) -> Any:
    from device.hardware.camera import open_camera

    return open_camera(args.camera, camera_config(cfg, args), source=args.source)


def _open_mic(cfg: Any, args: argparse.Namespace) -> Any:
    from device.config import config_from_dict
    from device.hardware.mic import open_mic

    section = {k: v for k, v in (("device", args.mic_device), ("playlist", args.playlist)) if v is not None}
    given = config_from_dict({"mic": section}, "record-marimba options").mic
    return open_mic(args.mic, dataclasses.replace(cfg.mic, **{k: getattr(given, k) for k in section}),
                    sample_rate=args.sample_rate)


def main(argv: list[str] | None = None, *, camera: Any = None, mic: Any = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device record-marimba",
                                description="Record camera + audio of a marimba for training.")
    p.add_argument("--seconds", type=positive_finite, default=DEFAULT_SECONDS,
                   help=f"how long to record (default {DEFAULT_SECONDS:g}; Ctrl-C stops early and keeps it)")
    p.add_argument("--out", help="new dataset folder (must not exist or be empty)")
    p.add_argument("--finish", metavar="DIR", help="keep what an interrupted recording holds (killed, power "
                                                   "cut, full card): cut to what video and audio both cover")
    p.add_argument("--config", default=None,
                   help="config file for [camera] and [mic] (default /etc/saysee/config.toml if present)")
    p.add_argument("--camera", default=None, help="camera backend: auto | real | sim (default: the config's)")
    p.add_argument("--device", default=None, help="camera device (picamera2 number, OpenCV index or /dev/videoN)")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="camera frame size (default: the config's [camera] width height, the box's size)")
    p.add_argument("--fps", type=positive_finite, default=None, help="camera frame rate (default: the config's)")
    p.add_argument("--source", default=None, help="sim camera: a video file to play")
    p.add_argument("--mic", default=None, help="mic backend: auto | real | sim (default: the config's)")
    p.add_argument("--mic-device", default=None, help="mic device (index or name substring)")
    p.add_argument("--playlist", nargs="+", default=None, help="sim mic: WAV file(s) to play")
    p.add_argument("--sample-rate", type=int, default=48000, help="audio rate asked of the mic")
    args = p.parse_args(argv)
    if args.finish:
        if args.out:
            p.error("--finish DIR works on an existing recording: give no --out")
        finish_interrupted(args.finish, log=print)
        return 0
    if not args.out:
        p.error("--out DIR is required (or --finish DIR)")
    check_new_folder(args.out)  # before opening any device
    from device.sound.teach import load_config

    cfg = load_config(args.config)
    cam = camera_config(cfg, args)  # bad options are one line before any device opens
    stop = threading.Event()
    stop.reason = None  # type: ignore[attr-defined]

    def on_signal(signum, _frame):
        # Only a flag: the loop ends at its next frame and record() finishes the files.
        stop.reason = signal.Signals(signum).name  # type: ignore[attr-defined]
        stop.set()

    own = []
    # SIGHUP too: an ssh session dropped (a pulled network cable) must end the recording kept, not lost.
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        if camera is None:
            camera = _open_camera(cfg, args)
            own.append(camera)
        if mic is None:
            mic = _open_mic(cfg, args)
            own.append(mic)
        if not stop.is_set():
            print(f"record-marimba: recording {args.seconds:g} s at {cam.width}x{cam.height}, {cam.fps:g} fps "
                  f"into {args.out}: {GUIDE} (Ctrl-C stops early and keeps what was recorded)", flush=True)
            record(camera, mic, args.seconds, args.out, log=print, stop=stop,
                   box_size=(cfg.camera.width, cfg.camera.height),
                   box_source="the default config" if cfg.source == "<defaults>" else cfg.source,
                   warn=lambda line: print(line, file=sys.stderr, flush=True),
                   progress=lambda line: print(line, end="\r" if sys.stdout.isatty() else "\n", flush=True))
    finally:
        for dev in own:
            with contextlib.suppress(Exception):
                dev.close()
        for s, h in old.items():
            signal.signal(s, h)
    if stop.is_set():
        sys.stdout.flush()
        return 128 + int(getattr(signal, stop.reason or "SIGTERM"))
    return 0

