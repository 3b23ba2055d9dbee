"""The composition root: builds backends from config, runs the pipelines, shuts down cleanly.

Threads: the mic and camera backends capture on their own threads into bounded
buffers (capture never waits for inference); one worker per pipeline turns
input into events; the display renders on its own thread from a keep-newest
slot; the main thread writes the status file and feeds the systemd watchdog.
SIGTERM/SIGINT set one stop event; everything is closed in reverse order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from device.atomic import write_atomic
from device.config import Config, check_files, load_config
from device.frontend import LogMelParams
from device.hardware.base import Camera, Display, Leds, Mic, Scene, Synth
from device.sound.pipeline import ClassCleared, ClassDetected, SoundPipeline, SoundSettings

log = logging.getLogger("saysee")


class StatusFile:
    """A small JSON status, rewritten atomically (temp + rename) for health checks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def write(self, status: dict[str, Any]) -> None:
        # Lives under /run (tmpfs): atomic for readers, no fsync wear on the SD card.
        write_atomic(self.path, json.dumps(status, indent=1, default=str), durable=False)


class Latest:
    """A one-slot mailbox: put() replaces, get() waits; the consumer only ever sees the newest."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self.replaced = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.replaced += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout: float) -> Any:
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


@dataclass
class Devices:
    """The opened hardware, whichever backends were chosen."""

    mic: Mic | None = None
    camera: Camera | None = None
    leds: Leds | None = None
    display: Display | None = None
    synth: Synth | None = None

    def close(self) -> None:
        # Outputs first so the LED goes dark and the synth gets note-offs before inputs stop.
        for dev in (self.leds, self.synth, self.display, self.camera, self.mic):
            if dev is None:
                continue
            try:
                dev.close()
            except Exception as e:  # one broken device must not keep the others open
                log.error("closing %s failed: %s", getattr(dev, "name", dev), e)


@dataclass
class Counters:
    """Everything the status file counts."""

    detections: int = 0
    notes: int = 0
    errors: int = 0
    events: int = 0


class App:
    """Runs the enabled pipelines over the given devices until stopped."""

    def __init__(self, cfg: Config, devices: Devices, sound_model: Any | None = None,
                 marimba: Any | None = None, notifier: Any | None = None,
                 on_event: Callable[[Any], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.dev = devices
        self.clock = clock
        self.stop_event = threading.Event()
        self.started_at = clock()
        self.first_inference_at: float | None = None
        self.counters = Counters()
        self.last_event: str | None = None
        self.state = "starting"
        self.status = StatusFile(cfg.app.status_file)
        self.notifier = notifier
        self.on_event = on_event
        self._scene_slot = Latest()
        self._threads: list[threading.Thread] = []
        self._pending_off: list[tuple[float, Any]] = []  # (stream time s, note-off message)
        self._gate_until = 0.0  # stream time until which our own synth note may still sound
        self._lock = threading.Lock()
        self.sound: SoundPipeline | None = None
        if sound_model is not None:
            s = cfg.sound
            realtime = bool(getattr(devices.mic, "realtime", True))
            settings = SoundSettings(threshold_on=s.threshold_on, threshold_off=s.threshold_off,
                                     smoothing=s.smoothing, silence_dbfs=s.silence_dbfs,
                                     max_latency_s=s.max_latency_s if realtime else None)
            self.sound = SoundPipeline(sound_model.predict, sound_model.labels, LogMelParams(), settings, clock)
        self.marimba = marimba
        notes = getattr(marimba, "notes", ())
        self._note_colours = {n: cfg.note_colours.get(n) or _note_colour(n) for n in notes}

    # ------------------------------------------------------------ events -> sinks

    def _emit(self, event: Any) -> None:
        self.counters.events += 1
        self.last_event = str(event)
        print(self.last_event, flush=True)  # one line per event: journald-friendly
        if self.on_event is not None:
            self.on_event(event)

    def _mapping(self, label: str):
        from device.config import ClassMapping

        from device.screen.pictures import DEFAULT_COLOURS

        m = self.cfg.mapping.get(label) or ClassMapping()
        colour = m.colour or DEFAULT_COLOURS.get(label) or _note_colour(sum(map(ord, label)))
        picture = m.picture or str(self._assets_dir() / f"{label}.png")
        return dataclasses.replace(m, colour=colour, picture=picture if Path(picture).is_file() else "")

    def _assets_dir(self) -> Path:
        from device.config import PROJECT_ROOT

        return Path(self.cfg.app.assets_dir) if self.cfg.app.assets_dir else PROJECT_ROOT / "assets" / "images"

    def _send(self, message: Any) -> None:
        if self.dev.synth is not None:
            self.dev.synth.send(message)

    def _synth_message(self, kind: str, **kw):
        import mido

        return mido.Message(kind, channel=self.cfg.synth.channel - 1, **kw)

    def handle_sound_event(self, event: ClassDetected | ClassCleared) -> None:
        self._emit(event)
        if isinstance(event, ClassDetected):
            self.counters.detections += 1
            m = self._mapping(event.label)
            if self.dev.leds is not None:
                self.dev.leds.set(m.colour, max(0.15, min(1.0, event.confidence)))
            if m.program is not None:
                self._send(self._synth_message("program_change", program=m.program))
            if m.note is not None:
                # Stream time, not wall time: unpaced sim runs and live runs then behave alike.
                self._send(self._synth_message("note_on", note=m.note, velocity=m.velocity))
                self._pending_off.append((event.t + m.duration_s,
                                          self._synth_message("note_off", note=m.note, velocity=0)))
                self._gate_until = max(self._gate_until, event.t + m.duration_s + self.cfg.synth.release_s)
        elif self.dev.leds is not None:
            self.dev.leds.off()

    def _flush_note_offs(self, now: float = float("inf")) -> None:
        due = [m for t, m in self._pending_off if t <= now]
        self._pending_off = [(t, m) for t, m in self._pending_off if t > now]
        for m in due:
            self._send(m)

    def sound_scene(self) -> Scene:
        p = self.sound
        label = p.current
        m = self._mapping(label) if label else None
        last = p.last
        status = f"{'listening' if label is None else label}  level {last.level_dbfs:.0f} dBFS" if last else "starting"
        # Stream time as the timestamp: the display's rate limit then spaces frames evenly
        # through the audio, whether it was played in real time or as fast as possible.
        return Scene(mode="sound", label=label, picture=m.picture if m else None,
                     colour=m.colour if m else (0.0, 0.0, 0.0), probabilities=p.probabilities,
                     spectrogram=p.spectrogram.copy(), status=status,
                     timestamp=last.t if last else 0.0)

    # ------------------------------------------------------------ workers

    def _sound_worker(self) -> None:
        mic, p = self.dev.mic, self.sound
        realtime = bool(getattr(mic, "realtime", True))
        synth = self.dev.synth
        mic.start()
        while not self.stop_event.is_set():
            chunk = mic.read(timeout=0.2)
            self._notify("heartbeat")
            if chunk is None:
                if mic.is_finished:
                    log.info("mic source finished")
                    break
                continue
            stream_t = (chunk.start + len(chunk.samples)) / p.params.sample_rate
            self._flush_note_offs(stream_t)
            # Our own notes gate by stream time; in real time the synth also knows what it is playing
            # (e.g. marimba notes).
            gated = self.cfg.sound.gate_while_synth and synth is not None and (
                stream_t < self._gate_until or (realtime and synth.is_playing))
            try:
                events = p.step(chunk.samples, chunk.start, chunk.captured_at, gated)
            except Exception as e:  # a bad window must not end a box that runs for weeks
                self.counters.errors += 1
                log.exception("sound pipeline error: %s", e)
                continue
            if p.counters["inferences"] and self.first_inference_at is None:
                self.first_inference_at = self.clock()
            for ev in events:
                self.handle_sound_event(ev)
            if p.last is not None:
                self._scene_slot.put(self.sound_scene())
        self._flush_note_offs()

    def _marimba_worker(self) -> None:
        cam = self.dev.camera
        cam.start()
        while not self.stop_event.is_set():
            frame = cam.read(timeout=0.2)
            self._notify("heartbeat")
            if frame is None:
                if cam.is_finished:
                    log.info("camera source finished")
                    break
                continue
            try:
                events = self.marimba.step(frame)
            except Exception as e:
                self.counters.errors += 1
                log.exception("marimba pipeline error: %s", e)
                continue
            if self.first_inference_at is None and self.marimba.windows:
                self.first_inference_at = self.clock()
            for ev in events:
                self.handle_note_event(ev)
            if self.sound is None or self.sound.current is None:  # a heard class owns the screen
                scene = self.marimba.scene(self._note_colours, f"{len(self.marimba.active_notes)} notes sounding")
                scene.timestamp = frame.captured_at  # frame time: even spacing in unpaced sim runs too
                self._scene_slot.put(scene)

    def handle_note_event(self, event: Any) -> None:
        self._emit(event)
        kind = type(event).__name__
        if kind == "NoteOn":
            self.counters.notes += 1
            self._send(self._synth_message("note_on", note=event.note, velocity=event.velocity))
            if self.dev.leds is not None:
                self.dev.leds.set(self._note_colours.get(event.note) or _note_colour(event.note),
                                  event.velocity / 127.0)
        elif kind == "NoteOff":
            self._send(self._synth_message("note_off", note=event.note, velocity=0))
            if self.dev.leds is not None:
                self.dev.leds.off()

    def _display_worker(self) -> None:
        while not self.stop_event.is_set():
            scene = self._scene_slot.get(timeout=0.2)
            if scene is not None:
                try:
                    self.dev.display.show(scene)
                except Exception as e:
                    self.counters.errors += 1
                    log.error("display error: %s", e)

    # ------------------------------------------------------------ status, lifecycle

    def status_dict(self) -> dict[str, Any]:
        mic, cam, synth = self.dev.mic, self.dev.camera, self.dev.synth
        now = self.clock()
        return {
            "state": self.state,
            "pid": os.getpid(),
            "updated": time.time(),
            "uptime_s": round(now - self.started_at, 2),
            "first_inference_s": None if self.first_inference_at is None
            else round(self.first_inference_at - self.started_at, 3),
            "modes": list(self.cfg.app.modes),
            "last_event": self.last_event,
            "current_class": self.sound.current if self.sound else None,
            "counters": {
                **dataclasses.asdict(self.counters),
                "overflows": getattr(mic, "overflows", 0),
                "dropped_samples": getattr(mic, "dropped_samples", 0),
                "dropped_frames": getattr(cam, "dropped_frames", 0),
                "reconnects": getattr(synth, "reconnects", 0),
                **({f"sound_{k}": v for k, v in self.sound.counters.items()} if self.sound else {}),
            },
            "backends": {k: getattr(getattr(self.dev, k), "backend", None)
                         for k in ("mic", "camera", "leds", "display", "synth") if getattr(self.dev, k) is not None},
            "synth_connected": bool(synth is not None and synth.is_connected),
        }

    def write_status(self) -> None:
        try:
            self.status.write(self.status_dict())
        except OSError as e:  # a full /run must not stop the box
            log.error("cannot write status %s: %s", self.status.path, e)

    def _notify(self, method: str, *args: Any) -> None:
        if self.notifier is not None and hasattr(self.notifier, method):
            getattr(self.notifier, method)(*args)

    def start(self) -> None:
        workers = []
        if self.sound is not None and self.dev.mic is not None:
            workers.append(("sound", self._sound_worker))
        if self.marimba is not None and self.dev.camera is not None:
            workers.append(("marimba", self._marimba_worker))
        if self.dev.display is not None:
            workers.append(("display", self._display_worker))
        for name, fn in workers:
            t = threading.Thread(target=self._guard(fn), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.state = "running"
        self.write_status()
        self._notify("ready")

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as e:
                self.counters.errors += 1
                log.exception("worker %s died: %s", threading.current_thread().name, e)
                self.stop_event.set()
        return run

    def inputs_done(self) -> bool:
        """True when every input worker has ended (finite sim sources played out)."""
        inputs = [t for t in self._threads if t.name in ("sound", "marimba")]
        return bool(inputs) and not any(t.is_alive() for t in inputs)

    def run(self, seconds: float | None = None, stop_when_done: bool = True) -> int:
        """Block until stopped (signal, ``seconds`` elapsed, or inputs finished)."""
        self.start()
        deadline = None if seconds is None else self.clock() + seconds
        try:
            while not self.stop_event.is_set():
                self.stop_event.wait(self.cfg.app.status_interval_s)
                self.write_status()
                if deadline is not None and self.clock() >= deadline:
                    break
                if stop_when_done and self.inputs_done():
                    break
        finally:
            self.shutdown()
        return 1 if self.counters.errors and self.state == "failed" else 0

    def shutdown(self) -> None:
        self.state = "stopping"
        self._notify("stopping")
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=1.0)
        self.dev.close()
        self.state = "stopped"
        self.write_status()


def _note_colour(note: int) -> tuple[float, float, float]:
    """A hue per pitch class so each bar has its own colour unless the config says otherwise."""
    import colorsys

    return colorsys.hsv_to_rgb((note % 12) / 12.0, 0.85, 1.0)


def install_signal_handlers(app: App) -> None:
    def stop(signum, _frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    from device.runtime.builder import build_app

    ap = argparse.ArgumentParser(prog="python -m device run", description="Run the Say-and-See box.")
    ap.add_argument("--config", default=os.environ.get("SAYSEE_CONFIG", "/etc/saysee/config.toml"))
    ap.add_argument("--sim", action="store_true", help="force every backend to its simulated one")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument("--out", default=None, help="(sim) folder for display frames, LED timeline, synth WAV")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    logging.basicConfig(level=cfg.app.log_level.upper(), format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    check_files(cfg)
    app, cleanup = build_app(cfg, sim=args.sim, out_dir=args.out)
    install_signal_handlers(app)
    try:
        return app.run(seconds=args.seconds, stop_when_done=args.sim or cfg.mic.backend == "sim")
    finally:
        cleanup()
