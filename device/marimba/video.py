"""Frames from a file, streamed: a video (OpenCV, imported lazily) or a frames.npy.

``FrameFile(path)`` opens the file and reads its first frame, so a missing
file, a file that is not a video, an empty one or a missing OpenCV is one
``InputFileError`` line before any work starts; iterating it yields grayscale
uint8 (H, W) frames one at a time (frames.npy by plain reads from its file),
so memory does not grow with the video's length. After iterating, ``decoded`` says how many frames could be read;
``check_complete(expected)`` turns a shortfall (a file cut short) into one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from device.errors import InputFileError

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".h264")
NPY_SUFFIX = ".npy"
# A container's frame count is read from its header or estimated from its duration; a few
# frames of disagreement are normal for some codecs, a larger shortfall means a cut file.
COUNT_SLACK = 2


def _gray(img: np.ndarray) -> np.ndarray:
    """Any frame -> (H, W) uint8 (colour averaged, like the dataset writer does)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a.mean(axis=2)
    return a if a.dtype == np.uint8 else np.clip(a, 0, 255).astype(np.uint8)


def import_cv2(path: str | os.PathLike) -> Any:
    """OpenCV, or one line saying the video ``path`` needs it."""
    # FFmpeg's own messages (e.g. "Slice pointer chain broken" in a cut file) would come on top
    # of our one line; these are read when OpenCV starts, and a caller's own setting wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2  # lazily: the box may run without OpenCV
    except ImportError:
        raise InputFileError(f"{path}: reading a video file needs OpenCV, which is not installed here "
                             "(pip install opencv-python-headless); a recording folder with frames.npy "
                             "works without it") from None
    return cv2


class FrameFile:
    """One video file or frames.npy, opened and checked; iterate it for its frames.

    ``frame_size`` is (height, width); ``fps`` is the container's rate (None for
    frames.npy or when the container does not say); ``declared_frames`` the
    container's frame count (None when unknown).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputFileError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise InputFileError(f"{self.path}: is a folder, not a video file")
        self.decoded = 0
        self.fps: float | None = None
        self.declared_frames: int | None = None
        self._npy = False
        self._first: np.ndarray | None = None
        if self.path.suffix.lower() == NPY_SUFFIX:
            self._open_npy()
        else:
            self._open_video()

    # ------------------------------------------------------------ opening

    def _open_npy(self) -> None:
        # Read frame by frame with plain file reads: a memory map would be flat in Python memory but
        # its touched pages count as resident, growing with the file on a small box.
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                offset = f.tell()
        except (ValueError, OSError, EOFError) as e:
            raise InputFileError(f"{self.path}: not a readable frames file ({e})") from None
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)) or shape[0] == 0:
            raise InputFileError(f"{self.path}: expected (frames, height, width) images, got shape {shape}")
        if fortran or dtype.hasobject or dtype.kind not in "uif":
            raise InputFileError(f"{self.path}: expected C-ordered numeric images, got {dtype}"
                                 f"{' in Fortran order' if fortran else ''}")
        self._dtype, self._offset, self._frame_shape = dtype, offset, tuple(shape[1:])
        self._frame_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        have = (self.path.stat().st_size - offset) // self._frame_bytes
        if have < shape[0]:
            raise InputFileError(f"{self.path}: truncated frames file: {have} of {shape[0]} frames present "
                                 "(the file was cut short)")
        self._npy = True
        self.declared_frames = int(shape[0])
        self.frame_size = (int(shape[1]), int(shape[2]))

    def _open_video(self) -> None:
        cv2 = import_cv2(self.path)
        cap = cv2.VideoCapture(str(self.path))
        ok, img = cap.read() if cap.isOpened() else (False, None)
        if not ok or img is None:
            cap.release()
            raise InputFileError(f"{self.path}: not a video (no frame could be decoded)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = fps if 0.5 < fps < 1000 else None
        self.declared_frames = count if count > 0 else None
        self._cap, self._first = cap, _gray(img)
        self.frame_size = tuple(int(v) for v in self._first.shape[:2])  # type: ignore[assignment]

    # ------------------------------------------------------------ reading

    def __iter__(self) -> Iterator[np.ndarray]:
        self.decoded = 0
        if self._npy:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                for _ in range(self.declared_frames or 0):
                    raw = f.read(self._frame_bytes)
                    if len(raw) < self._frame_bytes:
                        return  # cut while being read: check_complete says so
                    self.decoded += 1
                    yield _gray(np.frombuffer(raw, self._dtype).reshape(self._frame_shape))
            return
        cap, first = self._cap, self._first
        if first is None:
            raise RuntimeError(f"{self.path}: a video is read once")
        self._first = None
        try:
            self.decoded = 1
            yield first
            while True:
                ok, img = cap.read()
                if not ok or img is None:
                    break
                self.decoded += 1
                yield _gray(img)
        finally:
            cap.release()

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()

    def check_complete(self, expected: int | None = None, what: str = "") -> None:
        """One line if fewer frames were decoded than ``expected`` (else than the container declares)."""
        want = expected if expected is not None else self.declared_frames
        if want is None:
            return
        slack = 0 if expected is not None else COUNT_SLACK
        if self.decoded < want - slack:
            source = what or ("its header" if expected is None else "expected")
            raise InputFileError(f"{self.path}: truncated video: only {self.decoded} of {want} frames "
                                 f"({source}) could be decoded; the file was cut short or is damaged")
