"""`python -m device map-forget`: remove the taught mapping (see device.sound.map_teach)."""

from __future__ import annotations

from device.sound.map_teach import forget_main as main

__all__ = ["main"]
