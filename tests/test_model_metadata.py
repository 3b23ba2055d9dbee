"""Model metadata that disagrees with its model or with the caller is refused at load,
in one line naming the file (issue 9, item 12): such a model used to load and run
"deaf" (a traceback per window, no detections)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.config import PROJECT_ROOT
from device.errors import ModelError, SaySeeError
from device.frontend import LogMelParams, NoteParams
from device.model import Model
from device.wavfile import write_wav

pytestmark = pytest.mark.device_venv

SOUND = PROJECT_ROOT / "models" / "sound.tflite"
MARIMBA = PROJECT_ROOT / "models" / "marimba.tflite"


def copy_model(src: Path, folder: Path, edit=None) -> Path:
    """The committed model under a new name, its metadata changed by ``edit(meta)``."""
    if not src.exists():
        pytest.skip(f"{src} not built yet (make models)")
    dst = folder / src.name
    shutil.copy(src, dst)
    meta = json.loads(src.with_suffix(".json").read_text())
    if edit is not None:
        edit(meta)
    dst.with_suffix(".json").write_text(json.dumps(meta))
    return dst


def test_error_is_a_saysee_error():
    assert issubclass(ModelError, SaySeeError)


def test_committed_models_load_with_their_own_kind(tmp_path):
    sound = Model(copy_model(SOUND, tmp_path), expected_frontend=LogMelParams())
    marimba = Model(copy_model(MARIMBA, tmp_path), expected_frontend=NoteParams())
    assert (sound.kind, marimba.kind) == ("sound", "marimba")
    assert len(sound.predict(np.zeros(sound.input_shape))) == len(sound.labels)


@pytest.mark.parametrize("labels", [9, 11])
def test_label_count_that_differs_from_the_outputs_is_refused(tmp_path, labels):
    def edit(meta):
        meta["labels"] = [f"class_{i}" for i in range(labels)]

    path = copy_model(SOUND, tmp_path, edit)
    with pytest.raises(ModelError) as e:
        Model(path, expected_frontend=LogMelParams())
    msg = str(e.value)
    assert str(path.with_suffix(".json")) in msg and f"{labels} labels" in msg and "10 outputs" in msg


def test_marimba_notes_that_differ_from_the_labels_are_refused(tmp_path):
    def edit(meta):
        meta["notes"] = meta["notes"][:-1]

    path = copy_model(MARIMBA, tmp_path, edit)
    with pytest.raises(ModelError, match="'notes' must list one MIDI note per label"):
        Model(path, expected_frontend=NoteParams())


@pytest.mark.parametrize("labels", ["dog_bark", [], [1, 2, 3]])
def test_labels_must_be_a_list_of_names(tmp_path, labels):
    def edit(meta):
        meta["labels"] = labels

    path = copy_model(SOUND, tmp_path, edit)
    with pytest.raises(ModelError, match="'labels' must be a non-empty list of names"):
        Model(path)


def test_sound_model_given_as_marimba_is_refused(tmp_path):
    path = copy_model(SOUND, tmp_path)
    with pytest.raises(ModelError) as e:
        Model(path, expected_frontend=NoteParams())
    assert str(path.with_suffix(".json")) in str(e.value)
    assert "this is a sound model, but a marimba model is needed here" in str(e.value)
    from device.marimba.pipeline import MarimbaPipeline

    with pytest.raises(ModelError, match="a marimba model is needed"):
        MarimbaPipeline.from_model_path(path)


def test_marimba_model_given_as_sound_is_refused(tmp_path):
    path = copy_model(MARIMBA, tmp_path)
    with pytest.raises(ModelError, match="this is a marimba model, but a sound model is needed here"):
        Model(path, expected_frontend=LogMelParams())
    with pytest.raises(ModelError, match="a sound model is needed"):
        Model(path, kind="sound")


def test_metadata_that_names_the_wrong_kind_is_refused(tmp_path):
    """A sound model (log-mel front end) whose metadata claims to be a marimba model."""

    def edit(meta):
        meta["kind"] = "marimba"

    path = copy_model(SOUND, tmp_path, edit)
    with pytest.raises(ModelError, match="this is a marimba model, but a sound model is needed here"):
        Model(path, expected_frontend=LogMelParams())


def test_unknown_kind_is_refused(tmp_path):
    def edit(meta):
        meta["kind"] = "speech"

    path = copy_model(SOUND, tmp_path, edit)
    with pytest.raises(ModelError, match="unknown model kind 'speech'"):
        Model(path)


def _one_line(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    # The TFLite runtime's own "INFO: Created ... delegate" line is not ours.
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_classify_refuses_mismatched_metadata_in_one_line(tmp_path):
    def edit(meta):
        meta["labels"] = meta["labels"][:-1]

    path = copy_model(SOUND, tmp_path, edit)
    wav = tmp_path / "x.wav"
    write_wav(wav, np.zeros(16000, np.int16), 16000)
    r = subprocess.run([sys.executable, "-m", "device", "classify", "--model", str(path), str(wav)],
                       capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    _one_line(r, str(path.with_suffix(".json")), "9 labels", "10 outputs")


def test_run_refuses_a_marimba_model_as_the_sound_model(tmp_path):
    path = copy_model(MARIMBA, tmp_path)
    wav = tmp_path / "x.wav"
    write_wav(wav, np.zeros(16000, np.int16), 16000)
    cfg = tmp_path / "box.toml"
    cfg.write_text(f"[sound]\nmodel = '{path}'\n[mic]\nbackend = 'sim'\nplaylist = ['{wav}']\n")
    r = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    _one_line(r, str(path.with_suffix(".json")), "a sound model is needed")


@pytest.mark.parametrize("key, value, needle", [
    ("input_shape", 5, "'input_shape' must be a list of positive integers"),
    ("input_shape", [64, "x", 1], "'input_shape' must be a list of positive integers"),
    ("frontend", "x", "'frontend' must be a JSON object"),
    ("embedding", [1], "'embedding' must be a JSON object with an integer 'dim'"),
    ("embedding", {"dim": "big"}, "'embedding' must be a JSON object with an integer 'dim'"),
])
def test_metadata_of_the_wrong_type_is_one_line_not_a_traceback(tmp_path, key, value, needle):
    def edit(meta):
        meta[key] = value

    path = copy_model(SOUND, tmp_path, edit)
    with pytest.raises(ModelError, match=needle) as e:
        Model(path, expected_frontend=LogMelParams())
    assert str(path.with_suffix(".json")) in str(e.value)


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.pop("marimba"), "lacks the 'marimba' section"),
    (lambda m: m["marimba"].update(bogus=1), "unknown MarimbaSpec field(s): bogus"),
    (lambda m: m["marimba"].update(notes="C4"), "MarimbaSpec notes = 'C4'"),
    (lambda m: m["marimba"]["crop"].update(top=0.9, bottom=0.1), "bad crop"),
    (lambda m: m["marimba"]["peaks"].update(refractory_s=None), "PeakParams refractory_s = None"),
])
def test_a_bad_marimba_section_is_one_line_naming_the_metadata(tmp_path, edit, needle):
    from device.marimba.pipeline import MarimbaPipeline

    path = copy_model(MARIMBA, tmp_path, edit)
    with pytest.raises(ModelError) as e:
        MarimbaPipeline.from_model_path(path)
    assert str(path.with_suffix(".json")) in str(e.value) and needle in str(e.value)


def test_metadata_written_for_another_model_file_is_refused(tmp_path):
    """A new model copied over an old JSON (same labels, same sizes) would run with the old centres,
    thresholds and embedding version, and taught prototypes would never be recomputed."""
    path = copy_model(SOUND, tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # another build: one byte differs
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="written for another sound.tflite .model_sha256 differs.") as e:
        Model(path, expected_frontend=LogMelParams())
    assert str(path.with_suffix(".json")) in str(e.value)
