"""The open-set decision, few-shot scoring, calibration and stream counting, on embeddings whose answer is known."""

import numpy as np
import pytest

from training.embedding_eval import (
    UNKNOWN,
    OpenSet,
    calibrate,
    class_centres,
    decide,
    few_shot,
    open_set_scores,
    stream_detections,
    unit,
)

D = 8


def _open_set(min_conf=0.6, max_dist=0.3, taught=0.2):
    return OpenSet(min_conf, max_dist, np.eye(3, D), taught)


def test_builtin_needs_both_confidence_and_closeness_to_its_centre():
    os_ = _open_set()
    near0 = unit(np.eye(1, D)[0] + 0.1 * np.eye(1, D, 1)[0])
    far = np.eye(1, D, 5)[0]
    probs_sure0 = np.array([0.9, 0.05, 0.05])
    probs_unsure = np.array([0.5, 0.3, 0.2])
    assert decide(probs_sure0, near0, os_)[0] == 0
    assert decide(probs_sure0, far, os_)[0] == UNKNOWN  # confident but far from every class: unknown
    assert decide(probs_unsure, near0, os_)[0] == UNKNOWN  # close but not confident


def test_taught_prototype_wins_when_near_and_nearer_than_the_builtin_centre():
    os_ = _open_set()
    proto = np.eye(1, D, 6)
    take = unit(np.eye(1, D, 6)[0] + 0.2 * np.eye(1, D, 2)[0])
    assert decide(np.array([0.1, 0.1, 0.8]), take, os_, proto)[0] == 3  # C + 0
    other = unit(np.eye(1, D, 7)[0])
    assert decide(np.array([0.1, 0.1, 0.8]), other, os_, proto)[0] == UNKNOWN


def _clusters(n_groups, takes, spread, rng):
    centres = unit(rng.standard_normal((n_groups, 32)))
    emb = np.concatenate([unit(c + spread * rng.standard_normal((takes, 32))) for c in centres])
    groups = [f"g{i}" for i in range(n_groups) for _ in range(takes)]
    return emb, groups


def test_few_shot_is_perfect_on_tight_clusters_and_near_chance_on_noise():
    rng = np.random.default_rng(0)
    emb, groups = _clusters(10, 8, 0.05, rng)
    assert few_shot(emb, groups, rng, n_way=5, shots=3, episodes=50) == 1.0
    noise = unit(rng.standard_normal(emb.shape))
    assert few_shot(noise, groups, rng, n_way=5, shots=3, episodes=200) < 0.35  # chance is 0.2


def test_few_shot_refuses_too_few_groups():
    rng = np.random.default_rng(0)
    emb, groups = _clusters(3, 8, 0.05, rng)
    with pytest.raises(ValueError, match="need 5 groups"):
        few_shot(emb, groups, rng, n_way=5)


def test_calibration_keeps_the_target_recall_and_rejects_separable_negatives():
    rng = np.random.default_rng(1)
    pos_e, pos_g = _clusters(3, 60, 0.2, rng)
    pos_y = np.array([int(g[1:]) for g in pos_g])
    pos_p = np.full((len(pos_y), 3), 0.02)
    pos_p[np.arange(len(pos_y)), pos_y] = rng.uniform(0.7, 0.99, len(pos_y))
    neg_e = unit(rng.standard_normal((300, 32)))
    neg_p = rng.dirichlet(np.ones(3), 300)
    centres = class_centres(pos_e, pos_y, 3)
    os_, info = calibrate(pos_p, pos_e, pos_y, neg_p, neg_e, centres, np.array([0.1, 0.2]), np.array([0.5]))
    kept = np.mean(decide(pos_p, pos_e, os_) == pos_y)
    assert kept >= 0.95
    assert np.mean(decide(neg_p, neg_e, os_) != UNKNOWN) == pytest.approx(info["negatives_accepted"])
    assert info["negatives_accepted"] < 0.05


def test_stream_counts_one_detection_per_sound_and_none_in_silence():
    probs = np.array([[0.9, 0.05, 0.05]] * 6 + [[0.3, 0.3, 0.4]] * 2 + [[0.9, 0.05, 0.05]] * 3)
    emb = np.tile(np.eye(1, D)[0], (len(probs), 1))
    loud = np.array([True] * 6 + [False] * 2 + [True] * 3)
    events = stream_detections(open_set_scores(probs, emb, _open_set()), loud)
    assert [c for _, c in events] == [0, 0]  # silence in between ends the first, the second is new
    # Sure but far from every centre: the device shows "unknown" (column 3), never class 0.
    far = np.tile(np.eye(1, D, 5)[0], (len(probs), 1))
    assert [c for _, c in stream_detections(open_set_scores(probs, far, _open_set()), loud)] == [3, 3]
    # Without the open set: today's closed-set behaviour, class 0 twice.
    assert [c for _, c in stream_detections(open_set_scores(probs, far, None), loud)] == [0, 0]


