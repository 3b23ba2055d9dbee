"""The MIDI synth on a serial port (real), on a pty with a virtual synth (sim), or a recorder.

Like mido's output ports, every backend shares ONE public ``send(message)``
(in ``BaseSynth``): it validates the message, refuses a closed synth with
``SynthClosedError``, tracks which notes sound and holds a lock; a backend only
implements ``_send(data: bytes) -> bool``. The serial ones put exactly the
standard MIDI bytes (``message.bytes()``) on the wire through pyserial, opened
with ``serial.serial_for_url`` so a device path, a symlink, ``loop://`` or
``spy:///dev/ttyUSB0`` all work.

Sending never blocks the caller (the audio/vision threads): the serial
``_send`` puts the bytes on a bounded queue that a writer thread drains into the
port, with ``write_timeout`` set so even that thread can't hang on a wedged
port. A full queue drops the message (``send`` returns False).

Port handling, for a synth that is plugged in late, unplugged and plugged back:
absent at start -> the box runs without synth and retries with exponential
backoff; an error on write -> the port is closed and retried the same way.
After each open the writer waits ``reset_wait_s`` before the first byte:
opening a USB serial port asserts DTR, which resets Arduino-style boards, and
their bootloader swallows whatever arrives meanwhile. State changes are logged
once, not every retry. While disconnected (or waiting for the reset), messages
are dropped, note-offs included: instead of replaying stale note-offs, every
(re)connection first sends all-notes-off (CC 123) on all 16 channels, which
silences anything left hanging. ``reconnects`` counts connections after a lost
one (a port that is absent at start and appears later is a first connection).

Every default comes from ``device.config.SynthConfig``; ``open_synth(backend,
cfg)`` and each backend's ``from_config(cfg, ...)`` take that typed section.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any, Callable

from device.config import SynthConfig
from device.hardware.base import Synth
from device.hardware.select import HardwareError, Probe, check_import, choose_backend, one_line

log = logging.getLogger("saysee.hardware")

__all__ = [
    "open_synth", "probe", "BaseSynth", "SerialSynth", "VirtualSerialSynth", "RecordingSynth",
    "SynthClosedError", "ALL_NOTES_OFF", "ALL_NOTES_OFF_CC", "ALL_SOUND_OFF_CC",
]

ALL_SOUND_OFF_CC = 120  # mutes at once, release envelopes too (MIDI 1.0 channel mode message)
ALL_NOTES_OFF_CC = 123  # note-off for every sounding note; releases still ring out
ALL_NOTES_OFF = bytes(b for ch in range(16) for b in (0xB0 | ch, ALL_NOTES_OFF_CC, 0))  # on all 16 channels
WEDGED_AFTER_TIMEOUTS = 3  # consecutive write timeouts before the port counts as dead
_DEFAULTS = SynthConfig()  # the one source of every configurable default below


class SynthClosedError(HardwareError):
    """``send()`` was called on a synth after ``close()`` (as mido's ports refuse it)."""


def _import_mido():
    ok, why, mido = check_import("mido", "pip install mido")
    if not ok:
        raise HardwareError(f"synth: {why}")
    return mido


class BaseSynth(Synth):
    """The one public ``send`` of every synth backend, over the backend's private ``_send``.

    ``send(message)`` takes a ``mido.Message`` or raw MIDI bytes, validates it
    (mido's range checks), raises ``SynthClosedError`` once closed, hands the
    bytes to ``_send(data) -> bool`` under a lock (so two threads' messages
    never interleave with the note bookkeeping) and counts what was dropped.

    ``release_seconds``: how long after its note-off a note may still be heard
    (synth release, room echo); ``is_playing`` stays True that long so the sound
    pipeline does not classify the box's own output.
    """

    def __init__(self, release_seconds: float, clock: Callable[[], float]) -> None:
        self._mido = _import_mido()
        self.release_seconds = float(release_seconds)
        self._clock = clock
        self._lock = threading.RLock()
        self._notes_lock = threading.Lock()  # also taken by the serial writer thread on a lost port
        self._active: set[tuple[int, int]] = set()  # (channel, note) sounding
        self._last_release = float("-inf")
        self.dropped_messages = 0

    # ------------------------------------------------------------ the public API

    def send(self, message: Any) -> bool:
        """Send one message; True if delivered (or queued for the port), False if dropped.

        Dropped = the port is absent, still resetting, or its queue is full. Raises
        TypeError/ValueError for something that is not a valid MIDI message and
        ``SynthClosedError`` after ``close()``.
        """
        msg = self._as_message(message)
        data = bytes(msg.bytes())
        with self._lock:
            if self.is_closed:
                raise SynthClosedError(f"synth: send() on a closed {self.backend} synth")
            delivered = bool(self._send(data))
            self._track(msg, delivered)
            if not delivered:
                self.dropped_messages += 1
        return delivered

    def close(self) -> None:
        """Idempotent. Messages sent before it are still delivered; ``send`` after it raises."""
        with self._lock:  # no send() is half-way through when the backend shuts down
            if self.is_closed:
                return
            self.is_closed = True
        self._close()

    def _send(self, data: bytes) -> bool:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    # ------------------------------------------------------------ note bookkeeping

    def _as_message(self, message: Any):
        mido = self._mido
        if isinstance(message, mido.Message):
            return message
        if isinstance(message, (bytes, bytearray, list, tuple)):
            return mido.Message.from_bytes(list(message))  # validates ranges and length
        raise TypeError(f"synth: expected a mido.Message or MIDI bytes, got {type(message).__name__}")

    def _track(self, msg, delivered: bool) -> None:
        now = self._clock()
        with self._notes_lock:
            if msg.type == "note_on" and msg.velocity > 0:
                if delivered:
                    self._active.add((msg.channel, msg.note))
            elif msg.type in ("note_off", "note_on"):
                if (msg.channel, msg.note) in self._active:
                    self._active.discard((msg.channel, msg.note))
                    self._last_release = now
            elif msg.type == "control_change" and msg.control in (ALL_SOUND_OFF_CC, ALL_NOTES_OFF_CC):
                if self._active:
                    self._last_release = now
                self._active.clear()

    def _release_all(self) -> None:
        with self._notes_lock:
            if self._active:
                self._last_release = self._clock()
            self._active.clear()

    @property
    def is_playing(self) -> bool:
        with self._notes_lock:
            return bool(self._active) or self._clock() - self._last_release < self.release_seconds

    # ------------------------------------------------------------ convenience senders

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> bool:
        """Build the mido.Message and ``send`` it (as do the other helpers below)."""
        return self.send(self._mido.Message("note_on", note=note, velocity=velocity, channel=channel))

    def note_off(self, note: int, velocity: int = 64, channel: int = 0) -> bool:
        return self.send(self._mido.Message("note_off", note=note, velocity=velocity, channel=channel))

    def program_change(self, program: int, channel: int = 0) -> bool:
        return self.send(self._mido.Message("program_change", program=program, channel=channel))

    def all_notes_off(self) -> bool:
        """CC 123 on all 16 channels (note-offs; releases ring out)."""
        return self._control_all(ALL_NOTES_OFF_CC)

    def all_sound_off(self) -> bool:
        """CC 120 on all 16 channels: silence now, like mido's ``panic()``."""
        return self._control_all(ALL_SOUND_OFF_CC)

    def _control_all(self, control: int) -> bool:
        ok = True
        for ch in range(16):
            ok &= self.send(self._mido.Message("control_change", control=control, value=0, channel=ch))
        return ok


class SerialSynth(BaseSynth):
    """A MIDI synth on a serial port (path, symlink or pyserial URL).

    ``baudrate``: DIN MIDI's rate through a UART (the default) or 115200 (USB-serial synths).
    ``reset_wait_s``: pause after each open before the first byte (boards that reset on DTR).
    ``write_timeout``: seconds one write may block the writer thread.
    ``queue_size``: messages waiting for the port before send() drops.
    ``retry_seconds``/``max_retry_seconds``: reconnect backoff, doubling.
    """

    backend = "real"

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = _DEFAULTS.baud,
        release_seconds: float = _DEFAULTS.release_s,
        reset_wait_s: float = _DEFAULTS.reset_wait_s,
        write_timeout: float = 0.5,
        queue_size: int = 256,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not port:
            raise HardwareError("synth: no serial port configured ([synth] port)")
        ok, why, serial = check_import("serial", "pip install pyserial")
        if not ok:
            raise HardwareError(f"synth: {why}")
        super().__init__(release_seconds, clock)
        if int(baudrate) <= 0 or float(write_timeout) <= 0 or int(queue_size) <= 0 or float(reset_wait_s) < 0:
            raise HardwareError("synth: baudrate, write_timeout and queue_size must be positive, reset_wait_s >= 0")
        self._serial = serial
        self.port = os.fspath(port)
        self.baudrate = int(baudrate)
        self.reset_wait_s = float(reset_wait_s)
        self.write_timeout = float(write_timeout)
        self.retry_seconds = float(retry_seconds)
        self.max_retry_seconds = max(float(max_retry_seconds), self.retry_seconds)
        self._queue: queue.Queue = queue.Queue(maxsize=int(queue_size))
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._serial_port = None
        self._state = "new"  # "connected" | "absent" | "lost": only changes are logged
        self._ever_connected = False
        self._timeouts_in_row = 0
        self._notes_off_owed = False  # a write timed out: send all-notes-off before the next message
        self.connects = 0
        self.reconnects = 0
        self.messages_sent = 0
        self.write_timeouts = 0
        self.bytes_written = 0
        if self.reset_wait_s == 0:
            # Nothing to wait for: connect now so a present port works from the first note on.
            self._connect()
        self._thread = threading.Thread(target=self._run, name="saysee-synth-writer", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, cfg: SynthConfig, **runtime: Any) -> "SerialSynth":
        """The backend for a ``[synth]`` section; ``runtime``: the tuning/clock keywords above."""
        return cls(cfg.port, baudrate=cfg.baud, release_seconds=cfg.release_s, reset_wait_s=cfg.reset_wait_s,
                   **runtime)

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def queued(self) -> int:
        """Messages waiting for the writer thread."""
        return self._queue.qsize()

    def _send(self, data: bytes) -> bool:
        if not self._connected.is_set():
            return False
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            return False
        return True

    # ----------------------------------------------------------- writer thread

    def _run(self) -> None:
        backoff = self.retry_seconds
        tried = self.reset_wait_s == 0  # the constructor made the first attempt
        while True:
            if self._serial_port is None:
                if self._stop.is_set() or (tried and self._stop.wait(backoff)):
                    break
                tried = True
                if self._connect():
                    backoff = self.retry_seconds
                else:
                    backoff = min(backoff * 2, self.max_retry_seconds)
                continue
            try:
                data = self._queue.get(timeout=0.25)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            if data is None:  # close() queued this after the last message: all sent
                break
            self._write(data)

    def _connect(self) -> bool:
        serial = self._serial
        try:
            port = serial.serial_for_url(self.port, baudrate=self.baudrate, write_timeout=self.write_timeout)
        except (serial.SerialException, OSError, ValueError) as e:
            self._set_state(
                "absent", f"synth: port {self.port} unavailable ({one_line(e)}); running without synth, retrying"
            )
            return False
        if self.reset_wait_s > 0:
            log.debug("synth: opened %s; waiting %.1f s for the board to come out of reset", self.port,
                      self.reset_wait_s)
            if self._stop.wait(self.reset_wait_s):  # closed meanwhile
                _quiet_close(port)
                return False
        self._drain()  # anything still queued is stale by now
        try:
            port.write(ALL_NOTES_OFF)  # first thing on every connection: no stuck notes
            self.bytes_written += len(ALL_NOTES_OFF)
            self._notes_off_owed = False
        except (serial.SerialException, OSError) as e:
            _quiet_close(port)
            self._set_state("absent", f"synth: port {self.port} opened but not writable ({one_line(e)}); retrying")
            return False
        self._serial_port = port
        self._timeouts_in_row = 0
        self.connects += 1
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._connected.set()
        self._set_state("connected", f"synth: connected to {self.port} at {self.baudrate} baud")
        return True

    def _write(self, data: bytes) -> None:
        serial = self._serial
        try:
            if self._notes_off_owed:
                # A message lost to a timeout may have been a note-off, or left half a message on the
                # wire: all-notes-off before anything else, so nothing is left sounding.
                self._serial_port.write(ALL_NOTES_OFF)
                self.bytes_written += len(ALL_NOTES_OFF)
                self._notes_off_owed = False
            self._serial_port.write(data)
        except serial.SerialTimeoutException:
            self._notes_off_owed = True
            # The far end stopped reading (flow control, crashed USB synth). Drop
            # this message; several in a row means the port is dead: reopen it.
            self.write_timeouts += 1
            self.dropped_messages += 1
            self._timeouts_in_row += 1
            if self._timeouts_in_row >= WEDGED_AFTER_TIMEOUTS:
                self._disconnect(f"{self._timeouts_in_row} write timeouts in a row")
            return
        except (serial.SerialException, OSError) as e:
            self.dropped_messages += 1
            self._disconnect(one_line(e))
            return
        self._timeouts_in_row = 0
        self.messages_sent += 1
        self.bytes_written += len(data)

    def _disconnect(self, why: str) -> None:
        self._connected.clear()
        port, self._serial_port = self._serial_port, None
        if port is not None:
            _quiet_close(port)
        self._drain()
        self._release_all()  # whatever was sounding is cut off or will be by CC 123
        self._set_state("lost", f"synth: lost port {self.port} ({why}); retrying")

    def _drain(self) -> None:
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    self.dropped_messages += 1
            except queue.Empty:
                return

    def _set_state(self, state: str, line: str) -> None:
        if state == self._state or (state == "absent" and self._state == "lost"):
            return  # retries of the same failure stay quiet
        self._state = state
        (log.info if state == "connected" else log.warning)(line)

    def _close(self) -> None:
        # Let the writer finish what is queued (bounded: a wedged port is given
        # up after a few write timeouts), then say all-notes-off and close.
        self._connected.clear()
        self._stop.set()
        try:
            self._queue.put(None, timeout=self.write_timeout)
        except queue.Full:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=(WEDGED_AFTER_TIMEOUTS + 1) * self.write_timeout + 2.0)
        port, self._serial_port = self._serial_port, None
        if port is not None:
            try:
                port.write(ALL_NOTES_OFF)  # leave the synth silent
                self.bytes_written += len(ALL_NOTES_OFF)
            except Exception:  # noqa: BLE001
                pass
            _quiet_close(port)
        self._release_all()


