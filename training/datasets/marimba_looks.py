"""Synthetic marimba videos in many looks: the wide world a model should see before it sees yours.

``marimba_synth`` draws one instrument (wooden bars, dark table, a nearly
frontal camera). This module draws performances from its score, mallet motion
and audio (imported, so the sound is the project's; quick repeats of one bar,
0.12-0.2 s apart, are added, which its scores never have, and strokes between
close strikes are lower) on instruments from named *look families*: wooden marimbas, rainbow
toy xylophones, painted and pastel bars, glockenspiels with specular metal,
on plain, striped, checked, gingham, plank or cluttered tables, struck by
ball, yarn or rubber mallets held by hands and sleeved arms that enter from the
bottom or the sides, under tinted light with gradients, hard shadows, motion
blur, sensor noise and sometimes JPEG-like blocks, seen by a true perspective
camera (tilt, yaw, roll; the instrument fills 45-95 % of the frame width).

Each family is a parameter distribution (``FAMILIES``); ``TRAIN_FAMILIES`` and
``HELDOUT_FAMILIES`` split them, so an evaluation can use looks never used in
training. ``render_look(seed, family)`` is deterministic by seed.

Geometry
    World coordinates as in ``marimba_synth``: X in 0..1 across the 18 struck
    bars (bar j's centre at (j + 0.5) / 18, lowest note on the left), Y down
    the bars from the centre line, the longest struck bar 0.5 long. The
    *bar-row box* X in [0, 1], Y in [-0.25, 0.25] always encloses the struck
    bars. Physically the box's Y extent is stretched by a per-video ``aspect``
    (stubby toy bars vs long marimba bars); the camera is a pinhole looking at
    that plane, the mallets are 3-D points above it. The box's true image
    corners go into the manifest as ``synthetic.camera.corners``:
    ``[[x, y], ...]`` in pixels (x = column, y = row, pixel centres at
    integers), in the order TL, TR, BR, BL, i.e. (X, Y) = (0, -0.25),
    (1, -0.25), (1, 0.25), (0, 0.25). In about one video in ten (``clipped``:
    true) a side edge of the frame cuts 1.5 % of the box (a quarter bar; every
    bar centre stays in the picture), so corners can lie just outside it.

Speed
    The static scene (table, instrument, light) is drawn once per video in
    RGB and collapsed to gray under the light's tint; each frame only draws
    the mallets, hands and arms in small patches around them.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.frontend import DIATONIC_C4_F6, midi_to_hz
from training.datasets.marimba_synth import (
    SynthConfig,
    SynthVideo,
    _jsonable,
    _mallet_state,
    _score,
    _Strike,
    render_audio,
)

RENDERER_VERSION = 5  # bump when the picture changes (cached renders are keyed by it)
RENDERER = "marimba_looks"
BOX_HALF = 0.25  # the bar-row box: X in [0, 1], Y in [-BOX_HALF, BOX_HALF]
BOX_CORNERS = ((0.0, -BOX_HALF), (1.0, -BOX_HALF), (1.0, BOX_HALF), (0.0, BOX_HALF))  # TL, TR, BR, BL
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class LookConfig:
    """Video format and performance; the look and pose are drawn per video from its family."""

    seconds: float = 20.0
    fps: float = 30.0
    sample_rate: int = 48000
    height: int = 96
    width: int = 160
    notes: tuple[int, ...] = DIATONIC_C4_F6
    mallets: int = 2
    # Quick repeats of one bar (marimba_synth's scores have none): after a strike, with this
    # probability the same mallet strikes the same bar again 1-3 times, repeat_gap apart.
    repeat_probability: float = 0.12
    repeat_gap: tuple[float, float] = (0.12, 0.2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(int(n) for n in self.notes))

    def synth(self) -> SynthConfig:
        """The marimba_synth config whose score and audio these videos use."""
        return SynthConfig(seconds=self.seconds, fps=self.fps, sample_rate=self.sample_rate, height=self.height,
                           width=self.width, notes=self.notes, mallets=self.mallets)


# ------------------------------------------------------------------ families
#
# A family maps each look parameter to either a list of options (one drawn
# uniformly) or a (low, high) range (drawn uniformly). BASE holds the defaults.

BASE: dict[str, Any] = {
    "material": ["wood-light", "wood-dark"],  # wood-light | wood-dark | rainbow | painted | pastel | metal
    "shape": ["graded"],  # graded (~1/sqrt f) | linear | equal
    "align": ["centre"],  # centre | top
    "bar_width": (0.68, 0.88),  # fraction of the bar pitch
    "corner": (0.0, 0.2),  # rounded-corner radius, fraction of the bar width
    "texture_strength": (0.5, 1.5),
    "specular": (0.0, 0.15),
    "supports": ["cords"],  # cords | rails | none
    "frame_p": 0.2,  # probability of a frame/case around the bars
    "extra_bars_p": 0.15,  # probability of partially visible unplayed bars beyond the 18
    "aspect": (0.8, 1.15),  # physical stretch of the box's Y extent
    "background": ["plain", "planks"],  # plain | stripes | checks | gingham | planks | clutter
    "bg_value": (0.05, 0.35),
    "bg_saturation": (0.0, 0.5),
    "head": ["ball", "yarn", "rubber"],
    "head_tone": ["dark", "light", "colour"],
    "head_radius": (0.3, 0.48),  # fraction of the bar pitch
    "hands": ["none", "bottom", "bottom", "sides"],
    "hand_radius": (0.035, 0.06),  # world units
    "sleeve_p": 0.7,
    "gain": (0.75, 1.2),
    "gradient": (0.0, 0.25),
    "vignette": (0.05, 0.4),
    "tint": (0.0, 0.15),  # colour cast of the light (collapsed to gray)
    "hard_shadow_p": 0.15,
    "noise": (1.0, 4.0),  # sensor noise sd, grey levels
    "defocus": (0.0, 0.25),  # weight of the neighbours in a 3-tap lens blur
    "gamma": (0.75, 1.35),  # the camera's tone curve on every grey (contrast of darks vs lights)
    "jpeg_p": 0.1,
    "exposure": (0.004, 0.02),  # seconds: motion blur of fast mallets
    "tilt": (0.0, 30.0),  # degrees from looking straight down, towards the player
    "yaw": (-15.0, 15.0),
    "roll": (-6.0, 6.0),
    "focal": (0.8, 1.6),  # focal length / frame width (lower: stronger perspective)
    "fill": (0.45, 0.95),  # instrument box width / frame width
    "clip_p": 0.1,  # probability that a frame edge clips the instrument's outer part
}

FAMILIES: dict[str, dict[str, Any]] = {
    "wood-classic": {},
    "wood-patterned": {"material": ["wood-light"], "supports": ["cords", "rails"],
                       "background": ["stripes", "checks", "gingham"], "bg_value": (0.2, 0.9)},
    "rainbow-toy": {"material": ["rainbow"], "shape": ["linear", "graded"], "supports": ["rails"], "frame_p": 0.5,
                    "aspect": (0.55, 0.9), "corner": (0.1, 0.5), "specular": (0.05, 0.3),
                    "background": ["plain", "stripes", "checks", "clutter"], "bg_value": (0.1, 0.95),
                    "hand_radius": (0.06, 0.11), "head_tone": ["colour", "light"]},
    "painted-bright": {"material": ["painted"], "shape": ["graded", "equal", "linear"],
                       "align": ["centre", "centre", "top"], "texture_strength": (0.2, 0.8),
                       "background": ["plain", "checks", "planks"], "bg_value": (0.05, 0.9)},
    "wood-clutter": {"background": ["clutter"], "bg_value": (0.1, 0.8), "hard_shadow_p": 0.5,
                     "bg_saturation": (0.0, 0.9)},
    "low-light": {"material": ["wood-light", "wood-dark", "rainbow", "painted"], "gain": (0.35, 0.7),
                  "noise": (4.0, 10.0), "jpeg_p": 0.5, "exposure": (0.015, 0.035), "gamma": (0.55, 0.9),
                  "background": ["plain", "stripes", "planks", "clutter"], "bg_value": (0.05, 0.6)},
    "sunlit": {"material": ["wood-light", "rainbow", "painted"], "gain": (1.1, 1.6), "gradient": (0.2, 0.6),
               "hard_shadow_p": 0.8, "tint": (0.1, 0.3), "specular": (0.1, 0.4), "exposure": (0.002, 0.006),
               "background": ["plain", "planks", "stripes"], "bg_value": (0.2, 0.8)},
    "steep-camera": {"material": ["wood-light", "wood-dark", "rainbow", "painted"], "tilt": (20.0, 45.0),
                     "yaw": (-30.0, 30.0), "roll": (-15.0, 15.0), "focal": (0.6, 1.0), "clip_p": 0.4,
                     "extra_bars_p": 0.5, "background": ["plain", "checks", "planks", "clutter"],
                     "bg_value": (0.05, 0.8)},
    # held out (see HELDOUT_FAMILIES): a material, a bar layout and a contrast never trained on
    "metal-glockenspiel": {"material": ["metal"], "shape": ["graded", "equal"], "texture_strength": (0.5, 1.5),
                           "specular": (0.3, 0.8), "supports": ["rails", "none"], "frame_p": 0.8,
                           "aspect": (0.5, 0.8), "background": ["plain", "clutter", "stripes"],
                           "bg_value": (0.05, 0.7), "head": ["rubber", "ball"], "hand_radius": (0.05, 0.09)},
    "pastel-top-aligned": {"material": ["pastel"], "shape": ["equal", "linear"], "align": ["top"],
                           "supports": ["rails", "none"], "background": ["gingham", "checks"],
                           "bg_value": (0.5, 0.95), "hands": ["sides", "bottom"], "corner": (0.2, 0.6)},
    "wood-on-wood": {"material": ["wood-light", "wood-dark"], "background": ["planks"],
                     "bg_value": (0.35, 0.7), "bg_saturation": (0.3, 0.6), "supports": ["none", "cords"],
                     "specular": (0.0, 0.05), "frame_p": 0.0},
}
HELDOUT_FAMILIES: tuple[str, ...] = ("metal-glockenspiel", "pastel-top-aligned", "wood-on-wood")
TRAIN_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f not in HELDOUT_FAMILIES)


def family_spec(family: str) -> dict[str, Any]:
    """The full parameter distribution of a family (BASE with its overrides)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown look family {family!r} (known: {', '.join(FAMILIES)})")
    return {**BASE, **FAMILIES[family]}


