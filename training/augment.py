"""Data augmentation: waveform transforms and SpecAugment-style masks.

Every function is pure: it takes the input and a ``np.random.Generator``,
returns a new float32 array and never changes its input. Random parameters
are given as a range ``(low, high)`` (drawn uniformly) or a single number
(used as is), so a test can pin any of them.

``augment_waveform`` composes the waveform transforms for training, with one
``strength`` knob (0 = unchanged, 1 = strongest); ``spec_augment`` masks
time and frequency bands of a log-mel array.
"""

from __future__ import annotations

from typing import Union

import numpy as np

Range = Union[float, tuple[float, float]]


def _draw(rng: np.random.Generator, value: Range) -> float:
    if isinstance(value, (tuple, list)):
        lo, hi = value
        return float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    return float(value)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.array(x, dtype=np.float32, copy=True)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad at the end to exactly n samples."""
    x = np.asarray(x, dtype=np.float32)
    return x[:n].copy() if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), dtype=np.float32)])


# ------------------------------------------------------------------ waveform


def shift(x: np.ndarray, samples: int) -> np.ndarray:
    """Delay (samples > 0) or advance (< 0) a signal, zero-filling; nothing wraps around."""
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros_like(x)
    s = int(samples)
    if s >= 0:
        out[s:] = x[: len(x) - s] if s < len(x) else x[:0]
    else:
        out[: len(x) + s] = x[-s:]
    return out


def time_shift(x: np.ndarray, rng: np.random.Generator, seconds: Range = (-0.1, 0.1),
               sample_rate: int = 16000) -> np.ndarray:
    """Move the content by a random time (zero fill, no wrap-around, which would put ends before starts)."""
    return shift(x, int(round(_draw(rng, seconds) * sample_rate)))


def gain(x: np.ndarray, rng: np.random.Generator, db: Range = (-6.0, 6.0)) -> np.ndarray:
    """Scale by a random gain in dB (no clipping: the float front end takes any level)."""
    return (np.asarray(x, dtype=np.float32) * np.float32(10.0 ** (_draw(rng, db) / 20.0))).astype(np.float32)


def colored_noise(n: int, rng: np.random.Generator, exponent: float = 0.0) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum 1/f^exponent (0 white, 1 pink, 2 brown)."""
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.maximum(np.arange(n // 2 + 1), 1.0)
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n).astype(np.float32)
    return x / max(_rms(x), 1e-12)


def mix_noise(x: np.ndarray, rng: np.random.Generator, snr_db: Range = (10.0, 30.0),
              noise: np.ndarray | None = None, exponent: Range = (0.0, 2.0)) -> np.ndarray:
    """Add noise at a random SNR (signal RMS over noise RMS).

    ``noise``: a recording to mix in (a random stretch of it, looped if short);
    default: coloured noise with a random spectral ``exponent``. Silent input
    is returned unchanged, since an SNR against nothing is undefined.
    """
    x = np.asarray(x, dtype=np.float32)
    level = _rms(x)
    if level == 0.0 or len(x) == 0:
        return _f32(x)
    if noise is None:
        nz = colored_noise(len(x), rng, _draw(rng, exponent))
    else:
        src = np.asarray(noise, dtype=np.float32)
        if len(src) == 0 or _rms(src) == 0.0:
            raise ValueError("mix_noise: the noise recording is empty or silent")
        reps = int(np.ceil(len(x) / len(src))) + 1
        start = int(rng.integers(0, len(src)))
        nz = np.tile(src, reps)[start : start + len(x)]
    nz = nz * np.float32(level / max(_rms(nz), 1e-12) / 10.0 ** (_draw(rng, snr_db) / 20.0))
    return (x + nz).astype(np.float32)


def _resample(x: np.ndarray, in_rate: float, out_rate: float) -> np.ndarray:
    import soxr

    return soxr.resample(np.asarray(x, dtype=np.float32), in_rate, out_rate, quality="QQ").astype(np.float32)


_N_FFT, _HOP = 512, 128  # 32 ms frames, 75 % overlap at 16 kHz


def _hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _stft(x: np.ndarray) -> np.ndarray:
    # Centred frames (half a frame of zeros each side) so the edges are analysed too.
    xp = np.pad(np.asarray(x, dtype=np.float32), (_N_FFT // 2, _N_FFT // 2 + _HOP))
    frames = np.lib.stride_tricks.sliding_window_view(xp, _N_FFT)[::_HOP] * _hann(_N_FFT)
    return np.fft.rfft(frames, axis=1)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    win = _hann(_N_FFT)
    frames = np.fft.irfft(spec, _N_FFT, axis=1).astype(np.float32) * win
    starts = np.arange(len(frames)) * _HOP
    y = np.zeros(starts[-1] + _N_FFT, dtype=np.float32)
    norm = np.zeros_like(y)
    # Frames 4 hops apart never overlap, so each of the 4 phases is one vectorised add.
    for phase in range(_N_FFT // _HOP):
        idx = (starts[phase :: _N_FFT // _HOP, None] + np.arange(_N_FFT)[None, :]).ravel()
        y[idx] += frames[phase :: _N_FFT // _HOP].ravel()
        norm[idx] += np.tile(win * win, len(starts[phase :: _N_FFT // _HOP]))
    y = y / np.maximum(norm, 1e-3)
    return fit_length(y[_N_FFT // 2 :], length)


def _phase_vocoder(x: np.ndarray, n_out: int) -> np.ndarray:
    """Time-scale x to n_out samples at the same pitch (phase vocoder, as librosa's time_stretch).

    Magnitudes are interpolated between analysis frames and each bin's phase
    advances by its measured instantaneous frequency, so steady tones keep
    their exact pitch; transients smear by about one frame (32 ms).
    """
    x = np.asarray(x, dtype=np.float32)
    if n_out <= 0 or len(x) == 0:
        return np.zeros(max(n_out, 0), dtype=np.float32)
    spec = _stft(x)
    rate = len(x) / n_out
    steps = np.arange(0.0, len(spec) - 1, rate)
    i = steps.astype(np.int64)
    a = (steps - i)[:, None].astype(np.float32)
    s0, s1 = spec[i], spec[i + 1]
    mag = (1 - a) * np.abs(s0) + a * np.abs(s1)
    omega = 2 * np.pi * _HOP * np.arange(spec.shape[1]) / _N_FFT  # expected advance per hop
    dphi = np.angle(s1) - np.angle(s0) - omega
    dphi -= 2 * np.pi * np.round(dphi / (2 * np.pi))
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])), np.cumsum(omega + dphi, axis=0)[:-1]])
    return _istft(mag * np.exp(1j * phase), n_out)


def time_stretch(x: np.ndarray, rng: np.random.Generator, rate: Range = (0.85, 1.15)) -> np.ndarray:
    """Play ``rate`` times faster at the same pitch: the result has about len(x) / rate samples."""
    r = _draw(rng, rate)
    if r <= 0:
        raise ValueError(f"time_stretch: rate must be positive (got {r})")
    return _phase_vocoder(x, int(round(len(x) / r)))


def pitch_shift(x: np.ndarray, rng: np.random.Generator, semitones: Range = (-2.0, 2.0),
                sample_rate: int = 16000) -> np.ndarray:
    """Shift pitch by some semitones, same length: stretch in time, then resample back."""
    x = np.asarray(x, dtype=np.float32)
    ratio = 2.0 ** (_draw(rng, semitones) / 12.0)
    if abs(ratio - 1.0) < 1e-6 or len(x) == 0:
        return _f32(x)
    longer = _phase_vocoder(x, int(round(len(x) * ratio)))
    return fit_length(_resample(longer, sample_rate * ratio, sample_rate), len(x))


def augment_waveform(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000,
                     strength: float = 0.5, noise: np.ndarray | None = None) -> np.ndarray:
    """A random composition of the transforms above, same length as ``x``; strength 0 changes nothing.

    Each transform is applied with a probability and a range that grow with
    ``strength`` (0..1): shift up to 0.2 s, pitch up to 3 semitones, stretch
    up to 20 %, noise down to 10 dB SNR, gain up to 12 dB.
    """
    if sample_rate < 1000:
        raise TypeError(f"augment_waveform: sample_rate={sample_rate} looks like a strength; "
                        "call augment_waveform(x, rng, sample_rate, strength=...)")
    s = float(np.clip(strength, 0.0, 1.0))
    y = _f32(x)
    if s == 0.0 or len(y) == 0:
        return y
    n = len(y)
    if rng.random() < s:
        y = time_shift(y, rng, (-0.2 * s, 0.2 * s), sample_rate)
    if rng.random() < 0.5 * s:
        y = pitch_shift(y, rng, (-3.0 * s, 3.0 * s), sample_rate)
    if rng.random() < 0.5 * s:
        y = fit_length(time_stretch(y, rng, (1.0 - 0.2 * s, 1.0 + 0.2 * s)), n)
    if rng.random() < s:
        y = mix_noise(y, rng, (40.0 - 30.0 * s, 40.0 - 10.0 * s), noise)
    return gain(y, rng, (-12.0 * s, 12.0 * s))


# ------------------------------------------------------------------ log-mel masks


def _fill_value(features: np.ndarray, fill) -> float:
    if fill == "mean":
        return float(np.mean(features))
    if fill == "min":
        return float(np.min(features))
    return float(fill)


def _mask(features: np.ndarray, rng: np.random.Generator, axis: int, max_width: int, count: int, fill) -> np.ndarray:
    out = np.array(features, dtype=np.float32, copy=True)
    size = out.shape[axis]
    value = _fill_value(features, fill)
    for _ in range(int(count)):
        w = int(rng.integers(0, min(int(max_width), size) + 1))
        start = int(rng.integers(0, size - w + 1))
        index = [slice(None)] * out.ndim
        index[axis] = slice(start, start + w)
        out[tuple(index)] = value
    return out


def time_mask(features: np.ndarray, rng: np.random.Generator, max_width: int = 12, count: int = 1,
              fill="mean") -> np.ndarray:
    """Set ``count`` random runs of up to ``max_width`` frames (axis 0) to ``fill`` ("mean", "min" or a number)."""
    return _mask(features, rng, 0, max_width, count, fill)


def freq_mask(features: np.ndarray, rng: np.random.Generator, max_width: int = 8, count: int = 1,
              fill="mean") -> np.ndarray:
    """Set ``count`` random runs of up to ``max_width`` mel bands (axis 1) to ``fill``."""
    return _mask(features, rng, 1, max_width, count, fill)


def spec_augment(features: np.ndarray, rng: np.random.Generator, time_masks: int = 2, time_width: int = 12,
                 freq_masks: int = 2, freq_width: int = 8, fill="mean") -> np.ndarray:
    """SpecAugment (Park et al. 2019) without warping, on (frames, mels[, 1]) log-mel arrays.

    The fill defaults to the array's mean: the log-mel here is not normalised,
    so 0 would be a loud value, and the mean is what 0 is after normalising.
    """
    value = _fill_value(features, fill)
    out = time_mask(features, rng, time_width, time_masks, value)
    return freq_mask(out, rng, freq_width, freq_masks, value)


# ------------------------------------------------------------------ room realism


def _fft_filter(x: np.ndarray, gain_of_freq, sample_rate: int) -> np.ndarray:
    # Zero-phase FFT filter with enough padding that the circular wrap falls in the dropped tail.
    n = len(x)
    m = 1 << int(np.ceil(np.log2(max(n + 1024, 2))))
    f = np.fft.rfftfreq(m, 1.0 / sample_rate)
    return np.fft.irfft(np.fft.rfft(x, m) * gain_of_freq(np.maximum(f, 1.0)), m)[:n].astype(np.float32)


def reverb(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000, rt60: Range = (0.15, 0.8),
           wet: Range = (0.1, 0.7)) -> np.ndarray:
    """A small room: the direct sound plus an exponentially decaying noise tail (``rt60`` s to -60 dB).

    ``wet`` is the tail's energy relative to the direct path, the drier the closer the source.
    Same length as ``x``: the tail past the end is cut, as a 1 s window would cut it.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return _f32(x)
    t60 = max(_draw(rng, rt60), 0.02)
    k = int(min(t60, 1.0) * sample_rate)
    tail = rng.standard_normal(k).astype(np.float32) * np.exp(-6.9 * np.arange(k) / (t60 * sample_rate))
    tail[: int(rng.uniform(0.002, 0.012) * sample_rate)] = 0.0  # pre-delay before the first reflections
    ir = np.float32(np.sqrt(_draw(rng, wet))) * tail / max(float(np.sqrt(np.sum(tail * tail))), 1e-9)
    ir[0] = 1.0
    m = 1 << int(np.ceil(np.log2(len(x) + k)))
    y = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(ir, m), m)[: len(x)]
    return y.astype(np.float32)


def mic_band(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000, low_hz: Range = (80.0, 400.0),
             high_hz: Range = (2500.0, 7000.0), tilt_db: Range = (-4.0, 4.0)) -> np.ndarray:
    """A cheap microphone / small speaker: band-limited to low..high Hz with a gentle spectral tilt."""
    lo, hi, tilt = _draw(rng, low_hz), _draw(rng, high_hz), _draw(rng, tilt_db)

    def gain_of(f):
        g = 1.0 / np.sqrt(1.0 + (lo / f) ** 4) / np.sqrt(1.0 + (f / hi) ** 4)
        # tilt_db per decade above 1 kHz (negative: duller)
        return g * 10.0 ** (tilt * np.log10(f / 1000.0) / 20.0)

    return _fft_filter(np.asarray(x, dtype=np.float32), gain_of, sample_rate)


def room_realism(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000,
                 snr_db: Range = (5.0, 20.0), noise: np.ndarray | None = None, p_reverb: float = 0.7,
                 p_mic: float = 0.6, p_noise: float = 0.8) -> np.ndarray:
    """What a box on a shelf hears: room reverb, a cheap mic's band limits, room noise at ``snr_db``.

    Each stage applies with its probability; ``noise`` (e.g. a household
    recording) replaces the default coloured noise. The level is unchanged
    except by the added noise.
    """
    y = _f32(x)
    if len(y) == 0 or _rms(y) == 0.0:
        return y
    level = _rms(y)
    if rng.random() < p_reverb:
        y = reverb(y, rng, sample_rate)
    if rng.random() < p_mic:
        y = mic_band(y, rng, sample_rate)
    y *= np.float32(level / max(_rms(y), 1e-12))
    if rng.random() < p_noise:
        y = mix_noise(y, rng, snr_db, noise, exponent=(0.0, 2.0))
    return y.astype(np.float32)
