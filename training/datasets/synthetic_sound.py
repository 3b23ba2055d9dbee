"""Procedural sounds for the ten UrbanSound8K classes: a dataset that needs no download.

Each clip is background noise, then (at a known ``onset``, 0.2-1.5 s into a
4 s clip) one event of its class, randomised per clip: variant, pitch,
timing, duration, timbre, room reverb (exponential-decay noise impulse
response), microphone colour, level and signal-to-noise ratio (8-35 dB).
Everything is drawn from ``np.random.default_rng([seed, class index])``, so a
(label, seed) pair always gives the same samples and its source string
``"synthetic:<seed>"`` is enough to make it again.

The classes are built to be told apart by a small log-mel CNN, each from
several variants rather than one template:

=================  ======================================================
air_conditioner    fan noise (broad hump) + mains-locked compressor hum; hum / hiss / whine
car_horn           bright buzzy harmonic tone 280-520 Hz; single / double / chord / long
children_playing   3-8 child voices: vowel-formant syllables, glides, shrieks; crowd murmur
dog_bark           short rough voiced barks with rising-falling pitch; single / double / multi
drilling           harmonic motor whine with spin-up, grinding noise; continuous / pulsed / hammer
engine_idle        low-pass firing pulses 9-90 Hz, rpm wobble, lope; petrol / diesel / twin
gun_shot           broadband blast + boom + echo; single / double / burst
jackhammer         broadband metallic hits at 11-22 Hz; continuous / bursts
siren              near-sinusoidal sweeping tone; wail / yelp / hi-lo
street_music       melodic notes of a scale with harmonics; plucked / sustained / mallet (+bass, pad, shaker)
=================  ======================================================

Folds (:func:`synthetic_dataset`): clip ``i`` of each class is in fold
``1 + i % 10``, so every fold holds every class equally; by the package
convention fold 10 is the held-out test set and fold 9 validation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from device.errors import InputFileError
from training.datasets import URBANSOUND_CLASSES, Clip, Dataset, DatasetReport

SYNTH_VERSION = 1  # bump when the sound of any class changes; it is part of the description
ONSET_RANGE = (0.2, 1.5)  # seconds, within a clip of 4 s (scaled down for shorter clips)
SNR_DB = (8.0, 35.0)  # event RMS over background RMS
LEVEL_DBFS = (-30.0, -12.0)  # event RMS before peak limiting
SEED_STRIDE = 1_000_000  # synthetic_dataset: clip seed = seed * SEED_STRIDE + index


class UnknownLabelError(InputFileError, ValueError):
    """A label that the synthetic generator has no recipe for."""


# ------------------------------------------------------------------ building blocks

_TABLE = 2048  # samples per cycle of the wavetable oscillator
_MAX_H = 64


@lru_cache(maxsize=1)
def _sine_basis() -> np.ndarray:
    # Row k-1 is one cycle of harmonic k; a tone's table is amps @ basis (cheap, no per-sample sin).
    t = np.arange(_TABLE) / _TABLE
    b = np.sin(2 * np.pi * np.arange(1, _MAX_H + 1)[:, None] * t[None, :]).astype(np.float32)
    b.setflags(write=False)
    return b


def _osc(f0: np.ndarray | float, amps: Sequence[float], sr: int, n: int | None = None, phase: float = 0.0) -> np.ndarray:
    """Band-limited periodic tone following an f0 track (Hz, one value per sample or a constant).

    ``amps[k-1]`` is the amplitude of harmonic k; harmonics that would pass
    0.45 * sr at the track's highest f0 are dropped, so nothing aliases.
    """
    f = np.full(n, float(f0)) if np.isscalar(f0) else np.asarray(f0, dtype=np.float64)
    amps = np.asarray(amps, dtype=np.float32)[:_MAX_H]
    kmax = int(0.45 * sr / max(float(f.max()), 1.0))
    amps = amps[: max(kmax, 1)]
    table = amps @ _sine_basis()[: len(amps)]
    table = np.append(table, table[0])
    pos = (phase + np.cumsum(f) / sr) % 1.0 * _TABLE
    i = pos.astype(np.int64)
    w = (pos - i).astype(np.float32)
    lo = table[i]
    return lo + w * (table[i + 1] - lo)


def _formant_amps(f0: float, formants: Sequence[tuple[float, float]], k: int, tilt: float) -> np.ndarray:
    """Harmonic amplitudes of a source with spectral tilt k^-tilt through resonances (freq, bandwidth)."""
    fk = f0 * np.arange(1, k + 1)
    gain = sum(1.0 / np.sqrt(1.0 + ((fk - fc) / (bw / 2)) ** 2) for fc, bw in formants)
    return (np.arange(1, k + 1) ** -tilt) * (0.05 + gain)


@lru_cache(maxsize=64)
def _fft_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: pocketfft is fast there, and it wastes less than a power of 2."""
    best = 1 << int(np.ceil(np.log2(max(n, 2))))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


