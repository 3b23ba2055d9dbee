"""`python -m device map-teach / map-forget` and the continuous mapping on the box (issue 13 §2).

The CLI round trip (teach -> stored -> the responder gives the taught colour and CC values for a new
take of that sound -> forget), storage that survives a failed or killed write, rows recomputed after a
model update, every bad demonstration refused in one line with nothing saved lost, and the mapper's
smoothing, hysteresis and silence handling.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from taught_helpers import StandInModel, join, noise, silence, tone

from device.__main__ import main
from device.config import ContinuousConfig, SoundConfig, config_from_dict
from device.errors import ConfigError
from device.frontend import LogMelParams
from device.runtime.continuous import (
    ContinuousMapper,
    EmbeddingTap,
    continuous_mapping,
    latest_embedding,
)
from device.runtime.responder import LED_OFF, Midi, Responder, SetLed
from device.sound import mapping_store
from device.sound import teach as teach_mod
from device.sound.mapping import (
    PROJECTION_KEY,
    DefaultMapping,
    MappingError,
    Outputs,
    TaughtMapping,
    leave_one_take_out,
    projection_from_metadata,
    random_projection,
)
from device.sound.mapping_store import FILE, FOLDER, MappingStore
from device.sound.open_set import OpenSetDecider, OpenSetModel
from device.sound.pipeline import (
    ClassCleared,
    ClassDetected,
    SoundPipeline,
    WindowResult,
)
from device.sound.taught import TaughtStore
from device.wavfile import write_wav

pytestmark = pytest.mark.device_venv

ROOT = Path(__file__).resolve().parent.parent
LOW, HIGH = 220.0, 1320.0  # two tones the stand-in embeds far apart


@pytest.fixture
def standin(monkeypatch):
    """Every CLI command loads the stand-in two-output model; no config file is read."""
    model = StandInModel()
    monkeypatch.setenv("SAYSEE_CONFIG", "/nonexistent/saysee.toml")
    monkeypatch.setattr(teach_mod, "load_model", lambda path, num_threads=1: model)
    return model


def wav(tmp_path, name, audio):
    return str(write_wav(tmp_path / name, audio, 16000))


def take(freq, seconds=0.6):
    return join(silence(0.2), tone(freq, seconds), silence(0.2))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def teach_three(tmp_path, capsys, taught, *extra):
    """low tone -> red, cc74=10; high tone -> blue, cc74=120; noise -> green, cc74=64 (2 takes each)."""
    files = {k: [wav(tmp_path, f"{k}{i}.wav", a) for i, a in enumerate(takes)] for k, takes in {
        "low": [take(LOW), take(LOW * 1.02)], "high": [take(HIGH), take(HIGH * 0.98)],
        "noise": [join(silence(0.2), noise(0.6, seed=1), silence(0.2)), join(silence(0.2), noise(0.6, seed=2), silence(0.2))],
    }.items()}
    return run(capsys, "map-teach", "--taught", taught, *extra,
               "--example", *files["low"], "--rgb", "#ff0000", "--cc", "74=10",
               "--example", *files["high"], "--rgb", "0000ff", "--cc", "cc74=120",
               "--example", *files["noise"], "--rgb", "#00ff00", "--cc", "74=64")


class Player:
    """Sound through the real pipeline, one stream; the responder's actions for every new hop, as the app does."""

    def __init__(self, tap, responder):
        self.tap, self.responder = tap, responder
        self.pipe = SoundPipeline(tap.predict, tap.labels, LogMelParams(), SoundConfig(max_latency_s=None))
        self.at, self.last = 0, None

    def play(self, audio):
        actions = []
        for i in range(0, len(audio), 800):
            self.pipe.step(audio[i: i + 800], self.at)
            self.at += len(audio[i: i + 800])
            if self.pipe.last is not None and self.pipe.last is not self.last:
                self.last = w = self.pipe.last
                actions += self.responder.on_hop(w, self.tap.embedding if w.skipped is None else None)
        return actions


def play(tap, responder, audio):
    return Player(tap, responder).play(audio)


