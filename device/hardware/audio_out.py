"""Audio out: the box's own speaker through PyAudio (real), or a WAV file (sim).

The marimba worker writes one block per camera frame; it must never wait for
the sound card. So ``write`` only puts the block on a bounded queue of int16
samples, and the backend's own consumer takes it from there: PortAudio's
callback thread (real) or a writer thread that paces itself like a card and
writes a WAV (sim). A full queue drops the *oldest* audio (``dropped_samples``:
new notes matter more than old ones, and the delay stays bounded by
``buffer_s``); a consumer that finds too little queued plays silence for the
rest of its period and counts an ``underrun``. The writer delivers in bursts
(one camera frame's block at a time) and the card takes small periods, so a
card-paced consumer works as a jitter buffer: at the start and after each
underrun it plays silence until the largest block written so far plus one
period is queued, instead of chopping every block with silence whenever a
frame comes a little late. Like the mic's batch mode, the
sim's ``realtime=False`` is the one exception: its ``write`` waits for room and
every sample reaches the WAV (tests, the demo, offline runs).

``write`` takes mono float (-1..1, clipped) or int16 blocks; after ``close()``
it raises ``AudioOutClosedError``; ``close()`` is idempotent. A real card stops
at once on close (what is still queued is not played); the batch sim writes
everything queued, then commits the WAV atomically.

Real-world points: output devices that open only in stereo (the mono block is
copied to every channel) or only at their own rate (the card's rate becomes
``sample_rate``, and the caller synthesises at it: no resampling), a card held
by PulseAudio/PipeWire (one line saying so), routine output underflows
(counted from the callback's status flags, never fatal).

Every default comes from ``device.config.AudioOutConfig``; ``open_audio_out(backend,
cfg, **runtime)`` and each backend's ``from_config(cfg, ...)`` take that section.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from device.config import AudioOutConfig
from device.errors import ConfigError
from device.hardware.base import AudioOut
from device.hardware.portaudio import OUTPUT, PYAUDIO_HINT, close_quietly, find_device, open_error_line, pick_format, probe_device
from device.hardware.select import HardwareError, Probe, check_import, choose_backend, one_line
from device.wavfile import AtomicWavWriter, as_int16

log = logging.getLogger("saysee.hardware")

__all__ = ["open_audio_out", "probe", "PyAudioOut", "WavAudioOut", "SampleQueue", "AudioOutClosedError"]

_PA_OUTPUT_UNDERFLOW = 0x4  # paOutputUnderflow, in case the module lacks the constant
_DEFAULTS = AudioOutConfig()  # the one source of every configurable default below


class AudioOutClosedError(HardwareError):
    """``write()`` was called on an audio output after ``close()``."""


# --------------------------------------------------------------------- queue


class SampleQueue:
    """Bounded FIFO of int16 samples with global sample indices (the writer's count).

    ``put(x)`` never waits: what does not fit pushes the oldest samples out,
    counted in ``dropped``. ``put(x, block=True)`` waits for room instead
    (batch mode; gives up once closed). ``take(n)`` returns
    ``(start, samples)`` with up to n samples, ``start`` being the global index
    of the first one, so a consumer can tell which write it is playing.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("queue capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.int16)
        self._write = 0  # global index of the next sample put
        self._read = 0  # global index of the next sample taken
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0

    @property
    def available(self) -> int:
        with self._cond:
            return self._write - self._read

    def put(self, x: np.ndarray, *, block: bool = False) -> None:
        if block:
            for i in range(0, len(x), self.capacity):
                piece = x[i : i + self.capacity]
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self.capacity - (self._write - self._read) >= len(piece))
                    if self._closed:
                        return
                    self._store(piece)
            return
        with self._cond:
            if self._closed:
                return
            self._store(x)

    def _store(self, x: np.ndarray) -> None:
        # Caller holds the lock. Drop the oldest samples that the new ones push out.
        n = len(x)
        new_write = self._write + n
        new_read = max(self._read, new_write - self.capacity)
        self.dropped += new_read - self._read
        self._read = new_read
        if n > self.capacity:
            x = x[-self.capacity :]
        start = new_write - len(x)
        pos = start % self.capacity
        first = min(len(x), self.capacity - pos)
        self._buf[pos : pos + first] = x[:first]
        self._buf[: len(x) - first] = x[first:]
        self._write = new_write
        self._cond.notify_all()

    def discard(self, k: int) -> int:
        """Drop up to ``k`` of the oldest samples (counted in ``dropped``); returns how many."""
        with self._cond:
            k = max(0, min(int(k), self._write - self._read))
            self._read += k
            self.dropped += k
            self._cond.notify_all()
        return k

    def take(self, n: int, timeout: float | None = 0.0) -> tuple[int, np.ndarray]:
        """Up to ``n`` samples; waits up to ``timeout`` for at least one (0: not at all)."""
        with self._cond:
            if timeout != 0.0:
                self._cond.wait_for(lambda: self._write > self._read or self._closed, timeout)
            start = self._read
            k = min(int(n), self._write - self._read)
            pos = start % self.capacity
            first = min(k, self.capacity - pos)
            out = np.concatenate([self._buf[pos : pos + first], self._buf[: k - first]])
            self._read += k
            self._cond.notify_all()
        return start, out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _QueuedAudioOut(AudioOut):
    """Shared plumbing: validation, the bounded queue, and the consumer's ``_pull``."""

    def __init__(self, sample_rate: int, buffer_s: float, *, block_when_full: bool = False) -> None:
        if int(sample_rate) <= 0:
            raise ConfigError(f"[audio_out] sample_rate must be positive, got {sample_rate!r}")
        if float(buffer_s) <= 0:
            raise ConfigError(f"[audio_out] buffer_s must be positive, got {buffer_s!r}")
        self.sample_rate = int(sample_rate)
        self.buffer_s = float(buffer_s)
        self._queue = SampleQueue(max(1, int(round(self.buffer_s * self.sample_rate))))
        self._block_when_full = bool(block_when_full)
        self._lock = threading.Lock()  # close() never interleaves with a write half-way through
        self.underruns = 0
        self.samples_written = 0  # accepted by write()
        self._largest_write = 0
        self._priming = True  # card-paced consumers wait for a cushion first (see the module docstring)
        self._resuming = False  # priming again after an underrun (not the first start)
        self.samples_played = 0  # handed to the consumer (silence padding excluded)

    @property
    def dropped_samples(self) -> int:  # type: ignore[override]
        return self._queue.dropped

    @property
    def queued(self) -> int:
        """Samples waiting for the consumer."""
        return self._queue.available

    def write(self, block: np.ndarray) -> int:
        """Queue one mono block (float -1..1 or int16); never waits (batch sim: waits for room).

        Raises ``AudioOutClosedError`` after ``close()``, ``ValueError`` for a block
        that is not 1-D (or (n, 1)) or holds NaN/inf, ``TypeError`` for other dtypes.
        """
        x = _as_mono_int16(block)
        self._largest_write = max(self._largest_write, len(x))
        with self._lock:
            if self.is_closed:
                raise AudioOutClosedError(f"audio_out: write() on a closed {self.backend} audio output")
            if not self._block_when_full:
                self._queue.put(x)
                self.samples_written += len(x)
                return len(x)
        # Batch mode waits outside the lock, so close() can still end the wait.
        self._queue.put(x, block=True)
        self.samples_written += len(x)
        return len(x)

    def _pull(self, n: int, pad: bool) -> np.ndarray:
        """The consumer's side: up to ``n`` samples; ``pad`` (a card-paced consumer): exactly ``n``.

        A padded period is counted as an underrun and makes the consumer prime again:
        silence until the largest block written plus ``n`` samples are queued. On
        resuming after an underrun only that cushion is kept: the oldest audio beyond it
        is late already and is dropped (counted), so each underrun does not add its wait
        to the delay for the rest of the run.
        """
        if pad and self._priming:
            cushion = min(self._largest_write + n, self._queue.capacity)
            if not self._largest_write or self._queue.available < cushion:
                return np.zeros(n, np.int16)
            if self._resuming:
                self._queue.discard(self._queue.available - cushion)
            self._priming = self._resuming = False
        _, x = self._queue.take(n)
        self.samples_played += len(x)
        if pad and len(x) < n:
            self.underruns += 1
            self._priming = self._resuming = True
            x = np.concatenate([x, np.zeros(n - len(x), np.int16)])
        return x

    def close(self) -> None:
        """Idempotent; ``write`` after it raises ``AudioOutClosedError``."""
        with self._lock:
            if self.is_closed:
                return
            self.is_closed = True
        self._close()


def _as_mono_int16(block: Any) -> np.ndarray:
    a = np.asarray(block)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"audio_out: expected a mono block of shape (n,), got {a.shape}")
    if a.dtype == np.int16:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError("audio_out: block holds NaN or infinite samples")
        return as_int16(a)  # the WAV writer's own float -> int16 rule
    raise TypeError(f"audio_out: expected float or int16 samples, got {a.dtype}")