@lru_cache(maxsize=64)
def _freqs(m: int, sr: int) -> np.ndarray:
    f = np.fft.rfftfreq(m, 1.0 / sr).astype(np.float32)
    f.setflags(write=False)
    return f


def _freq_shape(freqs: np.ndarray, lo: float | None, hi: float | None, exponent: float = 0.0) -> np.ndarray:
    """Magnitude response: 1/f^(exponent/2) (power 1/f^exponent), 4th-order-ish high/low-pass edges."""
    f = np.maximum(freqs, np.float32(1.0))
    g = f ** np.float32(-exponent / 2.0) if exponent else np.ones_like(f)
    if lo:
        g = g / np.sqrt(1.0 + (np.float32(lo) / f) ** 4)
    if hi:
        g = g / np.sqrt(1.0 + (f / np.float32(hi)) ** 4)
    return g


def _shaped_noise(n: int, rng: np.random.Generator, sr: int, shape: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Unit-RMS Gaussian noise whose magnitude spectrum is ``shape(frequencies)``."""
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    m = _fft_len(n)
    h = m // 2 + 1
    z = rng.standard_normal(2 * h, dtype=np.float32).view(np.complex64)
    z *= shape(_freqs(m, sr))
    z[0] = 0.0
    x = np.fft.irfft(z, m)[:n].astype(np.float32, copy=False)
    return x / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def _noise(n: int, rng: np.random.Generator, sr: int, exponent: float = 0.0, lo: float | None = None,
           hi: float | None = None) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum 1/f^exponent, band-limited to lo..hi Hz."""
    return _shaped_noise(n, rng, sr, lambda f: _freq_shape(f, lo, hi, exponent))


def _filter(x: np.ndarray, sr: int, lo: float | None = None, hi: float | None = None,
            extra: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Zero-phase FFT filter; the signal is padded so the wrap-around lands in the discarded tail."""
    m = _fft_len(len(x) + 2048)
    f = _freqs(m, sr)
    g = _freq_shape(f, lo, hi)
    if extra is not None:
        g = g * extra(f)
    return np.fft.irfft(np.fft.rfft(x, m) * g, m)[: len(x)].astype(np.float32)


def _conv(x: np.ndarray, kernel: np.ndarray, n_out: int | None = None) -> np.ndarray:
    """Causal FFT convolution, cropped to n_out samples (default len(x))."""
    n_out = len(x) if n_out is None else n_out
    m = _fft_len(len(x) + len(kernel))
    y = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(kernel, m), m)[:n_out]
    return np.pad(y, (0, max(0, n_out - len(y)))).astype(np.float32)


def _decay(n: int, sr: int, tau: float, attack: float = 0.001) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr
    return (np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-t / tau)).astype(np.float32)


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine attack and release around a flat sustain."""
    env = np.ones(n, dtype=np.float32)
    a, r = min(int(attack * sr), n // 2), min(int(release * sr), n // 2)
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if r:
        env[n - r:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
    return env


def _pulses(n: int, rate: np.ndarray | float, sr: int, rng: np.random.Generator, jitter: float = 0.0,
            amp_jitter: float = 0.0) -> np.ndarray:
    """Unit impulses at a (possibly time-varying) rate, with timing and amplitude jitter."""
    r = np.full(n, float(rate)) if np.isscalar(rate) else rate
    phase = np.cumsum(r) / sr
    idx = np.searchsorted(phase, np.arange(1, int(phase[-1]) + 1) - 0.999)
    if jitter:
        period = sr / max(float(np.mean(r)), 1e-3)
        idx = idx + np.round(rng.normal(0, jitter * period, len(idx))).astype(np.int64)
    idx = np.clip(idx, 0, n - 1)
    out = np.zeros(n, dtype=np.float32)
    np.add.at(out, idx, (1.0 + amp_jitter * rng.uniform(-1, 1, len(idx))).astype(np.float32))
    return out


def _sustained(rng: np.random.Generator, max_s: float, lo: float = 1.5) -> float:
    # Continuous sources usually run on past the clip's end, sometimes stop inside it.
    lo = min(lo, max_s)
    return max_s if rng.random() < 0.7 else float(rng.uniform(lo, max_s))


def _place(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    if start >= len(dst):
        return
    end = min(len(dst), start + len(src))
    dst[start:end] += src[: end - start]


def _segments(rng: np.random.Generator, total: float, on: tuple[float, float], off: tuple[float, float]):
    """(start, length) seconds of on-segments with gaps, filling ``total`` seconds."""
    out, t = [], 0.0
    while t < total - 0.1:
        d = min(float(rng.uniform(*on)), total - t)
        out.append((t, d))
        t += d + float(rng.uniform(*off))
    return out


# ---------------------------------------------------------------- the ten classes
# Each takes (rng, sample rate, max seconds) and returns (dry event audio, variant name).
# The event starts at sample 0 with its attack and is at most max seconds long.


def _air_conditioner(rng, sr, max_s):
    variant = str(rng.choice(["hum", "hiss", "whine"]))
    n = int(_sustained(rng, max_s) * sr)
    fan = _noise(n, rng, sr, exponent=rng.uniform(0.2, 0.9), lo=rng.uniform(80, 250), hi=rng.uniform(1800, 5500))
    hum_f0 = float(rng.choice([50.0, 60.0])) * float(rng.choice([1, 2, 2, 3]))
    hum = _osc(hum_f0 * (1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * np.arange(n) / sr)),
               np.arange(1, 9) ** -rng.uniform(0.8, 1.6), sr, phase=rng.random())
    hum_level = {"hum": rng.uniform(0.6, 1.2), "hiss": rng.uniform(0.05, 0.25), "whine": rng.uniform(0.2, 0.5)}[variant]
    x = fan + hum_level * hum / max(float(np.std(hum)), 1e-6)
    if variant == "whine":
        x += rng.uniform(0.15, 0.4) * np.sqrt(2) * _osc(rng.uniform(700, 2600), [1.0], sr, n)
    # Blade-pass flutter, kept shallow so it never reads as an engine's pulses.
    x *= 1 + rng.uniform(0, 0.06) * np.sin(2 * np.pi * rng.uniform(5, 25) * np.arange(n) / sr)
    return x * _envelope(n, sr, rng.uniform(0.05, 0.4), 0.08), variant


def _engine_idle(rng, sr, max_s):
    variant = str(rng.choice(["petrol", "diesel", "twin"]))
    n = int(_sustained(rng, max_s) * sr)
    t = np.arange(n) / sr
    cylinders = {"petrol": rng.choice([4, 6, 8]), "diesel": rng.choice([4, 6]), "twin": 2}[variant]
    rpm = rng.uniform(600, 1100) if variant != "twin" else rng.uniform(700, 1300)
    fire = rpm / 60 * cylinders / 2  # firing pulses per second
    rate = fire * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 6.3))
                   + 0.01 * np.cumsum(rng.normal(0, 1, n)) / np.sqrt(n))
    pulses = _pulses(n, rate, sr, rng, jitter=0.02, amp_jitter=rng.uniform(0.1, 0.4))
    k = int(0.06 * sr)
    kt = np.arange(k) / sr
    kernel = np.sin(2 * np.pi * rng.uniform(50, 140) * kt) * np.exp(-kt / rng.uniform(0.008, 0.025))
    kernel = kernel + 0.6 * _noise(k, rng, sr, hi=900) * np.exp(-kt / rng.uniform(0.003, 0.008))
    x = _conv(pulses, kernel.astype(np.float32))
    x /= max(float(np.std(x)), 1e-6)
    rumble = _osc(rate, np.arange(1, 13) ** -rng.uniform(1.0, 2.0), sr, phase=rng.random())
    x = x + rng.uniform(0.2, 0.6) * rumble / max(float(np.std(rumble)), 1e-6)
    x = _filter(x, sr, lo=35, hi=rng.uniform(450, 1400))
    if variant == "diesel":
        clatter = _conv(pulses, (_noise(int(0.01 * sr), rng, sr, lo=1800, hi=5000)
                                 * _decay(int(0.01 * sr), sr, rng.uniform(0.0015, 0.003))))
        x += rng.uniform(0.15, 0.35) * clatter / max(float(np.std(clatter)), 1e-6) * np.std(x)
    lope = 1 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(0.8, 3.0) * t)
    return x * lope * _envelope(n, sr, rng.uniform(0.05, 0.3), 0.1), variant


