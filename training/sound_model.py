"""The environmental-sound CNN: small enough for a Pi (DCASE low-complexity limits)."""

from __future__ import annotations

MAX_PARAMS = 128_000
MAX_MACS = 30_000_000


def build_sound_model(input_shape: tuple[int, int, int], n_classes: int, width: int = 16,
                      dropout: float = 0.3):
    """Four conv blocks (width, 2w, 4w, 4w filters), global pooling, softmax.

    The input BatchNorm learns the log-mel scaling, so the device feeds raw
    log-mel values and int8 input quantization covers their natural range.
    """
    import keras
    from keras import layers

    inp = keras.Input(shape=input_shape, name="logmel")
    x = layers.BatchNormalization(name="input_norm")(inp)
    for i, filters in enumerate((width, 2 * width, 4 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="sound_cnn")
