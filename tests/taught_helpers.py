"""Test helpers for teaching and the open-set decision: a stand-in two-output model and test sounds.

``StandInModel`` has the interface of ``device.model.Model`` (labels, input_shape,
metadata, predict, infer, has_embedding, embedding_version) without TFLite:
its embedding is a fixed random projection of the window's log-mel band profile
(max over time, mean removed), L2-normalised, so the same sound at another
position, level or slightly other pitch lands close and different sounds far.
Its probabilities are a closed-set softmax over similarities to per-class
"centre" sounds: like a real classifier, it is sure of *some* class for any input.
"""

from __future__ import annotations

import numpy as np

from device.frontend import LogMelParams, window_features
from device.sound.labels import URBANSOUND_CLASSES
from device.sound.open_set import normalise

RATE = 16000


def tone(freq: float, seconds: float = 0.6, amp: float = 0.3, vibrato: float = 0.0) -> np.ndarray:
    """A harmonic tone (fundamental + 2 overtones) with 20 ms fades, as int16."""
    t = np.arange(int(seconds * RATE)) / RATE
    f = freq * (1 + vibrato * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f) / RATE
    x = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return np.round(amp / 1.75 * x * fade * 32767).astype(np.int16)


def noise(seconds: float = 0.5, amp: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(np.clip(rng.normal(0, amp, int(seconds * RATE)), -1, 1) * 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.int16)


class StandInModel:
    """A stand-in for a two-output sound model (see module docstring)."""

    def __init__(self, dim: int = 32, version: str = "standin-1", seed: int = 0, embedding: bool = True,
                 centres: dict[str, np.ndarray] | None = None, open_set: dict | None = None):
        self.params = LogMelParams()
        self.labels = list(URBANSOUND_CLASSES)
        self.input_shape = self.params.input_shape
        self.path = "standin.tflite"
        self.has_embedding = embedding
        self.embedding_version = version if embedding else None
        self._w = np.random.default_rng(seed).normal(size=(dim, self.params.n_mels)).astype(np.float32)
        # Probabilities: one reference sound per class (a tone ladder), so some class always "wins".
        refs = {label: tone(110 * 1.5 ** i, 0.5) for i, label in enumerate(self.labels)}
        refs.update(centres or {})
        self._ref = np.stack([self._embed(window_features(refs[k], self.params)) for k in self.labels])
        self.metadata = {"kind": "sound", "labels": self.labels}
        if embedding:
            self.metadata["outputs"] = ["probabilities", "embedding"]
            self.metadata["embedding"] = {"dim": dim, "version": version, "metric": "cosine"}
            if open_set is not None:
                # Centres default to the class reference sounds, as training would compute them.
                self.metadata["open_set"] = {"class_centres": {k: self.centre(k) for k in self.labels}, **open_set}
        self.calls = 0

    def _embed(self, x: np.ndarray) -> np.ndarray:
        prof = np.asarray(x, np.float32).reshape(self.input_shape)[..., 0].max(axis=0)
        return normalise(self._w @ (prof - prof.mean()))

    def centre(self, label: str) -> list[float]:
        return self._ref[self.labels.index(label)].tolist()

    def infer(self, x: np.ndarray):
        self.calls += 1
        e = self._embed(x)
        logits = 30.0 * (self._ref @ e)
        p = np.exp(logits - logits.max())
        return (p / p.sum()).astype(np.float32), (e if self.has_embedding else None)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.infer(x)[0]
