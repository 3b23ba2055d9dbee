"""The marimba CNN: a space-time image (3 grayscale frames as channels) -> 18 note levels.

The Atari-DQN pattern (Mnih et al. 2015: 8x8/4 -> 4x4/2 -> 3x3/1 convolutions
with 32/64/64 filters, then a dense layer), sized down for a 48x128 crop of
the bars and a Raspberry Pi: strides shrink as filters grow, and the dense
layer sees where on the bar row each feature is, which is what tells the bars
apart. Outputs are linear: the level of each note (``device.marimba.TargetTransform``).
"""

from __future__ import annotations

MAX_PARAMS = 1_500_000
MAX_MACS = 20_000_000


def build_marimba_model(input_shape: tuple[int, int, int], n_notes: int, width: int = 16, hidden: int = 128,
                        dropout: float = 0.2):
    """conv 8x8/4 (w) -> 4x4/2 (2w) -> 3x3/1 (4w) -> dense (hidden) -> n_notes linear outputs."""
    import keras
    from keras import layers

    inp = keras.Input(shape=input_shape, name="space_time")
    x = layers.Conv2D(width, 8, strides=4, padding="same", activation="relu", name="conv1")(inp)
    x = layers.Conv2D(2 * width, 4, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.Conv2D(4 * width, 3, strides=1, padding="same", activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, activation="relu", name="dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_notes, name="levels")(x)
    return keras.Model(inp, out, name="marimba_cnn")
