"""Front-end speed: our numpy log-mel (batch and streaming) against librosa in the same run."""

from __future__ import annotations

from typing import Any

import numpy as np

from device.frontend import LogMelParams, StreamingLogMel, window_features

from .machine import blas_threads, one_blas_thread
from .stats import figure, measure, ratio


def demo_audio(seconds: float, params: LogMelParams) -> np.ndarray:
    """int16 audio to time on: the bundled demo playlist (real sounds), else seeded noise."""
    from device.config import PROJECT_ROOT
    from device.wavfile import read_wav

    n = int(seconds * params.sample_rate)
    try:
        audio, rate = read_wav(PROJECT_ROOT / "assets" / "demo" / "sounds.wav")
        if rate == params.sample_rate and len(audio) >= n:
            start = min(params.sample_rate, len(audio) - n)  # skip the leading silence
            return np.asarray(audio[start:start + n], dtype=np.int16).reshape(-1)
    except Exception:  # noqa: BLE001 - timing does not depend on what the samples say
        pass
    return (np.random.default_rng(0).standard_normal(n) * 3000).astype(np.int16)


def librosa_log_mel(audio: np.ndarray, p: LogMelParams) -> np.ndarray:
    """librosa with exactly our parameters: periodic Hann, no centring, Slaney mel, same log floor."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
                                         center=False, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax, power=2.0)
    return np.log(mel + p.log_floor).T


def librosa_log_mel_cached(audio: np.ndarray, p: LogMelParams, basis: np.ndarray) -> np.ndarray:
    """The same with the mel filterbank built once, as our front end does: compares the arithmetic only."""
    import librosa

    power = np.abs(librosa.stft(audio, n_fft=p.n_fft, hop_length=p.hop_length, center=False, window="hann")) ** 2
    return np.log(basis @ power + p.log_floor).T


class HopFeeder:
    """Streaming in steady state: primed with all but one hop of a window, so each call
    pushes one 0.25 s hop and completes exactly one window (what the device does per hop)."""

    def __init__(self, p: LogMelParams, hops: int = 8):
        audio = demo_audio(p.window_seconds + hops * p.hop_seconds, p)
        first = p.samples_per_window - p.samples_per_hop
        self.stream = StreamingLogMel(p)
        self.stream.push(audio[:first])
        self.chunks = [audio[i:i + p.samples_per_hop] for i in range(first, len(audio) - p.samples_per_hop + 1,
                                                                       p.samples_per_hop)]
        self.i = 0

    def __call__(self):
        chunk = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        return self.stream.push(chunk)


def bench_frontend(repeats: int, min_time: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, notes) for the sound front end."""
    import librosa

    p = LogMelParams()
    window = demo_audio(p.window_seconds, p)
    # librosa users hand it float32 (what librosa.load returns); ours takes the mic's int16.
    window_f32 = window.astype(np.float32) / 32768.0
    basis = librosa.filters.mel(sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax)
    feed = HopFeeder(p)
    if len(feed()) != 1:
        raise RuntimeError("streaming front end did not emit one window per hop")

    # What numpy does by default on this machine (the box runs that way too).
    default_threads = blas_threads()
    batch_default = measure(lambda: window_features(window, p), repeats, min_time)

    with one_blas_thread() as pinned:
        batch = measure(lambda: window_features(window, p), repeats, min_time)
        streaming = measure(feed, repeats, min_time)
        lib = measure(lambda: librosa_log_mel(window_f32, p), repeats, min_time)
        # melspectrogram rebuilds its mel filterbank on every call (librosa's cache
        # is off by default), which is most of its time; the cached variant isolates that.
        lib_cached = measure(lambda: librosa_log_mel_cached(window_f32, p, basis), repeats, min_time)

    ours = window_features(window, p)[..., 0]
    diff = max(float(np.abs(librosa_log_mel(window_f32, p) - ours).max()),
               float(np.abs(librosa_log_mel_cached(window_f32, p, basis) - ours).max()))
    blas = "1 BLAS thread" if pinned else "default BLAS threads"
    figures = {
        "frontend.batch_window": figure(batch, "ms", f"Front end, batch: one 1 s window (window_features, {blas})",
                                        1e3),
        "frontend.streaming_hop": figure(streaming, "ms",
                                         f"Front end, streaming: one 0.25 s hop (StreamingLogMel.push, {blas})", 1e3),
        "frontend.batch_window_default_blas": figure(
            batch_default, "ms", f"Front end, batch, numpy BLAS at its default {default_threads or '?'} threads",
            1e3, note="sensitive to other load on the machine"),
        "frontend.librosa_window": figure(lib, "ms", f"librosa melspectrogram + log: one 1 s window ({blas})", 1e3),
        "frontend.librosa_cached_window": figure(
            lib_cached, "ms", f"librosa stft + prebuilt mel filterbank + log: one 1 s window ({blas})", 1e3),
        "frontend.librosa_over_batch": ratio(lib, batch, "librosa melspectrogram time / our batch time"),
        "frontend.librosa_cached_over_batch": ratio(lib_cached, batch,
                                                    "librosa (prebuilt filterbank) time / our batch time"),
        "frontend.window_over_hop": ratio(batch, streaming, "batch window time / streaming hop time"),
    }
    notes = {
        "frontend_params": p.to_dict(),
        "frontend_max_abs_diff_vs_librosa": diff,
        "frontend_inputs": "ours: int16 samples (as the mic delivers them); librosa: float32 (as librosa.load returns)",
        "frontend_blas_threads_default": default_threads,
        "frontend_blas_pinned_to_one": pinned,
    }
    return figures, notes
