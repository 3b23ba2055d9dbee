"""Hardware backends, one module per kind: mic, camera, leds, display, synth.

Each module has ``open_<kind>(backend="auto" | "real" | "sim", **options)``
returning the interface from ``base`` and ``probe(**options)`` returning
``[(backend, usable, why), ...]``. Hardware libraries are imported lazily inside
those functions, so this package imports on any machine; the choice is made
once, at the edge (``app.py``), and logged on the "saysee.hardware" logger.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from device.hardware.base import AudioChunk, Camera, Device, Display, Frame, Leds, Mic, Scene, Synth
from device.hardware.select import HardwareError, Probe

__all__ = [
    "AudioChunk",
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
    "open_device",
    "probe_all",
]

KINDS = ("mic", "camera", "leds", "display", "synth")


def _module(kind: str):
    if kind not in KINDS:
        raise ValueError(f"unknown hardware kind {kind!r}; expected one of {', '.join(KINDS)}")
    return importlib.import_module(f"{__name__}.{kind}")


def open_device(kind: str, backend: str = "auto", **options) -> Device:
    """``open_<kind>(backend, **options)`` by name, e.g. ``open_device("mic", "sim", playlist=[...])``."""
    return getattr(_module(kind), f"open_{kind}")(backend, **options)


def probe_all(options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[Probe]]:
    """``{kind: probe(**options[kind])}`` for every kind; never raises (for `device check`)."""
    options = options or {}
    out: dict[str, list[Probe]] = {}
    for kind in KINDS:
        try:
            out[kind] = list(_module(kind).probe(**dict(options.get(kind, {}))))
        except Exception as e:  # noqa: BLE001 - a broken module is itself a finding
            out[kind] = [("?", False, f"probe failed: {type(e).__name__}: {e}")]
    return out
