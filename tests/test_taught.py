"""The taught-sound store: atomic, crash-safe, recomputed after a model update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from device.frontend import LogMelParams
from device.sound import taught as taught_mod
from device.sound.taught import CLASS_FILE, TaughtError, TaughtStore
from device.sound.teach import embedder, load_taught
from device.wavfile import read_wav
from taught_helpers import StandInModel, tone

pytestmark = pytest.mark.device_venv

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _add(store, label, model, freqs=(300, 305, 310), **kw):
    takes = [tone(f, 0.5) for f in freqs]
    proto, embs, _windows = embedder(model, LogMelParams(), -45.0)(takes)
    return store.add(label, takes, 16000, proto, embs, model.embedding_version, **kw)


def test_add_and_load_round_trip(tmp_path):
    m = StandInModel()
    store = TaughtStore(tmp_path / "taught")
    pic = tmp_path / "cow.png"
    pic.write_bytes(PNG)
    c = _add(store, "moo", m, mapping={"colour": "#8844ff", "note": 60}, picture=pic)
    (loaded,) = store.load()
    assert loaded.label == "moo" and loaded.takes == ("take-1.wav", "take-2.wav", "take-3.wav")
    assert loaded.embedding_version == "standin-1"
    assert np.allclose(loaded.prototype, c.prototype, atol=1e-6) and loaded.take_embeddings.shape == (3, 32)
    audio, rate = read_wav(loaded.folder / "take-2.wav")
    assert rate == 16000 and np.array_equal(audio, tone(305, 0.5))
    mapping = loaded.class_mapping()
    assert mapping.note == 60 and mapping.colour == pytest.approx((0x88 / 255, 0x44 / 255, 1.0))
    assert mapping.picture == str(loaded.folder / "picture.png") and Path(mapping.picture).read_bytes() == PNG
    assert [p.name for p in store.root.iterdir()] == ["moo"]  # nothing hidden left behind


def test_a_failure_between_writes_leaves_what_was_taught_and_nothing_new(tmp_path, monkeypatch):
    m = StandInModel()
    store = TaughtStore(tmp_path)
    _add(store, "moo", m)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real = taught_mod.write_atomic

    def fail_on_class_file(path, data, **kw):
        if Path(path).name == CLASS_FILE:
            raise OSError(28, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(taught_mod, "write_atomic", fail_on_class_file)
    with pytest.raises(TaughtError, match="meow.*No space left"):
        _add(store, "meow", m, freqs=(700, 710, 690))
    with pytest.raises(TaughtError, match="No space left"):
        _add(store, "moo", m, freqs=(700, 710, 690), replace=True)  # a replacement that fails keeps the old
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before and store.labels() == ["moo"]


def test_killed_mid_enrolment_loses_nothing_already_taught(tmp_path):
    m = StandInModel()
    store = TaughtStore(tmp_path)
    _add(store, "moo", m)
    before = (tmp_path / "moo" / CLASS_FILE).read_bytes()
    # A second process is SIGKILLed the moment it writes the new class's class.json: takes written,
    # class not yet renamed into place (the worst moment of a power cut).
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from pathlib import Path
        from device.sound import taught
        from device.sound.taught import TaughtStore
        from taught_helpers import StandInModel, tone
        real = taught.write_atomic
        def killer(path, data, **kw):
            if Path(path).name == "class.json":
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, data, **kw)
        taught.write_atomic = killer
        TaughtStore({str(tmp_path)!r}).add("meow", [tone(700, 0.5)] * 3, 16000, None, None, "v")
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".staging-") for p in tmp_path.iterdir())  # it died mid-write
    assert store.labels() == ["moo"] and (tmp_path / "moo" / CLASS_FILE).read_bytes() == before
    assert len(store.read_takes(store.get("moo"))) == 3


def test_a_replacement_cut_between_its_two_renames_gets_the_old_class_back(tmp_path):
    store = TaughtStore(tmp_path)
    _add(store, "moo", StandInModel())
    os.rename(tmp_path / "moo", tmp_path / ".old-moo.0123abcd")  # the old one moved away, the new never arrived
    assert store.labels() == []  # listing only reads: a teach may still be under way
    assert [c.label for c in store.load()] == ["moo"] and store.get("moo").takes  # a CLI's load recovers


def test_stale_staging_folders_are_removed_fresh_ones_kept(tmp_path):
    store = TaughtStore(tmp_path)
    stale, fresh = tmp_path / ".staging-old", tmp_path / ".staging-new"
    stale.mkdir(), fresh.mkdir()
    os.utime(stale, (0, 0))
    store.load()
    assert not stale.exists() and fresh.exists()


def test_model_version_change_recomputes_prototypes_from_the_takes(tmp_path):
    old, new = StandInModel(version="v1", seed=1), StandInModel(version="v2", seed=2)
    store = TaughtStore(tmp_path)
    c1 = _add(store, "moo", old)
    (c2,) = load_taught(store, new, LogMelParams(), -45.0)
    assert c2.embedding_version == "v2"
    expected, *_ = embedder(new, LogMelParams(), -45.0)([tone(f, 0.5) for f in (300, 305, 310)])
    assert np.allclose(c2.prototype, expected, atol=1e-5) and not np.allclose(c2.prototype, c1.prototype, atol=0.1)
    saved = json.loads((tmp_path / "moo" / CLASS_FILE).read_text())
    assert saved["embedding_version"] == "v2" and np.allclose(saved["prototype"], expected, atol=1e-5)
    calls = new.calls
    load_taught(store, new, LogMelParams(), -45.0)  # same version now: nothing recomputed
    assert new.calls == calls
    assert load_taught(store, StandInModel(embedding=False), LogMelParams(), -45.0) == []


def test_a_sound_forgotten_while_its_prototype_is_recomputed_stays_forgotten(tmp_path):
    """After a model update the box recomputes every prototype (seconds); `forget moo` from the CLI in
    that gap must not be undone by the rewrite of moo's class.json."""
    old, new = StandInModel(version="v1", seed=1), StandInModel(version="v2", seed=2)
    store = TaughtStore(tmp_path)
    _add(store, "moo", old)
    _add(store, "meow", old, freqs=(500, 505, 510))
    embed = embedder(new, LogMelParams(), -45.0)

    def embed_while_the_cli_forgets(takes):
        if TaughtStore(tmp_path).labels() == ["meow", "moo"]:
            TaughtStore(tmp_path).forget("meow")  # the parent, at the CLI, during the first recompute
        return embed(takes)

    kept = store.refresh("v2", embed_while_the_cli_forgets)
    assert [c.label for c in kept] == ["moo"]
    assert store.labels() == ["moo"] and not (tmp_path / "meow").exists()


