"""Class pictures: one per UrbanSound8K class, distinct, small; colours distinct."""

from __future__ import annotations

import colorsys
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

from device.screen import pictures  # noqa: E402
from device.screen.pictures import (  # noqa: E402
    DEFAULT_COLOURS,
    URBANSOUND_CLASSES,
    class_colour,
    draw_picture,
    fallback_picture,
    has_drawing,
    make_class_pictures,
    rgb255,
)
from device.screen.render import surface_to_array  # noqa: E402

pytestmark = pytest.mark.device_venv

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("pictures")
    return make_class_pictures(out)


def _load(path) -> np.ndarray:
    return surface_to_array(pygame.image.load(str(path))).astype(np.int16)


def test_every_class_has_a_small_picture(generated):
    assert list(generated) == list(URBANSOUND_CLASSES)
    for label, path in generated.items():
        assert has_drawing(label)
        assert path.name == f"{label}.png" and path.exists()
        assert path.stat().st_size < 30_000, (label, path.stat().st_size)
        assert pygame.image.load(str(path)).get_size() == (256, 256)


def test_pictures_are_distinct_and_not_blank(generated):
    images = {label: _load(p) for label, p in generated.items()}
    for label, img in images.items():
        assert img.std() > 20, label  # real drawing, not a flat card
    for (a, ia), (b, ib) in itertools.combinations(images.items(), 2):
        assert np.abs(ia - ib).mean() > 25, (a, b)


def test_picture_background_carries_the_class_colour(generated):
    # The top-left corner is the tinted page: its hue follows the class colour.
    for label, path in generated.items():
        corner = _load(path)[4, 120] / 255.0
        want = np.array(DEFAULT_COLOURS[label])
        got_h = colorsys.rgb_to_hsv(*corner)[0]
        want_h = colorsys.rgb_to_hsv(*want)[0]
        assert min(abs(got_h - want_h), 1 - abs(got_h - want_h)) < 0.06, label


def test_default_colours_are_distinct_and_saturated():
    assert set(DEFAULT_COLOURS) == set(URBANSOUND_CLASSES)
    for label, c in DEFAULT_COLOURS.items():
        assert all(0.0 <= v <= 1.0 for v in c)
        assert max(c) >= 0.8 and max(c) - min(c) >= 0.7, label  # bright and saturated on an LED
    for (a, ca), (b, cb) in itertools.combinations(DEFAULT_COLOURS.items(), 2):
        assert np.linalg.norm(np.subtract(ca, cb)) > 0.3, (a, b)


def test_fallback_picture_for_unknown_labels():
    colour = (0.2, 0.6, 0.9)
    a = fallback_picture("cat_meow", colour)
    b = fallback_picture("door_knock", colour)
    assert a.get_size() == (256, 256)
    pa, pb = surface_to_array(a).astype(int), surface_to_array(b).astype(int)
    assert np.abs(pa - pb).mean() > 1  # the text differs
    # the card (centre-left, away from the text) is the class colour
    assert np.abs(pa[200, 40] - np.array(rgb255(colour))).max() <= 2
    assert not has_drawing("cat_meow")
    assert draw_picture("cat_meow", colour, 128).get_size() == (128, 128)
    assert class_colour("cat_meow") == class_colour("cat_meow")  # stable across calls
    assert class_colour("siren") == DEFAULT_COLOURS["siren"]


def test_cli_regenerates_into_a_folder(tmp_path, capsys):
    assert pictures.main(["--out", str(tmp_path), "--size", "64", "siren", "my_own_class"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_own_class.png", "siren.png"]
    assert pygame.image.load(str(tmp_path / "siren.png")).get_size() == (64, 64)
    assert "siren" in capsys.readouterr().out


def test_committed_assets_are_present_and_small():
    if not ASSETS.is_dir() or not any(ASSETS.glob("*.png")):
        pytest.skip("assets/images not generated yet (python -m device.screen.pictures)")
    for label in URBANSOUND_CLASSES:
        path = ASSETS / f"{label}.png"
        assert path.exists(), f"{path} missing: run python -m device.screen.pictures"
        assert path.stat().st_size < 30_000
        assert pygame.image.load(str(path)).get_size() == (256, 256)