def cfg_for(tmp_path, taught, mode="taught", **continuous):
    return config_from_dict({"app": {"assets_dir": str(tmp_path)},
                             "continuous": {"mode": mode, "smoothing_s": 0.05, **continuous},
                             "teach": {"dir": taught}}, tmp_path / "box.toml")


def last_led(actions):
    return [a for a in actions if isinstance(a, SetLed)][-1]


def last_cc(actions, control):
    return [a.message.value for a in actions if isinstance(a, Midi) and a.message.control == control][-1]


# ------------------------------------------------------------------ round trip


def test_teach_then_the_responder_gives_the_taught_outputs_then_forget(tmp_path, capsys, standin):
    taught = str(tmp_path / "taught")
    rc, out, err = teach_three(tmp_path, capsys, taught)
    assert rc == 0, err
    assert "3 examples, 6 takes" in out and "rgb cc74" in out and "leave-one-take-out error" in out
    folder = Path(taught) / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == [f"example-{i}-take-{j}.wav" for i in (1, 2, 3)
                                                       for j in (1, 2)] + [FILE]
    stored = json.loads((folder / FILE).read_text())
    assert stored["embedding_version"] == "standin-1" and stored["outputs"] == ["rgb", "cc74"]
    assert [ex["outputs"] for ex in stored["examples"]] == [
        {"rgb": "#ff0000", "cc74": 10}, {"rgb": "#0000ff", "cc74": 120}, {"rgb": "#00ff00", "cc74": 64}]
    assert TaughtStore(taught).load(on_error=pytest.fail) == []  # not mistaken for a taught sound

    cfg = cfg_for(tmp_path, taught)
    tap, mapper = continuous_mapping(cfg, standin)
    player = Player(tap, Responder(cfg, continuous=mapper))
    for freq, colour, cc in ((LOW * 1.01, (1.0, 0.0, 0.0), 10), (HIGH * 1.01, (0.0, 0.0, 1.0), 120)):
        actions = player.play(join(silence(0.3), tone(freq, 1.5), silence(0.05)))
        led = last_led(actions)
        assert np.allclose(led.colour, colour, atol=2 / 255)
        assert max(a.brightness for a in actions if isinstance(a, SetLed)) > 0.8  # a loud sound: a bright LED
        assert abs(last_cc(actions, 74) - cc) <= 1
        fade = player.play(silence(1.0))
        assert fade[-1] == LED_OFF and not any(isinstance(a, Midi) for a in fade)  # silence: dark, CCs hold

    rc, out, _ = run(capsys, "map-forget", "--taught", taught)
    assert rc == 0 and "forgot the taught mapping" in out and not folder.exists()
    _, mapper = continuous_mapping(cfg, standin)
    assert isinstance(mapper.mapping, DefaultMapping)  # nothing taught: the default mapping runs
    rc, _, err = run(capsys, "map-forget", "--taught", taught)
    assert rc == 2 and "no mapping taught" in err


def test_add_keeps_the_saved_examples_and_a_second_teach_needs_force(tmp_path, capsys, standin):
    taught = str(tmp_path / "taught")
    assert teach_three(tmp_path, capsys, taught)[0] == 0
    rc, _, err = teach_three(tmp_path, capsys, taught)
    assert rc == 2 and "a mapping is taught already" in err and "--force" in err
    extra = wav(tmp_path, "mid.wav", take(660))
    rc, out, err = run(capsys, "map-teach", "--taught", taught, "--add", "--example", extra, "--rgb", "ffff00",
                       "--cc", "74=90")
    assert rc == 0, err
    assert "4 examples, 7 takes" in out
    m = MappingStore(taught).load()
    assert [ex["outputs"]["rgb"] for ex in m.examples] == ["#ff0000", "#0000ff", "#00ff00", "#ffff00"]
    assert teach_three(tmp_path, capsys, taught, "--force")[0] == 0
    assert len(MappingStore(taught).load().examples) == 3


