"""Display: the renderer's pixels, and the real (SDL dummy) and sim backends.

The real backend runs headless under ``SDL_VIDEODRIVER=dummy`` through exactly
the code path the Pi uses; that it puts the same pixels on its screen as the sim
backend writes to PNG is in tests/contracts/test_display.py. Pixel checks use
``Renderer.layout`` to find regions.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

from device.config import DisplayConfig  # noqa: E402
from device.errors import ConfigError  # noqa: E402
from device.screen.contact_sheet import animated_gif, contact_sheet, pick_evenly  # noqa: E402
from device.hardware import display as display_mod  # noqa: E402
from device.hardware.base import Scene  # noqa: E402
from device.hardware.select import HardwareError  # noqa: E402
from device.hardware.display import DisplayUnavailable, RateLimiter, open_display, probe  # noqa: E402
from device.screen.pictures import DEFAULT_COLOURS, make_class_pictures, rgb255, tint  # noqa: E402
from device.screen.render import (  # noqa: E402
    BAR,
    LISTEN,
    TRACK,
    Renderer,
    colormap,
    note_name,
    render_scene,
    surface_to_array,
)
from fakes import scenes  # noqa: E402

pytestmark = pytest.mark.device_venv  # pygame + numpy only: all of these run in the device venv


_spectrogram, _probs = scenes.spectrogram, scenes.probs
sound_scene, marimba_scene = scenes.sound_scene, scenes.marimba_scene


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return make_class_pictures(tmp_path_factory.mktemp("pics"), ["dog_bark", "siren"])


def cfg(**kw) -> DisplayConfig:
    """A [display] section for tests: windowed, and by default no rate limit that matters."""
    return DisplayConfig(**{"fullscreen": False, "max_fps": 120.0, **kw})


@pytest.fixture
def dummy_video(monkeypatch):
    """Headless SDL for the real backend; restored afterwards."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    yield
    pygame.display.quit()


# ---------------------------------------------------------------- backends


def test_render_is_deterministic(pictures):
    scene = sound_scene(pictures)
    a = surface_to_array(Renderer().render(scene))
    b = surface_to_array(Renderer().render(scene))
    assert np.array_equal(a, b)


def test_real_backend_pumps_events_and_flags_quit(dummy_video):
    with open_display("real", cfg(), renderer=Renderer) as d:
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        d.show(marimba_scene())
        assert d.quit_requested
        assert not pygame.mouse.get_visible()
    d.close()  # idempotent


def test_real_backend_can_draw_from_another_thread(dummy_video):
    # The app opens the display in its builder and draws from a display thread.
    import threading

    with open_display("real", cfg(), renderer=Renderer) as d:
        t = threading.Thread(target=d.show, args=(marimba_scene(),))
        t.start()
        t.join()
        assert d.shown == 1 and not d.is_closed
        assert np.array_equal(surface_to_array(pygame.display.get_surface()), surface_to_array(d.surface))


def test_real_backend_unavailable_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "no_such_driver")
    with pytest.raises(DisplayUnavailable) as e:
        open_display("real", cfg(), renderer=Renderer)
    assert isinstance(e.value, HardwareError)
    assert "\n" not in str(e.value) and "no_such_driver" in str(e.value)
    # "auto" with a screen that won't open falls back to sim instead
    monkeypatch.setenv("DISPLAY", ":99")
    with open_display("auto", cfg(), renderer=Renderer) as d:
        assert d.backend == "sim"


