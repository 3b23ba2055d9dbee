"""The "dream" picture mode: a picture generated from what the box hears, every hop.

``models/generator.tflite`` (trained by ``training.train_generator``) turns the
sound model's 64-d embedding plus a loudness value into a 64 x 64 RGB picture.
``DreamPicture`` feeds it the live embedding, smoothed by an exponential moving
average and re-normalised to unit length (the embedding space is a sphere), so
the picture morphs from one sound's picture to the next instead of jumping;
loudness is smoothed the same way and drives the picture's intensity (the
generator learned brightness from it). The result is scaled up in numpy
(bilinear) for the display.

numpy + the TFLite runtime only (through ``device.model.Model``), like all of ``device/``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from device.errors import ModelError

# dBFS -> loudness 0..1 for the generator's loudness input. The bottom is the
# sound front end's silence gate (-45 dBFS, DESIGN.md) less a margin; the top is a
# loud, close sound. One source: training.train_generator imports these.
LOUDNESS_DBFS = (-50.0, -6.0)
SMOOTHING_S = 0.3  # time constant of the moving averages, in stream seconds (whatever the decision hop)
SMOOTHING = 0.35  # weight of the newest step when ``step`` is called without a time step
PICTURE_SIDE = 64  # the generator's output: PICTURE_SIDE x PICTURE_SIDE x 3
DISPLAY_SIDE = 256  # the picture is scaled up to this side before the renderer fits it on screen


def loudness(level_dbfs: float | None) -> float:
    """A hop's level in dBFS -> 0..1 (None, silence or below the range -> 0)."""
    if level_dbfs is None or not np.isfinite(level_dbfs):
        return 0.0
    lo, hi = LOUDNESS_DBFS
    return float(np.clip((level_dbfs - lo) / (hi - lo), 0.0, 1.0))


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)


