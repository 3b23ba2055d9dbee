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

from device.frontend import LogMelParams, StreamingLogMel, dbfs


@dataclass(frozen=True)
class ClassDetected:
    """A sound class became the current decision."""

    label: str
    confidence: float
    t: float  # stream time (s) of the end of the deciding window
    probabilities: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def __str__(self) -> str:
        return f"ClassDetected label={self.label} confidence={self.confidence:.2f} t={self.t:.2f}s"


@dataclass(frozen=True)
class ClassCleared:
    """The current class ended (silence, or confidence fell below the off threshold)."""

    label: str
    t: float
    reason: str

    def __str__(self) -> str:
        return f"ClassCleared label={self.label} reason={self.reason} t={self.t:.2f}s"


@dataclass(frozen=True)
class SoundSettings:
    """Decision tuning; every field is a key of the config's [sound] section."""

    threshold_on: float = 0.6  # smoothed probability that makes a class current
    threshold_off: float = 0.3  # below this the current class is cleared
    smoothing: float = 0.7  # weight of the newest window in the running average
    silence_dbfs: float = -45.0  # the newest 0.25 s of the window must exceed this to be classified
    min_sound_s: float = 0.15  # a window needs this much audio above the gate: a 70 ms sliver of an
    #                            onset looks like an impulse (a "gun shot") to any classifier
    silent_hops_to_clear: int = 2  # quiet hops before the picture goes back to "listening"
    max_latency_s: float | None = 0.75  # windows older than this are skipped, not classified late


@dataclass
class WindowResult:
    """What one analysed window produced, for the display and the status file."""

    t: float
    level_dbfs: float
    probabilities: np.ndarray | None  # smoothed, None when gated/silent/stale
    skipped: str | None  # "silent" | "gated" | "stale" | None


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
        self._silent_hops = 0
        self.counters = {"windows": 0, "inferences": 0, "silent": 0, "stale": 0, "gated": 0}

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
        silence gate, so reverb tails and the quiet after a sound are never
        "heard"; after ``silent_hops_to_clear`` quiet hops the class is cleared.
        ``gated`` (the box's own synth is sounding) and stale audio (captured
        more than ``max_latency_s`` ago) hold the current decision: the front
        end still advances so the stream stays continuous, but nothing is
        classified.
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
            hi = len(self._raw) - (self._raw_end - end)
            level = dbfs(self._raw[max(hi - p.samples_per_hop, 0) : hi])
            sound_s = self._loud_seconds(self._raw[max(hi - p.samples_per_window, 0) : hi])
            age = (self.clock() - captured_at) if captured_at is not None else 0.0
            if s.max_latency_s is not None and age > s.max_latency_s:
                skipped = "stale"
            elif gated:
                skipped = "gated"
            elif level < s.silence_dbfs or sound_s < s.min_sound_s:
                skipped = "silent"
                self._silent_hops += 1
                if self._silent_hops >= s.silent_hops_to_clear:
                    self._smoothed[:] = 0.0
                    if self.current is not None:
                        events.append(ClassCleared(self.current, t, "silence"))
                        self.current = None
            else:
                skipped = None
            if skipped:
                self.counters[skipped] += 1
                self.last = WindowResult(t, level, None, skipped)
                continue
            self._silent_hops = 0
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
