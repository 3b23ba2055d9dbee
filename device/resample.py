"""Rational-ratio polyphase resampling in numpy (no scipy/soxr on the device).

USB microphones often open only at 44.1 or 48 kHz while the pipeline runs at
16 kHz. ``Resampler`` converts a stream chunk by chunk, carrying the filter
history across chunks, so the concatenated output does not depend on how the
input was cut. ``resample`` converts a whole signal at once (WAV playlists).

The filter is a Kaiser-windowed sinc, designed like ``scipy.signal.resample_poly``
(cut-off at the lower Nyquist rate, 10 zero crossings per side, beta 5), so the
output matches the workstation's resampling closely enough for the features.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

__all__ = ["Resampler", "resample", "to_int16"]


_ZERO_CROSSINGS = 10  # per side; scipy.signal.resample_poly's default
_KAISER_BETA = 5.0


def _half_len(up: int, down: int) -> int:
    """Filter half length in the upsampled domain (= its group delay there)."""
    return _ZERO_CROSSINGS * max(up, down)


# Outputs computed per vectorised step: bounds the (outputs x taps) gather
# matrices to a few MiB whatever the chunk size or rate ratio.
_EMIT_ELEMENTS = 1 << 18


@lru_cache(maxsize=8)
def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """Filter taps arranged by phase: shape (up, taps_per_phase), read-only.

    Built phase by phase, so an awkward ratio (e.g. 44099 -> 16000 Hz, millions
    of taps) costs the bank itself and no full-length temporaries.
    """
    half_len = _half_len(up, down)
    n = 2 * half_len + 1
    cutoff = 1.0 / max(up, down)  # fraction of the upsampled Nyquist frequency
    taps = -(-n // up)  # ceil
    # phase p uses h[p], h[p + up], h[p + 2*up], ...: row p of this matrix.
    bank = np.zeros((up, taps))
    j = np.arange(taps)
    i0_beta = np.i0(_KAISER_BETA)
    for p in range(up):
        k = p + up * j
        k = k[k < n]
        # np.kaiser(n, beta)[k], evaluated only at these k.
        r = (2.0 * k - (n - 1)) / (n - 1)
        window = np.i0(_KAISER_BETA * np.sqrt(np.maximum(0.0, 1.0 - r * r))) / i0_beta
        bank[p, : len(k)] = cutoff * np.sinc(cutoff * (k - half_len)) * window
    bank *= up / bank.sum()  # unity DC gain after the zero-stuffing by `up`
    bank.setflags(write=False)
    return bank


class Resampler:
    """Streaming resampler from ``in_rate`` to ``out_rate`` for mono float or int16 audio.

    ``process(chunk)`` returns every output sample the input so far determines.
    In the default causal mode the total output after N input samples is exactly
    ``ceil(N * out_rate / in_rate)`` whatever the chunking, at the cost of the
    filter's group delay (about 0.6 ms) — right for a live microphone, which is
    never "flushed". With ``zero_phase=True`` the delay is removed instead and
    ``flush()`` emits the tail; ``resample()`` uses that for whole files.
    Output dtype follows the input: int16 in -> int16 out (rounded, clipped).
    """

    def __init__(self, in_rate: int, out_rate: int, *, zero_phase: bool = False) -> None:
        if int(in_rate) <= 0 or int(out_rate) <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        g = gcd(self.in_rate, self.out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.zero_phase = bool(zero_phase)
        self.is_identity = self.up == self.down == 1
        self._bank = None if self.is_identity else _polyphase_filter(self.up, self.down)
        self.reset()

    def reset(self) -> None:
        """Forget all history (start of a new, unrelated stream)."""
        self._n_in = 0  # input samples received so far
        self._m = 0  # index of the next output sample
        self._flushed = False
        self._int16 = False  # output dtype follows the first chunk's dtype
        if self.is_identity:
            return
        taps = self._bank.shape[1]
        # Offset (in the upsampled domain) that centres the filter when zero_phase.
        self._delay = _half_len(self.up, self.down) if self.zero_phase else 0
        # History buffer; index 0 corresponds to global input index _buf_start.
        # Samples before the stream began are zeros.
        self._buf_start = -(taps - 1)
        self._buf = np.zeros(taps - 1)

    @property
    def latency_samples(self) -> int:
        """Output samples of filter delay in causal mode (0 when zero_phase or identity)."""
        if self.is_identity or self.zero_phase:
            return 0
        return int(round(_half_len(self.up, self.down) / self.down))

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next chunk of a stream; returns the newly determined output."""
        x = np.asarray(chunk)
        if x.ndim != 1:
            raise ValueError(f"Resampler takes mono 1-D audio, got shape {x.shape}")
        if self._flushed:
            raise RuntimeError("Resampler.process() after flush(); call reset() first")
        if self._n_in == 0:
            self._int16 = x.dtype == np.int16
        if self.is_identity:
            self._n_in += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        self._n_in += len(x)
        # Output m needs inputs up to floor((m*down + delay)/up).
        last = (self._n_in * self.up - 1 - self._delay) // self.down
        return self._emit(last + 1)

    def flush(self) -> np.ndarray:
        """End of stream: emit the rest so the total is ceil(N * out_rate / in_rate)."""
        if self._flushed:
            return self._empty()
        self._flushed = True
        total = -(-self._n_in * self.up // self.down)
        if self.is_identity or total <= self._m:
            return self._empty()
        need = ((total - 1) * self.down + self._delay) // self.up  # last input index used
        pad = need - (self._buf_start + len(self._buf) - 1)
        if pad > 0:
            self._buf = np.concatenate([self._buf, np.zeros(pad)])
        return self._emit(total)

    def _empty(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int16 if self._int16 else np.float64)

    def _emit(self, stop: int) -> np.ndarray:
        if stop <= self._m:
            return self._empty()
        bank = self._bank
        taps = bank.shape[1]
        y = np.empty(stop - self._m)
        step = max(1, _EMIT_ELEMENTS // taps)
        for first in range(self._m, stop, step):
            m = np.arange(first, min(first + step, stop), dtype=np.int64)
            t = m * self.down + self._delay
            n = t // self.up  # newest input used by each output
            phase = t % self.up
            idx = (n - self._buf_start)[:, None] - np.arange(taps)[None, :]
            y[first - self._m : first - self._m + len(m)] = np.einsum("ij,ij->i", bank[phase], self._buf[idx])
        self._m = stop
        # Keep only the history the next output can still need.
        t_next = stop * self.down + self._delay
        keep_from = t_next // self.up - (taps - 1)
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start = keep_from
        if self._int16:
            # The buffer holds raw int16 values, so y is already on that scale.
            return np.clip(np.round(y), -32768, 32767).astype(np.int16)
        return y


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16, rounded and clipped (never wraps around)."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def resample(audio: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono signal (zero-phase); int16 in -> int16 out, else float64."""
    x = np.asarray(audio)
    if int(in_rate) == int(out_rate):
        return x.copy()
    r = Resampler(in_rate, out_rate, zero_phase=True)
    head = r.process(x)
    tail = r.flush()
    return np.concatenate([head, tail]).astype(head.dtype, copy=False)
