"""The device process of the end-to-end bench (run by bench.e2e in a subprocess).

    python -m bench.e2e_run --mode sound|marimba --model PATH --json OUT
        [--playlist WAV] [--decision onset|window] [--seconds CAP] [--launched-at MONOTONIC] [--workdir DIR]

It builds the real app with ``device.runtime.builder.build_app`` on the sim backends,
paced in real time (the playlist mic delivers sample k at about start + k/16000,
the sim camera frame i at start + i/fps), runs it to the end of its input and
writes raw timestamps plus the process's own CPU time and peak RSS as JSON.
It imports only what the box imports (no TensorFlow, no librosa), so its
memory and CPU figures are the device's; bench.e2e turns the timestamps into
latencies.

Every timestamp is ``time.monotonic()``, which is system-wide on Linux, so the
parent's launch time and the child's events share one clock. Where a sim
backend timestamps relative to its own start (RecordingLeds, VirtualSynth),
the bench creates that backend itself between two clock readings and takes
the later one as the origin: the true origin is earlier, so latencies can only
come out slightly too long (by ``origin_uncertainty_s``), never flattering.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from device.config import PROJECT_ROOT, DisplayConfig, load_config

DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.toml"
CPU_SAMPLE_S = 1.0


class StartStamp:
    """Pass-through proxy for a mic or camera: notes when ``start()`` ran and the newest item read.

    The sim mic and camera pace themselves from the moment their producer thread
    starts, which is just after ``start()``; taking the time before calling it
    puts the origin slightly early, so latencies err long, never short.
    """

    def __init__(self, inner: Any):
        self._inner = inner
        self.started_at: float | None = None
        self.last_read: Any = None  # the item the worker is processing now

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._inner.start()

    def read(self, timeout: float | None = None):
        item = self._inner.read(timeout)
        if item is not None:
            self.last_read = item
        return item

    def __getattr__(self, name: str) -> Any:  # everything else is the backend's own
        return getattr(self._inner, name)


class ShowStamp:
    """Pass-through proxy for the display: time and label of every frame actually drawn."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.drawn: list[tuple[float, str | None]] = []

    def show(self, scene: Any) -> None:
        before = getattr(self._inner, "shown", None)
        self._inner.show(scene)
        # Rate-limited frames are dropped by the backend; only drawn ones count.
        if before is None or self._inner.shown != before:
            self.drawn.append((time.monotonic(), scene.label))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CpuSampler:
    """Process CPU time (all threads) against wall time, sampled every second on its own thread."""

    def __init__(self, period: float = CPU_SAMPLE_S):
        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def _sample(self) -> None:
        self.samples.append((time.monotonic(), time.process_time()))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def peak_rss_kib() -> int:
    """Peak resident set of this process image, in KiB.

    /proc's VmHWM belongs to the current address space, which exec() starts
    afresh; ru_maxrss is not reset by exec, so a child launched from a big
    parent (the bench, with librosa and TensorFlow loaded) would report the
    parent's peak. ru_maxrss is the fallback off Linux.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _bracketed(make):
    """Run ``make()`` between two clock readings: (result, later reading, width of the bracket)."""
    before = time.monotonic()
    result = make()
    after = time.monotonic()
    return result, after, after - before


def configure(mode: str, model: str, playlist: str | None, workdir: Path, video: str | None = None,
              decision: str | None = None, everything: bool = False, taught: str | None = None):
    """The demo config, paced in real time, with the box's default display rate and no files per frame.

    ``decision`` picks the sound decision design ([sound] decision; None = the config's). The box's
    defaults otherwise: class picture cards, no continuous mapping, so the latency figures stay the
    box's. ``everything``: every sound feature at once (dream pictures from the generator every hop and
    the default continuous mapping to LED and synth CCs), for the CPU share of the whole box. ``taught``:
    the box's taught sounds ([teach] dir), so taught classes compete with the built-in ones.
    """
    from device.config import ContinuousConfig

    cfg = load_config(DEMO_CONFIG)
    app = dataclasses.replace(cfg.app, modes=(mode,), status_file=str(workdir / "status.json"))
    sound, marimba, mic = cfg.sound, cfg.marimba, cfg.mic
    if mode == "sound":
        sound = dataclasses.replace(sound, model=model, **({"decision": decision} if decision else {}))
        mic = dataclasses.replace(mic, playlist=(playlist,), realtime=True)
    else:
        marimba = dataclasses.replace(marimba, model=model)
    # The demo draws at 4 fps to keep its PNG folder small; a box draws at the
    # shipped default rate, straight to the screen, so no PNGs are written here.
    display = dataclasses.replace(cfg.display, out_dir="", max_fps=DisplayConfig().max_fps,
                                  **({} if everything else {"picture_mode": DisplayConfig().picture_mode}))
    continuous = ContinuousConfig(mode="default") if everything else ContinuousConfig()
    camera = dataclasses.replace(cfg.camera, realtime=True, **({"video": video} if video else {}))
    teach = dataclasses.replace(cfg.teach, dir=taught) if taught else cfg.teach
    return dataclasses.replace(cfg, app=app, sound=sound, marimba=marimba, mic=mic, camera=camera,
                               display=display, continuous=continuous, teach=teach)


def instrument(app, mode: str, cfg) -> dict[str, Any]:
    """Swap in timestamping around the app's sim devices; returns the handles to read afterwards."""
    from device.hardware.leds import RecordingLeds

    dev = app.dev
    probes: dict[str, Any] = {"uncertainty": {}}
    if dev.mic is not None:
        dev.mic = probes["mic"] = StartStamp(dev.mic)
    if dev.camera is not None:
        dev.camera = probes["camera"] = StartStamp(dev.camera)
    if dev.display is not None:
        dev.display = probes["display"] = ShowStamp(dev.display)
    if dev.leds is not None:
        # RecordingLeds stamps states relative to its construction: build one
        # between two clock readings to know that origin on the shared clock.
        dev.leds.close()
        dev.leds, probes["leds_origin"], probes["uncertainty"]["leds"] = _bracketed(RecordingLeds)
    if mode == "marimba" and dev.synth is not None:
        # The virtual synth stamps arrivals relative to its start(): start one
        # between two clock readings, and drive it through the real serial
        # backend (pyserial on the pty), exactly as the sim backend does.
        from device.hardware.synth import SerialSynth
        from device.hardware.virtual_synth import VirtualSynth

        dev.synth.close()
        virtual = VirtualSynth()
        port, probes["midi_origin"], probes["uncertainty"]["midi"] = _bracketed(virtual.start)
        probes["virtual"] = virtual
        dev.synth = SerialSynth(port, baudrate=cfg.synth.baud, release_seconds=cfg.synth.release_s,
                                reset_wait_s=0.0)  # a virtual synth on a pty does not reset on open
    return probes



