"""The display: a pygame screen (real) or PNG frames on disk (sim), one renderer.

``open_display(backend="auto")`` decides once, at the edge, like gpiozero's pin
factories: "real" when a screen is present (an X/Wayland session, or a KMS/DRM
card on a Pi without X), else "sim", logging one line that says which and why.
Both backends draw with the renderer they are handed (the builder passes
``device.screen.render.Renderer``; hardware never imports screen code), so the
PNG frames of a simulated run are pixel for pixel what the screen would show;
tests run the real backend headless with ``SDL_VIDEODRIVER=dummy`` through the
same code path.

On a Pi without X, SDL must have its KMS/DRM video driver, and the pip wheel of
pygame bundles an SDL built without it (x11, wayland, offscreen, dummy, evdev):
``sdl_video_drivers()`` reads the list from the SDL library pygame loaded, and
the probe and every failure to open say which drivers exist.

The display must never hold up audio: ``show`` only draws (a few ms), and a rate
limit (``max_fps``, ``every_nth``) *drops* frames instead of queueing them. The
limit uses ``Scene.timestamp``, so a simulated run paced faster than real time
still writes frames at the scene's own clock, and the sim backend stops writing
after ``max_frames`` so a long run can't fill the SD card.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from device.config import DisplayConfig
from device.hardware.base import Display, Scene
from device.hardware.select import HardwareError, Probe, check_import, normalise, one_line, open_chosen

log = logging.getLogger("saysee.hardware")
# pygame prints a banner on import; journald doesn't need it.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

KMSDRM_HINT = "install python3-pygame (system SDL with kmsdrm)"

# A renderer factory: screen size (w, h) -> an object whose ``render(scene, surface)``
# returns the drawn pygame.Surface, e.g. ``device.screen.render.Renderer``.
RendererFactory = Callable[[tuple[int, int]], Any]


class DisplayUnavailable(HardwareError):
    """The real screen was asked for but can't be opened here (one-line reason)."""


# ---------------------------------------------------------------- probing


def _import_pygame():
    import pygame

    return pygame


def _screen_present() -> tuple[bool, str]:
    """Is there a screen SDL could use? Checks the environment only (opens nothing)."""
    driver = os.environ.get("SDL_VIDEODRIVER", "")
    if driver in ("dummy", "offscreen"):
        return False, f"SDL_VIDEODRIVER={driver} (no screen)"
    for var in ("WAYLAND_DISPLAY", "DISPLAY"):
        if os.environ.get(var):
            return True, f"{var}={os.environ[var]}"
    cards = sorted(glob.glob("/dev/dri/card*"))
    if cards:
        usable = [c for c in cards if os.access(c, os.R_OK | os.W_OK)]
        if usable:
            return True, f"{usable[0]} via kmsdrm (no X/Wayland)"
        return False, f"{cards[0]} exists but is not accessible (add the user to the 'video' group)"
    return False, "no DISPLAY/WAYLAND_DISPLAY and no /dev/dri/card*"


def _pygame_usable() -> tuple[bool, str]:
    ok, why, _ = check_import("pygame", "on the box: sudo apt install python3-pygame (its SDL has kmsdrm)")
    return ok, why


def sdl_video_drivers() -> list[str] | None:
    """The video drivers compiled into the SDL that pygame loaded, or None if it can't be asked.

    pygame has no call for this (``pygame._sdl2.video.get_drivers`` lists *render*
    drivers), so ask SDL itself: ``SDL_GetNumVideoDrivers``/``SDL_GetVideoDriver``
    on the already-loaded library, found in /proc/self/maps.
    """
    _import_pygame()  # so its SDL is mapped into this process
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "/libSDL2" in line and ".so" in line})
    except OSError:
        return None
    for path in libs:
        if "image" in path or "mixer" in path or "ttf" in path:
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.SDL_GetVideoDriver.restype = ctypes.c_char_p
            lib.SDL_GetVideoDriver.argtypes = [ctypes.c_int]
            return [lib.SDL_GetVideoDriver(i).decode() for i in range(lib.SDL_GetNumVideoDrivers())]
        except (OSError, AttributeError):
            continue
    return None


def _drivers_note(drivers: list[str] | None, wanted: str | None) -> str:
    """'; SDL video drivers: a, b' plus the fix when the screen's driver is not among them."""
    if drivers is None:
        return ""
    note = f"; SDL video drivers: {', '.join(drivers) or 'none'}"
    if wanted == "kmsdrm" and "kmsdrm" not in drivers:
        note += f"; {KMSDRM_HINT}"
    return note


