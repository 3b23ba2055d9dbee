"""Refine a calibration with the marimba model itself (analysis by synthesis). Pure numpy + the TFLite model.

The audio says which bar sounded when. For a candidate bar-row box, the
frames around those strikes are rectified to the model's canonical view and
the model is asked which bar was hit: the right box makes the struck bar's
level stand out at every strike, a box off by a bar makes the neighbour's
do so. The score of a box (``margin_score``) is the mean over strikes of

    log softmax(levels / T)[struck bar]   (T = 0.1, clipped at LOG_FLOOR)

over the struck bar and every bar not sounding then (bars struck within
``CHORD_S`` are left out), on the best of the 3 windows around the strike.
0 is perfect, log(1/18) ~ -2.9 a blind guess. The search:

1. Coarse: the initial box (the heat-map estimate of
   ``device.marimba.calibrate``) scaled, lifted and moved by half bars, and
   whole-frame guesses (``prior_boxes``: 2 widths x 3 heights x 2
   proportions x 5 tilts; the estimate can be 100+ px off on unfamiliar
   looks), each scored once on a few strikes. The best few are then moved
   along the row by the model's own reading of the shift (``bar_shift``:
   the median of predicted minus struck bar: a box 2 bars off makes the
   model name every strike 2 bars off).
2. Pose: pattern search over shift along / across, scale, aspect and
   rotation with halving steps, from the best few.
3. Corners: pattern search over the 8 corner coordinates (perspective),
   fitted on every other strike, kept only if the other strikes agree.

The model tells bars apart along the row but hardly cares where along a
bar a mallet lands, so the score is flat across the row; moves across it
(shift, tilt, height) pay ``across_penalty`` so the box does not drift
there. Each strike is scored at the window where its bar peaks under the
stage's starting box (one model window per strike per candidate).

Decision: an initial box through which the model already hears the strikes
(score >= ``GOOD_ENOUGH``) is returned as is; otherwise the refined box
replaces it only when it scores ``ACCEPT_GAIN`` better through the device's
exact rectifier (``exact_score``). Deterministic (strike subsets are evenly
spaced). Rectification during the search is a fast approximation of
``device.marimba.rectify.Rectifier`` (``FastWarp``: box pre-blur matched to
the downscale, one bilinear sample per output pixel), as building an exact
Rectifier per candidate costs ~50 ms. ~400 candidates, ~15k model windows.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from device.errors import SaySeeError
from device.marimba.rectify import FILL, UNIT_SQUARE, Calibration, apply_homography, homography

CHORD_S = 0.06  # bars struck this close to a strike are not held against it
WINDOW_OFFSETS = (-1, 0, 1)  # windows around the strike's nominal window (audio timing is ~1 frame)
MIN_STRIKES = 4
NO_STRIKES_HINT = "play each bar a few times, or use --corners"
TEMPERATURE = 0.1  # levels are 0..~1; a 0.1 lead makes the struck bar e times likelier
LOG_FLOOR = -5.0
FINE_TEMPERATURE = 0.1  # pose and corners (a softer 0.3 let the box drift across the row on renders)
ACROSS_WEIGHT = 0.1  # score (mean log P) a move of 0.1 box heights across the row must gain
ACCEPT_GAIN = 0.1  # the refined box replaces the initial one only when this much better (mean log P)
GOOD_ENOUGH = -0.2  # an initial box through which the struck bar gets P > ~0.8 on average is not searched
BAD = 2 * LOG_FLOOR  # the score of a box that is not a convex quadrilateral


@dataclass(frozen=True)
class Budget:
    """How much searching: strikes used per stage and the search's extent (tests use small ones)."""

    grid_strikes: int = 16
    pose_strikes: int = 32
    corner_strikes: int = 64
    grid_shift_bars: float = 1.0  # the initial box also moved along the row this far each way (half-pitch steps)
    shift_steps: int = 2  # moves by the model's reading of how many bars off the box is
    shift_tries: int = 8  # ... for this many of the best first guesses
    prior_rotations: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)  # degrees, whole-frame guesses
    grid_across: tuple[float, ...] = (-0.15, 0.0, 0.15)  # box heights
    grid_scales: tuple[float, ...] = (0.9, 1.0, 1.1)
    keep: int = 3  # grid winners refined by the pose search
    pose_rounds: int = 4  # step halvings
    corner_rounds: int = 4
    good_enough: float = GOOD_ENOUGH
    fine_temperature: float = FINE_TEMPERATURE
    across_weight: float = ACROSS_WEIGHT
    priors: bool = True  # also try whole-frame guesses (the estimate can be far off)


