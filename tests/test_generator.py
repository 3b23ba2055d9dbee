"""The sound -> picture generator (issue 13 §1): the committed int8 model, dream mode on the box, training determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.config import PROJECT_ROOT, ConfigError, check_files, config_from_dict
from device.errors import ModelError
from device.screen.dream import DreamPicture, loudness, normalise, upscale

GENERATOR = PROJECT_ROOT / "models" / "generator.tflite"
SOUND_META = PROJECT_ROOT / "models" / "sound.json"

needs_model = pytest.mark.skipif(not GENERATOR.is_file(), reason="models/generator.tflite not built (make train-generator)")


def _unit(rng, dim=64):
    return normalise(rng.standard_normal(dim))


class FakeGenerator:
    """A generator whose picture is a grey level read off the embedding's first value (and loudness), counting calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        x = np.asarray(x, np.float32)
        return np.full((64, 64, 3), 0.5 + 0.4 * x[0], np.float32) * (0.5 + 0.5 * x[-1])


def _basis(i, dim=64):
    e = np.zeros(dim, np.float32)
    e[i] = 1.0
    return e


# ------------------------------------------------------------------ the committed model (device venv)


@pytest.mark.device_venv
@needs_model
def test_committed_generator_gives_64x64_rgb_in_range():
    from device.model import Model

    g = Model(GENERATOR, kind="generator")
    assert g.metadata["output_shape"] == [64, 64, 3] and g.metadata["output_range"] == [0.0, 1.0]
    rng = np.random.default_rng(0)
    for loud in (0.0, 0.5, 1.0):
        img = g.predict(np.append(_unit(rng), loud).astype(np.float32))
        assert img.shape == (64, 64, 3) and img.dtype == np.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
        assert img.std() > 0.02  # a picture, not a flat card


@pytest.mark.device_venv
@needs_model
def test_generator_pins_the_committed_sound_model():
    meta = json.loads(GENERATOR.with_suffix(".json").read_text())
    sound = json.loads(SOUND_META.read_text())
    assert meta["sound_model"]["embedding_version"] == sound["embedding"]["version"]
    assert meta["sound_model"]["sha256"] == sound["model_sha256"]
    assert meta["complexity"]["params"] <= 1_100_000 and meta["complexity"]["macs"] <= 30_000_000
    DreamPicture.from_model(GENERATOR, sound)  # loads
    other = dict(sound, embedding=dict(sound["embedding"], version="another"))
    with pytest.raises(ModelError, match="trained on sound embedding .* retrain"):
        DreamPicture.from_model(GENERATOR, other)


@pytest.mark.device_venv
@needs_model
def test_loudness_drives_the_generated_pictures_intensity():
    sound = json.loads(SOUND_META.read_text())
    centre = np.asarray(sound["open_set"]["class_centres"]["siren"], np.float32)
    means = {}
    for db in (-48.0, -8.0):
        d = DreamPicture.from_model(GENERATOR, sound)
        for _ in range(20):  # let the loudness average settle
            img = d.step(centre, db)
        means[db] = float(img.mean())
    assert means[-8.0] > means[-48.0] + 0.05, means


# ------------------------------------------------------------------ DreamPicture (numpy only)


@pytest.mark.device_venv
def test_a_step_change_in_the_embedding_morphs_the_picture_gradually():
    d = DreamPicture(FakeGenerator(), smoothing=0.35)
    a, b = _basis(0), _basis(1)
    for _ in range(30):
        img_a = d.step(a, -10.0)
    dists_to_b, target = [], None
    for _ in range(25):
        img = d.step(b, -10.0)
        target = FakeGenerator()(np.append(b, d.loudness))
        dists_to_b.append(float(np.abs(img - target).mean()))
    start = float(np.abs(img_a - target).mean())
    assert 0.0 < dists_to_b[0] < start  # moved, but only part of the way
    assert dists_to_b[0] > 0.3 * start  # ... not a jump
    assert all(x >= y - 1e-7 for x, y in zip(dists_to_b, dists_to_b[1:]))  # closer every hop
    assert dists_to_b[-1] < 0.02 * start  # and it arrives
    assert abs(np.linalg.norm(d.embedding) - 1.0) < 1e-5  # the average stays on the unit sphere