def _quiet_close(port) -> None:
    try:
        port.close()
    except Exception:  # noqa: BLE001 - the port may already be gone
        pass


class VirtualSerialSynth(SerialSynth):
    """Sim backend: an in-process ``VirtualSynth`` on a pty, driven through pyserial.

    Same code path as the real synth; closing it also stops the virtual synth,
    which writes its WAV (``wav_path``) and message log (``log_path``).
    ``virtual`` is the VirtualSynth, with ``.messages`` and ``.received``.
    There is no board to reset behind a pty, so it never waits after opening.
    """

    backend = "sim"

    def __init__(
        self,
        *,
        wav_path: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        wav_sample_rate: int = 48000,
        baudrate: int = _DEFAULTS.baud,
        release_seconds: float = _DEFAULTS.release_s,
        **tuning: Any,
    ) -> None:
        from device.hardware.virtual_synth import VirtualSynth

        self.virtual = VirtualSynth(wav_path=wav_path, log_path=log_path, sample_rate=wav_sample_rate)
        port = self.virtual.start()
        try:
            super().__init__(port, baudrate=baudrate, release_seconds=release_seconds, reset_wait_s=0.0, **tuning)
        except BaseException:
            self.virtual.stop()
            raise

    @classmethod
    def from_config(cls, cfg: SynthConfig, **runtime: Any) -> "VirtualSerialSynth":
        """``runtime``: ``wav_path``, ``log_path``, ``wav_sample_rate`` and SerialSynth's tuning keywords."""
        return cls(baudrate=cfg.baud, release_seconds=cfg.release_s, **runtime)

    def _close(self) -> None:
        super()._close()
        # Let the last bytes (the final all-notes-off) reach the virtual synth
        # before it stops listening, so its log and WAV are complete.
        self.virtual.wait_for_bytes(self.bytes_written, timeout=1.0)
        self.virtual.stop()


