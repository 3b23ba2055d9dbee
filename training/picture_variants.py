"""Hundreds of variants of each class picture: the generator's targets and the judge's training set.

The box's class pictures (``device.screen.pictures``) are drawn in code, so a
variant is the same drawing with other settings: pose (rotation, scale,
shift), colour (the background hue, saturation and value the drawer is given),
line weight (ink outlines thickened or thinned) and brightness. The drawing
primitives are the device's own, reused here, never copied.

A variant is described by a vector ``u`` of ``N_CONTROLS`` values in [-1, 1]
(see :func:`params_from_u`) plus a ``brightness`` in [0, 1]. The generator's
training pairs choose ``u`` from the sound's embedding (so that different
takes of one sound give different, repeatable pictures) and the judge's
training set draws ``u`` at random from other seeds.

Sounds from the wider generated world, which belong to no class, get an
*abstract* picture (:func:`abstract_picture`): sound rings and a burst in a
colour mixed from the classes the sound is nearest to. So an unknown sound is
shown as "something like a siren, but not one" instead of a confident wrong
class picture.

Workstation only (pygame + numpy), like the rest of ``training/``.
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

from device.screen import pictures as P
from device.screen.palette import class_colour

SIZE = 64  # the generator's output side
N_CONTROLS = 6  # u: angle, scale, hue, dx, dy, line weight
_RENDER = 128  # variants are posed at 128 px and area-averaged to 64 (anti-aliasing)

# Ranges of the controls at u = -1 .. +1: modest, so a posed picture still reads as its class.
MAX_ANGLE_DEG = 14.0
SCALE_RANGE = (0.82, 1.08)
MAX_HUE_SHIFT = 0.035  # of the hue circle: neighbouring classes are ~0.1 apart (palette.py)
MAX_SHIFT = 0.07  # of the picture side
MIN_BRIGHTNESS = 0.45  # a whisper still shows a dim picture, not a black square


@dataclass(frozen=True)
class VariantParams:
    """One variant's settings (derived from ``u`` and brightness by :func:`params_from_u`)."""

    angle: float
    scale: float
    hue_shift: float
    dx: float
    dy: float
    line: float  # -1 thin .. +1 thick
    brightness: float


