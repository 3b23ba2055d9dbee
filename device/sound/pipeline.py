"""The real-time sound pipeline: audio chunks -> windows -> int8 model -> decisions.

Pure logic, no I/O: ``SoundPipeline.step(chunk)`` takes an AudioChunk and
returns events; the app feeds it from the mic thread and routes events to sinks.
Its settings are the config's [sound] section (``SoundConfig``), the one source
of every default.

Two decision designs share the streaming front end and the silence gate
(``[sound] decision``; keys left unset take the design's own values,
``device.config.DESIGN_DEFAULTS``):

- ``window``: a 1 s window every 0.25 s; a class becomes current when the
  smoothed probability passes ``threshold_on`` and a window holds at least
  ``min_sound_s`` (0.15 s) of sound above the gate. Waits for the next hop,
  the sound and the average to climb: about 0.3 s from onset to picture.
- ``onset`` (default): the same window every 0.05 s. For the first
  ``SETTLE_S`` of a new sound a class is decided *early*, from a window holding
  only ``early_min_sound_s`` of it, when the model is sure of it
  (``early_threshold``) or when its latest windows (``early_agree_s``) all
  put the same class first at ``early_agree_threshold`` or more; classes in
  ``early_exclude`` wait for ``min_sound_s`` and a sure window (every sudden
  onset looks like a gun shot at first). The running average
  restarts at each new sound and then confirms or corrects the early decision
  as the window fills: a correction is a ``replaced`` ClassCleared followed by
  the new class (the bench counts it as a flicker). Needs a model trained on
  onset slivers (crops holding 0.04 s of the event and more).

The labels need not be the model's: run through ``device.sound.open_set.OpenSetModel``
(as the builder does), ``predict`` scores built-in classes, taught sounds and
``unknown``, so ClassDetected.label may be any of them. ``unknown`` is never
decided early, nor after a class was decided for the same sound: a
recognised sound turning unclear fades to "listening" until the next silence
instead of flickering to the teach-me card.

Both keep the protections: nothing is classified unless the newest hop is
louder than the gate (silence, reverb tails), nothing is decided on less
sound than the minimums above, and hysteresis (``threshold_on`` /
``threshold_off``) keeps the picture from flickering. A built-in class the
room keeps playing in long sounds (a TV's music) becomes the room's
background and is not shown until the room quietens
(``device.sound.habituation``, ``[sound] habituate_s``).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Collection, Sequence

import numpy as np

from device.config import SoundConfig
from device.errors import ConfigError
from device.frontend import LogMelParams, StreamingLogMel, dbfs
from device.sound.habituation import Habituation
from device.sound.labels import UNKNOWN

# The pipeline's settings are the [sound] section itself: one default for every field.
SoundSettings = SoundConfig

# [sound] smoothing is the weight of the newest SMOOTHING_REF_S of audio, whatever the hop.
SMOOTHING_REF_S = 0.25
# onset: until a sound's running average holds SETTLE_S of full windows, decisions need early_threshold.
SETTLE_S = SMOOTHING_REF_S


@dataclass(frozen=True)
class ClassDetected:
    """A sound class became the current decision."""

    label: str
    confidence: float
    t: float  # stream time (s) of the end of the deciding window
    probabilities: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    early: bool = False  # decided by the onset design's early rule (sure, before the average settled)

    def __str__(self) -> str:
        return (f"ClassDetected label={self.label} confidence={self.confidence:.2f} t={self.t:.2f}s"
                + (" early" if self.early else ""))


@dataclass(frozen=True)
class ClassCleared:
    """The current class ended (silence, confidence fell below the off threshold, or another class won)."""

    label: str
    t: float
    reason: str  # "silence" | "faded" | "replaced"

    def __str__(self) -> str:
        return f"ClassCleared label={self.label} reason={self.reason} t={self.t:.2f}s"


@dataclass
class WindowResult:
    """What one analysed window produced, for the display and the status file."""

    t: float
    level_dbfs: float
    probabilities: np.ndarray | None  # smoothed, None when gated/silent/stale
    skipped: str | None  # "silent" | "gated" | "stale" | None


SPECTROGRAM_SECONDS = 4.0  # the history the screen's scrolling spectrogram shows


def spectrogram_frames(params: LogMelParams = LogMelParams()) -> int:
    """How many log-mel frames of history the pipeline keeps for the screen (``SPECTROGRAM_SECONDS``)."""
    return int(round(SPECTROGRAM_SECONDS * params.sample_rate / params.hop_length))


class SoundPipeline:
    """Streaming classifier with onset-aware or windowed decisions; knows nothing of devices or threads.

    ``params`` are the model's front-end parameters (from its metadata); the
    pipeline emits the same windows every ``settings.decision_hop_s`` instead
    of the model's training hop (windows are identical, only more frequent).
    ``agree_labels``: the labels the early agreement rule may decide (None: all);
    the box passes its built-in classes, since a taught sound's onset windows
    are capped below ``early_threshold`` on purpose and must not get in through
    agreement (measured: taught false pictures on the negatives stream tripled).
    They are also the classes habituation may make the room's background
    (``device.sound.habituation``; None: every label but ``unknown``);
    ``habituation`` carries that state over from a pipeline this one replaces.
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], labels: Sequence[str],
                 params: LogMelParams = LogMelParams(), settings: SoundConfig = SoundConfig(),
                 clock: Callable[[], float] = time.monotonic, agree_labels: Collection[str] | None = None,
                 habituation: Habituation | None = None):
        self.predict = predict
        self.labels = list(labels)
        self.params = params
        self.settings = settings
        self.clock = clock
        hop = settings.decision_hop_s
        try:
            self.stream_params = dataclasses.replace(params, hop_seconds=hop)
        except ValueError:
            raise ConfigError(f"[sound] hop_s = {hop}: expected a multiple of the front end's "
                              f"{params.hop_length / params.sample_rate:g} s frame hop") from None
        self.hop_s = self.stream_params.samples_per_hop / params.sample_rate
        self.frontend = StreamingLogMel(self.stream_params)
        self.onset = settings.decision == "onset"
        # Per-hop weights that keep the configured time constants whatever the hop.
        self._alpha = 1.0 - (1.0 - settings.smoothing) ** (self.hop_s / SMOOTHING_REF_S)
        self._clear_hops = max(1, int(round(settings.clear_after_s / self.hop_s)))
        self.min_sound_s = settings.decision_min_sound_s
        self._min_classify_s = min(self.min_sound_s, settings.early_min_sound_s) if self.onset else self.min_sound_s
        self._no_early = {self.labels.index(x) for x in settings.early_exclude if x in self.labels}
        self._no_agree = self._no_early | ({i for i, x in enumerate(self.labels) if x not in agree_labels}
                                           if agree_labels is not None else set())
        self._raw = np.zeros(0, dtype=np.float32)  # recent audio, for the silence gate
        self._raw_end = 0  # global sample index just past self._raw
        self._origin = 0  # global sample index where the front end's stream began
        self._spec_frames = spectrogram_frames(params)
        self._smoothed = np.zeros(len(self.labels), dtype=np.float32)
        self._averaged_s = 0.0  # seconds of full windows in the running average since the last silence
        self.current: str | None = None
        self.last: WindowResult | None = None
        self.spectrogram = np.full((0, params.n_mels), np.log(params.log_floor), dtype=np.float32)
        self._silent_hops = 0
        self._agree_hops = max(1, int(round(settings.early_agree_s / self.hop_s))) if settings.early_agree_s else 0
        # Raw scores of this sound's latest consecutive windows (what the agreement rule looks at).
        self._recent: deque[np.ndarray] = deque(maxlen=max(self._agree_hops, 1))
        self._sound_had_class = False  # a class was decided since the last silence: "unknown" may not follow
        self._habituable = ({i for i, x in enumerate(self.labels) if x in agree_labels} if agree_labels is not None
                            else {i for i, x in enumerate(self.labels) if x != UNKNOWN})
        self._habituable_names = {self.labels[i] for i in self._habituable}
        # A pipeline rebuilt for a newly taught sound keeps what the room has been playing.
        self.habituation = habituation or Habituation(settings.habituate_s, settings.habituate_window_s,
                                                      settings.habituate_long_s)
        self.counters = {"windows": 0, "inferences": 0, "silent": 0, "stale": 0, "gated": 0, "early": 0}
        # Built-in classes not shown for now (the room's background), as of the newest window; a new tuple
        # each change, so the status thread reads it without a lock.
        self.background: tuple[str, ...] = tuple(self.habituation.background(0.0)) if habituation else ()

    def _loud_seconds(self, audio: np.ndarray) -> float:
        """Seconds of 10 ms frames louder than the silence gate."""
        h = self.params.hop_length
        n = len(audio) // h
        if n == 0:
            return 0.0
        power = np.mean(audio[: n * h].reshape(n, h).astype(np.float64) ** 2, axis=1)
        loud = 10 * np.log10(np.maximum(power, 1e-20)) >= self.settings.silence_dbfs
        return float(np.count_nonzero(loud)) * h / self.params.sample_rate

    def step(self, samples: np.ndarray, start: int, captured_at: float | None = None,
             gated: bool = False) -> list[ClassDetected | ClassCleared]:
        """Feed one chunk (int16, ``start`` = its global sample index); return events.

        A window is classified only when its newest hop is louder than the
        silence gate and it holds enough sound above the gate, so reverb tails
        and the quiet after a sound are never "heard"; after ``clear_after_s``
        of quiet hops the class is cleared. ``gated`` (the box's own synth is
        sounding) and stale audio (captured more than ``max_latency_s`` ago)
        hold the current decision: the front end still advances so the stream
        stays continuous, but nothing is classified.
        """
        p, s = self.stream_params, self.settings
        events: list[ClassDetected | ClassCleared] = []
        x = np.asarray(samples)
        x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
        if start != self._raw_end:
            # A gap in the stream (the mic dropped audio, or a teach take went elsewhere): no window
            # may straddle it, so the front end starts afresh here and its sample count restarts.
            self.frontend.reset()
            self._raw = np.zeros(0, dtype=np.float32)
            self._origin = start
        self._raw = np.concatenate([self._raw, x])[-(p.samples_per_window + len(x)) :]
        self._raw_end = start + len(x)
        windows = self.frontend.push(samples)
        for end, feats in windows:
            end += self._origin  # the front end counts from where it (re)started
            t = end / p.sample_rate
            self.counters["windows"] += 1
            self.spectrogram = np.concatenate([self.spectrogram, feats[-p.frames_per_hop :, :, 0]])[-self._spec_frames :]
            hi = len(self._raw) - (self._raw_end - end)
            level = dbfs(self._raw[max(hi - p.samples_per_hop, 0) : hi])
            sound_s = self._loud_seconds(self._raw[max(hi - p.samples_per_window, 0) : hi])
            age = (self.clock() - captured_at) if captured_at is not None else 0.0
            if s.max_latency_s is not None and age > s.max_latency_s:
                skipped = "stale"
            elif gated:
                skipped = "gated"
            elif level < s.silence_dbfs or sound_s < self._min_classify_s:
                skipped = "silent"
                self._silent_hops += 1
                if self._silent_hops >= self._clear_hops:
                    self._sound_had_class = False
                    self._smoothed[:] = 0.0
                    self._averaged_s = 0.0
                    if self.current is not None:
                        events.append(ClassCleared(self.current, t, "silence"))
                        self.current = None
            else:
                skipped = None
            if skipped:
                self._recent.clear()  # the agreement rule wants consecutive windows of one sound
                self.counters[skipped] += 1
                self.last = WindowResult(t, level, None, skipped)
                continue
            self._silent_hops = 0
            raw = self.predict(feats)
            probs = np.asarray(raw, dtype=np.float32)
            self.counters["inferences"] += 1
            self._recent.append(probs)
            full = sound_s >= self.min_sound_s
            if full:
                if self.onset and self._averaged_s == 0.0:
                    # A new sound: average from its first full window, not from the silence before it.
                    self._smoothed = probs.copy()
                else:
                    self._smoothed = self._alpha * probs + (1.0 - self._alpha) * self._smoothed
                self._averaged_s += self.hop_s
                heard = self._heard(raw, probs)
                if heard is not None:
                    self.habituation.hear(t, heard, self.hop_s, self._averaged_s)
            if self.onset and self.current is None and self._averaged_s < SETTLE_S + 1e-9:
                events += self._decide_early(probs, t, full)
            elif full:
                events += self._decide(t)
            self.last = WindowResult(t, level, self._smoothed.copy(), None)
        if windows and self.habituation.after_s > 0:
            now = tuple(self.habituation.background(t))
            if now != self.background:
                self.background = now
        return events

    def _decide(self, t: float) -> list[ClassDetected | ClassCleared]:
        s = self.settings
        best = int(np.argmax(self._smoothed))
        conf = float(self._smoothed[best])
        label = self.labels[best]
        events: list[ClassDetected | ClassCleared] = []
        if self.current is not None:
            cur_conf = float(self._smoothed[self.labels.index(self.current)])
            if label != self.current and conf >= s.threshold_on and conf > cur_conf and self._may_show(label, t):
                events.append(ClassCleared(self.current, t, "replaced"))
                self.current = None
            elif cur_conf < s.threshold_off:
                events.append(ClassCleared(self.current, t, "faded"))
                self.current = None
        if self.current is None and conf >= s.threshold_on and self._may_show(label, t):
            self._detected(label)
            events.append(ClassDetected(label, conf, t, self.probabilities))
        return events

    def _heard(self, raw: np.ndarray, probs: np.ndarray) -> str | None:
        """The built-in class this window counts towards for habituation: what the open-set decision says
        it sounds like (``Scores.heard``), else a class this window's scores would show."""
        if hasattr(raw, "heard"):
            return raw.heard if raw.heard in self._habituable_names else None
        best = int(np.argmax(probs))
        if best in self._habituable and probs[best] >= self.settings.threshold_off:
            return self.labels[best]
        return None

    def _may_show(self, label: str, t: float) -> bool:
        # A sound that had a class and turns unclear fades to "listening": showing "teach me" for the rest
        # of a dog's bark would be a flicker (they were most of the onset design's), not news.
        if label == UNKNOWN:
            return not self._sound_had_class
        return not self.habituation.is_background(label, t)

    def _detected(self, label: str) -> None:
        self.current = label
        self._sound_had_class = self._sound_had_class or label != UNKNOWN

    def _decide_early(self, probs: np.ndarray, t: float, full: bool) -> list[ClassDetected]:
        """A sure class from the start of a sound, before the running average has settled."""
        best = int(np.argmax(probs))
        conf = float(probs[best])
        one_window = conf >= self.settings.early_threshold
        # Not sure of any one window, but every recent window of this sound agrees: as good as sure.
        agreed = (not one_window and len(self._recent) >= self._agree_hops > 0 and best not in self._no_agree
                  and all(int(np.argmax(r)) == best and r[best] >= self.settings.early_agree_threshold
                          for r in self._recent))
        if not (one_window or agreed) or (best in self._no_early and not full):
            return []
        if self.labels[best] == UNKNOWN or not self._may_show(self.labels[best], t):
            # The first sliver of any sound is far from every class: "unknown" waits for the running average.
            return []
        self._detected(self.labels[best])
        # The average restarts from the evidence that decided: the onset sliver before it (mostly "unknown")
        # would otherwise drag the decided class under threshold_off on the next hop.
        self._smoothed = np.mean(self._recent, axis=0) if agreed else probs.copy()
        self.counters["early"] += 1
        return [ClassDetected(self.current, conf, t, {n: float(v) for n, v in zip(self.labels, probs)}, early=True)]

    @property
    def probabilities(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.labels, self._smoothed)}
