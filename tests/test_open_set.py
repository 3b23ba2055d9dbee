"""The open-set decision: built-in only when sure AND near its centre, taught near a prototype, else unknown."""

from __future__ import annotations

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


@pytest.mark.parametrize("block, words", [
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


def test_device_decision_equals_the_one_training_calibrates_and_measures():
    ee = pytest.importorskip("training.embedding_eval")
    rng = np.random.default_rng(3)
    n_cls, dim, n = 5, 16, 400
    centres = ee.unit(rng.normal(size=(n_cls, dim)))
    protos = ee.unit(rng.normal(size=(3, dim)))
    # Windows near centres, near prototypes and nowhere, with sure and unsure probabilities.
    anchors = np.concatenate([centres, protos, ee.unit(rng.normal(size=(4, dim)))])
    emb = ee.unit(anchors[rng.integers(0, len(anchors), n)] + rng.normal(0, 0.35, (n, dim)))
    probs = rng.dirichlet(np.full(n_cls, 0.3), n)
    os_ = ee.OpenSet(min_confidence=0.6, max_centre_distance=0.35, class_centres=centres, taught_max_distance=0.3)
    labels = [f"c{i}" for i in range(n_cls)]
    params = OpenSetParams(0.6, 0.35, 0.3, {k: c for k, c in zip(labels, centres)})
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