# --------------------------------------------------------------------- PyAudio


class PyAudioOut(_QueuedAudioOut):
    """A sound card output through PyAudio's callback stream.

    ``device``: None (the default output), an index, or a case-insensitive
    substring of the device name. Opens at ``sample_rate`` when the card takes
    it, else at its own rate (read ``sample_rate`` after opening); mono, else
    stereo (or all its channels) with the block copied to each.
    ``frames_per_buffer``: the card's period. ``buffer_s``: most audio queued.
    """

    backend = "real"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = _DEFAULTS.sample_rate,
        frames_per_buffer: int = _DEFAULTS.block,
        buffer_s: float = _DEFAULTS.buffer_s,
    ) -> None:
        ok, why, pyaudio = check_import("pyaudio", PYAUDIO_HINT)
        if not ok:
            raise HardwareError(f"audio_out: {why}")
        self._pyaudio = pyaudio
        self._underflow_flag = int(getattr(pyaudio, "paOutputUnderflow", _PA_OUTPUT_UNDERFLOW))
        self._continue = getattr(pyaudio, "paContinue", 0)
        self._stream = None
        self.card_underflows = 0  # PortAudio's own output-underflow flags
        self.callback_errors = 0
        try:
            self._pa = pyaudio.PyAudio()
        except Exception as e:  # noqa: BLE001 - PortAudio itself failed to initialise
            raise HardwareError(f"audio_out: PortAudio failed to start: {one_line(e)}") from None
        try:
            info = find_device(self._pa, device, OUTPUT)
            self.device_name = str(info.get("name", "?"))
            self.device_index = int(info["index"])
            rate, self.channels = pick_format(pyaudio, self._pa, info, int(sample_rate), OUTPUT)
            super().__init__(rate, buffer_s)
            self.frames_per_buffer = int(frames_per_buffer)
            try:
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=self.channels,
                    rate=self.sample_rate,
                    output=True,
                    output_device_index=self.device_index,
                    frames_per_buffer=self.frames_per_buffer,
                    stream_callback=self._callback,
                    start=False,
                )
            except OSError as e:
                raise HardwareError(open_error_line(self.device_name, e, OUTPUT)) from None
        except BaseException:
            self._pa.terminate()
            raise
        log.info("audio_out: '%s' (index %d) at %d Hz, %d ch, %d-frame periods", self.device_name,
                 self.device_index, self.sample_rate, self.channels, self.frames_per_buffer)

    @classmethod
    def from_config(cls, cfg: AudioOutConfig, **runtime: Any) -> "PyAudioOut":
        """The backend for an ``[audio_out]`` section (``runtime``: none needed)."""
        return cls(cfg.device or None, sample_rate=cfg.sample_rate, frames_per_buffer=cfg.block,
                   buffer_s=cfg.buffer_s, **runtime)

    def start(self) -> None:
        if self._stream is not None and not self.is_closed:
            self._stream.start_stream()

    def _callback(self, in_data, frame_count, time_info, status_flags):
        # PortAudio's thread: never raise, never block, and always return exactly
        # frame_count frames -- fewer would end the stream (PyAudio: paComplete).
        try:
            if status_flags & self._underflow_flag:
                self.card_underflows += 1
            x = self._pull(int(frame_count), pad=True)
            if self.channels > 1:
                x = np.repeat(x[:, None], self.channels, axis=1)
            data = x.astype("<i2", copy=False).tobytes()
        except Exception as e:  # noqa: BLE001
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.error("audio_out: playback callback failed (further failures only counted): %s", one_line(e))
            data = bytes(2 * self.channels * int(frame_count))
        return (data, self._continue)

    def _close(self) -> None:
        self._queue.close()
        stream, self._stream = self._stream, None
        close_quietly(stream, self._pa)


