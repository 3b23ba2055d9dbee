"""Load an int8 ``.tflite`` model with its metadata JSON and run it.

Runtime order: ai_edge_litert -> tflite_runtime -> tensorflow.lite (the last only
on a workstation). Inputs are quantized and outputs dequantized with the
tensor's own scale and zero point, so callers always see float arrays.
A model is refused at load, in one line naming the file, when its metadata
disagrees with the device or with the model itself: another kind than the
caller needs, another front end, an input shape or label count that does not
match the tensors. A model that loads therefore never runs "deaf".
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from device.errors import ModelError
from device.jsonfile import read_json_object

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
KINDS = ("sound", "marimba", "generator")
# The kind of model each front end feeds, so a caller that checks the front end
# also checks the kind without saying it twice.
_KIND_OF_FRONTEND = {"LogMelParams": "sound", "NoteParams": "marimba"}


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
    meta = read_json_object(path, ModelError, "model metadata")
    for key in ("kind", "labels", "frontend", "input_shape"):
        if key not in meta:
            raise ModelError(f"{path}: model metadata lacks the key '{key}'")
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: 'labels' must be a non-empty list of names")
    shape = meta["input_shape"]
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool)
                                                           and d > 0 for d in shape):
        raise ModelError(f"{path}: 'input_shape' must be a list of positive integers, not {shape!r}")
    if not isinstance(meta["frontend"], dict):
        raise ModelError(f"{path}: 'frontend' must be a JSON object of front-end settings")
    emb = meta.get("embedding")
    if emb is not None and not (isinstance(emb, dict) and isinstance(emb.get("dim", 0), int)
                                and not isinstance(emb.get("dim"), bool)):
        raise ModelError(f"{path}: 'embedding' must be a JSON object with an integer 'dim', not {emb!r}")
    notes = meta.get("notes")
    if notes is not None and (not isinstance(notes, list) or len(notes) != len(labels)):
        raise ModelError(f"{path}: 'notes' must list one MIDI note per label ({len(labels)})")
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
    ``kind`` ("sound" or "marimba"; by default the kind that front end feeds)
    makes it fail when the model is the other kind.
    """

    def __init__(self, path: str | os.PathLike, expected_frontend: Any | None = None,
                 num_threads: int = 1, runtime: str | None = None,
                 metadata_path: str | os.PathLike | None = None, kind: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        meta_path = Path(metadata_path or metadata_path_for(self.path))
        self.metadata = read_metadata(meta_path)
        if kind is None and expected_frontend is not None:
            kind = _KIND_OF_FRONTEND.get(type(expected_frontend).__name__)
        check_kind(self.metadata, kind, meta_path)
        if expected_frontend is not None:
            check_frontend(self.metadata, expected_frontend, meta_path)
        if metadata_path is None:  # its own JSON; a caller pairing another (a float peer in the bench) knows
            check_pairing(self.path, self.metadata, meta_path)
        self.runtime, interpreter_cls = pick_runtime(runtime)
        try:
            self._interp = interpreter_cls(model_path=str(self.path), num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{self.path}: not a loadable TFLite model ({str(e).splitlines()[0]})") from None
        self._in = self._interp.get_input_details()[0]
        self._out, self._emb = pick_outputs(self._interp.get_output_details(), self.metadata, meta_path)
        self._qin, self._qout = _quant(self._in), _quant(self._out)
        self._qemb = _quant(self._emb) if self._emb is not None else None
        want = tuple(self.metadata["input_shape"])
        have = tuple(int(d) for d in self._in["shape"][1:])
        if want != have:
            raise ModelError(f"{self.path}: input shape {have} disagrees with its metadata {want}")
        outputs = int(np.prod(self._out["shape"][1:]))
        out_shape = self.metadata.get("output_shape")  # a generator's picture, not one value per label
        if out_shape is not None and outputs != int(np.prod(out_shape)):
            raise ModelError(f"{meta_path}: output shape {list(out_shape)}, but the model {self.path.name} "
                             f"has {outputs} outputs; the metadata belongs to another model")
        if out_shape is None and outputs != len(self.labels):
            raise ModelError(f"{meta_path}: {len(self.labels)} labels, but the model {self.path.name} "
                             f"has {outputs} outputs; the metadata belongs to another model")
        want_dim = (self.metadata.get("embedding") or {}).get("dim")
        if self._emb is not None and want_dim is not None and int(want_dim) != self.embedding_dim:
            raise ModelError(f"{meta_path}: embedding dim {want_dim}, but the model's embedding output "
                             f"has {self.embedding_dim} values; the metadata belongs to another model")

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

    @property
    def has_embedding(self) -> bool:
        """True when the model also outputs an embedding (for ``unknown`` and taught sounds)."""
        return self._emb is not None

    @property
    def embedding_version(self) -> str | None:
        """The embedding's version from the metadata; taught prototypes are recomputed when it changes."""
        if self._emb is None:
            return None
        info = self.metadata.get("embedding") or {}
        return str(info.get("version", self.metadata.get("model_sha256", "")))

    @property
    def embedding_dim(self) -> int:
        return int(np.prod(self._emb["shape"][1:])) if self._emb is not None else 0

    def infer(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One example -> (class probabilities, L2-normalised embedding or None) from one invoke."""
        x = np.asarray(x, dtype=np.float32).reshape((1,) + self.input_shape)
        self._interp.set_tensor(self._in["index"], self._qin.quantize(x))
        self._interp.invoke()
        probs = self._qout.dequantize(self._interp.get_tensor(self._out["index"]))[0]
        if self._emb is None:
            return probs, None
        emb = self._qemb.dequantize(self._interp.get_tensor(self._emb["index"]))[0].astype(np.float32)
        # int8 rounding leaves the vector slightly off unit length; cosine distances assume unit vectors.
        return probs, emb / max(float(np.linalg.norm(emb)), 1e-12)

    def predict_many(self, xs: np.ndarray) -> np.ndarray:
        return np.stack([self.predict(x) for x in xs]) if len(xs) else np.zeros((0, len(self.labels)), np.float32)


def pick_outputs(details: list[Mapping[str, Any]], meta: Mapping[str, Any],
                 where: str | os.PathLike) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
    """(probabilities tensor, embedding tensor or None) by the metadata's ``outputs``/``output_names``.

    A model without those keys is the single-output classifier: its first output.
    Names are looked up, never guessed from the order, because the converter may
    list a multi-output model's tensors in an order of its own.
    """
    roles = meta.get("outputs")
    if not roles:
        return details[0], None
    if not isinstance(roles, list) or "probabilities" not in roles:
        raise ModelError(f"{where}: 'outputs' must list \"probabilities\" (and optionally \"embedding\")")
    names = meta.get("output_names") or {}
    by_name = {d.get("name"): d for d in details}
    picked = {}
    for role in ("probabilities", "embedding"):
        if role not in roles:
            continue
        name = names.get(role) if isinstance(names, dict) else None
        if name in by_name:
            picked[role] = by_name[name]
        elif len(details) == len(roles):
            picked[role] = details[roles.index(role)]  # no usable name: the listed order
        else:
            raise ModelError(f"{where}: output {role!r} (tensor {name!r}) not among the model's outputs "
                             f"{sorted(str(n) for n in by_name)}")
    return picked["probabilities"], picked.get("embedding")


def check_pairing(model_path: Path, meta: Mapping[str, Any], meta_path: Path) -> None:
    """The metadata must describe this very file (``model_sha256``, written at export): a new model copied
    over an old JSON would otherwise run with the old class centres, thresholds and embedding version."""
    want = meta.get("model_sha256")
    if want is None:  # hand-made or older metadata: nothing to compare
        return
    digest = hashlib.sha256()
    with open(model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != want:
        raise ModelError(f"{meta_path}: written for another {model_path.name} (model_sha256 differs); copy the "
                         "model and its JSON together")


def check_kind(meta: Mapping[str, Any], expected: str | None, where: str | os.PathLike) -> None:
    """Raise ModelError unless the metadata's kind is known (and ``expected``, when given)."""
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ModelError(f"{where}: unknown model kind {kind!r} (expected one of: {', '.join(KINDS)})")
    if expected is not None and kind != expected:
        raise ModelError(f"{where}: this is a {kind} model, but a {expected} model is needed here")


def check_frontend(meta: Mapping[str, Any], expected: Any, where: str | os.PathLike) -> None:
    """Raise ModelError naming every front-end field that differs from ``expected``."""
    have = dict(meta.get("frontend", {}))
    want = expected.to_dict()
    diffs = [f"{k}: model {have.get(k)!r} vs device {want[k]!r}" for k in want if have.get(k) != want[k]]
    diffs += [f"{k}: unknown to this device" for k in have if k not in want]
    if diffs:
        raise ModelError(f"{where}: model front end differs from the device's ({'; '.join(diffs)})")
