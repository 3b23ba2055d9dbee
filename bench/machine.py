"""What the numbers were measured on: CPU, cores, load, Python and library versions."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata as md
import os
import platform
from typing import Any, Iterator


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1/5/15-minute load: other work on the machine slows every figure, so it is recorded."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    from device.model import pick_runtime

    try:
        runtime = pick_runtime()[0]
    except Exception as e:  # noqa: BLE001 - reported, not fatal here
        runtime = f"none ({e})"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tflite_runtime": runtime,
        "versions": {d: _version(d) for d in ("numpy", "ai-edge-litert", "tflite-runtime", "tensorflow",
                                              "tensorflow-cpu", "keras", "librosa", "pygame", "pyserial")},
        "load_average_at_start": load_average(),
    }


def blas_threads() -> int | None:
    """Threads numpy's BLAS would use now (None when threadpoolctl is missing)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[bool]:
    """Limit numpy's BLAS to one thread inside the block; yields whether that worked.

    A multi-threaded BLAS spins its threads on small matrix products; on a
    machine whose other cores are busy that can make the front end's one
    (97 x 257) @ (257 x 64) product many times slower than on one thread. The
    micro-benchmarks pin it so they measure the arithmetic, like the models'
    one interpreter thread. threadpoolctl comes with librosa (via scikit-learn).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(1, user_api="blas"):
        yield True