# --------------------------------------------------------------------- WAV (sim)


class WavAudioOut(_QueuedAudioOut):
    """The sim backend: a writer thread takes the queue into a WAV, committed atomically on close.

    ``path``: the WAV (None: the audio is consumed and counted, nothing written).
    ``realtime=True`` paces the thread like a sound card -- ``frames_per_buffer``
    samples every period, silence (an underrun) when too little is queued, the
    oldest dropped when the writer runs ahead -- so the WAV is what a speaker
    would have played. ``realtime=False`` writes every sample in order and
    ``write`` waits for room instead of dropping (batch runs, the demo).
    ``sleep``: replaces the pacing wait (tests stall the consumer with it).
    """

    backend = "sim"

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        sample_rate: int = _DEFAULTS.sample_rate,
        frames_per_buffer: int = _DEFAULTS.block,
        buffer_s: float = _DEFAULTS.buffer_s,
        realtime: bool = _DEFAULTS.realtime,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(sample_rate, buffer_s, block_when_full=not realtime)
        self.path = Path(path) if path else None
        self.frames_per_buffer = int(frames_per_buffer)
        self.realtime = bool(realtime)
        self._clock = clock
        self._sleep = sleep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer = AtomicWavWriter(self.path, self.sample_rate) if self.path else None
        self.error: str | None = None  # why the WAV could not be written, if it could not

    @classmethod
    def from_config(cls, cfg: AudioOutConfig, **runtime: Any) -> "WavAudioOut":
        """The backend for an ``[audio_out]`` section; ``runtime``: ``path`` (default ``cfg.wav``), ``clock``, ``sleep``."""
        runtime.setdefault("path", cfg.wav or None)
        return cls(sample_rate=cfg.sample_rate, frames_per_buffer=cfg.block, buffer_s=cfg.buffer_s,
                   realtime=cfg.realtime, **runtime)

    def start(self) -> None:
        if self._thread is None and not self.is_closed:
            self._thread = threading.Thread(target=self._consume, name="saysee-audio-out-wav", daemon=True)
            self._thread.start()

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif seconds > 0:
            self._stop.wait(seconds)

    def _emit(self, x: np.ndarray) -> None:
        if self._writer is not None and len(x) and self.error is None:
            try:
                self._writer.write(x)
            except Exception as e:  # noqa: BLE001 - a full disk must not kill the marimba worker
                self.error = one_line(e)
                log.error("audio_out: writing %s failed: %s", self.path, self.error)

    def _consume(self) -> None:
        period = self.frames_per_buffer
        if self.realtime:
            t0, k = self._clock(), 0
            while not self._stop.is_set():
                k += 1
                self._wait(t0 + k * period / self.sample_rate - self._clock())
                if self._stop.is_set():
                    return
                self._emit(self._pull(period, pad=True))
        else:
            while not self._stop.is_set():
                _, x = self._queue.take(max(period, self._queue.capacity), timeout=0.1)
                self.samples_played += len(x)
                self._emit(x)

    def _close(self) -> None:
        self._stop.set()
        self._queue.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not self.realtime:  # batch: everything written reaches the file
            _, rest = self._queue.take(self._queue.capacity)
            self.samples_played += len(rest)
            self._emit(rest)
        if self._writer is not None:
            if self.error is None:
                self._writer.close()
            else:
                self._writer.abort()


