"""The microphone contract, on every backend that loads here (and the real one under ``-m hardware``).

Backends: the WAV playlist (sim) and PyAudio through ``tests/fakes/pyaudio.py``
with its PortAudio-like callback thread. Chunks come with contiguous global
sample indices and carry exactly the audio that went in; ``close()`` twice is
fine and ``read`` after it returns None at once; a source that stops delivering
(a pulled USB mic, a wedged driver) makes ``read(timeout)`` return None at each
timeout without counting as finished, so the app can count the stall.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from device.config import MicConfig
from device.hardware.mic import PlaylistMic, open_mic
from fakes.pyaudio import FakeDevice

pytestmark = pytest.mark.device_venv

CHUNK = 800


class Source:
    """Opens one mic backend playing ``audio`` once, then (``stall``) delivering nothing more."""

    def __init__(self, name: str, fake_pyaudio) -> None:
        self.name = name
        self._fake_pyaudio = fake_pyaudio
        self._release = threading.Event()
        self.stalled = threading.Event()

    def open(self, audio: np.ndarray, stall: bool = False):
        if self.name == "pyaudio":
            # The live fake calls the stream callback every period, like PortAudio's thread;
            # after the audio it goes quiet while the stream still says it is active.
            pa = self._fake_pyaudio(FakeDevice("USB mic", live=True, source=audio, stall_after=len(audio) // CHUNK))
            mic = open_mic("real", MicConfig(chunk=CHUNK))
            self.stalled = pa.streams[-1].stalled
        elif self.name == "playlist" and stall:
            # Paced in real time, and the pacing never returns after the audio: a
            # source that stops delivering without ending.
            calls = [0]

            def sleep(_seconds):
                calls[0] += 1
                if calls[0] > len(audio) // CHUNK:
                    self.stalled.set()
                    self._release.wait()

            cfg = MicConfig(chunk=CHUNK, realtime=True, playlist=(audio,))
            mic = PlaylistMic.from_config(cfg, sleep=sleep, loop=True)
        elif self.name == "playlist":
            mic = open_mic("sim", MicConfig(chunk=CHUNK, realtime=False, playlist=(audio,)))
        else:
            mic = open_mic("real", MicConfig(chunk=CHUNK))
        mic.start()
        return mic

    def close(self, mic) -> None:
        self._release.set()
        mic.close()


@pytest.fixture(params=["playlist", "pyaudio", pytest.param("real", marks=pytest.mark.hardware)])
def source(request, fake_pyaudio):
    return Source(request.param, fake_pyaudio if request.param == "pyaudio" else None)


def ramp(n: int) -> np.ndarray:
    return (np.arange(n) % 20000 - 10000).astype(np.int16)


def test_chunks_have_contiguous_indices_and_the_audio_that_went_in(source):
    audio = ramp(6 * CHUNK)
    mic = source.open(audio)
    try:
        chunks = [mic.read(timeout=5) for _ in range(6)]
    finally:
        source.close(mic)
    assert all(c is not None for c in chunks)
    starts = [c.start for c in chunks]
    assert starts == [starts[0] + i * CHUNK for i in range(6)]  # contiguous: nothing lost, nothing repeated
    assert all(len(c.samples) == CHUNK and c.samples.dtype == np.int16 for c in chunks)
    if source.name != "real":
        assert starts[0] == 0
        np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), audio)


def test_close_twice_then_read_returns_none(source):
    mic = source.open(ramp(2 * CHUNK))
    source.close(mic)
    mic.close()
    assert mic.is_closed
    got = []
    reader = threading.Thread(target=lambda: got.append(mic.read(timeout=None)))  # must not wait at all
    reader.start()
    reader.join(5)
    assert not reader.is_alive() and got == [None]


def test_a_source_that_stops_delivering_times_out_and_is_not_finished(source):
    if source.name == "real":
        pytest.skip("a real mic can't be told to stall")
    audio = ramp(4 * CHUNK)
    mic = source.open(audio, stall=True)
    try:
        chunks = [mic.read(timeout=5) for _ in range(4)]
        assert [c.start for c in chunks] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
        assert source.stalled.wait(5)
        # Each read ends at its timeout with None, and the mic does not claim to be done:
        # the caller counts these and reports the stall.
        assert [mic.read(timeout=0.05) for _ in range(3)] == [None, None, None]
        assert not mic.is_finished and not mic.is_closed
    finally:
        source.close(mic)
