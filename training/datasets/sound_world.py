"""A wide world of procedural sound families, to teach the embedding what "a different sound" means.

Ten built-in classes cannot teach a general feature space, so the project
generates hundreds of *families*: a family is one parameterised recipe with
its own fixed character (modal frequencies of a struck object, a harmonic
profile with its vibrato, a noise band with its envelope, a rhythm pattern,
an FM ratio ...), and each *instance* varies within it (a few % of pitch,
decay, timing, level), as takes of one real sound do.

Family ``k`` has kind ``KINDS[k % len(KINDS)]`` and its character drawn from
``np.random.default_rng([WORLD_VERSION, k])``; instance ``i`` draws its
variation from ``[WORLD_VERSION, k, i]``. So ``(k, i)`` always gives the same
samples and nothing has to be stored.

Held out: families with ``k % HOLDOUT_EVERY == HOLDOUT_EVERY - 1`` are never
trained on; they are the few-shot / open-set test (see training.embedding_eval).
Families with ``k % HOLDOUT_EVERY == HOLDOUT_EVERY - 2`` are not trained on
either: they calibrate the device's unknown decision, so the test stays unseen.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from training.datasets.synthetic_sound import _decay, _envelope, _filter, _noise, _osc

WORLD_VERSION = 1  # bump when any family's sound changes
N_FAMILIES = 320
HOLDOUT_EVERY = 5  # every 5th family is a held-out (test) family
MAX_SECONDS = 1.0


def _impact(c, v, sr, n):
    """A struck object: 2-6 inharmonic modes with their own decays, a noisy strike, 1-3 hits."""
    t = np.arange(n) / sr
    out = np.zeros(n, np.float32)
    hits = c["hits"]
    for h in range(hits):
        start = int((h * c["gap"] + v.uniform(0, 0.02)) * sr)
        if start >= n:
            break
        m = n - start
        x = np.zeros(m, np.float32)
        for f, tau, a in zip(c["freqs"], c["taus"], c["amps"]):
            f = f * v.uniform(0.97, 1.03)
            x += a * np.sin(2 * np.pi * f * t[:m] + v.uniform(0, 6.3)).astype(np.float32) * _decay(
                m, sr, tau * v.uniform(0.8, 1.2))
        click = _noise(m, v, sr, lo=c["click_lo"]) * _decay(m, sr, 0.004)
        out[start:] += (x + c["click"] * click) * (0.6 + 0.4 * v.random())
    return out


def _harmonic(c, v, sr, n):
    """A voiced/instrumental tone: harmonic profile, vibrato, a glide, an attack/release envelope."""
    dur = min(n, int(c["dur"] * v.uniform(0.85, 1.15) * sr))
    t = np.arange(dur) / sr
    f0 = c["f0"] * v.uniform(0.95, 1.05)
    glide = np.exp(np.log(c["glide"]) * t / max(t[-1], 1e-3))
    vib = 1 + c["vib_depth"] * np.sin(2 * np.pi * c["vib_rate"] * v.uniform(0.9, 1.1) * t)
    x = _osc(f0 * glide * vib, c["harm"], sr)
    out = np.zeros(n, np.float32)
    out[:dur] = x * _envelope(dur, sr, c["attack"], c["release"])
    return out


def _noise_burst(c, v, sr, n):
    """Band-limited coloured noise with an attack/decay envelope, possibly a few times."""
    out = np.zeros(n, np.float32)
    for b in range(c["bursts"]):
        start = int(b * c["gap"] * v.uniform(0.9, 1.1) * sr)
        dur = min(n - start, int(c["dur"] * v.uniform(0.8, 1.2) * sr))
        if dur <= 16:
            break
        x = _noise(dur, v, sr, c["exponent"], c["lo"] * v.uniform(0.9, 1.1), c["hi"] * v.uniform(0.9, 1.1))
        out[start:start + dur] += x * _envelope(dur, sr, c["attack"], c["release"])
    return out


def _grain(c, v, sr, m):
    if c["grain"] == "click":
        return _noise(m, v, sr, lo=c["grain_f"]) * _decay(m, sr, 0.006)
    if c["grain"] == "tone":
        t = np.arange(m) / sr
        return np.sin(2 * np.pi * c["grain_f"] * t).astype(np.float32) * _decay(m, sr, c["grain_tau"])
    t = np.arange(m) / sr  # "thud": a low pitch drop
    f = c["grain_f"] * 0.3 * np.exp(-t * 20) + 50
    return np.sin(2 * np.pi * np.cumsum(f) / sr).astype(np.float32) * _decay(m, sr, c["grain_tau"])


def _rhythm(c, v, sr, n):
    """A rhythm: a fixed onset pattern (tempo varies a little) of one short grain."""
    out = np.zeros(n, np.float32)
    scale = v.uniform(0.92, 1.08)
    m = int(0.15 * sr)
    for onset, accent in zip(c["pattern"], c["accents"]):
        s = int(onset * scale * sr + v.normal(0, 0.004) * sr)
        if 0 <= s < n:
            g = _grain(c, v, sr, m) * accent
            out[s:s + m] += g[: n - s]
    return out


def _fm(c, v, sr, n):
    """FM tone: carrier, modulator at a fixed ratio, a decaying or swelling index."""
    dur = min(n, int(c["dur"] * v.uniform(0.85, 1.15) * sr))
    t = np.arange(dur) / sr
    fc = c["fc"] * v.uniform(0.96, 1.04)
    index = c["index"] * (np.exp(-t / c["index_tau"]) if c["index_decay"] else np.minimum(t / 0.3, 1.0))
    x = np.sin(2 * np.pi * fc * t + index * np.sin(2 * np.pi * fc * c["ratio"] * t))
    out = np.zeros(n, np.float32)
    out[:dur] = x.astype(np.float32) * _envelope(dur, sr, c["attack"], c["release"])
    return out


def _am(c, v, sr, n):
    """A texture: noise band or tone, amplitude-modulated at 2-30 Hz (motors, purring, tremolo)."""
    t = np.arange(n) / sr
    if c["am_tone"]:
        x = _osc(c["f0"] * v.uniform(0.96, 1.04), c["harm"], sr, n)
    else:
        x = _noise(n, v, sr, c["exponent"], c["lo"], c["hi"])
    rate = c["rate"] * v.uniform(0.9, 1.1)
    mod = (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + v.uniform(0, 6.3))) ** c["sharp"]
    dur = int(c["dur"] * v.uniform(0.85, 1.15) * sr)
    env = np.zeros(n, np.float32)
    env[: min(dur, n)] = _envelope(min(dur, n), sr, 0.02, 0.05)
    return (x * mod * env).astype(np.float32)


def _sweep(c, v, sr, n):
    """Chirps: exponential frequency sweeps (whistles, bird-like), repeated."""
    out = np.zeros(n, np.float32)
    for r in range(c["repeats"]):
        start = int(r * c["gap"] * v.uniform(0.95, 1.05) * sr)
        dur = min(n - start, int(c["dur"] * v.uniform(0.9, 1.1) * sr))
        if dur <= 16:
            break
        t = np.arange(dur) / sr
        f = c["f_start"] * (c["f_end"] / c["f_start"]) ** (t / t[-1]) * v.uniform(0.96, 1.04)
        out[start:start + dur] += _osc(f, c["harm"], sr) * _envelope(dur, sr, 0.005, 0.02)
    return out


def _bell(c, v, sr, n):
    """A chord of slowly beating partials with one long decay (bells, chimes, pads)."""
    t = np.arange(n) / sr
    x = np.zeros(n, np.float32)
    for f, a in zip(c["freqs"], c["amps"]):
        f = f * v.uniform(0.99, 1.01)
        x += a * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(2 * np.pi * (f + c["beat"]) * t)).astype(np.float32)
    return x * _decay(n, sr, c["tau"] * v.uniform(0.8, 1.2), c["attack"])


def _crackle(c, v, sr, n):
    """Random impulses through a resonance: crackling, rain on a window, sizzling, a Geiger counter."""
    p = c["density"] * v.uniform(0.8, 1.2) / sr
    imp = (v.random(n) < p).astype(np.float32) * v.uniform(0.3, 1.0, n).astype(np.float32)
    res = c["res"]
    x = _filter(imp, sr, lo=res / 1.5, hi=res * 1.5)
    dur = int(c["dur"] * v.uniform(0.85, 1.15) * sr)
    env = np.zeros(n, np.float32)
    env[: min(dur, n)] = _envelope(min(dur, n), sr, 0.02, 0.05)
    return x * env


def _harm_profile(r: np.random.Generator) -> np.ndarray:
    k = 24
    amps = np.arange(1, k + 1, dtype=np.float64) ** -r.uniform(0.5, 2.5)
    if r.random() < 0.3:
        amps[1::2] *= 0.05  # odd harmonics only: clarinet-/square-like
    if r.random() < 0.3:  # one formant-like bump
        centre = r.uniform(2, 12)
        amps *= 1 + 4 * np.exp(-0.5 * ((np.arange(1, k + 1) - centre) / 1.5) ** 2)
    return amps


def _character(kind: str, r: np.random.Generator) -> dict:
    """A family's fixed parameters."""
    env = {"attack": float(r.choice([0.003, 0.02, 0.08, 0.2])), "release": float(r.uniform(0.02, 0.3))}
    if kind == "impact":
        nm = int(r.integers(2, 7))
        base = r.uniform(150, 3000)
        return {"freqs": base * np.concatenate([[1.0], np.sort(r.uniform(1.2, 6.0, nm - 1))]),
                "taus": r.uniform(0.03, 0.6, nm), "amps": r.uniform(0.2, 1.0, nm),
                "hits": int(r.choice([1, 1, 2, 3])), "gap": r.uniform(0.12, 0.3),
                "click": r.uniform(0.0, 0.8), "click_lo": r.uniform(500, 4000)}
    if kind == "harmonic":
        return {"f0": r.uniform(90, 1200), "harm": _harm_profile(r), "dur": r.uniform(0.25, 0.95),
                "glide": float(np.exp(r.choice([0.0, 0.0, r.uniform(-0.7, 0.7)]))),
                "vib_rate": r.uniform(3, 8), "vib_depth": float(r.choice([0.0, r.uniform(0.005, 0.04)])), **env}
    if kind == "noise":
        lo = r.uniform(60, 4000)
        return {"lo": lo, "hi": min(lo * r.uniform(1.5, 8), 7800), "exponent": r.uniform(0, 2),
                "bursts": int(r.choice([1, 1, 2, 3, 4])), "gap": r.uniform(0.15, 0.3),
                "dur": r.uniform(0.04, 0.6), **env}
    if kind == "rhythm":
        beats = int(r.integers(3, 8))
        step = r.uniform(0.08, 0.2)
        grid = np.sort(r.choice(np.arange(int(0.9 / step)), size=min(beats, int(0.9 / step)), replace=False))
        return {"pattern": grid * step, "accents": r.uniform(0.4, 1.0, len(grid)),
                "grain": str(r.choice(["click", "tone", "thud"])), "grain_f": r.uniform(200, 4000),
                "grain_tau": r.uniform(0.01, 0.08)}
    if kind == "fm":
        return {"fc": r.uniform(100, 2000), "ratio": float(r.choice([0.5, 1.0, 1.41, 2.0, 3.0, 3.5, r.uniform(0.3, 5)])),
                "index": r.uniform(0.5, 8), "index_decay": bool(r.random() < 0.6), "index_tau": r.uniform(0.05, 0.5),
                "dur": r.uniform(0.2, 0.95), **env}
    if kind == "am":
        lo = r.uniform(60, 2000)
        return {"am_tone": bool(r.random() < 0.5), "f0": r.uniform(60, 600), "harm": _harm_profile(r),
                "lo": lo, "hi": min(lo * r.uniform(2, 10), 7800), "exponent": r.uniform(0, 2),
                "rate": r.uniform(2, 30), "sharp": float(r.choice([1, 2, 4, 8])), "dur": r.uniform(0.5, 1.0)}
    if kind == "sweep":
        f1 = r.uniform(300, 5000)
        return {"f_start": f1, "f_end": f1 * float(np.exp(r.uniform(-1.5, 1.5))), "harm": _harm_profile(r)[:6],
                "repeats": int(r.choice([1, 2, 3, 4, 5])), "gap": r.uniform(0.12, 0.3), "dur": r.uniform(0.05, 0.5)}
    if kind == "bell":
        nm = int(r.integers(2, 6))
        base = r.uniform(200, 2500)
        return {"freqs": base * np.concatenate([[1.0], r.uniform(1.1, 4.5, nm - 1)]), "amps": r.uniform(0.3, 1.0, nm),
                "beat": r.uniform(0.5, 6), "tau": r.uniform(0.2, 1.2), "attack": float(r.choice([0.001, 0.01, 0.1]))}
    if kind == "crackle":
        return {"density": float(np.exp(r.uniform(np.log(5), np.log(800)))), "res": r.uniform(300, 5000),
                "dur": r.uniform(0.4, 1.0)}
    raise ValueError(kind)


