"""Keras -> TFLite conversion: full-integer int8 (the device model) and float32 (a bench peer)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device.atomic import write_atomic
from device.errors import SaySeeError


class ExportError(SaySeeError):
    """Conversion failed or the int8 model is not good enough to ship."""


def _write_atomic(path: Path, data: bytes) -> Path:
    return write_atomic(path, data)


def _converter(keras_model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(keras_model)


def convert_float(keras_model, out_path: str | os.PathLike) -> Path:
    """Plain float32 TFLite (no quantization), for benchmarks and parity."""
    return _write_atomic(Path(out_path), _converter(keras_model).convert())


def convert_int8(keras_model, representative: np.ndarray, out_path: str | os.PathLike,
                 max_samples: int = 400, seed: int = 0) -> Path:
    """Full-integer int8 TFLite (int8 input and output tensors).

    ``representative`` holds training inputs (N, *input_shape); a seeded random
    subset of at most ``max_samples`` calibrates the activation ranges.
    """
    import tensorflow as tf

    rep = np.asarray(representative, dtype=np.float32)
    if len(rep) == 0:
        raise ExportError(f"{out_path}: no representative data for int8 calibration")
    idx = np.random.default_rng(seed).permutation(len(rep))[:max_samples]

    def gen():
        for i in idx:
            yield [rep[i : i + 1]]

    conv = _converter(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    try:
        data = conv.convert()
    except Exception as e:  # the converter raises many types; the user needs one line
        raise ExportError(f"{out_path}: int8 conversion failed ({str(e).splitlines()[0]})") from None
    return _write_atomic(Path(out_path), data)
