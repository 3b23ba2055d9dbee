"""Continuous mappings from the sound embedding to LED colour and synth CC values (issue 13, section 2).

Pure numpy, no I/O. Two kinds, one interface, ``predict(embedding) -> Outputs``:

- ``DefaultMapping`` (zero configuration): the unit embedding projected onto three directions,
  the principal components of the training sounds' embeddings when the model's metadata carries
  them (``mapping_projection``, written by ``training/mapping_projection.py``), else a fixed random
  orthonormal projection. The first two components give the hue (their angle) and saturation
  (their radius), all three give the CC values: sounds close in the embedding get close colours
  and controls.
- ``TaughtMapping`` (by demonstration, ``python -m device map-teach``): a small regression from the
  embedding to the demonstrated outputs, fitted from the demonstration windows in milliseconds.
  Two regressors are implemented and measured (``bench/mapping.py``, leave-one-take-out on held-out
  families):
  ``knn`` (the default): the ``k`` nearest demonstration windows with inverse-distance (Shepard)
  weights, so a sound between two demonstrations gets outputs between theirs;
  ``krr``: kernel ridge regression, Gaussian kernel on the unit embeddings
  (``exp(-cosine distance / tau)``, the Euclidean RBF for unit vectors, so positive definite), offset
  by the mean target. Measured, ``knn`` wins clearly (tune families: colour error 5 vs 23 of 255 at
  each one's best parameters, CC error 4 vs 12 of 127) and jitters less on a steady sound: a held-out
  take lies 0.1-0.2 (cosine) from the other takes of its sound, where the kernel has fallen to
  exp(-0.5)..exp(-2), and ridge regression then pulls the output towards the mean of all targets,
  whereas the normalised k-NN weights never shrink. ``k = 4`` rather than the tune split's best
  ``k = 1`` (2.6 vs 5.4 of 255): a 1-NN mapping jumps between demonstrations instead of interpolating.

Targets are "outputs": ``rgb`` (3 values) and ``cc<N>`` (one value each), every one scaled to
0..1 inside the regression (CC / 127), so colour and CC errors weigh alike.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device.errors import SaySeeError

METHODS = ("krr", "knn")
DEFAULT_METHOD = "knn"
# Chosen on the tune families of bench/mapping.py (leave-one-take-out); recorded in every mapping.json.
KRR_TAU = 0.4  # kernel width in cosine distance (the best of 0.05..0.4; narrower ones shrink to the mean more)
KRR_LAMBDA = 0.01  # ridge: many near-identical windows per take must not be fitted exactly
KNN_K = 4
KNN_POWER = 2.0
_EPS = 1e-3
PROJECTION_KEY = "mapping_projection"  # the model metadata key written by training/mapping_projection.py
RANDOM_PROJECTION_SEED = 13  # the fallback projection is fixed: the same sound gets the same colour on every box
CC_NUMBERS = range(120)  # 120..127 are channel mode messages (all sound off, reset...), not controls
_CC_NAME = re.compile(r"^cc(\d+)$")


class MappingError(SaySeeError):
    """A demonstration or stored mapping that can't be used (one line naming it)."""


@dataclass(frozen=True)
class Outputs:
    """What a mapping asks for on one hop: LED colour (0..1 RGB or None), CC values (0..127 floats),
    and the cosine distance to the nearest demonstration (None for the default mapping)."""

    colour: tuple[float, float, float] | None
    cc: dict[int, float] = field(default_factory=dict)
    nearest: float | None = None


# ------------------------------------------------------------------ output names <-> target vectors


def output_columns(names: Sequence[str]) -> list[tuple[str, int]]:
    """("rgb", 0..2) and ("ccN", 0) for each column of the target matrix, in ``names`` order."""
    cols: list[tuple[str, int]] = []
    for n in names:
        if n == "rgb":
            cols += [("rgb", i) for i in range(3)]
        elif _CC_NAME.match(n) and int(n[2:]) in CC_NUMBERS:
            cols.append((n, 0))
        else:
            raise MappingError(f"unknown output {n!r} (expected rgb or cc0..cc119)")
    return cols


def encode(names: Sequence[str], outputs: Mapping[str, Any]) -> np.ndarray:
    """One example's outputs ({"rgb": (r, g, b) 0..1, "cc74": 0..127}) as a 0..1 target row."""
    row = []
    for n in names:
        v = outputs[n]
        row += [float(c) for c in v] if n == "rgb" else [float(v) / 127.0]
    return np.asarray(row, np.float64)


