"""A fake ``cv2`` with just what the OpenCV camera backend calls, recording what it opened.

``VideoCapture(source)`` records ``source`` in ``opened`` (an int index is
V4L2's /dev/video<index>); ``read()`` blocks for one frame time, like a live
camera, and returns BGR frames whose green channel is ``10 * frame_number``.
A source listed in ``absent`` does not open. While ``cv2.unplugged`` is True
(the camera pulled out) reads fail and new captures do not open, as V4L2 does.
"""

from __future__ import annotations

import time
import types

import numpy as np


def make_module(*, absent=(), size=(64, 48)) -> types.ModuleType:
    cv2 = types.ModuleType("cv2")
    cv2.__file__ = __file__
    cv2.opened = []
    cv2.unplugged = False
    cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS = 3, 4, 5
    cv2.CAP_PROP_BUFFERSIZE, cv2.CAP_PROP_POS_FRAMES = 38, 1
    cv2.COLOR_BGR2GRAY, cv2.INTER_AREA = 6, 3

    class VideoCapture:
        def __init__(self, source):
            cv2.opened.append(source)
            self.source = source
            self.props = {}
            self.frames = 0
            self.is_open = source not in absent and not cv2.unplugged

        def isOpened(self):
            return self.is_open

        def set(self, prop, value):
            self.props[prop] = value
            return True

        def get(self, prop):
            return self.props.get(prop, 0.0)

        def read(self):
            if not self.is_open or cv2.unplugged:
                return False, None
            time.sleep(1.0 / (self.props.get(cv2.CAP_PROP_FPS) or 30.0))  # a camera blocks until its next frame
            w, h = size
            frame = np.zeros((h, w, 3), np.uint8)
            frame[:, :, 1] = (10 * self.frames) % 250
            self.frames += 1
            return True, frame

        def release(self):
            self.is_open = False

    def cvtColor(frame, code):
        assert code == cv2.COLOR_BGR2GRAY
        return np.round(frame.astype(np.float32) @ np.array([0.114, 0.587, 0.299], np.float32)).astype(np.uint8)

    def resize(frame, size, interpolation=None):
        w, h = size
        rows = (np.arange(h) * frame.shape[0] // h).astype(np.intp)
        cols = (np.arange(w) * frame.shape[1] // w).astype(np.intp)
        return np.ascontiguousarray(frame[rows][:, cols])

    cv2.VideoCapture, cv2.cvtColor, cv2.resize = VideoCapture, cvtColor, resize
    return cv2
