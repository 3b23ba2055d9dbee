"""Microphone backends: PyAudio through a fake ``pyaudio`` module, WAV playlist sim, resampler.

What every backend must do alike (contiguous chunks, close, stalls) is in
tests/contracts/test_mic.py.
"""

from __future__ import annotations

import inspect
import logging
import sys

import numpy as np
import pytest

from device.config import MicConfig, config_from_dict
from device.errors import ConfigError, InputFileError
from device.hardware.mic import PlaylistMic, PyAudioMic, SampleRing, open_mic, probe
from device.hardware.select import HardwareError
from device.resample import Resampler, resample
from device.wavfile import AtomicWavWriter, read_wav, write_wav
from fakes.pyaudio import FakeDevice, paInputOverflow

pytestmark = pytest.mark.device_venv


def _tone(freq, seconds, rate, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def _peak_hz(x, rate):
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


def _read_all(mic, timeout=2.0):
    chunks = []
    while True:
        c = mic.read(timeout=timeout)
        if c is None:
            return chunks
        chunks.append(c)


# ------------------------------------------------------------------ PyAudio (fake)


def test_pyaudio_16k_mono_device_opens_natively(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("USB PnP Sound Device", rates=(16000, 48000), channels=(1,)))
    with PyAudioMic(chunk_size=1600) as mic:
        stream = pa.streams[-1]
        assert (stream.rate, stream.channels) == (16000, 1)
        assert not stream.active  # opened stopped; start() starts it
        mic.start()
        x = (_tone(1000, 0.5, 16000) * 32767).astype(np.int16)
        for i in range(0, len(x), 800):
            stream.feed(x[i : i + 800])
        chunks = [mic.read(timeout=1) for _ in range(5)]
        assert [len(c.samples) for c in chunks] == [1600] * 5
        assert [c.start for c in chunks] == [0, 1600, 3200, 4800, 6400]
        np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), x)
        assert mic.read(timeout=0.01) is None  # nothing more yet; never blocks forever
    assert stream.closed and pa.instances[-1].terminated


def test_pyaudio_48k_stereo_only_device_is_downmixed_and_resampled(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("Stereo Cam Mic", rates=(44100, 48000), channels=(2,), default_rate=48000))
    with open_mic("real", MicConfig(chunk=1600)) as mic:
        stream = pa.streams[-1]
        assert (stream.rate, stream.channels) == (48000, 2)
        mic.start()
        left = _tone(440, 1.0, 48000, 0.6)
        stereo = (np.stack([left, 0.5 * left], axis=1) * 32767).astype(np.int16)
        for i in range(0, len(stereo), 1024):  # PortAudio-sized periods, not chunk-aligned
            stream.feed(stereo[i : i + 1024])
        chunks = _read_all(mic, timeout=0.2)
    out = np.concatenate([c.samples for c in chunks])
    assert mic.sample_rate == 16000
    assert len(out) == 16000  # exactly 1 s at 16 kHz: nothing lost, nothing invented
    assert [c.start for c in chunks] == list(range(0, 16000, 1600))
    assert abs(_peak_hz(out, 16000) - 440) <= 2
    # Downmix is the mean of the channels: amplitude 0.6 * 0.75 of full scale.
    assert np.max(np.abs(out[200:])) == pytest.approx(0.45 * 32767, rel=0.02)


def test_pyaudio_overflow_flags_are_counted_not_fatal(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("mic"))
    with PyAudioMic(chunk_size=100) as mic:
        mic.start()
        s = pa.streams[-1]
        assert s.feed(np.zeros(100)) == (None, 0)
        s.feed(np.zeros(100), status_flags=paInputOverflow)
        s.feed(np.zeros(100), status_flags=paInputOverflow | 0x1)
        assert mic.overflows == 2
        assert len(_read_all(mic, timeout=0.05)) == 3


def test_pyaudio_ring_drops_oldest_when_reader_is_late(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("mic"))
    with PyAudioMic(chunk_size=1000, buffer_seconds=0.25) as mic:  # ring: 4000 samples
        mic.start()
        for i in range(10):
            pa.streams[-1].feed(np.full(1000, i, np.int16))
        assert mic.dropped_samples == 6000
        first = mic.read(timeout=1)
        assert first.start == 6000 and np.all(first.samples == 6)  # the gap shows in .start