def _draw_param(rng: np.random.Generator, v: Any) -> Any:
    if isinstance(v, list):
        return v[int(rng.integers(len(v)))]
    if isinstance(v, tuple):
        return float(rng.uniform(v[0], v[1]))
    return v


def sample_look(rng: np.random.Generator, family: str) -> dict[str, Any]:
    """One draw of every look parameter from a family (keys in BASE's order: deterministic)."""
    spec = family_spec(family)
    return {k: _draw_param(rng, spec[k]) for k in BASE}


# ------------------------------------------------------------------ colours


def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV (arrays, 0..1) to RGB (..., 3)."""
    h, s, v = np.broadcast_arrays(np.asarray(h, float) % 1.0, np.asarray(s, float), np.asarray(v, float))
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6) % 6
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _bar_colours(rng: np.random.Generator, material: str, n: int) -> np.ndarray:
    """RGB 0..1 of n bars."""
    if material == "wood-light":
        base = np.array([0.86, 0.66, 0.43]) * rng.uniform(0.8, 1.05)
    elif material == "wood-dark":
        base = np.array([0.5, 0.25, 0.13]) * rng.uniform(0.6, 1.2)
    elif material == "metal":
        base = np.array([0.78, 0.79, 0.8]) if rng.random() < 0.7 else np.array([0.85, 0.7, 0.4])
        base = base * rng.uniform(0.6, 1.0)
    elif material == "rainbow":
        cycle = [7, 8, 9, n][int(rng.integers(4))]
        h = rng.uniform(0, 1) + np.arange(n) / cycle * rng.choice([-1.0, 1.0]) * 0.85
        return _hsv(h, rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))
    elif material == "pastel":
        h = rng.uniform(0, 1) + np.arange(n) / rng.choice([7, 8, n]) if rng.random() < 0.6 else rng.uniform(0, 1, n)
        return _hsv(h, rng.uniform(0.2, 0.45), rng.uniform(0.85, 1.0))
    elif material == "painted":
        mode = int(rng.integers(3))
        if mode == 0:  # one colour
            c = _hsv(rng.uniform(), rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0))
            return np.tile(c, (n, 1)) * rng.uniform(0.95, 1.05, (n, 1))
        if mode == 1:  # two alternating colours
            a = _hsv(rng.uniform(), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))
            b = _hsv(rng.uniform(), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))
            return np.where((np.arange(n) % 2 == 0)[:, None], a, b)
        return _hsv(rng.uniform(0, 1, n), rng.uniform(0.4, 1.0, n), rng.uniform(0.35, 1.0, n))
    else:
        raise ValueError(f"unknown bar material {material!r}")
    return np.clip(base * rng.uniform(0.93, 1.07, (n, 1)), 0, 1)


def _random_colour(rng: np.random.Generator, value: tuple[float, float] | float, sat: float) -> np.ndarray:
    return _hsv(rng.uniform(), rng.uniform(0, sat), value if np.isscalar(value) else rng.uniform(*value))


def _to_gray(rgb: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """Luma of an RGB albedo under tinted light: a colour cast changes colours' grey levels differently."""
    return np.asarray(rgb, float) @ (LUMA * tint)