def _wanted_driver() -> str | None:
    """The SDL video driver a real display would ask for (None: SDL picks, X/Wayland)."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return os.environ["SDL_VIDEODRIVER"]
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "kmsdrm"  # a Pi console without X: SDL must draw straight to the DRM/KMS device


def try_display_driver(pygame=None) -> tuple[bool, str]:
    """Initialise (and quit) SDL's video driver the real display would use; opens no window."""
    pygame = pygame or _import_pygame()
    wanted = _wanted_driver()
    saved = os.environ.get("SDL_VIDEODRIVER")
    if wanted:
        os.environ["SDL_VIDEODRIVER"] = wanted
    try:
        pygame.display.init()
        driver = pygame.display.get_driver()
        return True, f"SDL video driver '{driver}' initialises"
    except pygame.error as e:
        note = _drivers_note(sdl_video_drivers(), wanted)
        return False, f"SDL video driver '{wanted or 'default'}' fails: {one_line(e)}{note}"
    finally:
        pygame.display.quit()
        if saved is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = saved


def probe(cfg: DisplayConfig = DisplayConfig()) -> list[Probe]:
    """Each display backend as (backend, usable, why), for ``python -m device check``.

    When a screen is present it initialises SDL's video driver (no window: a probe
    must not grab the screen from a running box), because only that shows whether
    this SDL can drive it; the reason lists the SDL video drivers that exist.
    """
    ok, why = _pygame_usable()
    if not ok:
        return [("real", False, why), ("sim", False, why)]
    pygame = _import_pygame()
    present, why = _screen_present()
    if present:
        works, how = try_display_driver(pygame)
        real = (works, f"{why}; {how}")
    else:
        real = (False, why + _drivers_note(sdl_video_drivers(), _wanted_driver()))
    png = "PNG frames" if pygame.image.get_extended() else "BMP frames only (pygame built without SDL_image)"
    return [("real", *real), ("sim", True, f"pygame {pygame.version.ver}: {png}")]


# ---------------------------------------------------------------- rate limiting


class RateLimiter:
    """Admit at most one frame per ``1/max_fps`` s of scene time, and only every n-th call.

    Frames are dropped, never queued: a slow display must not delay the pipeline.
    """

    def __init__(self, max_fps: float | None, every_nth: int = 1) -> None:
        if every_nth < 1:
            raise ValueError("every_nth must be >= 1")
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self.every_nth = int(every_nth)
        self.calls = 0
        self.admitted = 0
        self._last: float | None = None

    def admit(self, t: float, changed: bool = False) -> bool:
        """True if a frame at scene time ``t`` (seconds) should be drawn.

        ``changed``: the frame says something new (another picture or message), so it is drawn at once;
        only refreshes of the same content are limited. A child waits for the picture, not the
        spectrogram: under a 10 fps limit a new picture waited up to 100 ms behind the last refresh.
        Changes come at most once per decision hop, so this cannot flood a slow screen."""
        self.calls += 1
        if not changed:
            if (self.calls - 1) % self.every_nth:
                return False
            # A clock that jumps back (a new playlist, a restarted sim) starts afresh.
            if self._last is not None and 0.0 <= t - self._last < self.min_interval - 1e-9:
                return False
        self._last = t
        self.admitted += 1
        return True


def content_key(scene: Scene) -> tuple:
    """What a frame *says*: its mode, class and picture, and a prompt's message. Everything else is a
    refresh (the sound and camera screens' status lines carry the level and note count, new every frame)."""
    return scene.mode, scene.label, scene.picture, scene.status if scene.mode == "prompt" else None


# ---------------------------------------------------------------- backends


class _RenderedDisplay(Display):
    """Shared by both backends: rate limit, render into ``surface``, count drops."""

    def __init__(self, size, cfg: DisplayConfig, renderer: RendererFactory) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.renderer = renderer(self.size)
        self.limiter = RateLimiter(cfg.max_fps, cfg.every_nth)
        self.surface = None  # the last rendered frame (pygame.Surface), for tests and tools
        self.shown = 0
        self.dropped = 0
        self._content = None  # what the last drawn frame said (content_key)

    def show(self, scene: Scene) -> None:
        """Draw ``scene`` now, or drop it if the rate limit says so; never blocks; nothing after close().

        A scene that changes what the screen says (``content_key``) is never dropped."""
        if self.is_closed:
            return
        self.pump()
        content = content_key(scene)
        if self.is_closed or not self.limiter.admit(scene.timestamp, changed=content != self._content):
            self.dropped += 1
            return
        self._content = content
        self.surface = self.renderer.render(scene, self.surface)
        self._present(self.surface)
        self.shown += 1

    def pump(self) -> None:
        """Handle window events; ``show`` does it too, call it when idle to stay responsive."""

    def _present(self, surface) -> None:  # pragma: no cover - abstract in spirit
        pass


