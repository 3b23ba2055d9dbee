"""The marimba CNN, the training CLI end to end (--quick), and its one-line errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.marimba.dataset import AUDIO, MANIFEST, VIDEO, write_dataset
from training.datasets.marimba_synth import SynthConfig, render, write

pytest.importorskip("tensorflow")


def test_model_shape_and_size():
    from export.complexity import complexity
    from training.marimba_model import MAX_MACS, MAX_PARAMS, build_marimba_model

    m = build_marimba_model((48, 128, 3), 18)
    assert tuple(m.input_shape) == (None, 48, 128, 3) and tuple(m.output_shape) == (None, 18)
    strides = [layer.strides for layer in m.layers if type(layer).__name__ == "Conv2D"][:3]
    filters = [layer.filters for layer in m.layers if type(layer).__name__ == "Conv2D"][:3]
    assert filters == sorted(filters) and strides[0] == (2, 2) and strides[-1] == (1, 1)
    cx = complexity(m)
    assert cx["params"] <= MAX_PARAMS and cx["macs"] <= MAX_MACS


def test_onset_weights_mark_rising_windows():
    from training.marimba_model import onset_weights

    y = np.zeros((10, 2), np.float32)
    y[4:, 0] = [0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
    w = onset_weights(y, onset_weight=10.0)
    assert w[4, 0] == 11.0 and w[5, 0] == 11.0  # both still >0.1 above the pre-strike minimum
    assert w[:4, 0].tolist() == [1.0] * 4 and np.all(w[:, 1] == 1.0)


def test_quick_training_reports_and_exports(tmp_path, capsys):
    from device.frontend import NoteParams
    from device.marimba.pipeline import MarimbaPipeline, MarimbaSpec
    from device.model import Model
    from training.train_marimba import main

    out, dest = tmp_path / "report", tmp_path / "models" / "marimba.tflite"
    assert main(["--quick", "--out", str(out), "--export", str(dest), "--max-int8-drop", "1"]) == 0
    for name in ("curves.png", "piano_roll.png", "metrics.json", "marimba.tflite", "marimba.json"):
        assert (out / name).is_file(), name
    assert dest.is_file() and dest.with_suffix(".json").is_file()
    report = json.loads((out / "metrics.json").read_text())
    for key in ("float", "int8"):
        assert {"precision", "recall", "f1"} <= set(report[key])
    assert "parity" in report and report["seconds"]["total"] > 0
    meta = json.loads(dest.with_suffix(".json").read_text())
    assert meta["kind"] == "marimba" and meta["labels"][0] == "C4" and meta["notes"][0] == 60
    assert meta["frontend"] == NoteParams().to_dict() and meta["input_shape"] == [48, 128, 3]
    assert meta["frame_size"] == [96, 160] and meta["fps"] == 30.0 and set(meta["crop"]) == {"top", "left", "bottom", "right"}
    assert {"float", "int8", "parity"} <= set(meta["metrics"]) and "sha256" in meta["training_data"]
    assert meta["training_data"]["seeds"]["train"]
    assert {"created", "code_version", "model_sha256"} <= set(meta)
    spec = MarimbaSpec.from_metadata(meta)
    model = Model(dest, expected_frontend=NoteParams())
    assert model.input_dtype == np.int8
    pipe = MarimbaPipeline(model)
    assert pipe.spec == spec
    assert "train-marimba: held-out note-onset F1" in capsys.readouterr().out


# ------------------------------------------------------------- bad input


@pytest.fixture
def recordings(tmp_path):
    """Two good short recordings (train + held out) in tmp_path/data."""
    cfg = SynthConfig(seconds=1.0)
    for seed in (1, 2):
        write(render(seed, cfg), tmp_path / "data" / f"rec{seed}")
    return tmp_path / "data"


def _run_cli(args, capsys):
    from training.train_marimba import main

    rc = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train-marimba:")]
    return rc, err


def _expect_error(data, tmp_path, capsys, *words):
    rc, err = _run_cli(["--data", str(data), "--out", str(tmp_path / "out"), "--quick"], capsys)
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("train-marimba: error: "), err
    for w in words:
        assert w in err[0], err[0]
    return err[0]


def test_video_without_audio(recordings, tmp_path, capsys):
    (recordings / "rec2" / AUDIO).unlink()
    _expect_error(recordings, tmp_path, capsys, str(recordings / "rec2" / VIDEO), "without audio")


def test_mismatched_durations(recordings, tmp_path, capsys):
    v = render(3, SynthConfig(seconds=2.0))
    write_dataset(recordings / "rec3", v.frames, v.frame_times, v.audio[: 48000], 48000, 30.0)  # 2 s video, 1 s audio
    _expect_error(recordings, tmp_path, capsys, "rec3", "2.000 s", "1.000 s", "frame window")


def test_unreadable_video(recordings, tmp_path, capsys):
    (recordings / "rec2" / VIDEO).write_bytes(b"not a video at all" * 10)
    _expect_error(recordings, tmp_path, capsys, str(recordings / "rec2" / VIDEO), "unreadable video")


def test_unreadable_audio(recordings, tmp_path, capsys):
    (recordings / "rec1" / AUDIO).write_bytes(b"RIFF....garbage")
    _expect_error(recordings, tmp_path, capsys, str(recordings / "rec1" / AUDIO), "unreadable audio")


def test_recordings_of_different_frame_sizes_are_rectified_to_one_view(recordings):
    from device.frontend import NoteParams
    from device.marimba.pipeline import MarimbaSpec
    from training.train_marimba import load_parts

    write(render(4, SynthConfig(seconds=1.0, height=120, width=200)), recordings / "rec0")
    folders = {"train": sorted(recordings.iterdir()), "val": [], "test": []}
    parts, first = load_parts(folders, MarimbaSpec(), NoteParams())
    assert first == (120, 200)
    assert {p.rec.frame_size for p in parts["train"]} == {(120, 200), (96, 160)}
    assert {p.frames.shape[1:] for p in parts["train"]} == {(48, 128)}
    assert {p.calibration_source for p in parts["train"]} == {"truth"}


def test_manifest_frame_size_disagrees_with_video(recordings, tmp_path, capsys):
    m = json.loads((recordings / "rec2" / MANIFEST).read_text())
    m["frame_size"] = [240, 320]
    (recordings / "rec2" / MANIFEST).write_text(json.dumps(m))
    _expect_error(recordings, tmp_path, capsys, str(recordings / "rec2" / VIDEO), "frame size", "320x240")


def test_missing_or_empty_data_folder(tmp_path, capsys):
    _expect_error(tmp_path / "nope", tmp_path, capsys, "nope", "no such dataset folder")
    (tmp_path / "empty").mkdir()
    _expect_error(tmp_path / "empty", tmp_path, capsys, "empty", "no marimba recordings")


def test_frame_times_must_match_the_frames(recordings, tmp_path, capsys):
    path = recordings / "rec1" / "frame_times.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-5]) + "\n")
    _expect_error(recordings, tmp_path, capsys, str(path), "frame times for")