@dataclass
class Refinement:
    """What ``refine_with_model`` found: the box, its score and the initial box's, and the effort."""

    calibration: Calibration
    score: float  # mean margin of the struck bar's level over the strikes (exact rectifier); 1 is perfect
    initial_score: float | None
    strikes: int
    evaluations: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # best (fast) score after each stage


# --------------------------------------------------------------- strikes


def strike_table(onsets: Sequence[tuple[float, int]], frame_times: np.ndarray, n_frames: int, n_bars: int,
                 offset_s: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window index per strike, struck bar per strike, (strikes, bars) bool: bars sounding then).

    The nominal window is the one whose start + ``offset_s`` (the model's
    onset offset) is nearest the strike; strikes too near the ends (no
    window on each side) are dropped.
    """
    t = np.asarray(frame_times, dtype=np.float64)
    ons = sorted((float(s), int(b)) for s, b in onsets if 0 <= int(b) < n_bars)
    last = n_frames - k  # last window index
    wins, bars, sounding = [], [], []
    for s, b in ons:
        i = int(np.argmin(np.abs(t[: last + 1] + offset_s - s))) if last >= 0 else -1
        if i + min(WINDOW_OFFSETS) < 0 or i + max(WINDOW_OFFSETS) > last:
            continue
        mask = np.zeros(n_bars, bool)
        for s2, b2 in ons:
            if abs(s2 - s) <= CHORD_S:
                mask[b2] = True
        wins.append(i)
        bars.append(b)
        sounding.append(mask)
    if not wins:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, n_bars), bool)
    return np.asarray(wins), np.asarray(bars), np.asarray(sounding)


def spread(n_total: int, n: int) -> np.ndarray:
    """``n`` indices evenly spread over range(n_total) (deterministic subsample)."""
    if n >= n_total:
        return np.arange(n_total)
    return np.unique(np.round(np.linspace(0, n_total - 1, n)).astype(int))


# ------------------------------------------------------------ fast warp


class FastWarp:
    """Approximate rectification of a fixed set of frames for many candidate boxes.

    Frames are box-blurred once (the blur matches how many source pixels an
    output pixel spans for the initial box, as the exact rectifier's area
    average does), then each candidate samples each output pixel once,
    bilinearly; outside the frame reads FILL like the exact rectifier.
    """

    def __init__(self, frames: np.ndarray, spec: Any, blur: tuple[int, int]):
        f = np.asarray(frames, dtype=np.float32)
        if f.ndim == 4:
            f = f.mean(axis=3)
        self.h, self.w = f.shape[1:3]
        f = _blur_axis(f, blur[0], 1)
        f = _blur_axis(f, blur[1], 2)
        # One FILL border pixel so that samples just outside blend into grey, as the exact rectifier's do.
        pad = np.full((len(f), self.h + 2, self.w + 2), FILL, np.float32)
        pad[:, 1:-1, 1:-1] = f
        self.flat = pad.reshape(len(f), -1)
        oh, ow = spec.input_size
        (u0, u1), (v0, v1) = spec.canonical.u, spec.canonical.v
        u = u0 + (np.arange(ow) + 0.5) / ow * (u1 - u0)
        v = v0 + (np.arange(oh) + 0.5) / oh * (v1 - v0)
        self.uv = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 2)
        self.out_shape = (oh, ow)

    def __call__(self, corners_px: np.ndarray) -> np.ndarray:
        """(N, oh, ow) float32 views of all frames through the box with these pixel corners."""
        H = homography(UNIT_SQUARE, corners_px)
        p = apply_homography(H, self.uv)
        x = p[:, 0] - 0.5 + 1.0  # pixel centres at +0.5; +1 for the border
        y = p[:, 1] - 0.5 + 1.0
        x = np.clip(x, 0.0, self.w + 1.0)
        y = np.clip(y, 0.0, self.h + 1.0)
        x0 = np.minimum(np.floor(x).astype(np.intp), self.w)
        y0 = np.minimum(np.floor(y).astype(np.intp), self.h)
        ax = (x - x0).astype(np.float32)
        ay = (y - y0).astype(np.float32)
        W = self.w + 2
        i00 = y0 * W + x0
        f = self.flat
        top = f[:, i00] * (1 - ax) + f[:, i00 + 1] * ax
        bot = f[:, i00 + W] * (1 - ax) + f[:, i00 + W + 1] * ax
        out = top * (1 - ay) + bot * ay
        return out.reshape((len(f),) + self.out_shape)


def _blur_axis(f: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Mean over ``n`` neighbours along ``axis`` (centred, edge-replicated); n <= 1 is a no-op."""
    if n <= 1:
        return f
    lo, hi = (n - 1) // 2, n // 2
    pad = [(0, 0)] * f.ndim
    pad[axis] = (lo + 1, hi)
    c = np.cumsum(np.pad(f, pad, mode="edge"), axis=axis, dtype=np.float64)
    m = f.shape[axis]
    a = np.take(c, np.arange(n, n + m), axis=axis)
    b = np.take(c, np.arange(0, m), axis=axis)
    return ((a - b) / n).astype(np.float32)


