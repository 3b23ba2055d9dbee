"""A virtual MIDI synth on a pseudo-terminal: the demo's stand-in for the serial synth.

It opens a pty pair, listens on the master side, parses whatever bytes arrive
with mido's parser (which never chokes on garbage), logs one line per message
and, on exit, renders every note-on as an additive marimba tone into a WAV.
The box talks to the slave side (``.port``) through pyserial exactly as it would
to a real USB/UART synth, so the demo exercises every byte of the real path.

Command line::

    python -m device.hardware.virtual_synth --wav out.wav [--log events.log] [--rate 48000] [--link PATH]

prints the pty path on stdout (one line, flushed) and runs until SIGTERM/SIGINT,
then writes the WAV atomically. In-process: ``VirtualSynth(...)`` with
``start()``/``stop()``, ``.port``, ``.messages`` and ``.received``.

The synth keeps its own descriptor of the slave open, so the device side may
close and reopen the port path at will (a reconnect) without hanging up the pty.
Note-offs are logged but do not cut the tone: a marimba bar rings out by itself.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import select
import signal
import sys
import threading
import time
import tty
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from device.frontend import midi_to_hz
from device.marimba.tones import bar_partials, decay_time
from device.wavfile import AtomicWavWriter

log = logging.getLogger("saysee.virtual_synth")

__all__ = ["VirtualSynth", "ReceivedMessage", "marimba_tone", "main"]

NOTE_GAIN = 0.25  # per note at velocity 127: four loud notes together reach full scale
_BLOCK_SECONDS = 10.0  # WAV rendering block: memory stays small for long runs
# What the synth keeps of what arrived, the newest (the WAV renders those): far more than any sim run,
# test or bench sends, and bounded because "auto" falls back to this synth on a box without pyserial or
# a configured port, where a continuous mapping sends CCs every hop (~340 B each: ~600 MB a day).
MAX_MESSAGES = 50_000
MAX_BYTES = 3 * MAX_MESSAGES


class ReceivedMessage(NamedTuple):
    """One parsed MIDI message and when it arrived (seconds since ``start()``)."""

    time: float
    message: Any  # mido.Message


@lru_cache(maxsize=256)
def _unit_tone(note: int, sample_rate: int) -> np.ndarray:
    # The bar sound the marimba model was trained on (device.marimba.tones), so a
    # sim run's synth WAV and the training videos' audio are the same instrument.
    f0 = float(midi_to_hz(note))
    partials = bar_partials(f0, sample_rate)
    # The fundamental decays slowest: -52 dB after six decay times. A note above
    # Nyquist has no partial left and stays silent.
    n = int(6.0 * decay_time(f0) * sample_rate) if partials else 0
    t = np.arange(n) / sample_rate
    tone = np.zeros(n)
    for f, amp, tau in partials:
        tone += amp * np.exp(-t / tau) * np.sin(2 * np.pi * f * t)
    attack = min(n, int(0.001 * sample_rate))  # 1 ms ramp: a click-free mallet strike
    tone[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    tone /= max(float(np.abs(tone).max(initial=0.0)), 1e-12)  # peak 1, so velocity maps to level exactly
    tone.setflags(write=False)
    return tone


def marimba_tone(note: int, velocity: int = 100, sample_rate: int = 48000) -> np.ndarray:
    """One struck bar: float64 samples with peak NOTE_GAIN * velocity / 127."""
    return _unit_tone(int(note), int(sample_rate)) * (NOTE_GAIN * max(0, min(127, int(velocity))) / 127.0)


class VirtualSynth:
    """A MIDI synth on a pty: parses what arrives, logs it, renders note-ons to a WAV.

    ``messages`` / ``received`` hold the newest ``MAX_MESSAGES`` / ``MAX_BYTES`` (everything, in any
    test or demo); ``messages_received`` / ``bytes_received`` count all that arrived.

    ``wav_path``: written by ``stop()`` (atomically) if given. ``log_path``: one
    line per message. ``sample_rate``: WAV rate (48000 or 16000). ``link``: a
    symlink made to point at the pty (a stable port path for configs); removed on
    stop if it still points there.
    """

    def __init__(
        self,
        *,
        wav_path: str | os.PathLike | None = None,
        log_path: str | os.PathLike | None = None,
        sample_rate: int = 48000,
        link: str | os.PathLike | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wav_path = Path(wav_path) if wav_path else None
        self.log_path = Path(log_path) if log_path else None
        self.sample_rate = int(sample_rate)
        self.link = Path(link) if link else None
        self._clock = clock
        import mido  # lazy, like every device dependency

        self._parser = mido.Parser()  # does no I/O and survives any byte sequence
        # The newest messages and raw bytes (tests check exact MIDI in them); the totals count everything.
        self.messages: deque[ReceivedMessage] = deque(maxlen=MAX_MESSAGES)
        self.received = bytearray()
        self.messages_received = 0
        self.bytes_received = 0
        self.port: str | None = None
        self._master = self._slave = None
        self._wake_r = self._wake_w = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._stopped = False
        self._log_file = None
        self._t0 = clock()  # reset by start(); set here so feed() works without a pty
        self.duration = 0.0  # seconds between start() and stop()

    # ----------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Open the pty and start listening; returns the port path (the pty slave)."""
        if self._stopped:
            raise RuntimeError("VirtualSynth can't be restarted; make a new one")
        if self.port is not None:
            return self.port
        self._master, self._slave = os.openpty()
        # Raw mode: no line discipline between the bytes written and the bytes read
        # (no CR/LF mangling, no echo, no ^C interpretation of 0x03).
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "w", buffering=1, encoding="utf-8")
        if self.link:
            _point_link(self.link, self.port)
        self._t0 = self._clock()
        self._thread = threading.Thread(target=self._listen, name="saysee-virtual-synth", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> Path | None:
        """Stop listening, close the pty, write the WAV (if configured). Idempotent."""
        if self._stopped or self.port is None:
            return None
        self._stopped = True
        self.duration = self._clock() - self._t0
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link and self.link.is_symlink() and os.readlink(self.link) == self.port:
            self.link.unlink()
        if self._log_file:
            self._log_file.close()
        with self._cond:
            self._cond.notify_all()
        if self.wav_path:
            return self.write_wav(self.wav_path)
        return None

    def __enter__(self) -> "VirtualSynth":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------- listening

    def _listen(self) -> None:
        while not self._stopping:
            try:
                ready, _, _ = select.select([self._master, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                return
            if self._wake_r in ready or self._stopping:
                return
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError as e:
                if e.errno == errno.EIO:  # no slave open right now; it may come back
                    time.sleep(0.05)
                    continue
                log.error("virtual synth: reading the pty failed: %s", e)
                return
            if data:
                self.feed(data)

    def feed(self, data: bytes) -> list[ReceivedMessage]:
        """Parse bytes as if they arrived on the port; returns the new messages."""
        t = self._clock() - self._t0
        self._parser.feed(bytes(data))
        new = []
        while True:
            msg = self._parser.get_message()
            if msg is None:
                break
            new.append(ReceivedMessage(t, msg))
        with self._cond:
            self.received.extend(data)
            if len(self.received) > MAX_BYTES:
                del self.received[: len(self.received) - MAX_BYTES]
            self.bytes_received += len(data)
            self.messages.extend(new)
            self.messages_received += len(new)
            self._cond.notify_all()
        for item in new:
            line = f"{item.time:9.3f} {_describe(item.message)}"
            log.debug("virtual synth: %s", line)
            if self._log_file:
                self._log_file.write(line + "\n")
        return new

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` messages arrived; False on timeout or stop."""
        with self._cond:
            return self._cond.wait_for(lambda: self.messages_received >= count or self._stopped, timeout) and (
                self.messages_received >= count
            )

    def wait_for_bytes(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` raw bytes arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: self.bytes_received >= count or self._stopped, timeout) and (
                self.bytes_received >= count
            )

    # ----------------------------------------------------------- rendering

    def note_ons(self) -> list[tuple[float, int, int]]:
        """(time, note, velocity) of every sounding note-on received."""
        with self._cond:
            msgs = list(self.messages)
        return [
            (m.time, m.message.note, m.message.velocity)
            for m in msgs
            if m.message.type == "note_on" and m.message.velocity > 0
        ]

    def _blocks(self, duration: float | None = None):
        sr = self.sample_rate
        notes = sorted(self.note_ons())
        end = 0
        for t, note, vel in notes:
            end = max(end, int(t * sr) + len(_unit_tone(note, sr)))
        if duration is None:
            if self.port is None:
                duration = 0.0
            else:
                duration = self.duration if self._stopped else self._clock() - self._t0
        total = max(end, int(duration * sr))
        block = int(_BLOCK_SECONDS * sr)
        for b0 in range(0, total, block):
            b1 = min(total, b0 + block)
            out = np.zeros(b1 - b0)
            for t, note, vel in notes:
                s = int(t * sr)
                if s >= b1:
                    break
                tone = marimba_tone(note, vel, sr)
                if s + len(tone) <= b0:
                    continue
                lo, hi = max(b0, s), min(b1, s + len(tone))
                out[lo - b0 : hi - b0] += tone[lo - s : hi - s]
            yield np.clip(out, -1.0, 1.0)  # hard limit: rare, only with many loud notes at once

    def render(self, duration: float | None = None) -> np.ndarray:
        """The whole performance as float32 samples in -1..1 at ``sample_rate``."""
        parts = list(self._blocks(duration))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    def write_wav(self, path: str | os.PathLike, duration: float | None = None) -> Path:
        """Render to a 16-bit WAV, block by block, written atomically."""
        with AtomicWavWriter(path, self.sample_rate) as w:
            for block in self._blocks(duration):
                w.write(block)
        return Path(path)


def _describe(msg) -> str:
    text = str(msg)
    return text[: -len(" time=0")] if text.endswith(" time=0") else text


def _point_link(link: Path, target: str) -> None:
    """Atomically (re)point ``link`` at ``target``."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


# ----------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m device.hardware.virtual_synth",
        description="A MIDI synth on a pseudo-terminal: prints its port path, renders notes to a WAV on exit.",
    )
    ap.add_argument("--wav", required=True, help="WAV file written on exit (SIGTERM/SIGINT)")
    ap.add_argument("--log", help="text file, one line per MIDI message")
    ap.add_argument("--rate", type=int, default=48000, choices=(16000, 22050, 44100, 48000), help="WAV sample rate")
    ap.add_argument("--link", help="also make this symlink point at the pty (a fixed port path)")
    ap.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    args = ap.parse_args(argv)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    synth = VirtualSynth(wav_path=args.wav, log_path=args.log, sample_rate=args.rate, link=args.link)
    port = synth.start()
    print(port, flush=True)
    try:
        done.wait(args.duration)
    finally:
        synth.stop()
    print(f"virtual synth: {synth.messages_received} message(s), wrote {args.wav}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
