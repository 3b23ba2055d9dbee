"""Camera backends: numpy/video sim, keep-newest dropping, OpenCV on a file and a fake cv2, fake picamera2.

What every backend must do alike (contiguous frame indices, close twice, read
after close) is in tests/contracts/test_camera.py.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from device.config import CameraConfig, config_from_dict
from device.errors import ConfigError, InputFileError
from device.hardware import camera as camera_mod
from device.hardware.camera import OpenCVCamera, Picamera2Camera, SimCamera, open_camera, probe
from device.hardware.select import HardwareError
from fakes import cv2 as cv2_fake
from fakes import picamera2 as picamera2_fake


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
    with open_camera("sim", CameraConfig(realtime=False, fps=30, width=32, height=24), source=_frames()) as cam:
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
    cam = SimCamera(_frames(20), CameraConfig(fps=240, realtime=True, width=32, height=24))
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

    with SimCamera(make, CameraConfig(realtime=False, width=8, height=8)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert len(frames) == 3 and int(frames[0].image[0, 0]) == 76  # 0.299 * 255

    gen = (np.full((40, 60), 0.5) for _ in range(2))  # float 0..1 frames
    with SimCamera(gen, CameraConfig(realtime=False, width=30, height=20)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert [f.image.shape for f in frames] == [(20, 30)] * 2 and int(frames[0].image[0, 0]) == 128


@pytest.mark.device_venv
def test_sim_loop_and_config_errors():
    with SimCamera(_frames(3), CameraConfig(realtime=False, loop=True, width=32, height=24)) as cam:
        cam.start()
        assert [cam.read(timeout=1).image[0, 0] for _ in range(7)] == [0, 10, 20, 0, 10, 20, 0]
    with pytest.raises(ConfigError, match="loop"):
        SimCamera(lambda: None, CameraConfig(loop=True))
    with pytest.raises(ConfigError, match="video"):
        open_camera("sim")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        config_from_dict({"camera": {"colour": True}})


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
    cam = OpenCVCamera(CameraConfig(device=str(video_file), fps=15, width=64, height=48))
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
    with OpenCVCamera(CameraConfig(device=str(video_file), width=32, height=24)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert frames and all(f.image.shape == (24, 32) for f in frames)


def test_video_file_sim_fast_mode(video_file):
    with open_camera("sim", CameraConfig(video=str(video_file), realtime=False, width=64, height=48)) as cam:
        cam.start()
        frames = _read_all(cam)
    assert len(frames) == 10 and cam.dropped_frames == 0
    means = [f.image.mean() for f in frames]
    assert means == sorted(means)


def test_missing_video_is_input_error(tmp_path):
    with pytest.raises(InputFileError, match="nothing.mp4"):
        open_camera("sim", CameraConfig(video=str(tmp_path / "nothing.mp4")))


def test_opencv_unopenable_device_is_one_line(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(HardwareError, match="can't open") as err:
        OpenCVCamera(CameraConfig(device=str(tmp_path / "no-such-device")))
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ picamera2 (fake)


@pytest.mark.device_venv
def test_picamera2_uses_the_y_plane_of_yuv420(fake_picamera2):
    with Picamera2Camera(CameraConfig(width=64, height=48, fps=25)) as cam:
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
        with open_camera("auto", CameraConfig(width=32, height=24)) as cam:
            assert isinstance(cam, Picamera2Camera)
    assert any("camera: real backend (auto: picamera2 camera imx708" in r.getMessage() for r in caplog.records)
    rows = probe()
    assert rows[0][:2] == ("real:picamera2", True)
    assert [r[0] for r in rows] == ["real:picamera2", "real:opencv", "sim"]


@pytest.mark.device_venv
def test_auto_without_any_camera_falls_back_to_sim(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(camera_mod, "_probe_opencv", lambda device: (False, "no /dev/video* camera"))
    with open_camera("auto", CameraConfig(realtime=False), source=_frames(2)) as cam:
        assert isinstance(cam, SimCamera)
    with pytest.raises(HardwareError, match=r"picamera2 not installed.*no /dev/video\* camera"):
        open_camera("real")
    # No camera and nothing to play instead: what is missing, not "the sim camera needs a video file".
    with pytest.raises(HardwareError, match=r"^camera: no usable camera \(.*no /dev/video\* camera\) "
                                            r"and no \[camera\] video to play instead$"):
        open_camera("auto", CameraConfig())


# ------------------------------------------------------------------ picamera2 on a real box: USB, formats, stalls


def _install_picamera2(monkeypatch, **kw):
    import sys

    mod = picamera2_fake.make_module(**kw)
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return mod


@pytest.mark.device_venv
def test_picamera2_leaves_usb_cameras_to_opencv(monkeypatch):
    _install_picamera2(monkeypatch, cameras=(picamera2_fake.USB_ID,))
    monkeypatch.setattr(camera_mod, "_probe_opencv", lambda device: (False, "no /dev/video* camera"))
    backend, usable, why = probe()[0]
    assert (backend, usable) == ("real:picamera2", False) and "1 USB camera(s), left to OpenCV" in why
    with open_camera("auto", CameraConfig(realtime=False), source=_frames(2)) as cam:
        assert isinstance(cam, SimCamera)  # not a YUYV USB camera read as if it were YUV420
    with pytest.raises(HardwareError, match="0 CSI camera"):
        Picamera2Camera(CameraConfig())


@pytest.mark.device_venv
def test_picamera2_opens_the_csi_camera_when_a_usb_one_sorts_first(monkeypatch):
    mod = _install_picamera2(monkeypatch, cameras=(picamera2_fake.USB_ID, picamera2_fake.CSI_ID))
    with Picamera2Camera(CameraConfig(width=32, height=24)) as cam:
        assert mod.opened[-1].info["Id"] == picamera2_fake.CSI_ID and cam.format == "YUV420"
    with pytest.raises(HardwareError, match="1 CSI camera.*1 USB camera"):
        Picamera2Camera(CameraConfig(device="1"))


@pytest.mark.device_venv
def test_picamera2_reads_the_luma_of_packed_yuyv(monkeypatch):
    _install_picamera2(monkeypatch, formats={picamera2_fake.CSI_ID: "YUYV"})
    with Picamera2Camera(CameraConfig(width=64, height=48)) as cam:
        cam.start()
        frames = [cam.read(timeout=2) for _ in range(2)]
    for f in frames:
        y_row = ((10 * f.index) % 200 + np.arange(64) % 50).astype(np.uint8)
        np.testing.assert_array_equal(f.image, np.broadcast_to(y_row, (48, 64)))  # no U/V (77/200) samples


@pytest.mark.device_venv
def test_picamera2_refuses_a_format_without_luma(monkeypatch):
    mod = _install_picamera2(monkeypatch, formats={picamera2_fake.CSI_ID: "MJPEG"})
    with pytest.raises(HardwareError, match="delivers MJPEG") as err:
        Picamera2Camera(CameraConfig())
    assert "\n" not in str(err.value) and mod.opened[-1].closed


@pytest.mark.device_venv
def test_auto_falls_back_with_one_warning_when_the_camera_fails_to_open(monkeypatch, caplog):
    _install_picamera2(monkeypatch, formats={picamera2_fake.CSI_ID: "MJPEG"})
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_camera("auto", CameraConfig(realtime=False), source=_frames(2)) as cam:
            assert isinstance(cam, SimCamera)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "delivers MJPEG" in warnings[0] and "using sim" in warnings[0]
    with pytest.raises(HardwareError, match="delivers MJPEG"):
        open_camera("real", CameraConfig())


@pytest.mark.device_venv
def test_a_stalled_picamera2_is_an_error_not_a_hang_nor_an_end(monkeypatch, caplog):
    mod = _install_picamera2(monkeypatch, stall_after=2)
    with caplog.at_level(logging.ERROR, logger="saysee.hardware"):
        with Picamera2Camera(CameraConfig(width=32, height=24, capture_timeout_s=0.1)) as cam:
            cam.start()
            got = []
            while (f := cam.read(timeout=1.0)) is not None:
                got.append(f)
            assert {f.index for f in got} <= {0, 1} and len(got) + cam.dropped_frames == 2
            # Still a live camera: the app sees a stalled input, not a finished source.
            assert not cam.is_finished and cam.capture_timeouts >= 2
            assert "no frame from picamera2 within 0.1 s" in cam.error
    assert set(mod.opened[-1].waits) == {0.1}  # never picamera2's default wait-forever
    assert sum("stalled" in r.getMessage() for r in caplog.records) == 1  # logged once, not per retry
    # Closed for real: stop() did not queue behind the timed-out captures (systemctl stop would hang there).
    assert not mod.opened[-1].started and mod.opened[-1].closed
    assert not [r for r in caplog.records if "release failed" in r.getMessage()]


@pytest.mark.device_venv
def test_a_picamera2_that_recovers_clears_its_error(monkeypatch):
    _install_picamera2(monkeypatch, stall_after=1, stall_for=2)
    with Picamera2Camera(CameraConfig(width=32, height=24, capture_timeout_s=0.1)) as cam:
        cam.start()
        first = cam.read(timeout=2)
        second = cam.read(timeout=2)
        assert first.index == 0 and second.index >= 1
        assert cam.capture_timeouts == 2 and cam.error is None


# ------------------------------------------------------------------ OpenCV: the probed node is the opened node


@pytest.fixture
def fake_cv2(monkeypatch):
    import sys

    mod = cv2_fake.make_module()
    monkeypatch.setitem(sys.modules, "cv2", mod)
    return mod


@pytest.mark.device_venv
def test_opencv_opens_the_capture_node_the_probe_looked_at(monkeypatch, tmp_path, fake_cv2):
    nodes = {f"{tmp_path}/video{i}": caps for i, caps in (
        (0, (camera_mod._CAP_M2M_MPLANE, "platform:bcm2835-codec")),  # a codec node sorts first
        (1, (camera_mod._CAP_VIDEO_CAPTURE, "platform:1f00110000.csi")),  # raw Bayer CSI node
        (10, None),  # can't be asked
        (2, (camera_mod._CAP_VIDEO_CAPTURE, "usb-xhci-hcd.0-1")))}
    for n in nodes:
        open(n, "w").close()
    monkeypatch.setattr(camera_mod, "_video_nodes", lambda: list(nodes))
    monkeypatch.setattr(camera_mod, "_querycap", nodes.get)
    monkeypatch.setitem(__import__("sys").modules, "picamera2", None)
    rows = dict((b, (ok, why)) for b, ok, why in probe())
    assert rows["real:opencv"][0] and f"{tmp_path}/video2" in rows["real:opencv"][1]
    with open_camera("real", CameraConfig(width=32, height=24)) as cam:
        assert isinstance(cam, OpenCVCamera) and fake_cv2.opened == [f"{tmp_path}/video2"]
        cam.start()
        frame = cam.read(timeout=2)
    assert frame.image.shape == (24, 32)


@pytest.mark.device_venv
def test_opencv_index_is_the_same_video_node(fake_cv2):
    assert camera_mod.video_node("3")[0] == "/dev/video3"
    with OpenCVCamera(CameraConfig(device="/dev/video3")):
        assert fake_cv2.opened == [3]  # V4L2 index 3 is /dev/video3
    assert camera_mod.video_node("")[0] is None or camera_mod.video_node("")[0].startswith("/dev/video")


@pytest.mark.device_venv
def test_an_unplugged_usb_camera_is_reopened_not_finished(monkeypatch, tmp_path, fake_cv2, caplog):
    monkeypatch.setattr(camera_mod, "REOPEN_S", 0.05)
    node = "/dev/video7"
    with caplog.at_level(logging.ERROR, logger="saysee.hardware"), \
            OpenCVCamera(CameraConfig(device=node, width=32, height=24, fps=60)) as cam:
        cam.start()
        assert cam.read(timeout=2) is not None
        fake_cv2.unplugged = True
        for _ in range(200):
            if cam.error:
                break
            cam.read(timeout=0.05)
        assert cam.error and "/dev/video7 stopped delivering frames" in cam.error
        assert not cam.is_finished  # a stalled input, not a finished one
        fake_cv2.unplugged = False
        assert cam.read(timeout=2) is not None
        assert cam.error is None and fake_cv2.opened.count(7) >= 2  # reopened the same node
    assert sum("stopped delivering" in r.getMessage() for r in caplog.records) == 1


def test_querycap_reads_a_v4l2_struct(monkeypatch, tmp_path):
    import struct

    node = tmp_path / "video0"
    node.write_bytes(b"")
    buf = bytearray(104)
    buf[48:54] = b"usb-x\0"
    struct.pack_into("<II", buf, 84, camera_mod._CAP_DEVICE_CAPS | 0x1 | 0x1000, 0x1)
    monkeypatch.setattr(camera_mod.fcntl, "ioctl", lambda fd, req, arg: bytes(buf))
    assert camera_mod._querycap(str(node)) == (0x1, "usb-x")
    assert camera_mod._querycap(str(tmp_path / "absent")) is None
