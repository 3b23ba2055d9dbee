"""A fake ``picamera2`` module whose camera returns YUV420 arrays with a known Y plane.

The Y (luma) rows hold ``y_value(frame_number)`` plus a horizontal ramp; the U
and V rows below them hold 77 and 200, so a backend that reads the wrong plane
or converts colour gets the wrong pixels. Rows are padded to a wider stride, as
libcamera does.
"""

from __future__ import annotations

import types

import numpy as np


def make_module(*, cameras: int = 1, stride_pad: int = 32, y_value=lambda i: (10 * i) % 200) -> types.ModuleType:
    mod = types.ModuleType("picamera2")
    mod.__file__ = __file__
    mod.opened = []

    class Picamera2:
        def __init__(self, camera_num: int = 0) -> None:
            if camera_num >= cameras:
                raise IndexError("camera index out of range")
            self.camera_num = camera_num
            self.config = None
            self.started = False
            self.closed = False
            self.frames = 0
            mod.opened.append(self)

        @staticmethod
        def global_camera_info():
            return [{"Model": "fake_imx708", "Num": i} for i in range(cameras)]

        def create_video_configuration(self, main=None, controls=None, **kwargs):
            return {"main": dict(main or {}), "controls": dict(controls or {}), **kwargs}

        def configure(self, config):
            self.config = config

        def camera_configuration(self):
            return self.config

        def start(self):
            self.started = True

        def stop(self):
            self.started = False

        def close(self):
            self.closed = True

        def capture_array(self, name="main"):
            assert self.started, "capture before start()"
            assert self.config["main"]["format"] == "YUV420"
            w, h = self.config["main"]["size"]
            stride = w + stride_pad
            arr = np.empty((h * 3 // 2, stride), np.uint8)
            y = (y_value(self.frames) + np.arange(stride) % 50).astype(np.uint8)
            arr[:h] = y[None, :]
            arr[h : h + h // 4] = 77  # U
            arr[h + h // 4 :] = 200  # V
            self.frames += 1
            return arr

    mod.Picamera2 = Picamera2
    return mod
