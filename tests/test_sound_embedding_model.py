"""The two-output sound model: losses that do what they claim, and an int8 export with named, ordered outputs."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def test_supervised_contrastive_loss_is_low_for_clustered_and_high_for_mixed_embeddings():
    from training.embedding_eval import unit
    from training.sound_model import supervised_contrastive_loss

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 4)
    centres = unit(rng.standard_normal((4, 16)))
    clustered = unit(centres[y] + 0.05 * rng.standard_normal((16, 16))).astype("float32")
    mixed = clustered[rng.permutation(16)]
    loss = supervised_contrastive_loss(0.1)
    lc, lm = float(np.mean(loss(y, clustered))), float(np.mean(loss(y, mixed)))
    assert lc < 0.5 * lm
    # A window without any positive in the batch contributes nothing (no NaN).
    assert np.all(np.isfinite(loss(np.arange(16), clustered)))
    assert float(np.max(loss(np.arange(16), clustered))) == 0.0


def test_outlier_loss_is_cross_entropy_for_classes_and_uniform_for_world_sounds():
    from training.sound_model import classes_or_outliers_loss

    loss = classes_or_outliers_loss(outlier_weight=1.0)
    sure = np.array([[0.97, 0.01, 0.01, 0.01]], "float32")
    flat = np.full((1, 4), 0.25, "float32")
    assert float(loss(np.array([0]), sure)[0]) == pytest.approx(-np.log(0.97), rel=1e-4)
    # For a world sound (-1) a flat answer is best, a confident one is punished.
    assert float(loss(np.array([-1]), flat)[0]) < float(loss(np.array([-1]), sure)[0])


@pytest.mark.slow
def test_int8_export_lists_probabilities_first_and_names_both_outputs(tmp_path):
    import tensorflow as tf

    from export.int8 import convert_int8
    from export.outputs import name_outputs
    from training.sound_model import OUTPUT_NAMES, build_sound_model

    model = build_sound_model((97, 64, 1), 10, width=4, embedding_dim=32)
    x = np.random.default_rng(0).standard_normal((8, 97, 64, 1)).astype("float32")
    path = convert_int8(model, x, tmp_path / "m.tflite")
    outs = name_outputs(path, OUTPUT_NAMES)
    assert [o["name"] for o in outs] == ["probabilities", "embedding"]
    it = tf.lite.Interpreter(model_path=str(path))
    it.allocate_tensors()
    details = it.get_output_details()
    assert [d["name"] for d in details] == ["probabilities", "embedding"]
    assert [int(d["shape"][-1]) for d in details] == [10, 32]
    it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 97, 64, 1), np.int8))
    it.invoke()
    scale, zero = details[1]["quantization"]
    emb = (it.get_tensor(details[1]["index"]).astype(np.float32) - zero) * scale
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=0.05)  # L2-normalised inside the model
    probs = (it.get_tensor(details[0]["index"]).astype(np.float32) - details[0]["quantization"][1]) \
        * details[0]["quantization"][0]
    assert probs.sum() == pytest.approx(1.0, abs=0.05)
