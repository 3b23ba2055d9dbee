"""`python -m device forget LABEL`: remove a taught sound (see device.sound.taught_cli)."""

from __future__ import annotations

from device.sound.taught_cli import forget_main as main

__all__ = ["main"]
