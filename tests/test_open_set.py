"""The open-set decision: built-in only when sure AND near its centre, taught near a prototype, else unknown."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from device.config import SoundConfig, TeachConfig
from device.errors import ModelError
from device.frontend import LogMelParams
from device.sound.labels import UNKNOWN
from device.sound.open_set import OpenSetDecider, OpenSetModel, OpenSetParams, normalise
from device.sound.pipeline import ClassDetected, SoundPipeline
from device.sound.teach import build_decider, embed_take
from taught_helpers import StandInModel, join, silence, tone

pytestmark = pytest.mark.device_venv

LABELS = ["a", "b", "c"]
E = np.eye(4, dtype=np.float32)


def one_hot(i, p=0.98):
    v = np.full(3, (1 - p) / 2, np.float32)
    v[i] = p
    return v


def test_without_embedding_confidence_alone_decides():
    d = OpenSetDecider(LABELS, OpenSetParams(min_confidence=0.6))
    assert d.decide(one_hot(1, 0.9), None).label == "b"
    unsure = d.decide(np.array([0.4, 0.35, 0.25]), None)
    assert (unsure.label, unsure.kind, unsure.nearest) == (UNKNOWN, "unknown", "a")
    assert unsure.confidence == pytest.approx(0.6)


def test_a_sure_class_far_from_its_centre_is_unknown():
    # The closed-set softmax is 0.98 sure of "a", but the sound lies nowhere near a's centre.
    params = OpenSetParams(min_confidence=0.5, max_centre_distance=0.3, class_centres={"a": E[0], "b": E[1]})
    d = OpenSetDecider(LABELS, params)
    assert d.decide(one_hot(0), E[0]).label == "a"
    far = d.decide(one_hot(0), E[3])
    assert far.label == UNKNOWN and far.confidence == 1.0
    assert d.decide(one_hot(0), normalise(E[0] + 0.2 * E[3])).label == "a"  # near enough


def test_taught_prototype_wins_near_it_and_loses_to_a_closer_builtin_centre():
    params = OpenSetParams(min_confidence=0.5, max_centre_distance=0.3, taught_max_distance=0.3,
                           class_centres={"a": E[0]})
    d = OpenSetDecider(LABELS, params, {"moo": E[2]})
    assert d.labels_out == ["a", "b", "c", "moo", UNKNOWN]
    moo = d.decide(one_hot(0), normalise(E[2] + 0.1 * E[3]))
    assert moo.label == "moo" and moo.kind == "taught" and 0.5 < moo.confidence < 1.0
    assert d.decide(one_hot(0), normalise(E[0] + 0.3 * E[2])).label == "a"  # nearer a's centre than moo
    assert d.decide(one_hot(0), E[3]).label == UNKNOWN


def test_scores_put_the_decision_on_top():
    d = OpenSetDecider(LABELS, OpenSetParams(min_confidence=0.5, taught_max_distance=0.3), {"moo": E[2]})
    s = d.scores(one_hot(1), E[0])  # no centres: a sure built-in keeps the model's probabilities
    assert np.allclose(s[:3], one_hot(1)) and s[3] == s[4] == 0
    s = d.scores(one_hot(1), E[2])
    assert d.labels_out[int(np.argmax(s))] == "moo" and s[:3].sum() == 0
    s = d.scores(np.array([0.4, 0.3, 0.3]), E[0])
    assert d.labels_out[int(np.argmax(s))] == UNKNOWN


def test_thresholds_from_metadata_with_config_overrides():
    meta = {"labels": LABELS, "embedding": {"dim": 4},
            "open_set": {"min_confidence": 0.7, "max_centre_distance": 0.2, "taught_max_distance": 0.25,
                         "class_centres": {"a": [2, 0, 0, 0]}}}
    p = OpenSetParams.from_metadata(meta, "m.json", taught_max_distance=0.4, min_confidence=None)
    assert (p.min_confidence, p.max_centre_distance, p.taught_max_distance) == (0.7, 0.2, 0.4)
    assert np.allclose(p.class_centres["a"], E[0])
    assert OpenSetParams.from_metadata({"labels": LABELS}).max_centre_distance is None
    assert p.take_limit == 0.4  # no take_max_distance: the enrolment check falls back to taught_max_distance
    q = OpenSetParams.from_metadata({**meta, "open_set": {**meta["open_set"], "take_max_distance": 0.5}})
    assert q.take_max_distance == 0.5 and q.take_limit == 0.5


def test_per_class_thresholds_apply_to_their_class_and_a_config_override_means_one_pair_for_all():
    """A model calibrated per class (train_sound --per-class-open-set): a window of class a at distance 0.15
    from a's centre is unknown under a's own radius 0.1 though within the global 0.3; b keeps the global pair."""
    centres = {k: E[i] for i, k in enumerate(LABELS)}
    meta = {"labels": LABELS, "embedding": {"dim": 4},
            "open_set": {"min_confidence": 0.5, "max_centre_distance": 0.3, "taught_max_distance": 0.25,
                         "class_centres": {k: v.tolist() for k, v in centres.items()},
                         "class_thresholds": {"a": {"min_confidence": 0.5, "max_centre_distance": 0.1}}}}
    near_a = normalise(np.array([0.85, 0.5268, 0, 0]))  # cosine distance 0.15 from a's centre
    near_b = normalise(np.array([0.5268, 0.85, 0, 0]))
    p = OpenSetParams.from_metadata(meta, "m.json")
    assert p.for_class("a") == (0.5, 0.1) and p.for_class("b") == (0.5, 0.3)
    d = OpenSetDecider(LABELS, p)
    assert d.decide(one_hot(0), near_a).label == UNKNOWN
    assert d.decide(one_hot(1), near_b).label == "b"
    one_pair = OpenSetParams.from_metadata(meta, "m.json", max_centre_distance=0.3)
    assert one_pair.class_thresholds == {} and OpenSetDecider(LABELS, one_pair).decide(one_hot(0), near_a).label == "a"


def test_strict_unknown_uses_the_models_strict_pair_and_refuses_a_model_without_one():
    """[teach] unknown = "strict": the model's stricter calibration (open_set.strict) replaces the global pair
    and the per-class pairs; a window at distance 0.15 from a's centre is a under the default 0.3, unknown
    under the strict 0.1. A model without a strict calibration is refused in one line naming it."""
    block = {"min_confidence": 0.5, "max_centre_distance": 0.3, "taught_max_distance": 0.25,
             "class_centres": {k: E[i].tolist() for i, k in enumerate(LABELS)},
             "class_thresholds": {"b": {"min_confidence": 0.5, "max_centre_distance": 0.4}},
             "strict": {"target": 0.99, "min_confidence": 0.6, "max_centre_distance": 0.1}}
    meta = {"labels": LABELS, "embedding": {"dim": 4}, "open_set": block}
    near_a = normalise(np.array([0.85, 0.5268, 0, 0]))  # cosine distance 0.15 from a's centre
    default = OpenSetParams.from_metadata(meta, "m.json")
    strict = OpenSetParams.from_metadata(meta, "m.json", unknown="strict")
    assert (strict.min_confidence, strict.max_centre_distance, strict.class_thresholds) == (0.6, 0.1, {})
    assert OpenSetDecider(LABELS, default).decide(one_hot(0), near_a).label == "a"
    assert OpenSetDecider(LABELS, strict).decide(one_hot(0), near_a).label == UNKNOWN
    # A config override still wins over the strict pair.
    assert OpenSetParams.from_metadata(meta, "m.json", unknown="strict", max_centre_distance=0.2).max_centre_distance == 0.2
    old = {**meta, "open_set": {k: v for k, v in block.items() if k != "strict"}}
    with pytest.raises(ModelError, match="m.json") as e:
        OpenSetParams.from_metadata(old, "m.json", unknown="strict")
    assert "strict" in str(e.value) and "\n" not in str(e.value)


def test_the_box_reads_unknown_strict_from_the_config(tmp_path):
    from device.config import load_config
    from device.sound.teach import open_set_params

    cfg = tmp_path / "c.toml"
    cfg.write_text('[teach]\nunknown = "strict"\n')
    teach = load_config(cfg).teach
    model = type("M", (), {"metadata": {"labels": LABELS, "open_set": {
        "min_confidence": 0.5, "max_centre_distance": 0.3, "taught_max_distance": 0.25,
        "strict": {"min_confidence": 0.5, "max_centre_distance": 0.12}}}, "path": "m.tflite"})()
    assert open_set_params(model, teach).max_centre_distance == 0.12
    cfg.write_text('[teach]\nunknown = "very"\n')
    with pytest.raises(Exception, match=r"\[teach\] unknown = 'very': expected one of"):
        load_config(cfg)


@pytest.mark.parametrize("block, words", [
    ({"class_thresholds": {"zebra": {"min_confidence": 0.5, "max_centre_distance": 0.1}}}, "zebra"),
    ({"class_thresholds": {"a": {"min_confidence": 0.5}}}, "max_centre_distance"),
    ({"class_thresholds": [0.1]}, "class_thresholds"),
    ({"class_centres": {"zebra": [1, 0, 0, 0]}}, "zebra"),
    ({"class_centres": {"a": [1, 0]}}, "class_centres['a']"),
    ({"min_confidence": "high"}, "min_confidence"),
])
def test_bad_open_set_metadata_is_one_line_naming_the_file(block, words):
    with pytest.raises(ModelError, match="m.json") as e:
        OpenSetParams.from_metadata({"labels": LABELS, "embedding": {"dim": 4}, "open_set": block}, "m.json")
    assert words in str(e.value) and "\n" not in str(e.value)


def _run(model, audio, chunk=800):
    pipe = SoundPipeline(model.predict, model.labels, LogMelParams(), SoundConfig(max_latency_s=None))
    events = []
    for i in range(0, len(audio), chunk):
        events += pipe.step(audio[i : i + chunk], i)
    return [e.label for e in events if isinstance(e, ClassDetected)]


def test_pipeline_detects_a_taught_sound_and_unknown_and_nothing_in_silence():
    m = StandInModel(open_set={"min_confidence": 0.5, "taught_max_distance": 0.15, "max_centre_distance": 0.15})
    teach = TeachConfig()
    p = LogMelParams()
    proto = normalise(np.mean([embed_take(m, tone(f, 0.6), p, -45.0)[0] for f in (295, 300, 305)], axis=0))
    from device.sound.taught import TaughtClass

    moo = TaughtClass("moo", Path("."), (), 16000, proto, None, m.embedding_version)
    model = OpenSetModel(m, build_decider(m, teach, [moo]))
    assert model.labels[-2:] == ["moo", UNKNOWN]
    assert _run(model, join(silence(0.5), tone(302, 0.8), silence(1.5))) == ["moo"]
    assert _run(model, join(silence(0.5), tone(1500, 0.8, vibrato=0.2), silence(1.5))) == [UNKNOWN]
    assert _run(model, join(silence(0.5), tone(110 * 1.5 ** 3, 0.8), silence(1.5))) == ["dog_bark"]
    assert _run(model, silence(3.0)) == []


def test_committed_model_without_embedding_decides_unknown_by_confidence():
    from device.model import Model

    real = Model(Path(__file__).resolve().parent.parent / "models" / "sound.tflite", expected_frontend=LogMelParams())
    if real.has_embedding:
        pytest.skip("the committed model has an embedding now; covered by the embedding tests")
    assert real.embedding_version is None and real.embedding_dim == 0
    decider = build_decider(real, TeachConfig(min_confidence=0.999))
    model = OpenSetModel(real, decider)
    feats = LogMelParams().input_shape
    x = np.random.default_rng(0).normal(-6, 2, feats).astype(np.float32)
    probs, emb = real.infer(x)
    assert emb is None and np.allclose(probs, real.predict(x))
    d = model.decide(x)
    assert d.label == (UNKNOWN if probs.max() < 0.999 else real.labels[int(np.argmax(probs))])
    assert OpenSetModel(real, build_decider(real, TeachConfig(min_confidence=0.0))).decide(x).kind == "builtin"


@pytest.mark.parametrize("per_class", [False, True])
def test_device_decision_equals_the_one_training_calibrates_and_measures(per_class):
    ee = pytest.importorskip("training.embedding_eval")
    rng = np.random.default_rng(3)
    n_cls, dim, n = 5, 16, 400
    centres = ee.unit(rng.normal(size=(n_cls, dim)))
    protos = ee.unit(rng.normal(size=(3, dim)))
    # Windows near centres, near prototypes and nowhere, with sure and unsure probabilities.
    anchors = np.concatenate([centres, protos, ee.unit(rng.normal(size=(4, dim)))])
    emb = ee.unit(anchors[rng.integers(0, len(anchors), n)] + rng.normal(0, 0.35, (n, dim)))
    probs = rng.dirichlet(np.full(n_cls, 0.3), n)
    class_conf = np.array([0.5, 0.6, 0.7, 0.8, 0.55]) if per_class else None
    class_dist = np.array([0.3, 0.45, 0.2, 0.35, 0.25]) if per_class else None
    os_ = ee.OpenSet(min_confidence=0.6, max_centre_distance=0.35, class_centres=centres, taught_max_distance=0.3,
                     class_min_confidence=class_conf, class_max_centre_distance=class_dist)
    labels = [f"c{i}" for i in range(n_cls)]
    # Through the metadata, as the box reads it.
    meta = {"labels": labels, "embedding": {"dim": dim}, "open_set": os_.to_dict("test", labels)}
    params = OpenSetParams.from_metadata(meta, "m.json")
    assert bool(params.class_thresholds) == per_class
    decider = OpenSetDecider(labels, params, {f"t{j}": p for j, p in enumerate(protos)})
    want = ee.decide(probs, emb, os_, protos)
    names = labels + decider.taught
    got = [decider.decide(p, e).label for p, e in zip(probs, emb)]
    assert got == [UNKNOWN if w == ee.UNKNOWN else names[w] for w in want]
    assert {"unknown", "c0", "t0"} <= set(got)  # every branch was exercised
    scores = np.stack([OpenSetDecider(labels, params).scores(p, e) for p, e in zip(probs, emb)])
    assert np.allclose(scores, ee.open_set_scores(probs, emb, os_), atol=1e-6)


def test_unknown_is_never_decided_early_only_by_the_running_average():
    settings = SoundConfig(max_latency_s=None, decision="onset")
    always_unknown = lambda feats: np.array([0.0, 1.0], np.float32)  # noqa: E731 - sure it is nothing known
    always_a = lambda feats: np.array([1.0, 0.0], np.float32)  # noqa: E731
    audio = join(silence(0.5), tone(1500, 1.0), silence(1.0))
    found = {}
    for name, predict in (("unknown", always_unknown), ("a", always_a)):
        pipe = SoundPipeline(predict, ["a", UNKNOWN], LogMelParams(), settings)
        events = [e for i in range(0, len(audio), 800) for e in pipe.step(audio[i : i + 800], i)]
        found[name] = [e for e in events if isinstance(e, ClassDetected)]
    (a,) = found["a"]
    (unknown,) = found["unknown"]
    assert a.early and not unknown.early and unknown.label == UNKNOWN
    assert unknown.t > a.t


FIXTURE = Path(__file__).resolve().parent / "data" / "two_output.tflite"


def _fixture_with(tmp_path, **changes):
    import json

    meta = json.loads(FIXTURE.with_suffix(".json").read_text())
    meta.update(changes)
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    return path


def test_a_two_output_model_gives_probabilities_and_a_unit_embedding_from_one_invoke():
    from device.model import Model

    m = Model(FIXTURE, expected_frontend=LogMelParams())
    assert (m.has_embedding, m.embedding_dim, m.embedding_version) == (True, 16, "test-fixture-1")
    x = np.random.default_rng(1).normal(-6, 3, m.input_shape).astype(np.float32)
    probs, emb = m.infer(x)
    assert probs.shape == (10,) and np.allclose(probs, m.predict(x)) and abs(probs.sum() - 1) < 0.05
    assert emb.shape == (16,) and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)


def test_outputs_are_found_by_name_not_by_position(tmp_path):
    from device.model import Model

    swapped = _fixture_with(tmp_path, output_names={"probabilities": "embedding", "embedding": "probabilities"})
    with pytest.raises(ModelError, match="10 labels, but the model two_output.tflite has 16 outputs"):
        Model(FIXTURE, expected_frontend=LogMelParams(), metadata_path=swapped)
    # Names the model lacks: the listed order is used when it accounts for every output...
    renamed = _fixture_with(tmp_path, output_names={"probabilities": "p:0", "embedding": "e:0"})
    assert Model(FIXTURE, expected_frontend=LogMelParams(), metadata_path=renamed).embedding_dim == 16
    # ...and refused, naming the tensors, when it does not.
    partial = _fixture_with(tmp_path, outputs=["probabilities"], output_names={"probabilities": "p:0"})
    with pytest.raises(ModelError, match="'probabilities'.*not among the model's outputs"):
        Model(FIXTURE, expected_frontend=LogMelParams(), metadata_path=partial)


def test_an_embedding_dim_that_disagrees_with_the_model_is_refused(tmp_path):
    from device.model import Model

    wrong = _fixture_with(tmp_path, embedding={"dim": 64, "version": "x", "metric": "cosine"})
    with pytest.raises(ModelError, match="embedding dim 64, but the model's embedding output has 16 values"):
        Model(FIXTURE, expected_frontend=LogMelParams(), metadata_path=wrong)


# ------------------------------------------------------------------ several prototypes per taught class


def test_several_prototypes_the_nearest_decides_and_window_ones_count_within_their_share_of_the_radius():
    params = OpenSetParams(min_confidence=0.5, taught_max_distance=0.3, taught_window_share=0.5,
                           taught_window_confidence=0.75)
    # moo: its mean (first row) along E[2], one window prototype along E[1].
    d = OpenSetDecider(LABELS, params, {"moo": np.stack([E[2], E[1]])})
    unsure = np.array([0.4, 0.3, 0.3])
    at_mean = d.decide(unsure, E[2])
    assert at_mean.label == "moo" and at_mean.confidence == pytest.approx(1.0)
    at_window = d.decide(unsure, E[1])
    assert at_window.label == "moo" and at_window.confidence == pytest.approx(0.75)  # capped: never early alone
    # 0.22 from the window prototype: inside the mean's radius (0.3) but outside the window's share (0.15).
    off = normalise(E[1] + 0.8 * E[3])
    assert 0.2 < 1 - float(off @ E[1]) < 0.25
    assert d.decide(unsure, off).label == UNKNOWN
    assert OpenSetDecider(LABELS, dataclasses.replace(params, taught_window_share=1.0),
                          {"moo": np.stack([E[2], E[1]])}).decide(unsure, off).label == "moo"
    assert d.distances(E[1])["moo"] == pytest.approx(0.0, abs=1e-6)
    # One vector is one prototype (the mean): the decision as before, confidence 0.5 at the radius.
    single = OpenSetDecider(LABELS, params, {"moo": E[2]})
    edge = normalise(E[2] + 0.8 * E[3])
    dist = 1 - float(edge @ E[2])
    assert single.decide(unsure, edge).confidence == pytest.approx(1 - 0.5 * dist / 0.3, abs=1e-5)


class OnsetModel:
    """A scripted two-output model whose embedding follows how much of a sound a window holds.

    Windows holding the first tenths of a second of a sound embed near ONSET, windows
    holding most of it near BODY (as a real embedding treats a sliver and the whole
    sound differently); probabilities are flat, so no built-in class is ever sure.
    """

    ONSET, BODY = E[0], E[1]

    def __init__(self):
        self.labels = list(LABELS)
        self.has_embedding, self.embedding_version, self.path = True, "onset-1", "onset.tflite"
        self.metadata = {"labels": LABELS, "open_set": {"min_confidence": 0.6, "taught_max_distance": 0.2}}

    def infer(self, x):
        frames = np.asarray(x, np.float32)[..., 0].mean(axis=1)
        loud_s = np.count_nonzero(frames > frames.min() + 3.0) * 0.01
        w = float(np.clip((loud_s - 0.1) / 0.3, 0.0, 1.0))
        return np.full(3, 1 / 3, np.float32), normalise((1 - w) * self.ONSET + w * self.BODY)

    def predict(self, x):
        return self.infer(x)[0]


def _detections(model, audio):
    pipe = SoundPipeline(model.predict, model.labels, LogMelParams(), SoundConfig(max_latency_s=None))
    events = [e for i in range(0, len(audio), 800) for e in pipe.step(audio[i : i + 800], i)]
    return [e for e in events if isinstance(e, ClassDetected)]


def test_pipeline_names_a_taught_sound_from_its_start_with_onset_window_prototypes(tmp_path):
    from device.sound.taught import TaughtStore
    from device.sound.teach import Take, enrol

    m = OnsetModel()
    takes = [Take(f"take {f}", join(silence(0.2), tone(f, 0.8), silence(0.2))) for f in (295, 300, 305)]
    c = enrol(TaughtStore(tmp_path), m, "moo", takes, teach=TeachConfig(), force=True, log=lambda _m: None)
    assert len(c.prototypes()) > 1 + 3 * 6  # the mean, 6 onset windows and the body windows of each take
    played = join(silence(1.0), tone(302, 0.8), silence(1.5))
    multi = _detections(OpenSetModel(m, build_decider(m, TeachConfig(), [c])), played)
    mean_only = dataclasses.replace(c, window_embeddings=None)
    before = _detections(OpenSetModel(m, build_decider(m, TeachConfig(), [mean_only])), played)
    # One prototype (the takes' mean): the first windows are far from it, "unknown" wins the average.
    assert before and before[0].label == UNKNOWN
    # With the takes' onset windows the same sound is named from its start, within 0.75 s, and only that.
    assert [e.label for e in multi] == ["moo"] and 1.0 < multi[0].t <= 1.75
    # Untaught sounds stay unknown: an embedding nowhere near moo's windows.
    far = OpenSetDecider(LABELS, build_decider(m, TeachConfig(), [c]).params, {"moo": c.prototypes()})
    assert far.decide(np.full(3, 1 / 3), E[3]).label == UNKNOWN


def test_onset_windows_are_the_windows_the_pipeline_classifies_at_a_sounds_start():
    from device.sound.teach import ONSET_ENDS_S, onset_windows

    take = join(tone(400, 0.6), silence(0.2))  # its sound starts at sample 0
    want = onset_windows(take, LogMelParams(), -45.0)
    assert len(want) == 6
    seen = {}

    def record(feats):
        seen[len(seen)] = np.array(feats)
        return np.array([1.0, 0.0], np.float32)

    start = 16000  # the sound starts 1 s into the stream, on a decision hop
    pipe = SoundPipeline(record, ["a", UNKNOWN], LogMelParams(), SoundConfig(max_latency_s=None))
    stream = join(silence(1.0), take, silence(0.5))
    ends = []
    for i in range(0, len(stream), 800):
        before = len(seen)
        pipe.step(stream[i : i + 800], i)
        if len(seen) > before:
            ends.append(pipe.last.t - start / 16000)
    by_end = {round(t, 2): seen[k] for k, t in enumerate(ends)}
    for k, w in enumerate(want):
        t = round(ONSET_ENDS_S[0] + 0.05 * k, 2)
        assert t in by_end and np.allclose(by_end[t], w, atol=1e-4), t
