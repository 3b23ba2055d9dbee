"""The marimba CNN: a space-time image (3 grayscale frames as channels) -> 18 note levels.

The Atari-DQN pattern (Mnih et al. 2015: 8x8/4 -> 4x4/2 -> 3x3/1 convolutions,
filters growing as strides shrink, then dense), adapted to a 48x128 crop of
the bars: 5x5/2 (16) -> 3x3/(2 down, 1 across) (32) -> 3x3/1 (64). The rows
are then max-pooled away (where along a bar the mallet lands doesn't matter),
leaving 64 columns of strike features; a 1x1 convolution (16) computes the
same detector for every column, and one dense layer maps columns to the 18
notes. Sharing the detector across bars makes each strike teach all bars;
the dense layer absorbs where the bars sit in the crop. (The literal DQN
stack with a 128-unit dense layer reached onset F1 ~0.46 on held-out
synthetic videos against ~0.93 for this one, at 20x the parameters.)

Outputs are linear levels (``device.marimba.pipeline.TargetTransform``). Training uses
``weighted_mse``: windows where a note's level rises (its onsets, which the
peak picker needs) weigh ``onset_weight`` times more than the ringing tails,
which three frames can hardly predict.
"""

from __future__ import annotations

import numpy as np

MAX_PARAMS = 500_000
MAX_MACS = 30_000_000


def build_marimba_model(input_shape: tuple[int, int, int], n_notes: int, width: int = 16, column_features: int = 16,
                        dropout: float = 0.2):
    import keras
    from keras import layers

    inp = keras.Input(shape=input_shape, name="space_time")
    x = layers.Conv2D(width, 5, strides=2, padding="same", activation="relu", name="conv1")(inp)
    x = layers.Conv2D(2 * width, 3, strides=(2, 1), padding="same", activation="relu", name="conv2")(x)
    x = layers.Conv2D(4 * width, 3, strides=1, padding="same", activation="relu", name="conv3")(x)
    x = layers.MaxPooling2D((int(x.shape[1]), 1), name="rows")(x)  # -> (1, columns, 4w)
    x = layers.Conv2D(column_features, 1, activation="relu", name="columns")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_notes, name="levels")(x)
    return keras.Model(inp, out, name="marimba_cnn")


def onset_weights(levels: np.ndarray, onset_weight: float = 10.0, min_rise: float = 0.1, lookback: int = 3
                  ) -> np.ndarray:
    """Per (window, note) loss weights for one video's level sequence (T, notes), in time order."""
    y = np.asarray(levels, dtype=np.float32)
    prev = np.full_like(y, np.inf)
    for k in range(1, lookback + 1):
        prev[k:] = np.minimum(prev[k:], y[:-k])
    prev[np.isinf(prev)] = 0.0
    return (1.0 + onset_weight * (y - prev > min_rise)).astype(np.float32)


def weighted_mse(n_notes: int):
    """Loss over y_true = [levels | weights] (2 * n_notes columns)."""
    import keras

    def loss(y_true, y_pred):
        target, weight = y_true[:, :n_notes], y_true[:, n_notes:]
        return keras.ops.mean(weight * keras.ops.square(target - y_pred), axis=-1)

    loss.__name__ = "weighted_mse"
    return loss
