"""Draw a Scene onto a pygame Surface: the one renderer behind every display.

The real display (a window or the Pi's KMS/DRM screen) and the simulated one
(PNG frames) both call ``Renderer.render``, so a test on the sim backend checks
exactly the pixels a child sees. Rendering is pure: the same Scene gives the same
pixels (nearest-neighbour scaling, no clocks, no randomness), and nothing here
opens a window or needs a display.

Sound mode (after the "Sound-to-Image" UI): the heard class's picture, large, in
a frame of the class colour with its name; probability bars for every class,
the top one highlighted; a scrolling log-mel spectrogram underneath. With no
label, a friendly "listening..." card with an ear, sound waves and a level meter.

Marimba mode: the camera view with the struck bars outlined in their note
colours, the notes now playing, and a scrolling piano roll with note names.

The spectrogram colour map is a small table in numpy (no matplotlib on the box)
and reaches the Surface through ``pygame.surfarray``.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from device.config import DisplayConfig  # noqa: E402
from device.frontend import DIATONIC_C4_F6  # noqa: E402
from device.hardware.base import Scene  # noqa: E402
from device.screen.palette import note_colour  # noqa: E402
from device.sound.labels import UNKNOWN  # noqa: E402
from device.sound.pipeline import spectrogram_frames  # noqa: E402
from device.screen.pictures import arc_band, draw_picture, rgb255, tint  # noqa: E402

log = logging.getLogger("saysee.display")

# The [display] section's default (the official Raspberry Pi touchscreen): one source.
DEFAULT_SIZE = (DisplayConfig().width, DisplayConfig().height)
# Natural-log mel power from device.frontend: digital silence is ln(1e-6) = -13.8,
# a full-scale tone peaks near +6. A fixed range keeps a quiet room dark and
# old columns from changing colour when a loud sound arrives.
DEFAULT_SPEC_RANGE = (-12.0, 4.0)
DEFAULT_SPEC_FRAMES = spectrogram_frames()  # the pipeline's whole history across the strip; fewer are right-aligned

# Palette: a warm picture-book page with dark-blue ink.
BACKGROUND = (253, 248, 236)
CARD = (255, 255, 255)
INK = (45, 40, 60)
MUTED = (130, 140, 160)
BAR = (150, 165, 195)
TRACK = (232, 235, 242)
STATUS_BG = (60, 64, 86)
STATUS_INK = (245, 245, 250)
SPEC_BG = (0, 0, 4)  # colour map's zero, so an empty strip looks like silence
LISTEN = (0.35, 0.6, 1.0)  # colour of the listening card
TEACH_ME = (0.95, 0.55, 0.1)  # the "what's that? teach me!" card: warm, unlike any "heard" frame

# Inferno-like anchors (perceptually ordered dark -> bright), interpolated to 256 entries.
_CMAP_ANCHORS = np.array(
    [
        (0, 0, 4),
        (40, 11, 84),
        (101, 21, 110),
        (159, 42, 99),
        (212, 72, 66),
        (245, 125, 21),
        (250, 193, 39),
        (252, 255, 164),
    ],
    dtype=np.float64,
)
COLORMAP: np.ndarray = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_CMAP_ANCHORS)), _CMAP_ANCHORS[:, k]) for k in range(3)],
    axis=1,
).round().astype(np.uint8)

_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


# ---------------------------------------------------------------- pure helpers


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in 0..1 (any shape) -> uint8 RGB (shape + (3,)) through ``COLORMAP``."""
    idx = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)) * 255.0 + 0.5, 0, 255).astype(np.intp)
    return COLORMAP[idx]


def spectrogram_rgb(spec: np.ndarray, spec_range: tuple[float, float] = DEFAULT_SPEC_RANGE) -> np.ndarray:
    """(frames, mels) log-mel -> (frames, mels, 3) uint8 in surfarray order (x = time, y = mel).

    Mel bands are flipped so low frequencies end up at the bottom of the image.
    """
    lo, hi = spec_range
    norm = (np.asarray(spec, dtype=np.float64) - lo) / max(hi - lo, 1e-9)
    return colormap(norm[:, ::-1])


