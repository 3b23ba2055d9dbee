"""Training on a user's own recordings: chosen splits, augmentation, determinism, fine-tuning start."""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest

from training.datasets.marimba_synth import SynthConfig, render, write

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("recs")
    cfg = SynthConfig(seconds=2.0)
    for i, seed in enumerate((11, 12, 13, 14)):
        write(render(seed, cfg), root / f"rec{i + 1}")
    return root


def _args(**kw) -> argparse.Namespace:
    from training.train_marimba import parse_args

    args = parse_args(["--out", "unused"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_splits_follow_the_named_recordings(recordings):
    from training.train_marimba import recorded_folders

    parts = recorded_folders(_args(data=[str(recordings)], test_data=[str(recordings / "rec1")],
                                   val_data=[str(recordings / "rec2")]))
    assert [p.name for p in parts["test"]] == ["rec1"] and [p.name for p in parts["val"]] == ["rec2"]
    assert [p.name for p in parts["train"]] == ["rec3", "rec4"]


def test_default_split_says_what_it_holds_out(recordings, capsys):
    from training.train_marimba import recorded_folders

    parts = recorded_folders(_args(data=[str(recordings)], test_data=None, val_data=None))
    assert [p.name for p in parts["test"]] == ["rec4"] and [p.name for p in parts["val"]] == ["rec3"]
    out = capsys.readouterr().out
    assert "holding out rec4" in out and "validating on rec3" in out


def test_a_recording_cannot_be_both_test_and_validation(recordings):
    from device.errors import InputFileError
    from training.train_marimba import recorded_folders

    with pytest.raises(InputFileError, match="both"):
        recorded_folders(_args(data=[str(recordings)], test_data=[str(recordings / "rec1")],
                               val_data=[str(recordings / "rec1")]))


def test_epochs_are_sized_for_minutes_of_video():
    from training.train_marimba import FINE_TUNE_STEPS, MAX_EPOCHS, training_epochs

    class P:  # a prepared recording of n usable windows
        def __init__(self, n):
            self.windows = np.arange(n)

    args = _args(epochs=None, batch_size=64)
    two_minutes = [P(3600)]
    assert training_epochs(args, two_minutes, synthetic=False) == round(FINE_TUNE_STEPS / 57)
    assert training_epochs(args, [P(300)], synthetic=False) == MAX_EPOCHS
    assert training_epochs(args, [P(10 ** 6)], synthetic=False) == 3
    assert training_epochs(_args(epochs=7), two_minutes, synthetic=False) == 7


def test_augmentation_shifts_the_view_but_keeps_bar_order():
    from training.marimba_augment import AugmentParams, augment_stacks

    x = np.zeros((64, 3, 48, 128), np.uint8)
    x[:, :, :, 20:24] = 200  # a bright bar on the left
    rng = np.random.default_rng(0)
    y = augment_stacks(x, rng, AugmentParams(probability=1.0, noise_sd=(0, 0), gamma=(1, 1)))
    centre = (y.mean(axis=(1, 2)) * np.arange(128)).sum(-1) / y.mean(axis=(1, 2)).sum(-1)
    assert np.all(np.abs(centre - 21.5) < 6)  # moved a little (scale about the centre + shift), never mirrored
    assert centre.std() > 0.3  # and not the same way every time
    again = augment_stacks(x, np.random.default_rng(0), AugmentParams(probability=1.0, noise_sd=(0, 0), gamma=(1, 1)))
    np.testing.assert_array_equal(y, again)
    # The three frames of a window move together (one geometry per window).
    assert np.allclose(y[:, 0], y[:, 2])


def _weights_digest(folder) -> str:
    import keras

    model = keras.models.load_model(folder / "marimba.keras", compile=False)
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


@pytest.mark.long
def test_one_seed_gives_one_answer_and_fine_tuning_starts_from_the_given_weights(recordings, tmp_path):
    from training.train_marimba import main

    common = ["--data", str(recordings), "--test-data", str(recordings / "rec1"), "--val-data",
              str(recordings / "rec2"), "--quick", "--max-int8-drop", "1", "--from-scratch", "--epochs", "2",
              "--test-calibration", "truth"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--out", str(tmp_path / "b")]) == 0
    assert _weights_digest(tmp_path / "a") == _weights_digest(tmp_path / "b")
    assert main(common + ["--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    assert _weights_digest(tmp_path / "c") != _weights_digest(tmp_path / "a")
    # Fine-tuning: starts from a's weights (the small --quick width comes with them), trains, changes them.
    ft = ["--data", str(recordings), "--test-data", str(recordings / "rec1"), "--val-data", str(recordings / "rec2"),
          "--quick", "--max-int8-drop", "1", "--epochs", "1", "--init", str(tmp_path / "a" / "marimba.keras"),
          "--test-calibration", "truth"]
    assert main(ft + ["--out", str(tmp_path / "d")]) == 0
    assert _weights_digest(tmp_path / "d") != _weights_digest(tmp_path / "a")


def test_a_missing_pretrained_model_is_one_line(recordings, tmp_path, capsys):
    from training.train_marimba import main

    rc = main(["--data", str(recordings), "--quick", "--init", str(tmp_path / "none.keras"),
               "--out", str(tmp_path / "o")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train-marimba:")]
    assert rc != 0 and len(err) == 1 and "none.keras" in err[0] and "no pretrained" in err[0]


def test_joint_peak_tuning_without_own_look_videos_is_one_line(tmp_path, capsys):
    """--peaks-on val+replay tunes on an own-look video beside the user's take: with no rehearsal videos there
    is none, and the run says so instead of silently tuning on the user's take alone."""
    from training.train_marimba import main

    rc = main(["--quick", "--peaks-on", "val+replay", "--out", str(tmp_path / "o")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train-marimba:")]
    assert rc != 0 and len(err) == 1 and "--peaks-on val+replay" in err[0]


def test_held_out_recordings_without_training_ones_are_refused(capsys):
    """Without --data the run would train on synthetic videos and report a figure nobody asked for."""
    from training.train_marimba import parse_args

    with pytest.raises(SystemExit) as e:
        parse_args(["--test-data", "rec9", "--out", "x"])
    assert e.value.code == 2 and "--data" in capsys.readouterr().err.splitlines()[-1]
