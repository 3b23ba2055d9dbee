"""A scripted stream of sounds that must trigger nothing: the false-triggers-per-hour test.

Household life around the box: adult speech in voices and languages never
trained on, music (chords, bass, drums, a melody), speech over music and
generated household-like sounds (doors, clinks, footsteps, water, a phone
ring) from held-out sound families. Events fill ``busy`` (70 %) of the time;
the gaps hold quiet room noise. Nothing here is a built-in class, so every
built-in detection on it is a false trigger.
"""

from __future__ import annotations

import numpy as np

from training.datasets import sound_world
from training.datasets.synthetic_sound import _decay, _envelope, _noise, _osc

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 4, 5, 3))


def music(seconds: float, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Pop-like music: a chord progression (pad), bass, a melody and a drum kit at 80-140 bpm."""
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    beat = 60.0 / rng.uniform(80, 140)
    root = 48 + int(rng.integers(0, 12))
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    harm = np.arange(1, 13, dtype=np.float64) ** -rng.uniform(1.0, 2.0)
    bar = 4 * beat
    for b in range(int(np.ceil(seconds / bar))):
        s = int(b * bar * sr)
        m = min(int(bar * sr), n - s)
        if m <= 0:
            break
        deg = prog[b % len(prog)]
        for k in (0, 2, 4):  # triad pad
            note = root + 12 + _MAJOR[(deg + k) % 7] + 12 * ((deg + k) // 7)
            out[s:s + m] += 0.12 * _osc(440 * 2 ** ((note - 69) / 12), harm, sr, m) * _envelope(m, sr, 0.05, 0.1)
        out[s:s + m] += 0.25 * _osc(440 * 2 ** ((root - 12 + _MAJOR[deg] - 69) / 12), harm[:4], sr, m) \
            * _envelope(m, sr, 0.01, 0.05)
    step = beat / 2
    for i in range(int(seconds / step)):  # melody in eighths, some rests
        if rng.random() < 0.3:
            continue
        s, m = int(i * step * sr), int(step * sr)
        if s + m > n:
            break
        note = root + 24 + _MAJOR[int(rng.integers(7))]
        out[s:s + m] += 0.15 * _osc(440 * 2 ** ((note - 69) / 12), harm[:6], sr, m) * _decay(m, sr, 0.25, 0.01)
    for i in range(int(seconds / step)):  # kick on beats 1/3, snare 2/4, hi-hat every eighth
        s = int(i * step * sr)
        m = min(int(0.2 * sr), n - s)
        if m <= 0:
            break
        t = np.arange(m) / sr
        if i % 4 == 0:
            out[s:s + m] += 0.5 * np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t * 30)) / sr).astype(np.float32) \
                * _decay(m, sr, 0.12)
        if i % 4 == 2:
            out[s:s + m] += 0.25 * _noise(m, rng, sr, lo=800, hi=6000) * _decay(m, sr, 0.08)
        out[s:s + m] += 0.06 * _noise(m, rng, sr, lo=6000) * _decay(m, sr, 0.02)
    return out


def _speech(seconds: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    from training.datasets import speech

    out = np.zeros(int(seconds * sr), np.float32)
    t = 0
    while t < len(out):
        lang = str(rng.choice(list(speech.SENTENCES)))
        text = str(rng.choice(speech.SENTENCES[lang]))
        voice = str(rng.choice(speech.SENTENCE_VOICES[lang]))
        x = speech.render(text, voice, int(rng.integers(25, 75)), int(rng.integers(130, 200)), sr)
        x = x / max(float(np.max(np.abs(x))), 1e-9)
        out[t:t + len(x)] += x[: len(out) - t]
        t += len(x) + int(rng.uniform(0.2, 0.8) * sr)
    return out


def _household(seconds: float, rng: np.random.Generator, sr: int, exclude=()) -> np.ndarray:
    """Held-out families played in a short sequence (a few instances, gaps), like kitchen or door noises;
    never one of ``exclude`` (families a measured box was taught: hearing them is no false trigger)."""
    out = np.zeros(int(seconds * sr), np.float32)
    fam = int(rng.choice([f for f in sound_world.test_families() if f not in set(exclude)]))
    t = 0
    while t < len(out):
        x = sound_world.family_sound(fam, int(rng.integers(10_000, 20_000)), sr)
        out[t:t + len(x)] += x[: len(out) - t]
        t += len(x) + int(rng.uniform(0.1, 1.0) * sr)
    return out


def _phone_or_water(seconds: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    if rng.random() < 0.5:  # a phone ring: two-tone bursts, 1 s on / 2 s off
        t = np.arange(n) / sr
        f = rng.uniform(700, 1500)
        x = (np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * f * 1.25 * t)) * (np.sin(2 * np.pi * 20 * t) > 0)
        return (x * ((t % 3.0) < 1.0)).astype(np.float32)
    return _noise(n, rng, sr, exponent=0.3, lo=300, hi=6000) * (0.6 + 0.4 * rng.random(n).astype(np.float32))


KINDS = ("speech", "music", "speech_over_music", "household", "phone_or_water")


def negatives_stream(minutes: float = 10.0, seed: int = 0, sr: int = 16000, busy: float = 0.7,
                     level_dbfs=(-34.0, -16.0), exclude_families=()) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """(float32 audio, [(kind, start s, end s)]): events for ``busy`` of the time, quiet room noise between.
    ``exclude_families``: sound-world families the household sounds never use (those a measured box was
    taught); without it the stream is the same for every caller of one seed."""
    from training.augment import room_realism

    rng = np.random.default_rng([seed, 77])
    n = int(minutes * 60 * sr)
    audio = (10 ** (-62 / 20) * rng.standard_normal(n)).astype(np.float32)
    events, t = [], 0.0
    total = minutes * 60
    while t < total - 1:
        length = float(min(rng.uniform(3, 12), total - t))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        if kind == "speech":
            x = _speech(length, rng, sr)
        elif kind == "music":
            x = music(length, rng, sr)
        elif kind == "speech_over_music":
            x = _speech(length, rng, sr) + 10 ** (-rng.uniform(3, 12) / 20) * music(length, rng, sr)
        elif kind == "household":
            x = _household(length, rng, sr, exclude_families)
        else:
            x = _phone_or_water(length, rng, sr)
        x = room_realism(x, rng, sr, snr_db=(10.0, 30.0), p_noise=0.5)
        loud = x[np.abs(x) > 1e-4]
        rms = float(np.sqrt(np.mean(loud.astype(np.float64) ** 2))) if len(loud) else 1.0
        x = x * np.float32(10 ** (rng.uniform(*level_dbfs) / 20) / max(rms, 1e-9))
        s = int(t * sr)
        audio[s:s + len(x)] += x[: n - s]
        events.append((kind, t, t + length))
        t += length / busy  # the gap after an event keeps events at ``busy`` of the time
    return np.clip(audio, -1, 1).astype(np.float32), events