def note_name(midi: int) -> str:
    """MIDI number -> scientific pitch name, e.g. 60 -> 'C4', 61 -> 'C#4'."""
    return f"{_NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


default_note_colour = note_colour  # one palette: device.screen.palette


def ink_for(colour: tuple[float, float, float]) -> tuple[int, int, int]:
    """Dark ink on light colours (yellow, lime, cyan), white on the rest, for legibility."""
    r, g, b = colour
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else (255, 255, 255)


def scene_notes(scene: Scene) -> list[int]:
    """The MIDI notes of the marimba bars / piano-roll columns, lowest first.

    ``note_colours`` lists the configured notes; without it a 18-column roll is
    the default diatonic C4..F6 layout.
    """
    n_cols = None if scene.piano_roll is None else int(np.asarray(scene.piano_roll).shape[1])
    if scene.note_colours:
        notes = sorted(scene.note_colours)
        if n_cols is None or n_cols == len(notes):
            return notes
    if n_cols is None or n_cols == len(DIATONIC_C4_F6):
        return list(DIATONIC_C4_F6)
    return list(range(60, 60 + n_cols))


def scene_level(scene: Scene, spec_range: tuple[float, float] = DEFAULT_SPEC_RANGE) -> float:
    """Loudness 0..1 for the level meter: ``scene.level``, else the newest spectrogram frame."""
    if scene.level is not None:
        return float(min(max(scene.level, 0.0), 1.0))
    spec = scene.spectrogram
    if spec is None or np.asarray(spec).size == 0:
        return 0.0
    lo, hi = spec_range
    newest = float(np.max(np.asarray(spec)[-1]))
    return float(min(max((newest - lo) / max(hi - lo, 1e-9), 0.0), 1.0))


# ---------------------------------------------------------------- the renderer