def _drilling(rng, sr, max_s):
    variant = str(rng.choice(["continuous", "pulsed", "hammer"]))
    total = _sustained(rng, max_s, lo=1.0)
    f0 = rng.uniform(120, 450)
    k = np.arange(1, _MAX_H + 1)
    amps = k ** -rng.uniform(0.4, 1.0) * (0.3 + 1 / np.sqrt(1 + ((k * f0 - rng.uniform(1500, 4000)) / 600) ** 2))
    segs = [(0.0, total)] if variant != "pulsed" else _segments(rng, total, (0.4, 1.2), (0.15, 0.4))
    x = np.zeros(int(total * sr) + 1, dtype=np.float32)
    for start, dur in segs:
        m = int(dur * sr)
        t = np.arange(m) / sr
        spin = 1 - 0.7 * np.exp(-t / rng.uniform(0.05, 0.2))
        down = np.clip((dur - t) / 0.12, 0.35, 1.0)  # spins down as the trigger is released
        f = f0 * spin * down * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
        tone = _osc(f, amps, sr, phase=rng.random())
        tone /= max(float(np.std(tone)), 1e-6)
        grind = _noise(m, rng, sr, lo=rng.uniform(1800, 3000), hi=rng.uniform(5000, 7000))
        seg = tone + rng.uniform(0.2, 0.5) * grind
        if variant == "hammer":
            seg *= 1 - rng.uniform(0.3, 0.6) * np.sin(np.pi * rng.uniform(25, 45) * t) ** 2
        _place(x, seg * _envelope(m, sr, 0.02, 0.05), int(start * sr))
    return x, variant