# --------------------------------------------------------------- scorer


class Scorer:
    """Scores candidate boxes on a set of strikes (see the module docstring)."""

    def __init__(self, model: Any, spec: Any, frames: np.ndarray, wins: np.ndarray, bars: np.ndarray,
                 sounding: np.ndarray, blur: tuple[int, int], offsets: Sequence[int] = WINDOW_OFFSETS):
        from device.marimba.pipeline import space_time_image

        self._sti = space_time_image
        self.model, self.spec = model, spec
        self.k = spec.frames_per_window
        self.bars, self.sounding = bars, sounding
        self.offsets = np.asarray(offsets, int)
        # The frames needed: for each strike, windows wins + offsets, each k frames.
        need = sorted({int(i + o + j) for i in wins for o in self.offsets for j in range(self.k)})
        self.local = {g: n for n, g in enumerate(need)}
        self.win_frames = np.array([[[self.local[int(i + o + j)] for j in range(self.k)] for o in self.offsets]
                                    for i in wins], dtype=np.intp).reshape(len(wins), len(self.offsets), self.k)
        self.warp = FastWarp(np.asarray(frames)[need], spec, blur)
        self.evaluations = 0
        self.temperature = TEMPERATURE

    def levels(self, corners_px: np.ndarray) -> np.ndarray:
        """(strikes, offsets, bars) model levels through this box."""
        views = self.warp(corners_px)
        stacks = views[self.win_frames]  # (S, O, k, h, w)
        x = self._sti(stacks, self.spec)  # (S, O, h, w, k)
        flat = x.reshape((-1,) + x.shape[2:])
        y = predict_all(self.model, flat)
        self.evaluations += 1
        return y.reshape(len(self.bars), len(self.offsets), -1)

    def score(self, corners_px: np.ndarray) -> float:
        if _bad_quad(corners_px):
            return BAD
        return margin_score(self.levels(corners_px), self.bars, self.sounding, self.temperature)


def predict_all(model: Any, xs: np.ndarray) -> np.ndarray:
    """Model outputs for a batch of windows (one ``predict`` each: the int8 model takes one window)."""
    return np.stack([np.asarray(model.predict(x), dtype=np.float32).reshape(-1) for x in xs])


def margin_score(levels: np.ndarray, bars: np.ndarray, sounding: np.ndarray, temperature: float = TEMPERATURE
                 ) -> float:
    """Mean over strikes of log P(struck bar), P = softmax(level / T) over the struck bar and every bar not
    sounding then, on the best window around the strike; clipped at LOG_FLOOR so one strike the model
    misses (a hand in the way) cannot outweigh the rest. 0 is perfect; log(1/18) ~ -2.9 is a blind guess."""
    y = levels.max(axis=1) / temperature  # (S, bars)
    hit = y[np.arange(len(bars)), bars]
    others = np.where(sounding, -np.inf, y)
    top = np.maximum(hit, others.max(axis=1))
    lse = top + np.log(np.exp(hit - top) + np.exp(others - top[:, None]).sum(axis=1))
    return float(np.mean(np.maximum(hit - lse, LOG_FLOOR)))


