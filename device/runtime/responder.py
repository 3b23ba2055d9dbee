"""Events in, actions out: everything the box decides about *how to respond*.

The pipelines say what happened (a class was heard, a bar was struck); the
``Responder`` turns that into what the LED, the synth and the screen should do:
the user's class mapping (config ``[mapping.*]``), the one palette, note-off
scheduling, the self-sound gate and both screen scenes. It does no I/O and
starts no threads, so it is tested by calling it, and every later mapping
(taught sounds, learned continuous mappings, generated pictures) has one home.

    events ──► Responder.on_event(event, t) ──► [SetLed, Midi, ShowScene]
    clock  ──► Responder.due(t)             ──► [Midi note-offs that fell due]
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from device.config import PROJECT_ROOT, ClassMapping, Config
from device.hardware.base import Scene
from device.screen.palette import Colour, class_colour, note_colour
from device.sound.labels import UNKNOWN

log = logging.getLogger("saysee")

MIN_LED_BRIGHTNESS = 0.15  # a barely-sure detection must still visibly light the LED


@dataclass(frozen=True)
class SetLed:
    """Show ``colour`` at ``brightness`` (0..1) on the RGB LED; brightness 0 = off."""

    colour: Colour
    brightness: float


@dataclass(frozen=True)
class Midi:
    """Send one MIDI message (a ``mido.Message``) to the synth."""

    message: Any


@dataclass(frozen=True)
class ShowScene:
    """Hand a scene to the display (it keeps only the newest)."""

    scene: Scene


Action = SetLed | Midi | ShowScene
LED_OFF = SetLed((0.0, 0.0, 0.0), 0.0)


class Responder:
    """Pure mapping from pipeline events to LED, MIDI and screen actions.

    ``labels`` are the sound model's classes and ``notes`` the marimba's: their
    mapping, colours and picture files are resolved once here, so a missing
    picture is reported once at start, not on every detection.
    """

    def __init__(self, cfg: Config, labels: Sequence[str] = (), notes: Sequence[int] = (),
                 taught: Mapping[str, ClassMapping] | None = None, continuous: Any | None = None):
        self.cfg = cfg
        # [continuous]: a ContinuousMapper (device.runtime.continuous) that owns the LED every hop, or None.
        self.continuous = continuous
        self._channel = cfg.synth.channel - 1
        self._release_s = cfg.synth.release_s
        self._mappings: dict[str, ClassMapping] = {}
        for label, m in (taught or {}).items():
            self.add_class(label, m)
        for label in labels:
            self.mapping(label)
        self.note_colours: dict[int, Colour] = {n: cfg.note_colours.get(n) or note_colour(n) for n in notes}
        self._pending_off: list[tuple[float, Any]] = []  # (stream time s, note-off message)
        self._sounding: dict[int, float] = {}  # marimba notes on now -> LED level, in the order they started
        self._gate_until = 0.0  # stream time until which our own note may still sound
        # [display] picture_mode = "dream": a device.screen.dream.DreamPicture the builder sets (None = cards).
        self.dream: Any | None = None

    # ------------------------------------------------------------ mapping

    def _assets_dir(self) -> Path:
        return Path(self.cfg.app.assets_dir) if self.cfg.app.assets_dir else PROJECT_ROOT / "assets" / "images"

    def mapping(self, label: str) -> ClassMapping:
        """The resolved mapping of one class: colour filled in, picture path checked (\"\" = none)."""
        m = self._mappings.get(label)
        if m is None:
            m = self._mappings[label] = self._resolve(label, self.cfg.mapping.get(label) or ClassMapping())
        return m

    def _resolve(self, label: str, m: ClassMapping) -> ClassMapping:
        picture = m.picture or str(self._assets_dir() / f"{label}.png")
        if not Path(picture).is_file():
            log.warning("no picture for class %s (%s): the screen draws its name instead", label, picture)
            picture = ""
        return dataclasses.replace(m, colour=m.colour or class_colour(label), picture=picture)

    def add_class(self, label: str, mapping: ClassMapping) -> ClassMapping:
        """Register (or replace) a class taught on the box, with its stored mapping."""
        self._mappings.pop(label, None)
        self._mappings[label] = self._resolve(label, mapping)
        return self._mappings[label]

    def note_colour(self, note: int) -> Colour:
        """The configured colour of a marimba note, else the palette's."""
        return self.note_colours.get(note) or self.cfg.note_colours.get(note) or note_colour(note)

    def _midi(self, kind: str, **kw: Any) -> Midi:
        import mido

        return Midi(mido.Message(kind, channel=self._channel, **kw))

    # ------------------------------------------------------------ events -> actions

    def on_event(self, event: Any, t: float | None = None) -> list[Action]:
        """The actions one pipeline event calls for; ``t`` defaults to the event's own stream time."""
        t = getattr(event, "t", 0.0) if t is None else t
        kind = type(event).__name__
        if kind == "ClassDetected":
            return self._without_led(self._on_class(event, t))
        if kind == "ClassCleared":
            return self._without_led([self._resting_led()])
        if kind == "NoteOn":
            self._sounding.pop(event.note, None)
            self._sounding[event.note] = event.velocity / 127.0  # newest last
            return [self._midi("note_on", note=event.note, velocity=event.velocity),
                    SetLed(self.note_colour(event.note), event.velocity / 127.0)]
        if kind == "NoteOff":
            self._sounding.pop(event.note, None)
            return [self._midi("note_off", note=event.note, velocity=0), self._resting_led()]
        return []

    def _resting_led(self) -> Action:
        """What the LED shows when a sound or note ends: the newest bar still sounding, else dark."""
        if not self._sounding:
            return LED_OFF
        note, level = next(reversed(self._sounding.items()))
        return SetLed(self.note_colour(note), level)

    def led_off(self) -> list[Action]:
        """The LED back to rest (a prompt card gone, a pipeline replaced mid-sound)."""
        return self._without_led([self._resting_led()])

    def _on_class(self, event: Any, t: float) -> list[Action]:
        if event.label == UNKNOWN:
            return [LED_OFF]  # not a wrong colour, not a wrong sound: the screen asks to be taught
        m = self.mapping(event.label)
        actions: list[Action] = [SetLed(m.colour, max(MIN_LED_BRIGHTNESS, min(1.0, event.confidence)))]
        if m.program is not None:
            actions.append(self._midi("program_change", program=m.program))
        if m.note is not None:
            actions.append(self._midi("note_on", note=m.note, velocity=m.velocity))
            # Stream time, not wall time: unpaced sim runs and live runs then behave alike.
            self._pending_off.append((t + m.duration_s, self._midi("note_off", note=m.note, velocity=0)))
            self._gate_until = max(self._gate_until, t + m.duration_s + self._release_s)
        return actions

    def _without_led(self, actions: list[Action]) -> list[Action]:
        """A sound class's LED actions, unless the continuous mapping drives the LED every hop."""
        if self.continuous is not None and self.continuous.drives_led:
            return [a for a in actions if not isinstance(a, SetLed)]
        return actions

    def on_hop(self, window: Any, embedding: Any = None) -> list[Action]:
        """The continuous mapping's actions for one decision hop (a pipeline ``WindowResult`` and the
        embedding of its window when it was classified): LED and CC values that changed."""
        if self.continuous is None or window is None:
            return []
        led, cc = self.continuous.step(window.t, window.level_dbfs, window.skipped, embedding)
        actions: list[Action] = [] if led is None else [SetLed(*led) if led[1] > 0 else LED_OFF]
        actions += [self._midi("control_change", control=n, value=v) for n, v in cc.items()]
        return actions

    def due(self, t: float = float("inf")) -> list[Action]:
        """Note-offs whose time has come (all of them when ``t`` is omitted: shutting down)."""
        due = [m for when, m in self._pending_off if when <= t]
        self._pending_off = [(when, m) for when, m in self._pending_off if when > t]
        return due

    def is_gated(self, t: float, synth_playing: bool = False) -> bool:
        """True while the box's own synth may be heard by its own mic (detections are held back).

        By stream time for the notes this responder scheduled; ``synth_playing``
        covers what else the synth is sounding (e.g. the marimba's notes) in real time.
        """
        return self.cfg.sound.gate_while_synth and (t < self._gate_until or synth_playing)

    # ------------------------------------------------------------ scenes

    def prompt(self, text: str, colour: Colour, t: float = 0.0) -> list[Action]:
        """A message card with the LED in its colour: the teach button's "make the sound now", "Got it!"."""
        return [SetLed(colour, 1.0), ShowScene(Scene(mode="prompt", status=text, colour=colour, timestamp=t))]

    def sound_scene(self, sound: Any) -> ShowScene:
        """The "sound" screen for a ``SoundPipeline``'s state: the heard class's picture, or listening."""
        current, last = sound.current, sound.last
        m = self.mapping(current) if current and current != UNKNOWN else None
        status = f"{'listening' if current is None else current}  level {last.level_dbfs:.0f} dBFS" if last else "starting"
        # Stream time as the timestamp: the display's rate limit then spaces frames evenly
        # through the audio, whether it was played in real time or as fast as possible.
        return ShowScene(Scene(mode="sound", label=current, picture=m.picture if m else None,
                               colour=m.colour if m else (0.0, 0.0, 0.0), probabilities=dict(sound.probabilities),
                               spectrogram=sound.spectrogram.copy(), status=status,
                               generated=self.dream.follow(last) if self.dream is not None else None,
                               timestamp=last.t if last else 0.0))

    def marimba_scene(self, marimba: Any, t: float) -> ShowScene:
        """The "marimba" screen for a ``MarimbaPipeline``'s state: camera view, lit bars, piano roll."""
        active = marimba.active_notes
        return ShowScene(Scene(mode="marimba", camera=marimba.last_image, active_notes=dict(active),
                               piano_roll=marimba.piano_roll, note_colours=dict(self.note_colours),
                               note_regions=marimba.note_regions(), status=f"{len(active)} notes sounding",
                               timestamp=t))