def _jackhammer(rng, sr, max_s):
    variant = str(rng.choice(["continuous", "bursts"]))
    total = _sustained(rng, max_s, lo=1.0)
    rate = rng.uniform(11, 22)
    k = int(0.08 * sr)
    kt = np.arange(k) / sr
    hit = _noise(k, rng, sr, lo=300) * np.exp(-kt / rng.uniform(0.006, 0.018))
    for _ in range(3):  # metallic ring of the bit and body
        hit += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(1200, 5000) * kt) * np.exp(-kt / rng.uniform(0.015, 0.045))
    hit += rng.uniform(0.5, 1.2) * np.sin(2 * np.pi * rng.uniform(60, 150) * kt) * np.exp(-kt / rng.uniform(0.02, 0.04))
    hit *= np.minimum(kt / 0.0005, 1.0)
    segs = [(0.0, total)] if variant == "continuous" else _segments(rng, total, (0.8, 2.0), (0.2, 0.5))
    n = int(total * sr) + 1
    pulses = np.zeros(n, dtype=np.float32)
    for start, dur in segs:
        m = int(dur * sr)
        _place(pulses, _pulses(m, rate * rng.uniform(0.95, 1.05), sr, rng, jitter=0.04, amp_jitter=0.25),
               int(start * sr))
    return _conv(pulses, hit.astype(np.float32)), variant


def _gun_shot(rng, sr, max_s):
    variant = str(rng.choice(["single", "double", "burst"]))
    if variant == "single":
        times = [0.0]
    elif variant == "double":
        times = [0.0, rng.uniform(0.3, 1.2)]
    else:
        gap = rng.uniform(0.06, 0.15)
        times = list(np.cumsum([0.0] + [gap * rng.uniform(0.9, 1.1) for _ in range(rng.integers(2, 8))]))
    k = int(rng.uniform(0.3, 0.6) * sr)
    kt = np.arange(k) / sr
    blast = _noise(k, rng, sr, lo=80, hi=rng.uniform(2500, 7500)) * np.exp(-kt / rng.uniform(0.015, 0.06))
    blast += rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * rng.uniform(40, 110) * kt) * np.exp(-kt / rng.uniform(0.04, 0.12))
    blast *= np.minimum(kt / 0.0005, 1.0)
    echo_at, echo_gain = int(rng.uniform(0.08, 0.35) * sr), rng.uniform(0.15, 0.5)
    times = [t for t in times if t + 0.15 < max_s] or [0.0]
    n = min(int((times[-1] + k / sr + echo_at / sr) * sr), int(max_s * sr))
    echo = echo_gain * _filter(blast, sr, hi=2000)  # the far wall returns a duller copy
    x = np.zeros(n, dtype=np.float32)
    for t in times:
        amp = rng.uniform(0.8, 1.0)
        _place(x, amp * blast, int(t * sr))
        _place(x, amp * echo, int(t * sr) + echo_at)
    return x, variant


def _voiced(rng, sr, f_track, formants, tilt, breath):
    """One voiced sound (bark, syllable): harmonics through formants plus shaped breath noise."""
    m = len(f_track)
    amps = _formant_amps(float(np.mean(f_track)), formants, _MAX_H, tilt)
    x = _osc(f_track, amps, sr, phase=rng.random())
    x /= max(float(np.std(x)), 1e-6)
    if breath:
        x += breath * _noise(m, rng, sr, lo=formants[0][0] * 0.7, hi=formants[-1][0] * 1.3)
    return x


