"""`python -m device record-marimba --seconds N --out DIR`: camera + mic on one clock.

Writes a marimba dataset folder (``device.marimba.dataset``: the one layout
training reads for real recordings and synthetic videos alike).

Both streams are stamped with ``time.monotonic``: a frame by its ``captured_at``,
audio by each chunk's arrival time minus its length, the earliest such
estimate (least delayed) fixing when audio sample 0 was heard.
SIGTERM/SIGINT end the recording early as if its time were up: the files are
finished and the manifest written, so what was recorded so far is kept (the
manifest says ``"stopped_by"``), and the command exits 128+signal.
"""

from __future__ import annotations

import argparse
import contextlib
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
from device.marimba.dataset import DatasetWriter, check_new_folder


def record(camera: Any, mic: Any, seconds: float, out: str | os.PathLike, *,
           clock: Callable[[], float] = time.monotonic, notes: Sequence[int] = DIATONIC_C4_F6,
           log: Callable[[str], None] | None = None, stop: threading.Event | None = None) -> Path:
    """Capture ``seconds`` of frames and audio from started-or-not Camera/Mic objects into ``out``.

    The mic is read on its own thread; the camera on this one, keeping each
    frame once (by index). Setting ``stop`` (e.g. from a signal handler) ends
    the recording early and keeps it; so does any exception, which is then
    re-raised. Returns the folder.
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
        except BaseException as e:  # surfaced on the main thread
            errors.append(e)

    frames = 0
    frame_clock = "captured_at"
    thread = threading.Thread(target=audio_loop, name="record-marimba-mic", daemon=True)
    try:
        mic.start()
        thread.start()
        camera.start()
        t_end = clock() + seconds
        last_index = None
        while clock() < t_end and not errors and not stop.is_set():
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
        out_folder = writer.close(min(starts) if starts else 0.0, extra=extra)
    if errors:
        raise errors[0]
    if not starts:
        raise InputFileError(f"{folder}: the microphone delivered no audio; nothing usable was recorded")
    if log:
        stopped = f" (stopped early by {extra['stopped_by']})" if "stopped_by" in extra else ""
        log(f"record-marimba: {frames} frames, {writer.audio_samples / sr:.2f} s audio at {sr} Hz -> "
            f"{out_folder}{stopped}")
    return out_folder


def _open_camera(args: argparse.Namespace) -> Any:
    from device.config import config_from_dict
    from device.hardware.camera import open_camera

    section: dict[str, Any] = {k: v for k, v in (("device", args.device), ("fps", args.fps)) if v is not None}
    if args.size:
        section["width"], section["height"] = args.size
    # The command-line options go through the same validation as a config file's [camera].
    cfg = config_from_dict({"camera": section}, "record-marimba options").camera
    return open_camera(args.camera, cfg, source=args.source)


def _open_mic(args: argparse.Namespace) -> Any:
    from device.config import config_from_dict
    from device.hardware.mic import open_mic

    section = {k: v for k, v in (("device", args.mic_device), ("playlist", args.playlist)) if v is not None}
    cfg = config_from_dict({"mic": section}, "record-marimba options").mic
    return open_mic(args.mic, cfg, sample_rate=args.sample_rate)


def main(argv: list[str] | None = None, *, camera: Any = None, mic: Any = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device record-marimba",
                                description="Record camera + audio of a marimba for training.")
    p.add_argument("--seconds", type=positive_finite, required=True, help="how long to record")
    p.add_argument("--out", required=True, help="new dataset folder (must not exist or be empty)")
    p.add_argument("--camera", default="auto", help="camera backend: auto | real | sim")
    p.add_argument("--device", default=None, help="camera device (picamera2 number, OpenCV index or /dev/videoN)")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=None, help="camera frame size")
    p.add_argument("--fps", type=positive_finite, default=None, help="camera frame rate (default: the backend's, 30)")
    p.add_argument("--source", default=None, help="sim camera: a video file to play")
    p.add_argument("--mic", default="auto", help="mic backend: auto | real | sim")
    p.add_argument("--mic-device", default=None, help="mic device (index or name substring)")
    p.add_argument("--playlist", nargs="+", default=None, help="sim mic: WAV file(s) to play")
    p.add_argument("--sample-rate", type=int, default=48000, help="audio rate asked of the mic")
    args = p.parse_args(argv)
    check_new_folder(args.out)  # before opening any device
    stop = threading.Event()
    stop.reason = None  # type: ignore[attr-defined]

    def on_signal(signum, _frame):
        # Only a flag: the loop ends at its next frame and record() finishes the files.
        stop.reason = signal.Signals(signum).name  # type: ignore[attr-defined]
        stop.set()

    own = []
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if camera is None:
            camera = _open_camera(args)
            own.append(camera)
        if mic is None:
            mic = _open_mic(args)
            own.append(mic)
        if not stop.is_set():
            record(camera, mic, args.seconds, args.out, log=print, stop=stop)
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