_KIND_FN: dict[str, Callable] = {"impact": _impact, "harmonic": _harmonic, "noise": _noise_burst, "rhythm": _rhythm,
                                 "fm": _fm, "am": _am, "sweep": _sweep, "bell": _bell, "crackle": _crackle}
KINDS = tuple(_KIND_FN)


def family_kind(family: int) -> str:
    return KINDS[int(family) % len(KINDS)]


def is_held_out(family: int) -> bool:
    """Families never trained on: the few-shot and open-set test set."""
    return int(family) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1


def is_calibration(family: int) -> bool:
    """Families that calibrate the open-set thresholds (neither trained on nor tested)."""
    return int(family) % HOLDOUT_EVERY == HOLDOUT_EVERY - 2


def train_families(n: int = N_FAMILIES) -> list[int]:
    return [k for k in range(n) if not is_held_out(k) and not is_calibration(k)]


def calibration_families(n: int = N_FAMILIES) -> list[int]:
    return [k for k in range(n) if is_calibration(k)]


def test_families(n: int = N_FAMILIES) -> list[int]:
    return [k for k in range(n) if is_held_out(k)]


def family_sound(family: int, instance: int, sample_rate: int = 16000, seconds: float = MAX_SECONDS) -> np.ndarray:
    """Dry instance ``instance`` of family ``family``: float32, ``seconds`` long, peak 0.5.

    The sound starts at sample 0; the caller places it, adds the room and the level.
    """
    kind = family_kind(family)
    character = _character(kind, np.random.default_rng([WORLD_VERSION, int(family)]))
    v = np.random.default_rng([WORLD_VERSION, int(family), int(instance)])
    n = int(round(seconds * sample_rate))
    x = np.nan_to_num(_KIND_FN[kind](character, v, sample_rate, n)).astype(np.float32)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (0.5 / peak)).astype(np.float32) if peak > 0 else x