def test_pyaudio_busy_device_is_one_line_error(fake_pyaudio):
    fake_pyaudio(FakeDevice("USB Audio", busy=True))
    with pytest.raises(HardwareError) as err:
        open_mic("real")
    msg = str(err.value)
    assert "\n" not in msg
    assert "another process" in msg and "PulseAudio" in msg


def test_pyaudio_device_chosen_by_name_or_index(fake_pyaudio):
    pa = fake_pyaudio(
        FakeDevice("HDMI output", channels=(2,), max_input_channels=0),
        FakeDevice("Built-in Mic", rates=(48000,)),
        FakeDevice("USB PnP Sound Device", rates=(16000,)),
        default_index=1,
    )
    with PyAudioMic() as mic:
        assert mic.device_name == "Built-in Mic" and pa.streams[-1].rate == 48000
    with PyAudioMic("usb pnp") as mic:
        assert mic.device_index == 2 and pa.streams[-1].rate == 16000
    with PyAudioMic(1) as mic:
        assert mic.device_name == "Built-in Mic"
    with pytest.raises(HardwareError, match="no input device matching 'respeaker'.*USB PnP"):
        PyAudioMic("respeaker")
    with pytest.raises(HardwareError, match="no input device with index 0"):
        PyAudioMic(0)  # an output-only device is not an input


def test_auto_choice_and_probe(fake_pyaudio, monkeypatch, caplog):
    fake_pyaudio(FakeDevice("USB mic"))
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_mic("auto") as mic:
            assert mic.backend == "real"
    assert any("mic: real backend (auto" in r.getMessage() for r in caplog.records)
    assert probe()[0][:2] == ("real", True)
    assert probe(MicConfig(device="usb"))[0][:2] == ("real", True)
    assert probe(MicConfig(device="respeaker"))[0][1] is False
    assert probe(device="respeaker") == probe(MicConfig(device="respeaker"))  # check.py's keyword call

    fake_pyaudio()  # PortAudio present, but no input device
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_mic("auto", MicConfig(playlist=(np.zeros(10, np.int16),))) as mic:
            assert mic.backend == "sim"
    lines = [r.getMessage() for r in caplog.records if r.name == "saysee.hardware"]
    assert len(lines) == 1 and "no audio input device" in lines[0]
    with pytest.raises(HardwareError, match="no audio input device"):
        open_mic("real")

    monkeypatch.setitem(sys.modules, "pyaudio", None)  # "not installed"
    backend, usable, why = probe()[0]
    assert (backend, usable) == ("real", False) and "pyaudio not installed" in why
    assert probe()[1][:2] == ("sim", True)


def test_unknown_option_and_backend_are_config_errors():
    with pytest.raises(ConfigError, match="unknown key 'chunk_sise'"):
        config_from_dict({"mic": {"chunk_sise": 100}})
    with pytest.raises(ConfigError, match="backend"):
        open_mic("fake")


def test_every_mic_default_comes_from_the_config(fake_pyaudio):
    # Twins once: buffer_seconds 5.0 in the backends vs 2.0 in the config.
    cfg = MicConfig()
    for cls in (PyAudioMic, PlaylistMic):
        params = inspect.signature(cls).parameters
        assert params["chunk_size"].default == cfg.chunk
        assert params["buffer_seconds"].default == cfg.buffer_seconds
    assert inspect.signature(PlaylistMic).parameters["realtime"].default == cfg.realtime
    # The typed section reaches the backend key by key, the TOML keys included.
    pa = fake_pyaudio(FakeDevice("Built-in"), FakeDevice("USB PnP Sound Device"))
    cfg = config_from_dict({"mic": {"device": "usb pnp", "chunk": 400, "buffer_seconds": 0.5}}).mic
    with open_mic("real", cfg) as mic:
        assert (mic.device_index, mic.chunk_size, mic._ring.capacity) == (1, 400, 8000)
    with open_mic(None, MicConfig(backend="sim", chunk=320, realtime=False)) as mic:  # backend from the config
        assert (mic.backend, mic.chunk_size, mic.realtime) == ("sim", 320, False)
    assert len(pa.streams) == 1