# ------------------------------------------------------------------ camera


class Camera:
    """A pinhole looking at the bar plane: world (X, Y, height) -> pixels.

    Physical plane coordinates are (X, aspect * Y, 0); height above the plane
    is along -Z (towards the camera). ``H`` maps world (X, Y, 1) to pixels.
    """

    def __init__(self, rng: np.random.Generator, look: dict[str, Any], width: int, height: int):
        W, Hh = width, height
        self.aspect = look["aspect"]
        tilt, yaw, roll = np.deg2rad([look["tilt"], look["yaw"], look["roll"]])
        f = look["focal"] * W
        target = np.array([0.5 + rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0.0])
        d = np.array([np.sin(tilt) * np.sin(yaw), np.sin(tilt) * np.cos(yaw), -np.cos(tilt)])  # target -> camera
        z = -d
        y = np.array([0.0, 1.0, 0.0]) - z[1] * z
        y /= np.linalg.norm(y)
        x = np.cross(y, z)
        c, s = np.cos(roll), np.sin(roll)
        x, y = c * x + s * y, -s * x + c * y
        R = np.stack([x, y, z])
        fill = look["fill"]
        dist = 2.0
        for _ in range(6):  # distance so the box spans `fill` of the width (and fits the height)
            C = target + dist * d
            P = np.diag([f, f, 1.0]) @ np.hstack([R, -(R @ C)[:, None]])
            pts = self._project_with(P, np.array([[X, Y * self.aspect, 0.0] for X, Y in BOX_CORNERS]))
            w_px = np.ptp(pts[:, 0])
            h_px = np.ptp(pts[:, 1])
            dist *= max(w_px / (fill * W), h_px / (0.85 * Hh))
        C = target + dist * d
        P = np.diag([f, f, 1.0]) @ np.hstack([R, -(R @ C)[:, None]])
        pts = self._project_with(P, np.array([[X, Y * self.aspect, 0.0] for X, Y in BOX_CORNERS]))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        # Place the box in the frame: inside with a small margin, or (sometimes) past one side edge,
        # which clips extra bars / the frame but never more than 1.5 % of the box (every bar centre stays in).
        slack = np.array([W - 1, Hh - 1]) - (hi - lo)
        margin = np.minimum(0.03 * np.array([W, Hh]), np.maximum(slack / 2, 0))
        shift = np.array([rng.uniform(margin[i], max(margin[i], slack[i] - margin[i])) for i in range(2)]) - lo
        clipped = bool(rng.random() < look["clip_p"])
        if clipped:  # flush with a side edge and a little past it
            over = 0.015 * (hi - lo)[0]
            shift[0] = -lo[0] - over if rng.random() < 0.5 else W - 1 - hi[0] + over
        self.P = np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1.0]]) @ P
        self.H = self.P[:, [0, 1, 3]] @ np.diag([1.0, self.aspect, 1.0])  # world (X, Y, 1) -> pixel
        self.corners = self.project_plane(np.array(BOX_CORNERS))
        self.focal, self.distance = f, dist
        self.info = {"tilt_deg": look["tilt"], "yaw_deg": look["yaw"], "roll_deg": look["roll"],
                     "focal_px": float(f), "aspect": float(self.aspect), "fill": float(fill), "clipped": clipped,
                     "homography": np.round(self.H / self.H[2, 2], 9).tolist()}

    @staticmethod
    def _project_with(P: np.ndarray, pts: np.ndarray) -> np.ndarray:
        q = np.hstack([pts, np.ones((len(pts), 1))]) @ P.T
        return q[:, :2] / q[:, 2:3]

    def project(self, X: float, Y: float, h: float) -> tuple[float, float, float]:
        """Pixel (x, y) and depth of a world point h above the plane."""
        q = self.P @ np.array([X, Y * self.aspect, -h, 1.0])
        return q[0] / q[2], q[1] / q[2], q[2]

    def project_plane(self, XY: np.ndarray) -> np.ndarray:
        q = np.hstack([XY, np.ones((len(XY), 1))]) @ self.H.T
        return q[:, :2] / q[:, 2:3]

    def pixel_world(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World X, Y of every pixel centre and the pixel's size in physical world units."""
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
        Hi = np.linalg.inv(self.H)
        w = Hi[2, 0] * cols + Hi[2, 1] * rows + Hi[2, 2]
        behind = np.abs(w) < 1e-9
        w = np.where(behind, 1e-9, w)
        X = (Hi[0, 0] * cols + Hi[0, 1] * rows + Hi[0, 2]) / w
        Y = (Hi[1, 0] * cols + Hi[1, 1] * rows + Hi[1, 2]) / w
        gx = np.gradient(X)
        gy = np.gradient(Y * self.aspect)
        px = np.sqrt(np.abs(gx[1] * gy[0] - gx[0] * gy[1])) + 1e-6
        far = behind | (np.abs(X) > 50) | (np.abs(Y) > 50)
        return np.where(far, 50.0, X), np.where(far, 50.0, Y), np.where(far, 1.0, px)


# ------------------------------------------------------------------ the static scene


def _soft(dist: np.ndarray, px: np.ndarray | float, width: float = 1.0) -> np.ndarray:
    """Coverage 0..1 from a signed distance (positive inside), anti-aliased over `width` pixels."""
    return np.clip(0.5 + dist / (px * width), 0.0, 1.0)


def _pattern_fade(period: float, px: np.ndarray) -> np.ndarray:
    """1 where a pattern of `period` is resolved, fading to 0 where it falls under ~2 pixels (no aliasing)."""
    return np.clip(period / px / 2.0 - 1.0, 0.0, 1.0)


def _rotated(rng: np.random.Generator, Xp: np.ndarray, Yp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(0, np.pi) if rng.random() < 0.5 else rng.choice([0.0, np.pi / 2]) + rng.uniform(-0.1, 0.1)
    c, s = np.cos(a), np.sin(a)
    ox, oy = rng.uniform(-1, 1, 2)
    return c * Xp + s * Yp + ox, -s * Xp + c * Yp + oy


def _table(rng: np.random.Generator, look: dict[str, Any], Xp: np.ndarray, Yp: np.ndarray, px: np.ndarray
           ) -> np.ndarray:
    """The table/floor under the instrument: RGB (H, W, 3), drawn in physical world units."""
    kind = look["background"]
    sat = look["bg_saturation"]
    c0 = _random_colour(rng, look["bg_value"], sat)
    c1 = _random_colour(rng, (0.05, 0.95), max(sat, 0.6))
    U, V = _rotated(rng, Xp, Yp)
    shape = Xp.shape
    low = 1 + rng.uniform(0.0, 0.12) * np.sin(rng.uniform(1, 4) * U + rng.uniform(0, 6)) * np.sin(
        rng.uniform(1, 4) * V)
    img = np.empty(shape + (3,))
    img[:] = c0
    if kind == "stripes" or kind == "checks" or kind == "gingham":
        p = rng.uniform(0.03, 0.2)
        duty = rng.uniform(0.3, 0.6)
        fade = _pattern_fade(p, px)
        su = (_soft(duty * p / 2 - np.abs((U % p) - p / 2), px) - duty) * fade + duty
        sv = (_soft(duty * p / 2 - np.abs((V % p) - p / 2), px) - duty) * fade + duty
        if kind == "stripes":
            m = su
        elif kind == "checks":
            m = su * (1 - sv) + sv * (1 - su)
        else:  # gingham: white ground, half tone where one band passes, full where both cross
            img[:] = _hsv(0, 0, rng.uniform(0.8, 0.97))
            m = 0.5 * (su + sv)
        img = img * (1 - m[..., None]) + c1 * m[..., None]
    elif kind == "planks":
        p = rng.uniform(0.08, 0.25)
        k = np.floor(V / p)
        tone = 1 + 0.12 * np.sin(k * 12.9898 + rng.uniform(0, 6)) ** 2 - 0.06
        grain = 0.06 * np.sin(2 * np.pi * V / p * rng.uniform(3, 8) + 2 * np.sin(U * rng.uniform(3, 9) + k))
        seam = 1 - 0.35 * _soft(0.004 - np.minimum(V % p, p - V % p), px) * _pattern_fade(p, px)
        img = img * (tone * (1 + grain * _pattern_fade(p / 6, px)) * seam)[..., None]
    elif kind == "clutter":
        for _ in range(int(rng.integers(8, 25))):
            col = _random_colour(rng, (0.05, 0.95), 0.9)
            cx, cy = rng.uniform(-0.8, 1.8), rng.uniform(-0.9, 0.9)
            r = rng.uniform(0.03, 0.25)
            form = int(rng.integers(3))
            if form == 0:  # disk
                d = r - np.hypot(Xp - cx, Yp - cy)
            elif form == 1:  # rotated rectangle
                a = rng.uniform(0, np.pi)
                u = np.cos(a) * (Xp - cx) + np.sin(a) * (Yp - cy)
                v = -np.sin(a) * (Xp - cx) + np.cos(a) * (Yp - cy)
                d = np.minimum(r - np.abs(u), r * rng.uniform(0.2, 1.0) - np.abs(v))
            else:  # a pen or cable: a thin line
                a = rng.uniform(0, np.pi)
                v = -np.sin(a) * (Xp - cx) + np.cos(a) * (Yp - cy)
                u = np.cos(a) * (Xp - cx) + np.sin(a) * (Yp - cy)
                d = np.minimum(rng.uniform(0.004, 0.015) - np.abs(v), 2 * r - np.abs(u))
            a_ = _soft(d, px)[..., None]
            img = img * (1 - a_) + col * a_
    elif kind != "plain":
        raise ValueError(f"unknown background {kind!r}")
    fine = 1 + rng.uniform(0.0, 0.05) * rng.standard_normal(shape)  # cloth / paper grain
    return np.clip(img * (low * fine)[..., None], 0, 1)


def _bar_layout(rng: np.random.Generator, look: dict[str, Any], notes: Sequence[int]
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Lengths and centre lines of the struck bars plus extra ones beyond them: (lengths, centres, n_left, n_right)."""
    n = len(notes)
    extra = look["extra_bars_p"] > rng.random()
    n_left = int(rng.integers(0, 4)) if extra else 0
    n_right = int(rng.integers(1 if n_left == 0 else 0, 4)) if extra else 0
    j = np.arange(-n_left, n + n_right, dtype=float)
    f = midi_to_hz(np.asarray(notes, float))
    steps = np.log(f[-1] / f[0]) / (n - 1)  # mean log-frequency per bar, extrapolated for extra bars
    logf = np.interp(j, np.arange(n), np.log(f), left=np.nan, right=np.nan)
    logf = np.where(j < 0, np.log(f[0]) + j * steps, logf)
    logf = np.where(j >= n, np.log(f[-1]) + (j - n + 1) * steps, logf)
    shape = look["shape"]
    if shape == "graded":
        L = 0.5 * np.exp(-(logf - np.log(f[0])) / 2)
    elif shape == "linear":
        L = 0.5 - (0.5 - 0.5 * rng.uniform(0.35, 0.65)) * j / (n - 1)
    elif shape == "equal":
        L = np.full(len(j), 0.5)
    else:
        raise ValueError(f"unknown bar shape {shape!r}")
    L = np.clip(L, 0.08, 0.75)
    centre = np.zeros_like(L) if look["align"] == "centre" else -BOX_HALF + L / 2
    return L, centre, n_left, n_right


class _Scene:
    """Per-video constants: camera, static gray background and light, mallet/hand looks."""

    def __init__(self, rng: np.random.Generator, look: dict[str, Any], cfg: LookConfig):
        self.look = look
        H, W = cfg.height, cfg.width
        n = len(cfg.notes)
        self.pitch = 1.0 / n
        L, centre, n_left, n_right = _bar_layout(rng, look, cfg.notes)
        x0, x1 = -n_left * self.pitch, 1 + n_right * self.pitch
        self.bar_centre_y = centre[n_left : n_left + n]  # world Y of each struck bar's centre
        self.cam = Camera(rng, look, W, H)
        X, Y, px = self.cam.pixel_world(W, H)
        a = self.cam.aspect
        Xp, Yp = X, Y * a
        tint = np.clip(1 + look["tint"] * rng.standard_normal(3), 0.5, 1.5)
        self.tint = tint / float(LUMA @ tint)
        table = _table(rng, look, Xp, Yp, px)
        # Bars: index over struck and extra bars, signed distance inside each (physical units).
        bw = look["bar_width"] * self.pitch
        jj = np.clip(np.floor(X / self.pitch).astype(int), -n_left, n + n_right - 1)
        k = jj + n_left
        xl = X - (jj + 0.5) * self.pitch
        Lj, Cj = L[k], centre[k]
        in_row = (X >= x0) & (X <= x1)
        rc = look["corner"] * bw / 2
        qx = np.abs(xl) - (bw / 2 - rc)
        qy = np.abs(Y - Cj) * a - (Lj * a / 2 - rc)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rc
        dist = np.where(in_row, -outside, -1.0)
        cover = _soft(dist, px)
        self.bar_cover = cover.astype(np.float32)  # where the bars are (tests check the corners against it)
        ylo, yhi = float((centre - L / 2).min()), float((centre + L / 2).max())
        # Frame / case under everything on the instrument.
        img = table
        if look["frame_p"] > rng.random():
            m = rng.uniform(0.02, 0.08)
            fcol = _random_colour(rng, (0.05, 0.6), 0.7)
            lining = _random_colour(rng, (0.05, 0.5), 0.9) if rng.random() < 0.5 else fcol
            dx = np.minimum(Xp - (x0 - m), (x1 + m) - Xp)
            dy = np.minimum(Yp - (ylo * a - m), (yhi * a + m) - Yp)
            fr = _soft(np.minimum(dx, dy), px)[..., None]
            inner = _soft(np.minimum(dx, dy) - rng.uniform(0.01, 0.03), px)[..., None]
            img = img * (1 - fr) + fr * (fcol * (1 - inner) + lining * inner)
        # Supports under the bars: cords or rails along the nodal lines (0.224 L from each end).
        nodes = 0.5 - 0.224
        if look["supports"] != "none":
            Lx = np.interp(X / self.pitch - 0.5, np.arange(-n_left, n + n_right), L)
            Cx = np.interp(X / self.pitch - 0.5, np.arange(-n_left, n + n_right), centre)
            wide = look["supports"] == "rails"
            half = rng.uniform(0.012, 0.03) if wide else rng.uniform(0.002, 0.004)
            scol = _random_colour(rng, (0.05, 0.7) if wide else (0.02, 0.15), 0.6)
            span = _soft(np.minimum(X - x0 + (0.03 if wide else 0.0), x1 - X + (0.03 if wide else 0.0)), px)
            for sign in (-1, 1):
                d = half - np.abs(Yp - (Cx + sign * nodes * Lx) * a)
                s_ = (_soft(d, px) * span)[..., None]
                img = img * (1 - s_) + scol * s_
        # Each bar's shadow on what lies under it, then the bars.
        sh = rng.uniform(0.005, 0.02) * np.array([rng.uniform(-1, 1), 1.0])
        sX, sY = X - sh[0], Y - sh[1] / a
        jj2 = np.clip(np.floor(sX / self.pitch).astype(int), -n_left, n + n_right - 1)
        xl2 = sX - (jj2 + 0.5) * self.pitch
        d2 = np.minimum(bw / 2 - np.abs(xl2), (L[jj2 + n_left] / 2 - np.abs(sY - centre[jj2 + n_left])) * a)
        img = img * (1 - 0.45 * _soft(np.where((sX >= x0) & (sX <= x1), d2, -1.0), px, 3.0))[..., None]
        colours = _bar_colours(rng, look["material"], len(L))
        albedo = colours[k]
        material = look["material"]
        ts = look["texture_strength"]
        if material.startswith("wood"):
            grain_f = rng.uniform(60, 140)
            phase = rng.uniform(0, 6, len(L))[k]
            tex = 1 + ts * (0.06 * np.sin(2 * np.pi * grain_f * xl + 3 * np.sin(7 * Y + phase) + phase)
                            * _pattern_fade(1 / grain_f, px) + 0.025 * rng.standard_normal(X.shape))
        elif material == "metal":  # brushed: fine streaks along the bar, constant along it
            streak = rng.standard_normal((len(L), 48))
            col = np.clip(((xl / bw + 0.5) * 48).astype(int), 0, 47)
            tex = 1 + ts * (0.05 * streak[k, col] + 0.015 * rng.standard_normal(X.shape))
        else:  # plastic or paint: flat, a little mottling
            tex = 1 + ts * 0.02 * rng.standard_normal(X.shape)
        bevel = 0.72 + 0.28 * np.clip(dist / max(2.0 * float(np.median(px)), rng.uniform(0.002, 0.006)), 0, 1)
        bar = albedo * (tex * bevel)[..., None]
        spec = look["specular"]
        if spec > 0:  # a glossy band along each bar, strongest near a glare position
            s0 = rng.uniform(-0.5, 0.5)
            gx, gw = rng.uniform(0, 1), rng.uniform(0.15, 0.6)
            band = np.exp(-(((xl / (bw / 2)) - s0) / rng.uniform(0.15, 0.4)) ** 2)
            along = np.exp(-(((Y - Cj) / np.maximum(Lj, 0.05)) / rng.uniform(0.2, 0.6)) ** 2)
            bar = bar + (spec * band * along * np.exp(-((X - gx) / gw) ** 2))[..., None]
        if look["supports"] == "rails" or material in ("metal", "rainbow", "pastel"):  # pins at the nodes
            pin = _random_colour(rng, (0.1, 0.95), 0.2)
            pr = 0.15 * bw
            for sign in (-1, 1):
                d = pr - np.hypot(xl, (Y - (Cj + sign * nodes * Lj)) * a)
                p_ = _soft(d, px)[..., None]
                bar = bar * (1 - p_) + pin * p_
        img = img * (1 - cover[..., None]) + np.clip(bar, 0, 1.5) * cover[..., None]
        gamma = look["gamma"]
        self.albedo = (np.clip(_to_gray(img, self.tint), 0, None) ** gamma).astype(np.float32)
        # Light: gain, a gradient, vignetting, sometimes a hard shadow edge (window frame, a person).
        rows, cols = np.mgrid[0:H, 0:W].astype(np.float64)
        u, v = cols / W - 0.5, rows / H - 0.5
        g = look["gradient"]
        ang = rng.uniform(0, 2 * np.pi)
        light = (look["gain"] * (1 + 2 * g * (np.cos(ang) * u + np.sin(ang) * v))
                 * (1 - look["vignette"] * (u * u + v * v)))
        if look["hard_shadow_p"] > rng.random():
            for _ in range(int(rng.integers(1, 3))):
                a2 = rng.uniform(0, 2 * np.pi)
                off = rng.uniform(-0.3, 0.3)
                edge = (np.cos(a2) * u + np.sin(a2) * v - off) * W
                light = light * (1 - rng.uniform(0.25, 0.55) * _soft(edge, 1.0, rng.uniform(1.0, 3.0)))
        self.light = light.astype(np.float32)
        self.black = float(rng.uniform(2, 12))
        self.noise = look["noise"]
        self.defocus = np.float32(look["defocus"])
        self.flicker = float(rng.uniform(0.0, 0.02))
        self.jpeg_step = float(rng.uniform(4, 14)) if look["jpeg_p"] > rng.random() else 0.0
        self.exposure = look["exposure"]
        # Mallets, hands and arms.
        tone = look["head_tone"]
        hv = {"dark": (0.04, 0.25), "light": (0.75, 0.95), "colour": (0.4, 1.0)}[tone]
        self.head_gray = float(_to_gray(_random_colour(rng, hv, 0.9 if tone == "colour" else 0.2), self.tint))
        self.head_r = look["head_radius"] * self.pitch
        self.shaft_gray = float(_to_gray(_random_colour(rng, (0.2, 0.9), 0.5), self.tint))
        self.shaft_r = rng.uniform(0.004, 0.008)
        self.shaft_len = rng.uniform(0.3, 0.4)
        skin = _hsv(rng.uniform(0.02, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.95))
        self.skin_gray = float(_to_gray(skin, self.tint))
        self.sleeve_gray = float(_to_gray(_random_colour(rng, (0.05, 0.95), 0.8), self.tint)) \
            if look["sleeve_p"] > rng.random() else self.skin_gray
        self.head_gray, self.shaft_gray, self.skin_gray, self.sleeve_gray = (
            g ** gamma for g in (self.head_gray, self.shaft_gray, self.skin_gray, self.sleeve_gray))
        self.hand_r = look["hand_radius"]
        hands = look["hands"]
        self.arms = hands != "none"
        # Direction (in the plane) from the head to the hand per mallet, radians (pi/2: towards the player).
        if hands == "sides":
            self.grip = [np.pi / 2 + rng.uniform(0.6, 1.1), np.pi / 2 - rng.uniform(0.6, 1.1)]
        else:
            self.grip = [np.pi / 2 + rng.uniform(0.0, 0.4), np.pi / 2 - rng.uniform(0.0, 0.4)]
        self.side = hands == "sides"
        self.lift = rng.uniform(0.12, 0.25)  # world height of a loud stroke's top
        self.light_dir = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.2, 0.8)])
        self.spec_head = look["head"] == "rubber"
        self.yarn = look["head"] == "yarn"
        self.rows = rows.astype(np.float32)
        self.cols = cols.astype(np.float32)
        self.camera = {"corners": np.round(self.cam.corners, 4).tolist(), "look_family": None,
                       "bars_visible": [int(-n_left), int(n + n_right)], **self.cam.info,
                       "gain": float(look["gain"]), "noise_sd": float(self.noise), "jpeg": self.jpeg_step > 0}

    # ---------------------------------------------------------- per frame

    def _patch(self, x0: float, x1: float, y0: float, y1: float):
        H, W = self.light.shape
        a, b = max(0, int(np.floor(x0))), min(W, int(np.ceil(x1)) + 1)
        c, d = max(0, int(np.floor(y0))), min(H, int(np.ceil(y1)) + 1)
        if a >= b or c >= d:
            return None
        return (slice(c, d), slice(a, b))

    def _capsule(self, img: np.ndarray, p0, p1, r0: float, r1: float, gray: float, aa: float = 1.0) -> None:
        """Composite a tapered segment (pixel coordinates, radii in pixels) onto img."""
        r = max(r0, r1) + 2
        sl = self._patch(min(p0[0], p1[0]) - r, max(p0[0], p1[0]) + r, min(p0[1], p1[1]) - r, max(p0[1], p1[1]) + r)
        if sl is None:
            return
        U, V = self.cols[sl], self.rows[sl]
        vx, vy = p1[0] - p0[0], p1[1] - p0[1]
        t = np.clip(((U - p0[0]) * vx + (V - p0[1]) * vy) / (vx * vx + vy * vy + 1e-9), 0, 1)
        d = np.hypot(U - (p0[0] + t * vx), V - (p0[1] + t * vy))
        cov = np.clip(0.5 + (r0 + (r1 - r0) * t - d) / aa, 0, 1)
        img[sl] += cov * (gray - img[sl])

    def _head(self, img: np.ndarray, cx: float, cy: float, r: float, rng: np.random.Generator) -> None:
        sl = self._patch(cx - r - 2, cx + r + 2, cy - r - 2, cy + r + 2)
        if sl is None:
            return
        U, V = self.cols[sl] - cx, self.rows[sl] - cy
        d = np.hypot(U, V)
        aa = max(1.0, 0.2 * r) if self.yarn else 1.0
        cov = np.clip(0.5 + (r - d) / aa, 0, 1)
        shade = self.head_gray * (1 - 0.35 * np.clip(np.hypot(U + 0.3 * r, V + 0.3 * r) / (1.3 * r), 0, 1))
        if self.yarn:
            shade = shade * (1 + 0.12 * rng.standard_normal(d.shape).astype(np.float32))
        if self.spec_head:
            shade = shade + 0.6 * np.exp(-(np.hypot(U + 0.35 * r, V + 0.35 * r) / (0.25 * r + 0.5)) ** 2)
        img[sl] += cov * (shade - img[sl])

    def _shadow(self, img: np.ndarray, x: float, y: float, h: float) -> None:
        """The head's shadow on the bars: leaves the head as it rises, grows and softens."""
        z = h * self.lift
        sx = x + self.light_dir[0] * z
        sy = y + self.light_dir[1] * z / self.cam.aspect
        cx, cy, depth = self.cam.project(sx, sy, 0.0)
        r = self.head_r * (1 + 0.6 * h) * self.cam.focal / depth
        soft = 1.0 + 2.0 * h
        sl = self._patch(cx - r - soft - 1, cx + r + soft + 1, cy - r - soft - 1, cy + r + soft + 1)
        if sl is None:
            return
        d = np.hypot(self.cols[sl] - cx, self.rows[sl] - cy)
        img[sl] *= 1 - (0.5 - 0.3 * min(1.0, h)) * np.clip(0.5 + (r - d) / soft, 0, 1)

    def mallet_points(self, m: int, x: float, y: float, h: float):
        """Pixel position and radius of the head, and the hand's pixel position and radius."""
        z = h * self.lift
        hx, hy, depth = self.cam.project(x, y, z)
        r = self.head_r * self.cam.focal / depth
        g = self.grip[m]
        gx = x + self.shaft_len * np.cos(g)
        gy = y + self.shaft_len * np.sin(g) / self.cam.aspect
        gz = 0.5 * z + 0.06
        qx, qy, qd = self.cam.project(gx, gy, gz)
        return (hx, hy, r), (qx, qy, self.hand_r * self.cam.focal / qd), self.shaft_r * self.cam.focal / depth

    def draw(self, states: list[list[tuple[float, float, float]]], rng: np.random.Generator) -> np.ndarray:
        """One frame: states[m] = [(x, y, h) at sub-times over the exposure], last = now; uint8."""
        img = self.albedo.copy()
        H, W = img.shape
        for st in states:
            self._shadow(img, *st[-1])
        for m, st in enumerate(states):
            (hx, hy, hr), (gx, gy, gr), sr = self.mallet_points(m, *st[-1])
            if self.arms:  # the arm (sleeve) from the hand out of the picture, then the hand
                if self.side:
                    end = (-0.4 * W if m == 0 else 1.4 * W, gy + 0.4 * H)
                else:
                    end = (gx + 0.3 * (gx - W / 2), 1.4 * H)
                ux, uy = end[0] - gx, end[1] - gy
                wrist = (gx + 2.5 * gr * ux / np.hypot(ux, uy), gy + 2.5 * gr * uy / np.hypot(ux, uy))
                self._capsule(img, wrist, end, 0.85 * gr, 1.4 * gr, self.sleeve_gray)
                self._capsule(img, (gx, gy), wrist, 0.6 * gr, 0.7 * gr, self.skin_gray)
            if len(st) == 1:
                self._capsule(img, (hx, hy), (gx, gy), sr, sr, self.shaft_gray)
                self._head(img, hx, hy, hr, rng)
            else:  # motion blur: average the mallet drawn at each sub-time
                pts = [self.mallet_points(m, *s) for s in st]
                x0 = min(min(p[0][0] - p[0][2], p[1][0]) for p in pts) - 3
                x1 = max(max(p[0][0] + p[0][2], p[1][0]) for p in pts) + 3
                y0 = min(min(p[0][1] - p[0][2], p[1][1]) for p in pts) - 3
                y1 = max(max(p[0][1] + p[0][2], p[1][1]) for p in pts) + 3
                sl = self._patch(x0, x1, y0, y1)
                if sl is None:
                    continue
                base = img[sl].copy()
                acc = np.zeros_like(base)
                for (phx, phy, phr), (pgx, pgy, _), psr in pts:
                    img[sl] = base
                    self._capsule(img, (phx, phy), (pgx, pgy), psr, psr, self.shaft_gray)
                    self._head(img, phx, phy, phr, rng)
                    acc += img[sl]
                img[sl] = acc / len(pts)
            if self.arms:
                self._fist(img, gx, gy, gr)
        light = self.light * np.float32(1 + self.flicker * rng.standard_normal())
        if self.defocus > 0.01:  # separable [w, 1 - 2w, w]
            w = self.defocus
            img[1:-1] = w * (img[:-2] + img[2:]) + (1 - 2 * w) * img[1:-1]
            img[:, 1:-1] = w * (img[:, :-2] + img[:, 2:]) + (1 - 2 * w) * img[:, 1:-1]
        out = 255 * img * light + self.black + self.noise * rng.standard_normal(img.shape).astype(np.float32)
        if self.jpeg_step > 0:
            out = _blocky(out, self.jpeg_step)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _fist(self, img: np.ndarray, gx: float, gy: float, gr: float) -> None:
        """The fist around the shaft's end (over the shaft)."""
        self._capsule(img, (gx, gy - 0.2 * gr), (gx, gy + 0.3 * gr), 0.8 * gr, 0.9 * gr, self.skin_gray)


_DCT8 = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)]
                  for k in range(8)], np.float32)
