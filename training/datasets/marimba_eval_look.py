"""An evaluation instrument drawn and played by code that shares nothing with the training renderers.

A children's rainbow xylophone (18 diatonic bars C4..F6, the same notes the
models know) on a gingham tablecloth, played with two ball mallets held by
hands whose forearms come in from the bottom, filmed at 320x240 / 30 fps from
one of two camera poses. Nothing here is imported from ``marimba_synth`` or
``marimba_looks`` (a test checks the imports): the score, the mallet motion,
the camera, the drawing and the sound are all written again, differently, so
a model that scores well on these videos has not just learned the training
renderer's habits.

Picture
    Physical units (cm): bars 2.3 cm wide at a 2.8 cm pitch, lengths falling
    linearly from 14 cm (C4) to 7.5 cm (F6), centred, their tops 1.8 cm above
    the cloth on two wooden rails, with nail heads at the nodes and a glossy
    stripe. The scene is ray-cast per height level (cloth, rails, bar tops)
    with 2x2 supersampling, in linear light, then through a camera: exposure,
    shot and read noise, gamma, a slight lens blur. Mallet heads are 3-D
    spheres above the bars, sticks and forearms are projected 3-D segments,
    all with soft shadows, and fast mallets are blurred over the exposure.

Corners
    The bar-row box of the training geometry (X in 0..1 across the bars, Y in
    -0.25..0.25 down the bars, the longest bar 0.5) is here the rectangle
    x in [0, 50.4] cm, y in [-7, 7] cm on the bars' top surface. Its image
    corners (pixels, x = column, y = row, TL, TR, BR, BL with the lowest note
    on the left) are stored as ``synthetic.camera.corners``.

Sound
    A real marimba's bar is tuned so its first overtone is two octaves up
    (4x) and the next near 10x; the tube resonator under each bar boosts and
    lengthens the fundamental and adds a little 3x. Here: 1x (resonated,
    longest), 4x at -7 dB decaying 5x faster (about -10 dB in an 85 ms window
    at the onset), ~9.9x at -20 dB, 3x at -24 dB, and a few milliseconds of
    low-passed mallet noise;
    harder strokes are brighter. This is a different timbre from the training
    renders, so it doubles as the second timbre for the labeller bench. Its
    score has chords and quick repeats of one bar 0.12-0.2 s apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOOK_FAMILY = "eval-rainbow-gingham"
RENDERER = "marimba_eval_look"
RENDERER_VERSION = 1
NOTES = (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84, 86, 88, 89)

# Instrument geometry, cm.
PITCH = 2.8
BAR_W = 2.3
ROW_W = PITCH * len(NOTES)  # 50.4
LEN_LOW, LEN_HIGH = 14.0, 7.5
BAR_TOP = 1.8  # bar top surface above the cloth
RAIL_TOP = 1.0
BALL_R = 1.4
STICK = 22.0

RAINBOW = np.array([[0.85, 0.08, 0.08], [0.96, 0.47, 0.05], [0.98, 0.84, 0.08], [0.18, 0.68, 0.2],
                    [0.2, 0.62, 0.9], [0.14, 0.24, 0.8], [0.55, 0.2, 0.7], [0.95, 0.45, 0.65]])

# Two camera poses (cm; the player sits at -y): position, look-at target, roll (deg), focal / frame width.
POSES = {
    "A": {"pos": (27.0, -36.0, 56.0), "target": (25.5, 1.0, 0.0), "roll": 0.0, "focal": 0.95},
    "B": {"pos": (8.0, -40.0, 52.0), "target": (26.5, 1.0, 0.0), "roll": 4.0, "focal": 1.0},
}


@dataclass
class EvalVideo:
    """A rendered evaluation recording: frames, audio, truth, camera."""

    frames: np.ndarray  # (N, H, W) uint8
    audio: np.ndarray  # (samples,) float32
    frame_times: np.ndarray
    events: list[tuple[float, int, int]]
    sample_rate: int
    fps: float
    seed: int
    camera: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ score


@dataclass
class Hit:
    t: float
    bar: int
    velocity: int
    hand: int  # 0 left, 1 right
    along: float  # cm from the bar's centre, towards the player


def make_score(rng: np.random.Generator, seconds: float) -> list[Hit]:
    """Phrases of runs, arpeggios, leaps, chords and quick repeats, assigned to two hands."""
    n = len(NOTES)
    pos = [int(rng.integers(2, 7)), int(rng.integers(10, 16))]
    last = [-9.0, -9.0]
    hits: list[Hit] = []
    t = 0.4 + float(rng.uniform(0, 0.4))
    end = seconds - 0.6

    def play(bar: int, when: float, vel: int, hand: int | None = None) -> bool:
        bar = int(np.clip(bar, 0, n - 1))
        order = [hand] if hand is not None else sorted((0, 1), key=lambda h: abs(pos[h] - bar))
        for h in order:
            if h == 0 and bar > pos[1] or h == 1 and bar < pos[0] or when - last[h] < 0.115:
                continue
            hits.append(Hit(when, bar, vel, h, float(rng.uniform(-2.0, 2.0))))
            pos[h], last[h] = bar, when
            return True
        return False

    while t < end:
        beat = float(rng.uniform(0.2, 0.42))
        vel = int(rng.integers(45, 121))
        kind = rng.choice(["run", "arpeggio", "repeat", "chord", "leap", "rest"], p=[0.25, 0.15, 0.2, 0.18, 0.14, 0.08])
        if kind == "run":
            step = int(rng.choice([-1, 1]))
            bar = int(rng.integers(0, n))
            for _ in range(int(rng.integers(3, 7))):
                if t >= end:
                    break
                play(bar, t, int(np.clip(vel + rng.integers(-12, 13), 30, 127)))
                bar += step
                t += beat * float(rng.uniform(0.85, 1.15))
        elif kind == "arpeggio":
            bar = int(rng.integers(0, n - 7))
            for step in (0, 2, 2, 3)[: int(rng.integers(3, 5))]:
                bar += step
                if t >= end:
                    break
                play(bar, t, vel)
                t += beat
        elif kind == "repeat":  # one bar struck quickly, hands alternating like a roll
            bar = int(rng.integers(0, n))
            gap = float(rng.uniform(0.12, 0.2))
            h = int(rng.integers(2))
            for _ in range(int(rng.integers(2, 5))):
                if t >= end:
                    break
                if not play(bar, t, int(np.clip(vel + rng.integers(-10, 11), 30, 127)), h):
                    play(bar, t, vel)
                h = 1 - h
                t += gap
            t += beat
        elif kind == "chord":
            lo = int(rng.integers(0, n - 3))
            hi = int(min(n - 1, lo + rng.choice([2, 4, 5, 7])))
            if t - max(last) >= 0.13:
                pos[0], pos[1] = min(pos[0], lo), max(pos[1], hi)
                play(lo, t, vel, 0)
                play(hi, t, int(np.clip(vel + rng.integers(-8, 9), 30, 127)), 1)
            t += beat * 1.5
        elif kind == "leap":
            play(int(rng.integers(0, n)), t, vel)
            t += beat * 1.3
        else:
            t += float(rng.uniform(0.4, 1.0))
    hits.sort(key=lambda h: (h.t, h.bar))
    return hits


# ------------------------------------------------------------------ sound


def note_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


# (ratio, amplitude at velocity 127, decay time as a fraction of the fundamental's, brightness exponent)
MARIMBA_PARTIALS = ((1.0, 1.0, 1.0, 0.0), (3.0, 0.063, 0.55, 1.0), (3.99, 0.45, 0.2, 1.0), (9.9, 0.1, 0.08, 2.0))


def strike_sound(midi: int, velocity: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One bar struck: tuned partials (1x resonated, 3x, ~4x, ~9.9x) and a short mallet thump."""
    f0 = note_hz(midi)
    tau = 1.1 * (f0 / 261.63) ** -0.8  # the resonator keeps low bars ringing
    n = int(min(6 * tau, 4.0) * sample_rate)
    t = np.arange(n) / sample_rate
    loud = velocity / 127.0
    out = np.zeros(n)
    for ratio, amp, decay, bright in MARIMBA_PARTIALS:
        f = f0 * ratio * (1 + rng.uniform(-0.002, 0.002) * (ratio > 1))
        if f > 0.45 * sample_rate:
            continue
        a = amp * loud ** bright  # soft strokes are darker
        out += a * np.exp(-t / (tau * decay)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    rise = int(0.0015 * sample_rate)
    out[:rise] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(rise) / rise)
    # Mallet thump: noise through a one-pole low-pass, gone in ~10 ms.
    m = int(0.012 * sample_rate)
    noise = rng.standard_normal(m)
    alpha = np.exp(-2 * np.pi * (800 + 2500 * loud) / sample_rate)
    lp = np.empty(m)
    acc = 0.0
    for i in range(m):
        acc = alpha * acc + (1 - alpha) * noise[i]
        lp[i] = acc
    out[:m] += 0.25 * loud * lp * np.exp(-np.arange(m) / (0.0025 * sample_rate))
    return out * (0.15 + 0.85 * loud) ** 1.5


