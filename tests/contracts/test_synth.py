"""The synth contract, on every backend that loads here (and the real port under ``-m hardware``).

Same message sequence -> the same MIDI bytes at the far end of every backend:
the serial synth through pyserial into a pty, the sim (virtual synth on a pty),
the null recorder. ``close()`` twice is fine, ``send`` after it raises
``SynthClosedError``, invalid messages raise before anything is sent, and
``is_playing`` follows the notes and the release time.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

import pytest

mido = pytest.importorskip("mido")
pytest.importorskip("serial")

from device.config import SynthConfig  # noqa: E402
from device.hardware.synth import (  # noqa: E402
    ALL_NOTES_OFF,
    ALL_NOTES_OFF_CC,
    ALL_SOUND_OFF_CC,
    BaseSynth,
    RecordingSynth,
    SerialSynth,
    SynthClosedError,
    VirtualSerialSynth,
    open_synth,
)

pytestmark = pytest.mark.device_venv

NO_RESET = SynthConfig(reset_wait_s=0.0)  # a pty has no board behind it to reset


class PtyFarEnd:
    """The far end of a serial cable: a pty whose master side collects every byte."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.received = bytearray()
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done:
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            with self._cond:
                self.received += data
                self._cond.notify_all()

    def wait_for_bytes(self, n: int, timeout: float = 10.0) -> bytes:
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= n, timeout)
            return bytes(self.received)

    def close(self) -> None:
        self._done = True
        self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)


class Backend:
    """Opens one backend and reads back what reached its far end (None: unobservable)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.far: PtyFarEnd | None = None

    def open(self, **tuning) -> BaseSynth:
        if self.name == "serial":
            self.far = PtyFarEnd()
            return open_synth("real", SynthConfig(port=self.far.port, reset_wait_s=0.0), **tuning)
        if self.name == "sim":
            return open_synth("sim", NO_RESET, wav_sample_rate=16000, **tuning)
        if self.name == "null":
            return open_synth("null", NO_RESET, **tuning)
        port = os.environ.get("SAYSEE_SYNTH_PORT", SynthConfig().port)  # "real": the box's synth
        return open_synth("real", SynthConfig(port=port), **tuning)

    def wire(self, synth: BaseSynth, n: int) -> bytes | None:
        if self.name == "serial":
            return self.far.wait_for_bytes(n)
        if self.name == "sim":
            synth.virtual.wait_for_bytes(n, timeout=5)
            return bytes(synth.virtual.received)
        if self.name == "null":
            return bytes(synth.wire)
        return None

    def cleanup(self) -> None:
        if self.far is not None:
            self.far.close()


@pytest.fixture(params=["serial", "sim", "null", pytest.param("real", marks=pytest.mark.hardware)])
def backend(request):
    b = Backend(request.param)
    yield b
    b.cleanup()


def wait_until(predicate, timeout=10.0):
    """A hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


SEQUENCE = [
    mido.Message("program_change", program=12, channel=9),
    mido.Message("note_on", note=60, velocity=100),
    mido.Message("note_on", note=64, velocity=90, channel=2),
    bytes([0x80, 60, 0]),  # raw bytes are sent as the message they spell
    mido.Message("control_change", control=7, value=100, channel=15),
    mido.Message("pitchwheel", pitch=-8192),
    mido.Message("sysex", data=[0x7E, 0x7F, 0x09, 0x01]),
    mido.Message("note_on", note=64, velocity=0, channel=2),
]


def test_same_midi_bytes_on_every_backend(backend):
    synth = backend.open()
    assert wait_until(lambda: synth.is_connected)
    for msg in SEQUENCE:
        assert synth.send(msg) is True
    assert synth.all_sound_off()
    synth.close()
    payload = b"".join(m if isinstance(m, bytes) else bytes(m.bytes()) for m in SEQUENCE)
    panic = bytes(b for ch in range(16) for b in (0xB0 | ch, ALL_SOUND_OFF_CC, 0))
    # All-notes-off first on the connection and last before closing, on every backend.
    expected = ALL_NOTES_OFF + payload + panic + ALL_NOTES_OFF
    wire = backend.wire(synth, len(expected))
    if wire is None:  # a real synth: we can only count what went out
        assert synth.bytes_written == len(expected)
    else:
        assert wire == expected


def test_close_twice_then_send_raises(backend):
    synth = backend.open()
    assert not synth.is_closed
    synth.close()
    synth.close()
    assert synth.is_closed and not synth.is_connected
    with pytest.raises(SynthClosedError, match="closed"):
        synth.send(mido.Message("note_on", note=60))
    with pytest.raises(SynthClosedError):
        synth.note_on(60)


def test_invalid_messages_are_refused_before_sending(backend):
    with backend.open() as synth:
        assert wait_until(lambda: synth.is_connected)
        with pytest.raises(ValueError):
            synth.send(bytes([0x90, 200, 90]))  # data byte out of range
        with pytest.raises(TypeError):
            synth.send("note_on 60")
        assert synth.send(bytes([0x90, 64, 90]))
    wire = backend.wire(synth, 2 * len(ALL_NOTES_OFF) + 3)
    assert wire is None or wire == ALL_NOTES_OFF + bytes([0x90, 64, 90]) + ALL_NOTES_OFF


def test_is_playing_follows_notes_and_release(backend):
    now = [0.0]
    synth = backend.open(clock=lambda: now[0])
    try:
        assert wait_until(lambda: synth.is_connected)
        assert synth.release_seconds == SynthConfig().release_s  # one default, the config's
        assert not synth.is_playing
        synth.note_on(60)
        synth.note_on(64)
        now[0] = 5.0
        assert synth.is_playing  # held notes
        synth.note_off(60)
        synth.send(mido.Message("note_on", note=64, velocity=0))  # running-status style note-off
        now[0] = 5.0 + 0.9 * synth.release_seconds
        assert synth.is_playing  # within release
        now[0] = 5.0 + 1.1 * synth.release_seconds
        assert not synth.is_playing
        synth.note_on(70, channel=3)
        synth.all_notes_off()
        now[0] += 1.1 * synth.release_seconds
        assert not synth.is_playing
    finally:
        synth.close()


def test_one_public_send_over_a_private_send_per_backend():
    # As mido's ports: validation, the closed check and note tracking live in one place.
    for cls in (SerialSynth, VirtualSerialSynth, RecordingSynth):
        assert cls.send is BaseSynth.send and cls.close is BaseSynth.close
        assert "_send" in vars(cls) or "_send" in vars(cls.__mro__[1])
    assert (ALL_NOTES_OFF_CC, ALL_SOUND_OFF_CC) == (123, 120)
    assert ALL_NOTES_OFF == bytes(b for ch in range(16) for b in (0xB0 | ch, 123, 0))
