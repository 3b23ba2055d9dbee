"""The many-looks marimba renderer and the evaluation look written independently of it."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest

from training.datasets import marimba_eval_look as ev
from training.datasets import marimba_looks as ml
from training.datasets.marimba_io import load_recording

SHORT = ml.LookConfig(seconds=2.0)
BOX = np.array(ml.BOX_CORNERS)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 map taking 4 src points to 4 dst points (what a rectifier computes from the corners)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return np.append(np.linalg.solve(np.array(rows, float), np.array(rhs, float)), 1.0).reshape(3, 3)


def apply(Hm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.hstack([pts, np.ones((len(pts), 1))]) @ Hm.T
    return q[:, :2] / q[:, 2:3]


def same_notes(a, b) -> bool:
    """Equal (onset, midi, velocity) lists, onsets to notes.csv's microsecond."""
    return len(a) == len(b) and all(abs(x[0] - y[0]) < 2e-6 and x[1:] == y[1:] for x, y in zip(a, b))


def test_families_split_into_train_and_held_out():
    assert set(ml.TRAIN_FAMILIES).isdisjoint(ml.HELDOUT_FAMILIES)
    assert set(ml.TRAIN_FAMILIES) | set(ml.HELDOUT_FAMILIES) == set(ml.FAMILIES)
    assert 2 <= len(ml.HELDOUT_FAMILIES) <= 3 and len(ml.TRAIN_FAMILIES) >= 6
    for family in ml.FAMILIES:
        assert set(ml.family_spec(family)) == set(ml.BASE)  # no typo'd parameter names
    # A held-out family brings something no training family has (here: metal bars).
    assert all("metal" not in ml.family_spec(f)["material"] for f in ml.TRAIN_FAMILIES)
    with pytest.raises(ValueError, match="unknown look family"):
        ml.family_spec("velvet")


def test_deterministic_by_seed():
    a, b = ml.render_look(4, "rainbow-toy", SHORT), ml.render_look(4, "rainbow-toy", SHORT)
    c = ml.render_look(5, "rainbow-toy", SHORT)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) and a.events == b.events
    assert a.camera == b.camera and a.camera["look_family"] == "rainbow-toy"
    assert not np.array_equal(a.frames[0], c.frames[0]) and a.camera["corners"] != c.camera["corners"]
    d = ml.render_look(4, None, ml.LookConfig(seconds=0.2))
    assert d.camera["look_family"] == ml.TRAIN_FAMILIES[4 % len(ml.TRAIN_FAMILIES)]


def test_quick_repeats_of_one_bar_are_added_to_the_score():
    cfg = ml.LookConfig(seconds=30.0, repeat_probability=0.3)
    from training.datasets.marimba_synth import _score

    base = _score(np.random.default_rng(1), cfg.synth())
    same = ml._add_repeats(np.random.default_rng(2), base, ml.LookConfig(seconds=30.0, repeat_probability=0.0))
    assert [[(s.t, s.bar) for s in m] for m in same] == [[(s.t, s.bar) for s in m] for m in base]
    more = ml._add_repeats(np.random.default_rng(2), base, cfg)
    quick = 0
    for strikes in more:
        t = np.array([s.t for s in strikes])
        assert np.all(np.diff(t) >= 0.12 - 1e-9) and t[-1] <= cfg.seconds - 0.35
        quick += sum(a.bar == b.bar and b.t - a.t <= 0.2 + 1e-9 for a, b in itertools.pairwise(strikes))
    assert quick >= 5


@pytest.mark.parametrize("family", list(ml.FAMILIES))
def test_every_family_renders(family):
    v = ml.render_look(7, family, ml.LookConfig(seconds=1.0))
    assert v.frames.shape == (30, 96, 160) and v.frames.dtype == np.uint8
    assert len(v.audio) == 48000 and v.frames.std() > 3
    assert np.abs(np.diff(v.frames.astype(np.int16), axis=0)).mean() > 0.05  # mallets move, noise varies
    corners = np.array(v.camera["corners"])
    assert corners.shape == (4, 2)


