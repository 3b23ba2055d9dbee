"""Cameras: picamera2 or OpenCV (real), a video file or numpy frames (sim).

Every backend delivers grayscale uint8 frames through a keep-newest slot of
size one, filled by its own capture thread: a consumer slower than the camera
gets the latest frame and the older ones are dropped and counted
(``dropped_frames``) instead of queueing up as latency. The sim backend in
batch mode (``realtime=False``) instead hands over every frame, as fast as the
consumer takes them, and drops nothing.

picamera2 is asked for a YUV420 main stream: its first ``height`` rows are the
luma (Y) plane, i.e. the grayscale image, with no colour conversion at all.
OpenCV frames (USB cameras, video files) arrive as BGR and are converted.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from typing import Any, Iterator

import numpy as np

from device.errors import ConfigError, InputFileError
from device.hardware.base import Camera, Frame
from device.hardware.select import HardwareError, Probe, check_import, choose_backend, one_line, split_options

log = logging.getLogger("saysee.hardware")

__all__ = ["open_camera", "probe", "Picamera2Camera", "OpenCVCamera", "SimCamera", "FrameSlot"]

DRIVERS = ("auto", "picamera2", "opencv")
OPENCV_HINT = "pip install opencv-python-headless"
_MAX_READ_FAILURES = 5  # consecutive failed reads before a camera/video counts as ended


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
                    log.error("camera: capture failed, stopping: %s", one_line(e))
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


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"[camera] size: expected [width, height], got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"[camera] size: expected positive [width, height], got {size!r}")
    return w, h


# --------------------------------------------------------------------- picamera2


class Picamera2Camera(_ThreadedCamera):
    """A Raspberry Pi camera through picamera2, grayscale from the YUV420 Y plane.

    ``camera_num``: which camera (0). ``size``: (width, height). ``fps``: requested
    frame rate (the sensor mode may cap it).
    """

    backend = "real"

    def __init__(self, camera_num: int = 0, *, size=(320, 240), fps: float = 30.0) -> None:
        super().__init__(fps)
        ok, why, _ = check_import("picamera2", "on Pi OS: sudo apt install python3-picamera2")
        if not ok:
            raise HardwareError(f"camera: {why}")
        from picamera2 import Picamera2

        self.size = _check_size(size) or (320, 240)
        cameras = Picamera2.global_camera_info()
        if int(camera_num) >= len(cameras):
            raise HardwareError(f"camera: picamera2 sees {len(cameras)} camera(s); no camera {camera_num}")
        try:
            self._cam = Picamera2(int(camera_num))
        except Exception as e:  # noqa: BLE001
            raise HardwareError(f"camera: picamera2 can't open camera {camera_num}: {one_line(e)}") from None
        try:
            config = self._cam.create_video_configuration(
                main={"size": self.size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
            )
            self._cam.configure(config)
            # libcamera may align the size; what it chose is what we crop to.
            actual = self._cam.camera_configuration()["main"]["size"]
            self.size = (int(actual[0]), int(actual[1]))
        except Exception as e:  # noqa: BLE001
            self._cam.close()
            raise HardwareError(f"camera: picamera2 configuration failed: {one_line(e)}") from None
        self._started = False

    def start(self) -> None:
        if not self._started and not self.is_closed:
            self._cam.start()
            self._started = True
        super().start()

    def _grab(self):
        array = self._cam.capture_array("main")
        captured_at = time.monotonic()
        w, h = self.size
        # YUV420 (I420): rows [0, h) are Y, then U and V at quarter size. Rows may
        # be wider than w (stride padding), hence the column crop too.
        return np.ascontiguousarray(array[:h, :w]), captured_at

    def _release(self) -> None:
        if self._started:
            self._cam.stop()
        self._cam.close()


# --------------------------------------------------------------------- OpenCV


class OpenCVCamera(_ThreadedCamera):
    """A USB camera (index or /dev/videoN) or any OpenCV-readable path, as grayscale.

    ``size``/``fps`` are requested from the camera; frames that come back at a
    different size are resized so downstream shapes never change.
    """

    backend = "real"

    def __init__(self, device: int | str = 0, *, size=None, fps: float = 30.0) -> None:
        super().__init__(fps)
        ok, why, cv2 = check_import("cv2", OPENCV_HINT)
        if not ok:
            raise HardwareError(f"camera: {why}")
        self._cv2 = cv2
        self.device = device
        self.size = _check_size(size)
        source = int(device) if isinstance(device, int) or str(device).isdigit() else os.fspath(device)
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            self._cap.release()
            raise HardwareError(f"camera: OpenCV can't open {device!r} (absent, busy or unsupported)")
        if self.size:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap.set(cv2.CAP_PROP_FPS, self.fps)
        # A one-frame driver buffer: otherwise V4L2 hands out stale frames first.
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def _grab(self):
        failures = 0
        while not self._stop.is_set():
            ok, frame = self._cap.read()
            if ok and frame is not None:
                captured_at = time.monotonic()
                if frame.ndim == 3:
                    frame = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2GRAY)
                if self.size and frame.shape != (self.size[1], self.size[0]):
                    frame = self._cv2.resize(frame, self.size, interpolation=self._cv2.INTER_AREA)
                return np.ascontiguousarray(frame), captured_at
            failures += 1
            if failures >= _MAX_READ_FAILURES:
                log.warning("camera: %r stopped delivering frames (end of file or unplugged)", self.device)
                return None
            self._stop.wait(0.02)
        return None

    def _release(self) -> None:
        self._cap.release()


# --------------------------------------------------------------------- sim


class SimCamera(_ThreadedCamera):
    """Frames from a video file (needs cv2) or numpy: the sim backend.

    ``source``: a video path; an array (N, H, W) or (N, H, W, 3) (RGB); an
    iterable of frames; or a callable returning the next frame, None at the end.
    ``fps``: pacing rate (None: the video's own rate, else 30). ``realtime``:
    paced at fps with keep-newest drops, like a camera; False: as fast as the
    reader takes frames, none dropped. ``loop``: restart arrays/videos at the end.
    ``size``: (width, height) to resize to. ``captured_at`` is the source time
    (index / fps), i.e. the video timestamp.
    """

    backend = "sim"
    _paced = True

    def __init__(
        self,
        source: Any = None,
        *,
        fps: float | None = None,
        realtime: bool = True,
        loop: bool = False,
        size=None,
    ) -> None:
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.size = _check_size(size)
        self._cap = None
        if source is None:
            raise ConfigError("[camera] source: the sim camera needs a video file, an array or a frame callable")
        if isinstance(source, (str, os.PathLike)):
            self._open_video(os.fspath(source))
            native = self._cap.get(self._cv2.CAP_PROP_FPS) or 0.0
            fps = fps or (native if 1.0 <= native <= 240.0 else 30.0)
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
        super().__init__(fps or 30.0)
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
    ok, why, mod = check_import("picamera2", "on Pi OS: sudo apt install python3-picamera2")
    if not ok:
        return False, why
    try:
        cameras = mod.Picamera2.global_camera_info()
    except Exception as e:  # noqa: BLE001
        return False, f"libcamera can't list cameras: {one_line(e)}"
    if not cameras:
        return False, "picamera2 sees no camera (ribbon cable? camera enabled?)"
    first = cameras[0]
    model = first.get("Model", "?") if isinstance(first, dict) else "?"
    return True, f"picamera2 camera {model} ({len(cameras)} found)"


def _probe_opencv(device: int | str | None) -> tuple[bool, str]:
    ok, why, _ = check_import("cv2", OPENCV_HINT)
    if not ok:
        return False, why
    if device is None:
        nodes = sorted(glob.glob("/dev/video*"))
        if not nodes:
            return False, "no /dev/video* camera"
        path = nodes[0]
    elif isinstance(device, int) or str(device).isdigit():
        path = f"/dev/video{int(device)}"
    else:
        path = os.fspath(device)
    if not os.path.exists(path):
        return False, f"{path} absent"
    if not os.access(path, os.R_OK):
        return False, f"{path}: permission denied (add the user to the 'video' group)"
    return True, f"OpenCV camera {path}"


def _pick_driver(driver: str, device) -> tuple[str | None, bool, str]:
    """(driver to use or None, usable, why) for the real backend."""
    driver = str(driver or "auto").lower()
    if driver not in DRIVERS:
        raise ConfigError(f"[camera] driver: expected one of {', '.join(DRIVERS)}; got {driver!r}")
    if driver in ("auto", "picamera2"):
        ok, why = _probe_picamera2()
        if ok or driver == "picamera2":
            return "picamera2", ok, why
        pc_why = why
    ok, why = _probe_opencv(device)
    if driver == "auto" and not ok:
        why = f"{pc_why}; {why}"
    return "opencv", ok, why


def probe(**options) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`; takes open_camera's options."""
    out: list[Probe] = [("real:picamera2", *_probe_picamera2())]
    device = options.get("device")
    out.append(("real:opencv", *_probe_opencv(device)))
    cv_ok = check_import("cv2")[0]
    out.append(("sim", True, "video files and numpy frames" if cv_ok else "numpy frames only (no cv2 for video files)"))
    return out


def open_camera(backend: str = "auto", **options) -> Camera:
    """Open the camera: ``backend`` "auto" | "real" (picamera2 or OpenCV) | "sim".

    Options: real ``driver`` ("auto": picamera2 if it sees a camera, else OpenCV;
    or "picamera2" | "opencv"), ``device`` (picamera2 camera number, or OpenCV
    index / /dev/videoN / path; default 0); common ``size`` ([w, h]), ``fps``;
    sim ``source`` (video path | array | iterable | callable), ``realtime`` (True),
    ``loop`` (False). Call ``start()`` before reading.
    """
    options = dict(options)
    driver = options.pop("driver", "auto")
    if options.get("device") in ("", None):
        options.pop("device", None)  # an empty config string means "the default camera"
    real_opts = {k: v for k, v in options.items() if k in ("device", "size", "fps")}
    split_options("camera", options, real=OpenCVCamera, sim=SimCamera)  # validates the keys
    sim_opts = {k: v for k, v in options.items() if k in ("source", "fps", "realtime", "loop", "size")}
    picked: dict[str, str | None] = {}

    def probe_real() -> tuple[bool, str]:
        name, ok, why = _pick_driver(driver, real_opts.get("device"))
        picked["driver"] = name
        return ok, why

    choice = choose_backend("camera", backend, probe_real, sim_why="frames from the configured source")
    if choice == "sim":
        return SimCamera(**sim_opts)
    if picked["driver"] == "picamera2":
        device = real_opts.pop("device", None)
        return Picamera2Camera(0 if device is None else int(device), **real_opts)
    if real_opts.get("device") is None:
        real_opts["device"] = 0
    return OpenCVCamera(**real_opts)
