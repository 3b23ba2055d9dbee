"""The display contract, on every backend that loads here (and the real screen under ``-m hardware``).

Each backend shows exactly the pixels its renderer drew (so the sim's PNGs are
the screen), the real backend runs headless through SDL's dummy driver on the
Pi's code path, ``close()`` twice is fine and ``show`` after it does nothing,
and the rate limit drops the same scenes everywhere.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

from contracts.conftest import real_or_skip  # noqa: E402
from device.config import DisplayConfig  # noqa: E402
from device.hardware.display import open_display  # noqa: E402
from device.screen.pictures import make_class_pictures  # noqa: E402
from device.screen.render import Renderer, surface_to_array  # noqa: E402
from fakes.scenes import marimba_scene, sound_scene  # noqa: E402

pytestmark = pytest.mark.device_venv

CFG = DisplayConfig(fullscreen=False, max_fps=120.0)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return make_class_pictures(tmp_path_factory.mktemp("pics"), ["dog_bark", "siren"])


def scene_of(kind, pictures, **kw):
    return {
        "sound": lambda: sound_scene(pictures, **kw),
        "listening": lambda: sound_scene(pictures, label=None, picture=None, **kw),
        "marimba": lambda: marimba_scene(**kw),
    }[kind]()


class DisplayBackend:
    """One backend as the contract sees it: how to open it and what it put on its screen."""

    def __init__(self, name: str, monkeypatch, tmp_path) -> None:
        self.name = name
        self.tmp_path = tmp_path
        if name == "real-dummy":
            monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")

    def open(self, cfg: DisplayConfig = CFG):
        if self.name == "sim":
            return open_display("sim", cfg, renderer=Renderer, out_dir=self.tmp_path / "frames")
        return real_or_skip(lambda: open_display("real", cfg, renderer=Renderer))

    def pixels(self, display) -> np.ndarray:
        if self.name == "sim":
            return surface_to_array(pygame.image.load(str(display.frames[-1])))
        return surface_to_array(pygame.display.get_surface())


@pytest.fixture(params=["sim", "real-dummy", pytest.param("real", marks=pytest.mark.hardware)])
def backend(request, monkeypatch, tmp_path):
    yield DisplayBackend(request.param, monkeypatch, tmp_path)
    pygame.display.quit()


@pytest.mark.parametrize("kind", ["sound", "listening", "marimba"])
def test_each_backend_shows_exactly_what_the_renderer_drew(backend, kind, pictures):
    scene = scene_of(kind, pictures)
    with backend.open() as display:
        display.show(scene)
        shown = backend.pixels(display)
        drawn = surface_to_array(Renderer(display.size).render(scene))
    assert shown.shape == drawn.shape == (display.size[1], display.size[0], 3)
    assert np.array_equal(shown, drawn)


@pytest.mark.parametrize("kind", ["sound", "listening", "marimba"])
def test_real_dummy_and_sim_give_identical_pixels(kind, pictures, monkeypatch, tmp_path):
    scene = scene_of(kind, pictures)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    cfg = DisplayConfig(width=800, height=480, fullscreen=False, max_fps=120.0)
    try:
        with open_display("real", cfg, renderer=Renderer) as real:
            assert real.backend == "real"
            real.show(scene)
            on_screen = surface_to_array(pygame.display.get_surface())
    finally:
        pygame.display.quit()
    with open_display("sim", cfg, renderer=Renderer, out_dir=tmp_path) as sim:
        assert sim.backend == "sim"
        sim.show(scene)
        assert [p.name for p in sim.frames] == ["frame_000000.png"]
        saved = surface_to_array(pygame.image.load(str(sim.frames[0])))
    assert on_screen.shape == saved.shape == (480, 800, 3)
    assert np.array_equal(on_screen, saved)


def test_close_twice_then_show_does_nothing(backend):
    display = backend.open()
    display.show(marimba_scene(timestamp=0.0))
    assert display.shown == 1
    display.close()
    display.close()
    assert display.is_closed
    display.show(marimba_scene(timestamp=5.0))  # a late scene from a pipeline thread
    assert display.shown == 1
    if backend.name == "sim":
        assert len(display.frames) == 1


def test_rate_limit_drops_the_same_scenes_on_every_backend(backend):
    # 2 s of scenes at 100 per second, shown at most 10 per second -> 20 shown.
    with backend.open(DisplayConfig(fullscreen=False, max_fps=10.0)) as display:
        for i in range(200):
            display.show(marimba_scene(timestamp=i * 0.01))
    assert (display.shown, display.dropped) == (20, 180)