_QSHAPE = (1 + np.add.outer(np.arange(8), np.arange(8))).astype(np.float32)  # coarser for high frequencies


def _blocky(img: np.ndarray, step: float) -> np.ndarray:
    """JPEG-like 8x8 DCT quantisation (frame sizes padded to multiples of 8)."""
    H, W = img.shape
    ph, pw = (-H) % 8, (-W) % 8
    x = np.pad(img, ((0, ph), (0, pw)), mode="edge") if ph or pw else img
    b = x.reshape(x.shape[0] // 8, 8, x.shape[1] // 8, 8).transpose(0, 2, 1, 3)
    c = _DCT8 @ b @ _DCT8.T
    q = step * _QSHAPE
    c = np.round(c / q) * q
    y = (_DCT8.T @ c @ _DCT8).transpose(0, 2, 1, 3).reshape(x.shape)
    return y[:H, :W]


# ------------------------------------------------------------------ videos


def _family_of(seed: int, families: Sequence[str]) -> str:
    return families[seed % len(families)]


def _add_repeats(rng: np.random.Generator, score: list[list[_Strike]], cfg: LookConfig) -> list[list[_Strike]]:
    """Quick re-strikes of one bar by the mallet that just struck it, before that mallet moves on."""
    t_end = cfg.seconds - 0.35  # as marimba_synth: a full analysis window after every onset
    others = [[(s.t, s.bar) for s in strikes] for strikes in score]
    out = []
    for m, strikes in enumerate(score):
        new: list[_Strike] = []
        for i, s in enumerate(strikes):
            new.append(s)
            if rng.random() >= cfg.repeat_probability:
                continue
            t_next = strikes[i + 1].t if i + 1 < len(strikes) else t_end + 0.15
            gap = float(rng.uniform(*cfg.repeat_gap))
            t = s.t
            for _ in range(int(rng.integers(1, 4))):
                t += gap
                clash = any(abs(t - t2) < 0.1 and b2 == s.bar for k, o in enumerate(others) if k != m for t2, b2 in o)
                if t > min(t_end, t_next - 0.15) or clash:
                    break
                vel = int(np.clip(s.velocity + rng.integers(-12, 13), cfg.synth().velocity_range[0], 127))
                new.append(_Strike(t, s.bar, vel, float(np.clip(s.y + rng.uniform(-0.02, 0.02), -0.15, 0.15))))
        out.append(new)
    return out


def _state(strikes: list[_Strike], t: float, x_of_bar, rest: tuple[float, float]) -> tuple[float, float, float]:
    """marimba_synth's mallet state, with lower strokes between strikes close together (quick repeats bounce)."""
    x, y, h = _mallet_state(strikes, t, x_of_bar, rest)
    i = bisect.bisect_right([s.t for s in strikes], t)
    if 0 < i < len(strikes):
        h *= float(np.clip((strikes[i].t - strikes[i - 1].t) / 0.3, 0.35, 1.0))
    return x, y, h


def _setup(seed: int, family: str | None, cfg: LookConfig) -> tuple[np.random.Generator, _Scene]:
    """The video's random stream and static scene (the first draws of ``render_look``)."""
    family = family or _family_of(seed, TRAIN_FAMILIES)
    # Not marimba_synth's stream for the same seed, and a different one per family.
    rng = np.random.default_rng([seed, zlib.crc32(family.encode()), 0x100C5])
    scene = _Scene(rng, sample_look(rng, family), cfg)
    scene.camera["look_family"] = family
    return rng, scene


def render_look(seed: int, family: str | None = None, config: LookConfig = LookConfig()) -> SynthVideo:
    """One video of one look family (default: TRAIN_FAMILIES[seed % len]) , deterministic by seed.

    ``video.camera`` holds the true box corners (``corners``), ``look_family``
    and the pose; ``write_look`` stores it in the manifest.
    """
    cfg = config
    rng, scene = _setup(seed, family, cfg)
    scfg = cfg.synth()
    score = _add_repeats(rng, _score(rng, scfg), cfg)
    events = sorted((s.t, cfg.notes[s.bar], s.velocity) for strikes in score for s in strikes)
    audio = render_audio(events, cfg.seconds, cfg.sample_rate, seed=int(rng.integers(1 << 31)))
    n_frames = round(cfg.seconds * cfg.fps)
    times = np.arange(n_frames) / cfg.fps
    x_of_bar = lambda b: (b + 0.5) * scene.pitch
    rests = [(0.25, 0.05), (0.75, 0.05)]
    frames = np.empty((n_frames, cfg.height, cfg.width), np.uint8)
    k = 4  # sub-times over the exposure, used when the head moves more than ~1.5 pixels
    for i, t in enumerate(times):
        states = []
        for m, strikes in enumerate(score):
            now = _state(strikes, t, x_of_bar, rests[m])
            before = _state(strikes, t - scene.exposure, x_of_bar, rests[m])
            (ax, ay, _), _, _ = scene.mallet_points(m, *now)
            (bx, by, _), _, _ = scene.mallet_points(m, *before)
            if np.hypot(ax - bx, ay - by) > 1.5:
                sub = [_state(strikes, t - scene.exposure * (1 - q / (k - 1)), x_of_bar, rests[m])
                       for q in range(k - 1)]
                states.append(sub + [now])
            else:
                states.append([now])
        frames[i] = scene.draw(states, rng)
    camera = dict(scene.camera)
    return SynthVideo(frames=frames, audio=audio, frame_times=times, events=events, sample_rate=cfg.sample_rate,
                      fps=cfg.fps, notes=cfg.notes, seed=seed, camera=camera)


def write_look(video: SynthVideo, folder: str | Path, config: LookConfig | None = None) -> Path:
    """Store a rendered video in the dataset-folder layout; corners and family under ``synthetic``."""
    from device.marimba.dataset import write_dataset

    extra = {"synthetic": {"seed": video.seed, "renderer": RENDERER, "renderer_version": RENDERER_VERSION,
                           "look_family": video.camera.get("look_family"), "camera": video.camera,
                           "config": _jsonable(asdict(config)) if config is not None else None}}
    return write_dataset(folder, video.frames, video.frame_times, video.audio, video.sample_rate, video.fps,
                         ground_truth=video.events, notes=video.notes, source="synthetic", extra=extra)


def render_look_dataset(folder: str | Path, seeds: Sequence[int], families: Sequence[str] = TRAIN_FAMILIES,
                        config: LookConfig = LookConfig(), progress: bool = False) -> list[Path]:
    """Render ``folder/seed-NNNNN-<family>`` dataset folders (family = families[seed % len]); finished ones are kept."""
    import shutil

    for f in families:
        family_spec(f)  # unknown names fail before any rendering
    folder = Path(folder)
    it: Any = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=f"render {folder.name}", unit="video", leave=False)
    out = []
    for seed in it:
        family = _family_of(seed, families)
        sub = folder / f"seed-{seed:05d}-{family}"
        if not (sub / "manifest.json").is_file():
            if sub.exists():
                shutil.rmtree(sub)  # a partial render from an interrupted run
            write_look(render_look(seed, family, config), sub, config)
        out.append(sub)
    return out