def decode(names: Sequence[str], row: np.ndarray, nearest: float | None = None) -> Outputs:
    """A 0..1 prediction row -> Outputs (clipped to the valid ranges)."""
    y = np.clip(np.asarray(row, np.float64), 0.0, 1.0)
    colour, cc, i = None, {}, 0
    for n in names:
        if n == "rgb":
            colour = (float(y[i]), float(y[i + 1]), float(y[i + 2]))
            i += 3
        else:
            cc[int(n[2:])] = float(y[i]) * 127.0
            i += 1
    return Outputs(colour, cc, nearest)


# ------------------------------------------------------------------ regressors


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


class KernelRidge:
    """Kernel ridge regression with k(a, b) = exp(-(1 - a.b) / tau) on unit vectors, mean-offset."""

    method = "krr"

    def __init__(self, tau: float = KRR_TAU, lam: float = KRR_LAMBDA):
        self.tau, self.lam = float(tau), float(lam)

    def fit(self, x: np.ndarray, y: np.ndarray) -> KernelRidge:
        self.x = _unit_rows(x)
        y = np.asarray(y, np.float64)
        self.mean = y.mean(axis=0)
        k = np.exp(-(1.0 - self.x @ self.x.T) / self.tau)
        self.alpha = np.linalg.solve(k + self.lam * np.eye(len(k)), y - self.mean)
        return self

    def predict(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predictions n x outputs, nearest cosine distance n) for one embedding or n of them."""
        d = 1.0 - _unit_rows(e) @ self.x.T
        return self.mean + np.exp(-d / self.tau) @ self.alpha, d.min(axis=1)

    @property
    def params(self) -> dict[str, float]:
        return {"tau": self.tau, "lambda": self.lam}


class NearestNeighbours:
    """The ``k`` nearest rows, weighted 1 / (distance + eps)^power (Shepard interpolation)."""

    method = "knn"

    def __init__(self, k: int = KNN_K, power: float = KNN_POWER):
        self.k, self.power = int(k), float(power)

    def fit(self, x: np.ndarray, y: np.ndarray) -> NearestNeighbours:
        self.x, self.y = _unit_rows(x), np.asarray(y, np.float64)
        return self

    def predict(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.maximum(1.0 - _unit_rows(e) @ self.x.T, 0.0)
        k = min(self.k, d.shape[1])
        if len(d) == 1:  # the box's case, one window a hop: plain vector work, no batched gather
            idx = np.argpartition(d[0], k - 1)[:k]
            w = 1.0 / (d[0, idx] + _EPS) ** self.power
            return (w @ self.y[idx] / w.sum())[None], d[0, idx].min(keepdims=True)
        idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        dk = np.take_along_axis(d, idx, axis=1)
        w = 1.0 / (dk + _EPS) ** self.power
        pred = np.einsum("nk,nko->no", w, self.y[idx]) / w.sum(axis=1, keepdims=True)
        return pred, dk.min(axis=1)

    @property
    def params(self) -> dict[str, float]:
        return {"k": self.k, "power": self.power}


def regressor(method: str = DEFAULT_METHOD, params: Mapping[str, float] | None = None):
    """A fresh regressor of ``method`` with ``params`` (as recorded in mapping.json) or the defaults."""
    p = dict(params or {})
    if method == "krr":
        return KernelRidge(p.get("tau", KRR_TAU), p.get("lambda", KRR_LAMBDA))
    if method == "knn":
        return NearestNeighbours(int(p.get("k", KNN_K)), p.get("power", KNN_POWER))
    raise MappingError(f"unknown mapping method {method!r} (expected one of: {', '.join(METHODS)})")


class TaughtMapping:
    """A mapping taught by demonstration: ``rows`` (window embeddings) -> ``targets`` (0..1 per output)."""

    def __init__(self, names: Sequence[str], rows: np.ndarray, targets: np.ndarray,
                 method: str = DEFAULT_METHOD, params: Mapping[str, float] | None = None):
        self.names = list(names)
        output_columns(self.names)
        self.model = regressor(method, params).fit(rows, targets)
        self.has_colour = "rgb" in self.names

    def predict(self, embedding: np.ndarray) -> Outputs:
        y, d = self.model.predict(embedding)
        return decode(self.names, y[0], float(d[0]))


# ------------------------------------------------------------------ the default mapping


def random_projection(dim: int) -> dict[str, Any]:
    """The fallback: a fixed random orthonormal 3-D projection, scaled so a random unit vector gives ~unit spread."""
    q, _ = np.linalg.qr(np.random.default_rng(RANDOM_PROJECTION_SEED).normal(size=(dim, 3)))
    return {"mean": [0.0] * dim, "components": q.T.tolist(), "scale": [1.0 / np.sqrt(dim)] * 3,
            "source": f"random orthonormal (seed {RANDOM_PROJECTION_SEED})"}


def projection_from_metadata(meta: Mapping[str, Any], dim: int, version: str | None) -> tuple[dict[str, Any], str]:
    """(projection, why): the metadata's PCA when it fits this embedding, else the random one and the reason."""
    p = meta.get(PROJECTION_KEY)
    if not isinstance(p, dict):
        return random_projection(dim), "the model metadata has no mapping_projection"
    if p.get("embedding_version") != version:
        return random_projection(dim), (f"mapping_projection is for embedding {p.get('embedding_version')}, "
                                        f"the model's is {version}")
    try:
        c, m, s = np.asarray(p["components"], float), np.asarray(p["mean"], float), np.asarray(p["scale"], float)
        ok = c.shape == (3, dim) and m.shape == (dim,) and s.shape == (3,) and np.all(s > 0) \
            and np.all(np.isfinite(c)) and np.all(np.isfinite(m))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        return random_projection(dim), f"mapping_projection is not 3 x {dim} components with mean and scale"
    return p, f"PCA of {p.get('source', 'the training sounds')}"


