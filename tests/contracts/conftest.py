"""Shared by the contract suites: a real backend under ``-m hardware`` runs only where it opens."""

from __future__ import annotations

from typing import Callable, TypeVar

import pytest

from device.hardware.select import HardwareError

T = TypeVar("T")


def real_or_skip(open_real: Callable[[], T]) -> T:
    """Open the real backend on this machine, or skip the test saying why it is not here."""
    try:
        return open_real()
    except HardwareError as e:
        pytest.skip(f"no such hardware here: {e}")
