"""Summaries of a run's display frames: a contact sheet PNG and an animated GIF.

A simulated run writes hundreds of ``frame_*.png``; a contact sheet shows the
story of the run in one image (for a README, an issue, a test report), and a GIF
shows it moving. The sheet uses pygame only, so it works on the device; the GIF
needs PIL, imported lazily and optional: without it ``animated_gif`` returns
None and logs why, instead of failing the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

log = logging.getLogger("saysee.display")

_BG = (40, 42, 56)
_LABEL = (235, 235, 245)


def pick_evenly(items: Sequence, n: int) -> list:
    """At most ``n`` items spread evenly from first to last (both always included)."""
    items = list(items)
    if n <= 0 or not items:
        return []
    if len(items) <= n:
        return items
    if n == 1:
        return [items[-1]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def contact_sheet(
    frame_paths: Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    columns: int = 4,
    max_frames: int = 16,
    thumb_width: int = 320,
) -> Path | None:
    """Tile up to ``max_frames`` frames (evenly picked) into one PNG; None if no frames.

    Each thumbnail is labelled with its frame's file name, so a reader can open
    the full-size frame.
    """
    chosen = pick_evenly([Path(p) for p in frame_paths], max_frames)
    if not chosen:
        log.warning("contact sheet: no frames to combine")
        return None
    if not pygame.font.get_init():
        pygame.font.init()
    font = pygame.font.Font(None, 18)
    first = pygame.image.load(str(chosen[0]))
    w0, h0 = first.get_size()
    tw = min(thumb_width, w0)
    th = max(1, round(h0 * tw / w0))
    label_h, gap = 18, 6
    columns = max(1, min(columns, len(chosen)))
    rows = -(-len(chosen) // columns)
    sheet = pygame.Surface((gap + columns * (tw + gap), gap + rows * (th + label_h + gap)))
    sheet.fill(_BG)
    for i, path in enumerate(chosen):
        img = first if i == 0 else pygame.image.load(str(path))
        if img.get_bitsize() not in (24, 32):
            img = _to_32(img)  # smoothscale needs 24/32-bit pixels
        thumb = pygame.transform.smoothscale(img, (tw, th))
        x = gap + (i % columns) * (tw + gap)
        y = gap + (i // columns) * (th + label_h + gap)
        sheet.blit(thumb, (x, y))
        sheet.blit(font.render(path.name, True, _LABEL), (x + 2, y + th + 2))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    pygame.image.save(sheet, str(out))
    return out


def _to_32(img: pygame.Surface) -> pygame.Surface:
    full = pygame.Surface(img.get_size(), pygame.SRCALPHA, 32)
    full.blit(img, (0, 0))
    return full


def animated_gif(
    frame_paths: Sequence[str | os.PathLike],
    out_gif: str | os.PathLike,
    fps: float = 4.0,
    max_frames: int = 200,
    width: int | None = 400,
) -> Path | None:
    """Write an animated GIF of the frames (at most ``max_frames``, evenly picked).

    Returns the path, or None when PIL isn't installed (the device venv) or there
    are no frames; either case is logged, not raised.
    """
    try:
        from PIL import Image  # optional: only the workstation has it
    except ImportError:
        log.info("animated GIF skipped: PIL (pillow) is not installed here")
        return None
    chosen = pick_evenly([Path(p) for p in frame_paths], max_frames)
    if not chosen:
        log.warning("animated GIF: no frames to combine")
        return None
    images = []
    for path in chosen:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if width and im.width > width:
                im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
            # An adaptive palette per frame keeps the class colours true in 256 colours.
            images.append(im.quantize(colors=256, method=Image.Quantize.MEDIANCUT))
    out = Path(out_gif)
    out.parent.mkdir(parents=True, exist_ok=True)
    duration_ms = max(20, round(1000.0 / max(fps, 0.01)))
    images[0].save(out, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False)
    return out
