"""Rectify camera frames to a canonical view of the bar row (pure numpy, cheap per frame).

The model never sees the camera frame itself: every frame is warped by a
homography so that the row of 18 bars lands on the same pixels whatever the
camera pose, resolution or instrument. Three pieces:

- ``Canonical``: the model's view, as fractions (u across, v down) of the
  *bar-row box* — the rectangle spanned by the bar row, lowest note on the
  left: u = 0 at the left edge of the lowest bar's slot, u = 1 at the right
  edge of the highest; v = 0 / 1 at the two ends of the longest bar. The
  margins (u -0.016..1.016, v -0.07..1.07) are what the original fixed crop
  showed of the synthetic scene, so an uncalibrated box behaves as before.
- ``Calibration``: where the bar-row box's four corners are in a camera frame
  (fractions of width / height, so any resolution of the same aspect works),
  saved as JSON beside a recording or named in the config.
- ``Rectifier``: for one (calibration, frame size, canonical, output size)
  precomputes, per output pixel, a fixed number of source-pixel taps and
  weights; warping a frame is then one gather and one weighted sum.

Sampling: an output pixel covers a quadrilateral of the frame. When the view
is axis-aligned (the default calibration: a plain crop) the weights are the
exact area overlaps, so the default reproduces the original crop + area
resize. Otherwise each output pixel averages ss_r x ss_c bilinear samples,
with ss the number of source pixels the output pixel spans along each axis,
so downscaling averages rather than aliases.

Outside the frame: a sample that falls outside the camera frame reads
``FILL`` (mid-grey), not the frame's edge. Edge replication would copy
whatever moves at the border (a hand entering the picture) into a whole
stretched band, inventing motion where the model looks for strikes; a
constant grey is static, so it adds no motion, and the space-time
standardisation treats it like any flat background.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from device.atomic import write_atomic
from device.errors import SaySeeError
from device.jsonfile import read_json_object

FILL = 128.0  # grey level of the world outside the camera frame (see the module docstring)
MAX_SUPERSAMPLE = 8  # per axis; beyond this the cost grows with no visible gain
CALIBRATION_FORMAT = "saysee-marimba-calibration"
SOURCES = ("auto", "manual", "default")
ASPECT_TOLERANCE = 0.02  # relative; 160x96 and 320x192 are one aspect, 320x240 another
CALIBRATE_HINT = "run python -m device calibrate-marimba"


# ---------------------------------------------------------------- homography


def homography(src: Sequence[Sequence[float]], dst: Sequence[Sequence[float]]) -> np.ndarray:
    """3x3 H with dst ~ H @ src (homogeneous), from 4+ point pairs (normalised DLT, least squares).

    Hartley normalisation (centroid to 0, mean distance sqrt(2)) keeps the
    SVD well conditioned whether points are in pixels or fractions.
    """
    s = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if len(s) != len(d) or len(s) < 4:
        raise ValueError(f"homography needs 4 or more point pairs, got {len(s)} and {len(d)}")

    def norm(p: np.ndarray) -> np.ndarray:
        c = p.mean(axis=0)
        dist = np.sqrt(((p - c) ** 2).sum(axis=1)).mean()
        if dist <= 1e-12:
            raise ValueError("homography: the points coincide")
        k = math.sqrt(2.0) / dist
        return np.array([[k, 0, -k * c[0]], [0, k, -k * c[1]], [0, 0, 1.0]])

    Ts, Td = norm(s), norm(d)
    sh = (Ts @ np.c_[s, np.ones(len(s))].T).T
    dh = (Td @ np.c_[d, np.ones(len(d))].T).T
    rows = []
    for (x, y, _), (u, v, _) in zip(sh, dh):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, sv, vt = np.linalg.svd(np.asarray(rows))
    if len(sv) >= 8 and sv[7] <= 1e-10 * sv[0]:
        raise ValueError("homography: degenerate points (three or more on one line)")
    Hn = vt[-1].reshape(3, 3)
    H = np.linalg.inv(Td) @ Hn @ Ts
    if abs(H[2, 2]) < 1e-12:
        raise ValueError("homography: degenerate points")
    return H / H[2, 2]


def apply_homography(H: np.ndarray, points: Any) -> np.ndarray:
    """Map (..., 2) points through H; returns float64 (..., 2)."""
    p = np.asarray(points, dtype=np.float64)
    x = p[..., 0] * H[0, 0] + p[..., 1] * H[0, 1] + H[0, 2]
    y = p[..., 0] * H[1, 0] + p[..., 1] * H[1, 1] + H[1, 2]
    w = p[..., 0] * H[2, 0] + p[..., 1] * H[2, 1] + H[2, 2]
    return np.stack([x / w, y / w], axis=-1)


UNIT_SQUARE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))  # TL, TR, BR, BL in (u, v)


# ----------------------------------------------------------------- canonical


@dataclass(frozen=True)
class Canonical:
    """The model's view: the (u, v) range of the bar-row box it sees (serialised in the model metadata)."""

    u: tuple[float, float] = (-0.016, 1.016)
    v: tuple[float, float] = (-0.07, 1.07)

    def __post_init__(self) -> None:
        object.__setattr__(self, "u", tuple(float(x) for x in self.u))
        object.__setattr__(self, "v", tuple(float(x) for x in self.v))
        if len(self.u) != 2 or len(self.v) != 2 or not (self.u[0] < self.u[1] and self.v[0] < self.v[1]):
            raise ValueError(f"bad canonical view {self}: need u = (lo, hi) and v = (lo, hi) with lo < hi")

    def to_dict(self) -> dict[str, Any]:
        return {"u": list(self.u), "v": list(self.v)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Canonical":
        from device.frontend import dataclass_from_dict

        return dataclass_from_dict(cls, data)


# --------------------------------------------------------------- calibration


def _aspect_text(h: int, w: int) -> str:
    g = math.gcd(int(w), int(h)) or 1
    return f"{int(w) // g}:{int(h) // g}"


def same_aspect(a: Sequence[int], b: Sequence[int]) -> bool:
    """Two (h, w) sizes with the same width/height ratio (within ASPECT_TOLERANCE)."""
    ra, rb = a[1] / a[0], b[1] / b[0]
    return abs(ra - rb) <= ASPECT_TOLERANCE * rb


# How far (a fraction of the frame) a corner may lie outside it: an instrument a little out of view still
# plays; one whose box lies mostly off the frame is a typo in --corners or a damaged file.
CORNER_MARGIN = 0.25


def _quad_ok(corners: np.ndarray) -> str | None:
    """None if TL, TR, BR, BL form a convex quadrilateral turning one way, else why not."""
    cross = []
    for i in range(4):
        a, b, c = corners[i], corners[(i + 1) % 4], corners[(i + 2) % 4]
        cross.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    cross = np.asarray(cross)
    scale = max(float(np.ptp(corners[:, 0])), float(np.ptp(corners[:, 1])), 1e-12) ** 2
    if np.all(cross > 1e-6 * scale) or np.all(cross < -1e-6 * scale):
        return None
    return "the 4 corners do not form a convex quadrilateral in the order TL, TR, BR, BL"


@dataclass(frozen=True)
class Calibration:
    """Where the bar-row box is in the camera frame.

    ``corners``: 4 (x, y) points as fractions of the frame width / height, in
    the order top-left, top-right, bottom-right, bottom-left of the bar-row
    box with the LOWEST note on the left (so the order encodes which way the
    instrument faces). ``frame_size`` (h, w) is the frame it was measured on
    (only its aspect ratio matters later). ``source``: "auto" (found from a
    recording), "manual" (corners given by hand) or "default" (the model's
    nominal view). ``path`` (not saved, not compared) names the file it came
    from, for messages.
    """

    corners: tuple[tuple[float, float], ...]
    frame_size: tuple[int, int]
    source: str = "manual"
    residual_px: float | None = None
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.corners, dtype=np.float64)
        if c.shape != (4, 2) or not np.all(np.isfinite(c)):
            raise ValueError(f"corners must be 4 (x, y) pairs, got {np.asarray(self.corners).tolist()}")
        lo, hi = -CORNER_MARGIN, 1.0 + CORNER_MARGIN
        if np.any(c < lo) or np.any(c > hi):  # a box mostly off the frame: a box that hears nothing
            raise ValueError(f"corners {np.round(c, 3).tolist()} lie outside the camera frame (as fractions of "
                             f"its width and height they must be within {lo:g}..{hi:g})")
        object.__setattr__(self, "corners", tuple((float(x), float(y)) for x, y in c))
        fs = tuple(int(v) for v in self.frame_size)
        if len(fs) != 2 or min(fs) <= 0:
            raise ValueError(f"frame_size must be (height, width) > 0, got {list(self.frame_size)}")
        object.__setattr__(self, "frame_size", fs)
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.residual_px is not None:
            object.__setattr__(self, "residual_px", float(self.residual_px))
        why = _quad_ok(c * [fs[1], fs[0]])
        if why:
            raise ValueError(why)

    # -- construction

    @classmethod
    def from_pixels(cls, corners_px: Any, frame_size: Sequence[int], source: str = "manual",
                    residual_px: float | None = None) -> "Calibration":
        """From corner positions in pixels (continuous: pixel (i, j) covers [j, j+1) x [i, i+1))."""
        h, w = int(frame_size[0]), int(frame_size[1])
        c = np.asarray(corners_px, dtype=np.float64).reshape(4, 2) / [w, h]
        return cls(tuple(map(tuple, c)), (h, w), source, residual_px)

    @classmethod
    def default_for(cls, spec: Any) -> "Calibration":
        """The corners that make rectification reproduce ``spec``'s fixed crop exactly.

        The canonical view spans the crop (at the spec's frame size, in whole
        pixels as the crop always took), so the bar-row box is the canonical
        margins taken back out of it.
        """
        h, w = spec.frame_size
        r0, r1, c0, c1 = spec.crop.pixels(h, w)
        can: Canonical = getattr(spec, "canonical", None) or Canonical()
        (u0, u1), (v0, v1) = can.u, can.v
        x = lambda u: c0 + (u - u0) / (u1 - u0) * (c1 - c0)  # noqa: E731 - canonical u -> pixel x
        y = lambda v: r0 + (v - v0) / (v1 - v0) * (r1 - r0)  # noqa: E731
        px = [(x(0), y(0)), (x(1), y(0)), (x(1), y(1)), (x(0), y(1))]
        return cls.from_pixels(px, (h, w), source="default")

    # -- geometry

    def corners_px(self, frame_size: Sequence[int] | None = None) -> np.ndarray:
        """(4, 2) corners in pixels of a frame of ``frame_size`` (h, w) (default: the measured one)."""
        h, w = frame_size or self.frame_size
        return np.asarray(self.corners, dtype=np.float64) * [w, h]

    def box_to_frame(self, frame_size: Sequence[int] | None = None) -> np.ndarray:
        """H mapping bar-row box (u, v) to pixels of a frame of ``frame_size``."""
        return homography(UNIT_SQUARE, self.corners_px(frame_size))

    def bar_quads(self, n_bars: int, frame_size: Sequence[int] | None = None) -> np.ndarray:
        """(n_bars, 4, 2) each bar's slot (u j/n..(j+1)/n, v 0..1) in pixels (fractions if frame_size=(1, 1))."""
        H = self.box_to_frame(frame_size)
        j = np.arange(n_bars)[:, None]
        u = np.concatenate([j, j + 1, j + 1, j], axis=1) / n_bars
        v = np.broadcast_to(np.array([0.0, 0.0, 1.0, 1.0]), u.shape)
        return apply_homography(H, np.stack([u, v], axis=-1))

    def check_frame(self, frame_size: Sequence[int], what: str = "camera") -> None:
        """Refuse a frame whose aspect ratio differs from the one the corners were measured on."""
        h, w = int(frame_size[0]), int(frame_size[1])
        ch, cw = self.frame_size
        if same_aspect((h, w), (ch, cw)):
            return
        if self.source == "default":
            raise SaySeeError(f"{what} {w}x{h} is {_aspect_text(h, w)} but the model's frame {cw}x{ch} is "
                              f"{_aspect_text(ch, cw)}: {CALIBRATE_HINT}")
        name = self.path or "the calibration"
        raise SaySeeError(f"{what} {w}x{h} is {_aspect_text(h, w)} but {name} was measured on {cw}x{ch} "
                          f"({_aspect_text(ch, cw)}): calibrate at this size ({CALIBRATE_HINT})")

    # -- files

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": CALIBRATION_FORMAT, "version": 1,
                             "corners": [list(c) for c in self.corners], "order": "TL,TR,BR,BL (lowest note left)",
                             "units": "fractions of frame width, height", "frame_size": list(self.frame_size),
                             "source": self.source}
        if self.residual_px is not None:
            d["residual_px"] = round(self.residual_px, 4)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | None = None) -> "Calibration":
        d = dict(data)
        fmt = d.pop("format", CALIBRATION_FORMAT)
        if fmt != CALIBRATION_FORMAT:
            raise ValueError(f"format is {fmt!r}, expected {CALIBRATION_FORMAT!r}")
        for informative in ("version", "order", "units"):
            d.pop(informative, None)
        for key in ("corners", "frame_size"):
            if key not in d:
                raise ValueError(f"'{key}' missing")
        from device.frontend import dataclass_from_dict

        cal = dataclass_from_dict(cls, d)
        return dataclasses.replace(cal, path=path)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (a pulled plug leaves the old file or the new one)."""
        return write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read a calibration JSON; any problem is one SaySeeError line naming the file."""
        p = Path(path)
        if not p.is_file():
            raise SaySeeError(f"{p}: calibration file missing ({CALIBRATE_HINT} to make one)")
        data = read_json_object(p, SaySeeError, "calibration")
        try:
            return cls.from_dict(data, path=str(p))
        except (ValueError, TypeError) as e:
            raise SaySeeError(f"{p}: bad calibration ({e})") from None


