"""Microphones: PyAudio (real) and a WAV playlist (sim), both feeding a bounded ring.

The pipeline reads fixed-size chunks of 16 kHz mono int16 from either. Capture
runs on the backend's own thread (PortAudio's callback, or the playlist's
producer thread) and never waits for the consumer: when the ring is full the
oldest audio is dropped and counted, and the gap shows up in ``AudioChunk.start``
(the global sample index) so the pipeline never mistakes old audio for new.
The one exception is the playlist's batch mode (``realtime=False``), where the
producer waits for space instead, so tests and offline runs see every sample.

Real-world points handled here: USB mics that open only at 44.1/48 kHz or only
in stereo (open natively, downmix, resample with ``device.resample``), routine
input overflows (counted from the callback's status flags, never fatal), a card
held by PulseAudio/PipeWire or a second service (one line saying so), and no
prompts ever (the device is chosen by name substring or index).

A stream that stops delivering (a USB mic unplugged, a wedged driver) is not an
error here: ``read(timeout)`` keeps returning None at each timeout, and
``is_finished`` stays False, so the caller can count the timeouts and report
the stall instead of mistaking it for the end of a source.

Every default comes from ``device.config.MicConfig`` (the pipeline rate from
the front end's ``LogMelParams``); ``open_mic(backend, cfg)`` and each backend's
``from_config(cfg, ...)`` take that typed section.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np

from device.config import MicConfig
from device.errors import ConfigError
from device.frontend import LogMelParams
from device.resample import Resampler
from device.wavfile import iter_wav, wav_info
from device.hardware.base import AudioChunk, Mic
from device.hardware.portaudio import INPUT, PYAUDIO_HINT, close_quietly, find_device, open_error_line, pick_format, probe_device
from device.hardware.select import HardwareError, Probe, check_import, choose_backend, one_line

log = logging.getLogger("saysee.hardware")

__all__ = ["open_mic", "probe", "PyAudioMic", "PlaylistMic", "SampleRing"]

_PA_INPUT_OVERFLOW = 0x2  # paInputOverflow, in case the module lacks the constant
_DEFAULTS = MicConfig()  # the one source of every configurable default below
_PIPELINE_RATE = LogMelParams().sample_rate  # what the sound model listens at
PLAYLIST_BLOCK_FRAMES = 1 << 15  # frames read from a playlist WAV at a time: memory flat in the file's length


# --------------------------------------------------------------------- ring


class SampleRing:
    """Bounded FIFO of int16 samples with global sample indices.

    ``push(block=False)`` never waits: if the new samples don't fit, the oldest
    ones are discarded and added to ``dropped``. ``push(block=True)`` waits for
    room instead (batch mode; returns early if the ring is closed). ``read(n)``
    returns exactly n samples, or the remainder once ``finish()`` was called.
    """

    def __init__(self, capacity: int, sample_rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self.capacity = int(capacity)
        self.sample_rate = int(sample_rate)
        self._clock = clock
        self._buf = np.zeros(self.capacity, np.int16)
        self._write = 0  # global index of the next sample to be written
        self._read = 0  # global index of the next sample to be read
        self._last_push = clock()
        self._eof = False
        self._closed = False
        self._cond = threading.Condition()
        self.dropped = 0

    @property
    def available(self) -> int:
        with self._cond:
            return self._write - self._read

    @property
    def is_drained(self) -> bool:
        """finish() was called and everything was read (or the ring was closed)."""
        with self._cond:
            return self._closed or (self._eof and self._write == self._read)

    def push(self, samples: np.ndarray, *, block: bool = False) -> None:
        x = np.asarray(samples, dtype=np.int16).reshape(-1)
        if block:
            self._push_blocking(x)
            return
        with self._cond:
            if self._closed:
                return
            n = len(x)
            new_write = self._write + n
            new_read = max(self._read, new_write - self.capacity)
            self.dropped += new_read - self._read
            self._read = new_read
            if n > self.capacity:
                x = x[-self.capacity :]
            self._store(new_write - len(x), x)
            self._write = new_write
            self._last_push = self._clock()
            self._cond.notify_all()

    def _push_blocking(self, x: np.ndarray) -> None:
        i = 0
        while i < len(x):
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._write - self._read < self.capacity)
                if self._closed:
                    return
                take = min(len(x) - i, self.capacity - (self._write - self._read))
                self._store(self._write, x[i : i + take])
                self._write += take
                self._last_push = self._clock()
                self._cond.notify_all()
            i += take

    def _store(self, start: int, x: np.ndarray) -> None:
        pos = start % self.capacity
        first = min(len(x), self.capacity - pos)
        self._buf[pos : pos + first] = x[:first]
        self._buf[: len(x) - first] = x[first:]

    def read(self, n: int, timeout: float | None = None) -> AudioChunk | None:
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._write - self._read >= n or self._eof or self._closed, timeout
            )
            avail = self._write - self._read
            if not ready or self._closed or avail == 0:
                return None
            take = min(n, avail)
            start = self._read
            pos = start % self.capacity
            first = min(take, self.capacity - pos)
            out = np.concatenate([self._buf[pos : pos + first], self._buf[: take - first]])
            self._read += take
            # Age of the chunk's last sample: whatever arrived after it is newer.
            captured_at = self._last_push - (self._write - self._read) / self.sample_rate
            self._cond.notify_all()
        return AudioChunk(samples=out, start=start, captured_at=captured_at)

    def finish(self) -> None:
        """No more samples will come; readers get the remainder, then None."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _RingMic(Mic):
    """Shared plumbing: a ring of pipeline-rate samples read in fixed-size chunks."""

    def __init__(self, sample_rate: int, chunk_size: int, buffer_seconds: float, clock=time.monotonic) -> None:
        if int(sample_rate) <= 0:
            raise ConfigError(f"[mic] sample_rate must be positive, got {sample_rate!r}")
        if int(chunk_size) <= 0:
            raise ConfigError(f"[mic] chunk_size must be a positive number of samples, got {chunk_size!r}")
        self.sample_rate = int(sample_rate)
        self.chunk_size = int(chunk_size)
        capacity = max(int(float(buffer_seconds) * self.sample_rate), 2 * self.chunk_size)
        self._ring = SampleRing(capacity, self.sample_rate, clock)
        self.overflows = 0

    @property
    def dropped_samples(self) -> int:  # type: ignore[override]
        return self._ring.dropped

    def read(self, timeout: float | None = None) -> AudioChunk | None:
        """Next ``chunk_size`` samples (the last chunk of a finite source may be shorter)."""
        if self.is_closed:
            return None
        return self._ring.read(self.chunk_size, timeout)


