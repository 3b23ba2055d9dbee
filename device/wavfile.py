"""PCM WAV reading and (atomic) writing with the stdlib ``wave`` module.

The device has no soundfile/libsndfile, and only needs integer PCM: int16 is
what microphones give and what the models were trained from. Writes are atomic
(temp file in the same folder + fsync + rename) so a power cut on an SD card
leaves either the old file or the complete new one, never half a take; the
recorder reuses ``AtomicWavWriter`` for takes written while they are captured.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
import wave
from pathlib import Path
from typing import Iterator

import numpy as np

from device.atomic import fsync_dir
from device.errors import InputFileError

__all__ = ["read_wav", "iter_wav", "wav_info", "check_header", "write_wav", "AtomicWavWriter", "as_int16"]


# A header outside these limits is damaged or hostile, not audio: a 1 Hz or 2**31 Hz
# "sample rate" once made the resampler ask for gigabytes. 4 kHz is below any
# telephone rate; 384 kHz is the highest rate audio interfaces offer.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 8  # 7.1 surround; microphones give 1 or 2


def check_header(path, sample_rate: int, channels: int) -> None:
    """InputFileError (one line, naming the file) for an implausible rate or channel count."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InputFileError(
            f"{path}: header says {sample_rate} Hz, not a plausible audio sample rate "
            f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz); the file is damaged or not audio")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InputFileError(
            f"{path}: header says {channels} channels, not a plausible count (1-{MAX_CHANNELS}); "
            "the file is damaged or not audio")


# WAVE_FORMAT_EXTENSIBLE (0xFFFE) with the integer-PCM subformat: what ffmpeg and many recorders write for
# 24-bit or multichannel PCM. The stdlib wave reads it from Python 3.12 on; the box's 3.10/3.11 refuse it.
_EXTENSIBLE = 0xFFFE
_PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")


class _WaveReader(wave.Wave_read):
    """``wave.Wave_read`` that also reads WAVE_FORMAT_EXTENSIBLE integer PCM (as Python 3.12's does)."""

    def _read_fmt_chunk(self, chunk):  # the stdlib hook every fmt chunk passes through (3.10-3.11)
        head = chunk.read(16)
        if len(head) < 16:
            raise EOFError
        tag, channels, rate, _, _, bits = struct.unpack("<HHLLHH", head)
        if tag == _EXTENSIBLE:
            ext = chunk.read(24)  # cbSize, valid bits, channel mask, subformat GUID
            if len(ext) < 24 or ext[8:24] != _PCM_SUBFORMAT:
                raise wave.Error("unknown format: WAVE_FORMAT_EXTENSIBLE that is not integer PCM")
        elif tag != 1:
            raise wave.Error(f"unknown format: {tag}")
        self._nchannels, self._framerate, self._sampwidth = channels, rate, (bits + 7) // 8
        if not self._sampwidth:
            raise wave.Error("bad sample width")
        if not self._nchannels:
            raise wave.Error("bad # of channels")
        self._framesize = self._nchannels * self._sampwidth
        self._comptype, self._compname = "NONE", "not compressed"


def _open(path):
    return wave.open(str(path), "rb") if sys.version_info >= (3, 12) else _WaveReader(str(path))


def _open_error(path, e: BaseException) -> InputFileError:
    if isinstance(e, FileNotFoundError):
        return InputFileError(f"{path}: no such WAV file")
    return InputFileError(
        f"{path}: not a readable integer-PCM WAV file ({e}); convert it, e.g. "
        "`ffmpeg -i IN -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav`")


def wav_info(path) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) from the header, without reading samples."""
    try:
        with _open(path) as w:
            info = w.getframerate(), w.getnchannels(), w.getnframes()
    except (wave.Error, EOFError, OSError) as e:
        raise _open_error(path, e) from None
    check_header(path, info[0], info[1])
    return info


def read_wav(path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV as int16: shape (frames,) if mono, else (frames, channels).

    8-, 16-, 24- and 32-bit integer PCM are accepted and converted to int16
    (keeping the top bits). Float and compressed WAVs are refused with a line
    that says how to convert them. Long files: use ``iter_wav``.
    """
    rate, _, _ = wav_info(path)
    # Bounded blocks, not the header's frame count: a damaged header may claim 4 GB.
    blocks = list(iter_wav(path, block_frames=1 << 20))
    return (np.concatenate(blocks) if len(blocks) > 1 else blocks[0]), rate


