"""Cheerful class pictures, drawn procedurally with pygame primitives.

The box shows a picture for every sound class it hears. Drawing them in code
(instead of shipping clip art) keeps the repository free of licensing questions
and lets ``python -m device.screen.pictures`` regenerate ``assets/images/*.png`` at any
size. Each picture is drawn at twice its final size and smooth-scaled down, which
gives anti-aliased edges without needing gfxdraw or PIL.

``fallback_picture`` covers classes that have no drawing (a user's own dataset):
a coloured card with the label written on it.

Only pygame and numpy are used, so this runs on the device as well.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from device.screen.palette import CLASS_COLOURS, Colour, class_colour  # noqa: E402,F401
from device.sound.labels import URBANSOUND_CLASSES  # noqa: E402,F401


DEFAULT_COLOURS = CLASS_COLOURS  # the name the picture tools and tests use

PICTURE_SIZE = 256
_INK = (45, 40, 60)  # the cartoon outline colour
_W = 512  # drawing canvas (2x supersampled); all coordinates below are in this space


# ---------------------------------------------------------------- colour helpers


def rgb255(colour: Colour) -> tuple[int, int, int]:
    """(r, g, b) in 0..1 -> pygame 0..255 ints (clipped)."""
    return tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in colour)  # type: ignore[return-value]


def tint(colour: Colour, amount: float) -> tuple[int, int, int]:
    """Mix a 0..1 colour towards white by ``amount`` (0 = colour, 1 = white)."""
    return rgb255(tuple(c + (1.0 - c) * amount for c in colour))  # type: ignore[arg-type]


def shade(colour: Colour, amount: float) -> tuple[int, int, int]:
    """Mix a 0..1 colour towards black by ``amount``."""
    return rgb255(tuple(c * (1.0 - amount) for c in colour))  # type: ignore[arg-type]


def _ensure_font() -> None:
    if not pygame.font.get_init():
        pygame.font.init()


def _font(size: int, bold: bool = True) -> pygame.font.Font:
    _ensure_font()
    f = pygame.font.Font(None, size)  # pygame's bundled font: no system fonts needed
    f.set_bold(bold)
    return f


# ---------------------------------------------------------------- drawing helpers
# Each helper fills a shape and then outlines it in ink: the thick dark outline
# is what makes a drawing read as a friendly cartoon at a glance.


def _ellipse(s, colour, rect, outline=6):
    pygame.draw.ellipse(s, colour, rect)
    if outline:
        pygame.draw.ellipse(s, _INK, rect, outline)


def _circle(s, colour, centre, r, outline=6):
    pygame.draw.circle(s, colour, centre, r)
    if outline:
        pygame.draw.circle(s, _INK, centre, r, outline)


def _rect(s, colour, rect, radius=0, outline=6):
    pygame.draw.rect(s, colour, rect, border_radius=radius)
    if outline:
        pygame.draw.rect(s, _INK, rect, outline, border_radius=radius)


def _poly(s, colour, points, outline=6):
    pygame.draw.polygon(s, colour, points)
    if outline:
        pygame.draw.polygon(s, _INK, points, outline)


def _thick_line(s, colour, a, b, width):
    """A line with round caps (pygame's wide lines have square, ragged ends)."""
    pygame.draw.line(s, colour, a, b, width)
    pygame.draw.circle(s, colour, a, width // 2)
    pygame.draw.circle(s, colour, b, width // 2)


def _rotated(points: Sequence[tuple[float, float]], angle_deg: float, centre: tuple[float, float]):
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cx, cy = centre
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca) for x, y in points]


def _ellipse_points(cx, cy, rx, ry, n=48):
    return [(cx + rx * math.cos(2 * math.pi * i / n), cy + ry * math.sin(2 * math.pi * i / n)) for i in range(n)]


def _text(s, text, centre, size, colour=_INK, outline_colour=None, angle=0.0):
    """Centred bold text, optionally with a thick outline (for 'BANG!'-style words)."""
    f = _font(size)
    img = f.render(text, True, colour)
    if outline_colour is not None:
        w, h = img.get_size()
        out = pygame.Surface((w + 8, h + 8), pygame.SRCALPHA)
        edge = f.render(text, True, outline_colour)
        for dx in (-4, -2, 0, 2, 4):
            for dy in (-4, -2, 0, 2, 4):
                out.blit(edge, (4 + dx, 4 + dy))
        out.blit(img, (4, 4))
        img = out
    if angle:
        img = pygame.transform.rotate(img, angle)
    s.blit(img, img.get_rect(center=centre))


def _bubble(s, rect, tail_to, text, size):
    """A white speech bubble with a tail pointing at ``tail_to``."""
    r = pygame.Rect(rect)
    tail = [(r.centerx - 20, r.bottom - 10), (r.centerx + 20, r.bottom - 10), tail_to]
    _poly(s, (255, 255, 255), tail)
    _ellipse(s, (255, 255, 255), r)
    pygame.draw.polygon(s, (255, 255, 255), [(r.centerx - 14, r.bottom - 14), (r.centerx + 14, r.bottom - 14), (tail_to[0], tail_to[1] - 10)])
    _text(s, text, r.center, size)


def arc_band(s, colour, centre, radius, start_deg, end_deg, width) -> None:
    """A thick arc drawn as one filled polygon, with round ends.

    pygame.draw.arc leaves moire holes in wide arcs; a polygon band is solid.
    Angles are screen angles in degrees (0 = right, 90 = down).
    """
    cx, cy = centre
    n = max(8, int(abs(end_deg - start_deg) / 4))
    angles = [math.radians(start_deg + (end_deg - start_deg) * i / n) for i in range(n + 1)]
    r_out, r_in = radius + width / 2, radius - width / 2
    outer = [(cx + r_out * math.cos(a), cy + r_out * math.sin(a)) for a in angles]
    inner = [(cx + r_in * math.cos(a), cy + r_in * math.sin(a)) for a in reversed(angles)]
    pygame.draw.polygon(s, colour, outer + inner)
    for a in (angles[0], angles[-1]):
        pygame.draw.circle(s, colour, (cx + radius * math.cos(a), cy + radius * math.sin(a)), width / 2)


def _waves(s, centre, radii, start_deg, end_deg, colour, width=10):
    """Concentric arcs: the universal cartoon sign for 'this makes a sound'."""
    for r in radii:
        arc_band(s, colour, centre, r, start_deg, end_deg, width)


def _background(s, colour: Colour):
    s.fill(tint(colour, 0.78))
    # A few soft dots make the flat card feel like a picture-book page.
    dot = tint(colour, 0.68)
    for x, y, r in ((60, 70, 26), (455, 430, 34), (430, 60, 18), (80, 440, 16), (250, 40, 10)):
        pygame.draw.circle(s, dot, (x, y), r)


def _ground(s, colour, y=430):
    pygame.draw.rect(s, colour, (0, y, _W, _W - y))
    pygame.draw.line(s, _INK, (0, y), (_W, y), 6)


def _wheel(s, centre, r=44):
    _circle(s, (60, 60, 70), centre, r)
    _circle(s, (200, 200, 210), centre, r // 2, outline=5)


# ---------------------------------------------------------------- the pictures


def _dog_bark(s, colour):
    _background(s, colour)
    _ground(s, (120, 200, 90), 440)
    fur, light, dark = (196, 128, 62), (240, 200, 150), (120, 70, 35)
    # tail, wagging up
    _thick_line(s, _INK, (150, 300), (78, 200), 34)
    _thick_line(s, fur, (150, 300), (78, 200), 22)
    # back legs and body
    _ellipse(s, fur, (100, 330, 90, 120))
    _ellipse(s, fur, (110, 250, 250, 150))
    # front legs with paws
    for x in (250, 305):
        _rect(s, fur, (x, 330, 44, 100), radius=14)
        _ellipse(s, light, (x - 6, 412, 58, 32))
    # belly patch
    pygame.draw.ellipse(s, light, (170, 330, 120, 50))
    # head
    _circle(s, fur, (330, 210), 88)
    _ellipse(s, light, (345, 200, 130, 86))  # snout
    _ellipse(s, (30, 25, 35), (448, 206, 40, 30), outline=0)  # nose
    pygame.draw.circle(s, (255, 255, 255), (458, 213), 5)
    # open barking mouth with tongue
    _poly(s, (160, 40, 60), [(380, 262), (455, 250), (430, 300), (395, 296)])
    _ellipse(s, (255, 110, 130), (395, 270, 40, 34), outline=4)
    # eye with a sparkle
    _circle(s, (255, 255, 255), (345, 170), 22, outline=5)
    pygame.draw.circle(s, _INK, (352, 172), 12)
    pygame.draw.circle(s, (255, 255, 255), (356, 167), 4)
    # floppy ear
    ear = _rotated(_ellipse_points(270, 200, 34, 70), 25, (270, 200))
    _poly(s, dark, ear)
    # collar and tag
    pygame.draw.line(s, (220, 40, 40), (265, 285), (330, 300), 14)
    _circle(s, (255, 210, 40), (300, 312), 12, outline=4)
    _bubble(s, (300, 20, 200, 100), (380, 125), "WOOF!", 64)


def _siren(s, colour):
    _background(s, colour)
    _ground(s, (150, 150, 160), 430)
    for x in range(20, _W, 120):  # road markings
        pygame.draw.rect(s, (250, 250, 250), (x, 465, 70, 12))
    # light rays from the siren on the roof
    for i, ang in enumerate(range(200, 345, 16)):
        a = math.radians(ang)
        c = (255, 60, 60) if i < 5 else (60, 120, 255)
        pygame.draw.line(s, c, (256 + 60 * math.cos(a), 150 + 60 * math.sin(a)), (256 + 110 * math.cos(a), 150 + 110 * math.sin(a)), 10)
    # cabin and body
    _poly(s, (250, 250, 255), [(150, 250), (190, 180), (330, 180), (385, 250)])
    _poly(s, (150, 210, 255), [(175, 245), (205, 195), (250, 195), (250, 245)], outline=4)
    _poly(s, (150, 210, 255), [(270, 245), (270, 195), (320, 195), (355, 245)], outline=4)
    _rect(s, (250, 250, 255), (60, 245, 400, 120), radius=30)
    pygame.draw.rect(s, (30, 70, 200), (64, 290, 392, 34))  # blue stripe
    _text(s, "POLICE", (260, 308), 38, (255, 255, 255))
    pygame.draw.rect(s, _INK, (60, 245, 400, 120), 6, border_radius=30)
    _rect(s, (255, 230, 120), (436, 262, 24, 22), radius=6, outline=4)  # headlight
    # the siren light bar: half red, half blue
    _rect(s, (255, 40, 40), (206, 142, 52, 40), radius=10)
    _rect(s, (40, 100, 255), (256, 142, 52, 40), radius=10)
    _wheel(s, (150, 370))
    _wheel(s, (370, 370))
    _text(s, "WEE-WOO!", (256, 22 + 14), 62, (255, 255, 255), outline_colour=_INK)


def _car_horn(s, colour):
    _background(s, colour)
    _ground(s, (150, 150, 160), 430)
    body = (235, 50, 60)
    # a round, bubbly little car facing right
    _poly(s, body, [(120, 260), (170, 170), (300, 165), (350, 250)])
    _poly(s, (170, 220, 255), [(150, 255), (185, 190), (240, 188), (240, 255)], outline=4)
    _poly(s, (170, 220, 255), [(258, 255), (258, 186), (295, 186), (330, 255)], outline=4)
    _rect(s, body, (50, 245, 360, 125), radius=44)
    pygame.draw.line(s, shade((0.92, 0.2, 0.23), 0.3), (240, 260), (240, 360), 5)  # door
    _rect(s, (255, 240, 150), (388, 270, 26, 28), radius=8, outline=4)  # headlight
    _wheel(s, (135, 372))
    _wheel(s, (325, 372))
    # the horn and its sound
    _waves(s, (415, 280), (32, 58, 84), -55, 55, _INK, 12)
    _text(s, "BEEP!", (360, 80), 84, (255, 255, 255), outline_colour=_INK, angle=8)


def _air_conditioner(s, colour):
    _background(s, colour)
    # the unit
    _rect(s, (240, 244, 250), (70, 70, 372, 250), radius=26)
    for y in range(100, 300, 22):  # side grille
        pygame.draw.line(s, (160, 170, 190), (96, y), (170, y), 6)
    # fan with four blades
    c = (310, 195)
    _circle(s, (200, 230, 250), c, 95)
    for k in range(4):
        blade = _rotated([(310, 195), (330, 120), (360, 135), (322, 200)], 90 * k + 10, c)
        _poly(s, (70, 170, 230), blade, outline=4)
    _circle(s, (230, 240, 250), c, 18, outline=5)
    pygame.draw.circle(s, _INK, c, 95, 6)
    # cool wavy air below
    for i, x in enumerate((120, 200, 280, 360)):
        pts = [(x + 16 * math.sin((y - 340) / 14.0 + i), y) for y in range(340, 470, 4)]
        pygame.draw.lines(s, (40, 150, 230), False, pts, 9)
    _snowflake(s, (450, 400), 40)
    _snowflake(s, (60, 400), 28)


def _snowflake(s, centre, r):
    cx, cy = centre
    for k in range(6):
        a = math.radians(60 * k)
        tip = (cx + r * math.cos(a), cy + r * math.sin(a))
        pygame.draw.line(s, (255, 255, 255), centre, tip, 8)
        for side in (-1, 1):
            b = a + side * math.radians(35)
            mid = (cx + 0.6 * r * math.cos(a), cy + 0.6 * r * math.sin(a))
            pygame.draw.line(s, (255, 255, 255), mid, (mid[0] + 0.35 * r * math.cos(b), mid[1] + 0.35 * r * math.sin(b)), 6)


def _kid(s, x, y, shirt, hair, arm_up_left=True):
    """A cheerful stick-figure child with a round face, standing at (x, y) = feet."""
    head = (x, y - 230)
    hip = (x, y - 90)
    pygame.draw.line(s, _INK, hip, (x - 40, y), 12)  # legs
    pygame.draw.line(s, _INK, hip, (x + 40, y), 12)
    _poly(s, shirt, [(x - 34, y - 185), (x + 34, y - 185), (x + 48, y - 85), (x - 48, y - 85)])  # dress/shirt
    la = (x - 85, y - 275) if arm_up_left else (x - 85, y - 120)
    pygame.draw.line(s, _INK, (x - 25, y - 170), la, 12)
    pygame.draw.line(s, _INK, (x + 25, y - 170), (x + 85, y - 120 if arm_up_left else y - 275), 12)
    _circle(s, (255, 214, 170), head, 48)
    pygame.draw.arc(s, hair, (head[0] - 52, head[1] - 54, 104, 90), math.radians(10), math.radians(170), 22)
    pygame.draw.circle(s, _INK, (head[0] - 16, head[1] - 4), 7)
    pygame.draw.circle(s, _INK, (head[0] + 16, head[1] - 4), 7)
    pygame.draw.arc(s, _INK, (head[0] - 22, head[1] - 8, 44, 34), math.radians(200), math.radians(340), 6)
    pygame.draw.circle(s, (255, 150, 150), (head[0] - 28, head[1] + 12), 7)  # rosy cheeks
    pygame.draw.circle(s, (255, 150, 150), (head[0] + 28, head[1] + 12), 7)
    return la


def _children_playing(s, colour):
    _background(s, colour)
    _circle(s, (255, 215, 60), (440, 70), 42, outline=0)  # sun
    _ground(s, (120, 205, 90), 440)
    hand = _kid(s, 160, 440, (80, 150, 255), (120, 70, 30), arm_up_left=True)
    _kid(s, 350, 440, (255, 120, 60), (240, 190, 60), arm_up_left=False)
    # balloon on a string from the raised hand
    pygame.draw.lines(s, _INK, False, [hand, (hand[0] - 10, hand[1] - 40), (hand[0] + 5, hand[1] - 80), (hand[0] - 5, hand[1] - 110)], 4)
    _ellipse(s, (240, 40, 80), (hand[0] - 48, hand[1] - 210, 86, 104))
    pygame.draw.ellipse(s, (255, 160, 180), (hand[0] - 28, hand[1] - 190, 20, 30))
    # a ball between them
    _circle(s, (255, 230, 60), (255, 415), 26)
    pygame.draw.arc(s, (230, 60, 60), (229, 389, 52, 52), math.radians(-60), math.radians(60), 8)


def _drilling(s, colour):
    _background(s, colour)
    # a plank being drilled
    _rect(s, (214, 160, 100), (330, 300, 160, 170), radius=6)
    for y in (340, 385, 430):
        pygame.draw.line(s, (170, 115, 60), (345, y), (470, y - 8), 4)
    # drill body (yellow), handle, battery
    body = (250, 200, 40)
    _rect(s, (70, 70, 80), (120, 270, 70, 150), radius=18)  # handle
    _rect(s, (60, 60, 70), (95, 405, 125, 50), radius=12)  # battery
    _rect(s, body, (60, 150, 250, 130), radius=50)
    _rect(s, (70, 70, 80), (300, 180, 40, 70), radius=8)  # chuck
    _rect(s, (220, 60, 60), (175, 270, 26, 40), radius=6, outline=4)  # trigger
    pygame.draw.circle(s, (255, 240, 180), (115, 190), 14)  # shine
    # the bit, with a spiral
    _rect(s, (190, 195, 210), (336, 204, 110, 22), radius=4, outline=4)
    for x in range(350, 440, 18):
        pygame.draw.line(s, _INK, (x, 206), (x + 10, 224), 4)
    # spinning marks and sawdust
    _waves(s, (450, 215), (30, 52), -70, 70, _INK, 7)
    for x, y in ((480, 290), (460, 320), (495, 330), (470, 265)):
        pygame.draw.circle(s, (190, 140, 80), (x, y), 7)
    _text(s, "BRRRR!", (190, 70), 72, (255, 255, 255), outline_colour=_INK, angle=-6)


def _gear(s, centre, r, teeth, colour):
    cx, cy = centre
    pts = []
    for i in range(teeth * 2):
        a = math.pi * i / teeth
        rr = r if i % 2 == 0 else r * 0.78
        for da in (-0.22, 0.22):
            pts.append((cx + rr * math.cos(a + da * math.pi / teeth), cy + rr * math.sin(a + da * math.pi / teeth)))
    _poly(s, colour, pts, outline=5)
    _circle(s, (90, 90, 100), centre, int(r * 0.3), outline=5)


def _engine_idle(s, colour):
    _background(s, colour)
    # exhaust pipe and puffs of smoke drifting up-right
    _rect(s, (120, 120, 130), (360, 150, 40, 120), radius=8)
    for (x, y, r) in ((395, 120, 28), (430, 80, 36), (470, 40, 30)):
        _circle(s, (235, 235, 240), (x, y), r, outline=5)
    # cylinders on top of the block
    for x in (110, 190, 270):
        _rect(s, (170, 175, 190), (x, 160, 64, 80), radius=10)
        _rect(s, (210, 60, 60), (x + 22, 130, 20, 34), radius=4, outline=4)  # spark plug caps
    # the block
    _rect(s, (120, 180, 120), (70, 230, 330, 180), radius=24)
    for y in (265, 300, 335):
        pygame.draw.line(s, (80, 130, 80), (230, y), (380, y), 8)
    _gear(s, (150, 330), 70, 10, (250, 200, 60))
    _rect(s, (90, 90, 100), (90, 410, 290, 26), radius=8)  # base
    _text(s, "putt-putt", (200, 70), 60, (255, 255, 255), outline_colour=_INK, angle=4)


def _jackhammer(s, colour):
    _background(s, colour)
    _ground(s, (190, 140, 90), 410)
    # cracks in the pavement
    for pts in ([(256, 410), (220, 450), (235, 480), (200, 512)], [(256, 410), (300, 445), (290, 470), (330, 512)]):
        pygame.draw.lines(s, _INK, False, pts, 6)
    # flying bits of rock
    for (x, y, r) in ((180, 380, 14), (340, 370, 12), (150, 340, 9), (370, 330, 10), (210, 395, 8)):
        _poly(s, (150, 150, 155), [(x - r, y), (x, y - r), (x + r, y - 2), (x + 2, y + r)], outline=4)
    # the jackhammer: T handle, orange body, steel chisel
    _rect(s, (60, 60, 70), (150, 70, 212, 36), radius=18)
    _rect(s, (90, 90, 100), (236, 100, 40, 40), outline=5)
    _rect(s, (250, 140, 30), (200, 135, 112, 200), radius=26)
    for y in (175, 215, 255, 295):
        pygame.draw.line(s, (200, 100, 20), (215, y), (297, y), 6)
    _rect(s, (190, 195, 210), (238, 330, 36, 50), outline=5)
    _poly(s, (190, 195, 210), [(242, 378), (270, 378), (256, 410)], outline=5)
    # shake lines either side
    for side in (-1, 1):
        for dy in (0, 40, 80):
            x0 = 256 + side * 85
            pygame.draw.line(s, _INK, (x0, 160 + dy), (x0 + side * 40, 150 + dy), 8)
    _text(s, "RAT-A-TAT!", (256, 40), 60, (255, 255, 255), outline_colour=_INK)


def _starburst(cx, cy, r_out, r_in, n, phase=0.0):
    pts = []
    for i in range(2 * n):
        r = r_out if i % 2 == 0 else r_in
        # Vary the spikes a little so the burst looks hand-drawn, not geometric.
        r *= 1.0 + 0.12 * math.sin(3.1 * i + phase)
        a = math.pi * i / n + phase
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _gun_shot(s, colour):
    # A comic-book "BANG!" burst: loud and sudden, nothing more.
    _background(s, colour)
    _poly(s, (255, 120, 30), _starburst(256, 256, 240, 150, 14, 0.1))
    _poly(s, (255, 220, 40), _starburst(256, 256, 185, 115, 12, 0.3))
    for (x, y, r) in ((80, 90, 16), (440, 110, 12), (430, 420, 18), (90, 420, 12)):
        _circle(s, (255, 240, 120), (x, y), r, outline=4)
    _text(s, "BANG!", (256, 256), 120, (235, 30, 40), outline_colour=_INK, angle=10)


def _note(s, x, y, colour, double=False):
    """An eighth note (or a pair of beamed notes) with its head at (x, y)."""
    _ellipse(s, colour, (x - 22, y - 15, 44, 32), outline=4)
    pygame.draw.line(s, _INK, (x + 18, y - 2), (x + 18, y - 90), 7)
    if double:
        _ellipse(s, colour, (x + 38, y - 30, 44, 32), outline=4)
        pygame.draw.line(s, _INK, (x + 78, y - 17), (x + 78, y - 105), 7)
        pygame.draw.polygon(s, _INK, [(x + 16, y - 92), (x + 80, y - 107), (x + 80, y - 90), (x + 16, y - 75)])
    else:
        pygame.draw.lines(s, _INK, False, [(x + 18, y - 90), (x + 44, y - 64), (x + 40, y - 40)], 7)


def _street_music(s, colour):
    _background(s, colour)
    # neck and headstock, tilted
    neck = _rotated([(236, 80), (276, 80), (276, 300), (236, 300)], 35, (256, 300))
    _poly(s, (140, 80, 40), neck)
    head = _rotated([(226, 30), (286, 30), (280, 86), (232, 86)], 35, (256, 300))
    _poly(s, (100, 55, 30), head)
    # body: two overlapping circles
    wood = (240, 150, 60)
    _circle(s, wood, (200, 390), 100)
    _circle(s, wood, (262, 310), 78)
    pygame.draw.circle(s, wood, (200, 390), 94)
    pygame.draw.circle(s, wood, (262, 310), 72)
    pygame.draw.circle(s, wood, (232, 350), 70)
    _circle(s, (60, 35, 25), (228, 352), 30, outline=0)
    _rect(s, (100, 55, 30), (150, 410, 70, 18), radius=4, outline=4)  # bridge (approx.)
    # strings from bridge to headstock
    top = _rotated([(256, 90)], 35, (256, 300))[0]
    for k in (-9, -3, 3, 9):
        pygame.draw.line(s, (245, 245, 245), (185 + k, 418 + k // 2), (top[0] + k, top[1] + k // 2), 2)
    for x, y, c, dbl in ((190, 130, (60, 140, 255), False), (380, 400, (255, 220, 40), True), (80, 230, (60, 200, 110), False)):
        _note(s, x, y, c, dbl)


_DRAWERS: dict[str, Callable[[pygame.Surface, Colour], None]] = {
    "air_conditioner": _air_conditioner,
    "car_horn": _car_horn,
    "children_playing": _children_playing,
    "dog_bark": _dog_bark,
    "drilling": _drilling,
    "engine_idle": _engine_idle,
    "gun_shot": _gun_shot,
    "jackhammer": _jackhammer,
    "siren": _siren,
    "street_music": _street_music,
}


# ---------------------------------------------------------------- public API


def has_drawing(label: str) -> bool:
    """True if ``label`` has a hand-made drawing (else ``fallback_picture`` is used)."""
    return label in _DRAWERS


def draw_picture(label: str, colour: Colour | None = None, size: int = PICTURE_SIZE) -> pygame.Surface:
    """The picture of ``label`` as an opaque ``size`` x ``size`` Surface.

    Known classes get their drawing; any other label gets ``fallback_picture``.
    """
    colour = class_colour(label) if colour is None else colour
    drawer = _DRAWERS.get(label)
    if drawer is None:
        return fallback_picture(label, colour, size)
    big = pygame.Surface((_W, _W))
    drawer(big, colour)
    return pygame.transform.smoothscale(big, (size, size))


def fallback_picture(label: str, colour: Colour, size: int = PICTURE_SIZE) -> pygame.Surface:
    """A coloured card with the label written on it, for classes without a drawing."""
    big = pygame.Surface((_W, _W))
    big.fill(tint(colour, 0.78))
    _rect(big, rgb255(colour), (40, 40, _W - 80, _W - 80), radius=60, outline=8)
    # a small speaker with sound waves, so the card still says "a sound"
    _poly(big, (255, 255, 255), [(150, 120), (185, 120), (235, 80), (235, 200), (185, 160), (150, 160)], outline=5)
    _waves(big, (245, 140), (35, 65), -50, 50, (255, 255, 255), 10)
    words = label.replace("_", " ").replace("-", " ").split() or ["?"]
    lines = _wrap(words, max_chars=10)[:3]
    size_px = 96 if max(len(line) for line in lines) <= 7 else 72
    y0 = 330 - (len(lines) - 1) * size_px * 0.4
    for i, line in enumerate(lines):
        _text(big, line, (256, int(y0 + i * size_px * 0.8)), size_px, (255, 255, 255), outline_colour=_INK)
    return pygame.transform.smoothscale(big, (size, size))


def _wrap(words: list[str], max_chars: int) -> list[str]:
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + 1 + len(w) <= max_chars:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return lines


def make_class_pictures(
    out_dir: str | os.PathLike,
    classes: Iterable[str] = URBANSOUND_CLASSES,
    colours: dict[str, Colour] | None = None,
    size: int = PICTURE_SIZE,
) -> dict[str, Path]:
    """Draw one ``<label>.png`` per class into ``out_dir``; returns label -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = colours or {}
    written: dict[str, Path] = {}
    for label in classes:
        path = out / f"{label}.png"
        pygame.image.save(draw_picture(label, colours.get(label), size), str(path))
        written[label] = path
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.screen.pictures", description="Regenerate the class pictures.")
    ap.add_argument("--out", default="assets/images", help="output folder (default: assets/images)")
    ap.add_argument("--size", type=int, default=PICTURE_SIZE, help="side in pixels (default: 256)")
    ap.add_argument("classes", nargs="*", help="class labels (default: the ten UrbanSound8K classes)")
    args = ap.parse_args(argv)
    paths = make_class_pictures(args.out, args.classes or URBANSOUND_CLASSES, size=args.size)
    for label, path in paths.items():
        print(f"{label}: {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
