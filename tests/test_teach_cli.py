"""`python -m device teach / taught / forget` and `classify --taught`: the CLI round trip and every refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from device.__main__ import main
from device.sound import classify as classify_mod
from device.sound import teach as teach_mod
from device.wavfile import write_wav
from taught_helpers import StandInModel, join, silence, tone

pytestmark = pytest.mark.device_venv

ROOT = Path(__file__).resolve().parent.parent
OPEN_SET = {"min_confidence": 0.5, "taught_max_distance": 0.15, "max_centre_distance": 0.15}
DOG = 110 * 1.5 ** 3  # the stand-in's dog_bark reference sound


@pytest.fixture
def standin(monkeypatch):
    """Every CLI command loads the stand-in two-output model; no config file is read."""
    model = StandInModel(open_set=OPEN_SET)
    monkeypatch.setenv("SAYSEE_CONFIG", "/nonexistent/saysee.toml")
    monkeypatch.setattr(teach_mod, "load_model", lambda path, num_threads=1: model)
    monkeypatch.setattr(classify_mod, "Model", lambda path, expected_frontend=None: model)
    return model


def wav(tmp_path, name, audio, rate=16000):
    return str(write_wav(tmp_path / name, audio, rate))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_teach_then_classify_prints_the_taught_label(tmp_path, capsys, standin):
    taught = str(tmp_path / "taught")
    files = [wav(tmp_path, f"moo{i}.wav", join(silence(0.2), tone(f, 0.6), silence(0.2)))
             for i, f in enumerate((296, 300, 304))]
    rc, out, err = run(capsys, "teach", "moo", *files, "--taught", taught, "--note", "60")
    assert rc == 0, err
    assert "taught 'moo' from 3 take(s)" in out
    test = wav(tmp_path, "test.wav", join(silence(0.5), tone(302, 1.5), silence(0.5)))
    rc, out, err = run(capsys, "classify", test, "--taught", taught)
    assert rc == 0, err
    tops = [line.split()[1] for line in out.splitlines()[1:]]
    assert tops[:2] == ["moo", "moo"]
    other = wav(tmp_path, "other.wav", tone(1500, 2.0, vibrato=0.2))  # 1.00 gun_shot to the softmax, far from it
    rc, out, _ = run(capsys, "classify", other, "--taught", taught)
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["unknown", "unknown"]
    rc, out, _ = run(capsys, "taught", "--taught", taught)
    assert out.startswith("moo: 3 takes") and "note 60" in out


def test_one_file_with_three_takes_is_split_at_the_silences(tmp_path, capsys, standin):
    f = wav(tmp_path, "moos.wav", join(silence(0.3), tone(300, 0.5), silence(0.8), tone(304, 0.4),
                                       silence(0.8), tone(298, 0.6), silence(0.3)))
    rc, out, err = run(capsys, "teach", "moo", f, "--taught", str(tmp_path / "t"))
    assert rc == 0, err and "from 3 take(s)" in out
    takes = sorted((tmp_path / "t" / "moo").glob("take-*.wav"))
    assert len(takes) == 3
    lengths = [wave.open(str(p)).getnframes() / 16000 for p in takes]
    assert lengths == pytest.approx([0.6, 0.5, 0.7], abs=0.03)  # each take plus 0.05 s either side


def _clipped():
    x = tone(300, 0.6, amp=1.0).astype(np.int32) * 3
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("make, rate, words", [
    (lambda: silence(1.0), 16000, "silent"),
    (lambda: tone(300, 0.6, amp=0.002), 16000, "below the -45 dBFS gate"),
    (lambda: tone(300, 0.05), 16000, "only 0.05 s long"),
    (_clipped, 16000, "clipped"),
    (lambda: tone(300, 0.6)[::2], 8000, "recorded at 8000 Hz"),
])
def test_bad_takes_get_one_line_naming_the_file(tmp_path, capsys, standin, make, rate, words):
    good = [wav(tmp_path, f"g{i}.wav", tone(300 + i, 0.5)) for i in range(2)]
    bad = wav(tmp_path, "bad take.wav", make(), rate)
    rc, out, err = run(capsys, "teach", "moo", *good, bad, "--taught", str(tmp_path / "t"))
    assert rc == 2
    assert err.count("\n") == 1 and "bad take.wav" in err and words in err, err
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").iterdir())


def test_a_take_unlike_the_others_is_refused_unless_forced(tmp_path, capsys, standin):
    files = [wav(tmp_path, "a.wav", tone(300, 0.6)), wav(tmp_path, "b.wav", tone(304, 0.6)),
             wav(tmp_path, "odd.wav", tone(700, 0.6, vibrato=0.05))]
    rc, out, err = run(capsys, "teach", "moo", *files, "--taught", str(tmp_path / "t"))
    assert rc == 2 and "take 3 (" in out and "odd.wav) does not sound like the others" in out
    assert "not taught" in err and "--force" in err and not (tmp_path / "t" / "moo").exists()
    rc, out, err = run(capsys, "teach", "moo", *files, "--taught", str(tmp_path / "t"), "--force")
    assert rc == 0 and (tmp_path / "t" / "moo" / "class.json").is_file()


def test_the_take_check_uses_its_own_calibrated_limit(tmp_path, capsys, monkeypatch):
    # taught_max_distance (0.15) would flag the odd take; the model's take_max_distance is what counts.
    model = StandInModel(open_set={**OPEN_SET, "take_max_distance": 1.9})
    monkeypatch.setenv("SAYSEE_CONFIG", "/nonexistent/saysee.toml")
    monkeypatch.setattr(teach_mod, "load_model", lambda path, num_threads=1: model)
    files = [wav(tmp_path, "a.wav", tone(300, 0.6)), wav(tmp_path, "b.wav", tone(304, 0.6)),
             wav(tmp_path, "odd.wav", tone(700, 0.6, vibrato=0.05))]
    rc, out, err = run(capsys, "teach", "moo", *files, "--taught", str(tmp_path / "t"))
    assert "does not sound like the others" not in out
    assert rc == 0 and (tmp_path / "t" / "moo" / "class.json").is_file()


def test_a_sound_the_box_knows_is_refused_builtin_and_taught(tmp_path, capsys, standin):
    t = str(tmp_path / "t")
    dog = [wav(tmp_path, f"d{i}.wav", tone(DOG * (1 + 0.01 * i), 0.6)) for i in range(3)]
    rc, out, err = run(capsys, "teach", "woof", *dog, "--taught", t)
    assert rc == 2 and "this sounds like dog_bark" in err
    moo = [wav(tmp_path, f"m{i}.wav", tone(300 + 4 * i, 0.6)) for i in range(3)]
    assert run(capsys, "teach", "moo", *moo, "--taught", t)[0] == 0
    again = [wav(tmp_path, f"n{i}.wav", tone(302 + 3 * i, 0.5)) for i in range(3)]
    rc, out, err = run(capsys, "teach", "cow", *again, "--taught", t)
    assert rc == 2 and "this sounds like moo" in err
    rc, out, err = run(capsys, "teach", "moo", *again, "--taught", t)
    assert rc == 2 and "'moo' is taught already; --force replaces it" in err
    rc, out, err = run(capsys, "teach", "dog_bark", *again, "--taught", t, "--force")
    assert rc == 2 and "built-in class name" in err


def test_rename_picture_and_forget_through_the_cli(tmp_path, capsys, standin):
    t = str(tmp_path / "t")
    files = [wav(tmp_path, f"m{i}.wav", tone(300 + 4 * i, 0.6)) for i in range(3)]
    assert run(capsys, "teach", "sound 1", *files, "--taught", t)[0] == 0
    pic = tmp_path / "cow.png"
    pic.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    rc, out, err = run(capsys, "taught", "sound 1", "--rename", "moo", "--picture", str(pic), "--taught", t)
    assert rc == 0, err
    assert out.startswith("moo: 3 takes") and "picture" in out
    rc, out, _ = run(capsys, "forget", "moo", "--taught", t)
    assert rc == 0 and run(capsys, "taught", "--taught", t)[1].startswith("no taught sounds")
    rc, _, err = run(capsys, "forget", "moo", "--taught", t)
    assert rc == 2 and err.count("\n") == 1 and "no taught sound called 'moo'" in err


def test_record_takes_from_the_sim_mic(tmp_path, capsys, standin, monkeypatch):
    playlist = wav(tmp_path, "mic.wav", join(*(part for f in (300, 303, 297, 301) for part in
                                               (silence(0.6), tone(f, 0.6), silence(0.3)))))
    # countdown 0.5 s + take 1.0 s: each take window holds one 0.6 s tone
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[teach]\ntake_s = 1.0\ncountdown_s = 0.5\ndir = "{tmp_path / "t"}"\n')
    rc, out, err = run(capsys, "teach", "moo", "--record", "3", "--sim", playlist, "--config", str(cfg))
    assert rc == 0, err
    assert out.count("get ready") == 3 and "taught 'moo' from 3 take(s)" in out
    assert len(list((tmp_path / "t" / "moo").glob("take-*.wav"))) == 3


def test_the_committed_single_output_model_refuses_to_teach(tmp_path):
    meta = json.loads((ROOT / "models" / "sound.json").read_text())
    if "embedding" in meta.get("outputs", []):
        pytest.skip("the committed model has an embedding output")
    write_wav(tmp_path / "a.wav", tone(300, 0.6), 16000)
    env = dict(os.environ, SAYSEE_CONFIG=str(tmp_path / "none.toml"))
    r = subprocess.run([sys.executable, "-m", "device", "teach", "moo", str(tmp_path / "a.wav"),
                        "--taught", str(tmp_path / "t")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == \
        "saysee: error: models/sound.tflite has no embedding output: run make models"
    assert not (tmp_path / "t").exists()


def test_cli_round_trip_in_subprocesses_with_the_real_two_output_model(tmp_path):
    meta = json.loads((ROOT / "models" / "sound.json").read_text())
    if "embedding" not in meta.get("outputs", []):
        pytest.skip("the committed model has no embedding output yet (make models)")
    files = []
    for i, f in enumerate((300, 304, 296)):
        files.append(str(write_wav(tmp_path / f"moo{i}.wav", join(silence(0.2), tone(f, 0.6, vibrato=0.02),
                                                                   silence(0.2)), 16000)))
    env = dict(os.environ, SAYSEE_CONFIG=str(tmp_path / "none.toml"))
    t = str(tmp_path / "t")
    r = subprocess.run([sys.executable, "-m", "device", "teach", "moo", *files, "--taught", t, "--force"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    test = write_wav(tmp_path / "test.wav", join(silence(0.3), tone(302, 1.2, vibrato=0.02), silence(0.3)), 16000)
    r = subprocess.run([sys.executable, "-m", "device", "classify", str(test), "--taught", t],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split()[1] == "moo"


def sim_box(tmp_path, playlist, taught_dir, monkeypatch, model):
    """The demo config on sim backends fed by ``playlist`` as fast as possible, picture cards, ``model``
    standing in for the committed one (the builder loads it)."""
    import dataclasses

    from device.config import PROJECT_ROOT, load_config
    from device.runtime import builder

    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    monkeypatch.setattr(builder, "load_models", lambda cfg: (model, None))
    return dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, status_file=str(tmp_path / "status.json")),
                               mic=dataclasses.replace(cfg.mic, playlist=(playlist,), realtime=False),
                               teach=dataclasses.replace(cfg.teach, dir=str(taught_dir)),
                               display=dataclasses.replace(cfg.display, picture_mode="cards"))


def test_run_hears_a_taught_sound_and_an_unknown_one(tmp_path, capsys, standin, monkeypatch):
    """teach through the CLI, then the box (build_app on the sim backends) shows the taught sound and 'unknown'."""

    from device.runtime import builder
    from device.sound.pipeline import ClassDetected

    t = tmp_path / "t"
    files = [wav(tmp_path, f"m{i}.wav", tone(300 + 4 * i, 0.6)) for i in range(3)]
    assert run(capsys, "teach", "moo", *files, "--taught", str(t), "--colour", "#8844ff")[0] == 0
    playlist = wav(tmp_path, "mic.wav", join(silence(0.5), tone(302, 1.0), silence(1.5),
                                             tone(1500, 1.0, vibrato=0.2), silence(1.5)))
    cfg = sim_box(tmp_path, playlist, t, monkeypatch, standin)
    events = []
    app, cleanup = builder.build_app(cfg, sim=True, out_dir=tmp_path / "out", on_event=events.append)
    try:
        app.run()
    finally:
        cleanup()
    assert [e.label for e in events if isinstance(e, ClassDetected)] == ["moo", "unknown"]
    leds = [s for s in app.dev.leds.timeline() if s.brightness > 0]
    # Lit only in the taught colour: 'unknown' keeps the LED dark.
    assert leds and all(s.rgb == pytest.approx((0x88 / 255, 0x44 / 255, 1.0)) for s in leds)
    assert json.loads((tmp_path / "status.json").read_text())["counters"]["unknown"] == 1


def test_a_sound_taught_with_the_cli_while_the_box_runs_counts_without_a_restart(tmp_path, capsys, standin,
                                                                                monkeypatch):

    from device.runtime import builder
    from device.sound.pipeline import ClassDetected

    t = tmp_path / "t"
    files = [wav(tmp_path, f"m{i}.wav", tone(300 + 4 * i, 0.6)) for i in range(3)]
    # The same sound twice, 3 s apart: unknown the first time; taught (by the CLI, as the box runs) in between.
    playlist = wav(tmp_path, "mic.wav", join(silence(0.5), tone(302, 1.0), silence(3.0), tone(302, 1.0),
                                             silence(1.5)))
    cfg = sim_box(tmp_path, playlist, t, monkeypatch, standin)
    events = []

    def on_event(e):
        events.append(e)
        if isinstance(e, ClassDetected) and e.label == "unknown" and not t.exists():
            assert main(["teach", "moo", *files, "--taught", str(t), "--colour", "#8844ff"]) == 0

    app, cleanup = builder.build_app(cfg, sim=True, out_dir=tmp_path / "out", on_event=on_event)
    try:
        app.run()
    finally:
        cleanup()
    assert [e.label for e in events if isinstance(e, ClassDetected)] == ["unknown", "moo"]
    # Forgetting works the same way: the store no longer has it, the next reload drops it.
    assert main(["forget", "moo", "--taught", str(t)]) == 0
    from device.sound.taught import TaughtStore
    from device.sound.taught_watch import reload_taught

    assert reload_taught(app.sound_model, app.responder, TaughtStore(t)) and "moo" not in app.sound_model.labels


def test_the_running_box_never_runs_crash_recovery_on_the_taught_folder(tmp_path):
    from device.sound.taught import TaughtStore
    from device.sound.taught_watch import TaughtWatcher, current_classes

    store = TaughtStore(tmp_path / "t")
    store.add("moo", [tone(300, 0.6)], 16000, np.ones(4, np.float32) / 2, None, "v1")
    watcher = TaughtWatcher(tmp_path / "t", interval_s=1.0)
    # A CLI half-way through replacing 'moo': the old class moved aside, the new one not yet in place.
    (tmp_path / "t" / "moo").rename(tmp_path / "t" / ".old-moo-1")
    assert watcher.poll(0.0) is True and watcher.poll(0.5) is False  # a change, seen once; polls are spaced
    assert current_classes(store, "v1") == []
    assert (tmp_path / "t" / ".old-moo-1").is_dir() and not (tmp_path / "t" / "moo").exists()  # left alone


FIXTURE = ROOT / "tests" / "data" / "two_output.tflite"  # tiny untrained int8 model, named outputs


def test_cli_round_trip_in_subprocesses_through_a_real_two_output_tflite(tmp_path):
    """teach then classify as two processes, through the TFLite runtime: named outputs, int8, the embedding."""
    files = [str(write_wav(tmp_path / f"moo{i}.wav", join(silence(0.2), tone(f, 0.6, amp=a), silence(0.2)), 16000))
             for i, (f, a) in enumerate(((300, 0.3), (304, 0.2), (297, 0.4)))]
    env = dict(os.environ, SAYSEE_CONFIG=str(tmp_path / "none.toml"))
    t = str(tmp_path / "t")

    def device(*argv):
        return subprocess.run([sys.executable, "-m", "device", *argv, "--model", str(FIXTURE)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    r = device("teach", "moo", *files, "--taught", t)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "t" / "moo" / "class.json").read_text())
    assert saved["embedding_version"] == "test-fixture-1" and len(saved["prototype"]) == 16
    test = write_wav(tmp_path / "test.wav", join(silence(0.3), tone(302, 1.2), silence(0.3),
                                                 tone(1500, 1.4, vibrato=0.2)), 16000)
    r = device("classify", str(test), "--taught", t)
    assert r.returncode == 0, r.stderr
    tops = [line.split()[1] for line in r.stdout.splitlines()[1:]]
    assert tops == ["moo", "unknown", "unknown"], r.stdout


def test_a_stereo_take_teaches_the_same_sound_as_its_mono_mix(tmp_path):
    """Phones record stereo: the channels are mixed at the file's scale (the int mean was once left
    unscaled, so a stereo take came out as a full-scale square wave)."""
    from device.config import TeachConfig
    from device.frontend import LogMelParams, to_float
    from device.sound.teach import read_takes

    mono = join(silence(0.3), tone(300, 0.6, amp=0.3), silence(0.3))
    stereo = np.stack([mono, mono], axis=1)
    assert np.array_equal(to_float(stereo), to_float(mono))
    args = LogMelParams(), TeachConfig(), -45.0
    (one,) = read_takes(wav(tmp_path, "mono.wav", mono), *args)
    (two,) = read_takes(wav(tmp_path, "stereo.wav", stereo), *args)
    assert np.array_equal(one.audio, two.audio) and np.abs(two.audio).max() < 0.35 * 32768


def test_a_long_high_rate_stereo_take_file_is_read_in_flat_memory(tmp_path):
    """A 90 s, 48 kHz stereo file (the most a take file may be is 120 s): read block by block, memory holds
    the takes at 16 kHz, not copies of the whole file (its int32 and float64 copies peaked at 7x its size)."""
    import tracemalloc

    from device.config import TeachConfig
    from device.frontend import LogMelParams
    from device.sound.teach import read_takes

    rate = 48000
    mono = np.repeat(join(*[join(silence(9.0), tone(300 + 4 * i, 0.6)) for i in range(9)], silence(3.6)), 3)
    path = wav(tmp_path, "long.wav", np.stack([mono, mono], axis=1), rate)
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        takes = read_takes(path, LogMelParams(), TeachConfig(), -45.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(takes) == 9
    assert peak < 1.5 * size, f"peak {peak / 1e6:.1f} MB reading a {size / 1e6:.1f} MB file"


def test_after_a_model_update_each_recomputed_sound_asks_systemd_for_more_start_time(tmp_path, capsys, standin,
                                                                                     monkeypatch):
    """Prototypes are recomputed before READY=1; a box with many taught sounds must not be killed by the
    unit's TimeoutStartSec (and rolled back by a deploy) for it."""
    from device.runtime import builder
    from test_notify import FakeSystemd

    t = tmp_path / "t"
    for label, f in (("moo", 300), ("meow", 700)):
        files = [wav(tmp_path, f"{label}{i}.wav", tone(f + 4 * i, 0.6)) for i in range(3)]
        assert run(capsys, "teach", label, *files, "--taught", str(t))[0] == 0
    updated = StandInModel(version="v2", seed=2, open_set=OPEN_SET)  # the deployed model's new embedding
    cfg = sim_box(tmp_path, wav(tmp_path, "mic.wav", silence(0.5)), t, monkeypatch, updated)
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    try:
        app, cleanup = builder.build_app(cfg, sim=True, out_dir=tmp_path / "out")
        cleanup()
        sent = systemd.messages()
    finally:
        systemd.close()
    extend = f"EXTEND_TIMEOUT_USEC={int(builder.RECOMPUTE_EXTEND_S * 1e6)}"
    assert sent.count(extend) == 2, sent
    assert sorted(app.sound_model.decider.taught) == ["meow", "moo"]