def iter_wav(path, block_frames: int = 65536) -> Iterator[np.ndarray]:
    """The samples of a PCM WAV as int16 blocks of at most ``block_frames`` frames.

    Each block is (frames,) if mono, else (frames, channels). Memory does not
    grow with the file's length. At least one (possibly empty) block is
    yielded; the header is checked (``check_header``) before any block.
    """
    try:
        w = _open(path)
    except (wave.Error, EOFError, OSError) as e:
        raise _open_error(path, e) from None
    with w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        check_header(path, rate, channels)
        yielded = False
        while True:
            try:
                raw = w.readframes(int(block_frames))
            except (wave.Error, EOFError, OSError) as e:
                raise _open_error(path, e) from None
            if not raw and yielded:
                return
            yielded = True
            yield _decode(raw, width, channels, path)
            if not raw:
                return


def _decode(raw: bytes, width: int, channels: int, path) -> np.ndarray:
    n = len(raw) // (width * channels)
    raw = raw[: n * width * channels]
    if width == 1:  # 8-bit WAV is unsigned
        data = ((np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.int16)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        # Top two bytes of each little-endian 24-bit sample are the int16 value.
        data = (b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)).view(np.int16)
    elif width == 4:
        data = (np.frombuffer(raw, "<i4") >> 16).astype(np.int16)
    else:  # pragma: no cover - wave refuses other widths itself
        raise InputFileError(f"{path}: unsupported sample width {width} bytes")
    if channels > 1:
        data = data.reshape(-1, channels)
    return data


def as_int16(samples: np.ndarray) -> np.ndarray:
    """int16 as is; float audio (-1..1) rounded and clipped; other ints must fit int16."""
    a = np.asarray(samples)
    if a.dtype == np.int16:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.round(a * 32768.0), -32768, 32767).astype(np.int16)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, -32768, 32767).astype(np.int16)
    raise TypeError(f"can't write {a.dtype} samples as a WAV")


class AtomicWavWriter:
    """Write a 16-bit PCM WAV incrementally; it appears at ``path`` only when committed.

    Samples go to a hidden temp file in the destination folder (same file system,
    so the final rename is atomic). ``close()`` (or leaving the ``with`` block
    normally) flushes, fsyncs and renames; leaving it with an exception, or
    ``abort()``, deletes the temp file and leaves any existing ``path`` untouched.
    """

    def __init__(self, path, sample_rate: int, channels: int = 1) -> None:
        self.path = Path(path)
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._tmp = Path(tmp)
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a take should be readable like any file
        self._file = os.fdopen(fd, "wb")
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(self.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.sample_rate)
        self._done = False

    def write(self, samples: np.ndarray) -> None:
        """Append samples: (frames,) for mono or (frames, channels); int16 or float -1..1."""
        if self._done:
            raise ValueError(f"{self.path}: writer already closed")
        a = as_int16(samples)
        if a.ndim == 1 and self.channels != 1 or a.ndim == 2 and a.shape[1] != self.channels:
            raise ValueError(f"{self.path}: expected {self.channels} channel(s), got shape {a.shape}")
        self._wav.writeframes(np.ascontiguousarray(a).astype("<i2", copy=False).tobytes())
        self.frames += len(a)

    def close(self) -> Path:
        """Commit: finish the header, fsync, rename over ``path``. Idempotent."""
        if self._done:
            return self.path
        self._done = True
        try:
            self._wav.close()  # patches the RIFF sizes; does not close our file object
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._discard()
            raise
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Throw the partial file away."""
        if not self._done:
            self._done = True
            self._discard()

    def _discard(self) -> None:
        for closer in (self._wav.close, self._file.close):
            try:
                closer()
            except Exception:
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicWavWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_wav(path, samples: np.ndarray, sample_rate: int, *, atomic: bool = True) -> Path:
    """Write int16 (or float -1..1) samples, (frames,) or (frames, channels), as 16-bit PCM."""
    a = as_int16(samples)
    channels = 1 if a.ndim == 1 else a.shape[1]
    if atomic:
        with AtomicWavWriter(path, sample_rate, channels) as w:
            w.write(a)
        return Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.ascontiguousarray(a).astype("<i2", copy=False).tobytes())
    return Path(path)