def test_the_app_hands_the_responder_the_embedding_of_the_classified_window(standin):
    tap = EmbeddingTap(standin)
    decision = OpenSetModel(tap, OpenSetDecider(standin.labels))
    assert latest_embedding(decision) is None
    x = np.zeros(standin.input_shape, np.float32)
    decision.predict(x)
    assert np.array_equal(latest_embedding(decision), standin.infer(x)[1])
    assert latest_embedding(OpenSetModel(standin, OpenSetDecider(standin.labels))) is None  # no tap: nothing


# ------------------------------------------------------------------ bad demonstrations


def _bad_cases(tmp_path):
    low, high = wav(tmp_path, "low.wav", take(LOW)), wav(tmp_path, "high.wav", take(HIGH))
    quiet = wav(tmp_path, "quiet.wav", silence(1.0))
    short = wav(tmp_path, "short.wav", tone(LOW, 0.05))
    return {
        "one example": (["--example", low, "--rgb", "#ff0000"], "only one example"),
        "same outputs": (["--example", low, "--rgb", "#ff0000", "--example", high, "--rgb", "#ff0000"],
                         "ask for the same outputs"),
        "conflicting": (["--example", low, "--rgb", "#ff0000", "--example", low, "--rgb", "#0000ff"],
                        "are the same sound"),
        "nan": (["--example", low, "--cc", "74=nan", "--example", high, "--cc", "74=1"], "not 'nan'"),
        "cc value": (["--example", low, "--cc", "74=128", "--example", high, "--cc", "74=1"], "0..127"),
        "cc number": (["--example", low, "--cc", "121=5", "--example", high, "--cc", "121=1"], "not a controller"),
        "colour": (["--example", low, "--rgb", "#ff00zz", "--example", high, "--rgb", "#0000ff"],
                   "expected a colour"),
        "missing output": (["--example", low, "--rgb", "#ff0000", "--cc", "1=2", "--example", high, "--rgb", "#0000ff"],
                           "every example must set the same outputs"),
        "no sound first": (["--rgb", "#ff0000", "--example", low], "give the example's sound first"),
        "silent take": (["--example", quiet, "--rgb", "#ff0000", "--example", high, "--rgb", "#0000ff"], "silent"),
        "short take": (["--example", short, "--rgb", "#ff0000", "--example", high, "--rgb", "#0000ff"], "long"),
    }


@pytest.mark.parametrize("case", ["one example", "same outputs", "conflicting", "nan", "cc value", "cc number",
                                  "colour", "missing output", "no sound first", "silent take", "short take"])
def test_bad_demonstrations_are_one_line_and_lose_nothing(tmp_path, capsys, standin, case):
    taught = str(tmp_path / "taught")
    assert teach_three(tmp_path, capsys, taught)[0] == 0
    saved = {p.name: p.read_bytes() for p in (Path(taught) / FOLDER).iterdir()}
    argv, message = _bad_cases(tmp_path)[case]
    rc, _, err = run(capsys, "map-teach", "--taught", taught, "--force", *argv)
    lines = err.strip().splitlines()
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("saysee: error:") and message in lines[0], err
    assert {p.name: p.read_bytes() for p in (Path(taught) / FOLDER).iterdir()} == saved
    assert sorted(p.name for p in Path(taught).iterdir()) == [FOLDER]  # no staging left behind


# ------------------------------------------------------------------ storage


def _demo(standin, n=2):
    examples = [mapping_store.Example(f"tone {f}", (take(f),), {"rgb": c, "cc74": v})
                for f, c, v in ((LOW, (1.0, 0.0, 0.0), 10), (HIGH, (0.0, 0.0, 1.0), 120))[:n]]

    def embed(audio):
        e, _, w = teach_mod.embed_take_windows(standin, audio, LogMelParams(), -45.0)
        return e, w

    return examples, mapping_store.demonstrations(examples, embed), embed