def params_from_u(u: Sequence[float], brightness: float = 1.0) -> VariantParams:
    """Controls in [-1, 1] (clipped) -> variant settings."""
    u = np.clip(np.asarray(u, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if len(u) != N_CONTROLS:
        raise ValueError(f"expected {N_CONTROLS} controls, got {len(u)}")
    lo, hi = SCALE_RANGE
    return VariantParams(angle=float(u[0] * MAX_ANGLE_DEG), scale=float(lo + (hi - lo) * (u[1] + 1) / 2),
                         hue_shift=float(u[2] * MAX_HUE_SHIFT), dx=float(u[3] * MAX_SHIFT),
                         dy=float(u[4] * MAX_SHIFT), line=float(u[5]),
                         brightness=float(np.clip(brightness, 0.0, 1.0)))


def shifted_colour(colour: Sequence[float], hue_shift: float) -> tuple[float, float, float]:
    """``colour`` with its hue turned by ``hue_shift`` (fraction of the circle)."""
    h, s, v = colorsys.rgb_to_hsv(*[float(c) for c in colour])
    return colorsys.hsv_to_rgb((h + hue_shift) % 1.0, s, v)


def _surface_rgb(s: pygame.Surface) -> np.ndarray:
    return pygame.surfarray.array3d(s).transpose(1, 0, 2).astype(np.float32) / 255.0


def _line_weight(img: np.ndarray, line: float) -> np.ndarray:
    """Thicken (line > 0) or thin (line < 0) the dark ink outlines by a fraction of a pixel.

    A 3x3 minimum filter spreads dark ink (thicker lines); a 3x3 maximum shrinks
    it; blending by |line| gives a continuous control, so nearby u give nearby pictures.
    """
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    stack = np.stack([pad[i : i + img.shape[0], j : j + img.shape[1]] for i in range(3) for j in range(3)])
    lum = stack.mean(axis=-1)
    pick = lum.argmin(axis=0) if line > 0 else lum.argmax(axis=0)
    moved = np.take_along_axis(stack, pick[None, :, :, None], axis=0)[0]
    # Only ink moves: the min/max of a flat colour area is that area, so no halo appears.
    return img + abs(float(line)) * 0.8 * (moved - img)


def _pose(big: pygame.Surface, p: VariantParams, fill: tuple[int, int, int]) -> np.ndarray:
    """Rotate, scale and shift the 512 px drawing onto a ``_RENDER`` canvas of the background colour."""
    small = pygame.Surface((_RENDER, _RENDER), pygame.SRCALPHA)
    small.blit(pygame.transform.smoothscale(big, (_RENDER, _RENDER)), (0, 0))
    # With an alpha channel rotozoom leaves the uncovered corners transparent, so the
    # background colour shows there instead of black wedges.
    posed = pygame.transform.rotozoom(small, p.angle, p.scale)
    canvas = pygame.Surface((_RENDER, _RENDER))
    canvas.fill(fill)
    canvas.blit(posed, posed.get_rect(center=(_RENDER / 2 + p.dx * _RENDER, _RENDER / 2 + p.dy * _RENDER)))
    return _surface_rgb(canvas)


def _finish(img: np.ndarray, p: VariantParams) -> np.ndarray:
    img = _line_weight(img, p.line)
    img = img.reshape(SIZE, _RENDER // SIZE, SIZE, _RENDER // SIZE, 3).mean(axis=(1, 3))
    gain = MIN_BRIGHTNESS + (1.0 - MIN_BRIGHTNESS) * p.brightness
    return np.clip(img * gain, 0.0, 1.0).astype(np.float32)


def class_variant(label: str, u: Sequence[float], brightness: float = 1.0) -> np.ndarray:
    """The variant of ``label``'s picture for controls ``u``: (64, 64, 3) float32 in [0, 1]."""
    if not P.has_drawing(label):
        raise ValueError(f"no drawing for class {label!r}")
    p = params_from_u(u, brightness)
    colour = shifted_colour(class_colour(label), p.hue_shift)
    big = pygame.Surface((P._W, P._W))
    P._DRAWERS[label](big, colour)
    return _finish(_pose(big, p, P.tint(colour, 0.78)), p)


def mixed_colour(weights: Sequence[float], labels: Sequence[str]) -> tuple[float, float, float]:
    """Class colours mixed by ``weights`` (normalised), kept saturated so the mix is not grey."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    w = w / max(w.sum(), 1e-9)
    rgb = np.sum([wi * np.asarray(class_colour(lab)) for wi, lab in zip(w, labels)], axis=0)
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return colorsys.hsv_to_rgb(h, max(s, 0.55), max(v, 0.8))


def abstract_picture(weights: Sequence[float], labels: Sequence[str], u: Sequence[float],
                     brightness: float = 1.0) -> np.ndarray:
    """An "unknown-ish" picture: sound rings and a burst, coloured by the nearest classes.

    ``weights`` (one per label, e.g. a softmax of the embedding's similarity to
    each class centre) mix the background and ring colours; ``u`` poses it and
    sets the ring spacing and the burst's spikes, so the picture still follows
    the sound continuously.
    """
    p = params_from_u(u, brightness)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(-w)
    main = mixed_colour(w, labels)
    second = class_colour(labels[int(order[1])]) if len(labels) > 1 else main
    big = pygame.Surface((P._W, P._W))
    P._background(big, main)
    uu = np.clip(np.asarray(u, dtype=np.float64), -1, 1)
    spacing = 34 + 12 * uu[2]
    for i in range(4):  # concentric sound rings, alternating the two nearest colours
        colour = P.rgb255(main) if i % 2 == 0 else P.rgb255(second)
        P.arc_band(big, P._INK, (256, 256), 90 + spacing * i, 0, 360, 22)
        P.arc_band(big, colour, (256, 256), 90 + spacing * i, 0, 360, 14)
    spikes = int(round(7 + 3 * uu[5]))
    P._poly(big, P.tint(second, 0.35), P._starburst(256, 256, 80, 52, spikes, 0.3 * uu[0]))
    P._circle(big, (255, 255, 255), (256, 256), 22)
    P._text(big, "?", (256, 256), 56, P._INK)
    return _finish(_pose(big, p, P.tint(main, 0.78)), p)


def random_u(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Uniform controls in [-1, 1]: ``(N_CONTROLS,)`` or ``(n, N_CONTROLS)``."""
    return rng.uniform(-1.0, 1.0, size=(N_CONTROLS,) if n is None else (n, N_CONTROLS))


def contact_sheet(images: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """(N, H, W, 3) images in [0, 1] -> one grid image (rows of ``cols``), white gaps."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    sheet = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        sheet[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = img
    return sheet