class PygameDisplay(_RenderedDisplay):
    """The real screen: a window, or fullscreen via KMS/DRM on a Pi without X.

    Events are pumped on every ``show`` so the window stays responsive; a window
    close or Escape sets ``quit_requested`` (the app decides what to do with it).
    """

    backend = "real"

    def __init__(self, cfg: DisplayConfig = DisplayConfig(), *, renderer: RendererFactory) -> None:
        self._pg = _import_pygame()
        self.quit_requested = False
        self._fullscreen = cfg.fullscreen
        screen = self._open_screen((cfg.width, cfg.height))
        self.screen = screen
        self.driver = self._pg.display.get_driver()
        super().__init__(screen.get_size(), cfg, renderer)

    def _open_screen(self, size):
        pygame = self._pg
        wanted = _wanted_driver()
        set_driver = wanted is not None and not os.environ.get("SDL_VIDEODRIVER")
        if set_driver:
            os.environ["SDL_VIDEODRIVER"] = wanted
        try:
            pygame.display.init()
            if self._fullscreen:
                # (0, 0) = the screen's native mode; the renderer lays out for any size.
                screen = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            else:
                screen = pygame.display.set_mode(tuple(size))
            pygame.display.set_caption("Say-and-See")
            pygame.mouse.set_visible(False)  # a touchscreen toy has no pointer
        except pygame.error as e:
            pygame.display.quit()
            note = _drivers_note(sdl_video_drivers(), wanted)
            if set_driver:  # leave the environment as we found it for the sim fallback
                del os.environ["SDL_VIDEODRIVER"]
            raise DisplayUnavailable(
                f"display: cannot open a screen with SDL driver '{wanted or 'default'}': {one_line(e)}{note}"
            ) from None
        # SDL wants events pumped on the thread that set the video mode; the app
        # draws from its own display thread, so `pump` re-opens there once.
        self._owner = threading.get_ident()
        return screen

    def pump(self) -> None:
        """Handle window events (QUIT/Escape set ``quit_requested``); call when idle."""
        pg = self._pg
        if threading.get_ident() != self._owner:
            log.debug("display: moving the screen to the drawing thread")
            pg.display.quit()
            try:
                self.screen = self._open_screen(self.size)
            except DisplayUnavailable as e:
                log.error("%s; display off", e)
                self.is_closed = True  # stop trying: one error line, not one per frame
                return
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key == pg.K_ESCAPE):
                self.quit_requested = True

    def _present(self, surface) -> None:
        self.screen.blit(surface, (0, 0))
        self._pg.display.flip()

    def _close(self) -> None:
        self._pg.display.quit()


class PngDisplay(_RenderedDisplay):
    """The simulated screen: renders the same Surface and writes ``frame_000123.png``.

    ``out_dir=None`` renders without writing (``surface`` still holds the frame).
    ``frames`` lists the written paths; writing stops after ``cfg.max_frames``.
    """

    backend = "sim"

    def __init__(self, cfg: DisplayConfig = DisplayConfig(), *, renderer: RendererFactory,
                 out_dir: str | os.PathLike | None = None) -> None:
        super().__init__((cfg.width, cfg.height), cfg, renderer)
        self._pg = _import_pygame()
        self.out_dir = Path(out_dir) if out_dir else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_frames = cfg.max_frames
        self.frames: list[Path] = []
        self._cap_logged = False

    def _present(self, surface) -> None:
        if self.out_dir is None:
            return
        if len(self.frames) >= self.max_frames:
            if not self._cap_logged:
                self._cap_logged = True
                log.warning("display: sim reached max_frames=%d; not writing more frames", self.max_frames)
            return
        path = self.out_dir / f"frame_{len(self.frames):06d}.png"
        self._pg.image.save(surface, str(path))
        self.frames.append(path)


# ---------------------------------------------------------------- factory


def open_display(
    backend: str | None = None,
    cfg: DisplayConfig | None = None,
    *,
    renderer: RendererFactory,
    out_dir: str | os.PathLike | None = None,
) -> Display:
    """Open the display backend: "real" (pygame screen), "sim" (PNG frames) or "auto".

    ``cfg`` is the ``[display]`` section (size = the sim/window size; fullscreen
    uses the screen's own mode). ``renderer`` builds the renderer for a size;
    ``out_dir`` is where the sim writes frames (None: render only).
    "auto" picks real only when a screen is present and it opens, else sim; one
    log line says which and why, and a screen that won't open adds one warning
    naming SDL's drivers. "real" that can't open raises ``DisplayUnavailable``
    (a ``HardwareError``) with a one-line reason. ``backend`` None means
    ``cfg.backend``; ``cfg`` None, the defaults.
    """
    cfg = cfg if cfg is not None else DisplayConfig()
    backend = cfg.backend if backend is None else backend
    sim_why = f"PNG frames in {out_dir}" if out_dir else "rendered, frames not saved"
    # For "auto" a screen must be present; an explicit "real" only needs pygame
    # (SDL itself then says what's wrong, and SDL_VIDEODRIVER=dummy works for tests).
    probe_real = _screen_present if normalise(backend) == "auto" else _pygame_usable

    def real() -> Display:
        d = PygameDisplay(cfg, renderer=renderer)
        log.debug("display: SDL driver %s, %dx%d", d.driver, *d.size)
        return d

    return open_chosen("display", backend, probe_real, real,
                       lambda: PngDisplay(cfg, renderer=renderer, out_dir=out_dir), sim_why=sim_why)
