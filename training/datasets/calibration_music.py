"""Music for the open-set calibration only: built apart from the negatives stream's music.

The unknown decision's thresholds are chosen on negatives (the pair that keeps
the built-in sounds and accepts the fewest of them), so calibrating on the very
generator the false-trigger test plays would tune on the test. This one shares
only the low-level oscillators: minor and pentatonic modes instead of major
triads, 3/4 and 6/8 instead of 4/4, FM-bell and plucked arpeggios instead of
pads and melody, an upright-bass walk, brushed noise and rim clicks instead of
a kick/snare/hi-hat kit, and tempi outside the stream's 80-140 bpm.
"""

from __future__ import annotations

import numpy as np

from training.datasets.synthetic_sound import _decay, _noise, _osc

_MODES = ((0, 2, 3, 5, 7, 8, 10), (0, 3, 5, 7, 10), (0, 2, 3, 5, 7, 9, 10))  # aeolian, minor pentatonic, dorian


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _fm_bell(f: float, n: int, sr: int, ratio: float, index: float) -> np.ndarray:
    t = np.arange(n) / sr
    mod = index * np.exp(-t * 3.0) * np.sin(2 * np.pi * f * ratio * t)
    return (np.sin(2 * np.pi * f * t + mod) * np.exp(-t * 2.5)).astype(np.float32)


def calibration_music(seconds: float, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Waltz-time arpeggios (FM bells or plucks), a walking bass and brushes, in a minor-ish mode."""
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    bpm = float(rng.choice([rng.uniform(55, 78), rng.uniform(145, 180)]))
    beat, meter = 60.0 / bpm, int(rng.choice([3, 6]))
    mode = _MODES[int(rng.integers(len(_MODES)))]
    root = 45 + int(rng.integers(0, 12))
    ratio, index = float(rng.choice([1.4, 2.0, 3.5])), float(rng.uniform(1.0, 4.0))
    pluck = rng.random() < 0.5
    step = beat / 2 if meter == 6 else beat
    for i in range(int(seconds / step)):
        s = int(i * step * sr)
        m = min(int(min(1.2, 4 * step) * sr), n - s)
        if m <= 0:
            break
        degree = (i * 2 + int(rng.integers(0, 2))) % len(mode)  # broken-chord arpeggio up the mode
        note = root + 24 + mode[degree] + 12 * ((i // len(mode)) % 2)
        if pluck:
            tone = _osc(_hz(note), [1.0, 0.6, 0.4, 0.25, 0.15, 0.1], sr, m) * _decay(m, sr, 0.18)
        else:
            tone = _fm_bell(_hz(note), m, sr, ratio, index)
        out[s:s + m] += 0.2 * tone
        if i % meter == 0 or (meter == 3 and i % meter == 2):  # bass on the bar's strong beats
            b = min(int(beat * sr), n - s)
            walk = root + mode[int(rng.integers(len(mode)))] - 12
            out[s:s + b] += 0.3 * _osc(_hz(walk), [1.0, 0.35, 0.1], sr, b) * _decay(b, sr, 0.3, attack=0.01)
        k = min(int(0.12 * sr), n - s)  # brushes on every step, a rim click on the bar's first
        out[s:s + k] += 0.05 * _noise(k, rng, sr, lo=2000, hi=7000) * _decay(k, sr, 0.06, attack=0.02)
        if i % meter == 0:
            c = min(int(0.02 * sr), n - s)
            out[s:s + c] += 0.2 * _noise(c, rng, sr, lo=1500, hi=4000) * _decay(c, sr, 0.004)
    return out
