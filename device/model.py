"""Load an int8 ``.tflite`` model with its metadata JSON and run it.

Runtime order: ai_edge_litert -> tflite_runtime -> tensorflow.lite (the last only
on a workstation). Inputs are quantized and outputs dequantized with the
tensor's own scale and zero point, so callers always see float arrays.
A model whose recorded front end differs from the running one is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from device.errors import ModelError

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


def _interpreter_class(name: str) -> Callable[..., Any]:
    if name == "ai_edge_litert":
        from ai_edge_litert.interpreter import Interpreter
    elif name == "tflite_runtime":
        from tflite_runtime.interpreter import Interpreter
    elif name == "tensorflow":
        from tensorflow.lite import Interpreter  # workstation fallback only
    else:
        raise ValueError(f"unknown TFLite runtime {name!r}")
    return Interpreter


def pick_runtime(preferred: str | None = None) -> tuple[str, Callable[..., Any]]:
    """First importable runtime (``SAYSEE_TFLITE_RUNTIME`` or ``preferred`` pins one)."""
    preferred = preferred or os.environ.get("SAYSEE_TFLITE_RUNTIME")
    order = (preferred,) if preferred else RUNTIMES
    errors = []
    for name in order:
        try:
            return name, _interpreter_class(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise ModelError("no TFLite runtime found (pip install ai-edge-litert): " + "; ".join(errors))


def metadata_path_for(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model metadata missing (expected beside the .tflite)")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: model metadata is not valid JSON ({e})") from None
    for key in ("kind", "labels", "frontend", "input_shape"):
        if key not in meta:
            raise ModelError(f"{path}: model metadata lacks the key '{key}'")
    return meta


@dataclass
class _Quant:
    scale: float
    zero_point: int
    dtype: Any

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if self.dtype == np.float32 or self.scale == 0:
            return x.astype(self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(x / self.scale + self.zero_point)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.dtype == np.float32 or self.scale == 0:
            return q.astype(np.float32)
        return ((q.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)


def _quant(detail: Mapping[str, Any]) -> _Quant:
    scale, zero = detail.get("quantization", (0.0, 0))
    return _Quant(float(scale), int(zero), detail["dtype"])


class Model:
    """A TFLite model plus its metadata; ``predict`` takes and returns floats.

    ``expected_frontend`` (a params dataclass with ``to_dict``) makes loading fail
    when the model was trained on different features than the device computes.
    """

    def __init__(self, path: str | os.PathLike, expected_frontend: Any | None = None,
                 num_threads: int = 1, runtime: str | None = None,
                 metadata_path: str | os.PathLike | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        self.metadata = read_metadata(metadata_path or metadata_path_for(self.path))
        if expected_frontend is not None:
            check_frontend(self.metadata, expected_frontend, metadata_path or metadata_path_for(self.path))
        self.runtime, interpreter_cls = pick_runtime(runtime)
        try:
            self._interp = interpreter_cls(model_path=str(self.path), num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path}: not a loadable TFLite model ({str(e).splitlines()[0]})") from None
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._qin, self._qout = _quant(self._in), _quant(self._out)
        want = tuple(self.metadata["input_shape"])
        have = tuple(int(d) for d in self._in["shape"][1:])
        if want != have:
            raise ModelError(f"{self.path}: input shape {have} disagrees with its metadata {want}")

    @property
    def kind(self) -> str:
        return self.metadata["kind"]

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["input_shape"])

    @property
    def input_dtype(self) -> Any:
        return self._in["dtype"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """One example (input_shape, float) -> the model's float output vector."""
        x = np.asarray(x, dtype=np.float32).reshape((1,) + self.input_shape)
        self._interp.set_tensor(self._in["index"], self._qin.quantize(x))
        self._interp.invoke()
        return self._qout.dequantize(self._interp.get_tensor(self._out["index"]))[0]

    def predict_many(self, xs: np.ndarray) -> np.ndarray:
        return np.stack([self.predict(x) for x in xs]) if len(xs) else np.zeros((0, len(self.labels)), np.float32)


def check_frontend(meta: Mapping[str, Any], expected: Any, where: str | os.PathLike) -> None:
    """Raise ModelError naming every front-end field that differs from ``expected``."""
    have = dict(meta.get("frontend", {}))
    want = expected.to_dict()
    diffs = [f"{k}: model {have.get(k)!r} vs device {want[k]!r}" for k in want if have.get(k) != want[k]]
    diffs += [f"{k}: unknown to this device" for k in have if k not in want]
    if diffs:
        raise ModelError(f"{where}: model front end differs from the device's ({'; '.join(diffs)})")