# --------------------------------------------------------------------- choice


def _probe_real(device: int | str | None = None) -> tuple[bool, str]:
    return probe_device(device, OUTPUT)


def probe(cfg: AudioOutConfig | None = None) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`: is the configured output there now?"""
    usable, why = _probe_real((cfg or _DEFAULTS).device or None)
    return [("real", usable, why), ("sim", True, "WAV file (stdlib wave)")]


def open_audio_out(backend: str | None = None, cfg: AudioOutConfig | None = None, **runtime: Any) -> AudioOut:
    """Open the output described by ``cfg`` (an ``[audio_out]`` section; default: all defaults).

    ``backend`` (default ``cfg.backend``): "auto" | "real" (PyAudio) | "sim" (WAV);
    "auto" takes PyAudio when it imports and an output device is there now.
    ``runtime``: the sim's ``path`` (overrides ``cfg.wav``), ``clock``, ``sleep``.
    Call ``start()`` before writing; read ``sample_rate`` for the rate opened.
    """
    cfg = cfg if cfg is not None else _DEFAULTS
    path = runtime.get("path", cfg.wav or None)
    choice = choose_backend("audio_out", cfg.backend if backend is None else backend,
                            lambda: _probe_real(cfg.device or None),
                            sim_why=f"WAV {path}" if path else "sim without a WAV (counted, not kept)")
    if choice == "real":
        return PyAudioOut.from_config(cfg)
    return WavAudioOut.from_config(cfg, **runtime)
