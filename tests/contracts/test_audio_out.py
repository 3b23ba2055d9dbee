"""The audio-out contract, on every backend that loads here (and the real one under ``-m hardware``).

Backends: the WAV writer (sim) and PyAudio through ``tests/fakes/pyaudio.py``,
whose output stream hands out each period through the backend's real callback
and, like PyAudio's C code, pads a short answer with zeros and ends the stream.
The same writes reach the WAV and the sound card as the same int16 samples;
``close()`` twice is fine and ``write`` after it raises ``AudioOutClosedError``;
a consumer that stops taking audio makes ``write`` drop the *oldest* audio and
count it, and never makes the writer wait; a consumer with nothing queued
plays silence and counts an underrun.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from contracts.conftest import real_or_skip
from device.config import AudioOutConfig
from device.hardware.audio_out import AudioOutClosedError, PyAudioOut, open_audio_out
from device.wavfile import read_wav
from fakes.pyaudio import FakeDevice

pytestmark = pytest.mark.device_venv

RATE = 48000
PERIOD = 480  # frames per sound-card period in these tests
BUFFER_S = 0.1  # queue: 4800 samples, more than the blocks written at once below


class Output:
    """Opens one backend and collects what its consumer played (None for the real card)."""

    def __init__(self, name: str, fake_pyaudio, tmp_path) -> None:
        self.name = name
        self._fake_pyaudio = fake_pyaudio
        self.wav = tmp_path / "out.wav"
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.stream = None

    def cfg(self, **kw) -> AudioOutConfig:
        return AudioOutConfig(sample_rate=RATE, block=PERIOD, buffer_s=BUFFER_S, **kw)

    def open(self, *, stalled_consumer: bool = False):
        if self.name == "pyaudio":
            # Not live: the test plays PortAudio's thread with stream.pull(), so a consumer
            # that does not pull is exactly a card that stopped asking.
            pa = self._fake_pyaudio(FakeDevice("bcm2835 Headphones", rates=(48000,), output_channels=(1, 2)))
            out = open_audio_out("real", self.cfg())
            self.stream = pa.streams[-1]
        elif self.name == "wav" and stalled_consumer:
            def sleep(seconds):
                if not self.release.is_set():
                    self.stalled.set()
                    self.release.wait()
                else:
                    time.sleep(max(0.0, min(seconds, 0.005)))

            out = open_audio_out("sim", self.cfg(realtime=True), path=self.wav, sleep=sleep)
        elif self.name == "wav":
            out = open_audio_out("sim", self.cfg(realtime=False), path=self.wav)
        else:
            out = real_or_skip(lambda: PyAudioOut.from_config(self.cfg()))
        out.start()
        if self.name == "wav" and stalled_consumer:
            assert self.stalled.wait(5)
        return out

    def drain(self, out) -> None:
        """Let the consumer take everything queued (the fake card pulls period by period)."""
        self.release.set()
        deadline = time.monotonic() + 5
        while out.queued and time.monotonic() < deadline:
            if self.stream is not None:
                self.stream.pull(PERIOD)
            else:
                time.sleep(0.005)
        assert out.queued == 0

    def played(self, out) -> np.ndarray | None:
        """Everything the consumer played, mono int16 (call after close)."""
        if self.name == "pyaudio":
            return self.stream.played_samples[:, 0]
        if self.name == "wav":
            return read_wav(self.wav)[0]
        return None


@pytest.fixture(params=["wav", "pyaudio", pytest.param("real", marks=pytest.mark.hardware)])
def output(request, fake_pyaudio, tmp_path):
    return Output(request.param, fake_pyaudio if request.param == "pyaudio" else None, tmp_path)


def blocks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(1600) / RATE
    return [
        (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),  # float -1..1
        rng.integers(-20000, 20000, 700).astype(np.int16),  # int16 as is
        np.linspace(-1.5, 1.5, 500),  # float64, clipped at full scale
    ]


def expected(bs) -> np.ndarray:
    out = []
    for b in bs:
        b = np.asarray(b)
        out.append(b if b.dtype == np.int16 else np.clip(np.round(b * 32768.0), -32768, 32767).astype(np.int16))
    return np.concatenate(out)


def test_the_same_writes_reach_the_output_as_the_same_samples(output):
    out = output.open()
    try:
        assert out.sample_rate == RATE
        for b in blocks():
            assert out.write(b) == len(b)
        output.drain(out)
    finally:
        out.close()
    got = output.played(out)
    if got is None:
        return  # a real speaker can't be read back
    want = expected(blocks())
    np.testing.assert_array_equal(got[: len(want)], want)
    assert not got[len(want):].any()  # after the audio: only the silence of an empty queue
    assert out.dropped_samples == 0


def test_close_twice_then_write_raises(output):
    out = output.open()
    out.write(np.zeros(100, np.float32))
    out.close()
    out.close()
    assert out.is_closed
    with pytest.raises(AudioOutClosedError):
        out.write(np.zeros(100, np.float32))


def test_a_stalled_consumer_drops_the_oldest_counts_it_and_never_blocks_the_writer(output):
    if output.name == "real":
        pytest.skip("a real card can't be told to stall")
    out = output.open(stalled_consumer=True)
    capacity = int(BUFFER_S * RATE)
    audio = (np.arange(3 * capacity) % 30000 - 15000).astype(np.int16)
    writer = threading.Thread(target=lambda: [out.write(audio[i : i + 400]) for i in range(0, len(audio), 400)])
    try:
        writer.start()
        writer.join(5)
        assert not writer.is_alive(), "write() waited for the consumer"
        assert out.dropped_samples == len(audio) - capacity
        assert out.samples_written == len(audio)
        output.drain(out)
    finally:
        output.release.set()
        out.close()
    got = output.played(out)
    np.testing.assert_array_equal(got[:capacity], audio[-capacity:])  # the newest audio survived, in order


def test_a_consumer_with_nothing_queued_plays_silence_and_counts_underruns(output):
    if output.name == "real":
        pytest.skip("underruns on a real card depend on its timing")
    out = output.open(stalled_consumer=True) if output.name == "wav" else output.open()
    try:
        # Two blocks: a card-paced consumer starts once one block plus a period is queued.
        out.write(np.full(500, 1000, np.int16))
        out.write(np.full(500, 1000, np.int16))
        output.drain(out)
        if output.stream is not None:
            output.stream.pull(PERIOD)  # one more period than was queued
            assert output.stream.is_active()  # a full period was handed back: the stream goes on
        else:
            deadline = time.monotonic() + 5
            while out.underruns == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        out.close()
    assert out.underruns >= 1
    got = output.played(out)
    sound = np.flatnonzero(got)
    assert len(sound) == 1000 and sound[-1] - sound[0] == 999  # all of it, in one piece
    assert not got[sound[-1] + 1:].any()  # then silence
