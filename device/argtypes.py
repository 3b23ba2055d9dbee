"""argparse types shared by the device commands: bad numbers end as one usage line, not a traceback."""

from __future__ import annotations

import argparse
import math


def positive_finite(text: str) -> float:
    """A positive, finite number (nan and inf would record nothing, or forever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive, finite number")
    return value
