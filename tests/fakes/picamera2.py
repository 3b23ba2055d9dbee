"""A fake ``picamera2`` whose cameras behave like libcamera's, read from raspberrypi/picamera2.

- ``Picamera2.global_camera_info()`` lists dicts with Model, Id and Num, sorted
  with USB cameras (``/usb`` in the Id) last, as picamera2.py does; and
  ``Picamera2(n)`` opens ``global_camera_info()[n]["Num"]``.
- ``configure`` may hand back another format than asked for: a USB camera gives
  YUYV (libcamera's uvcvideo pipeline), or whatever ``formats[Id]`` says.
- ``capture_array(name, wait=None)``: YUV420 is ``(h * 3 / 2, stride)`` with
  the Y plane in the first h rows (U = 77, V = 200 below); YUYV is
  ``(h, stride / 2, 2)`` with Y in ``[..., 0]`` (request.py ``make_array``). The
  Y rows hold ``y_value(frame_number)`` plus a horizontal ramp; rows are padded
  to a wider stride, as libcamera does. A capture returns at the next frame
  (one frame time at the configured FrameRate). With ``stall_after=n`` no frame comes
  after the n-th: ``wait=None`` blocks (forever, until close), a number of
  seconds raises ``TimeoutError`` after that long (``Job.get_result``);
  ``stall_for=k``: frames come again after k such timeouts.
- A capture that times out leaves its job in the camera's job list (picamera2.py
  ``wait`` / ``_job_list``): later jobs, ``stop()`` included, queue behind it, so
  ``stop()`` would never return; this fake fails loudly instead of hanging.
  ``cancel_all_and_flush()`` clears the list, as the real one does ("so that the
  camera can be closed").
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import types

import numpy as np

CSI_ID = "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"
USB_ID = "/base/axi/pcie@120000/rp1/usb@200000-1:1.0-046d:0825"


def make_module(*, cameras=(CSI_ID,), stride_pad: int = 32, y_value=lambda i: (10 * i) % 200,
                formats: dict | None = None, stall_after: int | None = None, stall_for: int | None = None
                ) -> types.ModuleType:
    mod = types.ModuleType("picamera2")
    mod.__file__ = __file__
    mod.opened = []
    formats = dict(formats or {})
    infos = [{"Model": "uvcvideo" if "/usb" in cid else "imx708", "Location": 2, "Rotation": 0, "Id": cid, "Num": i}
             for i, cid in enumerate(cameras)]

    class Picamera2:
        def __init__(self, camera_num: int = 0) -> None:
            self.info = Picamera2.global_camera_info()[camera_num]  # IndexError, like the real one
            self.camera_num = self.info["Num"]
            self.config = None
            self.started = False
            self.closed = False
            self.frames = 0
            self.waits = []
            self.timeouts = 0
            self.pending_jobs = 0  # timed-out captures still in picamera2's job list
            self._closing = threading.Event()
            mod.opened.append(self)

        @staticmethod
        def global_camera_info():
            return sorted((dict(c) for c in infos), key=lambda c: ("/usb" not in c["Id"], c["Id"]), reverse=True)

        def create_video_configuration(self, main=None, controls=None, **kwargs):
            return {"main": dict(main or {}), "controls": dict(controls or {}), **kwargs}

        def configure(self, config):
            config = {**config, "main": dict(config["main"])}
            default = "YUYV" if "/usb" in self.info["Id"] else config["main"].get("format", "YUV420")
            config["main"]["format"] = formats.get(self.info["Id"], default)
            self.config = config

        def camera_configuration(self):
            return self.config

        def start(self):
            self.started = True

        def stop(self):
            if self.pending_jobs:  # picamera2 runs stop() as a job behind the timed-out capture: for ever
                raise AssertionError(f"stop() queued behind {self.pending_jobs} timed-out capture job(s): "
                                     "picamera2 would hang here; call cancel_all_and_flush() first")
            self.started = False
            self._closing.set()

        def cancel_all_and_flush(self):
            self.pending_jobs = 0

        def close(self):
            self.closed = True
            self._closing.set()

        def capture_array(self, name="main", wait=None):
            assert self.started, "capture before start()"
            self.waits.append(wait)
            stalled = stall_after is not None and self.frames >= stall_after
            if stalled and (stall_for is None or self.timeouts < stall_for):
                if wait is None or wait is True:
                    self._closing.wait()  # forever, as far as the caller can tell
                    raise RuntimeError("camera closed while waiting")
                self._closing.wait(wait)
                self.timeouts += 1
                self.pending_jobs += 1
                raise concurrent.futures.TimeoutError()
            time.sleep(1.0 / self.config["controls"].get("FrameRate", 30.0))  # the next frame's arrival
            fmt = self.config["main"]["format"]
            w, h = self.config["main"]["size"]
            stride = w + stride_pad
            y = (y_value(self.frames) + np.arange(stride) % 50).astype(np.uint8)
            self.frames += 1
            if fmt in ("YUV420", "YVU420"):
                arr = np.empty((h * 3 // 2, stride), np.uint8)
                arr[:h] = y[None, :]
                arr[h : h + h // 4] = 77  # U
                arr[h + h // 4 :] = 200  # V
                return arr
            if fmt == "YUYV":  # 2 bytes a pixel: the stride is twice the width, plus padding
                stride = 2 * w + stride_pad
                y = (y_value(self.frames - 1) + np.arange(stride // 2) % 50).astype(np.uint8)
                arr = np.empty((h, stride // 2, 2), np.uint8)
                arr[:, :, 0] = y[None, :]
                arr[:, 0::2, 1] = 77  # U
                arr[:, 1::2, 1] = 200  # V
                return arr
            if fmt == "MJPEG":  # decoded by PIL into RGB
                return np.full((h, w, 3), 128, np.uint8)
            raise RuntimeError("Format " + fmt + " not supported")

    mod.Picamera2 = Picamera2
    return mod