def test_a_failed_save_leaves_the_old_mapping_and_no_leftovers(tmp_path, standin, monkeypatch):
    store = MappingStore(tmp_path / "taught")
    examples, demo, _ = _demo(standin)
    store.save(examples, demo, 16000, "standin-1")
    before = (store.folder / FILE).read_bytes()

    def broken(path, data, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mapping_store, "write_atomic", broken)
    with pytest.raises(MappingError, match="could not store the mapping.*No space left"):
        store.save(list(reversed(examples)), demo, 16000, "standin-1", replace=True)
    assert (store.folder / FILE).read_bytes() == before
    assert sorted(p.name for p in store.root.iterdir()) == [FOLDER]


def test_a_replace_killed_between_the_renames_is_undone_on_load(tmp_path, standin):
    store = MappingStore(tmp_path / "taught")
    examples, demo, _ = _demo(standin)
    store.save(examples, demo, 16000, "standin-1")
    os.rename(store.folder, store.root / f"{FOLDER}-old-1234abcd")  # killed after moving the old one away
    assert store.load().names == ["rgb", "cc74"]
    assert sorted(p.name for p in store.root.iterdir()) == [FOLDER]


def test_a_damaged_mapping_is_one_line_and_the_box_runs_the_default(tmp_path, standin, caplog):
    store = MappingStore(tmp_path / "taught")
    examples, demo, _ = _demo(standin)
    store.save(examples, demo, 16000, "standin-1")
    (store.folder / FILE).write_text('{"format": 1, "outputs": ["rgb"]')
    with pytest.raises(MappingError, match=r"mapping.json: damaged mapping"):
        store.load()
    _, mapper = continuous_mapping(cfg_for(tmp_path, str(store.root)), standin)
    assert isinstance(mapper.mapping, DefaultMapping)
    assert "taught mapping not used" in caplog.text


def test_rows_are_recomputed_from_the_takes_when_the_embedding_changes(tmp_path, capsys, standin, monkeypatch):
    taught = str(tmp_path / "taught")
    assert teach_three(tmp_path, capsys, taught)[0] == 0
    old_rows = MappingStore(taught).load().rows
    updated = StandInModel(version="standin-2", seed=7)  # another embedding: old rows mean nothing to it
    tap, mapper = continuous_mapping(cfg_for(tmp_path, taught), updated)
    stored = MappingStore(taught).load()
    assert stored.embedding_version == "standin-2" and stored.rows.shape == old_rows.shape
    assert not np.allclose(stored.rows, old_rows, atol=1e-3)
    first = stored.take_files()[0][1]
    from device.wavfile import read_wav

    _, _, windows = teach_mod.embed_take_windows(updated, read_wav(first)[0], LogMelParams(), -45.0)
    assert np.allclose(stored.rows[: len(windows)], windows, atol=1e-4)
    actions = play(tap, Responder(cfg_for(tmp_path, taught), continuous=mapper),
                   join(silence(0.3), tone(HIGH, 1.5), silence(0.05)))
    assert np.allclose(last_led(actions).colour, (0.0, 0.0, 1.0), atol=2 / 255)


# ------------------------------------------------------------------ the mapper and the responder


class FixedMapping:
    """A mapping that answers what the test sets."""

    has_colour = True

    def __init__(self):
        self.out = Outputs((1.0, 0.0, 0.0), {74: 100.0}, 0.1)

    def predict(self, embedding):
        return self.out


def hop(t, skipped=None, level=-15.0):
    return WindowResult(t, level, None, skipped)


def test_smoothing_by_time_constant_and_sending_only_on_change(tmp_path):
    m = FixedMapping()
    mapper = ContinuousMapper(m, ContinuousConfig(smoothing_s=0.1), silence_dbfs=-45.0)
    r = Responder(config_from_dict({"app": {"assets_dir": str(tmp_path)}, "synth": {"channel": 2}}), continuous=mapper)
    e = np.ones(4) / 2
    first = r.on_hop(hop(0.05), e)
    assert [type(a) for a in first] == [SetLed, Midi]
    assert first[1].message.type == "control_change" and first[1].message.channel == 1
    assert (first[1].message.control, first[1].message.value) == (74, 100)  # the first value is taken as it is
    for k in range(2, 60):
        r.on_hop(hop(0.05 * k), e)
    assert r.on_hop(hop(3.0), e) == []  # settled: nothing new to send
    m.out = Outputs((0.0, 0.0, 1.0), {74: 0.0}, 0.1)
    a = 1 - math.exp(-0.05 / 0.1)
    step = r.on_hop(hop(3.05), e)
    cc = [x.message.value for x in step if isinstance(x, Midi)]
    assert cc == [round(100 * (1 - a))]  # one pole: a share 1 - exp(-hop / tau) of the way
    led = next(x for x in step if isinstance(x, SetLed))
    assert led.colour == pytest.approx((round(255 * (1 - a)) / 255, 0.0, round(255 * a) / 255))
    for k in range(62, 200):
        r.on_hop(hop(0.05 * k), e)
    assert mapper._sent_cc[74] == 0