def bar_shift(levels: np.ndarray, bars: np.ndarray, min_level: float = 0.2) -> float | None:
    """Median (predicted bar - struck bar) over strikes the model sees clearly: how many bars the box is off
    (positive: the model sees the strikes at higher bars, the box must move that way). None if unclear."""
    y = levels.max(axis=1)
    ok = y.max(axis=1) >= min_level
    if ok.sum() < MIN_STRIKES:
        return None
    return float(np.median(y[ok].argmax(axis=1) - bars[ok]))


def _bad_quad(c: np.ndarray) -> bool:
    cross = []
    for i in range(4):
        a, b, d = c[i], c[(i + 1) % 4], c[(i + 2) % 4]
        cross.append((b[0] - a[0]) * (d[1] - b[1]) - (b[1] - a[1]) * (d[0] - b[0]))
    cross = np.asarray(cross)
    return not (np.all(cross > 1.0) or np.all(cross < -1.0))


# --------------------------------------------------------------- geometry


def box_frame(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(centre, unit along the row, unit across, row length, box height) of pixel corners TL TR BR BL."""
    centre = c.mean(axis=0)
    along = (c[1] - c[0]) + (c[2] - c[3])
    length = float(np.linalg.norm(along)) / 2
    along = along / max(np.linalg.norm(along), 1e-9)
    across = np.array([-along[1], along[0]])
    if np.dot((c[3] - c[0]) + (c[2] - c[1]), across) < 0:
        across = -across
    height = float(abs(np.dot((c[3] - c[0]) + (c[2] - c[1]), across))) / 2
    return centre, along, across, length, height


def pose(c: np.ndarray, shift: float = 0.0, lift: float = 0.0, scale: float = 1.0, aspect: float = 1.0,
         rot_deg: float = 0.0) -> np.ndarray:
    """Corners moved by ``shift`` bar pitches along the row, ``lift`` box heights across it, scaled about
    the centre (``aspect`` stretches the length against the height) and rotated; shape kept."""
    centre, along, across, length, height = box_frame(c)
    n_pitch = length / 18.0
    rel = c - centre
    a = rel @ along * scale * aspect
    b = rel @ across * scale / aspect
    th = np.deg2rad(rot_deg)
    al = np.cos(th) * along + np.sin(th) * across
    ac = -np.sin(th) * along + np.cos(th) * across
    return centre + shift * n_pitch * along + lift * height * across + a[:, None] * al + b[:, None] * ac


def prior_boxes(frame_size: tuple[int, int]) -> list[np.ndarray]:
    """Whole-frame guesses (also tried beside an estimate, which can be far off): rows of a few
    widths, heights and places (turned by ``Budget.prior_rotations``); the model's readings of the strikes then move them along the row."""
    h, w = frame_size
    out = []
    for width in (0.6, 0.8):
        for cy in (0.4, 0.5, 0.6):
            for prop in (0.25, 0.45):  # box height / row length (a flat view ... the synthetic proportion)
                L = width * w
                Hb = min(prop * L, 0.8 * h)
                x0, y0 = (w - L) / 2, cy * h - Hb / 2
                out.append(np.array([[x0, y0], [x0 + L, y0], [x0 + L, y0 + Hb], [x0, y0 + Hb]], np.float64))
    return out


# ---------------------------------------------------------------- search


def across_penalty(c: np.ndarray, ref: np.ndarray, budget: "Budget") -> float:
    """Cost of moving the corners of ``ref`` across the row (to ``c``), in box heights: the model tells bars
    apart along the row but hardly cares where along a bar the mallet lands, so across the row (shift,
    tilt, height) the starting box is trusted unless the model clearly prefers otherwise."""
    _, _, across, _, height = box_frame(ref)
    d = (c - ref) @ across / max(height, 1e-9)
    return budget.across_weight * float(np.mean((d / 0.1) ** 2))


def _pattern(score, x0: np.ndarray, steps: np.ndarray, rounds: int, f0: float | None = None
             ) -> tuple[np.ndarray, float]:
    """Compass search: try +/- each step, take any improvement, halve the steps when none helps."""
    x, fx = x0.copy(), score(x0) if f0 is None else f0
    steps = steps.astype(np.float64).copy()
    for _ in range(rounds):
        improved = True
        sweeps = 0
        while improved and sweeps < 3:
            improved = False
            sweeps += 1
            for i in range(len(x)):
                for sgn in (1.0, -1.0):
                    cand = x.copy()
                    cand[i] += sgn * steps[i]
                    fc = score(cand)
                    if fc > fx + 1e-6:
                        x, fx, improved = cand, fc, True
                        break
        steps /= 2
    return x, fx


def refine_with_model(model: Any, spec: Any, frames: np.ndarray, frame_times: Sequence[float],
                      onsets: Sequence[tuple[float, int]], initial: Calibration | None,
                      budget: Budget = Budget(), what: str = "the recording", detail: bool = False
                      ) -> Calibration | Refinement:
    """The box in which the model best hears the audio's notes, starting from ``initial`` (or whole-frame
    priors when None). ``onsets`` = [(t_seconds, bar_index)] from the audio; ``spec`` the model's
    ``MarimbaSpec``. Returns a ``Calibration`` (source "auto"), or a ``Refinement`` with ``detail``."""
    t_start = time.perf_counter()
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames.mean(axis=3).astype(np.uint8)
    if frames.ndim != 3 or len(frames) < spec.frames_per_window + 2:
        raise SaySeeError(f"{what}: too few frames to calibrate from ({len(frames)})")
    n_bars = len(spec.notes)
    H, W = frames.shape[1:3]
    wins, bars, sounding = strike_table(onsets, np.asarray(frame_times, np.float64), len(frames), n_bars,
                                        spec.peaks.onset_offset_s, spec.frames_per_window)
    if len(wins) < MIN_STRIKES:
        raise SaySeeError(f"{what}: {len(wins)} notes heard, at least {MIN_STRIKES} are needed to refine the "
                          f"calibration with the model; {NO_STRIKES_HINT}")
    seeds = ([initial.corners_px((H, W))] if initial is not None else []) + (prior_boxes((H, W)) if budget.priors else [])
    if not seeds:
        raise ValueError("refine_with_model needs an initial calibration or budget.priors")
    # Blur matched to the downscale of the first seed: source pixels per output pixel along each axis.
    _, _, _, L0, H0 = box_frame(seeds[0])
    can = spec.canonical
    oh, ow = spec.input_size
    blur = (max(1, int(round(H0 * (can.v[1] - can.v[0]) / oh))), max(1, int(round(L0 * (can.u[1] - can.u[0]) / ow))))

    def scorer(n: int, offsets: Sequence[int] = WINDOW_OFFSETS, idx: np.ndarray | None = None) -> Scorer:
        i = spread(len(wins), n) if idx is None else idx
        return Scorer(model, spec, frames, wins[i], bars[i], sounding[i], blur, offsets)

    stages: dict[str, float] = {}
    evaluations = 0
    init_score = None
    if initial is not None:
        init_score = exact_score(model, spec, frames, wins, bars, sounding, seeds[0])
        if init_score >= budget.good_enough:  # the model already hears nearly every strike through it
            cal = dataclasses.replace(initial, source="auto", path=None)
            if not detail:
                return cal
            return Refinement(cal, init_score, init_score, len(wins), 1, time.perf_counter() - t_start,
                              {"initial good enough": init_score})
    # 1. coarse: every variant of the seeds scored once; the best few then moved along the row by the bars
    # the model sees their strikes at (its reading of a shift), a step at a time.
    grid = scorer(budget.grid_strikes)
    first = []
    for n_seed, seed in enumerate(seeds):
        if n_seed == 0 and initial is not None:
            variants = [(sh, lift, s, 0.0) for s in budget.grid_scales for lift in budget.grid_across for sh in (0.0,)]
            # The estimate moved by whole and half bars too (the model's reading of a shift is rounded).
            variants += [(sh, 0.0, 1.0, 0.0) for sh in np.arange(-budget.grid_shift_bars,
                                                                 budget.grid_shift_bars + 1e-9, 0.5) if sh]
        else:
            variants = [(0.0, 0.0, 1.0, r) for r in budget.prior_rotations]
        for sh, lift, s, r in variants:
            c = pose(seed, sh, lift, s, 1.0, r)
            lv = grid.levels(c) if not _bad_quad(c) else None
            f = margin_score(lv, grid.bars, grid.sounding) if lv is not None else BAD
            first.append((f, len(first), c, lv))
    first.sort(key=lambda r: (-r[0], r[1]))
    scored = [(f, i, c) for f, i, c, _ in first]
    for f, _, c, lv in first[: budget.shift_tries]:
        for _ in range(budget.shift_steps):
            shift = bar_shift(lv, grid.bars) if lv is not None else None
            if not shift:
                break
            c = pose(c, shift)
            lv = grid.levels(c) if not _bad_quad(c) else None
            f = margin_score(lv, grid.bars, grid.sounding) if lv is not None else BAD
            scored.append((f, len(scored), c))
    evaluations += grid.evaluations
    scored.sort(key=lambda r: (-r[0], r[1]))
    stages["grid"] = scored[0][0]
    # 2. pose search from the best few, each strike at the window where its bar peaks under that box
    ps = scorer(budget.pose_strikes)
    pidx = spread(len(wins), budget.pose_strikes)
    best_c, best_f = None, -np.inf
    for _, _, c in scored[: budget.keep]:
        pick = ps.levels(c)[np.arange(len(pidx)), :, bars[pidx]].argmax(axis=1)
        fixed = Scorer(model, spec, frames, wins[pidx] + np.asarray(WINDOW_OFFSETS)[pick], bars[pidx],
                       sounding[pidx], blur, (0,))
        fixed.temperature = budget.fine_temperature
        f = lambda p, c=c, fixed=fixed: fixed.score(pose(c, *p)) - across_penalty(pose(c, *p), c, budget)  # noqa: E731
        p, fp = _pattern(f, np.array([0.0, 0.0, 1.0, 1.0, 0.0]), np.array([0.5, 0.1, 0.05, 0.05, 2.0]),
                         budget.pose_rounds)
        evaluations += fixed.evaluations
        if fp > best_f:
            best_c, best_f = pose(c, *p), fp
    evaluations += ps.evaluations
    stages["pose"] = best_f
    # 3. corners (perspective), each strike at the window where its bar peaked under the pose result; fitted
    # on every other strike and kept only if the strikes not fitted on agree (8 free coordinates overfit).
    idx = spread(len(wins), budget.corner_strikes)
    probe = scorer(len(wins), idx=idx)
    lv = probe.levels(best_c)
    evaluations += 1
    pick = lv[np.arange(len(idx)), :, bars[idx]].argmax(axis=1)
    win_fixed = wins[idx] + np.asarray(WINDOW_OFFSETS)[pick]
    fit, check = np.arange(0, len(idx), 2), np.arange(1, len(idx), 2)
    fixed = Scorer(model, spec, frames, win_fixed[fit], bars[idx][fit], sounding[idx][fit], blur, (0,))
    held = Scorer(model, spec, frames, win_fixed[check], bars[idx][check], sounding[idx][check], blur, (0,))
    fixed.temperature = held.temperature = budget.fine_temperature
    _, _, _, L, Hb = box_frame(best_c)
    step = np.tile([L / 18 / 4, Hb / 10], 4)
    def corner_score(v: np.ndarray) -> float:
        return fixed.score(v.reshape(4, 2)) - across_penalty(v.reshape(4, 2), best_c, budget)

    x, fx = _pattern(corner_score, best_c.reshape(-1), step, budget.corner_rounds)
    evaluations += fixed.evaluations + 2
    stages["corners"] = fx
    final = best_c
    if len(check) and held.score(x.reshape(4, 2)) > held.score(best_c):
        final = x.reshape(4, 2)
        stages["corners kept"] = 1.0
    # The exact device path decides between the refined box and the initial one; the initial box stays
    # unless the refined one is clearly better (a search always finds some box a little better on the
    # strikes it was fitted to).
    score = exact_score(model, spec, frames, wins, bars, sounding, final)
    if init_score is not None and score < init_score + ACCEPT_GAIN:
        final, score = seeds[0], init_score
    try:
        cal = Calibration.from_pixels(final, (H, W), source="auto",
                                      residual_px=initial.residual_px if initial is not None else None)
    except ValueError as e:
        raise SaySeeError(f"{what}: the model-refined box is not a row ({e}); {NO_STRIKES_HINT}") from None
    if not detail:
        return cal
    return Refinement(cal, score, init_score, len(wins), evaluations, time.perf_counter() - t_start, stages)


def exact_score(model: Any, spec: Any, frames: np.ndarray, wins: np.ndarray, bars: np.ndarray,
                sounding: np.ndarray, corners_px: np.ndarray) -> float:
    """``margin_score`` through the device's own rectifier (``preprocess_frames``) on every strike."""
    from device.marimba.pipeline import preprocess_frames, space_time_image

    H, W = frames.shape[1:3]
    try:
        cal = Calibration.from_pixels(corners_px, (H, W), source="auto")
    except ValueError:
        return BAD
    k = spec.frames_per_window
    need = sorted({int(i + o + j) for i in wins for o in WINDOW_OFFSETS for j in range(k)})
    local = {g: n for n, g in enumerate(need)}
    views = preprocess_frames(frames[need], spec, cal)
    idx = np.array([[[local[int(i + o + j)] for j in range(k)] for o in WINDOW_OFFSETS] for i in wins])
    x = space_time_image(views[idx], spec)
    y = predict_all(model, x.reshape((-1,) + x.shape[2:]))
    return margin_score(y.reshape(len(wins), len(WINDOW_OFFSETS), -1), bars, sounding)


# ----------------------------------------------------------------- wrapper

MIN_PRIOR_SCORE = -2.0  # a box found from whole-frame guesses alone must do clearly better than a blind guess (-2.9)


def calibrate_with_model(frames: np.ndarray, frame_times: Sequence[float], onsets: Sequence[tuple[float, int]],
                         model: Any = None, spec: Any = None, notes: Sequence[int] | None = None,
                         what: str = "the recording", budget: Budget = Budget()
                         ) -> tuple[Calibration, Any, Refinement | None]:
    """(calibration, heat-map ``Detection`` or None, ``Refinement`` or None) for one recording.

    The heat-map estimate (``device.marimba.calibrate.auto_calibrate``), then, with a ``model``, refined by
    the model. When the heat map refuses (too few bars seen) and there is a model, the refinement starts
    from whole-frame guesses and its box is kept only if the model hears the strikes in it
    (score >= MIN_PRIOR_SCORE); otherwise the heat map's one-line error stands.
    """
    from device.marimba.calibrate import auto_calibrate

    n_bars = len(spec.notes) if spec is not None else 18
    det, refused = None, None
    try:
        det = auto_calibrate(frames, onsets, frame_times, n_bars=n_bars, notes=notes, what=what, detail=True)
    except SaySeeError as e:
        if model is None:
            raise
        refused = e
    if model is None:
        return det.calibration, det, None
    if getattr(model, "metadata", None) and "marimba" in model.metadata:
        from device.marimba.pipeline import MarimbaSpec

        spec = MarimbaSpec.from_metadata(model.metadata)  # the view the model was trained on
    if spec is None:
        raise ValueError("calibrate_with_model: a model without marimba metadata needs spec")
    try:
        ref = refine_with_model(model, spec, frames, frame_times, onsets, det.calibration if det else None,
                                budget=budget, what=what, detail=True)
    except SaySeeError:
        if refused is not None:
            raise refused from None
        raise
    if det is None and ref.score < MIN_PRIOR_SCORE:
        raise refused  # type: ignore[misc]
    return ref.calibration, det, ref


_MODELS: dict[str, Any] = {}


def pretrained_model(path: Any, notes: Sequence[int] | None = None) -> Any:
    """The int8 marimba model at ``path`` (loaded once), or None when it is missing or plays other notes."""
    from pathlib import Path

    from device.frontend import NoteParams
    from device.model import Model

    key = str(Path(path).resolve())
    if key not in _MODELS:
        _MODELS[key] = Model(path, expected_frontend=NoteParams()) if Path(path).is_file() else None
    m = _MODELS[key]
    if m is not None and notes is not None and tuple(m.metadata["marimba"]["notes"]) != tuple(notes):
        return None
    return m
