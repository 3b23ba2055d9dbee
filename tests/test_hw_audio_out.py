"""Audio out backends beyond the contract: real-world cards (through the fake pyaudio), choice, config."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from device.config import AudioOutConfig, config_from_dict
from device.errors import ConfigError
from device.hardware.audio_out import PyAudioOut, WavAudioOut, open_audio_out, probe
from device.hardware.select import HardwareError
from device.wavfile import read_wav
from fakes.pyaudio import FakeDevice, paOutputUnderflow

pytestmark = pytest.mark.device_venv


def test_a_stereo_only_card_gets_the_mono_block_on_both_channels(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("HDMI", rates=(48000,), output_channels=(2,)))
    out = open_audio_out("real", AudioOutConfig(block=256))
    out.start()
    out.write(np.arange(256, dtype=np.int16))
    out.write(np.arange(256, 512, dtype=np.int16))  # a block plus a period queued: the card starts
    pa.streams[-1].pull(256)
    out.close()
    played = pa.streams[-1].played_samples
    assert out.channels == 2 and played.shape == (256, 2)
    np.testing.assert_array_equal(played[:, 0], np.arange(256))
    np.testing.assert_array_equal(played[:, 1], np.arange(256))


def test_a_card_that_refuses_the_rate_opens_at_its_own(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("USB DAC", rates=(44100,), default_rate=44100))
    out = open_audio_out("real", AudioOutConfig(sample_rate=48000))
    try:
        assert out.sample_rate == 44100 and pa.streams[-1].rate == 44100
        assert pa.streams[-1].kwargs["output"] is True
    finally:
        out.close()
    assert pa.streams[-1].closed and pa.instances[-1].terminated


def test_the_device_is_chosen_by_name_and_a_wrong_name_lists_the_outputs(fake_pyaudio):
    fake_pyaudio(FakeDevice("USB mic", output_channels=()), FakeDevice("bcm2835 Headphones", rates=(48000,)),
                 FakeDevice("USB Audio Device", rates=(48000,)))
    out = open_audio_out("real", AudioOutConfig(device="usb audio"))
    out.close()
    assert out.device_name == "USB Audio Device"
    with pytest.raises(HardwareError) as e:
        open_audio_out("real", AudioOutConfig(device="hifiberry"))
    msg = str(e.value)
    assert "\n" not in msg and "hifiberry" in msg and "bcm2835 Headphones" in msg and "USB mic" not in msg


def test_a_busy_card_is_one_line_naming_the_cause(fake_pyaudio):
    fake_pyaudio(FakeDevice("USB Audio", busy=True))
    with pytest.raises(HardwareError) as e:
        PyAudioOut()
    assert "busy" in str(e.value) and "PipeWire" in str(e.value) and "\n" not in str(e.value)


def test_auto_without_an_output_device_takes_the_sim_and_says_why(fake_pyaudio, caplog, tmp_path):
    fake_pyaudio(FakeDevice("USB mic", output_channels=()))
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        out = open_audio_out("auto", AudioOutConfig(), path=tmp_path / "x.wav")
    out.close()
    assert isinstance(out, WavAudioOut)
    assert any("audio_out: sim backend (auto: real unusable: no audio output device" in r.message
               for r in caplog.records)
    with pytest.raises(HardwareError, match="no audio output device"):
        open_audio_out("real", AudioOutConfig())
    rows = {b: (ok, why) for b, ok, why in probe(AudioOutConfig())}
    assert rows["real"][0] is False and rows["sim"][0] is True


def test_auto_with_a_card_takes_pyaudio_and_probe_names_it(fake_pyaudio):
    fake_pyaudio(FakeDevice("bcm2835 Headphones", rates=(48000,)))
    out = open_audio_out("auto", AudioOutConfig())
    out.close()
    assert isinstance(out, PyAudioOut)
    rows = {b: (ok, why) for b, ok, why in probe(AudioOutConfig())}
    assert rows["real"][0] is True and "bcm2835 Headphones" in rows["real"][1]


def test_card_underflow_flags_are_counted_and_not_fatal(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("card", rates=(48000,)))
    out = open_audio_out("real", AudioOutConfig(block=128))
    out.start()
    flag = pa.streams[-1].pull(128, status_flags=paOutputUnderflow)
    out.close()
    assert flag == pa.paContinue and out.card_underflows == 1


def test_a_live_card_plays_what_is_written_period_by_period(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("card", rates=(16000,), live=True))
    out = open_audio_out("real", AudioOutConfig(sample_rate=16000, block=160, buffer_s=1.0))
    tone = (1000 * np.sin(np.arange(1600) / 5)).astype(np.int16)
    out.write(tone[:800])
    out.write(tone[800:])  # the card starts once a block plus a period is queued
    out.start()
    deadline = time.monotonic() + 5
    while out.queued and time.monotonic() < deadline:
        time.sleep(0.01)
    out.close()
    played = pa.streams[-1].played_samples[:, 0]
    start = int(np.flatnonzero(played)[0]) - 1  # after the priming silence; the tone starts at sin(0) = 0
    np.testing.assert_array_equal(played[start : start + 1600], tone)


def test_bad_blocks_are_refused_before_anything_is_queued(tmp_path):
    out = WavAudioOut(tmp_path / "x.wav", realtime=False)
    with pytest.raises(ValueError, match="NaN"):
        out.write(np.array([0.1, np.nan], np.float32))
    with pytest.raises(ValueError, match="mono"):
        out.write(np.zeros((10, 2), np.float32))
    with pytest.raises(TypeError):
        out.write(np.zeros(10, np.int32))
    assert out.queued == 0
    out.close()
    assert read_wav(tmp_path / "x.wav")[0].size == 0


def test_a_realtime_sim_paces_like_a_card_and_pads_with_silence(tmp_path):
    out = WavAudioOut(tmp_path / "x.wav", sample_rate=16000, frames_per_buffer=160, realtime=True)
    out.start()
    out.write(np.full(400, 500, np.int16))
    out.write(np.full(400, 500, np.int16))
    deadline = time.monotonic() + 5
    while out.underruns == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    out.close()
    wav = read_wav(tmp_path / "x.wav")[0]
    assert len(wav) % 160 == 0  # whole periods, as a card plays them
    sound = np.flatnonzero(wav)
    assert len(sound) == 800 and sound[-1] - sound[0] == 799 and (wav[sound] == 500).all()
    assert not wav[sound[-1] + 1:].any() and out.underruns >= 1


def test_the_audio_out_section_is_typed(tmp_path):
    cfg = config_from_dict({"audio_out": {"mode": "resynth", "backend": "sim", "wav": "out/r.wav"}},
                           tmp_path / "c.toml")
    assert cfg.audio_out.mode == "resynth" and cfg.audio_out.wav == str(tmp_path / "out" / "r.wav")
    assert AudioOutConfig().mode == "off"  # off unless asked for
    with pytest.raises(ConfigError, match=r"\[audio_out\] mode = 'loud'"):
        config_from_dict({"audio_out": {"mode": "loud"}}, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"\[audio_out\] sample_rate"):
        config_from_dict({"audio_out": {"sample_rate": 12345}}, tmp_path / "c.toml")


def test_frame_sized_blocks_play_without_gaps_on_a_card_that_runs_a_little_ahead(fake_pyaudio):
    # The marimba worker writes 1600 samples per frame; the card asks for 512 at a time and
    # asks again as soon as it has played what was written. The jitter buffer (silence until a
    # block plus a period is queued) keeps the blocks from being chopped by silence.
    pa = fake_pyaudio(FakeDevice("card", rates=(48000,)))
    out = open_audio_out("real", AudioOutConfig(block=512, buffer_s=0.5))
    out.start()
    stream = pa.streams[-1]
    audio = (np.arange(16000) % 1000 + 1).astype(np.int16)  # never zero: silence is padding
    written = pulled = 0
    for i in range(0, len(audio), 1600):
        out.write(audio[i : i + 1600])
        written += 1600
        while pulled < written:
            stream.pull(512)
            pulled += 512
    out.close()
    played = stream.played_samples[:, 0]
    sound = np.flatnonzero(played)
    assert sound[-1] - sound[0] + 1 == len(sound)  # one piece: no silence inside
    np.testing.assert_array_equal(played[sound], audio[: len(sound)])
    assert out.underruns == 0 and out.dropped_samples == 0


def test_after_an_underrun_the_card_resumes_on_the_newest_cushion_not_on_stale_audio(fake_pyaudio):
    pa = fake_pyaudio(FakeDevice("card", rates=(48000,)))
    out = open_audio_out("real", AudioOutConfig(block=512, buffer_s=0.5))
    out.start()
    stream = pa.streams[-1]
    out.write(np.full(1600, 1, np.int16))
    out.write(np.full(1600, 2, np.int16))
    for _ in range(7):  # 3584 samples asked for, 3200 there: the last period underruns
        stream.pull(512)
    assert out.underruns == 1 and out.dropped_samples == 0
    for value in (3, 4, 5):  # frames come late, all at once: 4800 queued, the cushion is 1600 + 512
        out.write(np.full(1600, value, np.int16))
    stream.pull(512)
    out.close()
    assert out.dropped_samples == 4800 - 2112  # the stale part went, counted
    resumed = stream.played_samples[-512:, 0]
    np.testing.assert_array_equal(resumed, np.full(512, 4, np.int16))  # 2112 before the end: inside block 4