@functools.lru_cache(maxsize=8)
def _interp_matrix(n: int, side: int) -> np.ndarray:
    """(side, n) bilinear weights from n samples to side samples, pixel centres aligned."""
    src = np.clip((np.arange(side) + 0.5) * n / side - 0.5, 0, n - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (src - i0).astype(np.float32)
    a = np.zeros((side, n), np.float32)
    np.add.at(a, (np.arange(side), i0), 1 - f)
    np.add.at(a, (np.arange(side), i1), f)
    return a


def upscale(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """(h, w, 3) floats in [0, 1] -> (side, side, 3) uint8, bilinear (pixel centres aligned).

    Two small matrix products (rows, then columns): ~1 ms for 64 -> 256, where gathering
    four neighbours per output pixel took several times that on the box's budget.
    """
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    h, w = img.shape[:2]
    rows = np.tensordot(_interp_matrix(h, side), img, axes=(1, 0))  # (side, w, 3)
    out = np.tensordot(rows, _interp_matrix(w, side), axes=(1, 1))  # (side, 3, side)
    return np.round(np.clip(out.transpose(0, 2, 1), 0.0, 1.0) * 255.0).astype(np.uint8)


class DreamPicture:
    """Generated pictures that follow the live embedding, smoothed so they morph.

    ``generate`` maps an input vector (embedding + loudness, as the generator's
    metadata lays out) to a (64, 64, 3) picture in [0, 1]; ``from_model`` builds
    one from ``models/generator.tflite``. ``step(embedding, level_dbfs)`` is
    called once per hop: a new embedding moves the running average by
    ``1 - exp(-dt / smoothing_s)`` (``smoothing`` when no ``dt`` is given); a hop
    without one (silence) keeps the average and lets the loudness fall, so the
    picture fades instead of vanishing. A sound that starts after the picture
    has faded takes over at once (``presence``, the running share of hops that
    heard a sound, lets the new embedding in by ``1 - presence`` more): sounds
    that follow each other morph, a sound after silence does not wait for the last one.
    """

    def __init__(self, generate: Callable[[np.ndarray], np.ndarray], embedding_dim: int = 64,
                 smoothing: float = SMOOTHING, side: int = DISPLAY_SIDE,
                 source: Callable[[], np.ndarray | None] | None = None, smoothing_s: float = SMOOTHING_S):
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing}")
        self.generate = generate
        self.embedding_dim = int(embedding_dim)
        self.smoothing = float(smoothing)
        self.smoothing_s = float(smoothing_s)
        self.side = int(side)
        self.embedding: np.ndarray | None = None  # the smoothed, unit-length embedding
        self.loudness = 0.0
        self.presence = 0.0  # running share of hops that brought a sound (0 after a silence)
        self.image: np.ndarray | None = None  # the newest generated picture, (64, 64, 3) in [0, 1]
        # ``follow`` reads the newest classified window's embedding here (the builder wires the sound model's tap).
        self.source = source
        self._hop: Any = None
        self._t: float | None = None
        self._display: np.ndarray | None = None

    @classmethod
    def from_model(cls, path: str | os.PathLike, sound_meta: Mapping[str, Any] | None = None,
                   num_threads: int = 1, **kw: Any) -> DreamPicture:
        """Load the int8 generator; refuse one trained on another embedding than ``sound_meta``'s."""
        from device.model import Model

        model = Model(path, num_threads=num_threads, kind="generator")
        check_sound_model(model.metadata, sound_meta, model.path)
        dim = int((model.metadata.get("embedding") or {}).get("dim", 64))
        return cls(model.predict, embedding_dim=dim, **kw)

    def reset(self) -> None:
        """Forget the running average (a new sound source, e.g. after teaching)."""
        self.embedding, self.loudness, self.presence, self.image, self._display = None, 0.0, 0.0, None, None

    def follow(self, window: Any) -> np.ndarray | None:
        """The display picture for a pipeline's newest hop (a ``WindowResult``); steps once per new hop.

        A classified hop brings ``source()``'s embedding; a silent hop only its level (the picture
        dims); a gated or stale hop holds everything, as the pipeline's decision does.
        """
        if window is not None and window is not self._hop:
            self._hop = window
            skipped = getattr(window, "skipped", None)
            t = float(getattr(window, "t", 0.0))
            if skipped in (None, "silent"):
                emb = self.source() if skipped is None and self.source is not None else None
                dt = None if self._t is None else max(t - self._t, 0.0)
                self.step(emb, window.level_dbfs, dt)
                self._display = self.display_image()
            self._t = t  # a held hop still moves the clock: the next step smooths from here
        return self._display

    def step(self, embedding: np.ndarray | None, level_dbfs: float | None,
             dt: float | None = None) -> np.ndarray | None:
        """One hop (``dt`` stream seconds after the last): update the averages and generate;
        returns the picture (None before any sound)."""
        a = self.smoothing if dt is None or self.smoothing_s <= 0 else 1.0 - float(np.exp(-dt / self.smoothing_s))
        if embedding is not None:
            e = normalise(embedding)
            if e.shape[0] != self.embedding_dim:
                raise ValueError(f"embedding has {e.shape[0]} values, the generator takes {self.embedding_dim}")
            # Average on the sphere the cheap way: mix, then back to unit length. After a silence
            # (presence near 0) the new sound replaces the faded picture instead of morphing out of it.
            w = a + (1.0 - a) * (1.0 - self.presence)
            self.embedding = e if self.embedding is None else normalise((1 - w) * self.embedding + w * e)
        self.presence += a * (float(embedding is not None) - self.presence)
        self.loudness = (1 - a) * self.loudness + a * loudness(level_dbfs)
        if self.embedding is None:
            return None
        x = np.concatenate([self.embedding, [self.loudness]]).astype(np.float32)
        self.image = np.clip(np.asarray(self.generate(x), dtype=np.float32).reshape(PICTURE_SIDE, PICTURE_SIDE, 3), 0.0, 1.0)
        return self.image

    def display_image(self) -> np.ndarray | None:
        """The newest picture scaled up for the screen: (side, side, 3) uint8, or None."""
        return None if self.image is None else upscale(self.image, self.side)


def check_sound_model(gen_meta: Mapping[str, Any], sound_meta: Mapping[str, Any] | None,
                      where: str | os.PathLike) -> None:
    """A generator learned one embedding space: refuse it with another sound model."""
    if not sound_meta:
        return
    pinned = (gen_meta.get("sound_model") or {}).get("embedding_version")
    have = (sound_meta.get("embedding") or {}).get("version")
    if pinned and have and pinned != have:
        raise ModelError(f"{where}: generator was trained on sound embedding {pinned}, the sound model has {have}; "
                         f"retrain it (make train-generator) or set [display] picture_mode = \"cards\"")