@pytest.mark.device_venv
def test_loudness_is_smoothed_and_brightens_the_input():
    gen = FakeGenerator()
    d = DreamPicture(gen)
    e = _basis(0)
    quiet = [float(d.step(e, -48.0).mean()) for _ in range(10)][-1]
    loud_steps = [float(d.step(e, -6.0).mean()) for _ in range(10)]
    assert loud_steps[0] > quiet and loud_steps[-1] > loud_steps[0]  # rises over hops, not at once
    assert loudness(-6.0) == 1.0 and loudness(-50.0) == 0.0 and loudness(None) == 0.0 and loudness(float("-inf")) == 0.0
    assert 0.0 < loudness(-30.0) < 1.0


class _Hop:
    def __init__(self, skipped=None, level=-10.0, t=0.0):
        self.skipped, self.level_dbfs, self.t = skipped, level, t


@pytest.mark.device_venv
def test_follow_steps_once_per_hop_and_holds_while_gated():
    gen = FakeGenerator()
    embs = [_basis(0)]
    d = DreamPicture(gen, side=128, source=lambda: embs[0])
    assert d.follow(None) is None
    h = _Hop(t=0.05)
    img = d.follow(h)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert d.follow(h) is img and gen.calls == 1  # the same hop shown again: no second invoke
    embs[0] = _basis(1)
    before = d.embedding.copy()
    d.follow(_Hop("gated", t=0.10))
    assert gen.calls == 1 and np.array_equal(d.embedding, before)  # the box's own synth: nothing moves
    loud = d.loudness
    d.follow(_Hop("silent", -60.0, t=0.15))
    assert gen.calls == 2 and np.array_equal(d.embedding, before) and d.loudness < loud  # fades, same sound
    d.follow(_Hop(t=0.20))
    assert d.embedding[1] > 0  # a classified hop brings the new sound in


@pytest.mark.device_venv
def test_smoothing_follows_stream_time_and_a_sound_after_silence_takes_over_at_once():
    def settle(hop_s):
        d = DreamPicture(FakeGenerator(), smoothing_s=0.3)
        for i in range(40):
            d.step(_basis(0), -10.0, hop_s)
        d.step(_basis(1), -10.0, hop_s)
        return d.embedding[1]

    # One 0.25 s hop moves the picture as far as five 0.05 s hops would start to: time, not hop count.
    assert settle(0.25) > 2 * settle(0.05) > 0
    d = DreamPicture(FakeGenerator(), smoothing_s=0.3)
    for _ in range(40):
        d.step(_basis(0), -10.0, 0.05)
    for _ in range(40):  # 2 s of silence: the picture fades out
        d.step(None, -70.0, 0.05)
    assert d.loudness < 0.01
    d.step(_basis(1), -10.0, 0.05)
    assert d.embedding[1] > 0.95  # the new sound's picture, not a morph out of the faded one


@pytest.mark.device_venv
def test_upscale_keeps_colours_and_size():
    img = np.zeros((64, 64, 3), np.float32)
    img[:, 32:] = [1.0, 0.5, 0.0]
    big = upscale(img, 256)
    assert big.shape == (256, 256, 3) and big.dtype == np.uint8
    assert tuple(big[10, 250]) == (255, 128, 0) and tuple(big[10, 5]) == (0, 0, 0)


@pytest.mark.device_venv
def test_bad_embedding_size_is_refused():
    d = DreamPicture(FakeGenerator(), embedding_dim=64)
    with pytest.raises(ValueError, match="32 values"):
        d.step(np.ones(32), -10.0)


# ------------------------------------------------------------------ config and screen


@pytest.mark.device_venv
def test_picture_mode_config(tmp_path):
    assert config_from_dict({}).display.picture_mode == "cards"
    with pytest.raises(ConfigError, match="picture_mode = 'dreams'"):
        config_from_dict({"display": {"picture_mode": "dreams"}}, tmp_path / "c.toml")
    sound = tmp_path / "s.tflite"
    sound.write_bytes(b"x")
    cfg = config_from_dict({"sound": {"model": "s.tflite"}, "mic": {"backend": "real"},
                            "display": {"picture_mode": "dream", "generator": "missing.tflite"}}, tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=r"\[display\] generator .*missing.tflite.*not found"):
        check_files(cfg)