def test_a_taught_sound_named_like_a_builtin_class_is_left_out_not_a_box_that_cannot_start(tmp_path, caplog):
    """A sound model trained on other classes arrives (or a rename clashes): the box still starts, without it."""
    import logging

    from device.config import TeachConfig
    from device.sound.teach import build_decider
    from device.sound.taught_watch import current_classes

    model = StandInModel()
    store = TaughtStore(tmp_path)
    _add(store, "moo", model)
    _add(store, "dog_bark", model, freqs=(500, 505, 510))  # taught under a name the new model has built in
    with caplog.at_level(logging.WARNING, logger="saysee"):
        classes = load_taught(store, model, LogMelParams(), -45.0)
    warned = [r.getMessage() for r in caplog.records if "dog_bark" in r.getMessage()]
    assert len(warned) == 1 and 'python -m device taught "dog_bark" --rename NEW' in warned[0]
    assert [c.label for c in classes] == ["moo"]
    assert build_decider(model, TeachConfig(), classes).taught == ["moo"]
    # The running box's folder watcher reads them the same way.
    assert [c.label for c in current_classes(store, model.embedding_version, model.labels)] == ["moo"]
    assert store.labels() == ["dog_bark", "moo"]  # nothing deleted: renaming it brings it back


def test_rename_update_forget(tmp_path):
    store = TaughtStore(tmp_path)
    _add(store, "sound 1", StandInModel(), mapping={"colour": "#ff0000"})
    c = store.rename("sound 1", "moo")
    assert store.labels() == ["moo"] and c.folder == tmp_path / "moo" and store.get("moo").label == "moo"
    store.update("moo", mapping={"note": 62, "colour": None})
    assert store.get("moo").mapping == {"note": 62}
    store.forget("moo")
    assert store.labels() == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(TaughtError, match="no taught sound called 'moo'"):
        store.forget("moo")


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 65, "bad\nname"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(TaughtError, match="name uses letters"):
        TaughtStore(tmp_path).add(name, [tone(300)], 16000, None, None, None)


def test_a_damaged_class_is_reported_and_skipped(tmp_path):
    store = TaughtStore(tmp_path)
    _add(store, "moo", StandInModel())
    (tmp_path / "meow").mkdir()
    (tmp_path / "meow" / CLASS_FILE).write_text("{not json")
    problems = []
    assert [c.label for c in store.load(on_error=problems.append)] == ["moo"]
    assert len(problems) == 1 and "meow" in problems[0] and "damaged" in problems[0]
    store.forget("meow")  # what the report tells the user to do must work on the damaged one
    assert store.labels() == ["moo"] and not (tmp_path / "meow").exists()


