"""The built-in sound classes: UrbanSound8K's ten, in the order of its classID column.

A plain module (no pygame, no numpy) so that training's datasets and the
device's pictures and colours take the class list from one place without
loading a display library.
"""

URBANSOUND_CLASSES: tuple[str, ...] = (
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idle",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
)

# The decision for a clear sound that is none of the known classes (built-in or
# taught): shown as a "teach me" card, with a neutral LED and a silent synth.
UNKNOWN = "unknown"