# --------------------------------------------------------------------- PyAudio


class PyAudioMic(_RingMic):
    """A sound card input through PyAudio, delivered as 16 kHz (``sample_rate``) mono int16.

    ``device``: None (the default input), an index, or a case-insensitive substring
    of the device name. Opens at ``sample_rate`` when the card supports it, else at
    its native rate and resamples; any channel count is averaged to mono.
    """

    backend = "real"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int = _PIPELINE_RATE,
        chunk_size: int = _DEFAULTS.chunk,
        buffer_seconds: float = _DEFAULTS.buffer_seconds,
        frames_per_buffer: int | None = None,
    ) -> None:
        super().__init__(sample_rate, chunk_size, buffer_seconds)
        ok, why, pyaudio = check_import("pyaudio", PYAUDIO_HINT)
        if not ok:
            raise HardwareError(f"mic: {why}")
        self._pyaudio = pyaudio
        self._overflow_flag = int(getattr(pyaudio, "paInputOverflow", _PA_INPUT_OVERFLOW))
        self._continue = getattr(pyaudio, "paContinue", 0)
        self.callback_errors = 0
        self._stream = None
        try:
            self._pa = pyaudio.PyAudio()
        except Exception as e:  # noqa: BLE001 - PortAudio itself failed to initialise
            raise HardwareError(f"mic: PortAudio failed to start: {one_line(e)}") from None
        try:
            info = find_device(self._pa, device, INPUT)
            self.device_name = str(info.get("name", "?"))
            self.device_index = int(info["index"])
            self.device_rate, self.channels = pick_format(pyaudio, self._pa, info, self.sample_rate, INPUT)
            self._resampler = (
                Resampler(self.device_rate, self.sample_rate) if self.device_rate != self.sample_rate else None
            )
            # ~50 ms periods by default: small enough for latency, large enough
            # that a busy Pi doesn't overflow on every scheduling hiccup.
            fpb = int(frames_per_buffer or max(256, self.device_rate // 20))
            try:
                self._stream = self._pa.open(
                    format=pyaudio.paInt16,
                    channels=self.channels,
                    rate=self.device_rate,
                    input=True,
                    input_device_index=self.device_index,
                    frames_per_buffer=fpb,
                    stream_callback=self._callback,
                    start=False,
                )
            except OSError as e:
                raise HardwareError(open_error_line(self.device_name, e, INPUT)) from None
        except BaseException:
            self._pa.terminate()
            raise
        log.info(
            "mic: '%s' (index %d) at %d Hz, %d ch%s",
            self.device_name,
            self.device_index,
            self.device_rate,
            self.channels,
            f", resampled to {self.sample_rate} Hz" if self._resampler else "",
        )

    @classmethod
    def from_config(cls, cfg: MicConfig, **runtime: Any) -> "PyAudioMic":
        """The backend for a ``[mic]`` section; ``runtime``: ``sample_rate``, ``frames_per_buffer``."""
        return cls(cfg.device or None, chunk_size=cfg.chunk, buffer_seconds=cfg.buffer_seconds, **runtime)

    def start(self) -> None:
        if self._stream is not None and not self.is_closed:
            self._stream.start_stream()

    def _callback(self, in_data, frame_count, time_info, status_flags):
        # Runs on PortAudio's thread: must never raise and never block.
        try:
            if status_flags & self._overflow_flag:
                self.overflows += 1
            x = np.frombuffer(in_data, dtype="<i2")
            if self.channels == 1 and self._resampler is None:
                self._ring.push(x)
            else:
                mono = x.reshape(-1, self.channels).mean(axis=1) if self.channels > 1 else x.astype(np.float64)
                if self._resampler is not None:
                    mono = self._resampler.process(mono)
                self._ring.push(np.clip(np.round(mono), -32768, 32767).astype(np.int16))
        except Exception as e:  # noqa: BLE001
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.error("mic: capture callback failed (further failures only counted): %s", one_line(e))
        return (None, self._continue)

    def _close(self) -> None:
        self._ring.close()
        stream, self._stream = self._stream, None
        close_quietly(stream, self._pa)


# --------------------------------------------------------------------- playlist


class PlaylistMic(_RingMic):
    """A WAV playlist played as a microphone (the sim backend).

    ``playlist``: a path, or a list of paths, int16/float arrays at ``sample_rate``,
    or ``(array, rate)`` pairs. Files are read with the stdlib ``wave`` module,
    downmixed and resampled to ``sample_rate``.
    ``realtime=True`` paces chunks by the wall clock and, like a real mic, drops
    the oldest audio when the reader falls behind; ``realtime=False`` delivers as
    fast as the reader takes it and never drops anything (tests, batch runs).
    ``loop=True`` repeats the playlist until closed.
    """

    backend = "sim"

    def __init__(
        self,
        playlist: Any = (),
        *,
        sample_rate: int = _PIPELINE_RATE,
        chunk_size: int = _DEFAULTS.chunk,
        realtime: bool = _DEFAULTS.realtime,
        loop: bool = False,
        buffer_seconds: float = _DEFAULTS.buffer_seconds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(sample_rate, chunk_size, buffer_seconds, clock)
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self._items = _normalise_playlist(playlist)
        self._clock = clock
        self._sleep = sleep  # None: wait on the stop event, so close() interrupts pacing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples_produced = 0

    @classmethod
    def from_config(cls, cfg: MicConfig, **runtime: Any) -> "PlaylistMic":
        """The backend for a ``[mic]`` section; ``runtime``: ``sample_rate``, ``loop``, ``clock``, ``sleep``."""
        return cls(cfg.playlist, chunk_size=cfg.chunk, realtime=cfg.realtime,
                   buffer_seconds=cfg.buffer_seconds, **runtime)

    @property
    def total_seconds(self) -> float | None:
        """Playlist length at the pipeline rate (None when looping)."""
        if self.loop:
            return None
        total = 0.0
        for item in self._items:
            if isinstance(item, tuple):
                total += len(item[0]) / (item[1] or self.sample_rate)
            else:
                rate, _, frames = wav_info(item)
                total += frames / rate
        return total

    def start(self) -> None:
        if self._thread is None and not self.is_closed:
            self._thread = threading.Thread(target=self._produce, name="saysee-mic-playlist", daemon=True)
            self._thread.start()

    @property
    def is_finished(self) -> bool:
        return self._ring.is_drained

    @property
    def plays_out(self) -> bool:
        # An empty playlist is what "auto" falls back to on a box whose mic is missing: nothing to play out.
        return bool(self._items) and not self.loop

    def _blocks(self, item) -> Iterator[np.ndarray]:
        """One playlist item as int16 mono blocks at the pipeline rate; a file is streamed (``iter_wav`` and
        a streaming resampler), so memory stays flat however long the recording."""
        if isinstance(item, tuple):
            rate, blocks = int(item[1] or self.sample_rate), iter([np.asarray(item[0])])
        else:
            rate, blocks = wav_info(item)[0], iter_wav(item, PLAYLIST_BLOCK_FRAMES)
        resampler = Resampler(rate, self.sample_rate, zero_phase=True) if rate != self.sample_rate else None
        for audio in blocks:
            if audio.ndim == 2:
                audio = audio.mean(axis=1)
            if np.issubdtype(audio.dtype, np.floating) and audio.size and np.abs(audio).max() <= 1.0:
                audio = audio * 32768.0  # float arrays are taken as -1..1 full scale
            if resampler is not None:
                audio = resampler.process(np.asarray(audio, dtype=np.float64))
            yield np.clip(np.round(audio), -32768, 32767).astype(np.int16)
        if resampler is not None:
            yield np.clip(np.round(resampler.flush()), -32768, 32767).astype(np.int16)

    def _chunks(self, item) -> Iterator[np.ndarray]:
        """``chunk_size`` pieces of one item (the last may be shorter), whatever its blocks."""
        carry = np.zeros(0, dtype=np.int16)
        for block in self._blocks(item):
            carry = np.concatenate([carry, block])
            n = len(carry) - len(carry) % self.chunk_size
            for i in range(0, n, self.chunk_size):
                yield carry[i : i + self.chunk_size]
            carry = carry[n:]
        if len(carry):
            yield carry

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)

    def _produce(self) -> None:
        t0 = self._clock()
        try:
            while not self._stop.is_set():
                pass_start = self.samples_produced
                for item in self._items:
                    chunks = self._chunks(item)
                    while True:
                        try:
                            piece = next(chunks, None)
                        except Exception as e:  # noqa: BLE001 - a bad file must not kill the box
                            log.error("mic: skipping the rest of playlist item: %s", one_line(e))
                            break
                        if piece is None:
                            break
                        if self._stop.is_set():
                            return
                        if self.realtime:
                            # A chunk "arrives" when its last sample would have been captured.
                            due = t0 + (self.samples_produced + len(piece)) / self.sample_rate
                            delay = due - self._clock()
                            if delay > 0:
                                self._wait(delay)
                        self._ring.push(piece, block=not self.realtime)
                        self.samples_produced += len(piece)
                if not self.loop or not self._items:
                    return
                if self.samples_produced == pass_start:
                    # Every item empty or unreadable (a file emptied or removed while looping): looping
                    # again would spin a core and flood the log for nothing.
                    log.error("mic: the looping playlist holds no audio any more; the sim mic stops")
                    return
        finally:
            self._ring.finish()

    def _close(self) -> None:
        self._stop.set()
        self._ring.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)


def _normalise_playlist(playlist: Any) -> list:
    """Paths (checked now) and (array, rate or None) pairs."""
    if playlist is None:
        return []
    single = isinstance(playlist, (str, os.PathLike, np.ndarray)) or (
        isinstance(playlist, tuple) and len(playlist) == 2 and isinstance(playlist[0], np.ndarray)
    )
    items = [playlist] if single else list(playlist)
    out: list = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            wav_info(item)  # fail now, with the file name, not later on the capture thread
            out.append(os.fspath(item))
        elif isinstance(item, np.ndarray):
            out.append((item, None))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray):
            out.append((item[0], int(item[1])))
        else:
            raise ConfigError(f"[mic] playlist: expected WAV paths or arrays, got {type(item).__name__}")
    return out