@pytest.mark.parametrize("size", [(96, 160), (240, 320)])
def test_true_corners_are_where_the_bars_are(size):
    """Through a homography from the stored corners alone, every bar centre lands on a bar pixel."""
    cfg = ml.LookConfig(seconds=1.0, height=size[0], width=size[1])
    n = len(cfg.notes)
    for family in ml.FAMILIES:
        for seed in range(3):
            _, scene = ml._setup(seed, family, cfg)
            corners = np.array(scene.camera["corners"])
            tl, tr, br, bl = corners
            assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1] and tr[1] < br[1], (family, seed)
            if not scene.camera["clipped"]:  # else a side edge cuts a quarter bar off the box
                assert np.all((corners >= -0.5) & (corners <= np.array([size[1], size[0]]) - 0.5)), (family, seed)
            Hm = homography(BOX, corners)
            centres = apply(Hm, np.stack([(np.arange(n) + 0.5) / n, scene.bar_centre_y], axis=1))
            assert np.all((centres >= -0.5) & (centres <= np.array([size[1], size[0]]) - 0.5)), (family, seed)
            px = np.rint(centres).astype(int)
            on_bar = scene.bar_cover[px[:, 1], px[:, 0]]
            assert np.all(on_bar > 0.9), (family, seed, on_bar.round(2))
            # Beyond the box's long sides there are no struck bars.
            out = apply(Hm, np.stack([(np.arange(n) + 0.5) / n, np.full(n, 0.4 * (1 if seed % 2 else -1))], axis=1))
            inside = (out[:, 0] >= 0) & (out[:, 0] < size[1] - 1) & (out[:, 1] >= 0) & (out[:, 1] < size[0] - 1)
            q = np.rint(out[inside]).astype(int)
            assert np.all(scene.bar_cover[q[:, 1], q[:, 0]] < 0.1), (family, seed)


def test_look_manifest_round_trip(tmp_path):
    v = ml.render_look(2, "pastel-top-aligned", SHORT)
    folder = ml.write_look(v, tmp_path / "rec", SHORT)
    rec = load_recording(folder)
    syn = rec.manifest["synthetic"]
    assert syn["look_family"] == "pastel-top-aligned" == syn["camera"]["look_family"]
    assert syn["renderer"] == "marimba_looks" and syn["seed"] == 2
    assert np.allclose(syn["camera"]["corners"], v.camera["corners"])
    assert rec.frames.shape == v.frames.shape
    assert same_notes(rec.notes, v.events)


def test_dataset_assigns_families_and_keeps_finished_folders(tmp_path):
    cfg = ml.LookConfig(seconds=0.5)
    paths = ml.render_look_dataset(tmp_path, [0, 1], ["wood-classic", "sunlit"], cfg)
    assert [p.name for p in paths] == ["seed-00000-wood-classic", "seed-00001-sunlit"]
    stamp = (paths[0] / "manifest.json").stat().st_mtime_ns
    (paths[1] / "manifest.json").unlink()  # as if interrupted before the manifest
    again = ml.render_look_dataset(tmp_path, [0, 1], ["wood-classic", "sunlit"], cfg)
    assert again == paths and (paths[0] / "manifest.json").stat().st_mtime_ns == stamp
    assert (paths[1] / "manifest.json").is_file()
    with pytest.raises(ValueError, match="unknown look family"):
        ml.render_look_dataset(tmp_path, [0], ["velvet"], cfg)


def test_cli_writes_a_contact_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert ml.main(["--sheet", str(sheet)]) == 0
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as e:
        ml.main(["--out", str(tmp_path / "x"), "--families", "velvet"])
    assert e.value.code == 2 and "unknown look family 'velvet'" in capsys.readouterr().err


# ----------------------------------------------------------------- the evaluation look