def run(args: argparse.Namespace) -> dict[str, Any]:
    from device.runtime.builder import build_app

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = configure(args.mode, args.model, args.playlist, workdir, args.video, args.decision, args.everything,
                    args.taught)
    # (time, event, frame being processed when it fired): the camera probe exists
    # only after build_app, so the callback looks it up when called.
    events: list[tuple[float, Any, Any]] = []
    probes: dict[str, Any] = {}

    def on_event(e: Any) -> None:
        camera = probes.get("camera")
        events.append((time.monotonic(), e, camera.last_read if camera is not None else None))

    app, cleanup = build_app(cfg, sim=True, out_dir=None, on_event=on_event)
    probes.update(instrument(app, args.mode, cfg))

    sampler = CpuSampler()
    wall0, cpu0 = time.monotonic(), time.process_time()
    sampler.start()
    try:
        app.run(seconds=args.seconds, stop_when_done=True)
    finally:
        cleanup()
        sampler.stop()
    wall1, cpu1 = time.monotonic(), time.process_time()
    status = app.status_dict()

    out: dict[str, Any] = {
        "mode": args.mode,
        "launched_at": args.launched_at,
        "run_wall_s": wall1 - wall0,
        "run_cpu_s": cpu1 - cpu0,
        "cpu_samples": sampler.samples,
        "peak_rss_kib": peak_rss_kib(),
        "app_started_at": app.started_at,
        "first_inference_at": app.first_inference_at,
        "status": status,
        "uncertainty_s": probes["uncertainty"],
        # The device process runs with whatever BLAS threading the environment gives it.
        "blas_env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
        "events": [],
    }
    for t, e, frame in events:
        row = {"wall": t, "type": type(e).__name__,
               **{f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name != "probabilities"}}
        if frame is not None:  # marimba: the frame whose arrival completed this decision
            row["frame_index"] = frame.index
            row["frame_captured_at"] = frame.captured_at
        out["events"].append(row)
    if "mic" in probes:
        out["mic_started_at"] = probes["mic"].started_at
    if "camera" in probes:
        cam = probes["camera"]
        out["camera_started_at"] = cam.started_at
        out["camera_fps"] = cam.fps
    if "display" in probes:
        out["display"] = probes["display"].drawn
    origin = probes.get("leds_origin")
    if origin is not None:
        out["leds"] = [[origin + s.t, *s.rgb, s.brightness] for s in app.dev.leds.timeline()]
    virtual = probes.get("virtual")
    if virtual is not None:
        virtual.wait_for_bytes(app.dev.synth.bytes_written, timeout=1.0)
        virtual.stop()
        out["midi"] = [[probes["midi_origin"] + m.time, m.message.type, getattr(m.message, "note", None),
                        getattr(m.message, "velocity", None)] for m in virtual.messages]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e_run", description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("sound", "marimba"), required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--playlist", default=None)
    ap.add_argument("--video", default=None, help="marimba: the camera's video file")
    ap.add_argument("--decision", choices=("onset", "window"), default=None,
                    help="sound: the [sound] decision design (default: the config's)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long (marimba video)")
    ap.add_argument("--everything", action="store_true",
                    help="sound: dream pictures + the default continuous mapping on (CPU of the whole box)")
    ap.add_argument("--launched-at", type=float, default=None, help="parent's time.monotonic() at launch")
    ap.add_argument("--taught", default=None, help="sound: folder of taught sounds ([teach] dir)")
    ap.add_argument("--workdir", default=".")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    result = run(args)
    Path(args.json).write_text(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.exit(main())
