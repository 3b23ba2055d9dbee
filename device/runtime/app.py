"""Runs the box: threads feed the pipelines, the responder decides, actions go to the devices.

Threads: the mic and camera backends capture on their own threads into bounded
buffers (capture never waits for inference); one worker per pipeline turns
input into events; the :class:`~device.runtime.responder.Responder` turns
events into actions, which this module dispatches to the LED, synth and a
keep-newest display slot rendered on its own thread; the main thread writes
the status file. The systemd watchdog is fed only when every input made
progress (a heartbeat per processed chunk or frame), so a stalled mic or camera
stops the pings. A worker that dies stops the app with a non-zero exit code so
``Restart=on-failure`` applies. Building (the builder) and signals (``run``)
live elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from device.atomic import write_atomic
from device.config import Config
from device.frontend import LogMelParams
from device.hardware.audio_out import AudioOutClosedError
from device.hardware.base import INPUT_STALL_S, AudioOut, Camera, Display, Leds, Mic, Synth
from device.hardware.synth import SynthClosedError
from device.runtime.error_runs import ErrorRun
from device.runtime.responder import Action, Midi, Responder, SetLed, ShowScene
from device.sound.labels import UNKNOWN
from device.sound.pipeline import SoundPipeline

log = logging.getLogger("saysee")

# An input that processed nothing this long is stalled: no watchdog heartbeat, status says so.
STALL_AFTER_S = INPUT_STALL_S
# A teach prompt ("Learned sound 1!", "Too short!") stays on screen this long before the live screens,
# redrawn every hop or frame, take it back: long enough for a child to read it.
PROMPT_HOLD_S = 2.0


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
    audio_out: AudioOut | None = None

    def close(self) -> None:
        # Outputs first so the LED goes dark, the synth gets note-offs and the speaker stops before inputs stop.
        for dev in (self.leds, self.synth, self.audio_out, self.display, self.camera, self.mic):
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
    unknown: int = 0  # clear sounds that matched no class: the "teach me" card was shown
    notes: int = 0
    errors: int = 0
    events: int = 0
    read_timeouts: int = 0  # input reads that returned nothing (a stalled source keeps raising it)


class App:
    """Runs the enabled pipelines over the given devices until stopped; dispatches the responder's actions."""

    def __init__(self, cfg: Config, devices: Devices, sound_model: Any | None = None,
                 marimba: Any | None = None, notifier: Any | None = None,
                 on_event: Callable[[Any], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 responder: Responder | None = None, stall_after_s: float = STALL_AFTER_S,
                 teach_button: Any | None = None,
                 resynth: Any | None = None):
        self.cfg = cfg
        self.dev = devices
        self.clock = clock
        self.stop_event = threading.Event()
        self.started_at = clock()
        self.first_inference_at: float | None = None
        self.counters = Counters()
        self.last_event: str | None = None
        self.state = "starting"
        self.failed_worker: str | None = None
        self._devices_closed = False
        self.status = StatusFile(cfg.app.status_file)
        self.notifier = notifier
        self.on_event = on_event
        self.stall_after_s = stall_after_s
        self._scene_slot = Latest()
        self._threads: list[threading.Thread] = []
        self._progress: dict[str, float] = {}  # worker's source -> clock() of its last chunk/frame/scene handled
        self._errors = {name: ErrorRun(what, clock) for name, what in
                        (("sound", "sound pipeline"), ("marimba", "marimba pipeline"), ("audio_out", "audio out"),
                         ("display", "display"))}
        self._lock = threading.Lock()  # both workers dispatch to the same LED and synth
        self.sound: SoundPipeline | None = None
        self.sound_model = sound_model
        if sound_model is not None:
            realtime = bool(getattr(devices.mic, "realtime", True))
            # The [sound] section is the pipeline's settings; an unpaced sim source is never "late".
            settings = cfg.sound if realtime else dataclasses.replace(cfg.sound, max_latency_s=None)
            self._sound_settings = settings
            self.sound = self._sound_pipeline()
        self.marimba = marimba
        # Camera -> sound ([audio_out] mode = "resynth"): the marimba levels played on the box's speaker.
        self.resynth = resynth
        if (resynth is None and marimba is not None and devices.audio_out is not None
                and cfg.audio_out.mode == "resynth"):
            from device.marimba.resynth import Resynth

            self.resynth = Resynth.from_spec(marimba.spec, devices.audio_out.sample_rate,
                                             fps=getattr(devices.camera, "fps", None),
                                             smoothing_s=cfg.audio_out.smoothing_s, gain=cfg.audio_out.gain)
        self.responder = responder or Responder(cfg, labels=getattr(sound_model, "labels", ()),
                                                notes=getattr(marimba, "notes", ()))
        self.teach_button = teach_button
        self.teacher = None
        self._prompt_until = float("-inf")  # clock() until which the last teach prompt keeps the screen
        self._prompt_led = False  # a prompt lit the LED: put it back to rest when the prompt is gone
        self.taught_watch = None
        if self.sound is not None and hasattr(sound_model, "decider"):
            from device.sound.taught_watch import TaughtWatcher

            # Sounds taught with the CLI while the box runs (over ssh) count without a restart.
            self.taught_watch = TaughtWatcher(cfg.teach.dir)
        if teach_button is not None and self.sound is not None and hasattr(sound_model, "decider"):
            from device.sound.taught import TaughtStore
            from device.sound.teach_button import ButtonTeacher

            # The button's takes come from the running mic; the worker hands them over instead of classifying.
            self.teacher = ButtonTeacher(teach_button, TaughtStore(cfg.teach.dir), sound_model.model, cfg.teach,
                                         show=self._show_prompt, on_taught=self._on_taught,
                                         silence_dbfs=cfg.sound.silence_dbfs)

    # ------------------------------------------------------------ events -> actions -> devices

    def _emit(self, event: Any) -> None:
        self.counters.events += 1
        self.last_event = str(event)
        print(self.last_event, flush=True)  # one line per event: journald-friendly
        if self.on_event is not None:
            self.on_event(event)

    def handle_event(self, event: Any) -> None:
        """Log and count one pipeline event, then carry out the responder's actions for it."""
        self._emit(event)
        kind = type(event).__name__
        if kind == "ClassDetected" and event.label == UNKNOWN:
            self.counters.unknown += 1
        elif kind == "ClassDetected":
            self.counters.detections += 1
        elif kind == "NoteOn":
            self.counters.notes += 1
        self.dispatch(self.responder.on_event(event))

    def dispatch(self, actions: list[Action]) -> None:
        """Carry out actions on whichever devices exist (a missing device ignores its actions)."""
        with self._lock:
            if self._devices_closed:  # a worker finishing after shutdown: the devices are gone
                return
            for a in actions:
                if isinstance(a, SetLed):
                    if self.dev.leds is not None and a.brightness > 0:
                        self.dev.leds.set(a.colour, a.brightness)
                    elif self.dev.leds is not None:
                        self.dev.leds.off()
                elif isinstance(a, Midi):
                    self._send_midi(a.message)
                elif isinstance(a, ShowScene):
                    self._scene_slot.put(a.scene)

    def _show_prompt(self, prompt: Any) -> None:
        self._prompt_until = self.clock() + PROMPT_HOLD_S
        self._prompt_led = True
        self.dispatch(self.responder.prompt(prompt.text, prompt.colour))

    def _screen_is_live(self) -> bool:
        """The sound and camera screens may draw: no teaching in progress, no prompt still being read.
        The first time they may again, the prompt's LED goes back to rest (it would stay lit for days)."""
        live = not (self.teacher is not None and self.teacher.active) and self.clock() >= self._prompt_until
        if live and self._prompt_led:
            self._prompt_led = False
            self.dispatch(self.responder.led_off())
        return live

    def _sound_pipeline(self) -> SoundPipeline:
        """A pipeline over the sound model's labels as they are now (built-in, taught, ``unknown``)."""
        m = self.sound_model
        old = getattr(self, "sound", None)  # what the room has been playing outlives a newly taught sound
        return SoundPipeline(m.predict, m.labels, LogMelParams(), self._sound_settings, self.clock,
                             agree_labels=getattr(m, "builtin_labels", None),
                             habituation=old.habituation if old is not None else None)

    def _reload_taught(self) -> None:
        """The taught folder changed under the running box: decide among what it holds now."""
        from device.sound.taught import TaughtStore
        from device.sound.taught_watch import reload_taught

        if reload_taught(self.sound_model, self.responder, TaughtStore(self.cfg.teach.dir)):
            was = self.sound.current
            self.sound = self._sound_pipeline()
            if was is not None:  # the new pipeline hears nothing yet: no ClassCleared will end this LED
                self.dispatch(self.responder.led_off())

    def _on_taught(self, taught: Any) -> None:
        """A sound taught with the button counts at once: the decision, the responder and the pipeline know it."""
        from device.sound.teach_button import add_taught

        add_taught(self.sound_model, self.responder, taught)
        # The label list grew by one: a fresh pipeline (runs on the sound worker, which owns it).
        self.sound = self._sound_pipeline()
        log.info("taught %s from the button (%d takes)", taught.label, self.cfg.teach.takes)

    def _send_midi(self, message: Any) -> None:
        if self.dev.synth is None:
            return
        try:
            self.dev.synth.send(message)
        except SynthClosedError:
            # A worker still finishing after shutdown closed the devices: its last note-offs
            # have nowhere to go (the synth sent all-notes-off on close).
            if not self.stop_event.is_set():
                raise

    def _made_progress(self, name: str) -> None:
        """An input was processed: feed the watchdog if every running input is progressing."""
        now = self.clock()
        self._progress[name] = now
        if all(now - t <= self.stall_after_s for t in self._progress.copy().values()):
            self._notify("heartbeat")

    def stalled_inputs(self) -> list[str]:
        """Inputs that processed nothing for longer than ``stall_after_s`` (e.g. an unplugged mic, a pipeline
        failing on every chunk, a display wedged in its driver)."""
        # A copy: workers add and drop their entries from their own threads while this one reads.
        return self._stalled(self._progress.copy(), self.clock())

    def _stalled(self, progress: dict[str, float], now: float) -> list[str]:
        return sorted(n for n, t in progress.items() if now - t > self.stall_after_s)

    # ------------------------------------------------------------ workers

    def _sound_worker(self) -> None:
        mic, p = self.dev.mic, self.sound
        realtime = bool(getattr(mic, "realtime", True))
        synth = self.dev.synth
        hop = None  # the newest decision hop the continuous mapping ([continuous]) followed
        heard = None
        background: tuple[str, ...] = ()
        mic.start()
        while not self.stop_event.is_set():
            chunk = mic.read(timeout=0.2)
            if chunk is None:
                if mic.is_finished:
                    self._source_ended("mic", mic)
                    break
                self.counters.read_timeouts += 1
                if realtime and heard is not None:  # a live mic that hiccups: notes still end on time
                    self.dispatch(self.responder.due(self._stream_now(heard)))
                continue
            stream_t = (chunk.start + len(chunk.samples)) / p.params.sample_rate
            heard = (stream_t, self.clock())  # stream time of the newest audio, and when it was handled
            self.dispatch(self.responder.due(stream_t))
            if self.teacher is not None and self.teacher.step(chunk.samples):
                self._made_progress("mic")
                continue  # this audio is a take being taught, not something to recognise
            if self.taught_watch is not None and self.taught_watch.poll(stream_t):
                self._reload_taught()
            p = self.sound  # teaching may have replaced the pipeline
            # Our own notes gate by stream time; in real time the synth also knows what it is playing
            # (e.g. marimba notes).
            gated = synth is not None and self.responder.is_gated(stream_t, realtime and synth.is_playing)
            try:
                events = p.step(chunk.samples, chunk.start, chunk.captured_at, gated)
            except Exception as e:  # a bad window must not end a box that runs for weeks...
                self.counters.errors += 1
                self._errors["sound"].failed(e)
                continue  # ...but one failing on every chunk makes no progress: the watchdog restarts it
            self._errors["sound"].succeeded()
            self._made_progress("mic")
            if p.background != background:
                log.info("sound: room background now %s (heard for %g s within %g s: not shown until the room "
                         "quietens)", ", ".join(p.background) or "nothing", p.settings.habituate_s,
                         p.settings.habituate_window_s)
                background = p.background
            if p.counters["inferences"] and self.first_inference_at is None:
                self.first_inference_at = self.clock()
            for ev in events:
                self.handle_event(ev)
            if self.responder.continuous is not None and p.last is not hop:
                from device.runtime.continuous import latest_embedding

                hop = p.last
                self.dispatch(self.responder.on_hop(hop, latest_embedding(self.sound_model)))
            if p.last is not None and (self.marimba is None or p.current is not None) and self._screen_is_live():
                # With the camera on too, its view owns the idle screen: a "listening" frame every hop
                # would alternate with it (and two clocks would defeat the display's rate limit).
                self.dispatch([self.responder.sound_scene(p)])
        self._progress.pop("mic", None)  # a finished source is not a stalled one
        self.dispatch(self.responder.due())

    def _stream_now(self, mark: tuple[float, float]) -> float:
        """Stream time now, from ``mark`` = (stream time of the newest input, clock() when it was handled):
        what a stalled input's pending note-offs are due by."""
        return mark[0] + self.clock() - mark[1]

    def _play_levels(self, frames: int = 1) -> None:
        """The marimba model's newest levels -> one block of audio on the speaker (once per handled frame,
        as long as the ``frames`` periods since the previous one)."""
        try:
            self.dev.audio_out.write(self.resynth.step_levels(self.marimba.levels, frames))
        except AudioOutClosedError:
            if not self.stop_event.is_set():  # closed by shutdown while this frame finished: nowhere to play
                raise
        except Exception as e:  # a bad block must not end a box that runs for weeks
            self.counters.errors += 1
            self._errors["audio_out"].failed(e)
        else:
            self._errors["audio_out"].succeeded()

    def _marimba_worker(self) -> None:
        cam = self.dev.camera
        playing = self.resynth is not None and self.dev.audio_out is not None
        if playing:
            self.dev.audio_out.start()
        cam.start()
        seen = None  # (captured_at of the newest frame, clock() when it was handled)
        fps = float(getattr(cam, "fps", None) or self.marimba.spec.fps)
        while not self.stop_event.is_set():
            frame = cam.read(timeout=0.2)
            if frame is None:
                if cam.is_finished:
                    self._source_ended("camera", cam)
                    break
                self.counters.read_timeouts += 1
                if seen is not None:  # a stalled camera: sounding notes still end on time
                    for ev in self.marimba.picker.due(self._stream_now(seen)):
                        self.handle_event(ev)
                continue
            previous = seen[0] if seen is not None else None
            seen = (float(frame.captured_at), self.clock())
            try:
                events = self.marimba.step(frame)
            except Exception as e:
                self.counters.errors += 1
                self._errors["marimba"].failed(e)
                continue
            self._errors["marimba"].succeeded()
            self._made_progress("camera")
            if playing:  # sound first: it is the most latency-sensitive output
                # Frame periods since the last frame handled: frames the box had no time for still take
                # their time on the speaker (else the card runs dry and each refill clicks).
                gap = 1 if previous is None else max(1, round((float(frame.captured_at) - previous) * fps))
                self._play_levels(gap)
            if self.first_inference_at is None and self.marimba.windows:
                self.first_inference_at = self.clock()
            for ev in events:
                self.handle_event(ev)
            if (self.sound is None or self.sound.current is None) and self._screen_is_live():  # a heard class owns it
                # Frame time as the timestamp: even spacing in unpaced sim runs too.
                self.dispatch([self.responder.marimba_scene(self.marimba, frame.captured_at)])
        for ev in self.marimba.picker.flush():  # the stream ended or the box stops: no note left open
            self.handle_event(ev)
        self._progress.pop("camera", None)

    def _display_worker(self) -> None:
        while not self.stop_event.is_set():
            # Progress on every turn, idle or not: a show() wedged in the display driver stops it.
            self._made_progress("display")
            scene = self._scene_slot.get(timeout=0.2)
            if scene is not None:
                try:
                    self.dev.display.show(scene)
                except Exception as e:
                    self.counters.errors += 1
                    self._errors["display"].failed(e)
                else:
                    self._errors["display"].succeeded()
        self._progress.pop("display", None)

    def _source_ended(self, name: str, source: Any) -> None:
        """A recording played out ends a sim run; a live input that ends (a camera whose capture failed, the
        empty sim mic "auto" falls back to when the USB mic is missing at boot) is lost: the run fails, so
        systemd's Restart=on-failure starts the box again and finds the device once it is back."""
        if source.plays_out:
            log.info("%s source finished", name)
            return
        why = getattr(source, "error", None) or "it delivers nothing any more (no device, or nothing to play)"
        log.error("%s lost: %s; the box stops so that its service restarts it", name, why)
        self.failed_worker = threading.current_thread().name
        self.stop_event.set()

    # ------------------------------------------------------------ status, lifecycle

    def status_dict(self) -> dict[str, Any]:
        mic, cam, synth = self.dev.mic, self.dev.camera, self.dev.synth
        now = self.clock()
        progress = self._progress.copy()  # one view: a worker may drop its entry meanwhile
        stalled = self._stalled(progress, now)
        return {
            "state": "stalled" if stalled and self.state == "running" else self.state,
            "stalled": [f"{name} delivered nothing for {now - progress[name]:.1f} s" for name in stalled],
            "failed_worker": self.failed_worker,
            "pid": os.getpid(),
            "updated": time.time(),
            "uptime_s": round(now - self.started_at, 2),
            "first_inference_s": None if self.first_inference_at is None
            else round(self.first_inference_at - self.started_at, 3),
            "modes": list(self.cfg.app.modes),
            "last_event": self.last_event,
            "current_class": self.sound.current if self.sound else None,
            # Built-in classes not shown for now: the room keeps playing them (device.sound.habituation).
            "background": list(self.sound.background) if self.sound else [],
            "taught": sorted(getattr(getattr(self.sound_model, "decider", None), "prototypes", {}) or {}),
            "teaching": bool(self.teacher is not None and self.teacher.active),
            "counters": {
                **dataclasses.asdict(self.counters),
                "overflows": getattr(mic, "overflows", 0),
                "dropped_samples": getattr(mic, "dropped_samples", 0),
                "dropped_frames": getattr(cam, "dropped_frames", 0),
                "reconnects": getattr(synth, "reconnects", 0),
                **({f"sound_{k}": v for k, v in self.sound.counters.items()} if self.sound else {}),
                **({"marimba_windows": self.marimba.windows} if self.marimba is not None else {}),
                **({"audio_out_underruns": self.dev.audio_out.underruns,
                    "audio_out_dropped_samples": self.dev.audio_out.dropped_samples}
                   if self.dev.audio_out is not None else {}),
            },
            "backends": {k: getattr(getattr(self.dev, k), "backend", None)
                         for k in ("mic", "camera", "leds", "display", "synth", "audio_out")
                         if getattr(self.dev, k) is not None},
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
            workers.append(("sound", "mic", self._sound_worker))
        if self.marimba is not None and self.dev.camera is not None:
            workers.append(("marimba", "camera", self._marimba_worker))
        if self.dev.display is not None:
            workers.append(("display", "display", self._display_worker))
        now = self.clock()
        for name, source, fn in workers:
            if source is not None:
                self._progress[source] = now  # start-up counts as progress: stalls are measured from here
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
                self.failed_worker = threading.current_thread().name
                log.exception("worker %s died: %s", self.failed_worker, e)
                self.stop_event.set()
        return run

    def inputs_done(self) -> bool:
        """True when every input worker has ended (finite sim sources played out)."""
        inputs = [t for t in self._threads if t.name in ("sound", "marimba")]
        return bool(inputs) and not any(t.is_alive() for t in inputs)

    def run(self, seconds: float | None = None, stop_when_done: bool = True) -> int:
        """Block until stopped (signal, ``seconds`` elapsed, or inputs finished).

        Returns 0, or 1 when a worker died: systemd's ``Restart=on-failure`` then restarts the box.
        """
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
        return 1 if self.failed_worker else 0

    def shutdown(self) -> None:
        self.state = "stopping"
        self._notify("stopping")
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=1.0)
        with self._lock:  # never while a worker is half-way through an action (a pin write during cleanup)
            self._devices_closed = True
            self.dev.close()
        if self.teach_button is not None:
            self.teach_button.close()
        self.state = "failed" if self.failed_worker else "stopped"
        self.write_status()
