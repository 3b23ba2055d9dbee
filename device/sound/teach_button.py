"""Teaching on the box without a computer: hold the teach button, make the sound 3 times.

    hold button (config [teach] hold_s) ──► "Make the sound! 1/3" (screen, LED amber)
    sound above the gate ──► captured until split_silence_s of quiet (LED red)
    ... takes 2 and 3 ... ──► enrolled as "sound 1" with a palette colour (LED in that colour)

The button is a push button from a GPIO pin (``[teach] button_pin``, BCM) to
ground, read through the RPi.GPIO API (RPi.GPIO, rpi-lgpio and Jetson.GPIO
all provide it) with the internal pull-up: pressed reads LOW.

``TeachSession`` is the flow itself, pure: it is fed mic samples and reports
prompts, so it runs the same from a live mic, the sim playlist or an array.
``ButtonTeacher`` joins button, session and enrolment for the app's sound
worker: while it is teaching, the worker gives it the audio instead of the
pipeline. A sound the box already knows ("That sounds like dog_bark!") or
takes that disagree are not enrolled; the screen says why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from device.config import TeachConfig
from device.errors import SaySeeError
from device.frontend import LogMelParams
from device.sound.taught import TaughtClass, TaughtStorageError, TaughtStore, colour_hex
from device.sound.teach import FULL_SCALE, SILENCE_DBFS, Take, TaughtFull, check_room, enrol, next_generated_name

log = logging.getLogger("saysee")

PROMPT_COLOUR = (1.0, 0.55, 0.0)  # amber: make the sound now
CAPTURE_COLOUR = (1.0, 0.0, 0.0)  # red: hearing it
PROBLEM_COLOUR = (0.4, 0.4, 0.4)  # grey: try again / gave up
FULL_TEXT = "I know so many sounds! Ask a grown-up to forget one."  # [teach] max_sounds reached
PRE_ROLL_S = 0.1  # audio kept from before the onset, so the take starts before its sound


class TeachButton:
    """A push button to ground on a BCM pin, read through the RPi.GPIO API (pull-up: pressed = LOW)."""

    def __init__(self, gpio: Any, pin: int, hold_s: float, clock: Callable[[], float] = time.monotonic):
        self.gpio, self.pin, self.hold_s, self.clock = gpio, int(pin), float(hold_s), clock
        if gpio.getmode() is None:
            gpio.setmode(gpio.BCM)
        gpio.setup(self.pin, gpio.IN, pull_up_down=gpio.PUD_UP)
        self._down_since: float | None = None
        self._fired = False
        self._closed = False

    @property
    def is_pressed(self) -> bool:
        return self.gpio.input(self.pin) == self.gpio.LOW

    def poll(self) -> bool:
        """True once per press, when it has been held for ``hold_s``."""
        now = self.clock()
        if not self.is_pressed:
            self._down_since, self._fired = None, False
            return False
        if self._down_since is None:
            self._down_since = now
        if not self._fired and now - self._down_since >= self.hold_s:
            self._fired = True
            return True
        return False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.gpio.cleanup(self.pin)


@dataclass
class Prompt:
    """What the screen and LED should show now."""

    text: str
    colour: tuple[float, float, float]


@dataclass
class TeachSession:
    """The button's flow over mic audio: wait for a sound, capture it, N times (pure; fed samples)."""

    teach: TeachConfig
    params: LogMelParams = LogMelParams()
    silence_dbfs: float = SILENCE_DBFS
    takes: list[np.ndarray] = field(default_factory=list)
    state: str = "waiting"  # waiting | capturing | done | failed
    prompts: list[Prompt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._buf = np.zeros(0, np.int16)  # samples not yet judged (less than one 10 ms frame)
        self._pre = np.zeros(0, np.int16)  # recent quiet audio, the pre-roll
        self._take: list[np.ndarray] = []
        self._quiet = 0  # samples of quiet since the take's last loud frame
        self._loud = 0  # loud samples in the take
        self._waited = 0  # samples waited for a sound
        self._elapsed = 0  # samples of the whole session
        # Clicks every few seconds (a clock, a dripping tap) are takes too short to keep but restart the wait:
        # the session as a whole gets each take's wait and length, so it always ends and the box listens again.
        self._limit = int(self.teach.takes * (self.teach.wait_s + self.teach.take_s) * self.params.sample_rate)
        self._prompt()

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    def _say(self, text: str, colour: tuple[float, float, float]) -> None:
        self.prompts.append(Prompt(text, colour))

    def _prompt(self) -> None:
        self._say(f"Make the sound! {len(self.takes) + 1}/{self.teach.takes}", PROMPT_COLOUR)

    def feed(self, samples: np.ndarray) -> None:
        """Judge the audio in 10 ms frames (the gate's unit); the session's time is the audio's."""
        if self.finished:
            return
        rate, h = self.params.sample_rate, self.params.hop_length
        x = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._buf = np.concatenate([self._buf, x])
        n = len(self._buf) // h
        frames, self._buf = self._buf[: n * h].reshape(n, h), self._buf[n * h :]
        for fr in frames:
            self._elapsed += h
            if self._elapsed > self._limit and self.state == "waiting":
                self.state = "failed"
                self._say("That took too long. Hold the button to try again.", PROBLEM_COLOUR)
                return
            power = float(np.mean((fr.astype(np.float64) / 32768.0) ** 2))
            loud = 10 * np.log10(max(power, 1e-20)) >= self.silence_dbfs
            if self.state == "waiting":
                if loud:
                    self.state = "capturing"
                    self._take, self._quiet, self._loud = [self._pre, fr], 0, h
                    self._say(f"Hearing it... {len(self.takes) + 1}/{self.teach.takes}", CAPTURE_COLOUR)
                else:
                    self._pre = np.concatenate([self._pre, fr])[-int(PRE_ROLL_S * rate):]
                    self._waited += h
                    if self._waited >= self.teach.wait_s * rate:
                        self.state = "failed"
                        self._say("No sound heard. Hold the button to try again.", PROBLEM_COLOUR)
                        return
            elif self.state == "capturing":
                self._take.append(fr)
                self._loud += h if loud else 0
                self._quiet = 0 if loud else self._quiet + h
                length = sum(len(t) for t in self._take)
                if self._quiet >= self.teach.split_silence_s * rate or length >= self.teach.take_s * rate:
                    self._end_take()
                    if self.finished:
                        return

    def _end_take(self) -> None:
        audio = np.concatenate(self._take)
        # Trim the trailing silence that ended the take, keeping a short tail.
        audio = audio[: max(len(audio) - self._quiet + int(0.05 * self.params.sample_rate), 0)]
        self._take, self._pre, self._waited = [], np.zeros(0, np.int16), 0
        self.state = "waiting"
        rate = self.params.sample_rate
        if self._loud < self.teach.min_take_s * rate:
            self._say("Too short! Make the sound again.", PROBLEM_COLOUR)
        elif float(np.mean(np.abs(audio.astype(np.int32)) >= FULL_SCALE)) > self.teach.max_clipped:
            self._say("Too loud! A bit further from the box, again.", PROBLEM_COLOUR)
        else:
            self.takes.append(audio)
        if len(self.takes) >= self.teach.takes:
            self.state = "done"
            self._say("Got it!", CAPTURE_COLOUR)
        else:
            self._prompt()


class ButtonTeacher:
    """The teach button for the app's sound worker: ``step(samples)`` each chunk.

    Returns True while teaching (the worker must not classify that audio). On
    success ``on_taught(TaughtClass)`` lets the app add the class to the
    responder and the decision; ``show(Prompt)`` drives the screen and LED.
    """

    def __init__(self, button: TeachButton, store: TaughtStore, model: Any, teach: TeachConfig,
                 show: Callable[[Prompt], None], on_taught: Callable[[TaughtClass], None] = lambda c: None,
                 params: LogMelParams = LogMelParams(), silence_dbfs: float = SILENCE_DBFS):
        self.button, self.store, self.model, self.teach = button, store, model, teach
        self.show, self.on_taught = show, on_taught
        self.params, self.silence_dbfs = params, silence_dbfs
        self.session: Optional[TeachSession] = None
        self.result: Optional[TaughtClass] = None
        self._shown = 0

    @property
    def active(self) -> bool:
        return self.session is not None

    def _flush(self) -> None:
        assert self.session is not None
        for p in self.session.prompts[self._shown:]:
            self.show(p)
        self._shown = len(self.session.prompts)

    def step(self, samples: np.ndarray) -> bool:
        if self.session is None:
            if not self.button.poll():
                return False
            if not getattr(self.model, "has_embedding", False):
                self.show(Prompt("This sound model can't learn new sounds yet.", PROBLEM_COLOUR))
                return False
            try:
                check_room(self.store, self.teach)
            except TaughtFull as e:  # say so before the child makes the sound three times
                self._full(e)
                return False
            self.session, self._shown = TeachSession(self.teach, self.params, self.silence_dbfs), 0
            self._flush()
            return True
        self.session.feed(samples)
        self._flush()
        if self.session.state == "done":
            self._finish(self.session.takes)
        if self.session is not None and self.session.finished:
            self.session = None
        return True

    def _full(self, e: Exception) -> None:
        log.warning("teach button: %s", e)
        self.show(Prompt(FULL_TEXT, PROBLEM_COLOUR))

    def _finish(self, takes: list[np.ndarray]) -> None:
        from device.screen.palette import class_colour

        name = next_generated_name(self.store.labels())
        try:
            c = enrol(self.store, self.model, name, [Take(f"take {i}", t) for i, t in enumerate(takes, 1)],
                      teach=self.teach, params=self.params, silence_dbfs=self.silence_dbfs,
                      mapping={"colour": colour_hex(class_colour(name))}, log=log.warning,
                      recover=False)  # inside the running box: never race a CLI's teach
        except TaughtFull as e:  # a sound taught from the command line meanwhile took the last place
            self._full(e)
            return
        except TaughtStorageError as e:  # the card, not the sound: "try again" would never help
            log.error("teach button: %s", e)
            self.show(Prompt("I couldn't save that sound! Ask a grown-up to check the box.", PROBLEM_COLOUR))
            return
        except SaySeeError as e:
            text = str(e)
            like = text.split("this sounds like ", 1)
            msg = f"That sounds like {like[1].split(' ')[0]}!" if len(like) == 2 else "Those takes don't match. Try again!"
            log.warning("teach button: %s", text)
            self.show(Prompt(msg, PROBLEM_COLOUR))
            return
        self.result = c
        self.show(Prompt(f"Learned {name}!", class_colour(name)))
        self.on_taught(c)


def add_taught(decision: Any, responder: Any, c: TaughtClass) -> None:
    """Make a class taught while the box runs count at once: ``decision`` (an OpenSetModel) gets its
    prototype, ``responder`` its mapping. The sound pipeline's labels grow by one, so the caller
    builds a new ``SoundPipeline(decision.predict, decision.labels, ...)`` for the next chunk."""
    protos = dict(decision.decider.prototypes)
    protos[c.label] = c.prototype
    decision.decider = decision.decider.with_prototypes(protos)
    responder.add_class(c.label, c.class_mapping())


def open_button(teach: TeachConfig, gpio_module: str = "", clock: Callable[[], float] = time.monotonic) -> TeachButton | None:
    """The configured button, or None when ``[teach] button_pin`` is unset, or when it reads pressed as the box
    starts (a button held down is released by then; a pin that reads low has no pull-up: it would start
    teaching by itself, over and over)."""
    if teach.button_pin is None:
        return None
    from device.hardware.leds import import_gpio, is_jetson

    gpio = import_gpio(gpio_module or None)
    jetson = is_jetson(gpio)
    if jetson:  # Jetson.GPIO ignores setup()'s pull_up_down (a warning, no bias on the line)
        log.warning("teach button: Jetson.GPIO has no internal pull-up: wire a 10 kOhm resistor from BCM %d to "
                    "3.3 V", teach.button_pin)
    button = TeachButton(gpio, teach.button_pin, teach.hold_s, clock)
    if button.is_pressed:
        button.close()
        log.error("teach button: BCM %d reads pressed as the box starts: %s; the button is not used",
                  teach.button_pin, "no pull-up (add 10 kOhm to 3.3 V)" if jetson else
                  "stuck, or wired to 3.3 V instead of ground")
        return None
    return button
