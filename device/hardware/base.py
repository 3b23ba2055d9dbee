"""The small interfaces every hardware backend implements.

Each kind (mic, camera, LEDs, display, synth, audio out) has a real backend and a simulated
one; ``device.hardware.<kind>.open_<kind>(cfg)`` picks one once, at the edge
(``backend = "auto" | "real" | "sim"``), logging which and why, and the rest of
the code only sees these interfaces. All are context managers with an
idempotent ``close()``.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A live input (mic, camera) that delivers nothing this long is stalled or gone (unplugged): the box stops
# feeding the watchdog, a recorder stops and keeps what it has. Well under systemd's WatchdogSec (10 s in
# the unit), well over a chunk or a frame (<0.1 s).
INPUT_STALL_S = 2.0


class Device(abc.ABC):
    """Base of every backend: context manager, idempotent close."""

    name = "device"
    backend = "?"  # "real" | "sim", for logs and `python -m device check`
    is_closed = False

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            self._close()

    def _close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class AudioChunk:
    """Mono int16 samples at the pipeline rate; ``start`` = global index of samples[0]."""

    samples: np.ndarray
    start: int
    captured_at: float  # time.monotonic() when the last sample arrived


class Mic(Device):
    """Audio source: chunks of mono int16 at ``sample_rate``; never blocks the producer.

    Capture happens on the backend's own thread/callback into a bounded ring; a
    full ring drops the *oldest* audio and counts it in ``dropped_samples``.
    """

    name = "mic"
    sample_rate: int = 16000
    overflows: int = 0  # driver-level input overflows (pyaudio -9981 and the like)
    dropped_samples: int = 0  # samples lost because the consumer fell behind

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def read(self, timeout: float | None = None) -> AudioChunk | None:
        """Next chunk, or None on timeout / end of a finite source (see ``is_finished``)."""

    @property
    def is_finished(self) -> bool:
        """True once a finite source (a WAV playlist) has delivered everything."""
        return False

    @property
    def plays_out(self) -> bool:
        """True for a source meant to end (a recording played once); any other mic that ends was lost."""
        return False


@dataclass(frozen=True)
class Frame:
    """One grayscale camera frame (uint8, HxW) with its capture time."""

    image: np.ndarray
    index: int
    captured_at: float  # time.monotonic(), or the video timestamp for sim sources


class Camera(Device):
    """Frame source. ``read`` returns the newest frame (older ones are dropped and counted).

    ``Frame.index`` counts every captured frame from 0, so a gap between two
    frames read is exactly the frames dropped in between. After ``close()``,
    ``read`` returns None at once and ``start`` does nothing.
    """

    name = "camera"
    fps: float = 30.0
    dropped_frames: int = 0

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def read(self, timeout: float | None = None) -> Frame | None: ...

    @property
    def is_finished(self) -> bool:
        return False

    @property
    def plays_out(self) -> bool:
        """True for a source meant to end (a video played once); a live camera that ends was lost."""
        return False


class Leds(Device):
    """One RGB LED. Colour is (r, g, b) each 0..1; brightness 0..1 multiplies it.

    Values outside 0..1 raise ValueError before anything changes; ``set`` after
    ``close()`` raises RuntimeError (the pins are released, the LED is dark).
    """

    name = "leds"

    @abc.abstractmethod
    def set(self, rgb: tuple[float, float, float], brightness: float = 1.0) -> None: ...

    def off(self) -> None:
        self.set((0.0, 0.0, 0.0), 0.0)


@dataclass
class Scene:
    """Everything the display draws for one update; pure data, built by the pipelines.

    mode "sound": picture of the heard class (or the listening screen when
    ``label`` is None), probability bars, a scrolling log-mel spectrogram.
    mode "marimba": camera view with struck bars highlighted and a piano roll.
    mode "prompt": one message (``status``) on a card of ``colour`` (the teach button's prompts).
    """

    mode: str = "sound"
    label: str | None = None
    picture: str | None = None  # path of the class picture
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)
    probabilities: dict[str, float] = field(default_factory=dict)
    spectrogram: np.ndarray | None = None  # (frames, mels) log-mel, newest last
    camera: np.ndarray | None = None  # uint8 grayscale view
    active_notes: dict[int, float] = field(default_factory=dict)  # midi note -> velocity 0..1
    piano_roll: np.ndarray | None = None  # (time steps, notes) 0..1, newest last
    note_colours: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    # Where each note's bar lies in ``camera`` as (x, y, w, h) fractions of the
    # image; empty = the notes split the image width evenly, lowest on the left.
    note_regions: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    level: float | None = None  # input loudness 0..1 for the level meter; None = from spectrogram
    generated: np.ndarray | None = None  # dream mode: (h, w, 3) uint8 picture generated from the sound
    status: str = ""
    timestamp: float = field(default_factory=time.monotonic)


class Display(Device):
    """Shows Scenes: a pygame screen (real) or PNG frames (sim), same renderer.

    ``show`` never blocks (frames over the rate limit are dropped); after
    ``close()`` it does nothing, so a late scene from a pipeline thread is harmless.
    """

    name = "display"

    @abc.abstractmethod
    def show(self, scene: Scene) -> None: ...


class AudioOut(Device):
    """A speaker: mono blocks of float (-1..1) or int16 samples at ``sample_rate``; never blocks the writer.

    ``write`` queues the block for the backend's own consumer (the sound card's
    callback, or the sim's WAV writer) in a bounded queue: when it is full the
    *oldest* queued audio is dropped and counted in ``dropped_samples``; a
    consumer that finds the queue empty plays silence and counts ``underruns``
    (a card-paced one then waits for a cushion of one block plus one period).
    ``write`` after ``close()`` raises ``AudioOutClosedError`` (device.hardware.audio_out).
    """

    name = "audio_out"
    sample_rate: int  # set by each backend to the rate the card (or WAV) opened at
    underruns: int = 0  # periods the consumer had to pad with silence
    dropped_samples: int = 0  # queued samples dropped because the consumer fell behind

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def write(self, block: np.ndarray) -> int:
        """Queue one mono block; returns how many samples were queued."""


class Synth(Device):
    """A MIDI synth on a serial port. Sending never blocks audio; a lost port is retried."""

    name = "synth"
    reconnects: int = 0

    @abc.abstractmethod
    def send(self, message: Any) -> bool:
        """Send one mido.Message; False if it could not be delivered now (port absent)."""

    @property
    def is_connected(self) -> bool:
        return False

    @property
    def is_playing(self) -> bool:
        """True while a note it sent may still be sounding (gates detection of our own sound)."""
        return False
