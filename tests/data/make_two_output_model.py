"""Make tests/data/two_output.tflite (+ .json): a tiny untrained int8 sound model with the two-output contract.

    .venv/bin/python tests/data/make_two_output_model.py

It exists so the device's two-output path (named outputs, int8 dequantization,
the embedding, teaching and the open-set decision) runs through a real TFLite
interpreter in the device-only venv without waiting for `make models`. Its
weights are seeded random, not trained: the embedding of a log-mel window is a
fixed random nonlinear projection, which still separates tones of different
pitch. The outputs are named and ordered by export.outputs, as release models are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def main() -> None:
    import keras
    import tensorflow as tf
    from keras import layers

    from device.frontend import LogMelParams
    from device.sound.labels import URBANSOUND_CLASSES
    from export.int8 import convert_int8
    from export.outputs import name_outputs

    keras.utils.set_random_seed(0)
    p = LogMelParams()
    inp = keras.Input(shape=p.input_shape, name="logmel")
    # The loudest moment of each mel band, minus the window's mean: a level-independent spectral profile.
    x = layers.MaxPooling2D((p.input_shape[0], 1))(inp)
    x = layers.Reshape((p.n_mels,))(x)
    pooled = layers.Lambda(lambda v: v - tf.reduce_mean(v, axis=-1, keepdims=True), output_shape=(p.n_mels,))(x)
    probs = layers.Dense(len(URBANSOUND_CLASSES), activation="softmax", name="class_probabilities")(pooled)
    e = layers.Dense(16, name="embedding_proj")(pooled)
    emb = layers.Lambda(lambda v: tf.math.l2_normalize(v, axis=-1), output_shape=(16,), name="embedding")(e)
    model = keras.Model(inp, [probs, emb])
    rng = np.random.default_rng(0)
    rep = rng.normal(-6.0, 3.0, (64,) + p.input_shape).astype(np.float32)
    out = HERE / "two_output.tflite"
    convert_int8(model, rep, out)
    outputs = name_outputs(out, ["probabilities", "embedding"])
    meta = {
        "kind": "sound", "labels": list(URBANSOUND_CLASSES), "frontend_kind": "logmel", "frontend": p.to_dict(),
        "input_shape": list(p.input_shape), "input_dtype": "int8",
        "outputs": [o["name"] for o in outputs], "output_names": {o["name"]: o["name"] for o in outputs},
        "embedding": {"dim": 16, "version": "test-fixture-1", "metric": "cosine"},
        "open_set": {"min_confidence": 0.6, "taught_max_distance": 0.06,
                     "calibration": "none: untrained test fixture"},
        "training_data": "none: seeded random weights (tests/data/make_two_output_model.py)",
    }
    (HERE / "two_output.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(out, out.stat().st_size, "bytes;", outputs)


if __name__ == "__main__":
    main()