def render_sound(hits: Sequence[Hit], seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The performance's audio: strikes, a small room, a quiet noise floor; float32, peak <= 0.8."""
    total = round(seconds * sample_rate)
    out = np.zeros(total + 4 * sample_rate)
    for h in hits:
        s = strike_sound(NOTES[h.bar], h.velocity, sample_rate, rng)
        i = round(h.t * sample_rate)
        out[i : i + len(s)] += s
    out = out[:total]
    ir_n = int(0.25 * sample_rate)  # room: exponentially decaying noise, ~-20 dB
    ir = rng.standard_normal(ir_n) * np.exp(-np.arange(ir_n) / (0.05 * sample_rate)) * 0.012
    ir[0] = 1.0
    size = 1 << int(np.ceil(np.log2(total + ir_n)))
    out = np.fft.irfft(np.fft.rfft(out, size) * np.fft.rfft(ir, size), size)[:total]
    peak = np.max(np.abs(out)) or 1.0
    out = out * (0.8 / peak)
    out += 10 ** (-70 / 20) * rng.standard_normal(total)
    return out.astype(np.float32)


# ------------------------------------------------------------------ camera


class PinholeCamera:
    """Right-handed world (x along the bars, y away from the player, z up), cm; pixels (column, row)."""

    def __init__(self, pos, target, roll_deg: float, focal: float, width: int, height: int):
        self.C = np.asarray(pos, float)
        fwd = np.asarray(target, float) - self.C
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        a = np.deg2rad(roll_deg)
        right, down = np.cos(a) * right + np.sin(a) * down, -np.sin(a) * right + np.cos(a) * down
        self.R = np.stack([right, down, fwd])
        self.f = focal
        self.cx, self.cy = (width - 1) / 2.0, (height - 1) / 2.0

    def to_pixel(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, depth) of world points (..., 3)."""
        q = (np.asarray(p, float) - self.C) @ self.R.T
        return self.f * q[..., 0] / q[..., 2] + self.cx, self.f * q[..., 1] / q[..., 2] + self.cy, q[..., 2]

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """World directions through pixel positions."""
        d = np.stack([(u - self.cx) / self.f, (v - self.cy) / self.f, np.ones_like(u)], axis=-1)
        return d @ self.R

    def hit_plane(self, rays: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) where each ray meets the horizontal plane at height z."""
        t = (z - self.C[2]) / rays[..., 2]
        return self.C[0] + t * rays[..., 0], self.C[1] + t * rays[..., 1]


def box_corners_world() -> np.ndarray:
    """The bar-row box on the bar tops: TL, TR, BR, BL (far side is the top of the picture)."""
    half = LEN_LOW / 2
    return np.array([[0.0, half, BAR_TOP], [ROW_W, half, BAR_TOP], [ROW_W, -half, BAR_TOP], [0.0, -half, BAR_TOP]])


def bar_length(j: np.ndarray | int) -> np.ndarray:
    return LEN_LOW + (LEN_HIGH - LEN_LOW) * np.asarray(j, float) / (len(NOTES) - 1)


# ------------------------------------------------------------------ static scene


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.asarray(c, float) ** 2.2


def _luminance(rgb_linear: np.ndarray) -> np.ndarray:
    return np.asarray(rgb_linear) @ np.array([0.2126, 0.7152, 0.0722])


def _static_scene(cam: PinholeCamera, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Linear-light luminance of the cloth, rails and bars, 2x2 supersampled."""
    s = 2
    off = (np.arange(s) + 0.5) / s - 0.5
    oy, ox = np.meshgrid(off, off, indexing="ij")
    u, v = np.broadcast_arrays(np.arange(width)[None, :, None, None] + ox, np.arange(height)[:, None, None, None] + oy)
    rays = cam.rays(u.astype(float), v.astype(float))
    # Gingham cloth: white ground, coloured threads in both directions, a slight rotation and folds.
    x, y = cam.hit_plane(rays, 0.0)
    ang = np.deg2rad(rng.uniform(-15, 15))
    a, b = np.cos(ang) * x + np.sin(ang) * y, -np.sin(ang) * x + np.cos(ang) * y
    sq = float(rng.uniform(1.6, 2.6))
    band_a = ((a / sq + rng.uniform()) % 2.0) < 1.0
    band_b = ((b / sq + rng.uniform()) % 2.0) < 1.0
    thread = _srgb_to_linear([[0.8, 0.1, 0.12], [0.12, 0.25, 0.75], [0.1, 0.45, 0.2]][int(rng.integers(3))])
    white = _srgb_to_linear([0.93, 0.92, 0.88])
    mix = (band_a.astype(float) + band_b) / 2.0
    cloth = _luminance(white) * (1 - mix) + _luminance(thread) * mix
    folds = 1 + 0.06 * np.sin(x / 9.0 + 1.3) * np.cos(y / 13.0)
    img = cloth * folds
    # Soft contact shadow of the whole instrument on the cloth.
    inside = (x > -3) & (x < ROW_W + 3) & (np.abs(y) < bar_length(np.clip(x / PITCH, 0, 17)) / 2 + 1.5)
    img = np.where(inside, img * 0.7, img)
    # Rails along the nodal lines, under the bars.
    x, y = cam.hit_plane(rays, RAIL_TOP)
    j = np.clip(x / PITCH - 0.5, 0, len(NOTES) - 1)
    half = bar_length(j) / 2
    wood = _luminance(_srgb_to_linear([0.78, 0.6, 0.4]))
    for sign in (-1, 1):
        on = (np.abs(y - sign * 0.55 * half) < 1.1) & (x > -2.5) & (x < ROW_W + 2.5)
        img = np.where(on, wood * (0.9 + 0.1 * np.sin(x * 3.1)), img)
    # Bars: rainbow colours, chamfered corners, a glossy stripe, darker edges, nail heads at the nodes.
    x, y = cam.hit_plane(rays, BAR_TOP)
    j = np.floor(x / PITCH).astype(int)
    valid = (j >= 0) & (j < len(NOTES))
    jc = np.clip(j, 0, len(NOTES) - 1)
    dx = x - (jc + 0.5) * PITCH
    half = bar_length(jc) / 2
    ex, ey = BAR_W / 2 - np.abs(dx), half - np.abs(y)
    on_bar = valid & (ex > 0) & (ey > 0) & (ex + ey > 0.5)
    colour = _luminance(_srgb_to_linear(RAINBOW))[jc % len(RAINBOW)]
    edge = np.clip(np.minimum(ex, ey) / 0.35, 0, 1)
    gloss = 0.15 * np.exp(-((dx + 0.45) / 0.25) ** 2) * np.clip(ey / 2.0, 0, 1)
    bar = colour * (0.8 + 0.2 * edge) + gloss
    nail = (dx ** 2 + (np.abs(y) - 0.55 * half) ** 2) < 0.3 ** 2
    bar = np.where(nail, 0.55, bar)
    img = np.where(on_bar, bar, img)
    return img.mean(axis=(2, 3))


# ------------------------------------------------------------------ mallets and hands


@dataclass
class MalletPose:
    x: float
    y: float
    height: float  # of the ball's bottom above the bar tops, cm


def hand_path(hits: list[Hit], t: float, hand: int) -> MalletPose:
    """Where one hand's ball is at time t: cosine glides between strikes, arcs over them."""
    mine = [h for h in hits if h.hand == hand]
    rest = MalletPose((4.5 if hand == 0 else 13.5) * PITCH, -3.0, 6.0)
    if not mine:
        return rest
    times = np.array([h.t for h in mine])
    k = int(np.searchsorted(times, t, side="right"))
    a = mine[k - 1] if k > 0 else None
    b = mine[k] if k < len(mine) else None
    if a is None:
        a_t, a_x, a_y, a_h = b.t - 1.0, (b.bar + 0.5) * PITCH, b.along, 6.0
    else:
        a_t, a_x, a_y, a_h = a.t, (a.bar + 0.5) * PITCH, a.along, 0.0
    if b is None:
        b_t, b_x, b_y, b_h, vel = a_t + 0.8, a_x, a_y, 6.0, 60
        t = min(t, b_t)
    else:
        b_t, b_x, b_y, b_h, vel = b.t, (b.bar + 0.5) * PITCH, b.along, 0.0, b.velocity
    gap = max(b_t - a_t, 1e-3)
    w = float(np.clip((t - a_t) / gap, 0, 1))
    glide = 0.5 - 0.5 * np.cos(np.pi * w)
    x, y = a_x + (b_x - a_x) * glide, a_y + (b_y - a_y) * glide
    peak = min(13.0, 40.0 * gap) * (0.55 + 0.45 * vel / 127.0)
    if gap <= 0.9:
        h = a_h + (b_h - a_h) * glide + peak * np.sin(np.pi * w) ** 0.8
    else:  # long wait: rise to a hover, then one stroke into the next strike
        tt = max(t - a_t, 0.0)
        down = b_t - t
        if down < 0.45:
            h = max(b_h, 5.0 + (peak - 5.0) * np.sin(np.pi * (1 - down / 0.45)) ** 0.8 * (down / 0.45) ** 0.3)
            h = h * min(1.0, down / 0.12) ** 0.6
        else:
            h = a_h + (5.0 - a_h) * min(1.0, tt / 0.3) ** 0.7
    return MalletPose(float(x), float(y), float(max(h, 0.0)))


class _Painter:
    """Draws projected objects into a frame with 2x2 supersampled coverage."""

    def __init__(self, width: int, height: int):
        self.W, self.H = width, height
        self.sub = np.array([[-0.25, -0.25], [0.25, -0.25], [-0.25, 0.25], [0.25, 0.25]])

    def _window(self, lo_u, hi_u, lo_v, hi_v):
        a, b = max(0, int(lo_u)), min(self.W, int(np.ceil(hi_u)) + 1)
        c, d = max(0, int(lo_v)), min(self.H, int(np.ceil(hi_v)) + 1)
        if a >= b or c >= d:
            return None
        uu, vv = np.meshgrid(np.arange(a, b, dtype=float), np.arange(c, d, dtype=float))
        return (slice(c, d), slice(a, b)), uu, vv

    def ellipse(self, img, cu, cv, ru, rv, value, tilt=0.0) -> None:
        r = max(ru, rv) + 1
        w = self._window(cu - r, cu + r, cv - r, cv + r)
        if w is None:
            return
        sl, uu, vv = w
        c, s = np.cos(tilt), np.sin(tilt)
        cover = np.zeros_like(uu)
        for du, dv in self.sub:
            p, q = uu + du - cu, vv + dv - cv
            cover += ((c * p + s * q) / ru) ** 2 + ((-s * p + c * q) / rv) ** 2 <= 1.0
        cover /= len(self.sub)
        img[sl] = img[sl] * (1 - cover) + value * cover

    def quad(self, img, p0, p1, w0, w1, value) -> None:
        """A tapered band from p0 (half width w0) to p1 (half width w1), pixels."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        length = np.hypot(*d) + 1e-9
        n = np.array([-d[1], d[0]]) / length
        corners = np.array([p0 + w0 * n, p1 + w1 * n, p1 - w1 * n, p0 - w0 * n])
        w = self._window(corners[:, 0].min() - 1, corners[:, 0].max() + 1, corners[:, 1].min() - 1,
                         corners[:, 1].max() + 1)
        if w is None:
            return
        sl, uu, vv = w
        cover = np.zeros_like(uu)
        for du, dv in self.sub:
            p, q = uu + du, vv + dv
            along = ((p - p0[0]) * d[0] + (q - p0[1]) * d[1]) / length
            across = np.abs((p - p0[0]) * n[0] + (q - p0[1]) * n[1])
            frac = np.clip(along / length, 0, 1)
            cover += (along >= 0) & (along <= length) & (across <= w0 + (w1 - w0) * frac)
        cover /= len(self.sub)
        img[sl] = img[sl] * (1 - cover) + value * cover

    def shade(self, img, cu, cv, radius, depth_factor) -> None:
        """A soft Gaussian shadow."""
        r = 2.5 * radius + 1
        w = self._window(cu - r, cu + r, cv - r, cv + r)
        if w is None:
            return
        sl, uu, vv = w
        img[sl] *= 1 - depth_factor * np.exp(-((uu - cu) ** 2 + (vv - cv) ** 2) / (radius ** 2))


@dataclass
class _Look:
    ball: tuple[float, float]  # linear luminance of the two balls
    stick: float
    skin: float
    sleeve: float


def _draw_players(img: np.ndarray, cam: PinholeCamera, painter: _Painter, poses: list[MalletPose], look: _Look,
                  light: np.ndarray) -> None:
    for hand, p in enumerate(poses):  # shadows first, on the bars
        z = BAR_TOP + p.height
        sx, sy = p.x + light[0] * z, p.y + light[1] * z
        u, v, dep = cam.to_pixel(np.array([sx, sy, BAR_TOP]))
        painter.shade(img, u, v, BALL_R * cam.f / dep * (1 + 0.08 * p.height), 0.45 / (1 + 0.15 * p.height))
    for hand, p in enumerate(poses):
        ball = np.array([p.x, p.y, BAR_TOP + BALL_R + p.height])
        side = -1 if hand == 0 else 1
        direction = np.array([0.22 * side, -0.9, 0.33 + 0.01 * p.height])
        grip = ball + STICK * direction / np.linalg.norm(direction)
        bu, bv, bd = cam.to_pixel(ball)
        gu, gv, gd = cam.to_pixel(grip)
        # Forearm from the wrist down out of the picture, a sleeve near the edge, the fist on the stick.
        elbow = grip + np.array([0.15 * side * 30, -30.0, -8.0])
        eu, ev, ed = cam.to_pixel(elbow)
        if ed <= 1.0 or ev < painter.H:  # keep the arm reaching out of the bottom edge
            eu, ev = gu + 0.3 * (gu - painter.W / 2), painter.H * 1.5
        arm_w = 2.5 * cam.f / gd
        painter.quad(img, (gu, gv), (eu, ev), arm_w, 1.5 * arm_w, look.skin)
        mid = (gu + 0.55 * (eu - gu), gv + 0.55 * (ev - gv))
        painter.quad(img, mid, (eu, ev), 1.3 * arm_w, 1.6 * arm_w, look.sleeve)
        painter.quad(img, (bu, bv), (gu, gv), 0.45 * cam.f / bd, 0.45 * cam.f / gd, look.stick)
        painter.ellipse(img, gu, gv, 1.1 * arm_w, 0.9 * arm_w, look.skin, tilt=0.3 * side)
        r = BALL_R * cam.f / bd
        painter.ellipse(img, bu, bv, r, r, look.ball[hand])
        painter.ellipse(img, bu - 0.35 * r, bv - 0.35 * r, 0.3 * r, 0.3 * r, min(1.0, look.ball[hand] + 0.35))


# ------------------------------------------------------------------ videos


def setup_camera(seed: int, pose: str | None, width: int, height: int
                 ) -> tuple[np.random.Generator, PinholeCamera, str]:
    """The recording's random stream and camera (pose "A" or "B"; by default A for even seeds)."""
    pose = pose or ("A" if seed % 2 == 0 else "B")
    if pose not in POSES:
        raise ValueError(f"unknown pose {pose!r} (known: {', '.join(POSES)})")
    rng = np.random.default_rng(np.array([seed, 7411, ord(pose)]))
    spec = POSES[pose]
    jitter = rng.uniform(-1.5, 1.5, 3)
    cam = PinholeCamera(np.asarray(spec["pos"]) + jitter, spec["target"], spec["roll"] + rng.uniform(-1, 1),
                        spec["focal"] * width, width, height)
    return rng, cam, pose


def render_eval(seed: int, pose: str | None = None, seconds: float = 15.0, width: int = 320, height: int = 240,
                fps: float = 30.0, sample_rate: int = 48000) -> EvalVideo:
    """One evaluation recording (pose "A" or "B"; by default A for even seeds), deterministic by seed."""
    rng, cam, pose = setup_camera(seed, pose, width, height)
    scene = _static_scene(cam, width, height, rng)
    hits = make_score(rng, seconds)
    audio = render_sound(hits, seconds, sample_rate, rng)
    balls = [[0.85, 0.1, 0.1], [0.15, 0.3, 0.85], [0.95, 0.85, 0.2], [0.1, 0.6, 0.25]]
    pick = rng.choice(len(balls), 2, replace=False)
    look = _Look(ball=tuple(float(_luminance(_srgb_to_linear(balls[i])) * 1.2) for i in pick),
                 stick=float(_luminance(_srgb_to_linear([0.82, 0.68, 0.48]))),
                 skin=float(_luminance(_srgb_to_linear([0.85, 0.64, 0.52]) * rng.uniform(0.5, 1.05))),
                 sleeve=float(_luminance(_srgb_to_linear(rng.uniform(0.1, 0.9, 3)))))
    light = np.array([rng.uniform(-0.3, 0.3), rng.uniform(0.1, 0.4)])
    exposure = 1.0 / float(rng.uniform(45, 120))
    gain = float(rng.uniform(0.8, 1.1))
    rows, cols = np.mgrid[0:height, 0:width]
    vignette = 1 - 0.25 * (((cols - width / 2) / width) ** 2 + ((rows - height / 2) / height) ** 2) * 2
    painter = _Painter(width, height)
    n_frames = round(seconds * fps)
    times = np.arange(n_frames) / fps
    frames = np.empty((n_frames, height, width), np.uint8)
    for i, t in enumerate(times):
        now = [hand_path(hits, t, h) for h in (0, 1)]
        img = scene.copy()
        _draw_players(img, cam, painter, now, look, light)
        earlier = [hand_path(hits, t - exposure, h) for h in (0, 1)]
        speed = max(np.hypot(a.x - b.x, a.height - b.height) for a, b in zip(now, earlier))
        if speed * cam.f / 60.0 > 1.0:  # moved over a pixel during the exposure: average three instants
            acc = img
            for k in (1, 2):
                mid = [hand_path(hits, t - exposure * k / 2, h) for h in (0, 1)]
                other = scene.copy()
                _draw_players(other, cam, painter, mid, look, light)
                acc = acc + other
            img = acc / 3.0
        lin = np.clip(img * gain * vignette, 0, None)
        electrons = lin * 4000.0  # shot noise ~ sqrt(signal), plus read noise
        noise = np.sqrt(electrons) * rng.standard_normal(lin.shape) + 6 * rng.standard_normal(lin.shape)
        lin = (electrons + noise) / 4000.0
        g = np.clip(lin, 0, 1) ** (1 / 2.2) * 255.0
        g[1:-1] = 0.25 * g[:-2] + 0.5 * g[1:-1] + 0.25 * g[2:]  # lens softness
        g[:, 1:-1] = 0.25 * g[:, :-2] + 0.5 * g[:, 1:-1] + 0.25 * g[:, 2:]
        frames[i] = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    u, v, _ = cam.to_pixel(box_corners_world())
    camera = {"corners": np.round(np.stack([u, v], axis=1), 4).tolist(), "pose": pose, "look_family": LOOK_FAMILY,
              "position_cm": np.round(cam.C, 3).tolist(), "focal_px": float(cam.f)}
    events = [(h.t, NOTES[h.bar], h.velocity) for h in hits]
    return EvalVideo(frames=frames, audio=audio, frame_times=times, events=events, sample_rate=sample_rate, fps=fps,
                     seed=seed, camera=camera)


def write_eval(video: EvalVideo, folder: str | Path) -> Path:
    """Store in the recorder's dataset layout with ground truth and the true corners."""
    from device.marimba.dataset import write_dataset

    extra = {"synthetic": {"seed": video.seed, "renderer": RENDERER, "renderer_version": RENDERER_VERSION,
                           "look_family": LOOK_FAMILY, "camera": json.loads(json.dumps(video.camera))}}
    return write_dataset(folder, video.frames, video.frame_times, video.audio, video.sample_rate, video.fps,
                         ground_truth=video.events, notes=NOTES, source="synthetic", extra=extra)


def render_eval_dataset(folder: str | Path, seeds: Sequence[int], seconds: float = 15.0, width: int = 320,
                        height: int = 240, progress: bool = False) -> list[Path]:
    """``folder/eval-<pose>-seed-NNNNN`` recordings; finished ones (with a manifest) are kept."""
    import shutil

    folder = Path(folder)
    it: Any = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=f"render {folder.name}", unit="video", leave=False)
    out = []
    for seed in it:
        pose = "A" if seed % 2 == 0 else "B"
        sub = folder / f"eval-{pose}-seed-{seed:05d}"
        if not (sub / "manifest.json").is_file():
            if sub.exists():
                shutil.rmtree(sub)
            write_eval(render_eval(seed, pose, seconds, width, height), sub)
        out.append(sub)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m training.datasets.marimba_eval_look --out DIR --seeds 0 1 ... [--seconds 15] [--size 320x240]`."""
    import argparse

    p = argparse.ArgumentParser(prog="marimba-eval-look",
                                description="Render evaluation recordings: a rainbow xylophone on gingham.")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--size", default="320x240", help="frame WIDTHxHEIGHT")
    args = p.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 320x240")
    for path in render_eval_dataset(args.out, args.seeds, args.seconds, w, h, progress=True):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
