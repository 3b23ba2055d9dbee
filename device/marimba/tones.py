"""What a struck marimba bar sounds like: one definition for the box and for training.

The virtual synth (``device.hardware.virtual_synth``) plays notes with it and the
synthetic training videos (``training.datasets.marimba_synth``) are rendered
with it, so the sim's synth output and the audio the marimba model learned from
are the same instrument.

A tuned bar's modes sit near 1 : 4 : 10 times the fundamental (the tuner grinds
the bar so its overtones are near-harmonic); the upper ones are much quieter
and die away much faster, which gives the wooden "tock". The 4x partial of
C4..F4 falls exactly on C6..F6, which are bars too; at -26 dB at the onset and
decaying four times faster it stays >= 20 dB below the fundamental in every
analysis window, so note-amplitude targets don't hear a phantom C6 (tested in
tests/test_marimba_targets.py).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PARTIALS", "decay_time", "bar_partials"]

# (ratio to the fundamental, amplitude, decay time as a fraction of the fundamental's)
PARTIALS = ((1.0, 1.0, 1.0), (4.0, 0.05, 0.25), (10.0, 0.02, 0.1))


def decay_time(freq: float) -> float:
    """Fundamental decay time constant: 0.4 s at C4, halving per octave (T60 ~2.8 s .. ~0.5 s)."""
    return float(np.clip(0.4 * (freq / 261.63) ** -1.0, 0.05, 1.0))


def bar_partials(f0: float, sample_rate: int) -> list[tuple[float, float, float]]:
    """(frequency Hz, amplitude, decay time s) of each partial below Nyquist, fundamental first.

    A partial at or above Nyquist would alias; the real bar's is inaudible anyway.
    """
    tau = decay_time(f0)
    out = []
    for ratio, amplitude, decay in PARTIALS:
        f = f0 * ratio
        if f >= sample_rate / 2:
            break  # ratios ascend: every later partial is higher still
        out.append((f, amplitude, tau * decay))
    return out
