"""The virtual synth: parses MIDI from a pty, renders marimba tones, survives garbage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

mido = pytest.importorskip("mido")

from device.hardware.virtual_synth import VirtualSynth, marimba_tone  # noqa: E402
from device.wavfile import read_wav  # noqa: E402

pytestmark = pytest.mark.device_venv

ROOT = Path(__file__).resolve().parents[1]


def _peak_hz(x, rate):
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


def test_note_on_bytes_render_the_fundamental(tmp_path):
    wav = tmp_path / "out.wav"
    vs = VirtualSynth(wav_path=wav, sample_rate=16000)
    port = vs.start()
    fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)  # the device side, as raw bytes
    try:
        os.write(fd, bytes([0x90, 69, 100]))  # A4 = 440 Hz
        assert vs.wait_for(1)
    finally:
        os.close(fd)
    vs.stop()
    vs.stop()  # idempotent
    assert vs.messages[0].message == mido.Message("note_on", note=69, velocity=100)
    audio, rate = read_wav(wav)
    assert rate == 16000
    onset = int(vs.messages[0].time * rate)
    seg = audio[onset : onset + rate // 2]
    assert np.abs(seg).max() > 3000  # clearly audible
    assert abs(_peak_hz(seg, rate) - 440) < 3


def test_tone_has_marimba_partials_and_decays():
    sr = 48000
    tone = marimba_tone(60, 127, sr)
    f0 = 440 * 2 ** ((60 - 69) / 12)
    spec = np.abs(np.fft.rfft(tone[: sr // 2]))
    freqs = np.fft.rfftfreq(sr // 2, 1 / sr)

    def level(f):
        return spec[np.abs(freqs - f) < 5].max()

    assert level(f0) > level(4 * f0) > level(10 * f0) > 0  # 1x, 4x, 10x, quieter upwards
    assert level(f0) > 50 * level(2.5 * f0)  # nothing in between
    early, late = np.abs(tone[:2400]).max(), np.abs(tone[sr : sr + 2400]).max()
    assert late < 0.5 * early  # it rings out
    assert np.abs(tone).max() <= 0.25 + 1e-9
    assert np.all(marimba_tone(127, 127, 16000) == marimba_tone(127, 127, 16000))  # no aliasing crash


def test_parser_survives_seeded_random_garbage():
    rng = np.random.default_rng(1234)
    vs = VirtualSynth(sample_rate=16000)  # not started: feed() parses without a pty
    for _ in range(200):
        vs.feed(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes())
    n = len(vs.messages)
    vs.feed(bytes([0x90, 60, 64]))  # after all that, a clean message still parses
    assert vs.messages[-1].message == mido.Message("note_on", note=60, velocity=64)
    assert len(vs.messages) == n + 1
    audio = vs.render(duration=0.1)
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0


def test_writer_may_close_and_reopen_the_port(tmp_path):
    log = tmp_path / "events.log"
    with VirtualSynth(log_path=log, sample_rate=16000) as vs:
        for count, note in enumerate((60, 62, 64), start=1):
            fd = os.open(vs.port, os.O_WRONLY | os.O_NOCTTY)
            os.write(fd, bytes([0x90, note, 90]))
            os.close(fd)  # like a reconnecting serial port
            assert vs.wait_for(count)
        assert [m.message.note for m in vs.messages] == [60, 62, 64]
    assert len(log.read_text().splitlines()) == 3
    assert "note_on channel=0 note=62 velocity=90" in log.read_text()


def test_command_line_prints_port_and_writes_wav_on_sigterm(tmp_path):
    wav, log = tmp_path / "cli.wav", tmp_path / "cli.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.hardware.virtual_synth", "--wav", str(wav), "--log", str(log), "--rate", "16000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        fd = os.open(port, os.O_WRONLY | os.O_NOCTTY)
        os.write(fd, bytes([0x90, 72, 100, 0x80, 72, 0]))
        os.close(fd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(log.read_text().splitlines() if log.exists() else []) < 2:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    audio, rate = read_wav(wav)
    assert rate == 16000 and np.abs(audio).max() > 3000
    assert "note_off channel=0 note=72" in log.read_text()


def test_what_the_synth_keeps_is_bounded_and_the_totals_count_everything(monkeypatch):
    """The virtual synth stands in for a missing serial synth on a box that runs for weeks."""
    import device.hardware.virtual_synth as vsmod

    monkeypatch.setattr(vsmod, "MAX_MESSAGES", 10)
    monkeypatch.setattr(vsmod, "MAX_BYTES", 30)
    vs = VirtualSynth()
    for i in range(100):  # a continuous mapping: a CC every hop
        vs.feed(bytes([0xB0, 74, i]))
    assert vs.messages_received == 100 and vs.bytes_received == 300
    assert len(vs.messages) == 10
    assert vs.messages[-1].message == mido.Message("control_change", control=74, value=99)
    assert bytes(vs.received) == b"".join(bytes([0xB0, 74, i]) for i in range(90, 100))
    assert vs.wait_for(100, timeout=0.1) and vs.wait_for_bytes(300, timeout=0.1)
    assert not vs.wait_for(101, timeout=0.05)