def _dog_bark(rng, sr, max_s):
    variant = str(rng.choice(["single", "double", "multi"]))
    size = rng.uniform(0.0, 1.0)  # 0 small dog, 1 big dog
    f_base = np.exp(np.log(700) + size * (np.log(180) - np.log(700)))
    formants = [(rng.uniform(550, 1000) * (1.3 - 0.5 * size), 250), (rng.uniform(1300, 2400) * (1.3 - 0.4 * size), 400)]
    count = {"single": 1, "double": 2, "multi": int(rng.integers(3, 7))}[variant]
    tilt, breath = rng.uniform(0.6, 1.2), rng.uniform(0.2, 0.7)
    barks, t = [], 0.0
    for i in range(count):
        d = rng.uniform(0.08, 0.25)
        if t + d > max_s:
            break
        barks.append((t, d))
        t += d + (rng.uniform(0.08, 0.25) if variant == "double" else rng.uniform(0.15, 0.6))
    barks = barks or [(0.0, min(0.08, max_s))]
    x = np.zeros(int((barks[-1][0] + barks[-1][1]) * sr) + 1, dtype=np.float32)
    for start, d in barks:
        m = int(d * sr)
        u = np.arange(m) / m
        f0 = f_base * rng.uniform(0.9, 1.1)
        # Quick rise to a peak a quarter of the way in, then a fall: the "wuff" contour.
        f = f0 * (1 + rng.uniform(0.15, 0.4) * np.sin(np.pi * np.minimum(u / 0.5, 1.0)) - rng.uniform(0.1, 0.3) * u)
        f = f * (1 + 0.03 * rng.standard_normal(m).cumsum() / np.sqrt(m))  # roughness
        env = np.minimum(u * d / rng.uniform(0.005, 0.015), 1.0) * np.sin(np.pi * u) ** 0.5 * np.exp(-2 * u)
        _place(x, _voiced(rng, sr, f, formants, tilt, breath) * env, int(start * sr))
    return x, variant


_VOWELS = ((1000, 1600, 3300), (600, 2600, 3500), (420, 3100, 3800), (680, 1150, 3200), (470, 1250, 3300))


def _children_playing(rng, sr, max_s):
    n = int(_sustained(rng, max_s) * sr)
    x = np.zeros(n, dtype=np.float32)
    voices = int(rng.integers(3, 9))
    for _ in range(voices):
        gain, base = rng.uniform(0.2, 1.0), rng.uniform(230, 420)
        t = rng.uniform(0, 0.3)
        while t < n / sr - 0.05:
            shriek = rng.random() < 0.1
            d = rng.uniform(0.3, 0.7) if shriek else rng.uniform(0.08, 0.4)
            m = min(int(d * sr), n - int(t * sr))
            if m < int(0.03 * sr):
                break
            f0 = base * (rng.uniform(1.6, 2.4) if shriek else rng.uniform(0.85, 1.3))
            f = f0 * np.linspace(rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.25), m)
            vowel = _VOWELS[rng.integers(len(_VOWELS))]
            formants = [(v * rng.uniform(0.9, 1.15), 120 + 0.1 * v) for v in vowel]
            env = _envelope(m, sr, 0.02, 0.04)
            _place(x, gain * _voiced(rng, sr, f, formants, 0.8, rng.uniform(0.05, 0.2)) * env, int(t * sr))
            t += d + rng.uniform(0.02, 0.5)
    x += rng.uniform(0.05, 0.2) * _noise(n, rng, sr, exponent=1.0, lo=300, hi=3000)
    return x * _envelope(n, sr, 0.05, 0.1), f"{voices} voices"


def _car_horn(rng, sr, max_s):
    variant = str(rng.choice(["single", "double", "chord", "long"]))
    f0 = rng.uniform(280, 520)
    k = np.arange(1, _MAX_H + 1)
    amps = k ** -rng.uniform(0.3, 0.7) * (0.4 + 1 / np.sqrt(1 + ((k * f0 - rng.uniform(2000, 3500)) / 700) ** 2))
    pitches = [f0, f0 * rng.uniform(1.18, 1.3)] if variant == "chord" else [f0]
    if variant == "double":
        first = rng.uniform(0.12, 0.35)
        honks = [(0.0, first), (first + rng.uniform(0.08, 0.2), rng.uniform(0.12, 0.35))]
    elif variant == "long":
        honks = [(0.0, rng.uniform(1.2, 2.5))]
    else:
        honks = [(0.0, rng.uniform(0.25, 1.5))]
    honks = [(s, min(d, max_s - s)) for s, d in honks if s < max_s - 0.05]
    x = np.zeros(int(sum(honks[-1]) * sr) + 1, dtype=np.float32)
    for start, d in honks:
        m = int(d * sr)
        t = np.arange(m) / sr
        settle = 1 + 0.03 * np.exp(-t / 0.03)  # the diaphragm's pitch settles after the attack
        tone = sum(_osc(p * settle, amps, sr, phase=rng.random()) for p in pitches)
        _place(x, tone * _envelope(m, sr, rng.uniform(0.008, 0.025), rng.uniform(0.02, 0.06)), int(start * sr))
    return x, variant