# ------------------------------------------------------------------ playlist sim


@pytest.fixture
def playlist(tmp_path):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(16000 + 123) * 3000).astype(np.int16)
    b = (rng.standard_normal(8000) * 3000).astype(np.int16)
    write_wav(tmp_path / "a.wav", a, 16000)
    write_wav(tmp_path / "b.wav", np.stack([b, b], axis=1), 16000)  # stereo: downmixed
    return [tmp_path / "a.wav", tmp_path / "b.wav"], np.concatenate([a, b])


def test_playlist_fast_mode_delivers_everything_in_order(playlist):
    paths, expected = playlist
    cfg = MicConfig(playlist=tuple(map(str, paths)), realtime=False, chunk=1000, buffer_seconds=0.25)
    with open_mic("sim", cfg) as mic:
        mic.start()
        assert not mic.is_finished
        chunks = _read_all(mic)
        assert mic.is_finished
        assert mic.read(timeout=0.01) is None
    sizes = [len(c.samples) for c in chunks]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and sizes[-1] == len(expected) % 1000
    starts = [c.start for c in chunks]
    assert starts == list(np.cumsum([0] + sizes[:-1]))  # contiguous global indices
    assert mic.dropped_samples == 0  # fast mode waits for the reader instead of dropping
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), expected)


def test_playlist_resamples_and_accepts_arrays(tmp_path):
    write_wav(tmp_path / "tone48k.wav", _tone(440, 0.5, 48000), 48000)
    items = [tmp_path / "tone48k.wav", np.zeros(1600, np.int16), (_tone(1000, 0.25, 8000), 8000)]
    mic = PlaylistMic(items, realtime=False)
    mic.start()
    out = np.concatenate([c.samples for c in _read_all(mic)])
    mic.close()
    assert len(out) == 8000 + 1600 + 4000
    assert abs(_peak_hz(out[:8000], 16000) - 440) <= 2
    assert abs(_peak_hz(out[-4000:], 16000) - 1000) <= 4


def _play_traced(path):
    """(samples played, the first 40 chunks, peak traced memory) of one WAV through the sim mic."""
    import tracemalloc

    mic = PlaylistMic([path], realtime=False, chunk_size=800, buffer_seconds=0.5)
    tracemalloc.start()
    mic.start()
    total, head = 0, []
    while (c := mic.read(timeout=2.0)) is not None:
        total += len(c.samples)
        if len(head) < 40:
            head.append(c.samples)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    mic.close()
    return total, np.concatenate(head), peak


