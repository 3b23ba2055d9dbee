"""The marimba pipeline: camera frames -> space-time images -> int8 model -> notes.

Everything here is pure numpy and shared with training, so the device, the
evaluation and the training data go through one code path:

- ``MarimbaSpec``: every constant of the video side (frame size, crop of the bar
  area, model input size, input normalisation, the target transform, the peak
  picker); written into the model metadata by training and read back here.
- ``preprocess_frame`` / ``space_time_image``: rectify a grayscale frame to
  the model's canonical view of the bar row (``device.marimba.rectify``; the
  default calibration is the original fixed crop + area resize), then stack
  3 consecutive frames as channels and standardise them.
- ``TargetTransform``: note amplitude (``device.frontend.note_targets``) <->
  the model's output level (log-compressed, 0..~1) <-> MIDI velocity.
- ``PeakPicker`` / ``levels_to_events``: THE peak picker (threshold, rise,
  refractory time, hold) used by the device, by evaluation and by the audio
  target extractor: per note, a local maximum of the level above threshold
  starts a ``NoteOn``; a ``NoteOff`` follows after ``hold_s``.
- ``MarimbaPipeline``: ``step(frame) -> [NoteOn | NoteOff]``, keeps a 3-frame
  buffer and runs a ``device.model.Model`` (or anything with ``predict``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from device.frontend import NoteParams, dataclass_from_dict
from device.marimba.rectify import Calibration, Canonical, Rectifier

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: int) -> str:
    """60 -> 'C4' (scientific pitch notation)."""
    midi = int(midi)
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


# ------------------------------------------------------------------- events


@dataclass(frozen=True)
class NoteOn:
    """A struck bar: MIDI note, velocity 1..127, time in seconds (the frames' clock)."""

    note: int
    velocity: int
    t: float

    def __str__(self) -> str:
        return f"note_on {note_name(self.note)} note={self.note} velocity={self.velocity} t={self.t:.3f}"


@dataclass(frozen=True)
class NoteOff:
    """End of a note, ``hold_s`` after its NoteOn (or when the bar is struck again)."""

    note: int
    t: float

    def __str__(self) -> str:
        return f"note_off {note_name(self.note)} note={self.note} t={self.t:.3f}"


# ------------------------------------------------------------ specification


@dataclass(frozen=True)
class TargetTransform:
    """Note amplitude (linear, as ``note_amplitudes`` reads it) <-> model level.

    level = log1p(a / floor) / log1p(full / floor): 0 in silence, about 1 for
    the loudest strike; log compression keeps quiet notes visible to the loss
    and to the threshold. velocity = 127 * (a / velocity_ref) ** (1 / velocity_exponent),
    the inverse of the synthetic renderer's amplitude = ref * (velocity/127) ** exponent.
    """

    kind: str = "log1p"
    floor: float = 0.01  # amplitude (-40 dBFS) that maps to level log1p(1)/log1p(full/floor)
    full: float = 0.25  # amplitude that maps to level 1
    velocity_ref: float = 0.17  # peak window amplitude of a velocity-127 strike
    velocity_exponent: float = 2.0

    def __post_init__(self) -> None:
        if self.kind != "log1p":
            raise ValueError(f"unknown target transform {self.kind!r} (expected 'log1p')")
        if not 0 < self.floor < self.full:
            raise ValueError("target transform needs 0 < floor < full")

    @property
    def _norm(self) -> float:
        return math.log1p(self.full / self.floor)

    def forward(self, amplitude: np.ndarray) -> np.ndarray:
        a = np.maximum(np.asarray(amplitude, dtype=np.float32), 0.0)
        return (np.log1p(a / self.floor) / self._norm).astype(np.float32)

    def inverse(self, level: np.ndarray) -> np.ndarray:
        y = np.maximum(np.asarray(level, dtype=np.float32), 0.0)
        return (self.floor * np.expm1(y * self._norm)).astype(np.float32)

    def velocity(self, level: float) -> int:
        a = float(self.inverse(np.float32(level)))
        v = 127.0 * (max(a, 0.0) / self.velocity_ref) ** (1.0 / self.velocity_exponent)
        return int(min(127, max(1, round(v))))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TargetTransform":
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class PeakParams:
    """The peak picker's constants (levels are in ``TargetTransform`` units)."""

    threshold: float = 0.3  # a peak must reach this level
    min_rise: float = 0.12  # ... and rise this much above the lowest of the previous ``rise_windows``
    rise_windows: int = 3
    refractory_s: float = 0.12  # no second NoteOn for the same note within this time
    hold_s: float = 0.2  # NoteOff this long after the NoteOn
    onset_offset_s: float = 0.0  # added to a window's start time to estimate the strike time
    # Spectral leakage: an onset inside a window smears into the neighbouring
    # bars' bins. A peak is dropped when a note within ``mask_neighbours`` bars
    # is at least ``mask_margin`` louder in the same or the next window.
    mask_neighbours: int = 1
    mask_margin: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PeakParams":
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class Crop:
    """The bar area as fractions of the camera frame (top/left inclusive, bottom/right exclusive)."""

    top: float = 0.0625
    left: float = 0.025
    bottom: float = 0.9375
    right: float = 0.975

    def __post_init__(self) -> None:
        if not (0 <= self.top < self.bottom <= 1 and 0 <= self.left < self.right <= 1):
            raise ValueError(f"bad crop {self}: need 0 <= top < bottom <= 1 and 0 <= left < right <= 1")

    def pixels(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of the crop in a height x width frame."""
        r0, r1 = int(round(self.top * height)), int(round(self.bottom * height))
        c0, c1 = int(round(self.left * width)), int(round(self.right * width))
        return r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Crop":
        return dataclass_from_dict(cls, data)


@dataclass(frozen=True)
class MarimbaSpec:
    """Every constant of the video side of the marimba model (serialised in its metadata)."""

    frame_size: tuple[int, int] = (96, 160)  # (height, width) of the camera frames trained on
    crop: Crop = field(default_factory=Crop)  # where the canonical view sits in an uncalibrated frame
    input_size: tuple[int, int] = (48, 128)  # (height, width) after crop + resize
    frames_per_window: int = 3
    fps: float = 30.0
    std_floor: float = 4.0  # grey levels; keeps a flat (dark) window from blowing up
    clip: float = 4.0  # standardised values are clipped to +/- this (int8 input range)
    notes: tuple[int, ...] = NoteParams().notes
    target: TargetTransform = field(default_factory=TargetTransform)
    peaks: PeakParams = field(default_factory=PeakParams)
    # The bar-row box range the model sees (absent in old metadata: the default, i.e. the crop as before).
    canonical: Canonical = field(default_factory=Canonical)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_size", tuple(int(v) for v in self.frame_size))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "notes", tuple(int(n) for n in self.notes))
        for name, cls in (("crop", Crop), ("target", TargetTransform), ("peaks", PeakParams),
                          ("canonical", Canonical)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, cls.from_dict(value))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_size[0], self.input_size[1], self.frames_per_window)

    @property
    def labels(self) -> list[str]:
        return [note_name(n) for n in self.notes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_size": list(self.frame_size), "crop": self.crop.to_dict(), "input_size": list(self.input_size),
            "frames_per_window": self.frames_per_window, "fps": self.fps, "std_floor": self.std_floor,
            "clip": self.clip, "notes": list(self.notes), "target": self.target.to_dict(),
            "peaks": self.peaks.to_dict(), "canonical": self.canonical.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MarimbaSpec":
        return dataclass_from_dict(cls, data)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "MarimbaSpec":
        """The spec a trained model recorded (metadata key ``marimba``)."""
        if "marimba" not in meta:
            raise ValueError("model metadata lacks the 'marimba' section")
        return cls.from_dict(meta["marimba"])

    def replace(self, **changes: Any) -> "MarimbaSpec":
        return dataclasses.replace(self, **changes)


def _spec_of(model: Any) -> "MarimbaSpec":
    """The spec in a model's metadata; a bad one is one line naming the metadata file (ModelError)."""
    from device.errors import ModelError
    from device.model import metadata_path_for

    try:
        return MarimbaSpec.from_metadata(model.metadata)
    except (ValueError, TypeError) as e:
        where = metadata_path_for(model.path) if hasattr(model, "path") else "the marimba model's metadata"
        raise ModelError(f"{where}: bad 'marimba' section ({e})") from None


# ------------------------------------------------------------ preprocessing


@lru_cache(maxsize=16)
def default_calibration(spec: MarimbaSpec) -> Calibration:
    """The calibration of an uncalibrated box: the model's nominal view (its crop)."""
    return Calibration.default_for(spec)


@lru_cache(maxsize=16)
def _rectifier(calibration: Calibration, frame_size: tuple[int, int], canonical: Canonical,
               input_size: tuple[int, int]) -> Rectifier:
    return Rectifier(calibration, frame_size, canonical, input_size)


def rectifier_for(spec: MarimbaSpec, frame_size: Sequence[int], calibration: Calibration | None = None
                  ) -> Rectifier:
    """The (cached) rectifier for frames of ``frame_size`` (H, W); refuses a frame of the wrong aspect ratio."""
    cal = calibration or default_calibration(spec)
    return _rectifier(cal, (int(frame_size[0]), int(frame_size[1])), spec.canonical, spec.input_size)


def preprocess_frame(image: np.ndarray, spec: MarimbaSpec, calibration: Calibration | None = None) -> np.ndarray:
    """Grayscale frame (H, W) uint8 (or (H, W, 3)) -> the canonical view (h, w) uint8.

    Without a calibration this is the model's fixed crop, area-resized (the
    crop is a fraction of the frame, so a camera at another resolution of the
    same aspect ratio still sees the same bar area; another aspect ratio is
    refused in one line asking for a calibration).
    """
    img = np.asarray(image)
    return rectifier_for(spec, img.shape[:2], calibration)(img)


def preprocess_frames(frames: np.ndarray, spec: MarimbaSpec, calibration: Calibration | None = None
                      ) -> np.ndarray:
    """(N, H, W) uint8 -> (N, h, w) uint8, same as ``preprocess_frame`` on each."""
    frames = np.asarray(frames)
    if len(frames) == 0:
        return np.zeros((0,) + spec.input_size, np.uint8)
    return rectifier_for(spec, frames.shape[1:3], calibration).batch(frames)


def space_time_image(stack: np.ndarray, spec: MarimbaSpec) -> np.ndarray:
    """k preprocessed frames (..., k, h, w) uint8 -> model input (..., h, w, k) float32.

    Frames become channels (oldest first); the window is standardised with its
    own mean and standard deviation (robust to lighting gain) and clipped.
    Works on one window or a batch of windows alike.
    """
    x = np.moveaxis(np.asarray(stack, dtype=np.float32), -3, -1)
    axes = (-3, -2, -1)
    mean = x.mean(axis=axes, keepdims=True)
    std = x.std(axis=axes, keepdims=True)
    return np.clip((x - mean) / np.maximum(std, spec.std_floor), -spec.clip, spec.clip).astype(np.float32)


def window_stacks(frames: np.ndarray, k: int = 3) -> np.ndarray:
    """(N, h, w) -> (N-k+1, k, h, w) view: window i = frames i..i+k-1."""
    frames = np.asarray(frames)
    n = len(frames) - k + 1
    if n <= 0:
        return np.zeros((0, k) + frames.shape[1:], frames.dtype)
    return np.lib.stride_tricks.sliding_window_view(frames, k, axis=0).transpose(0, 3, 1, 2)


# ------------------------------------------------------------- peak picking


GAP_FRAMES = 3.0  # frames further apart than this many frame periods do not make one window


class PeakPicker:
    """Streaming per-note peak picker: ``push(levels, t) -> events``.

    A window i becomes a NoteOn when window i+1 has arrived and, for that note,
    level[i] >= threshold, level[i] > level[i-1], level[i] >= level[i+1],
    level[i] - min(level[i-rise_windows .. i-1]) >= min_rise, no note within
    ``mask_neighbours`` bars is ``mask_margin`` louder in window i or i+1
    (spectral leakage of its onset), and the note's previous NoteOn is at
    least ``refractory_s`` older. The NoteOn time is
    t[i] + onset_offset_s; its NoteOff comes ``hold_s`` later (or right before
    a new NoteOn of the same note). ``flush()`` ends the stream.
    """

    def __init__(self, notes: Sequence[int], params: PeakParams = PeakParams(),
                 transform: TargetTransform = TargetTransform()):
        self.notes = np.asarray(notes, dtype=np.int64)
        self.params = params
        self.transform = transform
        n = len(self.notes)
        self._hist: deque[np.ndarray] = deque(maxlen=params.rise_windows + 2)
        self._times: deque[float] = deque(maxlen=params.rise_windows + 2)
        self._last_on = np.full(n, -np.inf)
        self._off_at = np.full(n, np.inf)  # pending NoteOff time per note
        self.active: dict[int, int] = {}  # note -> velocity of the sounding NoteOn

    def reset(self) -> None:
        self.__init__(self.notes, self.params, self.transform)

    def _offs_until(self, t: float) -> list[NoteOff]:
        due = np.flatnonzero(np.isfinite(self._off_at) & (self._off_at <= t))
        out = []
        for j in due[np.argsort(self._off_at[due], kind="stable")]:
            out.append(NoteOff(int(self.notes[j]), float(self._off_at[j])))
            self._off_at[j] = np.inf
            self.active.pop(int(self.notes[j]), None)
        return out

    def push(self, levels: np.ndarray, t: float) -> list[NoteOn | NoteOff]:
        """Add the model output for the window starting at time t; return new events."""
        p = self.params
        y = np.asarray(levels, dtype=np.float32).reshape(-1)
        if len(y) != len(self.notes):
            raise ValueError(f"expected {len(self.notes)} levels, got {len(y)}")
        self._hist.append(y)
        self._times.append(float(t))
        events: list[NoteOn | NoteOff] = []
        if len(self._hist) >= 3:
            h = np.stack(self._hist)  # oldest first; the candidate is h[-2]
            cur, prev, nxt = h[-2], h[-3], h[-1]
            before = h[:-2][-p.rise_windows:]
            t_on = self._times[-2] + p.onset_offset_s
            ok = (cur >= p.threshold) & (cur > prev) & (cur >= nxt) & (cur - before.min(axis=0) >= p.min_rise)
            ok &= (t_on - self._last_on) >= p.refractory_s - 1e-9
            if p.mask_neighbours > 0 and ok.any():
                loud = np.maximum(cur, nxt)
                for d in range(1, p.mask_neighbours + 1):
                    ok[d:] &= loud[:-d] < cur[d:] + p.mask_margin
                    ok[:-d] &= loud[d:] < cur[:-d] + p.mask_margin
            events += self._offs_until(t_on)
            for j in np.flatnonzero(ok):
                note = int(self.notes[j])
                if np.isfinite(self._off_at[j]):  # still sounding: end it first
                    events.append(NoteOff(note, t_on))
                velocity = self.transform.velocity(float(cur[j]))
                events.append(NoteOn(note, velocity, t_on))
                self._last_on[j] = t_on
                self._off_at[j] = t_on + p.hold_s
                self.active[note] = velocity
        # NoteOffs whose time has passed by the newest decided window.
        events += self._offs_until(self._times[-2] + p.onset_offset_s if len(self._times) >= 2 else -np.inf)
        return events

    def flush(self) -> list[NoteOff]:
        """NoteOffs for every note still sounding (end of a stream)."""
        return self._offs_until(np.inf)

    def due(self, t: float) -> list[NoteOff]:
        """NoteOffs whose time has come by ``t`` although no window arrived (a camera that stalls)."""
        return self._offs_until(t)


def levels_to_events(levels: np.ndarray, times: Sequence[float] | np.ndarray, notes: Sequence[int],
                     params: PeakParams = PeakParams(), transform: TargetTransform = TargetTransform(),
                     flush: bool = True) -> list[NoteOn | NoteOff]:
    """The pure form of ``PeakPicker``: a (T, notes) level sequence -> time-ordered events.

    Shared by evaluation (Keras predictions, audio targets) and, through
    ``PeakPicker``, the device, so there is one peak picker.
    """
    picker = PeakPicker(notes, params, transform)
    events: list[NoteOn | NoteOff] = []
    for y, t in zip(np.asarray(levels), times):
        events += picker.push(y, float(t))
    if flush:
        events += picker.flush()
    return events


def events_to_notes(events: Iterable[NoteOn | NoteOff]) -> list[tuple[float, float, int, int]]:
    """Pair NoteOn/NoteOff -> [(onset, offset, midi, velocity)] sorted by onset."""
    open_: dict[int, NoteOn] = {}
    out = []
    for e in events:
        if isinstance(e, NoteOn):
            if e.note in open_:
                on = open_.pop(e.note)
                out.append((on.t, e.t, on.note, on.velocity))
            open_[e.note] = e
        elif isinstance(e, NoteOff) and e.note in open_:
            on = open_.pop(e.note)
            out.append((on.t, e.t, on.note, on.velocity))
    out += [(on.t, math.inf, on.note, on.velocity) for on in open_.values()]
    return sorted(out)


def audio_events(audio: np.ndarray, n_frames: int, spec: MarimbaSpec = MarimbaSpec(),
                 note_params: NoteParams | None = None, frame_times: Sequence[float] | None = None,
                 labeller: Any = None) -> list[NoteOn | NoteOff]:
    """Notes heard in a recording from each bar's fundamental: note_targets -> level -> the device's peak
    picker (the old reading; the project's reference notes are ``device.marimba.labeller.heard_events``).

    With a fitted ``labeller`` (``device.marimba.labeller.HarmonicLabeller``) its harmonic-template notes
    instead (times on the audio's clock, which ``frame_times`` share).
    """
    from device.frontend import note_targets

    if labeller is not None:
        return labeller.events(audio, spec)

    note_params = note_params or NoteParams(fps=spec.fps, frames_per_window=spec.frames_per_window,
                                            notes=spec.notes)
    amps = note_targets(audio, n_frames, note_params, frame_times)
    times = (np.asarray(frame_times, dtype=np.float64)[: len(amps)] if frame_times is not None
             else np.arange(len(amps)) / spec.fps)
    return levels_to_events(spec.target.forward(amps), times, spec.notes, spec.peaks, spec.target)


# ----------------------------------------------------------------- pipeline


class MarimbaPipeline:
    """Camera frames in, NoteOn/NoteOff out. No I/O: the app feeds it frames.

    ``model`` is a ``device.model.Model`` (int8 TFLite; floats in and out) or
    any object with ``predict(x) -> levels`` and, unless ``spec`` is given, a
    ``metadata`` dict holding the ``marimba`` section written by training.
    Consecutive frames (by ``Frame.index``) form the 3-frame windows; a gap in
    the indices (dropped frames) restarts the buffer, since the model was
    trained on consecutive frames only.
    """

    def __init__(self, model: Any, spec: MarimbaSpec | None = None, peaks: PeakParams | None = None,
                 piano_roll_steps: int = 150, calibration: Calibration | None = None):
        self.model = model
        self.calibration = calibration  # None: the model's default view
        self.spec = spec or _spec_of(model)
        if peaks is not None:
            self.spec = self.spec.replace(peaks=peaks)
        want = tuple(getattr(model, "input_shape", self.spec.input_shape))
        if want != self.spec.input_shape:
            raise ValueError(f"model input {want} disagrees with the marimba spec {self.spec.input_shape}")
        self.picker = PeakPicker(self.spec.notes, self.spec.peaks, self.spec.target)
        self._frames: deque[np.ndarray] = deque(maxlen=self.spec.frames_per_window)
        self._times: deque[float] = deque(maxlen=self.spec.frames_per_window)
        self._last_index: int | None = None
        self.gaps = 0  # times the frame buffer restarted because of dropped frames
        self.windows = 0  # model invocations so far
        self.levels = np.zeros(len(self.spec.notes), np.float32)  # newest model output
        self.last_image: np.ndarray | None = None
        self._roll: deque[np.ndarray] = deque(maxlen=piano_roll_steps)
        self._rectifier: Rectifier | None = None  # for the frame size seen last (the camera's, in practice)

    def check_frame_size(self, frame_size: Sequence[int]) -> Rectifier:
        """Build the rectifier for this camera size now (refuses a wrong aspect ratio before the app starts)."""
        return rectifier_for(self.spec, frame_size, self.calibration)

    @classmethod
    def from_model_path(cls, path: Any, note_params: NoteParams | None = None, num_threads: int = 1,
                        **kwargs: Any) -> "MarimbaPipeline":
        """Load an int8 marimba model (refused when its front end differs from ``note_params``)."""
        from device.model import Model

        return cls(Model(path, expected_frontend=note_params or NoteParams(), num_threads=num_threads), **kwargs)

    @property
    def notes(self) -> tuple[int, ...]:
        return self.spec.notes

    @property
    def active_notes(self) -> dict[int, float]:
        """Sounding notes -> velocity 0..1 (for the display)."""
        return {n: v / 127.0 for n, v in self.picker.active.items()}

    @property
    def piano_roll(self) -> np.ndarray:
        """(steps, notes) model levels clipped to 0..1, newest last (for the display)."""
        if not self._roll:
            return np.zeros((0, len(self.spec.notes)), np.float32)
        return np.clip(np.stack(self._roll), 0.0, 1.0)

    def reset(self) -> None:
        self._frames.clear()
        self._times.clear()
        self._last_index = None
        self.picker.reset()
        self._roll.clear()

    def step(self, frame: Any) -> list[NoteOn | NoteOff]:
        """Add one ``Frame`` (image, index, captured_at); return the events it completes."""
        image, index, t = frame.image, int(frame.index), float(frame.captured_at)
        # A gap: a skipped index, or frames further apart than GAP_FRAMES frame periods (a camera that stalled
        # or was reopened numbers its frames on regardless; capture jitter stays well inside it). The model only
        # saw consecutive frames.
        late = bool(self._times) and t - self._times[-1] > GAP_FRAMES / self.spec.fps
        if self._last_index is not None and (index != self._last_index + 1 or late):
            self._frames.clear()
            self._times.clear()
            self.gaps += 1
        self._last_index = index
        self.last_image = image
        img = np.asarray(image)
        # One rectifier per camera size, looked up when the size changes, not rebuilt or re-keyed per frame.
        if self._rectifier is None or self._rectifier.frame_size != img.shape[:2]:
            self._rectifier = rectifier_for(self.spec, img.shape[:2], self.calibration)
        self._frames.append(self._rectifier(img))
        self._times.append(t)
        if len(self._frames) < self.spec.frames_per_window:
            return []
        x = space_time_image(np.stack(self._frames), self.spec)
        self.levels = np.asarray(self.model.predict(x), dtype=np.float32).reshape(-1)
        self.windows += 1
        self._roll.append(self.levels.copy())
        return self.picker.push(self.levels, self._times[0])

    def run(self, frames: Iterable[Any]) -> list[NoteOn | NoteOff]:
        """All events for a finite frame sequence, ending with the pending NoteOffs."""
        events: list[NoteOn | NoteOff] = []
        for f in frames:
            events += self.step(f)
        return events + self.picker.flush()

    def note_regions(self) -> dict[int, tuple[float, float, float, float]]:
        """Each note's bar slot in the camera image through the calibration (for the display).

        (x, y, w, h) fractions of the frame: the bounding box of the bar's
        quadrilateral (the display draws rectangles).
        """
        cal = self.calibration or default_calibration(self.spec)
        quads = cal.bar_quads(len(self.spec.notes), (1, 1))
        lo, hi = quads.min(axis=1), quads.max(axis=1)
        return {note: (float(lo[i, 0]), float(lo[i, 1]), float(hi[i, 0] - lo[i, 0]), float(hi[i, 1] - lo[i, 1]))
                for i, note in enumerate(self.spec.notes)}
