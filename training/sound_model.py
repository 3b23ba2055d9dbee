"""The environmental-sound CNN: small enough for a Pi (DCASE low-complexity limits).

One network, two outputs sharing every convolution (so one inference per hop):
``probabilities`` (softmax over the built-in labels) and ``embedding`` (an
L2-normalised vector the device compares with cosine distance, for ``unknown``
and for sounds taught on the box). The losses that shape them live here too.
"""

from __future__ import annotations

MAX_PARAMS = 128_000
MAX_MACS = 30_000_000
EMBEDDING_DIM = 64
OUTPUT_NAMES = ("probabilities", "embedding")  # contract names; the Keras layers are "class_probabilities" and "embedding"


def build_sound_model(input_shape: tuple[int, int, int], n_classes: int, width: int = 16,
                      dropout: float = 0.3, embedding_dim: int | None = EMBEDDING_DIM):
    """Four conv blocks (width, 2w, 4w, 4w filters), global pooling, then the two heads.

    The input BatchNorm learns the log-mel scaling, so the device feeds raw
    log-mel values and int8 input quantization covers their natural range.
    The embedding is L2-normalised inside the model (TFLite's L2_NORMALIZATION,
    whose int8 output has the fixed scale 1/128), so the device gets unit
    vectors straight from the interpreter. ``embedding_dim=None`` builds the
    old single-output classifier.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    inp = keras.Input(shape=input_shape, name="logmel")
    x = layers.BatchNormalization(name="input_norm")(inp)
    for i, filters in enumerate((width, 2 * width, 4 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    pooled = layers.GlobalAveragePooling2D(name="gap")(x)
    h = layers.Dropout(dropout, name="dropout")(pooled)
    probs = layers.Dense(n_classes, activation="softmax", name="class_probabilities")(h)
    if embedding_dim is None:
        return keras.Model(inp, probs, name="sound_cnn")
    e = layers.Dense(embedding_dim, name="embedding_proj")(pooled)
    # tf.math.l2_normalize converts to one L2_NORMALIZATION op (a Keras UnitNormalization would become
    # square/sum/rsqrt/mul, each re-quantized in int8).
    emb = layers.Lambda(lambda v: tf.math.l2_normalize(v, axis=-1), output_shape=(embedding_dim,),
                        name="embedding")(e)
    return keras.Model(inp, [probs, emb], name="sound_cnn")


def classes_or_outliers_loss(outlier_weight: float = 0.5):
    """Cross-entropy on built-in labels (y >= 0); for world sounds (y = -1) cross-entropy to the uniform
    distribution ("outlier exposure", Hendrycks et al. 2019), so they get low confidence on every class."""
    from keras import ops

    def loss(y_true, y_pred):
        y = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        logp = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        known = ops.cast(y >= 0, logp.dtype)
        ce = -ops.sum(ops.one_hot(ops.maximum(y, 0), ops.shape(y_pred)[-1]) * logp, axis=-1)
        uniform = -ops.mean(logp, axis=-1)
        return known * ce + (1.0 - known) * outlier_weight * uniform

    return loss


def supervised_contrastive_loss(temperature: float = 0.1):
    """Supervised contrastive loss (Khosla et al. 2020) over one batch of unit embeddings.

    Every window is pulled towards all windows of its own group (built-in class,
    sound family or spoken word) and pushed from all others in the batch. Chosen
    over triplets (no mining, every pair in the batch counts) and over
    prototypical episodes (the same pull/push, without splitting each batch into
    support and query), and it is what few-shot teaching needs: same-sound
    takes close in cosine, different sounds far.
    """
    from keras import ops

    def loss(y_true, y_pred):
        y = ops.reshape(y_true, (-1,))
        sim = ops.matmul(y_pred, ops.transpose(y_pred)) / temperature
        n = ops.shape(sim)[0]
        eye = ops.eye(n, dtype=sim.dtype)
        same = ops.cast(ops.equal(y[:, None], y[None, :]), sim.dtype) * (1.0 - eye)
        sim = sim - 1e9 * eye  # a window is not its own positive nor in its own denominator
        log_prob = sim - ops.logsumexp(sim, axis=1, keepdims=True)
        positives = ops.sum(same, axis=1)
        per = -ops.sum(same * log_prob, axis=1) / ops.maximum(positives, 1.0)
        return per * ops.cast(positives > 0, sim.dtype)

    return loss
