"""Find the bar row in a recording: corners of the bar-row box from where the mallets land when a note sounds.

``auto_calibrate(frames, onsets, frame_times)`` -> ``Calibration``. The audio
says which bar was struck when; the video says where something landed then;
the still instrument says exactly where its bars are.

1. Background: the temporal median of the frames (mallets and hands move, the
   instrument does not).
2. Strike candidates (``strike_candidates``): at each audio onset, what is in
   the frame and neither in the background nor 0.1 s before or after (the
   striking head came down and goes up again; a mallet resting elsewhere
   cancels), minus the mean over all strikes (hands, lighting); its few
   strongest blobs (a centre-minus-surround filter that damps shafts and arm
   edges) are candidates for that bar, and so are the blobs of each bar's
   mean over its strikes.
3. Which candidates are the striking heads (``vote_bars``): bar j sits at
   u = (j + 0.5) / n along the row, so the true candidates, projected on the
   row direction, fit one line s = alpha u + beta. RANSAC over triples of
   candidates of different bars, for row directions every 1.5 degrees within
   45 degrees of horizontal; the model explaining the most bars wins (the
   other mallet's candidates are labelled with the wrong bar and scatter).
4. The row (``fit_row``): a 1-D projective map p(u) (a straight row seen in
   perspective) through the voted bar positions, RANSAC then least squares.
5. The bars themselves: each bar's axis (structure tensor of the
   background), its two ends (``bar_ends``: where the component with the bar
   pitch, in phase with the bars, falls to the table's noise along the axis;
   bars vs gaps, so a table of the bars' colour or a patterned one does not
   matter), the row moved to the bars' middles (``recentre``) and each bar's
   centre refined by the symmetry of the strip across it (``refine_along``);
   a refinement is kept only where it agrees with the strikes to 0.3 pitch.
6. The box (``box_corners``): built on the bars' middles (or tops / bottoms
   for a row aligned at one end, when that meets the bars clearly more
   squarely), its top and bottom the longest bar's ends from a robust fit of
   the ends across bars (bars shorten as 1/sqrt(f)), extrapolated to the
   row's ends u = 0 and u = 1. Where the ends cannot be read, the synthetic
   instrument's proportion (longest bar = half the row width).

The residual (``Calibration.residual_px``) is the RMS distance along the row
between the strikes' bar positions and the final row's bars. Needs at least
``MIN_BARS`` distinct bars struck, spanning a third of the row, else one
``SaySeeError`` line says so. Pure numpy.

Measured (issue 14 report): sub-pixel to ~1.5 px on ``marimba_synth``
renders (posed, 160x96 and 320x240); on ``marimba_looks`` (perspective,
other materials, patterned tables) it is right to 3 px on about a quarter
and to 6 px on under half of the videos: the bar ends are the weak part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from device.errors import SaySeeError
from device.marimba.rectify import Calibration

CALIBRATION_FILE = "calibration.json"  # its name beside a recording (calibrate-marimba writes it, training reads it)
MIN_BARS = 4
END_ALIGNED_MARGIN_DEG = 2.0  # an end-aligned row must meet the bars this much squarer than the middles
STRIKE_LAG_S = 0.015  # audio onsets (window starts) come ~13 ms before the strike (measured on renders)
DEFAULT_HALF_HEIGHT = 0.25  # bar-row box half height / row width when the bar ends can't be read
MOTION_GAP_S = 0.1  # a striking mallet is raised this long before and after the strike
MEDIAN_FRAMES = 120  # frames the background median is taken over (evenly spaced)
HINT = "play each bar a few times or use --corners"


@dataclass
class Detection:
    """What ``auto_calibrate`` found, for reports and pictures (the calibration is ``calibration``)."""

    calibration: Calibration
    bar_points: dict[int, tuple[float, float]]  # bar index -> strike centre (pixels)
    inliers: list[int]
    residual_px: float
    projective: bool
    height_source: str  # "bar ends" | "default proportion"
    background: np.ndarray = field(repr=False)
    strikes: int = 0


# ------------------------------------------------------------------ helpers


def _box_blur(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 box, edges by reflection (separable cumulative sums)."""
    if r <= 0:
        return img
    out = img
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        c = np.cumsum(np.pad(out, pad, mode="reflect"), axis=axis, dtype=np.float64)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * r + 1)
    return out


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample img at continuous pixel coordinates (pixel centres at i + 0.5), clamped at the edges."""
    H, W = img.shape
    fx, fy = np.clip(x - 0.5, 0, W - 1), np.clip(y - 0.5, 0, H - 1)
    x0, y0 = np.minimum(np.floor(fx).astype(int), W - 2), np.minimum(np.floor(fy).astype(int), H - 2)
    ax, ay = fx - x0, fy - y0
    return ((1 - ay) * ((1 - ax) * img[y0, x0] + ax * img[y0, x0 + 1])
            + ay * ((1 - ax) * img[y0 + 1, x0] + ax * img[y0 + 1, x0 + 1]))


class _LineMap:
    """p(u) = o + D a(u), a(u) = (alpha u + beta) / (c u + 1): a straight row seen in perspective (c = 0: affine)."""

    def __init__(self, o: np.ndarray, D: np.ndarray, alpha: float, beta: float, c: float):
        self.o, self.D, self.alpha, self.beta, self.c = o, D, float(alpha), float(beta), float(c)

    def a(self, u: Any) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        return (self.alpha * u + self.beta) / (self.c * u + 1.0)

    def __call__(self, u: Any) -> np.ndarray:
        return self.o + self.D * self.a(u)[..., None]

    def derivative(self, u: Any) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        return self.D * ((self.alpha - self.c * self.beta) / (self.c * u + 1.0) ** 2)[..., None]


def _fit_a(u: np.ndarray, a: np.ndarray, w: np.ndarray | None = None, projective: bool = True
           ) -> tuple[float, float, float] | None:
    """Least squares a (c u + 1) = alpha u + beta; None when c would fold the row."""
    w = np.ones(len(u)) if w is None else np.sqrt(w)
    if projective:
        M = np.stack([u, np.ones_like(u), -u * a], axis=1) * w[:, None]
    else:
        M = np.stack([u, np.ones_like(u)], axis=1) * w[:, None]
    sol, *_ = np.linalg.lstsq(M, a * w, rcond=None)
    c = float(sol[2]) if projective else 0.0
    if not -0.8 < c < 4.0:  # the denominator must stay positive and tame over u in 0..1
        return None
    return float(sol[0]), float(sol[1]), c


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Robust line y = a + b x (median of pairwise slopes)."""
    if len(x) == 1:
        return float(y[0]), 0.0
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-9
    b = float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0
    return float(np.median(y - b * x)), b


