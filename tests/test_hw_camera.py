"""Camera backends: numpy/video sim, keep-newest dropping, OpenCV on a file, fake picamera2."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from device.errors import ConfigError, InputFileError
from device.hardware import camera as camera_mod
from device.hardware.camera import OpenCVCamera, Picamera2Camera, SimCamera, open_camera, probe
from device.hardware.select import HardwareError


def _frames(n=12, h=24, w=32):
    return np.stack([np.full((h, w), 10 * i, np.uint8) for i in range(n)])


def _read_all(cam, timeout=2.0):
    out = []
    while True:
        f = cam.read(timeout=timeout)
        if f is None:
            return out
        out.append(f)


# ------------------------------------------------------------------ sim (numpy)


@pytest.mark.device_venv
def test_array_source_fast_mode_delivers_every_frame():
    with open_camera("sim", source=_frames(), realtime=False, fps=30) as cam:
        cam.start()
        frames = _read_all(cam)
        assert cam.is_finished and cam.read(timeout=0.01) is None
    assert [f.index for f in frames] == list(range(12))
    assert [int(f.image[0, 0]) for f in frames] == [10 * i for i in range(12)]
    assert frames[3].captured_at == pytest.approx(3 / 30)  # source (video) time
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (24, 32)
    assert cam.dropped_frames == 0


@pytest.mark.device_venv
def test_keep_newest_drops_and_counts_when_consumer_is_slow():
    cam = SimCamera(_frames(20), fps=10000, realtime=True)
    cam.start()
    cam._thread.join(5)  # the "camera" ran through all frames; nobody read
    newest = cam.read(timeout=1)
    assert newest.index == 19  # no latency built up: the latest frame, not the oldest
    assert cam.dropped_frames == 19
    assert cam.read(timeout=0.5) is None and cam.is_finished
    cam.close()
    cam.close()


@pytest.mark.device_venv
def test_callable_iterator_colour_and_resize_sources():
    count = iter(range(3))

    def make():
        i = next(count, None)
        return None if i is None else np.full((8, 8, 3), (255, 0, 0), np.uint8)  # RGB red

    with SimCamera(make, realtime=False) as cam:
        cam.start()
        frames = _read_all(cam)
    assert len(frames) == 3 and int(frames[0].image[0, 0]) == 76  # 0.299 * 255

    gen = (np.full((40, 60), 0.5) for _ in range(2))  # float 0..1 frames
    with SimCamera(gen, realtime=False, size=(30, 20)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert [f.image.shape for f in frames] == [(20, 30)] * 2 and int(frames[0].image[0, 0]) == 128


@pytest.mark.device_venv
def test_sim_loop_and_config_errors():
    with SimCamera(_frames(3), realtime=False, loop=True) as cam:
        cam.start()
        assert [cam.read(timeout=1).image[0, 0] for _ in range(7)] == [0, 10, 20, 0, 10, 20, 0]
    with pytest.raises(ConfigError, match="loop"):
        SimCamera(lambda: None, loop=True)
    with pytest.raises(ConfigError, match="source"):
        open_camera("sim")
    with pytest.raises(ConfigError, match="unknown option"):
        open_camera("sim", source=_frames(), colour=True)


# ------------------------------------------------------------------ OpenCV


@pytest.fixture
def video_file(tmp_path):
    cv2 = pytest.importorskip("cv2")
    for name, fourcc in (("clip.avi", "MJPG"), ("clip.mp4", "mp4v"), ("clip.avi", "XVID")):
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 15.0, (64, 48))
        if not writer.isOpened():
            continue
        for i in range(10):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, :] = (0, 20 * i, 0)  # BGR: green ramps up
            writer.write(frame)
        writer.release()
        if path.exists() and path.stat().st_size > 0:
            return path
    pytest.skip("this OpenCV build can write no video codec (MJPG, mp4v, XVID)")


def test_opencv_backend_reads_gray_frames_from_a_file(video_file):
    cam = OpenCVCamera(str(video_file), fps=15)
    cam.start()
    frames = _read_all(cam)
    cam.close()
    assert cam.is_finished
    # Live-camera semantics (keep newest): every frame was delivered or counted as dropped.
    assert len(frames) + cam.dropped_frames == 10
    assert all(f.image.shape == (48, 64) and f.image.dtype == np.uint8 for f in frames)
    idx = [f.index for f in frames]
    assert idx == sorted(idx) and idx[-1] == 9
    last = frames[-1].image.astype(float).mean()
    assert last == pytest.approx(0.587 * 180, abs=8)  # gray from BGR green, codec tolerance


def test_opencv_backend_resizes_to_requested_size(video_file):
    with OpenCVCamera(str(video_file), size=(32, 24)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert frames and all(f.image.shape == (24, 32) for f in frames)


def test_video_file_sim_fast_mode(video_file):
    with open_camera("sim", source=video_file, realtime=False) as cam:
        assert cam.fps == pytest.approx(15.0)  # the file's own rate
        cam.start()
        frames = _read_all(cam)
    assert len(frames) == 10 and cam.dropped_frames == 0
    means = [f.image.mean() for f in frames]
    assert means == sorted(means)


def test_missing_video_is_input_error(tmp_path):
    with pytest.raises(InputFileError, match="nothing.mp4"):
        open_camera("sim", source=tmp_path / "nothing.mp4")


def test_opencv_unopenable_device_is_one_line(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(HardwareError, match="can't open") as err:
        OpenCVCamera(str(tmp_path / "no-such-device"))
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ picamera2 (fake)


@pytest.mark.device_venv
def test_picamera2_uses_the_y_plane_of_yuv420(fake_picamera2):
    with Picamera2Camera(size=(64, 48), fps=25) as cam:
        pc = fake_picamera2.opened[-1]
        assert pc.config["main"] == {"size": (64, 48), "format": "YUV420"}
        assert pc.config["controls"] == {"FrameRate": 25.0}
        cam.start()
        frames = [cam.read(timeout=2) for _ in range(3)]
    assert pc.closed and not pc.started
    for f in frames:
        assert f.image.shape == (48, 64) and f.image.flags["C_CONTIGUOUS"]
        y_row = (10 * f.index) % 200 + np.arange(64) % 50
        # Exactly the Y rows, cropped to the width: no U/V rows (77/200), no stride padding.
        np.testing.assert_array_equal(f.image, np.broadcast_to(y_row.astype(np.uint8), (48, 64)))


@pytest.mark.device_venv
def test_auto_prefers_picamera2_and_logs(fake_picamera2, caplog):
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_camera("auto", size=(32, 24)) as cam:
            assert isinstance(cam, Picamera2Camera)
    assert any("camera: real backend (auto: picamera2 camera fake_imx708" in r.getMessage() for r in caplog.records)
    rows = probe()
    assert rows[0][:2] == ("real:picamera2", True)
    assert [r[0] for r in rows] == ["real:picamera2", "real:opencv", "sim"]


@pytest.mark.device_venv
def test_auto_without_any_camera_falls_back_to_sim(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(camera_mod, "_probe_opencv", lambda device: (False, "no /dev/video* camera"))
    with open_camera("auto", source=_frames(2), realtime=False) as cam:
        assert isinstance(cam, SimCamera)
    with pytest.raises(HardwareError, match=r"picamera2 not installed.*no /dev/video\* camera"):
        open_camera("real")