# ----------------------------------------------------------------- rectifier


def _pack(pixel: np.ndarray, src: np.ndarray, weight: np.ndarray, n_out: int, n_src: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """Taps (output pixel, source index, weight), duplicates summed -> (n_out, K) index and weight arrays."""
    keep = weight > 1e-7
    key = pixel[keep].astype(np.int64) * n_src + src[keep]
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv.reshape(-1), weights=weight[keep], minlength=len(uniq))
    pix, idx = uniq // n_src, uniq % n_src
    first = np.searchsorted(pix, np.arange(n_out))
    rank = np.arange(len(uniq)) - first[pix]
    k = int(rank.max()) + 1 if len(uniq) else 1
    index = np.zeros((n_out, k), np.intp)
    weights = np.zeros((n_out, k), np.float32)
    index[pix, rank] = idx
    weights[pix, rank] = w
    return index, weights


def _area_1d(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """(len(lo), n) fraction of each interval [lo, hi) that falls on pixel cells [i, i+1)."""
    cells = np.arange(n)[None, :]
    ov = np.clip(np.minimum(hi[:, None], cells + 1) - np.maximum(lo[:, None], cells), 0.0, None)
    return ov / (hi - lo)[:, None]


class Rectifier:
    """Warps frames of one size to the canonical view: ``__call__(frame) -> (h, w) uint8``, ``batch(frames)``.

    Built once per (calibration, frame size, canonical, output size); see the
    module docstring for the sampling. ``frame_size`` (H, W) is the size of
    the frames it will be given; a frame of another aspect ratio than the
    calibration's is refused (``Calibration.check_frame``).
    """

    def __init__(self, calibration: Calibration, frame_size: Sequence[int], canonical: Canonical = Canonical(),
                 out_size: Sequence[int] = (48, 128), fill: float = FILL):
        H, W = int(frame_size[0]), int(frame_size[1])
        calibration.check_frame((H, W))
        self.calibration, self.canonical, self.fill = calibration, canonical, float(fill)
        self.frame_size, self.out_size = (H, W), (int(out_size[0]), int(out_size[1]))
        h, w = self.out_size
        (u0, u1), (v0, v1) = canonical.u, canonical.v
        # output pixel coordinates (continuous, x across, y down) -> box (u, v) -> frame pixels
        out_to_box = np.array([[(u1 - u0) / w, 0, u0], [0, (v1 - v0) / h, v0], [0, 0, 1.0]])
        self.H = calibration.box_to_frame((H, W)) @ out_to_box
        grid = np.stack(np.meshgrid(np.arange(w + 1.0), np.arange(h + 1.0)), axis=-1)
        corners = apply_homography(self.H, grid)  # (h+1, w+1, 2) output pixel corners in the frame
        self.axis_aligned = bool(np.abs(corners[:, :, 0] - corners[:1, :, 0]).max() < 1e-6
                                 and np.abs(corners[:, :, 1] - corners[:, :1, 1]).max() < 1e-6)
        if self.axis_aligned:
            self.supersample = (0, 0)  # exact area weights
            self.index, self.weights, outside = self._area_taps(corners)
        else:
            self.index, self.weights, outside = self._bilinear_taps(corners)
        self.bias = (self.fill * outside).astype(np.float32)
        self.outside_fraction = float(outside.mean())

    @property
    def taps(self) -> int:
        return int(self.index.shape[1])

    def _area_taps(self, corners: np.ndarray):
        H, W = self.frame_size
        h, w = self.out_size
        xs, ys = corners[0, :, 0], corners[:, 0, 1]
        ax = _area_1d(np.minimum(xs[:-1], xs[1:]), np.maximum(xs[:-1], xs[1:]), W)  # (w, W)
        ay = _area_1d(np.minimum(ys[:-1], ys[1:]), np.maximum(ys[:-1], ys[1:]), H)  # (h, H)
        r, i = np.nonzero(ay)
        c, j = np.nonzero(ax)
        # all (r, i) x (c, j) combinations: output pixel r*w+c reads source i*W+j
        pixel = (r[:, None] * w + c[None, :]).reshape(-1)
        src = (i[:, None] * W + j[None, :]).reshape(-1)
        weight = (ay[r, i][:, None] * ax[c, j][None, :]).reshape(-1)
        outside = 1.0 - np.outer(ay.sum(axis=1), ax.sum(axis=1)).reshape(-1)
        index, weights = _pack(pixel, src, weight, h * w, H * W)
        return index, weights, np.clip(outside, 0.0, 1.0)

    def _bilinear_taps(self, corners: np.ndarray):
        H, W = self.frame_size
        h, w = self.out_size
        # Source pixels spanned by one output pixel along each output axis -> samples per axis.
        span_c = np.hypot(*np.moveaxis(np.diff(corners, axis=1), -1, 0)).max()
        span_r = np.hypot(*np.moveaxis(np.diff(corners, axis=0), -1, 0)).max()
        ss_r = int(min(MAX_SUPERSAMPLE, max(1, math.ceil(span_r - 1e-6))))
        ss_c = int(min(MAX_SUPERSAMPLE, max(1, math.ceil(span_c - 1e-6))))
        self.supersample = (ss_r, ss_c)
        sub_r = (np.arange(ss_r) + 0.5) / ss_r
        sub_c = (np.arange(ss_c) + 0.5) / ss_c
        yy = (np.arange(h)[:, None] + sub_r[None, :]).reshape(-1)  # (h*ss_r,)
        xx = (np.arange(w)[:, None] + sub_c[None, :]).reshape(-1)
        pts = apply_homography(self.H, np.stack(np.meshgrid(xx, yy), axis=-1))  # (h*ss_r, w*ss_c, 2)
        pr = np.repeat(np.arange(h), ss_r)[:, None]
        pc = np.repeat(np.arange(w), ss_c)[None, :]
        pixel = np.broadcast_to(pr * w + pc, pts.shape[:2]).reshape(-1)
        x, y = pts[..., 0].reshape(-1), pts[..., 1].reshape(-1)
        inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        share = 1.0 / (ss_r * ss_c)
        outside = np.bincount(pixel, weights=(~inside) * share, minlength=h * w)
        # Bilinear between pixel centres (i + 0.5); inside the frame, the taps clamp to the edge pixels.
        fx, fy = x - 0.5, y - 0.5
        x0, y0 = np.floor(fx), np.floor(fy)
        ax, ay = fx - x0, fy - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        pix_l, src_l, w_l = [], [], []
        for dy, wy in ((0, 1 - ay), (1, ay)):
            for dx, wx in ((0, 1 - ax), (1, ax)):
                yi = np.clip(y0 + dy, 0, H - 1)
                xi = np.clip(x0 + dx, 0, W - 1)
                pix_l.append(pixel)
                src_l.append(yi * W + xi)
                w_l.append(wy * wx * share * inside)
        index, weights = _pack(np.concatenate(pix_l), np.concatenate(src_l), np.concatenate(w_l), h * w, H * W)
        return index, weights, outside

    # -- applying

    def _check(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != self.frame_size:
            raise ValueError(f"frame {shape[1]}x{shape[0]} given to a rectifier built for "
                             f"{self.frame_size[1]}x{self.frame_size[0]}")

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One frame (H, W) uint8 (or (H, W, 3)) -> the canonical view (h, w) uint8."""
        img = np.asarray(frame)
        weights = self.weights
        if img.ndim == 3:  # colour: the channel mean, as a sum (cheap in uint16) and weights / channels
            weights = self.weights / img.shape[2]
            acc = img[..., 0].astype(np.uint16 if img.dtype == np.uint8 else np.float32)
            for c in range(1, img.shape[2]):
                acc += img[..., c]  # channel by channel: much faster than a sum over the last axis
            img = acc
        self._check(img.shape)
        flat = img.reshape(-1)
        out = np.einsum("pk,pk->p", flat[self.index].astype(np.float32), weights) + self.bias
        return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(self.out_size)

    def batch(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W) -> (N, h, w) uint8, frame by frame (measured faster than one big gather, and flat memory)."""
        frames = np.asarray(frames)
        if len(frames) == 0:
            return np.zeros((0,) + self.out_size, np.uint8)
        out = np.empty((len(frames),) + self.out_size, np.uint8)
        for i, f in enumerate(frames):
            out[i] = self(f)
        return out

    def to_frame(self, uv: Any) -> np.ndarray:
        """Bar-row box (u, v) points -> pixels of this rectifier's frames (for drawing)."""
        return apply_homography(self.calibration.box_to_frame(self.frame_size), uv)
