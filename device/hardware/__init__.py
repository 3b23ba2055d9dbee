"""Hardware backends, one module per kind: mic, camera, leds, display, synth, audio_out.

Each module has ``open_<kind>(backend, cfg, ...)`` taking the kind's frozen
config section (``device.config``) and returning the interface from ``base``,
and ``probe(cfg)`` returning ``[(backend, usable, why), ...]`` for
``python -m device check``. Hardware libraries are imported lazily inside those
functions, so this package imports on any machine; the choice is made once, at
the edge (``device.runtime.builder``), and logged on the "saysee.hardware" logger.
"""

from __future__ import annotations

from device.hardware.base import AudioChunk, AudioOut, Camera, Device, Display, Frame, Leds, Mic, Scene, Synth
from device.hardware.select import HardwareError, Probe

__all__ = [
    "AudioChunk",
    "AudioOut",
    "Camera",
    "Device",
    "Display",
    "Frame",
    "HardwareError",
    "KINDS",
    "Leds",
    "Mic",
    "Probe",
    "Scene",
    "Synth",
]

KINDS = ("mic", "camera", "leds", "display", "synth", "audio_out")