# --------------------------------------------------------------------- choice


def _probe_real(device: int | str | None = None) -> tuple[bool, str]:
    return probe_device(device, INPUT)


def probe(cfg: MicConfig | None = None, *, device: int | str | None = None) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`: is the configured input there now?

    ``device`` overrides ``cfg.device`` (the keyword call check.py made before typed config).
    """
    usable, why = _probe_real((device if device is not None else (cfg or _DEFAULTS).device) or None)
    return [("real", usable, why), ("sim", True, "WAV playlist (stdlib wave)")]


def open_mic(backend: str | None = None, cfg: MicConfig | None = None, *, sample_rate: int | None = None) -> Mic:
    """Open the microphone described by ``cfg`` (a ``[mic]`` section; default: all defaults).

    ``backend`` (default ``cfg.backend``): "auto" | "real" (PyAudio) | "sim" (the
    WAV playlist); "auto" takes PyAudio when an input device is there now.
    ``sample_rate`` (not a config key: the box always listens at the front end's
    rate) lets a recorder ask for more, e.g. 48 kHz marimba audio.
    Call ``start()`` before reading.
    """
    cfg = cfg if cfg is not None else _DEFAULTS
    items = _normalise_playlist(cfg.playlist)
    sim_why = f"WAV playlist of {len(items)} item(s)" if items else "empty WAV playlist"
    choice = choose_backend("mic", cfg.backend if backend is None else backend,
                            lambda: _probe_real(cfg.device or None), sim_why=sim_why)
    runtime = {} if sample_rate is None else {"sample_rate": int(sample_rate)}
    if choice == "real":
        return PyAudioMic.from_config(cfg, **runtime)
    return PlaylistMic.from_config(cfg, **runtime)
