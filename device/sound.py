"""The real-time sound pipeline: audio chunks -> windows -> int8 model -> decisions.

Pure logic, no I/O: ``SoundPipeline.step(chunk)`` takes an AudioChunk and
returns events; the app feeds it from the mic thread and routes events to sinks.
Smoothing (an exponential average over hops) with hysteresis keeps the picture
from flickering; a silence gate keeps a quiet room from "hearing" things.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .frontend import LogMelParams, StreamingLogMel, dbfs


@dataclass(frozen=True)
class ClassDetected:
    """A sound class became the current decision."""

    label: str
    confidence: float
    t: float  # stream time (s) of the end of the deciding window
    probabilities: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def describe(self) -> str:
        return f"ClassDetected label={self.label} confidence={self.confidence:.2f} t={self.t:.2f}s"


@dataclass(frozen=True)
class ClassCleared:
    """The current class ended (silence, or confidence fell below the off threshold)."""

    label: str
    t: float
    reason: str

    def describe(self) -> str:
        return f"ClassCleared label={self.label} reason={self.reason} t={self.t:.2f}s"


@dataclass(frozen=True)
class SoundSettings:
    """Decision tuning; every field is a key of the config's [sound] section."""

    threshold_on: float = 0.5  # smoothed probability that makes a class current
    threshold_off: float = 0.3  # below this the current class is cleared
    smoothing: float = 0.7  # weight of the newest window in the running average
    silence_dbfs: float = -45.0  # loudest 0.25 s of the window must exceed this
    max_latency_s: float | None = 0.75  # windows older than this are skipped, not classified late


@dataclass
class WindowResult:
    """What one analysed window produced, for the display and the status file."""

    t: float
    level_dbfs: float
    probabilities: np.ndarray | None  # smoothed, None when gated/silent/stale
    skipped: str | None  # "silence" | "synth" | "stale" | None


class SoundPipeline:
    """Streaming classifier with hysteresis; knows nothing of devices or threads."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], labels: Sequence[str],
                 params: LogMelParams = LogMelParams(), settings: SoundSettings = SoundSettings(),
                 clock: Callable[[], float] = time.monotonic):
        self.predict = predict
        self.labels = list(labels)
        self.params = params
        self.settings = settings
        self.clock = clock
        self.frontend = StreamingLogMel(params)
        self._raw = np.zeros(0, dtype=np.float32)  # recent audio, for the silence gate
        self._raw_end = 0  # global sample index just past self._raw
        self._smoothed = np.zeros(len(self.labels), dtype=np.float32)
        self.current: str | None = None
        self.last: WindowResult | None = None
        self.spectrogram = np.full((0, params.n_mels), np.log(params.log_floor), dtype=np.float32)
        self.counters = {"windows": 0, "inferences": 0, "silent": 0, "stale": 0, "gated": 0}

    def _loudest_hop_dbfs(self, audio: np.ndarray) -> float:
        h = self.params.samples_per_hop
        return max(dbfs(audio[i : i + h]) for i in range(0, len(audio) - h + 1, h))

    def step(self, samples: np.ndarray, start: int, captured_at: float | None = None,
             gated: bool = False) -> list[ClassDetected | ClassCleared]:
        """Feed one chunk (int16, ``start`` = its global sample index); return events.

        ``gated`` (the box's own synth is sounding) and stale audio (captured
        more than ``max_latency_s`` ago) still advance the front end, so the
        stream stays continuous, but are never classified.
        """
        p, s = self.params, self.settings
        events: list[ClassDetected | ClassCleared] = []
        x = np.asarray(samples)
        x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
        self._raw = np.concatenate([self._raw, x])[-(p.samples_per_window + len(x)) :]
        self._raw_end = start + len(x)
        windows = self.frontend.push(samples)
        for end, feats in windows:
            t = end / p.sample_rate
            self.counters["windows"] += 1
            self.spectrogram = np.concatenate([self.spectrogram, feats[-p.frames_per_hop :, :, 0]])[-4 * p.frames_per_window :]
            lo = len(self._raw) - (self._raw_end - end) - p.samples_per_window
            level = self._loudest_hop_dbfs(self._raw[max(lo, 0) : lo + p.samples_per_window])
            age = (self.clock() - captured_at) if captured_at is not None else 0.0
            skipped = None
            if s.max_latency_s is not None and age > s.max_latency_s:
                skipped = "stale"
            elif gated:
                skipped = "synth"
            elif level < s.silence_dbfs:
                skipped = "silence"
            if skipped:
                self.counters[{"synth": "gated", "silence": "silent"}.get(skipped, skipped)] += 1
                self._smoothed[:] = 0.0
                if self.current is not None and skipped != "stale":
                    events.append(ClassCleared(self.current, t, skipped))
                    self.current = None
                self.last = WindowResult(t, level, None, skipped)
                continue
            probs = np.asarray(self.predict(feats), dtype=np.float32)
            self.counters["inferences"] += 1
            self._smoothed = s.smoothing * probs + (1.0 - s.smoothing) * self._smoothed
            self.last = WindowResult(t, level, self._smoothed.copy(), None)
            events += self._decide(t)
        return events

    def _decide(self, t: float) -> list[ClassDetected | ClassCleared]:
        s = self.settings
        best = int(np.argmax(self._smoothed))
        conf = float(self._smoothed[best])
        label = self.labels[best]
        probs = {n: float(v) for n, v in zip(self.labels, self._smoothed)}
        events: list[ClassDetected | ClassCleared] = []
        if self.current is not None:
            cur_conf = float(self._smoothed[self.labels.index(self.current)])
            if label != self.current and conf >= s.threshold_on and conf > cur_conf:
                events.append(ClassCleared(self.current, t, "replaced"))
                self.current = None
            elif cur_conf < s.threshold_off:
                events.append(ClassCleared(self.current, t, "faded"))
                self.current = None
        if self.current is None and conf >= s.threshold_on:
            self.current = label
            events.append(ClassDetected(label, conf, t, probs))
        return events

    @property
    def probabilities(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.labels, self._smoothed)}