# --------------------------------------------------------------- the steps


def background(frames: np.ndarray) -> np.ndarray:
    """Temporal median of up to MEDIAN_FRAMES evenly spaced frames, float32."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), MEDIAN_FRAMES)).round().astype(int))
    return np.median(np.asarray(frames)[idx], axis=0).astype(np.float32)


def _box_1d(img: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over 2r+1 samples along one axis (reflected edges)."""
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(img, pad, mode="reflect"), axis=axis, dtype=np.float64)
    n = img.shape[axis]
    return (np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis) - np.take(c, np.arange(n), axis=axis)) / (2 * r + 1)


def blob_response(d: np.ndarray, r: int) -> np.ndarray:
    """How much a blob of radius ~r stands out of ``d``: lines (shafts, arms' edges) answer weakly.

    min(horizontal, vertical) local means: a blob fills both, a line only the
    one along it; minus the surround, so broad changes (light, a whole arm)
    cancel.
    """
    core = np.minimum(_box_1d(_box_1d(d, r, 1), max(1, r // 2), 0), _box_1d(_box_1d(d, r, 0), max(1, r // 2), 1))
    return core - _box_blur(d, 3 * r)


def _peaks(resp: np.ndarray, k: int, radius: int, min_strength: float) -> list[tuple[float, float, float]]:
    """Up to k strongest blobs (x, y, strength in noise units), sub-pixel, each ``radius`` apart."""
    H, W = resp.shape
    noise = 1.4826 * float(np.median(np.abs(resp - np.median(resp)))) + 1e-6
    work = resp.copy()
    out = []
    for _ in range(k):
        y, x = np.unravel_index(int(np.argmax(work)), work.shape)
        strength = float(work[y, x]) / noise
        if strength < min_strength:
            break
        y0, y1, x0, x1 = max(0, y - radius), min(H, y + radius + 1), max(0, x - radius), min(W, x + radius + 1)
        r = max(1, radius // 2)
        py0, py1, px0, px1 = max(0, y - r), min(H, y + r + 1), max(0, x - r), min(W, x + r + 1)
        patch = np.clip(resp[py0:py1, px0:px1] - 0.5 * resp[y, x], 0, None)  # centroid of the peak's upper half
        yy, xx = np.mgrid[py0:py1, px0:px1]
        total = patch.sum()
        out.append((float((patch * xx).sum() / total) + 0.5, float((patch * yy).sum() / total) + 0.5, strength))
        work[y0:y1, x0:x1] = -np.inf
    return out


def strike_candidates(frames: np.ndarray, onsets: Sequence[tuple[float, int]], frame_times: np.ndarray,
                      bg: np.ndarray, n_bars: int) -> tuple[list[tuple[int, float, float, float]], int]:
    """[(bar, x, y, strength)]: where a mallet head may be at that bar's strikes; and the strikes used.

    Per strike: what is at the strike frame and neither in the background nor
    0.1 s before or after (the striking head came down and goes up again; a
    mallet resting elsewhere cancels), minus its mean over all strikes
    (hands, lighting); its few strongest blobs are candidates, and so are the
    strongest blobs of each bar's mean over its strikes. The other mallet
    often moves too, so which candidate is the striking head is left to the
    row fit, where only the true ones agree.
    """
    H, W = bg.shape
    times = np.asarray(frame_times, dtype=np.float64)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1 / 30
    gap = max(1, int(round(MOTION_GAP_S / dt)))
    diffs: list[np.ndarray] = []
    bars: list[int] = []
    for t, bar in onsets:
        if not 0 <= int(bar) < n_bars:
            continue
        i = int(np.argmin(np.abs(times - (t + STRIKE_LAG_S))))
        if i - gap < 0 or i + gap >= len(frames):
            continue
        f = frames[i].astype(np.float32)
        diffs.append(np.minimum(np.abs(f - bg), np.minimum(np.abs(f - frames[i - gap]), np.abs(f - frames[i + gap]))))
        bars.append(int(bar))
    if not diffs:
        return [], 0
    mean_all = np.mean(diffs, axis=0)
    r = max(1, round(W / 50))  # about a mallet head's radius when the row fills the frame
    out = []
    for d, bar in zip(diffs, bars):
        out += [(bar, x, y, st) for x, y, st in _peaks(blob_response(d - mean_all, r), 3, 3 * r, 5.0)]
    for bar in sorted(set(bars)):
        mine = [d for d, b in zip(diffs, bars) if b == bar]
        if len(mine) >= 2:
            out += [(bar, x, y, st) for x, y, st in _peaks(blob_response(np.mean(mine, axis=0) - mean_all, r),
                                                           2, 3 * r, 5.0)]
    return out, len(diffs)


def row_direction(bg: np.ndarray, candidates: Sequence[tuple[int, float, float, float]]) -> np.ndarray:
    """Unit vector along the row: the bars' edges around the candidates run across it (structure tensor)."""
    g = _box_blur(bg.astype(np.float64), 1)
    gy, gx = np.gradient(g)
    H, W = bg.shape
    r = max(3, round(W / 25))
    jxx = jyy = jxy = 0.0
    for _, x, y, _ in candidates:
        cx, cy = int(x), int(y)
        y0, y1, x0, x1 = max(0, cy - r), min(H, cy + r + 1), max(0, cx - r), min(W, cx + r + 1)
        a, b = gx[y0:y1, x0:x1], gy[y0:y1, x0:x1]
        jxx, jyy, jxy = jxx + (a * a).sum(), jyy + (b * b).sum(), jxy + (a * b).sum()
    phi = 0.5 * math.atan2(2 * jxy, jxx - jyy)  # dominant gradient direction = across the bars = along the row
    d = np.array([math.cos(phi), math.sin(phi)])
    return d if d[0] >= 0 else -d


def vote_bars(candidates: Sequence[tuple[int, float, float, float]], along: np.ndarray, n_bars: int,
              seed: int = 0, max_tilt_deg: float = 45.0, trials: int = 400
              ) -> tuple[dict[int, tuple[float, float, float]], np.ndarray]:
    """bar -> (x, y, support), and the row direction: the candidates that fit one row.

    For each trial direction (``along`` and every 1.5 degrees within
    ``max_tilt_deg`` of horizontal), candidates project to positions s along
    it; RANSAC over triples of candidates of different bars fits s = alpha u +
    beta (u = bar centre); a model scores the number of bars it explains (a
    candidate within a third of its pitch), then the number of candidates.
    Where the mallets land across the row varies, so a wrong direction mixes
    that spread into the positions and explains fewer bars.
    """
    c = np.asarray([(b, x, y, st) for b, x, y, st in candidates], dtype=np.float64)
    bars = c[:, 0].astype(int)
    distinct = np.unique(bars)
    if len(distinct) < 3:
        return {}, along
    u = (bars + 0.5) / n_bars
    o = np.median(c[:, 1:3], axis=0)
    rng = np.random.default_rng(seed)
    # Triples of candidates from three different bars (the same triples for every direction).
    picks = np.stack([rng.permutation(distinct)[:3] for _ in range(trials)])
    by_bar = {b: np.flatnonzero(bars == b) for b in distinct}
    idx = np.array([[rng.choice(by_bar[b]) for b in row] for row in picks])
    onehot = (bars[None, :] == distinct[:, None])  # (bars, candidates)
    base = math.atan2(along[1], along[0])
    angles = np.unique(np.r_[base, np.deg2rad(np.arange(-max_tilt_deg, max_tilt_deg + 1e-9, 1.5))])
    best = (-1, -1, 0.0)
    best_in, best_dir = None, along
    for ang in angles:
        d = np.array([math.cos(ang), math.sin(ang)])
        s = (c[:, 1:3] - o) @ d
        uu, ss = u[idx], s[idx]  # (trials, 3)
        um, sm = uu.mean(axis=1, keepdims=True), ss.mean(axis=1, keepdims=True)
        var = ((uu - um) ** 2).sum(axis=1)
        alpha = ((uu - um) * (ss - sm)).sum(axis=1) / np.maximum(var, 1e-12)
        beta = sm[:, 0] - alpha * um[:, 0]
        thr = 0.3 * np.abs(alpha) / n_bars  # a third of the pitch
        ok = (var > 1e-4) & (np.abs(alpha) / n_bars >= 1.0)
        r = np.abs(alpha[:, None] * u[None, :] + beta[:, None] - s[None, :])  # (trials, candidates)
        inl = (r < thr[:, None]) & ok[:, None]
        n_bars_ok = (inl.astype(np.int32) @ onehot.T.astype(np.int32) > 0).sum(axis=1)
        n_in = inl.sum(axis=1)
        cost = np.minimum(r / np.maximum(thr[:, None], 1e-9), 1.0).sum(axis=1)
        k = int(np.lexsort((cost, -n_in, -n_bars_ok))[0])
        key = (int(n_bars_ok[k]), int(n_in[k]), -float(cost[k]))
        if key > best:
            best, best_in, best_dir = key, inl[k], d
    if best_in is None or not best_in.any():
        return {}, along
    out = {}
    for b in np.unique(bars[best_in]):
        sel = best_in & (bars == b)
        w = c[sel, 3]
        out[int(b)] = (float(np.average(c[sel, 1], weights=w)), float(np.median(c[sel, 2])), float(sel.sum()))
    return out, best_dir


def fit_row(points: dict[int, tuple[float, float, float]], n_bars: int, along: np.ndarray | None = None
            ) -> tuple[_LineMap, list[int], float, bool]:
    """RANSAC + refit of the bar centres to p(u); (map, inlier bars, RMS residual along the row px, projective?).

    Where along a bar the mallet lands varies from strike to strike, so only
    the position ALONG the row is trusted for the fit (and the residual); the
    row's position across is a robust line through the points, refined later
    from the bar ends.
    """
    bars = np.array(sorted(points))
    u = (bars + 0.5) / n_bars
    p = np.array([points[b][:2] for b in bars])
    w = np.array([min(points[b][2], 50.0) for b in bars])
    # Row direction: given (from the bars' edges), else robust slopes of each coordinate against u.
    o = np.median(p, axis=0)
    if along is None:
        ks = np.array([_theil_sen(u, p[:, 0])[1], _theil_sen(u, p[:, 1])[1]])
        along = ks / np.linalg.norm(ks)
    along = np.asarray(along, dtype=np.float64) / np.linalg.norm(along)
    across = np.array([-along[1], along[0]])
    a_all, e_all = (p - o) @ along, (p - o) @ across
    projective = len(bars) >= 6 and (bars.max() - bars.min()) >= n_bars / 2
    best_in, best_cost = np.zeros(len(bars), bool), np.inf
    for tri in combinations(range(len(bars)), 3):
        idx = list(tri)
        if (u[idx[2]] - u[idx[0]]) < 0.15:
            continue
        m = _fit_a(u[idx], a_all[idx], projective=projective)
        if m is None:
            continue
        thr = max(0.5, 0.3 * abs(m[0] - m[2] * m[1]) / n_bars)  # a third of this model's pitch (at u = 0)
        r = np.abs((m[0] * u + m[1]) / (m[2] * u + 1) - a_all)
        inl = r < thr
        cost = float(np.minimum(r / thr, 1.0).sum())  # MSAC: inliers by how well they fit, outliers a flat price
        if cost < best_cost:
            best_in, best_cost = inl, cost
    keep = best_in if best_in.sum() >= 3 else np.ones(len(bars), bool)
    spread = bars[keep].max() - bars[keep].min()
    proj = projective and keep.sum() >= 6 and spread >= n_bars / 2
    m = _fit_a(u[keep], a_all[keep], w[keep], projective=proj) or _fit_a(u[keep], a_all[keep], w[keep], False)
    alpha, beta, c = m
    res = float(np.sqrt(np.mean(((alpha * u + beta) / (c * u + 1) - a_all)[keep] ** 2)))
    g, d = _theil_sen(a_all[keep], e_all[keep])  # across = g + d * along
    row = _LineMap(o + g * across, along + d * across, alpha, beta, c)
    return row, [int(b) for b in bars[keep]], res, proj


def recentre(row: _LineMap, ends: np.ndarray, axes: np.ndarray, n_bars: int) -> _LineMap:
    """The row line through the bars' middles: each bar's point slides along the bar's own axis to halfway
    between its measured ends (where along a bar the mallets landed no longer matters), then the row is refitted.
    """
    both = np.all(np.isfinite(ends), axis=1)
    if both.sum() < 4:
        return row
    u = (np.arange(n_bars) + 0.5) / n_bars
    mids = row(u) + axes * ((ends[:, 1] + ends[:, 0]) / 2)[:, None]
    points = {int(j): (float(mids[j, 0]), float(mids[j, 1]), 10.0) for j in np.flatnonzero(both)}
    return fit_row(points, n_bars)[0]


def bar_axes(bg: np.ndarray, row: _LineMap, n_bars: int) -> np.ndarray:
    """(n_bars, 2) unit vectors along each bar's length, oriented 'down' (clockwise from the row direction).

    A line along a bar's true axis stays on the bar: sampled every pitch
    around it, the component with the bar pitch (in phase with the bars)
    keeps one sign all along, while a tilted line drifts over bars and gaps
    and averages out. So each bar's axis is the direction (within 35 degrees
    of the row's perpendicular) that maximises that component over a stretch
    of the bar; the angles are then fitted linearly across the row (robust),
    as perspective turns them smoothly. The table's own texture (planks,
    grain) is not in phase with the bars and does not pull the axis.
    """
    u = (np.arange(n_bars) + 0.5) / n_bars
    d = row.derivative(u)
    along = d / np.linalg.norm(d, axis=1, keepdims=True)
    perp = np.stack([-along[:, 1], along[:, 0]], axis=1)  # clockwise in image coordinates (y down)
    length = float(np.linalg.norm(row(1.0) - row(0.0)))
    t = np.linspace(-0.08, 0.08, 9) * length
    k = np.arange(-8, 9) / 8.0
    wave = np.cos(np.pi * k / 2) ** 2 * np.cos(2 * np.pi * k)
    thetas = np.deg2rad(np.arange(-35.0, 35.1, 2.5))
    ang, wts = np.zeros(n_bars), np.zeros(n_bars)
    for j in range(n_bars):
        base = row(u[j] + k / n_bars)  # (17, 2)
        scores = []
        for th in thetas:
            c, s_ = math.cos(th), math.sin(th)
            axis = np.array([c * perp[j, 0] - s_ * perp[j, 1], s_ * perp[j, 0] + c * perp[j, 1]])
            pts = base[None, :, :] + t[:, None, None] * axis
            f = _bilinear(bg, pts[..., 0], pts[..., 1])
            scores.append(abs(float(((f - f.mean(axis=1, keepdims=True)) @ wave).mean())))
        scores = np.asarray(scores)
        i = int(np.argmax(scores))
        off = 0.0
        if 0 < i < len(thetas) - 1:  # parabola through the peak and its neighbours
            a_, b_, c_ = scores[i - 1], scores[i], scores[i + 1]
            den = a_ - 2 * b_ + c_
            off = 0.5 * (a_ - c_) / den if den < 0 else 0.0
        ang[j] = thetas[i] + off * (thetas[1] - thetas[0])
        wts[j] = scores[i] - np.median(scores)
    good = wts > 0.25 * max(float(wts.max()), 1e-9)
    if good.sum() >= 4:
        a, b = _theil_sen(u[good], ang[good])
        rel = a + b * u
    else:
        rel = np.zeros(n_bars)
    c, s = np.cos(rel), np.sin(rel)
    return np.stack([c * perp[:, 0] - s * perp[:, 1], s * perp[:, 0] + c * perp[:, 1]], axis=1)


def bar_ends(bg: np.ndarray, row: _LineMap, axes: np.ndarray, n_bars: int) -> np.ndarray:
    """(n_bars, 2) signed distance in pixels along each bar's axis from the row line to its top (negative)
    and bottom end; nan where the bar can't be told from its surroundings.

    Bars alternate with gaps at exactly the bar pitch, so along any line
    parallel to the row (the row line moved along the bars' axes) the bars
    show as a component with period 1/n in u, in phase with the bar centres
    (perspective does not change a period measured in u). Its strength in a
    window of two pitches around bar j, as a function of the distance t along
    the bar's axis, is high on the bar and falls at its ends. This needs
    contrast between bars and gaps only, not between bars and table, and a
    patterned table is not in phase with the bars.
    """
    u_c = (np.arange(n_bars) + 0.5) / n_bars
    length = float(np.linalg.norm(row(1.0) - row(0.0)))
    step = 0.5
    t = np.arange(-0.6 * length, 0.6 * length + step / 2, step)
    k = np.arange(-8, 9) / 8.0  # offsets in pitches: two pitches, 8 samples each
    hann = np.cos(np.pi * k / 2) ** 2
    wave = hann * np.cos(2 * np.pi * k)  # bar centres at whole pitches
    out = np.full((n_bars, 2), np.nan)
    gap = max(2, int(round(0.06 * length / step)))  # bridges mounting pins, cords, a resting mallet
    for j in range(n_bars):
        u = u_c[j] + k / n_bars
        base = row(u)  # (17, 2)
        ax = np.stack([np.interp(u, u_c, axes[:, 0]), np.interp(u, u_c, axes[:, 1])], axis=1)
        ax /= np.linalg.norm(ax, axis=1, keepdims=True)
        pts = base[None, :, :] + t[:, None, None] * ax[None, :, :]  # (T, 17, 2)
        f = _bilinear(bg, pts[..., 0], pts[..., 1])
        c = (f - f.mean(axis=1, keepdims=True)) @ wave
        centre = np.abs(t) < 0.04 * length
        polarity = np.sign(np.median(c[centre])) or 1.0
        c = c * polarity
        peak = float(np.percentile(c[np.abs(t) < 0.15 * length], 90))
        floor = 5.0 * float(np.std(c[np.abs(t) > 0.45 * length]))  # what the table alone gives
        if peak < max(4.0, floor):  # grey levels: no bars to be seen here
            continue
        # A fifth of the peak, not half: light falls off along a bar (specular metal, a lamp's gradient)
        # while past its end the component drops to the table's noise.
        level = max(0.2 * peak, floor)
        bar = c > level
        idx = np.flatnonzero(bar)
        if len(idx) < 2:
            continue
        for a_, b_ in zip(idx[:-1], idx[1:]):
            if 1 < b_ - a_ <= gap:
                bar[a_:b_] = True
        edges = np.flatnonzero(np.diff(np.r_[0, bar.astype(np.int8), 0]))
        starts, stops = edges[::2], edges[1::2] - 1
        i0 = int(np.argmin(np.abs(t)))
        hit = np.flatnonzero((starts <= i0 + gap) & (stops >= i0 - gap))
        if not len(hit):
            continue
        s0, s1 = int(starts[hit[0]]), int(stops[hit[-1]])
        if s0 == 0 or s1 == len(t) - 1 or (s1 - s0) * step < 0.05 * length:
            continue
        out[j] = _crossing(t, c, level, s0 - 1, s0), _crossing(t, c, level, s1 + 1, s1)
    return out


def _crossing(t: np.ndarray, prof: np.ndarray, level: float, i_out: int, i_in: int) -> float:
    """Where the profile crosses ``level`` between samples i_out and i_in (linear interpolation)."""
    a, b = prof[i_out] - level, prof[i_in] - level
    f = a / (a - b) if a != b else 0.5
    return float(t[i_out] + f * (t[i_in] - t[i_out]))


def refine_along(bg: np.ndarray, row: _LineMap, axes: np.ndarray, ends: np.ndarray, n_bars: int
                 ) -> dict[int, tuple[float, float, float]]:
    """Each bar's centre along the row from the background: the symmetry centre of the profile across it.

    The strikes say which bar is where to within a fraction of a pitch (a
    shaft or the point of impact may pull them aside); the bar itself, a
    symmetric strip between gaps, fixes its centre. Of the candidate symmetry
    centres (bar middles and gap middles alternate) the one that looks like
    bar, not table, is taken. Bars whose profile is unclear keep their row point.
    """
    u = (np.arange(n_bars) + 0.5) / n_bars
    centres, d = row(u), row.derivative(u)
    along = d / np.linalg.norm(d, axis=1, keepdims=True)
    pitch = np.linalg.norm(d, axis=1) / n_bars
    length = float(np.linalg.norm(row(1.0) - row(0.0)))
    # Bars brighter or darker than the gaps between them? The row line is mostly bar, far off it is table.
    on_row = _bilinear(bg, *row(np.linspace(0.02, 0.98, 200)).T)
    off = np.concatenate([_bilinear(bg, *(centres + sign * 0.45 * length * axes).T) for sign in (-1, 1)])
    polarity = 1.0 if np.median(on_row) >= np.median(off) else -1.0
    out: dict[int, tuple[float, float, float]] = {}
    for j in range(n_bars):
        if np.all(np.isfinite(ends[j])):
            mid, half = (ends[j, 0] + ends[j, 1]) / 2, (ends[j, 1] - ends[j, 0]) / 2
            band = mid + np.linspace(-0.6, 0.6, 9) * half
        else:
            band = np.linspace(-0.04, 0.04, 9) * length
        step = max(0.1, pitch[j] / 40)
        xs = np.arange(-1.2 * pitch[j], 1.2 * pitch[j] + step / 2, step)
        pts = centres[j][None, None, :] + band[:, None, None] * axes[j] + xs[None, :, None] * along[j]
        prof = _bilinear(bg, pts[..., 0], pts[..., 1]).mean(axis=0)
        table = float(np.percentile(prof, 10)), float(np.percentile(prof, 90))
        n_half = int(round(0.7 * pitch[j] / step))
        best, best_cost = None, np.inf
        for k in range(n_half, len(xs) - n_half):
            if abs(xs[k]) > 0.45 * pitch[j]:
                continue
            left, right = prof[k - n_half: k][::-1], prof[k + 1: k + 1 + n_half]
            cost = float(np.mean(np.abs(left - right)))
            # bar-like: the centre is on the bars' side of halfway between bar and gap levels
            lo, hi = table
            if (prof[k] - (lo + hi) / 2) * polarity <= 0 or hi - lo < 10.0:
                continue
            if cost < best_cost:
                best, best_cost = xs[k], cost
        if best is None:
            continue
        p = centres[j] + best * along[j]
        out[j] = (float(p[0]), float(p[1]), 10.0)
    return out


def _disagreement(row: _LineMap, points: dict[int, tuple[float, float, float]], n_bars: int,
                  rms_px: bool = False) -> float:
    """How far along the row the strikes' bar positions lie from ``row``'s bars: median in pitches,
    or (``rms_px``) the RMS in pixels (the reported residual)."""
    seen = np.array(sorted(points))
    u = (seen + 0.5) / n_bars
    d = row.derivative(u)
    norm = np.linalg.norm(d, axis=1)
    off = np.sum((np.array([points[b][:2] for b in seen]) - row(u)) * d / norm[:, None], axis=1)
    if rms_px:
        return float(np.sqrt(np.mean(off ** 2)))
    return float(np.median(np.abs(off) / (norm / n_bars)))


def _corners(ref: _LineMap, axes: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """TL, TR, BR, BL from a reference line, the bars' axes and the box's offsets from the line."""
    n = len(axes)
    u = (np.arange(n) + 0.5) / n
    ends_u = np.array([0.0, 1.0])
    p, s = ref(ends_u), np.linalg.norm(ref.derivative(ends_u), axis=1)
    # bar axis at the row ends: extrapolate the per-bar axes linearly in u
    ax = np.stack([np.polyval(np.polyfit(u, axes[:, k], 1), ends_u) for k in (0, 1)], axis=1)
    ax /= np.linalg.norm(ax, axis=1, keepdims=True)
    return np.array([p[0] + ax[0] * top * s[0], p[1] + ax[1] * top * s[1],
                     p[1] + ax[1] * bottom * s[1], p[0] + ax[0] * bottom * s[0]])


def box_corners(row: _LineMap, axes: np.ndarray, ends: np.ndarray, n_bars: int, notes: np.ndarray | None,
                frame_size: Sequence[int]) -> tuple[np.ndarray, str]:
    """The bar-row box's corners from the bars' ends, and which line of the bars it was built on.

    The box's top and bottom are lines of the world across the bars. Which
    line of the instrument runs that way: the bars' middles (bars centred on
    one line, as on most marimbas), their tops or their bottoms (a row
    aligned at one end)? From each candidate line, each bar's ends are
    offsets; across bars they are fitted (Theil-Sen) as a + b g, g the bar
    length law 2^(-semitones/24) (bars shorten as 1/sqrt(f)), and the most
    extreme fitted end on each side is the box's edge (the longest bar's
    ends). The line that meets the bars squarest (median angle to the bars'
    normals; perspective leans bars both ways) is taken, but the middles
    unless another is clearly squarer: centred rows are the rule and
    perspective tilts every line a few degrees. (Tried and dropped: the
    pinhole constraint r1 . r2 = 0 over plausible focal lengths chose worse
    on the looks renderer's held-out families.)
    """
    u = (np.arange(n_bars) + 0.5) / n_bars
    both = np.all(np.isfinite(ends), axis=1)
    if both.sum() < max(4, n_bars // 3):
        # ends unreadable: the synthetic instrument's proportion (longest bar half the row width)
        return _corners(row, axes, -DEFAULT_HALF_HEIGHT, DEFAULT_HALF_HEIGHT), "default proportion"
    semis = (notes - notes[0]) if notes is not None else np.arange(n_bars) * 12 / 7  # diatonic on average
    g = 2.0 ** (-semis / 24.0)
    base = row(u)
    lines = {"middles": base + axes * ((ends[:, 0] + ends[:, 1]) / 2)[:, None],
             "tops": base + axes * ends[:, [0]], "bottoms": base + axes * ends[:, [1]]}
    boxes: dict[str, tuple[float, np.ndarray]] = {}
    for name, pts in lines.items():
        cand = {int(j): (float(pts[j, 0]), float(pts[j, 1]), 10.0) for j in np.flatnonzero(both)}
        ref = fit_row(cand, n_bars, row.D / np.linalg.norm(row.D))[0]
        scale = np.linalg.norm(ref.derivative(u), axis=1)
        offs = []
        for side in (0, 1):
            o = np.sum((base + axes * ends[:, [side]] - ref(u)) * axes, axis=1) / scale
            a, b = _theil_sen(g[both], o[both])
            fitted = a + b * g
            offs.append(float(fitted.min() if side == 0 else fitted.max()))
        d = ref.derivative(u)
        normal = np.stack([-axes[:, 1], axes[:, 0]], axis=1)  # perpendicular to each bar
        ang = np.arctan2(d[:, 0] * normal[:, 1] - d[:, 1] * normal[:, 0], np.sum(d * normal, axis=1))
        tilt = abs(float(np.median(np.rad2deg((ang[both] + np.pi / 2) % np.pi - np.pi / 2))))
        boxes[name] = (tilt, _corners(ref, axes, offs[0], offs[1]))
    name = min(boxes, key=lambda k: boxes[k][0])
    if name != "middles" and not boxes[name][0] < min(0.5 * boxes["middles"][0],
                                                       boxes["middles"][0] - END_ALIGNED_MARGIN_DEG):
        name = "middles"
    return boxes[name][1], f"bar ends (box from the bars' {name})"


def auto_calibrate(frames: np.ndarray, onsets: Sequence[tuple[float, int]], frame_times: Sequence[float],
                   n_bars: int = 18, notes: Sequence[int] | None = None, what: str = "the recording",
                   detail: bool = False) -> Calibration | Detection:
    """Corners of the bar-row box from frames (N, H, W) uint8 and audio onsets [(t_seconds, bar_index)].

    ``notes`` (MIDI per bar) lets the bar-length fit use pitch (bars shorten
    with pitch); ``what`` names the recording in messages; ``detail=True``
    returns a ``Detection`` (bar points, inliers, residual) instead.
    """
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames.mean(axis=3).astype(np.uint8)
    if frames.ndim != 3 or len(frames) < 3:
        raise SaySeeError(f"{what}: too few frames to calibrate from ({len(frames)})")
    struck = sorted({int(b) for _, b in onsets if 0 <= int(b) < n_bars})
    need = f"at least {MIN_BARS} different bars spread over a third of the row are needed; {HINT}"
    if len(struck) < MIN_BARS or struck[-1] - struck[0] < n_bars / 3:
        raise SaySeeError(f"{what}: only {len(struck)} bars were struck"
                          f"{' (' + ', '.join(str(b + 1) for b in struck) + ')' if struck else ''}; {need}")
    bg = background(frames)
    candidates, n_strikes = strike_candidates(frames, onsets, np.asarray(frame_times, dtype=np.float64), bg, n_bars)
    along = row_direction(bg, candidates) if candidates else np.array([1.0, 0.0])
    points, along = vote_bars(candidates, along, n_bars) if candidates else ({}, along)
    found = sorted(points)
    if len(found) < MIN_BARS or found[-1] - found[0] < n_bars / 3:
        raise SaySeeError(f"{what}: no clear motion where {len(struck) - len(found)} of the {len(struck)} struck "
                          f"bars were played (mallets seen at only {len(found)} bars); is the camera on the "
                          f"instrument? {HINT}")
    row, inliers, residual, projective = fit_row(points, n_bars, along)
    for _ in range(2):  # the strikes fix the row along; the bar ends fix it across
        axes = bar_axes(bg, row, n_bars)
        ends = bar_ends(bg, row, axes, n_bars)
        moved = recentre(row, ends, axes, n_bars)
        if _disagreement(moved, points, n_bars) <= max(0.25, _disagreement(row, points, n_bars)):
            row = moved
    for _ in range(2):  # then the bars themselves fix it along, where they agree with the strikes
        refined = refine_along(bg, row, axes, ends, n_bars)
        if len(refined) < max(MIN_BARS, n_bars // 2):
            break
        better = fit_row(refined, n_bars)[0]
        if _disagreement(better, points, n_bars) > 0.3:
            break  # the background's bars are not the struck ones (a frame, extra bars, low contrast)
        row = better
        axes = bar_axes(bg, row, n_bars)
        ends = bar_ends(bg, row, axes, n_bars)
    axes = bar_axes(bg, row, n_bars)
    ends = bar_ends(bg, row, axes, n_bars)
    residual = _disagreement(row, points, n_bars, rms_px=True)
    x = np.asarray(notes, dtype=np.float64)[:n_bars] if notes is not None and len(notes) >= n_bars else None
    H, W = frames.shape[1:3]
    (tl, tr, br, bl), height_source = box_corners(row, axes, ends, n_bars, x, (H, W))
    try:
        cal = Calibration.from_pixels([tl, tr, br, bl], (H, W), source="auto", residual_px=residual)
    except ValueError as e:
        raise SaySeeError(f"{what}: the bars found do not form a row ({e}); {HINT}") from None
    if not detail:
        return cal
    return Detection(cal, {b: points[b][:2] for b in points}, inliers, residual, projective, height_source, bg,
                     n_strikes)
