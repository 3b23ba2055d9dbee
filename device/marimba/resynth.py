"""Camera -> sound: additive resynthesis of the marimba model's 18 note levels.

The inverse of the training targets (the marimba project's additive / inverse
synthesis): the model says, for each 3-frame window, how loud each bar's
fundamental is in the audio under it (``device.frontend.note_amplitudes``
units, after ``TargetTransform.inverse``); here each note becomes a bank of
oscillators at the bar's partials (``device.marimba.tones``, the one bar-sound
definition shared with the virtual synth and the training renderer) whose
fundamental has exactly that amplitude, so the resynthesised audio, analysed
by the same front end, reads back the amplitudes that drove it.

Real time, one block per camera frame (``sample_rate / fps`` samples; a
fractional rate is spread over the blocks so the audio keeps pace with the
frames). Each note's amplitude glides towards its new value with a one-pole
envelope (``smoothing_s``) and every oscillator's phase carries over from
block to block, so there are no clicks at block edges. Pure numpy, no I/O:
``Resynth.step(amplitudes) -> float32 block``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from device.frontend import midi_to_hz
from device.marimba.tones import bar_partials

__all__ = ["Resynth", "GATE_AMPLITUDE"]

# Amplitudes below this (-60 dBFS) are taken as silence: an idle model's small
# outputs would otherwise hum 18 faint sines out of the speaker.
GATE_AMPLITUDE = 1e-3


# The longest block one frame makes (frame periods): past it the camera stalled, and the card's jitter
# buffer, not seconds of one frame's sound, covers the gap.
MAX_BLOCK_FRAMES = 4

class Resynth:
    """18 amplitudes per camera frame -> one block of mono audio (float32, -1..1).

    ``notes``: MIDI notes (the model's order). ``fps``: camera frames per second
    (one block per frame). ``smoothing_s``: time constant of the amplitude
    envelopes. ``gain``: multiplies every amplitude. The sum is clipped to
    -1..1 (counted in ``clipped_samples``).
    """

    def __init__(self, notes: Sequence[int], sample_rate: int, fps: float, *, smoothing_s: float = 0.02,
                 gain: float = 1.0, transform: Any = None) -> None:
        if int(sample_rate) <= 0 or not float(fps) > 0 or not float(smoothing_s) > 0:
            raise ValueError("resynth: sample_rate, fps and smoothing_s must be positive")
        self.notes = tuple(int(n) for n in notes)
        self.sample_rate = int(sample_rate)
        self.fps = float(fps)
        self.smoothing_s = float(smoothing_s)
        self.gain = float(gain)
        self.transform = transform  # TargetTransform for ``step_levels``
        freqs, owner, rel = [], [], []
        for i, note in enumerate(self.notes):
            # Partials at or above Nyquist are left out (they would alias), as the synth does.
            for f, amplitude, _decay in bar_partials(float(midi_to_hz(note)), self.sample_rate):
                freqs.append(f)
                owner.append(i)
                rel.append(amplitude)
        self._step = 2.0 * np.pi * np.asarray(freqs, np.float64) / self.sample_rate  # radians per sample
        self._owner = np.asarray(owner, np.int64)
        self._rel = np.asarray(rel, np.float64)
        self._phase = np.zeros(len(freqs), np.float64)
        self._env = np.zeros(len(self.notes), np.float64)
        self._pole = math.exp(-1.0 / (self.smoothing_s * self.sample_rate))
        self._ramp_cache = self._decay_cache = np.zeros(0)
        self.blocks = 0
        self.samples = 0  # produced so far
        self.clipped_samples = 0

    @classmethod
    def from_spec(cls, spec: Any, sample_rate: int, fps: float | None = None, **kwargs: Any) -> "Resynth":
        """For a ``MarimbaSpec`` (notes, fps and the level <-> amplitude transform)."""
        return cls(spec.notes, sample_rate, fps if fps else spec.fps, transform=spec.target, **kwargs)

    @property
    def partial_frequencies(self) -> dict[int, list[float]]:
        """MIDI note -> the frequencies (Hz) its oscillators play."""
        out: dict[int, list[float]] = {n: [] for n in self.notes}
        for step, i in zip(self._step, self._owner):
            out[self.notes[i]].append(float(step * self.sample_rate / (2 * np.pi)))
        return out

    def block_size(self, k: int | None = None, frames: int = 1) -> int:
        """Samples in blocks ``k`` .. ``k + frames - 1`` (default: the next one): cumulative rounding keeps
        pace with fps."""
        k = self.blocks if k is None else int(k)
        per = self.sample_rate / self.fps
        return int(round((k + frames) * per)) - int(round(k * per))

    def _ramp(self, n: int) -> np.ndarray:
        if len(self._ramp_cache) != n:  # block sizes repeat: compute 0..n-1 and the envelope decay once
            self._ramp_cache = np.arange(n, dtype=np.float64)
            self._decay_cache = self._pole ** (self._ramp_cache + 1.0)
        return self._ramp_cache

    def reset(self) -> None:
        """Silence and phase zero, as when new."""
        self._phase[:] = 0.0
        self._env[:] = 0.0
        self.blocks = self.samples = 0

    def step_levels(self, levels: np.ndarray, frames: int = 1) -> np.ndarray:
        """Model levels (``TargetTransform`` units) -> one block; needs ``transform`` (``from_spec``)."""
        if self.transform is None:
            raise ValueError("resynth: step_levels needs the model's target transform (use Resynth.from_spec)")
        return self.step(self.transform.inverse(levels), frames)

    def step(self, amplitudes: np.ndarray, frames: int = 1) -> np.ndarray:
        """One handled camera frame: each note's fundamental amplitude -> the next block of audio, as long as
        ``frames`` frame periods (the frames since the last one handled, dropped ones included: the audio
        keeps pace with time, not with the frames the box had time for; at most MAX_BLOCK_FRAMES)."""
        frames = int(min(max(frames, 1), MAX_BLOCK_FRAMES))
        a = np.asarray(amplitudes, np.float64).reshape(-1)
        if len(a) != len(self.notes):
            raise ValueError(f"resynth: expected {len(self.notes)} amplitudes, got {len(a)}")
        target = np.where(np.isfinite(a), a, 0.0) * self.gain
        target = np.where(target >= GATE_AMPLITUDE, target, 0.0)
        n = self.block_size(frames=frames)
        self._ramp(n)
        decay = self._decay_cache  # (n,): how much of the old amplitude is left at each sample
        start = self._env
        env = target[:, None] + (start - target)[:, None] * decay[None, :]  # (notes, n)
        # Only sounding notes' oscillators are computed (usually a few of 18); silent
        # ones just keep their phase running, so a note that comes back is in phase.
        live = np.flatnonzero((env[self._owner, 0] > 0) | (env[self._owner, -1] > 0))
        out = np.zeros(n, np.float64)
        if len(live):
            ph = self._phase[live, None] + self._step[live, None] * self._ramp(n)[None, :]
            out = np.einsum("mn,mn->n", env[self._owner[live]] * self._rel[live, None], np.sin(ph))
        self._phase = np.mod(self._phase + self._step * n, 2.0 * np.pi)
        self._env = env[:, -1].copy() if n else start
        # An envelope this close to zero is zero: silence stays exactly silent.
        self._env[self._env < GATE_AMPLITUDE * 1e-3] = 0.0
        over = np.abs(out) > 1.0
        if over.any():
            self.clipped_samples += int(over.sum())
            out = np.clip(out, -1.0, 1.0)
        self.blocks += frames
        self.samples += n
        return out.astype(np.float32)

    def render(self, amplitudes: np.ndarray) -> np.ndarray:
        """A (frames, notes) amplitude sequence -> the audio, block after block (offline use)."""
        return np.concatenate([self.step(a) for a in np.asarray(amplitudes)]) if len(amplitudes) \
            else np.zeros(0, np.float32)
