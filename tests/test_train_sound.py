"""Training, export and classify from the command line: reports, metadata, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.frontend import LogMelParams
from device.model import Model


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=PROJECT_ROOT)


def one_line_error(r, *needles):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "WARNING" not in ln and not ln.startswith("I0000")]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.slow
def test_quick_training_writes_report_and_a_loadable_int8_model(tmp_path):
    from training.train_sound import main

    out = tmp_path / "report"
    assert main(["--quick", "--out", str(out), "--export", str(tmp_path / "m" / "sound.tflite")]) == 0
    for name in ("curves.png", "confusion.png", "confusion_int8.png", "metrics.json", "sound.tflite"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["float"]["per_class"]) == set(metrics["int8"]["per_class"])
    assert metrics["split"]["test_fold"] not in metrics["split"]["train_folds"]
    assert metrics["complexity"]["params"] <= 128_000 and metrics["complexity"]["macs"] <= 30_000_000
    model = Model(tmp_path / "m" / "sound.tflite", expected_frontend=LogMelParams())
    assert model.input_dtype.__name__ == "int8"
    meta = model.metadata
    assert meta["kind"] == "sound" and len(meta["labels"]) == 10
    assert meta["metrics"]["int8"]["accuracy"] == metrics["int8"]["accuracy"]
    assert meta["training_data"]["sha256"] and meta["code_version"] and meta["model_sha256"]
    # The contract with the device's unknown / teaching code (training.train_sound docstring).
    assert meta["outputs"] == ["probabilities", "embedding"]
    assert set(meta["output_names"]) == {"probabilities", "embedding"}
    dim = meta["embedding"]["dim"]
    assert 32 <= dim <= 128 and meta["embedding"]["metric"] == "cosine" and len(meta["embedding"]["version"]) == 16
    open_set = meta["open_set"]
    assert 0 <= open_set["min_confidence"] <= 1 and open_set["max_centre_distance"] > 0
    assert open_set["taught_max_distance"] > 0 and "calibration" in open_set
    # The strict calibration ([teach] unknown = "strict") keeps fewer clips, so it never accepts more negatives.
    strict = open_set["strict"]
    default_accepted = meta["training_data"]["open_set_calibration"]["negatives_accepted"]
    assert strict["target"] < 1 and strict["negatives_accepted"] <= default_accepted + 1e-4
    centres = np.array([open_set["class_centres"][label] for label in meta["labels"]])
    assert centres.shape == (10, dim) and np.allclose(np.linalg.norm(centres, axis=1), 1.0, atol=1e-3)
    # The device loader still reads the probabilities as output 0; both outputs are named in the model.
    from training.embedding_eval import TwoOutputModel

    x = np.zeros((1,) + LogMelParams().input_shape, np.float32)
    probs, emb = TwoOutputModel(tmp_path / "m" / "sound.tflite").predict(x)
    assert np.allclose(model.predict(x[0]), probs[0])
    assert np.linalg.norm(emb[0]) == pytest.approx(1.0, abs=0.05)
    assert set(open_set["class_centres"]) == set(meta["labels"])
    # --recalibrate recomputes only the open-set block; the model file and everything else stay.
    before = (tmp_path / "m" / "sound.tflite").read_bytes()
    assert main(["--quick", "--recalibrate", str(tmp_path / "m" / "sound.tflite")]) == 0
    again = json.loads((tmp_path / "m" / "sound.json").read_text())
    assert (tmp_path / "m" / "sound.tflite").read_bytes() == before
    assert again["embedding"] == meta["embedding"] and again["labels"] == meta["labels"]
    assert again["open_set"]["calibration"].startswith("int8 outputs")
    assert again["training_data"]["open_set_calibration"]["negative_sources"]["music"] > 0


@pytest.mark.device_venv
def test_committed_model_metadata_meets_the_bar():
    meta = json.loads((PROJECT_ROOT / "models" / "sound.json").read_text())
    assert meta["metrics"]["float"]["accuracy"] >= 0.90
    assert meta["metrics"]["float"]["accuracy"] - meta["metrics"]["int8"]["accuracy"] <= 0.01
    assert meta["frontend"] == LogMelParams().to_dict()


@pytest.mark.device_venv
def test_classify_prints_top3_per_window_from_the_device_path():
    truth = json.loads((PROJECT_ROOT / "assets" / "demo" / "sounds.json").read_text())["events"]
    r = run("-m", "device", "classify", "--hop", "0.25", str(PROJECT_ROOT / "assets" / "demo" / "sounds.wav"))
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    assert all(len(row) >= 7 for row in rows)  # "start-end" + three (label, score) pairs
    correct = 0
    for ev in truth:
        # The window that starts on the event's onset (rounded to the hop) should name it first.
        start = round(ev["onset"] * 4) / 4
        row = next(row for row in rows if abs(float(row[0].split("-")[0]) - start) < 1e-6)
        correct += row[1] == ev["label"]
    assert correct >= 8


@pytest.mark.parametrize("args, needles", [
    (["--format", "nope"], ["unknown dataset FORMAT 'nope'"]),
    (["--format", "folders", "--data", "/nonexistent/sounds"], ["/nonexistent/sounds"]),
    (["--format", "urbansound8k"], ["urbansound8k"]),
])
def test_train_sound_bad_input_is_one_line(args, needles):
    one_line_error(run("-m", "training.train_sound", *args, "--out", "/tmp/never"), "train-sound: error:", *needles)


@pytest.mark.device_venv
def test_classify_unreadable_wav_is_one_line(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    one_line_error(run("-m", "device", "classify", str(bad)), str(bad))
    one_line_error(run("-m", "device", "classify", str(tmp_path / "absent.wav")), "absent.wav")


def test_batches_hold_every_class_and_give_each_world_kind_the_same_share():
    pytest.importorskip("keras")
    from training.train_sound import balanced_batches

    # 3 built-in classes, 5 families and 45 words: uniform draws would be 90 % words.
    y_grp = np.repeat(np.arange(3 + 5 + 45), 4)
    y_cls = np.where(y_grp < 3, y_grp, -1)
    x = np.zeros((len(y_grp), 1), np.float32)
    kinds = {g: "family" if g < 8 else "word" for g in range(3, 53)}
    data = balanced_batches(x, y_cls, y_grp, 3, groups_per_batch=7, per_group=2, steps=400, kinds=kinds)
    fam = words = 0
    for i in range(len(data)):
        groups = set(data[i][1][1].tolist())
        assert {0, 1, 2} <= groups and len(groups) == 7
        fam += sum(3 <= g < 8 for g in groups)
        words += sum(g >= 8 for g in groups)
    assert 0.4 < fam / (fam + words) < 0.6, (fam, words)


def test_a_class_missing_from_the_validation_fold_is_refused_before_training(tmp_path):
    """Its centre and unknown radius come from validation clips: without any it could never be shown."""
    from training.datasets.audio_io import write_wav

    rng = np.random.default_rng(0)
    data = tmp_path / "sounds"
    rows = ["file,fold"]
    for label, folds in (("bark", (1, 2, 3)), ("whistle", (1, 3))):  # no whistle in fold 2, the validation fold
        for k, fold in enumerate(folds * 2):
            write_wav(data / label / f"{label}{k}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
            rows.append(f"{label}/{label}{k}.wav,{fold}")
    (data / "folds.csv").write_text("\n".join(rows) + "\n")
    r = run("-m", "training.train_sound", "--format", "folders", "--data", str(data), "--quick",
            "--out", str(tmp_path / "out"))
    r.stderr = "\n".join(ln for ln in r.stderr.splitlines() if "file/s]" not in ln)  # the loading bar, cleared
    one_line_error(r, "train-sound: error:", str(data), "fold 2 (val) holds no clip of whistle", "folds.csv")
    assert not (tmp_path / "out" / "sound.tflite").exists()


@pytest.mark.parametrize("training_data, needle", [
    ({"format": "folders", "path": "/data/my_sounds"}, "trained on --format folders --data /data/my_sounds"),
    ({"format": "synthetic", "sha256": "0" * 64, "description": "synthetic v1: 300 clips"},
     "trained on other data than this (synthetic v1: 300 clips)"),
])
def test_recalibrate_refuses_data_the_model_was_not_trained_on(tmp_path, training_data, needle):
    """Thresholds set on other data (or another split) could be chosen on the model's own test clips."""
    import shutil

    src = PROJECT_ROOT / "models" / "sound.tflite"
    shutil.copy(src, tmp_path / "sound.tflite")
    meta = json.loads(src.with_suffix(".json").read_text())
    meta["training_data"] = {**meta["training_data"], **training_data}
    (tmp_path / "sound.json").write_text(json.dumps(meta))
    r = run("-m", "training.train_sound", "--recalibrate", str(tmp_path / "sound.tflite"), "--quick", "--out",
            str(tmp_path / "out"))
    r.stderr = "\n".join(ln for ln in r.stderr.splitlines() if "clip/s]" not in ln and "it/s]" not in ln)
    one_line_error(r, "train-sound: error:", needle)
    assert json.loads((tmp_path / "sound.json").read_text()) == meta  # nothing rewritten
