"""Parameters and multiply-accumulates of a Keras model, computed from its layers."""

from __future__ import annotations

import numpy as np


def _macs(layer) -> int:
    name = type(layer).__name__
    if name not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
        return 0
    out, inp = layer.output, layer.input
    out_shape, in_shape = tuple(out.shape[1:]), tuple(inp.shape[1:])
    if name == "Conv2D":
        kh, kw = layer.kernel_size
        return int(np.prod(out_shape) * kh * kw * in_shape[-1] // layer.groups)
    if name == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        return int(np.prod(out_shape) * kh * kw)
    if name == "SeparableConv2D":
        kh, kw = layer.kernel_size
        spatial = int(np.prod(out_shape[:-1]))
        return int(spatial * in_shape[-1] * (kh * kw * layer.depth_multiplier + out_shape[-1]))
    if name == "Dense":
        return int(np.prod(in_shape) * out_shape[-1])
    return 0


def complexity(keras_model) -> dict[str, int]:
    """{"params": trainable+frozen weights, "macs": multiply-accumulates per inference}."""
    return {
        "params": int(keras_model.count_params()),
        "macs": int(sum(_macs(layer) for layer in keras_model.layers)),
    }