def _siren(rng, sr, max_s):
    variant = str(rng.choice(["wail", "yelp", "hi-lo"]))
    n = int(_sustained(rng, max_s) * sr)
    t = np.arange(n) / sr
    lo = rng.uniform(450, 800)
    if variant == "hi-lo":
        hi = lo * rng.uniform(1.25, 1.5)
        half = rng.uniform(0.35, 0.75)
        square = (np.floor(t / half + rng.integers(2)) % 2).astype(np.float64)
        g = int(0.015 * sr)  # 15 ms glide between the two tones
        square = np.convolve(np.pad(square, (g, 0), mode="edge"), np.ones(g) / g, mode="valid")[:n]
        f = lo + (hi - lo) * square
    else:
        hi = min(lo * rng.uniform(1.5, 2.2), 0.4 * sr)
        period = rng.uniform(2.0, 6.0) if variant == "wail" else rng.uniform(0.15, 0.45)
        f = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)))
    f = f * (1 + rng.uniform(-0.03, 0.03) * t / max(t[-1], 1e-3))  # Doppler-like drift
    if rng.random() < 0.3:  # electronic square-ish siren: odd harmonics
        amps = [1.0 / h if h % 2 else 0.0 for h in range(1, 8)]
    else:
        amps = [1.0, rng.uniform(0.05, 0.3), rng.uniform(0.02, 0.2), rng.uniform(0.0, 0.1)]
    swell = np.linspace(rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0), n)  # approaching or leaving
    return _osc(f, amps, sr, phase=rng.random()) * swell * _envelope(n, sr, 0.05, 0.1), variant