def test_a_wobbling_value_sends_nothing_and_silence_fades_while_gated_holds():
    m = FixedMapping()
    mapper = ContinuousMapper(m, ContinuousConfig(smoothing_s=0.0), silence_dbfs=-45.0)
    e = np.ones(4) / 2
    mapper.step(0.0, -15.0, None, e)
    sent = 0
    for k in range(1, 40):  # the value wobbles around 100.5: rounding would flip every hop
        m.out = Outputs((1.0, 0.0, 0.0), {74: 100.3 if k % 2 else 100.7}, 0.1)
        sent += len(mapper.step(0.05 * k, -15.0, None, e)[1])
    assert sent == 0
    assert mapper.step(2.0, -90.0, "gated", None) == (None, {})  # our own synth is sounding: hold
    assert mapper.brightness > 0.5
    fading = ContinuousMapper(FixedMapping(), ContinuousConfig(smoothing_s=0.2), silence_dbfs=-45.0)
    fading.step(0.0, -15.0, None, e)
    steps = [fading.step(0.05 * k, -80.0, "silent", None) for k in range(1, 60)]
    levels = [led[1] for led, _ in steps if led is not None]
    assert levels == sorted(levels, reverse=True) and levels[-1] == 0.0  # fades, ends dark
    assert all(cc == {} for _, cc in steps)  # CC values hold in silence
    far = ContinuousMapper(FixedMapping(), ContinuousConfig(smoothing_s=0.0, max_distance=0.05), -45.0)
    assert far.step(0.0, -15.0, None, e) == (None, {})  # never taught anything like it: as silence


def test_with_the_continuous_mapping_class_events_leave_the_led_alone(tmp_path):
    cfg = config_from_dict({"app": {"assets_dir": str(tmp_path)},
                            "mapping": {"dog_bark": {"colour": "#00ff00", "note": 72}}})
    r = Responder(cfg, labels=("dog_bark",), continuous=ContinuousMapper(FixedMapping()))
    actions = r.on_event(ClassDetected("dog_bark", 0.9, t=1.0))
    assert [a.message.type for a in actions] == ["note_on"]  # the note still plays; the LED is the mapping's
    assert r.on_event(ClassCleared("dog_bark", 2.0, "silence")) == []
    plain = Responder(cfg, labels=("dog_bark",))
    assert isinstance(plain.on_event(ClassDetected("dog_bark", 0.9, t=1.0))[0], SetLed)
    assert plain.on_hop(hop(1.0), np.ones(4)) == []  # [continuous] off: today's behaviour


# ------------------------------------------------------------------ the default mapping and the regressors


def test_default_projection_from_metadata_or_the_fixed_random_one():
    meta = json.loads((ROOT / "models" / "sound.json").read_text())
    dim, version = meta["embedding"]["dim"], meta["embedding"]["version"]
    proj, why = projection_from_metadata(meta, dim, version)
    assert proj is meta[PROJECTION_KEY] and why.startswith("PCA of")
    proj, why = projection_from_metadata(meta, dim, "another")
    assert "is for embedding" in why and proj == random_projection(dim)
    proj, why = projection_from_metadata({}, 32, None)
    q = np.asarray(proj["components"])
    assert np.allclose(q @ q.T, np.eye(3)) and "no mapping_projection" in why
    m = DefaultMapping(proj, (74, 1))
    rng = np.random.default_rng(0)
    e = rng.normal(size=32)
    near, far = e + 0.05 * rng.normal(size=32), rng.normal(size=32)
    a, b, c = (m.predict(x / np.linalg.norm(x)) for x in (e, near, far))
    dist = lambda u, v: max(abs(x - y) for x, y in zip(u.colour, v.colour))
    assert dist(a, b) < dist(a, c) and set(a.cc) == {74, 1}
    with pytest.raises(MappingError, match="at most 3"):
        DefaultMapping(proj, (1, 2, 3, 4))


