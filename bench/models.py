"""Model speed and size: int8 TFLite (the device path) vs float32 TFLite vs Keras, one thread each.

The int8 model is the committed ``models/<kind>.tflite`` run through
``device.model.Model`` exactly as the box runs it (input quantisation and
output dequantisation included). Its peers are built from the trained Keras
model when ``make train-*`` saved one, else from the same architecture with
random weights: invoke time does not depend on the weights' values. The
float32 TFLite goes through the same ``Model`` class (with the int8 model's
metadata), so the int8/float32 ratio compares the interpreters, not the glue.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .report import shown
from .stats import exact, figure, measure, ratio


@dataclass(frozen=True)
class ModelSpec:
    """Where one model kind lives and how to rebuild its Keras peer."""

    kind: str  # "sound" | "marimba"
    tflite: Path
    keras: Path  # saved by `make train-<kind>`; may be absent
    build: Callable[[dict], Any]  # metadata -> untrained Keras model of the same architecture
    sample: Callable[[dict], np.ndarray]  # metadata -> one realistic float input


def _build_sound(meta: dict):
    from training.sound_model import build_sound_model

    # The committed model's own shape: two heads when its metadata names an embedding, else the classifier.
    dim = (meta.get("embedding") or {}).get("dim") if "embedding" in (meta.get("outputs") or ()) else None
    return build_sound_model(tuple(meta["input_shape"]), len(meta["labels"]), embedding_dim=dim)


def _sound_input(meta: dict) -> np.ndarray:
    from device.frontend import LogMelParams, window_features

    from .frontend import demo_audio

    p = LogMelParams.from_dict(meta["frontend"])
    return window_features(demo_audio(p.window_seconds, p), p).astype(np.float32)


def _build_marimba(meta: dict):
    from training.marimba_model import build_marimba_model

    return build_marimba_model(tuple(meta["input_shape"]), len(meta["labels"]))


def _marimba_input(meta: dict) -> np.ndarray:
    # Space-time images are standardised (mean 0, sd 1, clipped); Gaussian noise has the same range.
    return np.clip(np.random.default_rng(0).standard_normal(tuple(meta["input_shape"])), -4, 4).astype(np.float32)


def model_specs(models_dir: Path, reports_dir: Path) -> list[ModelSpec]:
    return [
        ModelSpec("sound", models_dir / "sound.tflite", reports_dir / "sound" / "sound.keras", _build_sound,
                  _sound_input),
        ModelSpec("marimba", models_dir / "marimba.tflite", reports_dir / "marimba" / "marimba.keras",
                  _build_marimba, _marimba_input),
    ]


def limit_tensorflow_threads() -> None:
    """One thread for Keras, like the TFLite interpreters: must run before TF does any work."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised (a caller used TF first): keep going, say so in the notes
        pass


def _keras_peer(spec: ModelSpec, meta: dict) -> tuple[Any, str]:
    if spec.keras.is_file():
        # The architecture from code, the trained weights from the file: a saved model's Lambda
        # layer (the in-model L2 normalisation) is refused by Keras' safe deserialisation.
        model = spec.build(meta)
        model.load_weights(spec.keras)
        return model, f"trained Keras model {spec.keras}"
    return spec.build(meta), (f"{spec.keras} absent: same architecture with random weights "
                              "(timing does not depend on weight values)")


def bench_model(spec: ModelSpec, repeats: int, min_time: float, workdir: Path) -> tuple[dict, dict]:
    """(figures, notes) for one model kind whose int8 .tflite exists."""
    import tensorflow as tf

    from device.model import Model, metadata_path_for
    from export.complexity import complexity
    from export.int8 import convert_float

    meta_path = metadata_path_for(spec.tflite)
    meta = json.loads(meta_path.read_text())
    x = spec.sample(meta)

    int8 = Model(spec.tflite, num_threads=1)
    keras_model, peer = _keras_peer(spec, meta)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the whole export signature
        float_path = convert_float(keras_model, workdir / f"{spec.kind}_float32.tflite")
        if len(meta.get("outputs") or ()) > 1:  # the same output order and tensor names as the int8 model
            from export.outputs import name_outputs

            name_outputs(float_path, [meta["output_names"][role] for role in meta["outputs"]])
    # Same loader, same metadata: only the interpreter's arithmetic differs.
    f32 = Model(float_path, num_threads=1, metadata_path=meta_path)
    batch = x[None]

    t_int8 = measure(lambda: int8.predict(x), repeats, min_time)
    t_f32 = measure(lambda: f32.predict(x), repeats, min_time)
    t_keras = measure(lambda: keras_model.predict_on_batch(batch), repeats, min_time)
    cx = complexity(keras_model)
    recorded = meta.get("complexity") or {}

    k = spec.kind
    figures = {
        f"{k}.int8_tflite": figure(t_int8, "ms", f"{k} model: int8 TFLite invoke via device.model.Model, 1 thread",
                                   1e3),
        f"{k}.float32_tflite": figure(t_f32, "ms", f"{k} model: float32 TFLite invoke, 1 thread", 1e3),
        f"{k}.keras": figure(t_keras, "ms", f"{k} model: Keras predict_on_batch (1 example), 1 thread", 1e3),
        f"{k}.float32_over_int8": ratio(t_f32, t_int8, f"{k} model: float32 TFLite time / int8 time"),
        f"{k}.keras_over_int8": ratio(t_keras, t_int8, f"{k} model: Keras time / int8 TFLite time"),
        f"{k}.int8_bytes": exact(spec.tflite.stat().st_size, "bytes", f"{k} model: int8 .tflite size"),
        f"{k}.float32_bytes": exact(float_path.stat().st_size, "bytes", f"{k} model: float32 .tflite size"),
        f"{k}.params": exact(cx["params"], "count", f"{k} model: parameters"),
        f"{k}.macs": exact(cx["macs"], "count", f"{k} model: multiply-accumulates per inference"),
    }
    notes = {
        f"{k}_peer": peer,
        f"{k}_int8_model": str(spec.tflite),
        f"{k}_runtime": int8.runtime,
        f"{k}_complexity_matches_metadata": (recorded == cx) if recorded else None,
        f"{k}_tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    return figures, notes


def bench_models(models_dir: Path, reports_dir: Path, repeats: int, min_time: float,
                 workdir: Path) -> tuple[dict, dict, dict]:
    """(figures, notes, unavailable) for every model kind."""
    figures: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    limit_tensorflow_threads()
    for spec in model_specs(models_dir, reports_dir):
        if not spec.tflite.is_file():
            unavailable[f"{spec.kind}_model"] = f"not available: {shown(spec.tflite)} missing"
            continue
        f, n = bench_model(spec, repeats, min_time, workdir)
        figures.update(f)
        notes.update(n)
    return figures, notes, unavailable