class Renderer:
    """Draws Scenes at a fixed size; caches fonts and scaled pictures.

    ``layout(scene)`` returns the named screen regions a render uses (picture,
    bar tracks, spectrogram, camera, note regions, ...), so tests and tools can
    find things on screen without hard-coding coordinates.
    """

    def __init__(
        self,
        size: tuple[int, int] = DEFAULT_SIZE,
        spec_range: tuple[float, float] = DEFAULT_SPEC_RANGE,
        spec_frames: int | None = DEFAULT_SPEC_FRAMES,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.spec_range = spec_range
        self.spec_frames = spec_frames
        w, h = self.size
        # Layout is designed at 800x480 and scaled; `_k` keeps squares square.
        self._sx, self._sy = w / 800.0, h / 480.0
        self._k = min(self._sx, self._sy)
        self._fonts: dict[tuple[int, bool], pygame.font.Font] = {}
        self._pictures: dict[tuple, pygame.Surface] = {}
        self._missing_logged: set[str] = set()

    # ------------------------------------------------------------ geometry

    def _r(self, x: float, y: float, w: float, h: float) -> pygame.Rect:
        x0, y0 = round(x * self._sx), round(y * self._sy)
        return pygame.Rect(x0, y0, round((x + w) * self._sx) - x0, round((y + h) * self._sy) - y0)

    def layout(self, scene: Scene) -> dict[str, pygame.Rect]:
        """Named regions (pygame.Rect) of the screen for this scene's mode."""
        L: dict[str, pygame.Rect] = {"status": self._r(0, 452, 800, 28)}
        if scene.mode == "marimba":
            L["camera"] = self._r(10, 10, 420, 316)
            L["playing"] = self._r(10, 336, 420, 108)
            L["roll_panel"] = self._r(440, 10, 350, 434)
            p = L["roll_panel"]
            names_h = round(26 * self._k)
            L["roll"] = pygame.Rect(p.x + 6, p.y + 6, p.w - 12, p.h - 12 - names_h)
            L["roll_names"] = pygame.Rect(p.x + 6, L["roll"].bottom, p.w - 12, names_h)
            L["camera_image"] = self._camera_image_rect(scene, L["camera"])
            notes = scene_notes(scene)
            for note in notes:
                L[f"note:{note}"] = self._note_rect(scene, note, notes, L["camera_image"])
            return L
        if scene.mode == "prompt":
            L["card"] = self._r(10, 10, 780, 434)
            return L
        if scene.mode != "sound":
            raise ValueError(f"Scene.mode must be 'sound', 'marimba' or 'prompt', not {scene.mode!r}")
        L["frame"] = self._r(10, 10, 300, 332)
        side = round(256 * self._k)
        f = L["frame"]
        L["picture"] = pygame.Rect(f.centerx - side // 2, f.y + round(12 * self._k), side, side)
        L["name"] = pygame.Rect(f.x, L["picture"].bottom, f.w, f.bottom - L["picture"].bottom)
        L["level"] = pygame.Rect(f.x + round(30 * self._k), f.bottom - round(34 * self._k), f.w - round(60 * self._k), round(22 * self._k))
        L["bars"] = self._r(320, 10, 470, 332)
        L["spectrogram"] = self._r(10, 350, 780, 94)
        labels = list(scene.probabilities)
        if labels:
            b = L["bars"]
            top, avail = b.y + round(10 * self._k), b.h - round(20 * self._k)
            row_h = min(round(40 * self._k), avail // len(labels))
            top += (avail - row_h * len(labels)) // 2  # centre the rows vertically
            track_x, track_w = b.x + round(170 * self._sx), round(230 * self._sx)
            pad = max(2, row_h // 5)
            for i, label in enumerate(labels):
                y = top + i * row_h
                L[f"row:{label}"] = pygame.Rect(b.x + 4, y, b.w - 8, row_h)
                L[f"track:{label}"] = pygame.Rect(track_x, y + pad, track_w, row_h - 2 * pad)
        return L

    @staticmethod
    def _camera_image_rect(scene: Scene, panel: pygame.Rect) -> pygame.Rect:
        if scene.camera is None:
            return panel.inflate(-12, -12)
        h, w = np.asarray(scene.camera).shape[:2]
        inner = panel.inflate(-12, -12)
        k = min(inner.w / max(w, 1), inner.h / max(h, 1))  # fit, keep the aspect ratio
        rw, rh = max(1, round(w * k)), max(1, round(h * k))
        return pygame.Rect(inner.centerx - rw // 2, inner.centery - rh // 2, rw, rh)

    @staticmethod
    def _note_rect(scene: Scene, note: int, notes: Sequence[int], image: pygame.Rect) -> pygame.Rect:
        if note in scene.note_regions:
            fx, fy, fw, fh = scene.note_regions[note]
        else:
            i, n = notes.index(note), len(notes)
            fx, fy, fw, fh = i / n, 0.0, 1.0 / n, 1.0
        x0, y0 = image.x + round(fx * image.w), image.y + round(fy * image.h)
        return pygame.Rect(x0, y0, image.x + round((fx + fw) * image.w) - x0, image.y + round((fy + fh) * image.h) - y0)

    # ------------------------------------------------------------ text and pictures

    def font(self, size: float, bold: bool = False) -> pygame.font.Font:
        """pygame's bundled default font at ``size`` (scaled with the screen)."""
        px = max(8, round(size * self._k))
        key = (px, bold)
        if key not in self._fonts:
            if not pygame.font.get_init():
                pygame.font.init()
            f = pygame.font.Font(None, px)
            f.set_bold(bold)
            self._fonts[key] = f
        return self._fonts[key]

    def text(self, surf, text, size, colour, anchor="topleft", pos=(0, 0), bold=False, max_width=None) -> pygame.Rect:
        """Blit ``text`` anchored at ``pos``; shrinks (then trims) it to fit ``max_width``."""
        font = self.font(size, bold)
        while max_width and font.size(text)[0] > max_width and size > 10:
            size -= 2
            font = self.font(size, bold)
        if max_width:
            while len(text) > 1 and font.size(text)[0] > max_width:
                text = text[:-2] + "."
        img = font.render(text, True, colour)
        rect = img.get_rect(**{anchor: pos})
        surf.blit(img, rect)
        return rect

    def picture(self, scene: Scene, side: int) -> pygame.Surface:
        """The scene's picture scaled to ``side``; a fallback card if it can't be loaded."""
        key = (scene.picture, scene.label, tuple(scene.colour), side)
        if key in self._pictures:
            return self._pictures[key]
        img = None
        if scene.picture:
            try:
                img = pygame.image.load(str(scene.picture))
            except (pygame.error, FileNotFoundError, OSError) as e:
                if scene.picture not in self._missing_logged:
                    self._missing_logged.add(scene.picture)
                    log.warning("display: picture %s unusable (%s); showing a label card", scene.picture, e)
        if img is None:
            # No usable file: draw it now (a known class's drawing, else a label card).
            colour = tuple(scene.colour) if any(scene.colour) else None
            img = draw_picture(scene.label or "?", colour, side)
        if img.get_bitsize() not in (24, 32):  # smoothscale needs 24/32-bit pixels (e.g. palette PNGs)
            full = pygame.Surface(img.get_size(), pygame.SRCALPHA, 32)
            full.blit(img, (0, 0))
            img = full
        if img.get_size() != (side, side):
            img = pygame.transform.smoothscale(img, (side, side))
        if len(self._pictures) > 64:  # a user dataset could have many classes; keep memory bounded
            self._pictures.clear()
        self._pictures[key] = img
        return img

    # ------------------------------------------------------------ entry point

    def render(self, scene: Scene, surface: pygame.Surface | None = None) -> pygame.Surface:
        """Draw ``scene`` onto ``surface`` (a new Surface of ``self.size`` if None) and return it."""
        if surface is None:
            surface = pygame.Surface(self.size)
        L = self.layout(scene)
        surface.fill(BACKGROUND)
        if scene.mode == "marimba":
            self._draw_marimba(surface, scene, L)
        elif scene.mode == "prompt":
            self._draw_prompt(surface, scene, L)
        else:
            self._draw_sound(surface, scene, L)
        self._draw_status(surface, scene, L["status"])
        return surface

    # ------------------------------------------------------------ sound mode

    def _draw_sound(self, s: pygame.Surface, scene: Scene, L: dict[str, pygame.Rect]) -> None:
        radius = round(18 * self._k)
        if scene.generated is not None:
            self._draw_dream(s, scene, L, radius)
        elif scene.label is None:
            self._draw_listening(s, scene, L, radius)
        elif scene.label == UNKNOWN:
            self._draw_teach_me(s, L, radius)
        else:
            f = L["frame"]
            colour = rgb255(scene.colour)
            pygame.draw.rect(s, colour, f, border_radius=radius)
            pygame.draw.rect(s, INK, f, max(2, round(3 * self._k)), border_radius=radius)
            pic = L["picture"]
            s.blit(self.picture(scene, pic.w), pic)
            pygame.draw.rect(s, INK, pic.inflate(4, 4), 2)
            name = scene.label.replace("_", " ")
            self.text(s, name, 40, ink_for(scene.colour), "center", L["name"].center, bold=True, max_width=L["name"].w - 16)
        self._draw_bars(s, scene, L, radius)
        self._draw_spectrogram(s, scene.spectrogram, L["spectrogram"])

    def _draw_dream(self, s, scene: Scene, L, radius) -> None:
        """Dream mode: the picture generated from the sound, in a frame of the heard class's colour.

        For an unknown or taught sound this is what the generator makes of it, so the name line
        asks (unknown) or names it (taught); before any class is decided it says "dreaming...".
        """
        f = L["frame"]
        known = scene.label not in (None, UNKNOWN)
        frame = rgb255(scene.colour) if known else tint(TEACH_ME if scene.label == UNKNOWN else LISTEN, 0.55)
        pygame.draw.rect(s, frame, f, border_radius=radius)
        pygame.draw.rect(s, INK, f, max(2, round(3 * self._k)), border_radius=radius)
        pic = L["picture"]
        img = np.ascontiguousarray(np.asarray(scene.generated, dtype=np.uint8)[:, :, :3].transpose(1, 0, 2))
        s.blit(pygame.transform.scale(pygame.surfarray.make_surface(img), pic.size), pic)
        pygame.draw.rect(s, INK, pic.inflate(4, 4), 2)
        name = scene.label.replace("_", " ") if known else "what's that?" if scene.label == UNKNOWN else "dreaming..."
        self.text(s, name, 40, ink_for(scene.colour) if known else INK, "center", L["name"].center, bold=True,
                  max_width=L["name"].w - 16)

    def _draw_listening(self, s, scene, L, radius) -> None:
        f = L["frame"]
        pygame.draw.rect(s, tint(LISTEN, 0.55), f, border_radius=radius)
        pygame.draw.rect(s, INK, f, max(2, round(3 * self._k)), border_radius=radius)
        level = scene_level(scene, self.spec_range)
        self._draw_ear(s, (f.centerx + round(30 * self._k), f.y + round(120 * self._k)), level)
        self.text(s, "listening...", 40, INK, "center", (f.centerx, f.y + round(250 * self._k)), bold=True)
        self._draw_level(s, L["level"], level)

    def _draw_prompt(self, s, scene: Scene, L) -> None:
        """One big message on the whole card (teaching: "Make the sound now! (1 of 3)")."""
        f = L["card"]
        radius = round(18 * self._k)
        pygame.draw.rect(s, tint(scene.colour, 0.6), f, border_radius=radius)
        pygame.draw.rect(s, INK, f, max(2, round(3 * self._k)), border_radius=radius)
        self.text(s, scene.status, 40, INK, "center", f.center, bold=True, max_width=f.w - round(32 * self._k))

    def _draw_teach_me(self, s, L, radius) -> None:
        """A clear sound the box does not know: ask to be taught instead of showing a wrong picture."""
        f = L["frame"]
        pygame.draw.rect(s, tint(TEACH_ME, 0.6), f, border_radius=radius)
        pygame.draw.rect(s, INK, f, max(2, round(3 * self._k)), border_radius=radius)
        self.text(s, "?", 150, rgb255(TEACH_ME), "center", (f.centerx, f.y + round(120 * self._k)), bold=True)
        self.text(s, "What's that?", 40, INK, "center", (f.centerx, f.y + round(235 * self._k)), bold=True)
        self.text(s, "Teach me!", 32, INK, "center", (f.centerx, f.y + round(285 * self._k)), bold=True)

    def _draw_ear(self, s, centre, level: float) -> None:
        """A big cartoon ear with sound waves arriving; louder input lights more waves."""
        k = self._k
        cx, cy = centre
        skin, inner = (255, 214, 170), (240, 160, 130)
        w = max(2, round(4 * k))
        outer = pygame.Rect(0, 0, round(110 * k), round(170 * k))
        outer.center = (cx, cy)
        pygame.draw.ellipse(s, skin, outer)
        pygame.draw.ellipse(s, INK, outer, w)
        # the ear's inner fold: an arc opening to the left, plus the canal
        arc_band(s, inner, (cx + round(4 * k), cy - round(18 * k)), round(32 * k), -160, 115, max(3, round(13 * k)))
        pygame.draw.ellipse(s, inner, pygame.Rect(cx - round(16 * k), cy + round(10 * k), round(26 * k), round(34 * k)))
        lit = int(np.ceil(level * 3 - 1e-9))
        for i in range(3):  # waves travel from the left into the ear
            colour = rgb255(LISTEN) if i < lit else (200, 205, 220)
            arc_band(s, colour, (cx - round(175 * k), cy), round((52 + 30 * i) * k), -40, 40, max(3, round(11 * k)))

    def _draw_level(self, s, rect: pygame.Rect, level: float) -> None:
        """A segmented green -> yellow -> red meter (like a toy VU meter)."""
        n = 10
        gap = max(1, round(3 * self._k))
        seg_w = (rect.w - gap * (n - 1)) / n
        lit = int(round(level * n))
        for i in range(n):
            x0 = rect.x + round(i * (seg_w + gap))
            seg = pygame.Rect(x0, rect.y, round(seg_w), rect.h)
            on = (70, 200, 90) if i < 6 else (250, 200, 40) if i < 8 else (240, 70, 60)
            pygame.draw.rect(s, on if i < lit else (225, 228, 236), seg, border_radius=max(1, round(4 * self._k)))
        pygame.draw.rect(s, INK, rect.inflate(4, 4), 1, border_radius=max(1, round(4 * self._k)))

    def _draw_bars(self, s, scene: Scene, L, radius) -> None:
        b = L["bars"]
        pygame.draw.rect(s, CARD, b, border_radius=radius)
        pygame.draw.rect(s, INK, b, max(1, round(2 * self._k)), border_radius=radius)
        probs = scene.probabilities
        if not probs:
            self.text(s, "no sounds yet", 30, MUTED, "center", b.center)
            return
        top = scene.label if scene.label in probs else None
        for label, p in probs.items():
            row, track = L[f"row:{label}"], L[f"track:{label}"]
            p = float(min(max(p, 0.0), 1.0))
            is_top = label == top
            if is_top:
                pygame.draw.rect(s, tint(scene.colour, 0.7), row, border_radius=max(2, round(8 * self._k)))
            pygame.draw.rect(s, TRACK, track, border_radius=max(1, track.h // 3))
            bar_w = round(p * track.w)
            if bar_w:
                colour = rgb255(scene.colour) if is_top else BAR
                pygame.draw.rect(s, colour, (track.x, track.y, bar_w, track.h), border_radius=max(1, track.h // 3))
            name = label.replace("_", " ")
            size = min(26.0, row.h * 0.65 / self._k)
            self.text(s, name, size, INK, "midleft", (row.x + round(10 * self._k), row.centery), bold=is_top, max_width=track.x - row.x - round(16 * self._k))
            self.text(s, f"{round(p * 100):d}%", size, INK if is_top else MUTED, "midright", (row.right - round(8 * self._k), row.centery), bold=is_top)

    def _draw_spectrogram(self, s, spec, rect: pygame.Rect) -> None:
        pygame.draw.rect(s, SPEC_BG, rect)
        if spec is not None and np.asarray(spec).ndim == 2 and np.asarray(spec).size:
            spec = np.asarray(spec)
            cols = self.spec_frames
            if cols and len(spec) > cols:
                spec = spec[-cols:]
            img = pygame.surfarray.make_surface(spectrogram_rgb(spec, self.spec_range))
            # Right-align: newest on the right edge, the strip fills up as audio arrives.
            width = rect.w if not cols else max(1, round(rect.w * len(spec) / cols))
            img = pygame.transform.scale(img, (width, rect.h))
            s.blit(img, (rect.right - width, rect.y))
        else:
            self.text(s, "no sound yet", 22, (180, 170, 200), "center", rect.center)
        self.text(s, "what I hear", 18, (230, 225, 240), "topleft", (rect.x + 6, rect.y + 4))
        pygame.draw.rect(s, INK, rect, max(1, round(2 * self._k)))

    # ------------------------------------------------------------ marimba mode

    def _draw_marimba(self, s: pygame.Surface, scene: Scene, L: dict[str, pygame.Rect]) -> None:
        radius = round(14 * self._k)
        notes = scene_notes(scene)
        colours = {n: scene.note_colours.get(n, default_note_colour(n)) for n in notes}
        for n in scene.active_notes:
            colours.setdefault(n, scene.note_colours.get(n, default_note_colour(n)))
        cam = L["camera"]
        pygame.draw.rect(s, (30, 32, 44), cam, border_radius=radius)
        if scene.camera is not None:
            img = np.asarray(scene.camera)
            if img.ndim == 3:  # tolerate an RGB/stacked frame by showing its first channel
                img = img[..., 0]
            gray = np.ascontiguousarray(np.repeat(img.astype(np.uint8).T[:, :, None], 3, axis=2))
            view = pygame.transform.scale(pygame.surfarray.make_surface(gray), L["camera_image"].size)
            s.blit(view, L["camera_image"])
        else:
            self.text(s, "no camera", 30, (200, 200, 215), "center", cam.center)
        for note, velocity in sorted(scene.active_notes.items()):
            key = f"note:{note}"
            if key not in L:
                continue
            r = L[key]
            c = rgb255(colours[note])
            wash = pygame.Surface(r.size, pygame.SRCALPHA)
            wash.fill((*c, round(60 + 100 * min(max(velocity, 0.0), 1.0))))
            s.blit(wash, r)
            pygame.draw.rect(s, c, r, max(3, round(5 * self._k)))
        pygame.draw.rect(s, INK, cam, max(1, round(2 * self._k)), border_radius=radius)
        self._draw_playing(s, scene, L["playing"], colours, radius)
        self._draw_roll(s, scene, L, notes, colours, radius)

    def _draw_playing(self, s, scene, rect, colours, radius) -> None:
        pygame.draw.rect(s, CARD, rect, border_radius=radius)
        pygame.draw.rect(s, INK, rect, max(1, round(2 * self._k)), border_radius=radius)
        active = sorted(scene.active_notes)
        if not active:
            self.text(s, "play a bar!", 40, MUTED, "center", rect.center, bold=True)
            return
        shown = active[:6]
        r = min(round(40 * self._k), rect.h // 2 - 8, (rect.w - 20) // (2 * len(shown)) - 4)
        step = (rect.w - 20) / len(shown)
        for i, note in enumerate(shown):
            c = colours[note]
            centre = (rect.x + 10 + round(step * (i + 0.5)), rect.centery)
            pygame.draw.circle(s, rgb255(c), centre, r)
            pygame.draw.circle(s, INK, centre, r, max(2, round(3 * self._k)))
            self.text(s, note_name(note), r * 0.9 / self._k, ink_for(c), "center", centre, bold=True)

    def _draw_roll(self, s, scene, L, notes, colours, radius) -> None:
        panel, roll, names = L["roll_panel"], L["roll"], L["roll_names"]
        pygame.draw.rect(s, CARD, panel, border_radius=radius)
        bg = np.array((34, 36, 50), dtype=np.float64)
        pygame.draw.rect(s, tuple(int(v) for v in bg), roll)
        n = len(notes)
        if scene.piano_roll is not None and np.asarray(scene.piano_roll).size:
            pr = np.clip(np.nan_to_num(np.asarray(scene.piano_roll, dtype=np.float64)), 0.0, 1.0)[:, :n]
            cols = np.array([rgb255(colours[m]) for m in notes[: pr.shape[1]]], dtype=np.float64)
            # surfarray order (x = note, y = time step): newest step at the bottom, scrolling up.
            rgb = bg + pr.T[:, :, None] * (cols[:, None, :] - bg)
            img = pygame.transform.scale(pygame.surfarray.make_surface(rgb.round().astype(np.uint8)), roll.size)
            s.blit(img, roll)
        col_w = roll.w / max(n, 1)
        for i in range(1, n):  # faint lanes, one per bar
            x = roll.x + round(i * col_w)
            pygame.draw.line(s, (60, 64, 82), (x, roll.y), (x, roll.bottom - 1))
        for i, note in enumerate(notes):
            cell = pygame.Rect(roll.x + round(i * col_w), names.y, round((i + 1) * col_w) - round(i * col_w), names.h)
            c = colours[note]
            if note in scene.active_notes:
                pygame.draw.rect(s, rgb255(c), cell)
                ink = ink_for(c)
            else:
                pygame.draw.rect(s, tint(c, 0.75), cell)
                ink = INK
            name = note_name(note)
            self.text(s, name, min(18.0, col_w * 0.62 / self._k), ink, "center", cell.center, bold=note in scene.active_notes)
        pygame.draw.rect(s, INK, panel, max(1, round(2 * self._k)), border_radius=radius)

    # ------------------------------------------------------------ status line

    def _draw_status(self, s, scene: Scene, rect: pygame.Rect) -> None:
        pygame.draw.rect(s, STATUS_BG, rect)
        if scene.status:
            self.text(s, scene.status, 22, STATUS_INK, "midleft", (rect.x + round(12 * self._k), rect.centery), max_width=rect.w - round(24 * self._k))


_RENDERERS: dict[tuple[int, int], Renderer] = {}


def render_scene(scene: Scene, size: tuple[int, int] = DEFAULT_SIZE, surface: pygame.Surface | None = None) -> pygame.Surface:
    """Render ``scene`` at ``size`` with a cached default Renderer (for scripts and tests)."""
    key = (int(size[0]), int(size[1]))
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(key)
    return _RENDERERS[key].render(scene, surface)


def surface_to_array(surface: pygame.Surface) -> np.ndarray:
    """A Surface's pixels as a (height, width, 3) uint8 array (row-major, like an image)."""
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))