def test_auto_picks_sim_without_a_screen_and_says_why(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        d = open_display("auto", cfg(), renderer=Renderer, out_dir=tmp_path)
    assert d.backend == "sim"
    lines = [r.getMessage() for r in caplog.records if r.name == "saysee.hardware"]
    assert len(lines) == 1 and "sim" in lines[0] and "SDL_VIDEODRIVER=dummy" in lines[0]
    d.close()


def test_screen_detection(monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(display_mod.glob, "glob", lambda pattern: [])
    assert display_mod._screen_present()[0] is False
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_mod._screen_present() == (True, "DISPLAY=:0")
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setattr(display_mod.glob, "glob", lambda pattern: ["/dev/null"])  # stands in for /dev/dri/card0
    present, why = display_mod._screen_present()
    assert present and "kmsdrm" in why


@pytest.fixture
def kms_console(monkeypatch):
    """A Pi console without X: no DISPLAY, a DRM card (stood in for by /dev/null), SDL left to choose."""
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(display_mod.glob, "glob", lambda pattern: ["/dev/null"] if "dri" in pattern else [])
    yield
    pygame.display.quit()


def test_sdl_video_drivers_are_read_from_sdl():
    drivers = display_mod.sdl_video_drivers()
    assert drivers is not None and "dummy" in drivers and "offscreen" in drivers


def test_probe_initialises_the_driver_and_lists_sdl_drivers(kms_console):
    real = dict((b, (ok, why)) for b, ok, why in probe())["real"]
    drivers = display_mod.sdl_video_drivers()
    # No DRM device here, and the pip wheel's SDL has no kmsdrm at all: the probe must say so.
    assert real[0] is False
    assert "SDL video driver 'kmsdrm' fails" in real[1] and f"SDL video drivers: {', '.join(drivers)}" in real[1]
    if "kmsdrm" not in drivers:
        assert real[1].endswith("install python3-pygame (system SDL with kmsdrm)")
    assert "\n" not in real[1] and "SDL_VIDEODRIVER" not in os.environ


def test_auto_fallback_warns_once_with_drivers_and_fix(kms_console, caplog):
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_display("auto", cfg(), renderer=Renderer) as d:
            assert d.backend == "sim"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "kmsdrm" in warnings[0] and "SDL video drivers:" in warnings[0]
    if "kmsdrm" not in display_mod.sdl_video_drivers():
        assert "install python3-pygame (system SDL with kmsdrm)" in warnings[0]
    assert "SDL_VIDEODRIVER" not in os.environ


def test_display_draws_with_the_renderer_it_is_handed(tmp_path):
    made, drawn = [], []

    class Flat:
        def __init__(self, size):
            made.append(size)
            self.size = size

        def render(self, scene, surface=None):
            drawn.append(scene.status)
            surface = surface or pygame.Surface(self.size)
            surface.fill((1, 2, 3))
            return surface

    with open_display("sim", cfg(width=320, height=200), renderer=Flat, out_dir=tmp_path) as d:
        d.show(marimba_scene(status="hello"))
    assert made == [(320, 200)] and drawn == ["hello"]
    saved = surface_to_array(pygame.image.load(str(d.frames[0])))
    assert saved.shape == (200, 320, 3) and (saved == (1, 2, 3)).all()


def test_probe_lists_both_backends():
    rows = probe()
    assert [r[0] for r in rows] == ["real", "sim"]
    assert all(isinstance(usable, bool) and why for _, usable, why in rows)
    assert rows[1][1] is True


def test_bad_backend_name_is_a_config_error():
    with pytest.raises(ConfigError, match="backend"):
        open_display("hdmi", cfg(), renderer=Renderer)


# ---------------------------------------------------------------- rate limiting


def test_sim_rate_limit_by_scene_time(tmp_path):
    # 2 s of scenes at 100 per second, shown at most 10 per second -> 20 frames.
    with open_display("sim", cfg(max_fps=10), renderer=Renderer, out_dir=tmp_path) as d:
        for i in range(200):
            d.show(marimba_scene(timestamp=i * 0.01))
    assert len(d.frames) == 20 and d.shown == 20 and d.dropped == 180
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"frame_{i:06d}.png" for i in range(20)]


def test_sim_every_nth_and_max_frames(tmp_path):
    with open_display("sim", cfg(every_nth=3), renderer=Renderer, out_dir=tmp_path / "a") as d:
        for i in range(10):
            d.show(marimba_scene(timestamp=float(i)))
    assert len(d.frames) == 4  # calls 0, 3, 6, 9
    with open_display("sim", cfg(max_frames=3), renderer=Renderer, out_dir=tmp_path / "b") as d:
        for i in range(6):
            d.show(marimba_scene(timestamp=float(i)))
    assert len(d.frames) == 3 and len(list((tmp_path / "b").iterdir())) == 3
    assert d.shown == 6  # still rendered (surface is fresh), just not written


def test_a_new_picture_is_drawn_at_once_under_the_rate_limit(tmp_path, pictures):
    # 10 fps: the listening screen was drawn 20 ms ago; the class decided now must not wait 80 ms more.
    with open_display("sim", cfg(max_fps=10), renderer=Renderer, out_dir=tmp_path) as d:
        d.show(sound_scene(pictures, label=None, picture=None, timestamp=0.00))
        d.show(sound_scene(pictures, label=None, picture=None, timestamp=0.01, status="level -30 dBFS"))
        d.show(sound_scene(pictures, timestamp=0.02))  # dog_bark: new content
        d.show(sound_scene(pictures, timestamp=0.03))  # the same picture again: a refresh, limited
        d.show(sound_scene(pictures, label=None, picture=None, timestamp=0.04))  # cleared: new content
        d.show(sound_scene(pictures, label=None, picture=None, timestamp=0.05))
    assert d.shown == 3 and d.dropped == 3


def test_rate_limiter_restarts_when_clock_goes_back():
    r = RateLimiter(max_fps=2)
    assert [r.admit(t) for t in (10.0, 10.2, 10.6, 0.0, 0.1)] == [True, False, True, True, False]


# ---------------------------------------------------------------- sound mode pixels


def test_class_picture_is_shown_in_its_frame(pictures):
    scene = sound_scene(pictures)
    r = Renderer()
    L = r.layout(scene)
    screen = surface_to_array(r.render(scene))
    pic = L["picture"]
    shown = screen[pic.top : pic.bottom, pic.left : pic.right].astype(int)
    png = surface_to_array(pygame.image.load(str(pictures["dog_bark"]))).astype(int)
    assert shown.shape == png.shape == (256, 256, 3)
    assert np.abs(shown - png).mean() < 1.0
    # and the frame around it is the class colour
    f = L["frame"]
    assert tuple(screen[f.top + 6, f.centerx]) == rgb255(DEFAULT_COLOURS["dog_bark"])


def test_missing_picture_falls_back_to_a_drawing(pictures, caplog):
    scene = sound_scene(pictures, picture="/nonexistent/dog.png")
    with caplog.at_level(logging.WARNING, logger="saysee.display"):
        screen = surface_to_array(Renderer().render(scene))
    assert "unusable" in caplog.text
    pic = Renderer().layout(scene)["picture"]
    assert screen[pic.top : pic.bottom, pic.left : pic.right].std() > 10  # a picture, not a blank


def _bar_width(screen: np.ndarray, track) -> int:
    """Pixels from the track's left edge that are not the empty track colour."""
    row = screen[track.centery, track.left : track.right]
    filled = np.any(row != np.array(TRACK), axis=1)
    return int(np.argmin(filled)) if not filled.all() else len(filled)


def test_probability_bars_are_proportional(pictures):
    probs = {"dog_bark": 0.5, "siren": 0.25, "car_horn": 0.1, "gun_shot": 0.0, "drilling": 0.15}
    scene = sound_scene(pictures, probabilities=probs)
    r = Renderer()
    L = r.layout(scene)
    screen = surface_to_array(r.render(scene))
    track_w = L["track:dog_bark"].w
    for label, p in probs.items():
        measured = _bar_width(screen, L[f"track:{label}"])
        assert abs(measured - p * track_w) <= 1.0, (label, measured, p * track_w)


def test_top_class_is_highlighted(pictures):
    scene = sound_scene(pictures, probabilities=_probs("dog_bark", 0.7))
    r = Renderer()
    L = r.layout(scene)
    screen = surface_to_array(r.render(scene))
    colour = rgb255(DEFAULT_COLOURS["dog_bark"])
    top_track = L["track:dog_bark"]
    assert tuple(screen[top_track.centery, top_track.left + 5]) == colour
    top_row = L["row:dog_bark"]
    assert tuple(screen[top_row.top + 2, top_row.centerx]) == tint(DEFAULT_COLOURS["dog_bark"], 0.7)
    other = L["track:siren"]
    assert tuple(screen[other.centery, other.left + 3]) == BAR
    assert tuple(screen[L["row:siren"].top + 2, L["row:siren"].centerx]) == (255, 255, 255)


def test_listening_screen_when_no_label(pictures):
    r = Renderer()
    heard = sound_scene(pictures)
    quiet = sound_scene(pictures, label=None, picture=None, level=0.0)
    loud = sound_scene(pictures, label=None, picture=None, level=1.0)
    L = r.layout(quiet)
    f = L["frame"]
    a_quiet = surface_to_array(r.render(quiet))
    assert tuple(a_quiet[f.top + 6, f.centerx]) == tint(LISTEN, 0.55)
    a_heard = surface_to_array(r.render(heard))
    assert tuple(a_heard[f.top + 6, f.centerx]) != tuple(a_quiet[f.top + 6, f.centerx])
    # the level meter lights up with the level; the spectrogram is still there
    lv = L["level"]
    a_loud = surface_to_array(r.render(loud))
    assert not np.array_equal(a_quiet[lv.top : lv.bottom, lv.left : lv.right], a_loud[lv.top : lv.bottom, lv.left : lv.right])
    sp = L["spectrogram"]
    assert np.array_equal(a_quiet[sp.top : sp.bottom, sp.left : sp.right], a_heard[sp.top : sp.bottom, sp.left : sp.right])


def test_spectrogram_region_follows_the_data(pictures):
    r = Renderer()
    s1 = sound_scene(pictures, spectrogram=_spectrogram(1))
    s2 = sound_scene(pictures, spectrogram=_spectrogram(2))
    a1, a2 = surface_to_array(r.render(s1)), surface_to_array(r.render(s2))
    sp = r.layout(s1)["spectrogram"]
    inside = np.zeros(a1.shape[:2], bool)
    inside[sp.top : sp.bottom, sp.left : sp.right] = True
    differs = np.any(a1 != a2, axis=2)
    assert differs[inside].mean() > 0.3
    assert not differs[~inside].any()


def test_spectrogram_loud_is_brighter_and_scrolls_in_from_the_right(pictures):
    r = Renderer()
    quiet = np.full((100, 64), -12.0, np.float32)
    loud = quiet.copy()
    loud[-10:] = 4.0  # newest frames loud
    a = surface_to_array(r.render(sound_scene(pictures, spectrogram=loud)))
    sp = r.layout(sound_scene(pictures))["spectrogram"]
    right = a[sp.centery, sp.right - 4].astype(int)
    left_of_data = a[sp.centery, sp.left + 20].astype(int)  # 100 of 400 frames: left part empty
    assert right.sum() > 500 and left_of_data.sum() < 30
    assert tuple(colormap(np.array([0.0]))[0]) == (0, 0, 4)


def test_other_sizes_render(pictures):
    for size in ((1024, 600), (480, 320)):
        for scene in (sound_scene(pictures), sound_scene(pictures, label=None), marimba_scene()):
            surf = render_scene(scene, size)
            assert surf.get_size() == size


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        Renderer().render(Scene(mode="video"))


# ---------------------------------------------------------------- marimba mode pixels


def test_marimba_highlights_the_active_bar_in_its_colour():
    r = Renderer()
    scene = marimba_scene()
    L = r.layout(scene)
    a = surface_to_array(r.render(scene))
    pink = (255, 0, 153)
    bar = L["note:67"]
    assert tuple(a[bar.top + 1, bar.centerx]) == pink  # outline
    inside = a[bar.centery, bar.centerx].astype(int)
    assert inside[0] > 100 and inside[2] > 80  # camera grey washed with pink
    for other in (60, 89):  # inactive bars keep the plain camera grey
        o = L[f"note:{other}"]
        assert tuple(a[o.centery, o.centerx]) == (50, 50, 50)
    # its name is highlighted under the piano roll
    names = L["roll_names"]
    n = 18
    cell_x = names.left + round((4 + 0.5) * names.w / n)
    assert tuple(a[names.top + 2, cell_x]) == pink


def test_marimba_note_regions_and_piano_roll():
    r = Renderer()
    scene = marimba_scene(note_regions={67: (0.25, 0.5, 0.5, 0.25)})
    L = r.layout(scene)
    img = L["camera_image"]
    assert L["note:67"] == pygame.Rect(img.x + round(0.25 * img.w), img.y + round(0.5 * img.h), round(0.75 * img.w) - round(0.25 * img.w), round(0.75 * img.h) - round(0.5 * img.h))
    a = surface_to_array(r.render(scene))
    roll = L["roll"]
    col_x = roll.left + round(4.5 * roll.w / 18)
    assert tuple(a[roll.bottom - 3, col_x]) == (255, 0, 153)  # newest step of note 67, bottom
    assert tuple(a[roll.top + 3, col_x]) == (34, 36, 50)  # nothing earlier
    assert note_name(60) == "C4" and note_name(61) == "C#4" and note_name(89) == "F6"


# ---------------------------------------------------------------- contact sheet / GIF


def test_contact_sheet_and_gif(tmp_path):
    with open_display("sim", cfg(width=400, height=240), renderer=Renderer, out_dir=tmp_path / "frames") as d:
        for i in range(6):
            d.show(marimba_scene(active_notes={60 + 2 * i: 1.0}, timestamp=float(i)))
    sheet = contact_sheet(d.frames, tmp_path / "sheet.png", columns=3, max_frames=4, thumb_width=100)
    img = pygame.image.load(str(sheet))
    assert img.get_size() == (6 + 3 * 106, 6 + 2 * (60 + 18 + 6))
    assert pick_evenly(list(range(6)), 4) == [0, 2, 3, 5]
    assert contact_sheet([], tmp_path / "none.png") is None
    gif = animated_gif(d.frames, tmp_path / "run.gif", fps=5)
    try:
        import PIL  # noqa: F401
    except ImportError:
        assert gif is None
    else:
        from PIL import Image

        with Image.open(gif) as im:
            assert im.n_frames == 6 and im.info["duration"] == 200