@pytest.mark.device_venv
@pytest.mark.parametrize("label", ["siren", "unknown", None])
def test_dream_scene_shows_the_generated_picture_instead_of_the_card(label):
    from device.hardware.base import Scene
    from device.screen.render import Renderer, surface_to_array

    r = Renderer()
    pic = np.zeros((256, 256, 3), np.uint8)
    pic[:] = (12, 200, 34)
    scene = Scene(mode="sound", label=label, colour=(0.0, 0.25, 1.0), generated=pic)
    out = surface_to_array(r.render(scene))
    box = r.layout(scene)["picture"]
    assert tuple(out[box.centery, box.centerx]) == (12, 200, 34)
    cards = surface_to_array(r.render(Scene(mode="sound", label=label, colour=(0.0, 0.25, 1.0))))
    assert tuple(cards[box.centery, box.centerx]) != (12, 200, 34)


@pytest.mark.device_venv
def test_responder_adds_the_dream_picture_only_in_dream_mode():
    from device.config import Config
    from device.runtime.responder import Responder

    class Pipe:
        current, probabilities = "unknown", {}
        spectrogram = np.zeros((0, 64), np.float32)
        last = _Hop()

    r = Responder(Config())
    assert r.sound_scene(Pipe()).scene.generated is None  # cards: the teach-me card stays
    r.dream = DreamPicture(FakeGenerator(), source=lambda: _basis(0))
    assert r.sound_scene(Pipe()).scene.generated.shape == (256, 256, 3)


# ------------------------------------------------------------------ training (workstation)


def test_training_is_deterministic_for_a_fixed_seed(tmp_path):
    pytest.importorskip("tensorflow")
    from training.train_generator import main

    outs = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["--quick", "--no-eval", "--out", str(out)]) == 0
        outs.append(out)
    import keras

    wa = keras.saving.load_model(outs[0] / "generator.keras", compile=False).get_weights()
    wb = keras.saving.load_model(outs[1] / "generator.keras", compile=False).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    # (The .tflite bytes are not compared: they embed Keras's per-process layer names, e.g. generator_1.)
    from device.model import Model

    x = np.append(normalise(np.arange(64, dtype=np.float32) - 30), 0.7).astype(np.float32)
    ya, yb = (Model(o / "generator.tflite", kind="generator").predict(x) for o in outs)
    assert ya.shape == (64, 64, 3) and np.array_equal(ya, yb)
    meta = json.loads((outs[0] / "generator.json").read_text())
    assert meta["kind"] == "generator" and meta["input_shape"] == [65]


@needs_model
def test_the_box_in_dream_mode_follows_the_sound_it_hears(tmp_path):
    """Builder wiring end to end: the sim box's dream picture is driven by the live embedding."""
    import dataclasses

    from device.config import load_config
    from device.runtime.builder import build_app
    from device.wavfile import write_wav
    from training.datasets.synthetic_sound import synthetic_playlist

    audio, _ = synthetic_playlist(["siren", "dog_bark"], seed=4243, gap_seconds=0.3, event_seconds=1.5)
    wav = write_wav(tmp_path / "playlist.wav", audio, 16000)
    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    assert cfg.display.picture_mode == "dream"  # make demo's sound phase
    cfg = dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, status_file=str(tmp_path / "status.json")),
                              mic=dataclasses.replace(cfg.mic, playlist=(str(wav),), realtime=False))
    app, cleanup = build_app(cfg, sim=True, out_dir=tmp_path / "out")
    try:
        app.run()
    finally:
        cleanup()
    dream = app.responder.dream
    assert dream is not None and dream.image is not None
    centres = json.loads(SOUND_META.read_text())["open_set"]["class_centres"]
    nearest = max(centres, key=lambda k: float(np.dot(dream.embedding, centres[k])))
    assert nearest == "dog_bark"  # the last sound heard, not the first


@needs_model
def test_demo_falls_back_to_cards_when_the_generator_does_not_fit(tmp_path):
    import dataclasses
    import shutil

    from demo.driver import dream_unusable
    from device.config import load_config

    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    assert dream_unusable(cfg) is None
    gen = tmp_path / "generator.tflite"
    shutil.copy(GENERATOR, gen)
    meta = json.loads(GENERATOR.with_suffix(".json").read_text())
    meta["sound_model"]["embedding_version"] = "older"
    gen.with_suffix(".json").write_text(json.dumps(meta))
    why = dream_unusable(dataclasses.replace(cfg, display=dataclasses.replace(cfg.display, generator=str(gen))))
    assert "trained on sound embedding older" in why
    missing = dataclasses.replace(cfg, display=dataclasses.replace(cfg.display, generator=str(tmp_path / "no.tflite")))
    assert "not found" in dream_unusable(missing)