class DefaultMapping:
    """Embedding -> 3 projected coordinates -> hue/saturation and up to 3 CC values (see module doc)."""

    def __init__(self, projection: Mapping[str, Any], cc: Sequence[int] = ()):
        self.components = np.asarray(projection["components"], np.float64)
        self.mean = np.asarray(projection["mean"], np.float64)
        self.scale = np.asarray(projection["scale"], np.float64)
        self.source = str(projection.get("source", ""))
        if len(cc) > 3:
            raise MappingError(f"the default mapping drives at most 3 CC numbers, not {len(cc)}")
        self.cc = [int(n) for n in cc]
        self.has_colour = True

    def coordinates(self, embedding: np.ndarray) -> np.ndarray:
        """Standardised projected coordinates (about unit spread over the training sounds), n x 3."""
        return (_unit_rows(embedding) - self.mean) @ self.components.T / self.scale

    def predict(self, embedding: np.ndarray) -> Outputs:
        z = self.coordinates(embedding)[0]
        hue = (np.arctan2(z[1], z[0]) / (2 * np.pi)) % 1.0
        sat = float(np.tanh(np.hypot(z[0], z[1])))
        colour = colorsys.hsv_to_rgb(hue, 0.2 + 0.8 * sat, 1.0)
        cc = {n: float(127.0 * (0.5 + 0.5 * np.tanh(z[i] / 1.5))) for i, n in enumerate(self.cc)}
        return Outputs((float(colour[0]), float(colour[1]), float(colour[2])), cc, None)


# ------------------------------------------------------------------ measuring a taught mapping


def leave_one_take_out(rows: np.ndarray, row_take: np.ndarray, targets: np.ndarray, names: Sequence[str],
                       method: str = DEFAULT_METHOD, params: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each take held out in turn (all its windows), fitted on the rest, predicted window by window.

    Returns the mean absolute error per kind of output in its own units: ``rgb`` in 0..255 steps
    (mean over the three channels), ``cc`` in 0..127 steps (mean over the CC outputs), and the share of
    held-out windows whose predicted target lies nearest the right example's (``nearest_ok``).
    """
    rows, row_take, targets = np.asarray(rows), np.asarray(row_take), np.asarray(targets, np.float64)
    cols = output_columns(names)
    is_rgb = np.array([c[0] == "rgb" for c in cols])
    uniq = np.unique(targets, axis=0)
    err, ok = [], []
    for t in np.unique(row_take):
        held = row_take == t
        if np.all(held):
            continue
        pred, _ = regressor(method, params).fit(rows[~held], targets[~held]).predict(rows[held])
        pred = np.clip(pred, 0.0, 1.0)
        err.append(np.abs(pred - targets[held]))
        nearest = np.argmin(((pred[:, None, :] - uniq[None]) ** 2).sum(-1), axis=1)
        truth = np.argmin(((targets[held][:, None, :] - uniq[None]) ** 2).sum(-1), axis=1)
        ok.append(nearest == truth)
    e = np.concatenate(err)
    out = {"windows": len(e), "nearest_ok": float(np.concatenate(ok).mean())}
    if is_rgb.any():
        out["rgb"] = float(e[:, is_rgb].mean() * 255.0)
    if (~is_rgb).any():
        out["cc"] = float(e[:, ~is_rgb].mean() * 127.0)
    return out