def test_playlist_streams_a_long_file_in_flat_memory(tmp_path):
    # 10 s and 120 s of 44.1 kHz stereo: played in blocks, the same samples as resampling the file whole,
    # and the long one (21 MB of samples) needs no more memory than the short one.
    rng = np.random.default_rng(3)
    peaks = []
    for seconds in (10, 120):
        left = (rng.standard_normal(seconds * 44100) * 2000).astype(np.int16)
        stereo = np.stack([left, left // 2], axis=1)
        write_wav(tmp_path / f"{seconds}.wav", stereo, 44100)
        total, head, peak = _play_traced(tmp_path / f"{seconds}.wav")
        whole = resample(stereo.mean(axis=1), 44100, 16000)
        assert total == len(whole)
        np.testing.assert_array_equal(head, np.clip(np.round(whole[: len(head)]), -32768, 32767))
        peaks.append(peak)
    assert peaks[1] < 1.25 * peaks[0] + 2**20, f"peak memory grew with the file: {peaks}"
    assert peaks[1] < stereo.nbytes / 2


def test_playlist_realtime_mode_drops_oldest_when_reader_is_late():
    audio = np.arange(20000, dtype=np.int16)
    mic = PlaylistMic([audio], realtime=True, chunk_size=1000, buffer_seconds=0.25, sleep=lambda s: None)
    mic.start()
    mic._thread.join(5)  # producer done; nobody read anything
    assert mic.dropped_samples == 20000 - 4000
    chunks = _read_all(mic, timeout=0.5)
    assert chunks[0].start == 16000 and chunks[0].samples[0] == 16000
    assert sum(len(c.samples) for c in chunks) == 4000 and mic.is_finished
    mic.close()


def test_playlist_loops_until_closed():
    mic = PlaylistMic([np.ones(500, np.int16)], realtime=False, loop=True, chunk_size=400)
    mic.start()
    starts = [mic.read(timeout=1).start for _ in range(5)]
    assert starts == [0, 400, 800, 1200, 1600]
    assert not mic.is_finished
    mic.close()


@pytest.mark.parametrize("emptied", ["no frames", "removed"])
def test_a_looping_playlist_with_no_audio_left_stops_with_one_line(tmp_path, caplog, emptied):
    """A looping file emptied or deleted while the box runs: one error line, the mic finishes, no spin."""
    path = write_wav(tmp_path / "loop.wav", np.ones(400, np.int16), 16000)
    mic = PlaylistMic([str(path)], realtime=False, loop=True, chunk_size=400)
    if emptied == "removed":
        path.unlink()
    else:
        write_wav(path, np.zeros(0, np.int16), 16000)
    with caplog.at_level(logging.ERROR, logger="saysee"):
        mic.start()
        mic._thread.join(5)
    assert not mic._thread.is_alive() and mic.read(timeout=0.5) is None and mic.is_finished
    stops = [r for r in caplog.records if "no audio any more" in r.getMessage()]
    assert len(stops) == 1 and len(caplog.records) <= 2, [r.getMessage() for r in caplog.records]
    mic.close()


def test_empty_playlist_is_finished_at_once():
    with PlaylistMic([], realtime=False) as mic:
        mic.start()
        assert mic.read(timeout=1) is None and mic.is_finished


def test_bad_playlist_entries_fail_at_open(tmp_path):
    with pytest.raises(InputFileError, match="missing.wav"):
        open_mic("sim", MicConfig(playlist=(str(tmp_path / "missing.wav"),)))
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(InputFileError, match="junk.wav"):
        open_mic("sim", MicConfig(playlist=(str(tmp_path / "junk.wav"),)))


# ------------------------------------------------------------------ pieces


def test_ring_blocking_push_waits_for_reader():
    import threading

    ring = SampleRing(100, 16000)
    t = threading.Thread(target=ring.push, args=(np.arange(1000, dtype=np.int16),), kwargs={"block": True})
    t.start()
    got = []
    while len(got) < 1000:
        got.extend(ring.read(50, timeout=2).samples)
    t.join(2)
    assert got == list(range(1000)) and ring.dropped == 0


@pytest.mark.parametrize("rates", [(48000, 16000), (44100, 16000), (22050, 16000), (8000, 16000)])
def test_streaming_resampler_is_chunking_independent(rates):
    src, dst = rates
    rng = np.random.default_rng(0)
    x = rng.standard_normal(src // 2)
    whole = Resampler(src, dst).process(x)
    r = Resampler(src, dst)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(r.process(x[i : i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-12)
    assert len(whole) == -(-len(x) * dst // src)


def test_one_shot_resample_keeps_pitch_and_length():
    y = resample((_tone(440, 1.0, 44100, 1.0) * 20000).astype(np.int16), 44100, 16000)
    assert y.dtype == np.int16 and len(y) == 16000
    assert abs(_peak_hz(y, 16000) - 440) <= 2
    # Zero-phase: sample for sample the same tone as one generated at 16 kHz (no delay).
    direct = _tone(440, 1.0, 16000, 1.0) * 20000
    assert np.max(np.abs(y[100:-100] - direct[100:-100])) < 100


def test_wav_roundtrip_and_atomic_writer(tmp_path):
    x = (np.arange(-5000, 5000) * 3).astype(np.int16)
    write_wav(tmp_path / "x.wav", x, 16000)
    y, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000 and np.array_equal(x, y)
    target = tmp_path / "take.wav"
    with pytest.raises(RuntimeError):
        with AtomicWavWriter(target, 16000) as w:
            w.write(x)
            raise RuntimeError("interrupted take")
    assert not target.exists() and list(tmp_path.glob(".take.wav*")) == []
    with AtomicWavWriter(target, 16000) as w:
        w.write(x[:100])
        assert not target.exists()  # appears only when complete
        w.write(np.zeros(50))
    assert len(read_wav(target)[0]) == 150