def test_a_louder_rival_replaces_the_current_class_only_past_threshold_on():
    probs = np.array([[0.9, 0.1]] * 4 + [[0.45, 0.55]] * 2 + [[0.05, 0.95]] * 4)
    scores = np.concatenate([probs, np.zeros((len(probs), 1))], axis=1)
    events = stream_detections(scores, np.ones(len(probs), bool))
    assert [c for _, c in events] == [0, 1] and events[1][0] >= 6


def test_open_set_dict_round_trips_by_label():
    os_ = _open_set()
    labels = ["a", "b", "c"]
    d = os_.to_dict("test", labels)
    assert list(d["class_centres"]) == labels
    back = OpenSet.from_dict(d, labels)
    assert np.allclose(back.class_centres, os_.class_centres) and back.min_confidence == os_.min_confidence


def test_calibration_with_no_clip_right_early_falls_back_instead_of_crashing():
    """A barely trained model (make train-sound --quick) may name no built-in clip early: calibration must
    still write thresholds (permissive ones that keep built-in decisions), not crash the export."""
    from training.embedding_eval import calibrate_clips

    centres = np.eye(3, 4)
    clips = [(np.array([[0.1, 0.8, 0.1]]), np.array([[1.0, 0, 0, 0]]), 0)]  # class 0, model says class 1
    open_set, info = calibrate_clips(clips, np.array([[0.3, 0.3, 0.4]]), np.array([[0, 0, 1.0, 0]]), centres,
                                     [0.1], [0.2])
    assert info["clips_right_early_closed_set"] == 0
    assert open_set.max_centre_distance == 2.0 and open_set.min_confidence <= 0.5


def test_a_lower_open_set_target_trades_built_in_clips_for_fewer_false_pictures():
    """train_sound --open-set-target: keeping 90 % of the clips instead of all of them must tighten the
    centre distance to the 9th nearest clip and accept fewer negative windows."""
    from training.embedding_eval import calibrate_clips

    def at(distance: float) -> np.ndarray:  # a unit vector at this cosine distance from class 0's centre
        c = 1.0 - distance
        return np.array([[c, np.sqrt(1.0 - c * c), 0.0, 0.0]])

    centres = np.eye(3, 4)
    sure = np.array([[0.9, 0.05, 0.05]])
    clips = [(sure, at(d), 0) for d in np.linspace(0.01, 0.10, 10)]
    neg_d = np.linspace(0.0, 0.2, 41)
    neg_p, neg_e = np.repeat(sure, len(neg_d), axis=0), np.concatenate([at(d) for d in neg_d])
    every, info_all = calibrate_clips(clips, neg_p, neg_e, centres, [0.1], [0.2], target=1.0)
    most, info_most = calibrate_clips(clips, neg_p, neg_e, centres, [0.1], [0.2], target=0.9)
    assert every.max_centre_distance == pytest.approx(0.10, abs=1e-6)
    assert most.max_centre_distance == pytest.approx(0.09, abs=1e-6)
    assert info_most["negatives_accepted"] < info_all["negatives_accepted"]


def test_per_class_calibration_gives_a_compact_class_its_own_tight_radius():
    """train_sound --per-class-open-set: class 0's clips lie within 0.05 of its centre, class 1's spread to
    0.3; one global radius must take 0.3 for both (and accept class-0 negatives at 0.2), per class 0 keeps
    0.05 and accepts none of them, while every clip of both classes is still kept."""
    from training.embedding_eval import calibrate_clips, decide

    def at(k: int, distance: float) -> np.ndarray:  # a unit vector at this cosine distance from class k's centre
        c = 1.0 - distance
        v = np.zeros((1, 4))
        v[0, k], v[0, 3] = c, np.sqrt(1.0 - c * c)
        return v

    centres = np.eye(3, 4)
    sure = [np.array([[0.9, 0.05, 0.05]]), np.array([[0.05, 0.9, 0.05]])]
    clips = [(sure[0], at(0, d), 0) for d in np.linspace(0.01, 0.05, 5)]
    clips += [(sure[1], at(1, d), 1) for d in np.linspace(0.05, 0.30, 5)]
    neg_p = np.repeat(sure[0], 4, axis=0)
    neg_e = np.concatenate([at(0, 0.2)] * 4)
    one, info_one = calibrate_clips(clips, neg_p, neg_e, centres, [0.1], [0.2])
    per, info_per = calibrate_clips(clips, neg_p, neg_e, centres, [0.1], [0.2], per_class=True)
    assert one.max_centre_distance == pytest.approx(0.30, abs=1e-6) and one.class_max_centre_distance is None
    assert per.class_max_centre_distance[0] == pytest.approx(0.05, abs=1e-6)
    assert per.class_max_centre_distance[1] == pytest.approx(0.30, abs=1e-6)
    assert info_one["negatives_accepted"] == 1.0 and info_per["negatives_accepted"] == 0.0
    for p, e, y in clips:
        assert decide(p, e, per)[0] == y
    assert np.all(decide(neg_p, neg_e, per) == -1) and np.all(decide(neg_p, neg_e, one) == 0)
