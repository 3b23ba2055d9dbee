"""One colour rule for the whole box: class colours and note colours.

The LED, the screen frame, the probability bars and the piano roll all ask
here, so a class or a bar shows the same colour everywhere. Pure Python (no
pygame) because the responder uses it on boxes without a screen.
"""

from __future__ import annotations

import colorsys

Colour = tuple[float, float, float]

# Saturated colours spaced around the hue circle so that neighbouring classes
# never look alike on an RGB LED or on the screen frame. (r, g, b) in 0..1.
CLASS_COLOURS: dict[str, Colour] = {
    "gun_shot": (1.0, 0.0, 0.0),  # red
    "dog_bark": (1.0, 0.45, 0.0),  # orange
    "car_horn": (1.0, 0.85, 0.0),  # yellow
    "jackhammer": (0.55, 1.0, 0.0),  # lime
    "engine_idle": (0.0, 0.8, 0.25),  # green
    "air_conditioner": (0.0, 0.8, 1.0),  # sky / cyan
    "siren": (0.0, 0.25, 1.0),  # blue
    "drilling": (0.5, 0.0, 1.0),  # purple
    "street_music": (0.9, 0.0, 0.9),  # magenta
    "children_playing": (1.0, 0.3, 0.55),  # pink
}

SATURATION = 0.85


def class_colour(label: str) -> Colour:
    """The default colour of a class; other labels get a stable hue from their name."""
    if label in CLASS_COLOURS:
        return CLASS_COLOURS[label]
    # A stable hash (not Python's salted hash()) so a label keeps its colour across runs.
    h = sum((i + 1) * ord(ch) for i, ch in enumerate(label)) % 360 / 360.0
    return colorsys.hsv_to_rgb(h, SATURATION, 1.0)


def note_colour(midi: int) -> Colour:
    """A colour per pitch class, C red, D orange, E yellow ... like coloured bells.

    The hue stops short of the full circle (x 0.85) so B is violet and never
    comes back round to C's red.
    """
    return colorsys.hsv_to_rgb((midi % 12) / 12.0 * 0.85, SATURATION, 1.0)
