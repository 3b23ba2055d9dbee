"""Augmentation of canonical (rectified) marimba windows for training on small data.

A user's recordings are minutes of one instrument under one light, and the
rectification of a real camera is a few pixels off. Each training window is
drawn again with:

- a small geometric error (shift and scale of the canonical view, the same for
  the window's three frames): what an imperfect calibration does;
- a gamma curve (exposure and contrast the per-window standardisation cannot
  undo) and sensor noise.

Nothing here flips or permutes bars: the bar order is the note order.
All draws come from the caller's ``numpy.random.Generator``, so a seed gives
one answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    """How far each augmentation may go (defaults: a few pixels, a stop of light)."""

    shift_px: tuple[float, float] = (2.0, 1.5)  # (rows, columns) of the canonical view, uniform +/-
    scale: float = 0.04  # relative, uniform +/-
    gamma: tuple[float, float] = (0.7, 1.4)
    noise_sd: tuple[float, float] = (0.0, 4.0)  # grey levels
    probability: float = 0.8  # windows left untouched keep the clean look in every batch


def _warp(stacks: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear sample (B, k, h, w) at per-sample source coordinates rows (B, h, 1), cols (B, 1, w)."""
    b, k, h, w = stacks.shape
    r = np.clip(rows, 0, h - 1)
    c = np.clip(cols, 0, w - 1)
    r0 = np.minimum(np.floor(r).astype(np.int64), h - 2)
    c0 = np.minimum(np.floor(c).astype(np.int64), w - 2)
    fr, fc = (r - r0)[:, None], (c - c0)[:, None]
    bi = np.arange(b)[:, None, None, None]
    ki = np.arange(k)[None, :, None, None]
    r0, c0 = r0[:, None], c0[:, None]

    def at(dr: int, dc: int) -> np.ndarray:
        return stacks[bi, ki, r0 + dr, c0 + dc]

    top = at(0, 0) * (1 - fc) + at(0, 1) * fc
    bottom = at(1, 0) * (1 - fc) + at(1, 1) * fc
    return top * (1 - fr) + bottom * fr


def augment_stacks(stacks: np.ndarray, rng: np.random.Generator, params: AugmentParams = AugmentParams()
                   ) -> np.ndarray:
    """(B, k, h, w) uint8 canonical windows -> augmented (B, k, h, w) float32 grey levels."""
    x = np.asarray(stacks, dtype=np.float32)
    b, _, h, w = x.shape
    if b == 0:
        return x
    on = rng.random(b) < params.probability
    scale = 1 + rng.uniform(-params.scale, params.scale, b) * on
    dr = rng.uniform(-params.shift_px[0], params.shift_px[0], b) * on
    dc = rng.uniform(-params.shift_px[1], params.shift_px[1], b) * on
    # Scale about the view's centre, then shift: where each output pixel reads in the clean view.
    rows = ((np.arange(h)[None, :] - (h - 1) / 2) / scale[:, None] + (h - 1) / 2 + dr[:, None])[:, :, None]
    cols = ((np.arange(w)[None, :] - (w - 1) / 2) / scale[:, None] + (w - 1) / 2 + dc[:, None])[:, None, :]
    x = _warp(x, rows, cols)
    gamma = np.where(on, rng.uniform(*params.gamma, b), 1.0).astype(np.float32)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma[:, None, None, None]
    sd = np.where(on, rng.uniform(*params.noise_sd, b), 0.0).astype(np.float32)
    x = x + sd[:, None, None, None] * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x, 0, 255).astype(np.float32)
