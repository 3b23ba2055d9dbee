"""The procedural sound world: reproducible, varied within a family, distinct between families, honest splits."""

import numpy as np
import pytest

from device.frontend import LogMelParams, window_features
from training.datasets import sound_world
from training.datasets.sound_world import KINDS, family_kind, family_sound


def test_a_family_instance_is_reproducible_and_instances_differ():
    a, b = family_sound(7, 3), family_sound(7, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, family_sound(7, 4))


@pytest.mark.parametrize("family", range(len(KINDS)))
def test_every_kind_gives_a_finite_audible_second(family):
    x = family_sound(family, 0)
    assert family_kind(family) == KINDS[family]
    assert x.shape == (16000,) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert np.max(np.abs(x)) == pytest.approx(0.5, abs=1e-3)


def _profile(x):
    f = window_features(x, LogMelParams())[..., 0]
    v = f.mean(axis=0)  # mean log-mel spectrum
    return (v - v.mean()) / v.std()


def test_takes_of_one_family_are_closer_than_takes_of_other_families():
    # The few-shot test relies on a family being one recognisable sound with variation.
    fams = list(range(0, 27))
    within, between = [], []
    for k in fams:
        a, b = _profile(family_sound(k, 0)), _profile(family_sound(k, 1))
        within.append(np.mean((a - b) ** 2))
        other = _profile(family_sound(fams[(fams.index(k) + len(KINDS)) % len(fams)], 0))
        between.append(np.mean((a - other) ** 2))
    assert np.median(within) < 0.5 * np.median(between)


def test_train_calibration_and_test_families_are_disjoint_and_cover_all():
    train = set(sound_world.train_families())
    cal = set(sound_world.calibration_families())
    test = set(sound_world.test_families())
    assert not (train & cal) and not (train & test) and not (cal & test)
    assert train | cal | test == set(range(sound_world.N_FAMILIES))
    assert len(test) >= 50 and len(train) >= 150
    # Every kind appears in the held-out test set, so few-shot is not measured on one kind only.
    assert {family_kind(k) for k in test} == set(KINDS)