def test_four_default_ccs_are_a_config_error(tmp_path, standin):
    with pytest.raises(ConfigError, match=r"\[continuous\] cc"):
        continuous_mapping(cfg_for(tmp_path, str(tmp_path), mode="default", cc=[1, 2, 3, 4]), standin)
    no_embedding = StandInModel(embedding=False)
    assert continuous_mapping(cfg_for(tmp_path, str(tmp_path), mode="default"), no_embedding) == (no_embedding, None)


@pytest.mark.parametrize("method", ["knn", "krr"])
def test_regressors_reproduce_their_demonstrations_and_leave_one_out_reports_errors(method):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16))
    rows = np.concatenate([c + 0.05 * rng.normal(size=(6, 16)) for c in centres])
    row_take = np.repeat(np.arange(6), 3)  # 2 takes per sound, 3 windows each
    targets = np.repeat(np.array([[1, 0, 0, 0.1], [0, 1, 0, 0.5], [0, 0, 1, 0.9]]), 6, axis=0)
    m = TaughtMapping(["rgb", "cc1"], rows, targets, method)
    out = m.predict(centres[1])
    assert max(abs(x - y) for x, y in zip(out.colour, (0, 1, 0))) < 0.2 and abs(out.cc[1] - 0.5 * 127) < 20
    loo = leave_one_take_out(rows, row_take, targets, ["rgb", "cc1"], method)
    assert loo["nearest_ok"] == 1.0 and loo["rgb"] < 40 and loo["windows"] == 18


def test_an_example_recorded_from_the_sim_mic(tmp_path, capsys, standin):
    playlist = wav(tmp_path, "mic.wav", join(*(part for f in (LOW, LOW * 1.01) for part in
                                               (silence(0.6), tone(f, 0.6), silence(0.3)))))
    cfg = tmp_path / "box.toml"  # countdown 0.5 s + take 1.0 s: each take window holds one 0.6 s tone
    cfg.write_text(f'[teach]\ntake_s = 1.0\ncountdown_s = 0.5\ndir = "{tmp_path / "t"}"\n')
    high = wav(tmp_path, "high.wav", take(HIGH))
    rc, out, err = run(capsys, "map-teach", "--config", str(cfg), "--sim", playlist,
                       "--record", "2", "--rgb", "#ff0000", "--cc", "74=10", "--example", high, "--rgb", "#0000ff",
                       "--cc", "74=120")
    assert rc == 0, err
    assert out.count("get ready") == 2 and "2 examples, 3 takes" in out
    assert "2 recorded take(s) of example 1" in out
    m = MappingStore(tmp_path / "t").load()
    assert [len(ex["takes"]) for ex in m.examples] == [2, 1]


def test_a_demonstration_missing_an_output_is_one_line_not_a_box_that_cannot_start(tmp_path, standin, caplog):
    store = MappingStore(tmp_path / "taught")
    examples, demo, _ = _demo(standin)
    store.save(examples, demo, 16000, "standin-1")
    data = json.loads((store.folder / FILE).read_text())
    del data["examples"][0]["outputs"]["cc74"]
    (store.folder / FILE).write_text(json.dumps(data))
    with pytest.raises(MappingError, match=r"mapping.json: damaged mapping \(example 'tone .*' sets \['rgb'\]"):
        store.load()
    _, mapper = continuous_mapping(cfg_for(tmp_path, str(store.root)), standin)
    assert isinstance(mapper.mapping, DefaultMapping)
