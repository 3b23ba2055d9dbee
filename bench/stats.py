"""The one timing helper (``measure``) and the summaries every figure is reported with.

A *figure* is a plain dict, so it goes straight into results.json::

    {"label": ..., "unit": "ms", "median": ..., "min": ..., "max": ..., "n": ...}

plus "p95" for latency distributions and an optional "note". Every number in
a figure is positive and finite; tests/test_bench.py checks exactly that.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np


def _run(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], Any], repeats: int, min_time: float = 0.2, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn``, one value per repeat.

    Like ``timeit.autorange``: the number of calls per repeat is grown until one
    repeat takes at least ``min_time`` (sub-millisecond calls timed one at a time
    would mostly measure the timer), then ``repeats`` repeats of that many calls
    are timed. The calibration itself doubles as extra warm-up (caches, lazy
    initialisation, JIT tracing in Keras).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    number = 1
    while True:
        took = _run(fn, number)
        if took >= min_time or number >= 1 << 20:
            break
        # Aim a little past min_time so the next try usually succeeds.
        number = max(number * 2, int(math.ceil(number * 1.2 * min_time / max(took, 1e-9))))
    return [_run(fn, number) / number for _ in range(repeats)]


def figure(samples: Sequence[float], unit: str, label: str, scale: float = 1.0, percentiles: bool = False,
           note: str | None = None) -> dict[str, Any]:
    """Summarise samples (multiplied by ``scale``, e.g. 1000 for s -> ms) as a figure dict.

    ``percentiles`` adds p95 (and names the median p50 in the Markdown): used for
    latency distributions, where the tail matters; timing loops report the median
    and the min-max spread of their repeats.
    """
    x = np.asarray(samples, dtype=np.float64) * scale
    if x.size == 0:
        raise ValueError(f"{label}: no samples")
    out: dict[str, Any] = {"label": label, "unit": unit, "median": float(np.median(x)),
                           "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}
    if percentiles:
        out["p95"] = float(np.percentile(x, 95))
    if note:
        out["note"] = note
    return out


def exact(value: float, unit: str, label: str, note: str | None = None) -> dict[str, Any]:
    """A figure that is counted, not sampled (bytes, parameters, MACs): no spread."""
    return figure([value], unit, label, note=note)


def ratio(numerator: Sequence[float], denominator: Sequence[float], label: str,
          note: str | None = None) -> dict[str, Any]:
    """Per-repeat ratios of two timing series (repeat i of each), summarised like any figure.

    Pairing by repeat index keeps the ratio's spread honest about run-to-run noise
    instead of dividing a best case by a worst case.
    """
    n = min(len(numerator), len(denominator))
    r = [numerator[i] / denominator[i] for i in range(n)]
    return figure(r, "x", label, note=note)
