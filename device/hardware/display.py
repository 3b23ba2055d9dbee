"""The display: a pygame screen (real) or PNG frames on disk (sim), one renderer.

``open_display(backend="auto")`` decides once, at the edge, like gpiozero's pin
factories: "real" when a screen is present (an X/Wayland session, or a KMS/DRM
card on a Pi without X), else "sim", logging one line that says which and why.
Both backends draw with ``device.screen.render.Renderer``, so the PNG frames of a
simulated run are pixel for pixel what the screen would show; tests run the real
backend headless with ``SDL_VIDEODRIVER=dummy`` through the same code path.

The display must never hold up audio: ``show`` only draws (a few ms), and a rate
limit (``max_fps``, ``every_nth``) *drops* frames instead of queueing them. The
limit uses ``Scene.timestamp``, so a simulated run paced faster than real time
still writes frames at the scene's own clock, and the sim backend stops writing
after ``max_frames`` so a long run can't fill the SD card.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from pathlib import Path

from device.hardware.base import Display, Scene
from device.hardware.select import HardwareError, Probe, check_import, choose_backend, one_line

log = logging.getLogger("saysee.hardware")
# pygame prints a banner on import; journald doesn't need it.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

DEFAULT_SIZE = (800, 480)


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
    ok, why, _ = check_import("pygame", "pip install pygame")
    return ok, why


def probe() -> list[Probe]:
    """Each display backend as (backend, usable, why), for ``python -m device check``.

    Opens nothing: a probe must not grab the screen from a running box.
    """
    ok, why = _pygame_usable()
    if not ok:
        return [("real", False, why), ("sim", False, why)]
    pygame = _import_pygame()
    present, why = _screen_present()
    png = "PNG frames" if pygame.image.get_extended() else "BMP frames only (pygame built without SDL_image)"
    return [("real", present, why), ("sim", True, f"pygame {pygame.version.ver}: {png}")]


# ---------------------------------------------------------------- rate limiting


class RateLimiter:
    """Admit at most one frame per ``1/max_fps`` s of scene time, and only every n-th call.

    Frames are dropped, never queued: a slow display must not delay the pipeline.
    """

    def __init__(self, max_fps: float | None = 10.0, every_nth: int = 1) -> None:
        if every_nth < 1:
            raise ValueError("every_nth must be >= 1")
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self.every_nth = int(every_nth)
        self.calls = 0
        self.admitted = 0
        self._last: float | None = None

    def admit(self, t: float) -> bool:
        """True if a frame at scene time ``t`` (seconds) should be drawn."""
        self.calls += 1
        if (self.calls - 1) % self.every_nth:
            return False
        # A clock that jumps back (a new playlist, a restarted sim) starts afresh.
        if self._last is not None and 0.0 <= t - self._last < self.min_interval - 1e-9:
            return False
        self._last = t
        self.admitted += 1
        return True


# ---------------------------------------------------------------- backends


class _RenderedDisplay(Display):
    """Shared by both backends: rate limit, render into ``surface``, count drops."""

    def __init__(self, size, max_fps, every_nth, renderer=None) -> None:
        from device.screen.render import Renderer  # lazy: `probe` must work where pygame is missing

        self.size = (int(size[0]), int(size[1]))
        self.renderer = renderer or Renderer(self.size)
        self.limiter = RateLimiter(max_fps, every_nth)
        self.surface = None  # the last rendered frame (pygame.Surface), for tests and tools
        self.shown = 0
        self.dropped = 0

    def show(self, scene: Scene) -> None:
        """Draw ``scene`` now, or drop it if the rate limit says so; never blocks."""
        if self.is_closed:
            return
        self.pump()
        if self.is_closed or not self.limiter.admit(scene.timestamp):
            self.dropped += 1
            return
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

    def __init__(self, size=DEFAULT_SIZE, fullscreen=True, max_fps=10.0, every_nth=1, renderer=None) -> None:
        self._pg = _import_pygame()
        self.quit_requested = False
        self._fullscreen = fullscreen
        screen = self._open_screen(size)
        self.screen = screen
        self.driver = self._pg.display.get_driver()
        super().__init__(screen.get_size(), max_fps, every_nth, renderer)

    def _open_screen(self, size):
        pygame = self._pg
        set_driver = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("SDL_VIDEODRIVER"))
        if set_driver:
            # A Pi console without X: SDL must draw straight to the DRM/KMS device.
            os.environ["SDL_VIDEODRIVER"] = "kmsdrm"
        driver = os.environ.get("SDL_VIDEODRIVER", "default")
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
            if set_driver:  # leave the environment as we found it for the sim fallback
                del os.environ["SDL_VIDEODRIVER"]
            raise DisplayUnavailable(f"display: cannot open a screen with SDL driver '{driver}': {one_line(e)}") from None
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
    ``frames`` lists the written paths; writing stops after ``max_frames``.
    """

    backend = "sim"

    def __init__(self, size=DEFAULT_SIZE, out_dir=None, max_fps=10.0, every_nth=1, max_frames=3000, renderer=None) -> None:
        super().__init__(size, max_fps, every_nth, renderer)
        self._pg = _import_pygame()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.max_frames = max_frames
        self.frames: list[Path] = []
        self._cap_logged = False

    def _present(self, surface) -> None:
        if self.out_dir is None:
            return
        if self.max_frames is not None and len(self.frames) >= self.max_frames:
            if not self._cap_logged:
                self._cap_logged = True
                log.warning("display: sim reached max_frames=%d; not writing more frames", self.max_frames)
            return
        path = self.out_dir / f"frame_{len(self.frames):06d}.png"
        self._pg.image.save(surface, str(path))
        self.frames.append(path)


# ---------------------------------------------------------------- factory


def open_display(
    backend: str = "auto",
    size: tuple[int, int] = DEFAULT_SIZE,
    out_dir: str | os.PathLike | None = None,
    fullscreen: bool = True,
    max_fps: float | None = 10.0,
    every_nth: int = 1,
    max_frames: int | None = 3000,  # ~90 KB each: about 260 MB, 5 min at 10 fps
) -> Display:
    """Open the display backend: "real" (pygame screen), "sim" (PNG frames) or "auto".

    "auto" picks real only when a screen is present (and it opens), else sim;
    one log line says which and why. "real" that can't open raises
    ``DisplayUnavailable`` (a ``HardwareError``) with a one-line reason.
    ``size`` is the sim/window size; fullscreen uses the screen's own mode.
    """
    sim_why = f"PNG frames in {out_dir}" if out_dir else "rendered, frames not saved"
    # For "auto" a screen must be present; an explicit "real" only needs pygame
    # (SDL itself then says what's wrong, and SDL_VIDEODRIVER=dummy works for tests).
    probe_real = _screen_present if str(backend).strip().lower() == "auto" else _pygame_usable
    choice = choose_backend("display", backend, probe_real, sim_why=sim_why)
    if choice == "real":
        try:
            d = PygameDisplay(size, fullscreen, max_fps, every_nth)
        except DisplayUnavailable as e:
            if str(backend).strip().lower() != "auto":
                raise
            log.warning("display: real screen did not open (%s); using sim (%s)", e, sim_why)
        else:
            log.debug("display: SDL driver %s, %dx%d", d.driver, *d.size)
            return d
    return PngDisplay(size, out_dir, max_fps, every_nth, max_frames)
