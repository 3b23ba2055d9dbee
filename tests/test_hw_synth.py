"""Serial MIDI synth over real pseudo-terminals: late, lost, wedged and resetting ports.

What every backend must do alike (exact bytes, close, validation, is_playing)
is in tests/contracts/test_synth.py.
"""

from __future__ import annotations

import errno
import inspect
import itertools
import logging
import os
import select
import threading
import time
import tty
from pathlib import Path

import pytest

mido = pytest.importorskip("mido")
pytest.importorskip("serial")

from device.config import SynthConfig, config_from_dict  # noqa: E402
from device.hardware.select import HardwareError  # noqa: E402
from device.hardware.synth import (  # noqa: E402
    ALL_NOTES_OFF,
    RecordingSynth,
    SerialSynth,
    VirtualSerialSynth,
    open_synth,
    probe,
)
from device.hardware.virtual_synth import VirtualSynth  # noqa: E402

pytestmark = pytest.mark.device_venv

FAST_RETRY = dict(retry_seconds=0.02, max_retry_seconds=0.1, reset_wait_s=0.0)  # a pty has no board to reset
TUNING = dict(retry_seconds=0.02, max_retry_seconds=0.1)  # open_synth's keywords; the wait is in the config


def wait_until(predicate, timeout=10.0):
    """Poll until predicate() is true; a generous bound, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def point(link, target):
    tmp = link.with_name(link.name + ".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def test_port_absent_at_start_then_appears(tmp_path, caplog):
    link = tmp_path / "synth"
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        synth = open_synth("real", SynthConfig(port=str(link), reset_wait_s=0.0), **TUNING)
        try:
            assert not synth.is_connected
            assert synth.send(mido.Message("note_on", note=60)) is False  # dropped, no crash
            assert not synth.is_playing  # it never sounded
            with VirtualSynth(link=link) as vs:
                assert wait_until(lambda: synth.is_connected)
                assert synth.reconnects == 0  # first connection, not a reconnect
                assert synth.send(mido.Message("note_on", note=64, velocity=90))
                assert vs.wait_for_bytes(len(ALL_NOTES_OFF) + 3)
                assert bytes(vs.received) == ALL_NOTES_OFF + bytes([0x90, 64, 90])
        finally:
            synth.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "saysee.hardware"]
    # One line per state change, however many retries happened in between.
    assert sum("unavailable" in line for line in lines) == 1
    assert sum("connected to" in line for line in lines) == 1


def test_port_lost_mid_run_and_back(tmp_path):
    link = tmp_path / "synth"
    first = VirtualSynth(link=link)
    first.start()
    synth = SerialSynth(str(link), **FAST_RETRY)
    try:
        assert synth.send(mido.Message("note_on", note=60))
        assert first.wait_for(17)  # 16 x all-notes-off + the note
        first.stop()  # the synth is unplugged: its pty and our symlink vanish
        assert not link.exists()
        # The loss is noticed on the next write; sends never raise meanwhile.
        for i in range(50):
            synth.send(mido.Message("note_on", note=61))
            if not synth.is_connected:
                break
            time.sleep(0.01)
        assert wait_until(lambda: not synth.is_connected)
        assert synth.send(mido.Message("note_on", note=62)) is False

        with VirtualSynth() as second:  # plugged back in, maybe as another device
            point(link, second.port)
            assert wait_until(lambda: synth.is_connected)
            assert synth.reconnects == 1
            assert synth.send(mido.Message("note_on", note=65, velocity=80))
            assert second.wait_for_bytes(len(ALL_NOTES_OFF) + 3)
            # All-notes-off comes first on the new connection, then new messages resume.
            assert bytes(second.received[: len(ALL_NOTES_OFF) + 3]) == ALL_NOTES_OFF + bytes([0x90, 65, 80])
    finally:
        synth.close()
    assert synth.dropped_messages >= 1


def test_wedged_port_never_blocks_send(tmp_path):
    # A pty nobody reads: once the kernel buffer is full every write blocks until
    # write_timeout. send() must keep returning at once, dropping when the queue is full.
    master, slave = os.openpty()
    port = os.ttyname(slave)
    synth = SerialSynth(port, baudrate=115200, write_timeout=0.2, queue_size=8, **FAST_RETRY)
    try:
        big = mido.Message("sysex", data=[0x11] * 1000)  # fills the pty buffer in a few sends

        def wedged():
            synth.send(big)
            return synth.write_timeouts > 0

        assert wait_until(wedged)
        # The writer thread is now stuck in (timed-out) writes. A burst of sends from
        # another thread still completes, overflowing the bounded queue instead of waiting.
        results = []
        note = mido.Message("note_on", note=60, velocity=1)
        sender = threading.Thread(target=lambda: results.extend(synth.send(note) for _ in range(200)))
        sender.start()
        sender.join(30)
        assert not sender.is_alive() and len(results) == 200  # every send returned
        assert results.count(False) > 0 and synth.dropped_messages > 0
        assert synth.queued <= 8  # bounded: no backlog builds up behind a dead port
    finally:
        synth.close()  # and close itself is bounded too
        os.close(master)
        os.close(slave)


def test_sim_backend_is_a_virtual_synth_on_a_pty(tmp_path):
    wav, log = tmp_path / "synth.wav", tmp_path / "events.log"
    with open_synth("sim", SynthConfig(), wav_path=wav, log_path=log, wav_sample_rate=16000) as synth:
        assert isinstance(synth, VirtualSerialSynth) and synth.backend == "sim"
        assert synth.port.startswith("/dev/")
        assert synth.note_on(69, 100)
        assert synth.is_playing
        assert synth.virtual.wait_for(17)
    assert wav.exists() and log.exists()
    lines = log.read_text().splitlines()
    assert any("note_on channel=0 note=69 velocity=100" in line for line in lines)
    assert len(lines) == 16 + 1 + 16  # hello, the note, goodbye


def test_backend_choice_and_probe(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_synth("auto", SynthConfig(port=""), wav_path=tmp_path / "a.wav") as synth:
            assert synth.backend == "sim"
    assert any("synth: sim backend (auto: real unusable: no serial port" in r.getMessage() for r in caplog.records)
    with open_synth("auto", SynthConfig(port="loop://", reset_wait_s=0.0)) as synth:
        assert synth.backend == "real" and synth.is_connected
        assert synth.note_on(60)
    with open_synth(None, SynthConfig(port="loop://", backend="sim")) as synth:  # backend from the config
        assert synth.backend == "sim"
    with open_synth("null") as synth:
        assert isinstance(synth, RecordingSynth)
    with pytest.raises(HardwareError, match="no serial port configured"):
        open_synth("real", SynthConfig(port=""))
    rows = probe(SynthConfig(port=str(tmp_path / "nope")))
    assert [r[0] for r in rows] == ["real", "sim", "null"]
    assert rows[0][1] is False and "absent" in rows[0][2] and rows[1][1] is True
    assert probe(port=str(tmp_path / "nope")) == rows  # check.py's keyword call


def test_counters_after_many_reconnects(tmp_path):
    link = tmp_path / "synth"
    synth = SerialSynth(str(link), **FAST_RETRY)
    try:
        for n in itertools.count(1):
            with VirtualSynth(link=link) as vs:
                assert wait_until(lambda: synth.is_connected)
                synth.note_on(60)
                assert vs.wait_for(17)
            assert wait_until(lambda: synth.send(mido.Message("note_on", note=1)) is False or not synth.is_connected)
            assert wait_until(lambda: not synth.is_connected)
            if n == 3:
                break
        assert synth.connects == 3 and synth.reconnects == 2
    finally:
        synth.close()


# ------------------------------------------------------------------ plugged in late, boards that reset


class ResettingBoard:
    """An Arduino-style USB synth behind a pty: opening the port resets the board.

    pyserial asserts DTR when it opens a port, and on such boards DTR pulls
    reset: the bootloader then runs for ``boot_s`` and swallows every byte that
    arrives meanwhile (kept in ``lost``); after that the sketch plays what
    arrives (``received``). Nobody holds the pty's slave side, so the master's
    reads fail with EIO until a process opens the port: that is the "open".
    """

    def __init__(self, boot_s: float) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)
        self.boot_s = boot_s
        self.received = bytearray()
        self.lost = bytearray()
        self.opens = 0
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        opened_at = None
        while not self._done:
            if not select.select([self.master], [], [], 0.005)[0]:
                if opened_at is None:  # no EIO any more: someone opened the port
                    opened_at = time.monotonic()
                    self.opens += 1
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError as e:
                if e.errno != errno.EIO:
                    return
                opened_at = None  # closed again: the next open resets the board again
                time.sleep(0.005)
                continue
            if opened_at is None:
                opened_at = time.monotonic()
                self.opens += 1
            with self._cond:
                booting = time.monotonic() - opened_at < self.boot_s
                (self.lost if booting else self.received).extend(data)
                self._cond.notify_all()

    def wait_for_bytes(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) + len(self.lost) >= n, timeout)

    def close(self) -> None:
        self._done = True
        self._thread.join(2)
        os.close(self.master)


def test_auto_connects_a_synth_plugged_in_after_boot(tmp_path, caplog):
    # "auto" used to pick the virtual synth once when the port was absent at start,
    # so a synth plugged in later was never used.
    link = tmp_path / "saysee-synth"
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        synth = open_synth("auto", SynthConfig(port=str(link), reset_wait_s=0.0), **TUNING)
    try:
        assert synth.backend == "real" and not synth.is_connected
        assert any("real backend (auto: serial port" in r.getMessage() and "when it appears" in r.getMessage()
                   for r in caplog.records)
        assert synth.send(mido.Message("note_on", note=60)) is False  # absent: dropped, not queued
        with VirtualSynth(link=link) as vs:  # plugged in
            assert wait_until(lambda: synth.is_connected)
            assert synth.note_on(67, 80)
            assert vs.wait_for_bytes(len(ALL_NOTES_OFF) + 3)
            assert bytes(vs.received) == ALL_NOTES_OFF + bytes([0x90, 67, 80])
    finally:
        synth.close()


def test_board_that_resets_on_open_loses_nothing_after_the_reset_wait(tmp_path):
    note = bytes([0x90, 64, 90])
    expected = ALL_NOTES_OFF + note + ALL_NOTES_OFF

    # Without a wait the bootloader eats the all-notes-off and the first note.
    board = ResettingBoard(boot_s=0.3)
    try:
        with SerialSynth(board.port, **FAST_RETRY) as synth:
            assert synth.is_connected and synth.send(note)
        assert board.wait_for_bytes(len(expected))
        assert bytes(board.lost).startswith(ALL_NOTES_OFF + note) and note not in bytes(board.received)
    finally:
        board.close()

    # The box's way: the board appears after boot; after each open the synth waits
    # reset_wait_s before its first byte and counts as disconnected meanwhile.
    link = tmp_path / "saysee-synth"
    synth = open_synth("auto", SynthConfig(port=str(link), reset_wait_s=1.0), **TUNING)
    board = ResettingBoard(boot_s=0.3)
    try:
        assert synth.backend == "real" and not synth.is_connected
        point(link, board.port)  # plugged in
        assert wait_until(lambda: board.opens == 1)
        assert wait_until(lambda: synth.is_connected)
        assert synth.send(note)
        synth.close()
        assert board.wait_for_bytes(len(expected))
        assert bytes(board.received) == expected and bytes(board.lost) == b""
        assert synth.connects == 1 and synth.reconnects == 0
    finally:
        synth.close()
        board.close()


def test_every_synth_default_comes_from_the_config():
    # Twins once: release 1.5 s in the synth vs 0.5 s in the config; baud in both.
    cfg = SynthConfig()
    params = inspect.signature(SerialSynth).parameters
    assert params["baudrate"].default == cfg.baud == 31250
    assert params["release_seconds"].default == cfg.release_s
    assert params["reset_wait_s"].default == cfg.reset_wait_s > 0
    assert inspect.signature(VirtualSerialSynth).parameters["release_seconds"].default == cfg.release_s
    with RecordingSynth() as synth:
        assert synth.release_seconds == cfg.release_s
    # The typed section reaches the backend key by key, the TOML key included.
    cfg = config_from_dict({"synth": {"port": "loop://", "baud": 115200, "release_s": 2.5,
                                      "reset_wait_s": 0.0}}).synth
    with open_synth("real", cfg) as synth:
        assert (synth.port, synth.baudrate, synth.release_seconds, synth.reset_wait_s) == (
            "loop://", 115200, 2.5, 0.0)
    # DIN MIDI's rate is written down once in device/: in the config.
    root = Path(__file__).resolve().parents[1] / "device"
    assert [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.py")) if "31250" in p.read_text()] == [
        "config.py"]


def test_a_write_that_times_out_is_followed_by_all_notes_off(monkeypatch):
    """pyserial's write raises SerialTimeoutException once write_timeout passes, after writing what fitted.
    A note-off lost that way (a USB synth busy loading a program) must not leave its note sounding."""
    import serial

    wire = bytearray()

    class BusyOncePort:
        """Like Serial with write_timeout: the first note-off goes half out, then the timeout."""

        busy = True

        def write(self, data):
            if self.busy and data[0] & 0xF0 == 0x80:
                self.busy = False
                wire.extend(data[:1])
                raise serial.SerialTimeoutException("Write timeout")
            wire.extend(data)
            return len(data)

        def close(self):
            pass

    monkeypatch.setattr(serial, "serial_for_url", lambda *a, **k: BusyOncePort())
    synth = SerialSynth("loop://", reset_wait_s=0.0, release_seconds=0.0)
    try:
        assert wait_until(lambda: synth.is_connected)
        start = len(wire)  # after the connect-time all-notes-off
        synth.send(mido.Message("note_on", note=72, velocity=100))
        synth.send(mido.Message("note_off", note=72, velocity=0))
        assert wait_until(lambda: synth.write_timeouts == 1)
        synth.send(mido.Message("program_change", program=9))
        assert wait_until(lambda: bytes(wire).endswith(bytes([0xC0, 9])))
        assert bytes(wire[start:]) == bytes([0x90, 72, 100, 0x80]) + ALL_NOTES_OFF + bytes([0xC0, 9])
        assert synth.is_connected  # one timeout is a busy synth, not a dead port
    finally:
        synth.close()
