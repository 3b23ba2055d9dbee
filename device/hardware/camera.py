"""Cameras: picamera2 or OpenCV (real), a video file or numpy frames (sim).

Every backend delivers grayscale uint8 frames through a keep-newest slot of
size one, filled by its own capture thread: a consumer slower than the camera
gets the latest frame and the older ones are dropped and counted
(``dropped_frames``) instead of queueing up as latency. The sim backend in
batch mode (``realtime=False``) instead hands over every frame, as fast as the
consumer takes them, and drops nothing.

picamera2 is asked for a YUV420 main stream: its first ``height`` rows are the
luma (Y) plane, i.e. the grayscale image, with no colour conversion at all.
libcamera may answer with another format (a USB camera gives YUYV or MJPEG):
packed YUV is read from its Y samples, anything else is refused at open.
picamera2 also lists USB cameras (sorted last); those are left to OpenCV. Its
``capture_array`` waits forever by default, so it gets ``wait=capture_timeout_s``:
a stalled camera is logged and retried instead of hanging the capture thread.
OpenCV frames (USB cameras, video files) arrive as BGR and are converted; the
node OpenCV opens is the one the probe looked at (the first V4L2 *capture*
node, not a codec or ISP node that happens to be /dev/video0).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import glob
import logging
import os
import re
import struct
import threading
import time
from typing import Any, Iterator

import numpy as np

from device.config import CameraConfig
from device.errors import ConfigError, InputFileError
from device.hardware.base import Camera, Frame
from device.hardware.select import HardwareError, Probe, check_import, one_line, open_chosen

log = logging.getLogger("saysee.hardware")

__all__ = ["open_camera", "probe", "Picamera2Camera", "OpenCVCamera", "SimCamera", "FrameSlot"]

OPENCV_HINT = "pip install opencv-python-headless (on a Jetson use JetPack's OpenCV)"
PICAMERA2_HINT = "on Pi OS: sudo apt install python3-picamera2"
# Where the luma of each format picamera2 can hand back lies (make_array in picamera2/request.py):
# planar YUV420 is (h*3/2, stride) with Y in the first h rows; packed 4:2:2 is (h, stride/2, 2).
_LUMA = {
    "YUV420": lambda a, w, h: a[:h, :w],
    "YVU420": lambda a, w, h: a[:h, :w],
    "YUYV": lambda a, w, h: a[:h, :w, 0],
    "YVYU": lambda a, w, h: a[:h, :w, 0],
    "UYVY": lambda a, w, h: a[:h, :w, 1],
    "VYUY": lambda a, w, h: a[:h, :w, 1],
}
_MAX_READ_FAILURES = 5  # consecutive failed reads before a camera/video counts as ended
REOPEN_S = 1.0  # how often a live OpenCV camera that stopped delivering is reopened


class FrameSlot:
    """A one-frame hand-over between a capture thread and the consumer.

    ``put(block=False)`` replaces an unread frame (counted in ``dropped``);
    ``put(block=True)`` waits until the previous frame was taken (batch mode).
    """

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._finished = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, frame: Frame, *, block: bool = False) -> None:
        with self._cond:
            if block:
                self._cond.wait_for(lambda: self._frame is None or self._closed)
            if self._closed:
                return
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._finished or self._closed, timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def is_drained(self) -> bool:
        with self._cond:
            return self._closed or (self._finished and self._frame is None)


class _ThreadedCamera(Camera):
    """Capture thread + FrameSlot; subclasses implement ``_grab`` and ``_release``."""

    realtime = True  # False only for sim batch mode
    _paced = False  # True when the thread must pace itself (sim sources)

    def __init__(self, fps: float) -> None:
        if not float(fps) > 0:
            raise ConfigError(f"[camera] fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self._slot = FrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_captured = 0
        self.error: str | None = None  # what is wrong with the source now, or why it ended early

    @property
    def dropped_frames(self) -> int:  # type: ignore[override]
        return self._slot.dropped

    @property
    def is_finished(self) -> bool:
        return self._slot.is_drained

    def start(self) -> None:
        if self._thread is None and not self.is_closed:
            self._thread = threading.Thread(target=self._produce, name=f"saysee-camera-{self.backend}", daemon=True)
            self._thread.start()

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet read; None on timeout or once a finite source ended."""
        if self.is_closed:
            return None
        return self._slot.get(timeout)

    def _grab(self) -> tuple[np.ndarray, float] | None:
        """Next (grayscale uint8 image, captured_at), or None when the source ended."""
        raise NotImplementedError

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _produce(self) -> None:
        t0 = time.monotonic()
        index = 0
        try:
            while not self._stop.is_set():
                if self._paced and self.realtime:
                    delay = t0 + index / self.fps - time.monotonic()
                    if delay > 0:
                        self._sleep(delay)
                try:
                    got = self._grab()
                except Exception as e:  # noqa: BLE001 - a dying camera ends the stream, loudly
                    self.error = one_line(e)
                    log.error("camera: capture failed, stopping: %s", self.error)
                    return
                if got is None or self._stop.is_set():
                    return
                image, captured_at = got
                self._slot.put(Frame(image=image, index=index, captured_at=captured_at), block=not self.realtime)
                index += 1
                self.frames_captured = index
        finally:
            self._slot.finish()

    def _close(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=3.0)
        try:
            self._release()
        except Exception as e:  # noqa: BLE001
            log.warning("camera: release failed: %s", one_line(e))

    def _release(self) -> None:
        pass