def test_a_full_box_refuses_a_new_sound_in_one_line_but_replaces_a_known_one(tmp_path, capsys, standin):
    """[teach] max_sounds caps the taught folder: one more is refused (no --force for it), nothing is lost,
    and re-teaching a sound it already keeps still works."""
    taught = tmp_path / "taught"
    cfg = tmp_path / "box.toml"
    cfg.write_text(f'[teach]\ndir = "{taught}"\nmax_sounds = 1\n')
    moo = [wav(tmp_path, f"moo{i}.wav", tone(f, 0.6)) for i, f in enumerate((296, 300, 304))]
    peep = [wav(tmp_path, f"peep{i}.wav", tone(f, 0.6)) for i, f in enumerate((696, 700, 704))]
    assert run(capsys, "teach", "moo", *moo, "--config", str(cfg))[0] == 0
    before = (taught / "moo" / "class.json").read_bytes()
    rc, out, err = run(capsys, "teach", "peep", *peep, "--config", str(cfg), "--force")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert str(taught) in err and "max_sounds" in err and "forget" in err
    assert sorted(p.name for p in taught.iterdir()) == ["moo"]
    assert (taught / "moo" / "class.json").read_bytes() == before
    rc, out, err = run(capsys, "teach", "moo", *moo, "--config", str(cfg), "--force")
    assert rc == 0, err
    assert run(capsys, "forget", "moo", "--config", str(cfg))[0] == 0
    assert run(capsys, "teach", "peep", *peep, "--config", str(cfg))[0] == 0
