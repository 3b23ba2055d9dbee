"""Feature front ends shared by training and the device.

There is exactly one implementation of every feature transform, here, in numpy:
training imports it to build datasets, export writes its parameters into model
metadata, and the device refuses a model whose recorded parameters differ.

Sound: STFT -> mel filterbank -> log (a log-mel spectrogram), in a batch and a
streaming form that give identical windows.
Marimba: Hamming window -> zero-pad -> STFT -> amplitude at each note's
fundamental, used to label video frames from the paired audio.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class LogMelParams:
    """Every constant of the sound front end; serialised into model metadata."""

    sample_rate: int = 16000
    window_seconds: float = 1.0
    hop_seconds: float = 0.25
    n_fft: int = 512  # 32 ms Hann window
    hop_length: int = 160  # 10 ms between STFT frames
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    log_floor: float = 1e-6  # added before the log so digital silence stays finite
    silence_dbfs: float = -45.0

    def __post_init__(self) -> None:
        if self.samples_per_hop % self.hop_length:
            # Streaming reuses whole STFT frames across windows, so each window
            # must start on a frame boundary.
            raise ValueError("hop_seconds * sample_rate must be a multiple of hop_length")
        if self.samples_per_window < self.n_fft:
            raise ValueError("window shorter than one FFT frame")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin < fmax <= sample_rate/2")

    @property
    def samples_per_window(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def samples_per_hop(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))

    @property
    def frames_per_window(self) -> int:
        return 1 + (self.samples_per_window - self.n_fft) // self.hop_length

    @property
    def frames_per_hop(self) -> int:
        return self.samples_per_hop // self.hop_length

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape for one window: (frames, mel bands, 1)."""
        return (self.frames_per_window, self.n_mels, 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LogMelParams":
        return dataclass_from_dict(cls, data)


DIATONIC_C4_F6 = (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84, 86, 88, 89)


@dataclass(frozen=True)
class NoteParams:
    """Constants of the marimba audio -> note-amplitude front end."""

    sample_rate: int = 48000
    fps: float = 30.0
    frames_per_window: int = 3  # frames stacked into one "space-time image"
    notes: tuple[int, ...] = DIATONIC_C4_F6
    n_fft: int = 16384  # zero-padded length: ~2.9 Hz bins at 48 kHz
    search_bins: int = 1  # peak search +/- bins around each fundamental

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(int(n) for n in self.notes))
        if self.segment_samples > self.n_fft:
            raise ValueError("n_fft must be at least one audio segment long")

    @property
    def segment_samples(self) -> int:
        """Audio samples that cover one window of stacked frames."""
        return int(round(self.frames_per_window * self.sample_rate / self.fps))

    @property
    def frequencies(self) -> np.ndarray:
        return midi_to_hz(np.asarray(self.notes, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NoteParams":
        return dataclass_from_dict(cls, data)


def dataclass_from_dict(cls, data: Mapping[str, Any]):
    """``cls(**data)`` for a frozen parameter dataclass, refusing unknown fields by name and values whose
    kind differs from the field's default (a number given as text fails here, not mid-stream)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    for name, v in data.items():
        default = fields[name].default
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v)) \
                and (isinstance(v, int) or not isinstance(default, int))
        elif isinstance(default, tuple):
            ok = isinstance(v, (list, tuple))
        else:  # nested parameter blocks and None defaults are checked where they are built
            ok = True
        if not ok:
            raise ValueError(f"{cls.__name__} {name} = {v!r}: expected {type(default).__name__} like {default!r}")
    return cls(**dict(data))


# ------------------------------------------------------------------- helpers


_FULL_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}  # int PCM -> [-1, 1)


def to_float(audio: np.ndarray) -> np.ndarray:
    """int16 / int32 / float audio -> float64 in [-1, 1], mono."""
    a = np.asarray(audio)
    full_scale = _FULL_SCALE.get(a.dtype)
    x = a.astype(np.float64, copy=False) if full_scale is None else a.astype(np.float64) / full_scale
    # Scaled before the channels are mixed: the mean of int channels is float, and was once left unscaled.
    return x.mean(axis=1) if x.ndim == 2 else x  # (samples, channels) -> mono


def dbfs(audio: np.ndarray) -> float:
    """RMS level of a block in dB relative to full scale (-inf-safe)."""
    x = to_float(audio)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    return 20.0 * np.log10(max(rms, 1e-10))


def midi_to_hz(note):
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


def _hz_to_mel(f):
    # Slaney's auditory scale (librosa's default, htk=False): linear below 1 kHz, log above.
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape (n_mels, n_fft//2 + 1)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    # Periodic Hann, as used by librosa/scipy for spectral analysis.
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    w.setflags(write=False)
    return w


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    n = 1 + (len(x) - n_fft) // hop
    if n <= 0:
        return np.zeros((0, n_fft))
    return np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n]


def _logmel_from_frames(frames: np.ndarray, p: LogMelParams) -> np.ndarray:
    """(n, n_fft) sample frames -> (n, n_mels) float32 log-mel rows."""
    spec = np.fft.rfft(frames * _hann(p.n_fft), axis=-1)
    power = spec.real**2 + spec.imag**2
    mel = power @ mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax).T
    return np.log(mel + p.log_floor).astype(np.float32)


# ---------------------------------------------------------------- sound front end


def mel_power(audio: np.ndarray, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """Mel power spectrogram before the log, shape (frames, n_mels). For tests and plots."""
    fr = _frames(to_float(audio), params.n_fft, params.hop_length)
    spec = np.fft.rfft(fr * _hann(params.n_fft), axis=-1)
    power = spec.real**2 + spec.imag**2
    return power @ mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax).T


def log_mel(audio: np.ndarray, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """Batch log-mel of a whole signal: (frames, n_mels) float32, no centring/padding."""
    return _logmel_from_frames(_frames(to_float(audio), params.n_fft, params.hop_length), params)


def pad_or_crop(audio: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """Exactly n samples starting at offset, zero-padded at the end."""
    x = np.asarray(audio)[max(offset, 0) :]
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


def window_features(audio: np.ndarray, params: LogMelParams = LogMelParams()) -> np.ndarray:
    """One model input from one window of audio: shape params.input_shape."""
    x = pad_or_crop(to_float(audio), params.samples_per_window)
    return log_mel(x, params)[..., None]


def sliding_windows(audio: np.ndarray, params: LogMelParams = LogMelParams()) -> list[tuple[float, np.ndarray]]:
    """(start seconds, features) for each hop-spaced window of a signal.

    Only whole windows, except that a signal shorter than one window gives one
    zero-padded window. Holds every window: for long inputs use ``iter_windows``.
    """
    return [(start, feats) for start, _, feats in iter_windows([audio], params)]


def iter_windows(chunks: Iterable[np.ndarray], params: LogMelParams = LogMelParams(), *,
                 every: int = 1) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """``sliding_windows`` of audio arriving in chunks: (start s, window samples, features).

    Memory stays at one window whatever the length; features are computed only
    for every ``every``-th window (the others are skipped, not computed), and
    equal ``sliding_windows``' for the same samples however the audio was cut.
    """
    n, h = params.samples_per_window, params.samples_per_hop
    buf = np.zeros(0)  # samples from the next window's start onwards
    index = 0
    for chunk in chunks:
        x = to_float(chunk)
        buf = np.concatenate([buf, x]) if len(buf) else x
        while len(buf) >= n:
            if index % every == 0:
                window = buf[:n]
                yield index * h / params.sample_rate, window, window_features(window, params)
            index += 1
            buf = buf[h:]
        # Copy so a view never keeps a caller's (possibly huge) chunk alive.
        buf = np.array(buf, dtype=np.float64, copy=True)
    if index == 0:
        yield 0.0, buf, window_features(buf, params)


class StreamingLogMel:
    """Log-mel windows from audio arriving in chunks of any size.

    Each STFT frame is computed once, when its last sample arrives; a window
    (params.input_shape) is emitted every hop once a full window is available,
    equal to ``window_features`` of the same samples.
    """

    def __init__(self, params: LogMelParams = LogMelParams()):
        self.params = params
        self._pending = np.zeros(0)  # samples from the next frame's start onwards
        self._next_frame = 0  # global index of the next STFT frame
        self._rows: deque[np.ndarray] = deque(maxlen=params.frames_per_window)
        self.samples_seen = 0

    def reset(self) -> None:
        self.__init__(self.params)

    def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add samples; return [(end sample index, window features)] completed by them."""
        p = self.params
        x = to_float(chunk)
        self.samples_seen += len(x)
        buf = np.concatenate([self._pending, x]) if len(self._pending) else x
        frames = _frames(buf, p.n_fft, p.hop_length)
        out: list[tuple[int, np.ndarray]] = []
        if len(frames):
            rows = _logmel_from_frames(frames, p)
            for row in rows:
                self._rows.append(row)
                j = self._next_frame
                self._next_frame += 1
                # Window w ends at frame w*frames_per_hop + frames_per_window - 1.
                k = j - (p.frames_per_window - 1)
                if k >= 0 and k % p.frames_per_hop == 0:
                    end = (k // p.frames_per_hop) * p.samples_per_hop + p.samples_per_window
                    out.append((end, np.stack(self._rows)[..., None]))
            buf = buf[len(frames) * p.hop_length :]
        self._pending = np.array(buf, dtype=np.float64, copy=True)
        return out


# ------------------------------------------------------------ marimba front end


@lru_cache(maxsize=8)
def _hamming(n: int) -> np.ndarray:
    w = np.hamming(n)
    w.setflags(write=False)
    return w


def note_amplitudes(segment: np.ndarray, params: NoteParams = NoteParams()) -> np.ndarray:
    """Amplitude of each note's fundamental in one audio segment, shape (len(notes),).

    Hamming window -> zero-pad to n_fft -> STFT magnitude, scaled so a sine of
    amplitude A filling the segment reads about A; the peak is searched within
    +/- search_bins of each fundamental's bin.
    """
    x = pad_or_crop(to_float(segment), params.segment_samples)
    w = _hamming(len(x))
    mag = np.abs(np.fft.rfft(x * w, n=params.n_fft)) * (2.0 / w.sum())
    bins = np.rint(params.frequencies * params.n_fft / params.sample_rate).astype(int)
    r = params.search_bins
    return np.array([mag[max(b - r, 0) : b + r + 1].max() for b in bins], dtype=np.float32)


def note_targets(audio: np.ndarray, n_frames: int, params: NoteParams = NoteParams(),
                 frame_times: Sequence[float] | None = None, labeller: Any = None) -> np.ndarray:
    """Training targets for a video: row i = note amplitudes of the audio under frames i..i+2.

    ``frame_times`` (seconds, one per video frame) aligns recordings whose frames
    were not captured at exactly ``fps``; by default frame i starts at i / fps.
    Returns shape (n_frames - frames_per_window + 1, len(notes)). A ``labeller``
    (``device.marimba.labeller.HarmonicLabeller`` built on the same ``params``)
    explains each window with per-note harmonic templates instead of reading
    each fundamental, in the same amplitude scale.
    """
    if labeller is not None:
        if labeller.note_params != params:
            raise ValueError("the labeller was built on other NoteParams than these targets'")
        return labeller.note_targets(audio, n_frames, frame_times)
    x = to_float(audio)
    k = params.frames_per_window
    if frame_times is None:
        frame_times = np.arange(n_frames) / params.fps
    starts = np.rint(np.asarray(frame_times[: n_frames - k + 1]) * params.sample_rate).astype(int)
    return np.stack([note_amplitudes(x[s : s + params.segment_samples], params) for s in starts]) if len(starts) \
        else np.zeros((0, len(params.notes)), dtype=np.float32)