def test_eval_look_imports_nothing_from_the_training_renderers():
    tree = ast.parse(Path(ev.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
    allowed = {"__future__", "json", "collections.abc", "dataclasses", "pathlib", "typing", "numpy", "argparse",
               "shutil", "tqdm", "device.marimba.dataset"}  # the dataset format only: no score, sound or drawing
    assert modules <= allowed, modules - allowed


def test_eval_score_has_chords_and_quick_repeats():
    hits = ev.make_score(np.random.default_rng(3), 40.0)
    onsets = [(h.t, h.bar) for h in hits]
    chords = sum(1 for a, b in itertools.pairwise(onsets) if a[0] == b[0] and a[1] != b[1])
    repeats = sum(1 for a, b in itertools.pairwise(onsets) if a[1] == b[1] and 0.119 <= b[0] - a[0] <= 0.201)
    assert chords >= 3 and repeats >= 5
    for hand in (0, 1):  # one hand never strikes faster than it can
        t = np.array([h.t for h in hits if h.hand == hand])
        assert np.all(np.diff(t) >= 0.115 - 1e-9)
    assert all(0 <= h.bar < 18 and 30 <= h.velocity <= 127 for h in hits)


def test_eval_timbre_has_a_strong_tuned_fourth_partial():
    s = ev.strike_sound(60, 110, 48000, np.random.default_rng(0))
    seg = s[:4096] * np.hanning(4096)
    spec = np.abs(np.fft.rfft(seg, 16384))
    freqs = np.fft.rfftfreq(16384, 1 / 48000)
    f0 = ev.note_hz(60)

    def level(ratio):
        return 20 * np.log10(spec[np.abs(freqs - ratio * f0) < 0.02 * ratio * f0].max() / spec.max())

    assert level(1) == 0.0
    assert -15 < level(4) < -3  # the training renders keep 4x at -26 dB: this is the other timbre
    assert -35 < level(3) < -15 and -40 < level(9.9) < -15


def test_eval_recording_round_trip_with_true_corners(tmp_path):
    v = ev.render_eval(1, seconds=2.5)
    assert v.frames.shape == (75, 240, 320) and v.camera["pose"] == "B"
    folder = ev.write_eval(v, tmp_path / "eval")
    rec = load_recording(folder)
    syn = rec.manifest["synthetic"]
    assert syn["look_family"] == ev.LOOK_FAMILY == "eval-rainbow-gingham"
    assert rec.manifest["notes"] == list(ev.NOTES)
    corners = np.array(syn["camera"]["corners"])
    tl, tr, br, bl = corners
    assert tl[0] < tr[0] and bl[0] < br[0] and tl[1] < bl[1]
    assert np.all((corners >= 0) & (corners <= [319, 239]))
    assert same_notes(rec.notes, v.events)


@pytest.mark.parametrize("pose", ["A", "B"])
def test_eval_mallets_strike_where_the_corners_put_the_bars(pose):
    """At each strike something (the ball) covers the bar the corners say was struck, lowest note left."""
    v = ev.render_eval(0, pose, seconds=3.0)
    Hm = homography(BOX, np.array(v.camera["corners"]))
    still = np.median(v.frames, axis=0)
    hits, wrong = 0, 0
    for t, midi, _ in v.events:
        i = round(t * v.fps)
        j = ev.NOTES.index(midi)
        for bar, count in ((j, True), (17 - j, False)):  # also try the mirrored bar: it should look untouched
            if not count and abs(bar - j) < 3:
                continue
            u, w = np.rint(apply(Hm, np.array([[(bar + 0.5) / 18, 0.0]]))[0]).astype(int)
            diff = np.abs(v.frames[i, w - 4 : w + 5, u - 4 : u + 5] - still[w - 4 : w + 5, u - 4 : u + 5]).max()
            if count:
                hits += diff > 12
            else:
                wrong += diff > 12
    assert hits >= 0.8 * len(v.events) > 0
    assert wrong <= hits // 3
