"""`make demo` / `python -m demo`: the whole box on sim hardware, its scores, and its output folder rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from device.config import PROJECT_ROOT

SOUND_MODEL = PROJECT_ROOT / "models" / "sound.tflite"

# demo/ is a folder of the checkout, not an installed package (as bench/).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from demo.driver import MARKER, main, prepare_out  # noqa: E402
from training.scoring import score_detections  # noqa: E402


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demo", *args], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT)


@pytest.mark.skipif(not SOUND_MODEL.exists(), reason="models/sound.tflite not built yet (make models)")
def test_demo_command_writes_its_outputs_and_scores(tmp_path):
    out = tmp_path / "demo"
    r = run_demo("--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    sound = summary["sound"]
    assert sound["score"]["hit_rate"] >= 0.9 and sound["score"]["false_in_silence"] == 0
    for name in ("events", "led timeline", "contact sheet", "synth.wav", "status.json"):
        assert Path(sound["files"][name]).stat().st_size > 0, name
    assert sound["status"]["state"] == "stopped"
    # The virtual synth rendered what the box played: the WAV holds sound, not silence.
    from device.wavfile import read_wav

    synth_audio, _ = read_wav(sound["files"]["synth.wav"])
    assert np.abs(synth_audio).max() > 1000
    if (PROJECT_ROOT / "models" / "marimba.tflite").exists():
        marimba = summary["marimba"]
        assert marimba["score"]["f1"] >= 0.8 and marimba["notes"] > 0
        assert Path(marimba["files"]["synth.wav"]).stat().st_size > 0
        # The camera's notes resynthesised beside it: one 1600-sample block per video frame, none dropped.
        resynth = Path(marimba["files"]["marimba-resynth.wav"])
        assert resynth.parent == Path(marimba["files"]["synth.wav"]).parent
        assert marimba["status"]["counters"]["audio_out_dropped_samples"] == 0
        from device.wavfile import wav_info

        # As long as the video's own audio: every frame's block reached the WAV.
        assert wav_info(resynth)[::2] == wav_info(out / "marimba-input" / "audio.wav")[::2]
    assert str(out) in r.stdout


def test_device_cli_has_no_demo_command():
    """The demo runs workstation code (training), so it is not a command of the box."""
    r = subprocess.run([sys.executable, "-m", "device", "demo"], capture_output=True, text=True, timeout=60,
                       cwd=PROJECT_ROOT)
    assert r.returncode == 2 and "unknown command 'demo'" in r.stderr


def test_refuses_a_non_empty_folder_it_did_not_write(tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("keep me")
    (tmp_path / "sound").mkdir()  # named like a demo product, but not the demo's
    (tmp_path / "sound" / "song.wav").write_bytes(b"RIFF")
    assert main(["--out", str(tmp_path), "--only", "sound"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "not empty" in err[0]
    assert mine.read_text() == "keep me" and (tmp_path / "sound" / "song.wav").exists()
    assert not (tmp_path / MARKER).exists()


def test_refuses_a_file_as_output_folder(tmp_path, capsys):
    path = tmp_path / "out"
    path.write_text("x")
    assert main(["--out", str(path)]) == 2
    assert "not a folder" in capsys.readouterr().err and path.read_text() == "x"


def test_rerun_clears_only_the_demos_own_files(tmp_path):
    out = tmp_path / "demo-output"
    prepare_out(out)
    for phase in ("sound", "marimba", "marimba-input"):
        (out / phase).mkdir()
        (out / phase / "stale.png").write_bytes(b"old")
    (out / "summary.json").write_text("{}")
    (out / "my-notes.txt").write_text("keep me")  # a user's file dropped into the demo's folder
    prepare_out(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "my-notes.txt"]
    assert (out / "my-notes.txt").read_text() == "keep me"


def test_output_of_a_demo_from_before_the_marker_is_recognised(tmp_path):
    (tmp_path / "sound").mkdir()
    (tmp_path / "sound" / "events.log").write_text("")
    (tmp_path / "summary.json").write_text(json.dumps({"sound": {"events": 0}}))
    prepare_out(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


def test_a_foreign_summary_json_is_not_taken_for_a_demo_output(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"quarter": 3}))
    with pytest.raises(Exception, match="not empty"):
        prepare_out(tmp_path)
    assert (tmp_path / "summary.json").exists()


def test_an_empty_or_missing_folder_is_fine(tmp_path):
    prepare_out(tmp_path / "new" / "deep")
    prepare_out(tmp_path / "new" / "deep")  # and again: it is the demo's now
    assert (tmp_path / "new" / "deep" / MARKER).is_file()


def test_sound_score_rows_hits_and_silence():
    """Hit = a detection of the clip's label within 0.75 s after its onset; silence = outside onset..offset+1 s."""
    truth = [{"label": "siren", "onset": 1.0, "offset": 2.0}, {"label": "dog_bark", "onset": 5.0, "offset": 5.5},
             {"label": "car_horn", "onset": 9.0, "offset": 9.5}]
    det = [SimpleNamespace(label="siren", t=1.5),
           SimpleNamespace(label="siren", t=5.25),  # wrong label during dog_bark: shown, not a hit
           SimpleNamespace(label="car_horn", t=9.8),  # too late for a hit, still during the clip's tail
           SimpleNamespace(label="siren", t=14.0)]  # during silence
    s = score_detections(truth, det)
    assert (s["hits"], s["clips"], s["false_in_silence"]) == (1, 3, 1)
    assert [(r["detected"], r["latency_s"], r["hit"]) for r in s["rows"]] == [
        ("siren", 0.5, True), ("siren", None, False), ("car_horn", None, False)]
    # Rows from JSON (the benchmark's) score the same as events.
    assert score_detections(truth, [vars(d) for d in det]) == s


def test_teach_phase_sounds_come_from_two_unseen_families_and_the_playlist_truth_matches(tmp_path):
    """The teach phase's taught sound and its 'unknown' one are held-out families, and the truth
    written beside the playlist points at where the sounds really are."""
    from demo import teach
    from device.wavfile import read_wav
    from training.datasets.sound_world import family_kind, test_families

    label, takes, fourth, other = teach.sounds()
    assert label == f"my {family_kind(test_families()[0])}" and len(takes) == 3
    assert not np.allclose(takes[0], takes[1])  # three different takes, not one copied
    wav, truth = teach.playlist(fourth, other, label, tmp_path)
    audio, sr = read_wav(wav)
    assert [t["label"] for t in truth] == [label, "unknown"]
    for t in truth:
        inside = audio[int(t["onset"] * sr) : int(t["offset"] * sr)]
        before = audio[int((t["onset"] - 0.5) * sr) : int(t["onset"] * sr)]
        assert np.abs(inside).max() > 0.05 and np.abs(before).max() == 0.0
    assert json.loads(wav.with_suffix(".json").read_text())["events"] == truth


def test_teach_phase_is_skipped_with_one_line_for_a_model_without_embedding(tmp_path, capsys):
    from demo.driver import teach_phase
    from device.config import load_config

    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    if teach_has_embedding(cfg.sound.model):
        pytest.skip("the committed sound model has an embedding: the phase runs in the demo test")
    assert teach_phase(cfg, tmp_path / "teach") is None
    assert "skipping the teach phase" in capsys.readouterr().out and not (tmp_path / "teach").exists()


def teach_has_embedding(path):
    from demo.teach import has_embedding

    return has_embedding(path)