def _to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 HxW from HxW, HxWx1, HxWx3 (RGB) or HxWx4; floats in 0..1 are scaled."""
    a = np.asarray(image)
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[:, :, 0]
        elif a.shape[2] in (3, 4):
            a = a[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            raise ValueError(f"camera: can't make grayscale from a frame of shape {a.shape}")
    elif a.ndim != 2:
        raise ValueError(f"camera: a frame must be HxW or HxWxC, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating) and a.size and float(np.max(a)) <= 1.0:
        a = a * 255.0
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _resize(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Nearest-neighbour resize to (width, height) in numpy (the sim may lack cv2)."""
    if size is None:
        return image
    w, h = size
    if image.shape == (h, w):
        return image
    rows = (np.arange(h) * image.shape[0] // h).astype(np.intp)
    cols = (np.arange(w) * image.shape[1] // w).astype(np.intp)
    return np.ascontiguousarray(image[rows][:, cols])


# --------------------------------------------------------------------- picamera2


class Picamera2Camera(_ThreadedCamera):
    """A Raspberry Pi (CSI) camera through picamera2, grayscale from the Y samples.

    ``cfg.device``: which CSI camera ("" = the first; USB cameras are skipped,
    OpenCV takes them). ``cfg.width``/``height``: requested size (libcamera may
    align it). ``cfg.fps``: requested rate. ``cfg.capture_timeout_s``: a capture
    that takes longer sets ``error`` (logged once) and is retried, so the app
    sees a stalled input rather than a finished one; ``error`` clears when
    frames come back.
    """

    backend = "real"

    def __init__(self, cfg: CameraConfig = CameraConfig()) -> None:
        super().__init__(cfg.fps)
        ok, why, _ = check_import("picamera2", PICAMERA2_HINT)
        if not ok:
            raise HardwareError(f"camera: {why}")
        from picamera2 import Picamera2

        self.size = (cfg.width, cfg.height)
        self.capture_timeout = float(cfg.capture_timeout_s)
        number = _camera_number(cfg.device)
        csi, usb = _csi_cameras(Picamera2.global_camera_info())
        if number >= len(csi):
            raise HardwareError(f"camera: picamera2 sees {len(csi)} CSI camera(s) and {usb} USB camera(s) "
                                f"(left to OpenCV); no CSI camera {number}")
        try:
            self._cam = Picamera2(csi[number])
        except Exception as e:  # noqa: BLE001
            raise HardwareError(f"camera: picamera2 can't open camera {number}: {one_line(e)}") from None
        try:
            config = self._cam.create_video_configuration(
                main={"size": self.size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
            )
            self._cam.configure(config)
            # libcamera may align the size or pick another format; what it chose is what we read.
            actual = self._cam.camera_configuration()["main"]
            self.size = (int(actual["size"][0]), int(actual["size"][1]))
            self.format = str(actual.get("format", "YUV420"))
        except Exception as e:  # noqa: BLE001
            self._cam.close()
            raise HardwareError(f"camera: picamera2 configuration failed: {one_line(e)}") from None
        if self.format not in _LUMA:
            self._cam.close()
            raise HardwareError(f"camera: picamera2 camera {number} delivers {self.format}, not YUV420 "
                                f"(or packed YUV); use driver = \"opencv\" for it")
        self._luma = _LUMA[self.format]
        self._started = False
        self.capture_timeouts = 0

    def start(self) -> None:
        if not self._started and not self.is_closed:
            self._cam.start()
            self._started = True
        super().start()

    def _grab(self):
        while not self._stop.is_set():
            try:
                # picamera2's default wait is forever: a stalled camera would hang this thread silently.
                array = self._cam.capture_array("main", wait=self.capture_timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                # Keep trying rather than end the stream: a live camera that "finished" would
                # look done, while one that delivers nothing shows up as a stalled input.
                self.capture_timeouts += 1
                # The timed-out capture stays in picamera2's job list, ahead of every later job (stop()
                # too, which would then never return): cancelled, as picamera2 advises for a loose cable.
                with contextlib.suppress(Exception):
                    self._cam.cancel_all_and_flush()
                if self.error is None and not self._stop.is_set():
                    self.error = (f"camera: no frame from picamera2 within {self.capture_timeout:g} s "
                                  "(camera stalled or unplugged); still trying")
                    log.error("%s", self.error)
                continue
            captured_at = time.monotonic()
            if self.error is not None:
                log.warning("camera: frames again after %d capture timeout(s)", self.capture_timeouts)
                self.error = None
            w, h = self.size
            # Rows may be wider than w (stride padding), hence the column crop too.
            return np.ascontiguousarray(self._luma(array, w, h)), captured_at
        return None

    def _release(self) -> None:
        if self._started:
            with contextlib.suppress(Exception):  # a capture cut short by close() may still be queued
                self._cam.cancel_all_and_flush()
            self._cam.stop()
        self._cam.close()


def _camera_number(device: str) -> int:
    device = str(device).strip()
    if not device:
        return 0
    if not device.isdigit():
        raise ConfigError(f"[camera] device = {device!r}: picamera2 needs a camera number (0, 1, ...)")
    return int(device)


def _csi_cameras(info) -> tuple[list[int], int]:
    """(positions in ``global_camera_info()`` of the non-USB cameras, number of USB cameras)."""
    csi = [i for i, c in enumerate(info) if "/usb" not in str(c.get("Id", "") if isinstance(c, dict) else "")]
    return csi, len(info) - len(csi)


# --------------------------------------------------------------------- OpenCV


class OpenCVCamera(_ThreadedCamera):
    """A USB camera (``cfg.device``: "" = first capture node, an index, /dev/videoN) or any OpenCV-readable path.

    ``cfg.width``/``height``/``fps`` are requested from the camera; frames that
    come back at a different size are resized so downstream shapes never change.
    A camera node that stops delivering (unplugged) sets ``error`` and is
    reopened every ``REOPEN_S``; a file's end ends the stream.
    """

    backend = "real"

    def __init__(self, cfg: CameraConfig = CameraConfig()) -> None:
        super().__init__(cfg.fps)
        ok, why, cv2 = check_import("cv2", OPENCV_HINT)
        if not ok:
            raise HardwareError(f"camera: {why}")
        self._cv2 = cv2
        self.size = (cfg.width, cfg.height)
        path, why = video_node(cfg.device)
        if path is None:
            raise HardwareError(f"camera: {why}")
        self.device = path
        self._live = path.startswith("/dev/")  # a camera node, not a file: its end is a failure
        self._cap = self._open_capture()
        if not self._cap.isOpened():
            self._cap.release()
            raise HardwareError(f"camera: OpenCV can't open {path!r} (absent, busy or unsupported)")

    def _open_capture(self):
        cv2 = self._cv2
        # V4L2 index N is /dev/videoN: the node the probe looked at.
        number = re.fullmatch(r"/dev/video(\d+)", self.device)
        cap = cv2.VideoCapture(int(number.group(1)) if number else self.device)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            # A one-frame driver buffer: otherwise V4L2 hands out stale frames first.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _grab(self):
        failures = 0
        while not self._stop.is_set():
            ok, frame = self._cap.read()
            if ok and frame is not None:
                captured_at = time.monotonic()
                if self.error is not None:
                    log.warning("camera: %s delivers frames again", self.device)
                    self.error = None
                if frame.ndim == 3:
                    frame = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY)
                if frame.shape != (self.size[1], self.size[0]):
                    frame = self._cv2.resize(frame, self.size, interpolation=self._cv2.INTER_AREA)
                return np.ascontiguousarray(frame), captured_at
            failures += 1
            if failures < _MAX_READ_FAILURES:
                self._stop.wait(0.02)
                continue
            if not self._live:
                log.warning("camera: %r stopped delivering frames (end of file)", self.device)
                return None
            # An unplugged USB camera: keep reopening it. Ending the stream would make a
            # live input look finished; delivering nothing makes it a stalled one.
            if self.error is None:
                self.error = f"camera: {self.device} stopped delivering frames (unplugged?); reopening"
                log.error("%s", self.error)
            self._cap.release()
            self._stop.wait(REOPEN_S)
            self._cap = self._open_capture()
            failures = 0
        return None

    def _release(self) -> None:
        self._cap.release()


# --------------------------------------------------------------------- sim


class SimCamera(_ThreadedCamera):
    """Frames from a video file (needs cv2) or numpy: the sim backend.

    ``source``: a video path; an array (N, H, W) or (N, H, W, 3) (RGB); an
    iterable of frames; or a callable returning the next frame, None at the end.
    From ``cfg``: ``fps`` the pacing rate; ``realtime`` paced at fps with
    keep-newest drops, like a camera, or (False) as fast as the reader takes
    frames, none dropped; ``loop`` restarts arrays/videos at the end; frames are
    resized to ``width`` x ``height``. ``captured_at`` is the source time
    (index / fps), i.e. the video timestamp.
    """

    backend = "sim"
    _paced = True

    @property
    def plays_out(self) -> bool:
        return not self.loop

    def __init__(self, source: Any, cfg: CameraConfig = CameraConfig()) -> None:
        self.realtime = bool(cfg.realtime)
        self.loop = bool(cfg.loop)
        self.size = (cfg.width, cfg.height)
        self._cap = None
        if source is None or (isinstance(source, str) and not source):
            raise ConfigError("[camera] video: the sim camera needs a video file, an array or a frame callable")
        if isinstance(source, (str, os.PathLike)):
            self._open_video(os.fspath(source))
            self._next = self._video_frame
        elif isinstance(source, np.ndarray):
            if source.ndim not in (3, 4) or len(source) == 0:
                raise ConfigError(f"[camera] source array must be (N, H, W) or (N, H, W, 3), got {source.shape}")
            self._frames = source
            self._pos = 0
            self._next = self._array_frame
        elif callable(source):
            self._call = source
            self._next = self._callable_frame
        else:
            try:
                self._iter: Iterator = iter(source)
            except TypeError:
                raise ConfigError(f"[camera] source: unsupported type {type(source).__name__}") from None
            self._next = self._iter_frame
        if self.loop and self._next in (self._callable_frame, self._iter_frame):
            raise ConfigError("[camera] loop: only video files and arrays can loop")
        super().__init__(cfg.fps)
        self._index = 0

    def _open_video(self, path: str) -> None:
        if not os.path.exists(path):
            raise InputFileError(f"{path}: no such video file")
        ok, why, cv2 = check_import("cv2", OPENCV_HINT)
        if not ok:
            raise InputFileError(f"{path}: reading video files needs OpenCV ({why})")
        self._cv2 = cv2
        self._path = path
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            self._cap.release()
            raise InputFileError(f"{path}: OpenCV can't read this video")

    def _video_frame(self):
        ok, frame = self._cap.read()
        if not ok and self.loop and self._index > 0:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            return None
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame

    def _array_frame(self):
        if self._pos >= len(self._frames):
            if not self.loop:
                return None
            self._pos = 0
        frame = self._frames[self._pos]
        self._pos += 1
        return frame

    def _callable_frame(self):
        return self._call()

    def _iter_frame(self):
        return next(self._iter, None)

    def _grab(self):
        frame = self._next()
        if frame is None:
            return None
        image = _resize(_to_gray(frame), self.size)
        captured_at = self._index / self.fps
        self._index += 1
        return image, captured_at

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()


# --------------------------------------------------------------------- choice


def _probe_picamera2() -> tuple[bool, str]:
    ok, why, mod = check_import("picamera2", PICAMERA2_HINT)
    if not ok:
        return False, why
    try:
        cameras = mod.Picamera2.global_camera_info()
    except Exception as e:  # noqa: BLE001
        return False, f"libcamera can't list cameras: {one_line(e)}"
    csi, usb = _csi_cameras(cameras)
    if not csi:
        extra = f" ({usb} USB camera(s), left to OpenCV)" if usb else ""
        return False, f"picamera2 sees no CSI camera (ribbon cable? camera enabled?){extra}"
    first = cameras[csi[0]]
    return True, f"picamera2 camera {first.get('Model', '?')} ({len(csi)} CSI, {usb} USB found)"


# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability): driver[16] card[32] bus_info[32]
# version capabilities device_caps reserved[3] -> 104 bytes.
_VIDIOC_QUERYCAP = 0x80685600
_CAP_VIDEO_CAPTURE, _CAP_VIDEO_CAPTURE_MPLANE = 0x1, 0x1000
_CAP_M2M, _CAP_M2M_MPLANE, _CAP_DEVICE_CAPS = 0x8000, 0x4000, 0x80000000


def _querycap(path: str) -> tuple[int, str] | None:
    """(device capabilities, bus_info) of a V4L2 node, or None if it can't be asked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, _VIDIOC_QUERYCAP, bytes(104))
    except OSError:
        return None
    finally:
        os.close(fd)
    caps, device_caps = struct.unpack_from("<II", buf, 84)
    bus = buf[48:80].split(b"\0", 1)[0].decode(errors="replace")
    return (device_caps if caps & _CAP_DEVICE_CAPS else caps), bus


def _video_nodes() -> list[str]:
    """/dev/video* in numeric order (so video2 comes before video10)."""
    nodes = glob.glob("/dev/video*")
    return sorted(nodes, key=lambda p: (int(m.group(1)) if (m := re.search(r"(\d+)$", p)) else 1 << 30, p))


def video_node(device: str = "") -> tuple[str | None, str]:
    """(the node or path OpenCV should open, why) for ``[camera] device``; None when there is none.

    "" picks the first V4L2 *capture* node, USB cameras first: on a Pi the low
    numbers are often the ISP, codec or CSI (raw Bayer) nodes, useless to OpenCV.
    """
    device = str(device).strip()
    if device.isdigit():
        return f"/dev/video{int(device)}", f"/dev/video{int(device)} as configured"
    if device:
        return device, f"{device} as configured"
    nodes = _video_nodes()
    if not nodes:
        return None, "no /dev/video* camera"
    capture = []
    for node in nodes:
        got = _querycap(node)
        if got is None:
            continue
        caps, bus = got
        if caps & (_CAP_VIDEO_CAPTURE | _CAP_VIDEO_CAPTURE_MPLANE) and not caps & (_CAP_M2M | _CAP_M2M_MPLANE):
            capture.append((not bus.startswith("usb"), node, bus))
    if not capture:
        return None, f"no V4L2 capture node among {', '.join(nodes)}"
    _, node, bus = min(capture, key=lambda c: c[0])
    return node, f"first capture node ({bus or 'unknown bus'})"


def _probe_opencv(device: str = "") -> tuple[bool, str]:
    ok, why, _ = check_import("cv2", OPENCV_HINT)
    if not ok:
        return False, why
    path, why = video_node(device)
    if path is None:
        return False, why
    if not os.path.exists(path):
        return False, f"{path} absent"
    if not os.access(path, os.R_OK):
        return False, f"{path}: permission denied (add the user to the 'video' group)"
    return True, f"OpenCV camera {path} ({why})"


def _pick_driver(cfg: CameraConfig) -> tuple[str, bool, str]:
    """(driver to use, usable, why) for the real backend."""
    pc_why = ""
    if cfg.driver in ("auto", "picamera2"):
        ok, why = _probe_picamera2()
        if ok or cfg.driver == "picamera2":
            return "picamera2", ok, why
        pc_why = why
    ok, why = _probe_opencv(cfg.device)
    if cfg.driver == "auto" and not ok:
        why = f"{pc_why}; {why}"
    return "opencv", ok, why


def probe(cfg: CameraConfig = CameraConfig()) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`, for the ``[camera]`` section given."""
    out: list[Probe] = [("real:picamera2", *_probe_picamera2())]
    out.append(("real:opencv", *_probe_opencv(cfg.device)))
    cv_ok = check_import("cv2")[0]
    out.append(("sim", True, "video files and numpy frames" if cv_ok else "numpy frames only (no cv2 for video files)"))
    return out


def open_camera(backend: str | None = None, cfg: CameraConfig | None = None, *, source: Any = None) -> Camera:
    """Open the camera: ``backend`` "auto" | "real" (picamera2 or OpenCV) | "sim".

    ``cfg`` is the ``[camera]`` section: real ``driver`` ("auto": picamera2 if it
    sees a CSI camera, else OpenCV), ``device``; both ``width``, ``height``,
    ``fps``; sim ``video``, ``realtime``, ``loop``. ``source`` gives the sim
    frames directly (an array, iterable or callable) instead of ``cfg.video``.
    "auto" falls back to the sim when no real camera is usable *or* it fails to
    open (one warning). ``backend`` None means ``cfg.backend``; ``cfg`` None, the
    defaults. Call ``start()`` before reading.
    """
    cfg = cfg if cfg is not None else CameraConfig()
    backend = cfg.backend if backend is None else backend
    picked: dict[str, str] = {}

    def probe_real() -> tuple[bool, str]:
        name, ok, why = _pick_driver(cfg)
        picked["driver"], picked["why"] = name, why
        return ok, why

    def real() -> Camera:
        return Picamera2Camera(cfg) if picked["driver"] == "picamera2" else OpenCVCamera(cfg)

    def sim() -> Camera:
        if source is None and not cfg.video and "why" in picked:
            # "auto" on a box whose camera is missing or broken: say so, not "the sim camera needs a video".
            raise HardwareError(f"camera: no usable camera ({picked['why']}) and no [camera] video to play instead")
        return SimCamera(cfg.video if source is None else source, cfg)

    return open_chosen("camera", backend, probe_real, real, sim, sim_why="frames from the configured source")