class RecordingSynth(BaseSynth):
    """A synth without a port ("null" backend), always "connected".

    ``messages``: (seconds since open, mido.Message) of everything sent.
    ``wire``: the exact bytes a serial synth would have put on its port,
    all-notes-off on open and on close included.
    """

    backend = "null"

    def __init__(self, *, release_seconds: float = _DEFAULTS.release_s,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(release_seconds, clock)
        self._t0 = clock()
        self.messages: list[tuple[float, Any]] = []
        self.wire = bytearray(ALL_NOTES_OFF)

    @classmethod
    def from_config(cls, cfg: SynthConfig, **runtime: Any) -> "RecordingSynth":
        return cls(release_seconds=cfg.release_s, **runtime)

    @property
    def is_connected(self) -> bool:
        return not self.is_closed

    def _send(self, data: bytes) -> bool:
        self.wire += data
        self.messages.append((self._clock() - self._t0, self._mido.Message.from_bytes(list(data))))
        return True

    def _close(self) -> None:
        self.wire += ALL_NOTES_OFF
        self._release_all()


# --------------------------------------------------------------------- choice


def _is_url(port: str) -> bool:
    return "://" in port


def _probe_real(port: str | None, *, require_present: bool = True) -> tuple[bool, str]:
    """Usable = libraries import, a port is configured and (if required) exists now.

    Opening a synth does not require the port to be present: it runs without
    synth and connects when the port appears (plugged in after boot).
    """
    for module, hint in (("serial", "pip install pyserial"), ("mido", "pip install mido")):
        ok, why, _ = check_import(module, hint)
        if not ok:
            return False, why
    if not port:
        return False, "no serial port configured"
    port = os.fspath(port)
    if _is_url(port):
        return True, f"pyserial URL {port}"
    if not os.path.exists(port):
        if not require_present:
            return True, f"serial port {port} absent for now; will connect when it appears"
        return False, f"serial port {port} absent"
    if not os.access(port, os.R_OK | os.W_OK):
        return False, f"serial port {port}: permission denied (add the user to the 'dialout' group)"
    return True, f"serial port {port}"


def probe(cfg: SynthConfig | None = None, *, port: str | None = None) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`: is the configured port there right now?

    ``port`` overrides ``cfg.port`` (the keyword call check.py made before typed config).
    """
    usable, why = _probe_real(port if port is not None else (cfg or _DEFAULTS).port)
    out = [("real", usable, why)]
    ok = hasattr(os, "openpty")
    for module in ("serial", "mido"):
        good, reason, _ = check_import(module)
        if not good:
            ok, why = False, reason
            break
    else:
        why = "virtual synth on a pseudo-terminal" if ok else "no pseudo-terminals on this OS"
    out.append(("sim", ok, why))
    out.append(("null", _import_ok("mido"), "records messages, no port"))
    return out


def _import_ok(module: str) -> bool:
    return check_import(module)[0]


def open_synth(
    backend: str | None = None,
    cfg: SynthConfig | None = None,
    *,
    wav_path: str | os.PathLike | None = None,
    log_path: str | os.PathLike | None = None,
    wav_sample_rate: int = 48000,
    **tuning: Any,
) -> BaseSynth:
    """Open the MIDI synth described by ``cfg`` (a ``[synth]`` section; default: all defaults).

    ``backend`` (default ``cfg.backend``): "real" (serial port), "sim" (virtual
    synth on a pty), "null" (records), or "auto": the serial port when pyserial
    and mido import and a port is configured, *even if it is absent now* -- a
    synth plugged in after boot is then connected when it appears, where a
    virtual synth chosen once would never give way to it. ``wav_path``,
    ``log_path``, ``wav_sample_rate``: where the sim writes what it played.
    ``tuning``: SerialSynth's ``write_timeout``, ``queue_size``,
    ``retry_seconds``, ``max_retry_seconds``, ``clock``.
    """
    cfg = cfg if cfg is not None else _DEFAULTS
    choice = choose_backend(
        "synth",
        cfg.backend if backend is None else backend,
        lambda: _probe_real(cfg.port, require_present=False),
        extra=("null",),
        sim_why="virtual synth on a pty",
    )
    if choice == "real":
        return SerialSynth.from_config(cfg, **tuning)
    if choice == "null":
        return RecordingSynth.from_config(cfg, **{k: v for k, v in tuning.items() if k == "clock"})
    return VirtualSerialSynth.from_config(cfg, wav_path=wav_path, log_path=log_path,
                                          wav_sample_rate=wav_sample_rate, **tuning)
