"""Camera -> sound in the app: the marimba worker plays the model's levels through the audio out."""

from __future__ import annotations

import numpy as np
import pytest

from device.config import CameraConfig, config_from_dict
from device.frontend import NoteParams, note_targets
from device.hardware.audio_out import WavAudioOut
from device.hardware.camera import SimCamera
from device.marimba.pipeline import MarimbaPipeline, MarimbaSpec
from device.runtime.app import App, Devices
from device.runtime.builder import RESYNTH_WAV, open_devices
from device.wavfile import read_wav

pytestmark = pytest.mark.device_venv

SPEC = MarimbaSpec()
FRAMES = 45


class ScriptedModel:
    """Stands in for device.model.Model: returns prepared levels window by window."""

    def __init__(self, levels):
        self.levels, self.calls, self.input_shape = levels, 0, SPEC.input_shape
        self.metadata = {"marimba": SPEC.to_dict()}

    def predict(self, x):
        self.calls += 1
        return self.levels[self.calls - 1]


def config(tmp_path, mode="resynth"):
    return config_from_dict({"app": {"modes": ["marimba"], "status_file": str(tmp_path / "status.json")},
                             "audio_out": {"mode": mode, "backend": "sim", "realtime": False}},
                            tmp_path / "c.toml")


def run_app(tmp_path, mode="resynth"):
    levels = np.zeros((FRAMES - 2, 18), np.float32)
    levels[:, 6] = 0.7  # one bar held: a steady level on note 6
    cfg = config(tmp_path, mode)
    camera = SimCamera(np.zeros((FRAMES, 96, 160), np.uint8), CameraConfig(realtime=False))
    out = WavAudioOut(tmp_path / "r.wav", sample_rate=48000, realtime=False)
    app = App(cfg, Devices(camera=camera, audio_out=out), marimba=MarimbaPipeline(ScriptedModel(levels)))
    assert app.run(seconds=30) == 0
    return app, out


def test_the_marimba_worker_plays_one_block_per_frame_of_the_models_levels(tmp_path):
    app, out = run_app(tmp_path)
    audio, rate = read_wav(tmp_path / "r.wav")
    assert rate == 48000 and len(audio) == FRAMES * 1600  # one block per camera frame, none lost
    # The first two frames have no window yet: silence; then note 6 at the level's amplitude.
    assert not audio[: 2 * 1600].any()
    targets = note_targets(audio, FRAMES, NoteParams())
    want = float(SPEC.target.inverse(np.float32(0.7)))
    np.testing.assert_allclose(targets[15:, 6], want, rtol=0.05)
    assert np.delete(targets[15:], 6, axis=1).max() < want / 50
    status = app.status_dict()
    assert status["backends"]["audio_out"] == "sim" and status["counters"]["audio_out_dropped_samples"] == 0
    assert out.is_closed


def test_mode_off_plays_nothing(tmp_path):
    app, out = run_app(tmp_path, mode="off")
    assert app.resynth is None and out.samples_written == 0


def test_outputs_close_before_inputs(tmp_path):
    closed = []

    class Dev:
        def __init__(self, name):
            self.name = name

        def close(self):
            closed.append(self.name)

    Devices(**{k: Dev(k) for k in ("mic", "camera", "leds", "display", "synth", "audio_out")}).close()
    assert closed.index("audio_out") < closed.index("camera") and closed.index("audio_out") < closed.index("mic")


def test_the_builder_opens_the_sim_audio_out_beside_the_synth_wav(tmp_path, monkeypatch):
    import device.hardware.camera as camera_module

    # The sim camera's video needs OpenCV; three blank frames stand in for it.
    monkeypatch.setattr(camera_module, "open_camera",
                        lambda backend, cfg: SimCamera(np.zeros((3, 96, 160), np.uint8), cfg))
    table = {"app": {"modes": ["marimba"], "status_file": str(tmp_path / "s.json")},
             "audio_out": {"mode": "resynth"}, "camera": {"video": "v.mp4", "realtime": False},
             "display": {"backend": "sim"}}
    dev = open_devices(config_from_dict(table, tmp_path / "c.toml"), sim=True, out_dir=tmp_path / "run")
    try:
        assert isinstance(dev.audio_out, WavAudioOut) and dev.audio_out.path == tmp_path / "run" / RESYNTH_WAV
        assert not dev.audio_out.realtime  # an unpaced video: every block is written, none dropped
        dev.audio_out.start()
        dev.audio_out.write(np.full(100, 0.25, np.float32))
    finally:
        dev.close()
    assert (tmp_path / "run" / "synth.wav").is_file() and len(read_wav(tmp_path / "run" / RESYNTH_WAV)[0]) == 100
    table["audio_out"] = {"mode": "off"}
    dev = open_devices(config_from_dict(table, tmp_path / "c.toml"), sim=True, out_dir=tmp_path / "run2")
    dev.close()
    assert dev.audio_out is None and not (tmp_path / "run2" / RESYNTH_WAV).exists()