def contact_sheet(path: str | Path, families: Sequence[str] = tuple(FAMILIES), seed: int = 0,
                  config: LookConfig = LookConfig(), columns: int = 4, include_eval: bool = True) -> Path:
    """A PNG with one frame per family, the true bar-row box outlined, held-out families marked.

    The last panel is the evaluation instrument (``marimba_eval_look``, its own code) when
    ``include_eval``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = LookConfig(seconds=1.0, fps=config.fps, sample_rate=config.sample_rate, height=config.height,
                     width=config.width, notes=config.notes, mallets=config.mallets)
    panels: list[tuple[str, Any]] = [
        (fam + (" (held out)" if fam in HELDOUT_FAMILIES else ""), lambda fam=fam: render_look(seed, fam, cfg))
        for fam in families]
    if include_eval:
        from training.datasets import marimba_eval_look as ev

        panels.append((f"{ev.LOOK_FAMILY} (eval, own code)",
                       lambda: ev.render_eval(seed, seconds=cfg.seconds, width=cfg.width, height=cfg.height)))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows * cfg.height / cfg.width + 0.4 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (title, draw) in zip(np.ravel(axes), panels):
        v = draw()
        ax.imshow(v.frames[len(v.frames) // 2], cmap="gray", vmin=0, vmax=255)
        c = np.array(v.camera["corners"] + v.camera["corners"][:1])
        ax.plot(c[:, 0], c[:, 1], "-", color="tab:orange", lw=0.8, alpha=0.8)
        ax.set_xlim(-0.5, cfg.width - 0.5)  # a clipped pose's box runs past the picture
        ax.set_ylim(cfg.height - 0.5, -0.5)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m training.datasets.marimba_looks --out DIR --seeds 0 1 2 [--families train|heldout|all|NAME...]`."""
    import argparse

    p = argparse.ArgumentParser(prog="marimba-looks", description="Render marimba dataset folders in many looks.")
    p.add_argument("--out", help="dataset folder to render into")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--families", nargs="+", default=["train"],
                   help="train | heldout | all | family names (" + ", ".join(FAMILIES) + ")")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--size", default="160x96", help="frame WIDTHxHEIGHT (e.g. 160x96, 320x240)")
    p.add_argument("--sheet", help="also write a contact sheet PNG (one frame per family)")
    args = p.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 160x96")
    fams: list[str] = []
    for f in args.families:
        fams += {"train": list(TRAIN_FAMILIES), "heldout": list(HELDOUT_FAMILIES), "all": list(FAMILIES)}.get(f, [f])
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        p.error(f"unknown look family {unknown[0]!r} (known: {', '.join(FAMILIES)})")
    cfg = LookConfig(seconds=args.seconds, width=w, height=h)
    if args.sheet:
        print(contact_sheet(args.sheet, list(FAMILIES), config=cfg))
    if args.out:
        for path in render_look_dataset(args.out, args.seeds, fams, cfg, progress=True):
            print(path)
    elif not args.sheet:
        p.error("nothing to do: give --out and/or --sheet")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
