"""Marimba frame preprocessing: the numpy rectifier against OpenCV's warpPerspective in the same run.

The box rectifies every camera frame to the canonical bar-row view before the
model (device.marimba.rectify.Rectifier: precomputed taps, one gather and a
weighted sum). Timed on one thread at the box's 160x96 (the default view, exact
area weights) and at record-marimba's old 320x240 through a tilted calibration
(supersampled bilinear taps); the peer is cv2.warpPerspective (bilinear, no
area averaging, so it does less work per output pixel) on the same frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .machine import one_blas_thread
from .stats import figure, measure, ratio

TILTED = ((0.12, 0.22), (0.9, 0.1), (0.95, 0.8), (0.05, 0.72))  # TL TR BR BL, fractions of the frame


def bench_rectify(repeats: int, min_time: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, notes) of rectifying one frame, default view and tilted, against OpenCV."""
    from device.marimba.pipeline import MarimbaSpec, default_calibration
    from device.marimba.rectify import Calibration, Rectifier

    spec = MarimbaSpec()
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (96, 160), dtype=np.uint8)
    large = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    h, w = spec.input_size
    default = Rectifier(default_calibration(spec), small.shape, spec.canonical, spec.input_size)
    tilted_cal = Calibration(TILTED, large.shape, source="manual")
    tilted = Rectifier(tilted_cal, large.shape, spec.canonical, spec.input_size)
    figs: dict[str, Any] = {}
    with one_blas_thread():
        t_default = measure(lambda: default(small), repeats, min_time)
        t_tilted = measure(lambda: tilted(large), repeats, min_time)
    figs["rectify.default_160x96"] = figure(t_default, "ms", "marimba: rectify one 160x96 frame, default view "
                                            "(exact area weights), 1 thread", scale=1e3)
    figs["rectify.tilted_320x240"] = figure(t_tilted, "ms", "marimba: rectify one 320x240 frame through a tilted "
                                            "calibration, 1 thread", scale=1e3)
    notes: dict[str, Any] = {"rectify_taps": {"default_160x96": default.taps, "tilted_320x240": tilted.taps}}
    try:
        import cv2
    except ImportError as e:
        notes["rectify_peer"] = f"OpenCV unavailable: {e}"
        return figs, notes
    cv2.setNumThreads(1)
    # The same mapping for OpenCV: canonical output pixel -> frame pixel, inverted for warpPerspective.
    H = tilted_map(tilted_cal, large.shape, spec)
    with one_blas_thread():
        t_cv = measure(lambda: cv2.warpPerspective(large, H, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP),
                       repeats, min_time)
    figs["rectify.cv2_320x240"] = figure(t_cv, "ms", "marimba: cv2.warpPerspective, same 320x240 frame and "
                                         "mapping (bilinear, no area averaging), 1 thread", scale=1e3)
    figs["rectify.numpy_over_cv2"] = ratio(t_tilted, t_cv, "marimba: numpy rectifier / cv2.warpPerspective, "
                                           "320x240 tilted (x)")
    return figs, notes


def tilted_map(cal: Any, frame_size: tuple[int, int], spec: Any) -> np.ndarray:
    """3x3 homography from canonical output pixels (x right, y down) to frame pixels."""
    from device.marimba.rectify import homography

    h, w = spec.input_size
    (u0, u1), (v0, v1) = spec.canonical.u, spec.canonical.v
    box = cal.box_to_frame(frame_size)  # (u, v) of the bar-row box -> frame pixels
    # Output pixel (x, y) centres -> (u, v): the canonical view spans u0..u1 x v0..v1 over w x h pixels.
    out_to_uv = homography([(0, 0), (w, 0), (w, h), (0, h)], [(u0, v0), (u1, v0), (u1, v1), (u0, v1)])
    # OpenCV samples pixel centres at integer coordinates; ours at +0.5: shift both ends by half a pixel.
    shift_out = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    shift_in = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    return shift_in @ box @ out_to_uv @ shift_out
