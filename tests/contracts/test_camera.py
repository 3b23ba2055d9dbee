"""The camera contract, on every backend that loads here (and the real camera under ``-m hardware``).

Frames are grayscale uint8 at the configured size with indices counting every
captured frame, so the frames read are in order and every gap is a counted
drop (none at all in the sim's batch mode); ``close()`` twice is fine, ``read``
after it returns None at once, ``start`` after it does nothing.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from contracts.conftest import real_or_skip
from device.config import CameraConfig
from device.hardware.camera import open_camera
from fakes import cv2 as cv2_fake
from fakes import picamera2 as picamera2_fake

pytestmark = pytest.mark.device_venv

W, H = 32, 24
N = 12


def frames(n=N):
    return np.stack([np.full((H, W), 10 * i, np.uint8) for i in range(n)])


class CameraBackend:
    """One backend as the contract sees it: how to open it, and whether its source ends."""

    def __init__(self, name: str, monkeypatch, tmp_path) -> None:
        self.name = name
        self.cfg = CameraConfig(width=W, height=H, fps=60.0, realtime=name != "sim-batch")
        self.finite = name.startswith("sim")
        if name == "picamera2":
            monkeypatch.setitem(sys.modules, "picamera2", picamera2_fake.make_module())
            self.cfg = CameraConfig(width=W, height=H, driver="picamera2")
        elif name == "opencv":
            monkeypatch.setitem(sys.modules, "cv2", cv2_fake.make_module())
            node = tmp_path / "video0"  # a node OpenCV opens by path; the fake cv2 plays a camera
            node.write_bytes(b"")
            self.cfg = CameraConfig(width=W, height=H, fps=60.0, driver="opencv", device=str(node))
        elif name == "real":
            self.cfg = CameraConfig(width=W, height=H)

    def open(self):
        if self.finite:
            return open_camera("sim", self.cfg, source=frames())
        return real_or_skip(lambda: open_camera("real", self.cfg))


@pytest.fixture(params=["sim-batch", "sim-realtime", "picamera2", "opencv",
                        pytest.param("real", marks=pytest.mark.hardware)])
def backend(request, monkeypatch, tmp_path):
    return CameraBackend(request.param, monkeypatch, tmp_path)


def read_frames(cam, n):
    got = []
    while len(got) < n:
        f = cam.read(timeout=5)
        if f is None:
            break
        got.append(f)
    return got


def test_frame_indices_count_every_captured_frame(backend):
    with backend.open() as cam:
        cam.start()
        seen = read_frames(cam, N if backend.finite else 5)
        dropped = cam.dropped_frames
    assert seen, "no frame at all"
    idx = [f.index for f in seen]
    assert idx == sorted(set(idx))  # in order, none repeated
    assert idx[-1] + 1 - len(seen) <= dropped  # every gap is a counted drop
    if backend.name == "sim-batch":
        assert idx == list(range(N)) and dropped == 0
        assert [int(f.image[0, 0]) for f in seen] == [10 * i for i in range(N)]
    for f in seen:
        assert f.image.dtype == np.uint8 and f.image.shape == (H, W) and f.image.flags["C_CONTIGUOUS"]


def test_close_twice_then_read_returns_none_at_once(backend):
    cam = backend.open()
    cam.start()
    assert cam.read(timeout=5) is not None
    cam.close()
    cam.close()
    assert cam.is_closed
    got = []
    reader = threading.Thread(target=lambda: got.append(cam.read(timeout=None)))  # must not wait at all
    reader.start()
    reader.join(5)
    assert not reader.is_alive() and got == [None]
    cam.start()  # does nothing after close
    assert cam.read(timeout=0.05) is None


def test_a_finite_source_finishes(backend):
    if not backend.finite:
        pytest.skip("a live camera never finishes")
    with backend.open() as cam:
        cam.start()
        read_frames(cam, N + 1)
        assert cam.is_finished and cam.read(timeout=0.01) is None