def test_window_embeddings_round_trip_and_an_older_class_gets_them_at_refresh(tmp_path):
    m = StandInModel()
    store = TaughtStore(tmp_path)
    takes = [tone(f, 0.5) for f in (300, 305, 310)]
    proto, embs, windows = embedder(m, LogMelParams(), -45.0)(takes)
    store.add("moo", takes, 16000, proto, embs, m.embedding_version, window_embeddings=windows)
    (loaded,) = store.load()
    assert np.allclose(loaded.window_embeddings, windows, atol=1e-4)
    assert np.allclose(loaded.prototypes()[0], proto, atol=1e-6) and len(loaded.prototypes()) == 1 + len(windows)
    # A class.json from before window embeddings (same format, no key): loads with its mean only...
    path = tmp_path / "moo" / CLASS_FILE
    data = json.loads(path.read_text())
    del data["window_embeddings"]
    path.write_text(json.dumps(data))
    (old,) = store.load()
    assert old.window_embeddings is None and len(old.prototypes()) == 1
    # ...and the next start gives it window prototypes from its saved takes, written back.
    (fresh,) = load_taught(store, m, LogMelParams(), -45.0)
    assert np.allclose(fresh.window_embeddings, windows, atol=1e-4)
    assert "window_embeddings" in json.loads(path.read_text())


def test_damaged_window_embeddings_are_one_line_naming_the_file(tmp_path):
    store = TaughtStore(tmp_path)
    _add(store, "moo", StandInModel())
    path = tmp_path / "moo" / CLASS_FILE
    data = json.loads(path.read_text())
    data["window_embeddings"] = [[0.1, 0.2]]  # not the prototype's 32 dims
    path.write_text(json.dumps(data))
    with pytest.raises(TaughtError, match="window_embeddings") as e:
        store.get("moo")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_rename_cut_before_class_json_is_rewritten_keeps_the_sound_reachable(tmp_path, monkeypatch, caplog):
    """The folder's name is the label: a full card after the folder moved loses nothing and strands nothing."""
    store = TaughtStore(tmp_path)
    _add(store, "sound 1", StandInModel())

    def full(path, data, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(taught_mod, "write_atomic", full)
    c = store.rename("sound 1", "moo")
    assert c.label == "moo" and "still says 'sound 1'" in caplog.text
    assert store.labels() == ["moo"] and store.get("moo").label == "moo"
    monkeypatch.undo()
    store.forget("moo")
    assert store.labels() == [] and list(tmp_path.iterdir()) == []


def test_storage_errors_of_rename_update_and_forget_are_one_line(tmp_path, monkeypatch):
    store = TaughtStore(tmp_path)
    _add(store, "moo", StandInModel())

    def denied(*a, **k):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(taught_mod.os, "rename", denied)
    monkeypatch.setattr(taught_mod, "write_atomic", denied)
    for change in (lambda: store.rename("moo", "cow"), lambda: store.forget("moo"),
                   lambda: store.update("moo", mapping={"note": 60})):
        with pytest.raises(taught_mod.TaughtStorageError, match=r"moo: could not change the taught sound "
                                                                r"\(Operation not permitted\)"):
            change()
    monkeypatch.undo()
    assert store.labels() == ["moo"] and "note" not in store.get("moo").mapping


def test_a_sound_taught_meanwhile_is_never_replaced_unasked(tmp_path, monkeypatch):
    """Two teaches of one name at once (the CLI and the button): the second to arrive is refused, the
    first one's sound stays."""
    store = TaughtStore(tmp_path)
    real = taught_mod.write_atomic
    raced = []

    def other_teach_lands_first(path, data, **kw):
        if not raced and path.name == CLASS_FILE:
            raced.append(True)
            _add(TaughtStore(tmp_path), "moo", StandInModel(), mapping={"note": 60})
        return real(path, data, **kw)

    monkeypatch.setattr(taught_mod, "write_atomic", other_teach_lands_first)
    with pytest.raises(TaughtError, match="was taught meanwhile"):
        _add(store, "moo", StandInModel(), mapping={"note": 72})
    monkeypatch.undo()
    assert store.labels() == ["moo"] and store.get("moo").mapping == {"note": 60}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moo"]  # no staging folder left


def test_a_look_with_another_model_rewrites_nothing(tmp_path):
    """classify --model OTHER recomputes prototypes in memory only: the box's own prototypes stay."""
    store = TaughtStore(tmp_path)
    _add(store, "moo", StandInModel(version="v1", seed=1))
    before = (tmp_path / "moo" / CLASS_FILE).read_bytes()
    (c,) = load_taught(store, StandInModel(version="v2", seed=2), LogMelParams(), -45.0, recover=False, save=False)
    assert c.embedding_version == "v2" and (tmp_path / "moo" / CLASS_FILE).read_bytes() == before


def test_a_long_take_brings_no_more_window_prototypes_than_a_short_one(tmp_path):
    """Window prototypes count near-by-chance matches; their number per take is what the decision was tuned on."""
    from device.sound.teach import MAX_TAKE_WINDOWS, embed_take_windows, onset_windows

    m = StandInModel()
    short = embed_take_windows(m, tone(300, 3.0), LogMelParams(), -45.0)[2]
    long = embed_take_windows(m, tone(300, 60.0), LogMelParams(), -45.0)[2]
    onsets = len(onset_windows(tone(300, 3.0), LogMelParams(), -45.0))
    assert len(short) - onsets <= MAX_TAKE_WINDOWS  # a button-length take is not cut
    assert len(long) - onsets == MAX_TAKE_WINDOWS