def _street_music(rng, sr, max_s):
    variant = str(rng.choice(["plucked", "sustained", "mallet"]))
    n = int(_sustained(rng, max_s) * sr)
    x = np.zeros(n, dtype=np.float32)
    scale = [(0, 2, 4, 7, 9), (0, 2, 4, 5, 7, 9, 11), (0, 3, 5, 7, 10)][rng.integers(3)]
    root = int(rng.integers(52, 68))
    notes = [root + 12 * o + s for o in (-1, 0, 1) for s in scale]
    beat = 60.0 / rng.uniform(80, 150)
    k = np.arange(1, _MAX_H + 1)
    if variant == "plucked":
        amps = k ** -rng.uniform(0.8, 1.5)
    elif variant == "sustained":
        amps = k ** -rng.uniform(0.5, 1.0) * (0.3 + 1 / np.sqrt(1 + ((k * 440 - rng.uniform(800, 2500)) / 500) ** 2))
    else:
        amps = np.where(k == 1, 1.0, 0.0) + np.where(k == 4, rng.uniform(0.2, 0.5), 0.0) + np.where(k == 10, 0.1, 0.0)

    def note(midi, start, dur, level, a=amps, kind=variant):
        m = min(int((dur + (0.4 if kind != "sustained" else 0.05)) * sr), n - int(start * sr))
        if m < 32:
            return
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        tt = np.arange(m) / sr
        if kind == "sustained":
            f = f0 * (1 + 0.008 * np.sin(2 * np.pi * 5.5 * tt) * np.minimum(tt / 0.3, 1))
            env = _envelope(m, sr, rng.uniform(0.03, 0.08), 0.05)
        else:
            f = np.full(m, f0)
            env = _decay(m, sr, rng.uniform(0.15, 0.6) if kind == "plucked" else rng.uniform(0.1, 0.35), 0.003)
        _place(x, level * _osc(f, a, sr, phase=rng.random()) * env, int(start * sr))

    i, t = int(rng.integers(len(notes) // 3, 2 * len(notes) // 3)), 0.0
    while t < n / sr:
        d = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        note(notes[i], t, d, rng.uniform(0.6, 1.0))
        i = int(np.clip(i + rng.integers(-2, 3), 0, len(notes) - 1))
        t += d
    if rng.random() < 0.5:  # bass line on the beat
        for b in np.arange(0.0, n / sr, 2 * beat):
            note(root - 12 + int(rng.choice([0, 7])), b, 2 * beat, rng.uniform(0.3, 0.6), k ** -1.5, "plucked")
    if rng.random() < 0.3:  # soft shaker
        for b in np.arange(0.0, n / sr, beat / 2):
            m = int(0.05 * sr)
            _place(x, rng.uniform(0.05, 0.15) * _noise(m, rng, sr, lo=5000) * _decay(m, sr, 0.015), int(b * sr))
    return x * _envelope(n, sr, 0.01, 0.1), variant


_EVENTS: dict[str, Callable] = {
    "air_conditioner": _air_conditioner, "car_horn": _car_horn, "children_playing": _children_playing,
    "dog_bark": _dog_bark, "drilling": _drilling, "engine_idle": _engine_idle, "gun_shot": _gun_shot,
    "jackhammer": _jackhammer, "siren": _siren, "street_music": _street_music,
}
assert tuple(_EVENTS) == URBANSOUND_CLASSES


# ------------------------------------------------------------------ scenes


def _class_index(label: str) -> int:
    if label not in _EVENTS:
        raise UnknownLabelError(f"synthetic: no recipe for class '{label}' (expected one of {', '.join(_EVENTS)})")
    return URBANSOUND_CLASSES.index(label)


def render_event(label: str, rng: np.random.Generator, sample_rate: int = 16000,
                 max_seconds: float = 3.0) -> tuple[np.ndarray, str]:
    """The dry event of one class (no background, reverb or level): (float32 audio, variant name)."""
    _class_index(label)
    x, variant = _EVENTS[label](rng, sample_rate, max_seconds)
    x = np.asarray(x, dtype=np.float32)[: int(max_seconds * sample_rate)]
    return x, variant


def _room(x: np.ndarray, rng: np.random.Generator, sr: int, n_out: int, max_rt60: float = 0.9) -> np.ndarray:
    """Room reverb (direct path + exponentially decaying noise tail) and a random mic/distance colour."""
    rt60 = rng.uniform(0.1, max_rt60)
    k = int(min(rt60, 0.8) * sr)
    kt = np.arange(k) / sr
    tail = rng.standard_normal(k).astype(np.float32) * np.exp(-6.9 * kt / rt60)
    tail[: int(rng.uniform(0.002, 0.015) * sr)] = 0.0  # pre-delay before the first reflections
    ir = rng.uniform(0.05, 0.6) * tail / max(float(np.sqrt(np.sum(tail * tail))), 1e-9)
    ir[0] = 1.0
    m = _fft_len(len(x) + k)
    spec = np.fft.rfft(x, m) * np.fft.rfft(ir, m)
    if rng.random() < 0.5:  # distance / cheap microphone: lose some highs
        spec *= _freq_shape(_freqs(m, sr), None, rng.uniform(2500, 7000))
    y = np.fft.irfft(spec, m)[:n_out]
    return np.pad(y, (0, max(0, n_out - len(y)))).astype(np.float32)


def _background(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Unit-RMS ambience: traffic-like rumble (steep spectrum), a little hiss, slow level drift."""
    exponent, hiss, hiss_top = rng.uniform(1.3, 2.2), rng.uniform(0.02, 0.2), rng.uniform(3000, 7000)

    def shape(f):
        # Independent rumble and hiss add in power; one noise draw with the summed spectrum is the same thing.
        rumble = _freq_shape(f, 30, None, exponent)
        rumble = rumble / np.sqrt(np.mean(rumble * rumble))
        return np.sqrt(rumble * rumble + hiss * hiss * _freq_shape(f, None, hiss_top) ** 2)

    x = _shaped_noise(n, rng, sr, shape)
    t = np.arange(n, dtype=np.float32) / sr
    x *= 1 + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3))
    return x / max(float(np.sqrt(np.mean(x * x))), 1e-12)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def synthesize_clip(label: str, seed: int, sample_rate: int = 16000, seconds: float = 4.0) -> Clip:
    """One clip: background, then at ``onset`` an event of ``label`` until ``offset`` (seconds)."""
    ci = _class_index(label)
    if seconds < 0.5:
        raise ValueError(f"synthetic clips must be at least 0.5 s long (got {seconds})")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, ci, SYNTH_VERSION])
    sr, n = int(sample_rate), int(round(seconds * sample_rate))
    scale = min(1.0, seconds / 4.0)
    on = int(rng.uniform(ONSET_RANGE[0] * scale, ONSET_RANGE[1] * scale) * sr)
    event, _ = render_event(label, rng, sr, (n - on) / sr)
    wet = _room(event, rng, sr, n - on)
    target = 10 ** (rng.uniform(*LEVEL_DBFS) / 20)
    wet *= target / max(_rms(wet[: len(event)]), 1e-12)
    audio = _background(n, rng, sr) * (target / 10 ** (rng.uniform(*SNR_DB) / 20))
    audio[on:] += wet
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # limit, keeping the SNR: shots and horns have high crest factors
        audio *= 0.99 / peak
    return Clip(audio.astype(np.float32), label, 0, f"synthetic:{int(seed)}",
                onset=on / sr, offset=(on + len(event)) / sr)


def synthetic_dataset(n_per_class: int = 300, seed: int = 0, *, sample_rate: int = 16000, clip_seconds: float = 4.0,
                      labels: Sequence[str] = URBANSOUND_CLASSES, progress: bool = True,
                      workers: int | None = None) -> Dataset:
    """``n_per_class`` clips of each label; clip i of a class has seed ``seed * 1e6 + i`` and fold ``1 + i % 10``."""
    labels = tuple(labels)
    for name in labels:
        _class_index(name)
    if not 1 <= int(n_per_class) < SEED_STRIDE:
        raise InputFileError(f"synthetic: n_per_class must be 1..{SEED_STRIDE - 1} (got {n_per_class})")
    jobs = [(name, i) for i in range(int(n_per_class)) for name in labels]

    def make(job):
        name, i = job
        clip = synthesize_clip(name, int(seed) * SEED_STRIDE + i, sample_rate, clip_seconds)
        clip.fold = 1 + i % 10
        return clip

    # numpy's FFTs and array maths release the GIL, so a few threads overlap well.
    from training.datasets.audio_io import default_workers

    with ThreadPoolExecutor(max_workers=workers or min(4, default_workers())) as pool:
        results = pool.map(make, jobs)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(jobs), desc="synthetic", unit="clip", leave=False)
        clips = list(results)
    report = DatasetReport("synthetic", None, len(clips), [])
    desc = (f"synthetic v{SYNTH_VERSION}: {n_per_class} clips x {len(labels)} classes, seed {seed}, "
            f"{clip_seconds:g} s at {sample_rate} Hz, folds 1-{min(10, int(n_per_class))} by clip index")
    return Dataset(clips, labels, report, desc)


def load_synthetic(*, sample_rate: int = 16000, clip_seconds: float = 4.0, progress: bool = True,
                   n_per_class: int = 300, seed: int = 0, labels: Sequence[str] = URBANSOUND_CLASSES,
                   workers: int | None = None) -> Dataset:
    """``load_dataset("synthetic", ...)`` entry point; see :func:`synthetic_dataset`."""
    return synthetic_dataset(n_per_class, seed, sample_rate=sample_rate, clip_seconds=clip_seconds,
                             labels=labels, progress=progress, workers=workers)


def synthetic_playlist(labels: Sequence[str], seed: int, gap_seconds: float = 1.5, *, sample_rate: int = 16000,
                       event_seconds: float = 2.0, noise_dbfs: float | None = -60.0,
                       level_dbfs: tuple[float, float] = (-24.0, -14.0)) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Events one after another with quiet gaps: (float32 audio, [(label, onset_s, offset_s)]).

    Layout: ``gap_seconds`` of quiet, then each event (at most ``event_seconds``,
    with a light room reverb whose tail is faded out within 0.3 s after ``offset``)
    followed by ``gap_seconds`` of quiet. Quiet is white noise at ``noise_dbfs``
    (None: digital silence), well under the front end's -45 dBFS gate.
    """
    sr = int(sample_rate)
    gap, tail = int(gap_seconds * sr), int(0.3 * sr)
    pieces, events, t = [np.zeros(gap, dtype=np.float32)], [], gap
    for i, label in enumerate(labels):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, i, _class_index(label), SYNTH_VERSION])
        event, _ = render_event(label, rng, sr, event_seconds)
        wet = _room(event, rng, sr, len(event) + tail, max_rt60=0.4)
        wet[len(event):] *= np.linspace(1.0, 0.0, tail, dtype=np.float32) ** 2
        wet *= 10 ** (rng.uniform(*level_dbfs) / 20) / max(_rms(wet[: len(event)]), 1e-12)
        wet *= min(1.0, 0.99 / max(float(np.max(np.abs(wet))), 1e-12))
        events.append((label, t / sr, (t + len(event)) / sr))
        pieces += [wet, np.zeros(gap, dtype=np.float32)]
        t += len(wet) + gap
    audio = np.concatenate(pieces)
    if noise_dbfs is not None:
        floor = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 1 << 20]).standard_normal(len(audio))
        audio += (10 ** (noise_dbfs / 20) * floor).astype(np.float32)
    return audio.astype(np.float32), events
