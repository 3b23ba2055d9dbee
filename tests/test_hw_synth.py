"""Serial MIDI synth over real pseudo-terminals: exact bytes, absent/lost ports, wedged ports."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time

import pytest

mido = pytest.importorskip("mido")
pytest.importorskip("serial")

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

FAST_RETRY = dict(retry_seconds=0.02, max_retry_seconds=0.1)


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


def test_note_on_off_bytes_exactly_as_midi(tmp_path):
    link = tmp_path / "synth"
    with VirtualSynth(link=link) as vs:
        with SerialSynth(str(link), **FAST_RETRY) as synth:
            assert synth.is_connected and synth.connects == 1 and synth.reconnects == 0
            assert synth.send(mido.Message("note_on", note=60, velocity=100))
            assert synth.send(mido.Message("note_off", note=60, velocity=0, channel=2))
            assert synth.send(mido.Message("program_change", program=12, channel=9))
            assert synth.note_on(72, 127, channel=1)
            expected = ALL_NOTES_OFF + bytes([0x90, 60, 100, 0x82, 60, 0, 0xC9, 12, 0x91, 72, 127])
            assert vs.wait_for_bytes(len(expected))
            assert bytes(vs.received) == expected
        # On close the synth is told to be silent once more.
        assert vs.wait_for_bytes(len(expected) + len(ALL_NOTES_OFF))
        assert bytes(vs.received) == expected + ALL_NOTES_OFF
    assert [m.message.type for m in vs.messages[16:20]] == ["note_on", "note_off", "program_change", "note_on"]


def test_raw_bytes_are_validated(tmp_path):
    with RecordingSynth() as synth:
        assert synth.send(bytes([0x90, 64, 90]))
        assert synth.messages[0][1] == mido.Message("note_on", note=64, velocity=90)
        with pytest.raises(ValueError):
            synth.send(bytes([0x90, 200, 90]))  # data byte out of range
        with pytest.raises(TypeError):
            synth.send("note_on 60")


def test_port_absent_at_start_then_appears(tmp_path, caplog):
    link = tmp_path / "synth"
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        synth = open_synth("real", port=str(link), **FAST_RETRY)
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


def test_is_playing_tracks_notes_and_release(tmp_path):
    now = [0.0]
    synth = RecordingSynth(release_seconds=1.0, clock=lambda: now[0])
    assert not synth.is_playing
    synth.note_on(60)
    synth.note_on(64)
    now[0] = 5.0
    assert synth.is_playing  # held notes
    synth.note_off(60)
    synth.send(mido.Message("note_on", note=64, velocity=0))  # running-status style note-off
    now[0] = 5.5
    assert synth.is_playing  # within release
    now[0] = 6.01
    assert not synth.is_playing
    synth.note_on(70, channel=3)
    synth.all_notes_off()
    now[0] = 7.5
    assert not synth.is_playing
    synth.close()
    assert synth.send(mido.Message("note_on", note=60)) is False


def test_sim_backend_is_a_virtual_synth_on_a_pty(tmp_path):
    wav, log = tmp_path / "synth.wav", tmp_path / "events.log"
    with open_synth("sim", wav_path=wav, log_path=log, wav_sample_rate=16000) as synth:
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
        with open_synth("auto", port=str(tmp_path / "ttyUSB9"), wav_path=tmp_path / "a.wav") as synth:
            assert synth.backend == "sim"
    assert any("synth: sim backend (auto: real unusable: serial port" in r.getMessage() for r in caplog.records)
    with open_synth("auto", port="loop://") as synth:
        assert synth.backend == "real" and synth.is_connected
        assert synth.note_on(60)
    with open_synth("null") as synth:
        assert isinstance(synth, RecordingSynth)
    with pytest.raises(HardwareError, match="no serial port configured"):
        open_synth("real")
    rows = probe(port=str(tmp_path / "nope"))
    assert [r[0] for r in rows] == ["real", "sim", "null"]
    assert rows[0][1] is False and "absent" in rows[0][2] and rows[1][1] is True


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
