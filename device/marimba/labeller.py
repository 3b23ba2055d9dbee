"""A marimba labeller that knows what a struck bar sounds like: audio -> note amplitudes and notes.

Today's front end (``device.frontend.note_amplitudes``) reads the spectrum at
each bar's fundamental. A real marimba bar also rings at about 4x its
fundamental (the tuned second mode, often only a few dB under the fundamental),
~10x (the third mode) and, through the resonator tube, a little at 3x; the 4x
partial of C4..F4 falls exactly on C6..F6 and the 3x of C4..A4 on G5..E6, so a
low strike read bin by bin also "strikes" a bar one or two octaves up.

This labeller explains the spectrum instead of reading it:

- **Templates.** Each note is a column of what its strike puts into a set of
  probe bins (every note's fundamental and partial frequencies): from marimba
  physics by default (partials 1x, 3x, 4x, 10x with ``LabellerParams.partials``
  weights, each spread by the analysis window's own spectral kernel, so the
  neighbour leakage of e.g. F4 into E4 is part of the template too), then
  **learned from the recording itself**: at the onsets of strikes heard alone
  the partial / fundamental ratio of each note is measured and an upper
  percentile (times a margin) becomes that note's template. A note whose strikes
  are never heard alone keeps the default.
- **Activations.** Per analysis window, a non-negative least-squares fit of the
  probe readings by the templates (coordinate descent, vectorised over windows;
  fundamentals weigh more than shared partial probes). A note's amplitude is its
  fundamental reading less what the other notes' templates put there, or its
  fitted activation where that is larger; so the energy at C6's fundamental that
  C4's 4x partial explains is not given to C6, while a C6 struck with C4 (its own
  upper partials show it) still is. A note heard alone reads exactly what
  ``note_amplitudes`` reads, so ``TargetTransform`` and everything trained on
  the old targets still fit.
- **Notes.** Onsets come from the amplitudes on a fine hop (``hop_s``): a
  local maximum of a note's level that rises ``min_rise`` above the level the
  window before it would have decayed to (a jump relative to the decaying
  envelope), that reads its own fundamental and still rings a window later (a
  mallet's thump does not). A bar struck again while ringing adds its new
  vibration at a random phase, so its fundamental may not grow at all; its
  upper partials, long decayed, come back, and that is a note too. An onset on
  a higher bar that a sounding lower bar's partial explains and that shows
  none of its own upper partials is the lower bar's, or nothing.

``note_targets`` keeps ``device.frontend.note_targets``' contract and can be
passed to it (``note_targets(..., labeller=HarmonicLabeller(params))``);
``events`` is the audio-target extractor's job (``audio_events(..., labeller=)``).
Numpy only: it runs on the box as well as in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from device.frontend import NoteParams, dataclass_from_dict, to_float
from device.marimba.pipeline import MarimbaSpec, NoteOff, NoteOn


@dataclass(frozen=True)
class LabellerParams:
    """Constants of the harmonic labeller (the spectrum itself is ``NoteParams``')."""

    # (ratio to the fundamental, default amplitude relative to it): marimba modes 1 : 4 : ~10, resonator 3x.
    partials: tuple[tuple[float, float], ...] = ((1.0, 1.0), (3.0, 0.1), (4.0, 0.5), (10.0, 0.2))
    learn: bool = True  # refine each note's partial weights from its strikes heard alone
    learn_percentile: float = 80.0  # of the per-strike partial / fundamental ratios ...
    learn_margin: float = 1.15  # ... times this: the onset ratio, the largest a partial ever has
    learn_min_strikes: int = 1  # fewer isolated strikes of a note: the other notes' median weights
    max_ratio: float = 2.0  # a learned partial is never taken as louder than this x the fundamental
    sweeps: int = 40  # coordinate-descent passes of the non-negative least-squares fit
    hop_s: float = 0.005  # analysis hop for notes (the window is NoteParams' segment)
    peak_halfwidth_s: float = 0.045  # an onset is the largest level within +/- this
    refractory_s: float = 0.09  # no second onset of one note within this time
    onset_fraction: float = 0.9  # the strike time is where a note's level first comes this close to its peak
    sustain: float = 0.35  # a strike still reads this share of its decayed peak one window later (not a thump)
    partial_weight: float = 0.5  # weight of probes that are no note's fundamental in the fit
    fundamental_support: float = 0.5  # an onset's fundamental must read this share of its activation
    restrike_rise: float = 0.15  # level rise of a ringing bar's own upper partials that is a new strike (0: off)
    partial_decay: float = 0.15  # upper partials' decay time as a share of the fundamental's (restrike timing)
    own_partials: float = 0.15  # share of its expected upper partials a bar on a lower bar's partial must show
    decay_margin: float = 1.0  # decay times are taken this much longer than measured (>1: fewer repeats found)

    def __post_init__(self) -> None:
        parts = tuple((float(r), float(w)) for r, w in self.partials)
        object.__setattr__(self, "partials", parts)
        if not parts or parts[0] != (1.0, 1.0):
            raise ValueError("the first partial must be the fundamental, (1.0, 1.0)")
        if self.hop_s <= 0 or self.sweeps < 1:
            raise ValueError("hop_s must be positive and sweeps at least 1")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["partials"] = [list(p) for p in self.partials]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabellerParams:
        return dataclass_from_dict(cls, data)


@lru_cache(maxsize=8)
def _window_kernel(n: int, sample_rate: int, oversample: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(frequency offsets Hz, |DTFT| of the n-sample Hamming window / its sum): a unit sine's reading."""
    w = np.hamming(n)
    m = 1 << int(np.ceil(np.log2(n * oversample)))
    k = np.abs(np.fft.rfft(w, m)) / w.sum()
    f = np.arange(len(k)) * sample_rate / m
    return f, k


class HarmonicLabeller:
    """Audio -> per-note amplitudes (n_windows, notes) and NoteOn/NoteOff, explained by harmonic templates.

    ``fit(audio)`` learns the templates from a recording (``note_targets`` and
    ``events`` fit first unless ``fitted`` is passed); ``templates`` is the
    (probes, notes) matrix in use.
    """

    def __init__(self, note_params: NoteParams = NoteParams(), params: LabellerParams = LabellerParams()):
        self.note_params = note_params
        self.params = params
        self._probes()
        self.default_templates = self._physics_templates()
        self.templates = self.default_templates.copy()
        self.default_tau = np.clip(0.5 * (note_params.frequencies / 261.63) ** -0.8, 0.05, 2.0)
        self.tau = self.default_tau.copy()  # fundamental decay time of each note, seconds
        self.learned: dict[int, int] = {}  # note -> isolated strikes its template was learned from

    # ------------------------------------------------------------ probes and templates

    def _probes(self) -> None:
        """Probe bins: every fundamental, then every partial that does not land on a probe already."""
        p, lp = self.note_params, self.params
        nyquist_bin = p.n_fft // 2 - p.search_bins - 1
        bins: list[int] = []

        def probe(f: float) -> int | None:
            b = int(np.rint(f * p.n_fft / p.sample_rate))
            if b > nyquist_bin:
                return None
            for i, have in enumerate(bins):
                if abs(have - b) <= p.search_bins:  # e.g. C4's 4x partial is C6's fundamental
                    return i
            bins.append(b)
            return len(bins) - 1

        self.fund_probe = np.array([probe(f) for f in p.frequencies], dtype=int)
        # partial_probe[j][r] = probe index of note j's partial r (None above Nyquist)
        self.partial_probe = [[probe(f * r) for r, _ in lp.partials] for f in p.frequencies]
        self.probe_bins = np.array(bins, dtype=int)

    def _physics_templates(self) -> np.ndarray:
        """(probes, notes): each partial spread by the window kernel, read as the front end reads (max +/- bins)."""
        p = self.note_params
        f_k, k = _window_kernel(p.segment_samples, p.sample_rate)
        s = p.search_bins
        offs = np.arange(-s, s + 1)
        probe_hz = (self.probe_bins[:, None] + offs[None, :]) * p.sample_rate / p.n_fft  # (P, 2s+1)
        W = np.zeros((len(self.probe_bins), len(p.notes)))
        for j, f0 in enumerate(p.frequencies):
            for r, weight in self.params.partials:
                if f0 * r * p.n_fft / p.sample_rate > p.n_fft // 2 - s - 1:
                    continue
                reading = np.interp(np.abs(probe_hz - f0 * r), f_k, k, right=0.0).max(axis=1)
                W[:, j] += weight * reading
        return W / W[self.fund_probe, np.arange(len(p.notes))][None, :]

    # ------------------------------------------------------------------- spectrum

    def probe_readings(self, audio: np.ndarray, starts: Sequence[int] | np.ndarray) -> np.ndarray:
        """(len(starts), probes): the front end's magnitude (max within +/- search_bins) at each probe bin
        of the segment starting at each sample index: what ``note_amplitudes`` reads at a fundamental."""
        p = self.note_params
        x = to_float(audio)
        n = p.segment_samples
        w = np.hamming(n)
        scale = 2.0 / w.sum()
        s = p.search_bins
        lo, hi = self.probe_bins.min() - s, self.probe_bins.max() + s + 1
        idx = self.probe_bins[:, None] + np.arange(-s, s + 1)[None, :] - lo
        starts = np.asarray(starts, dtype=int)
        out = np.zeros((len(starts), len(self.probe_bins)))
        padded = np.concatenate([x, np.zeros(n)])  # a segment running past the end reads zeros, as pad_or_crop
        for c in range(0, len(starts), 256):  # chunks bound the memory of the zero-padded FFTs
            st = np.clip(starts[c:c + 256], 0, len(x))
            seg = np.stack([padded[a:a + n] for a in st]) if len(st) else np.zeros((0, n))
            mag = np.abs(np.fft.rfft(seg * w, n=p.n_fft, axis=1)[:, lo:hi]) * scale
            out[c:c + len(st)] = mag[:, idx].max(axis=2)
        return out

    def activations(self, readings: np.ndarray, templates: np.ndarray | None = None) -> np.ndarray:
        """Non-negative least squares readings ~ activations @ templates.T, per row: (T, notes) float32."""
        W = self.templates if templates is None else templates
        V = np.asarray(readings, dtype=np.float64)
        rw = np.full(len(self.probe_bins), self.params.partial_weight)
        rw[self.fund_probe] = 1.0  # a fundamental's reading is the strongest evidence of its note
        G = W.T @ (W * rw[:, None])
        B = (V * rw[None, :]) @ W
        H = np.maximum(V[:, self.fund_probe], 0.0)  # start from the fundamentals as read
        diag = np.diag(G)
        for _ in range(self.params.sweeps):
            for j in range(W.shape[1]):
                H[:, j] = np.maximum(0.0, H[:, j] + (B[:, j] - H @ G[:, j]) / diag[j])
        return H.astype(np.float32)

    # ------------------------------------------------------------------- learning

    def fine_starts(self, audio: np.ndarray) -> np.ndarray:
        """Window starts (samples) every ``hop_s`` over the whole recording."""
        hop = max(1, round(self.params.hop_s * self.note_params.sample_rate))
        return np.arange(0, max(len(audio) - hop, 1), hop)

    def fit(self, audio: np.ndarray, spec: MarimbaSpec = MarimbaSpec()) -> HarmonicLabeller:
        """Learn each note's partial weights from its strikes heard alone in ``audio``."""
        self.templates, self.tau, self.learned = self.default_templates.copy(), self.default_tau.copy(), {}
        if not self.params.learn:
            return self
        starts = self.fine_starts(audio)
        V = self.probe_readings(audio, starts)
        self._learn(V, starts, spec)
        return self

    def _learn(self, V: np.ndarray, starts: np.ndarray, spec: MarimbaSpec) -> None:
        p, lp = self.note_params, self.params
        H = self.activations(V, self.default_templates)
        onsets = self._onsets(self.amplitudes(V, H), H, V, spec)  # [(window, note index, level, kind)]
        sr = p.sample_rate
        on_t = np.array([starts[o[0]] / sr for o in onsets])
        on_j = np.array([o[1] for o in onsets], dtype=int)
        W = self.default_templates.copy()
        lag = self._hops(p.segment_samples / sr)
        for j in range(len(p.notes)):
            own = {pp for pp in self.partial_probe[j] if pp is not None}
            ratios, taus = [], []
            for (i, jj, _, kind), t in zip(onsets, on_t):
                if jj != j or kind:
                    continue
                near = np.abs(on_t - t) <= 0.15
                # Alone: no other note starts nearby, except the ones its own partials may have faked
                # (those show no upper partials of their own: a real C6 struck with C4 rings at 4x C6 too).
                others = [int(k) for k in on_j[near] if k != j and (
                    self.fund_probe[k] not in own or (self._own_partials(V[i], k) or 0.0) >= 0.5)]
                fund = V[i, self.fund_probe[j]]
                if others or fund <= 0:
                    continue
                # Upper partials decay faster, so their share is largest in the windows that catch the
                # strike early: take the largest share over the loud windows up to the peak.
                early = np.arange(max(i - lag // 2, 0), i + 1)
                early = early[V[early, self.fund_probe[j]] >= 0.5 * fund]
                ratios.append((V[early] / V[early, self.fund_probe[j], None]).max(axis=0))
                a, b = H[min(i + lag, len(H) - 1), j], H[min(i + 3 * lag, len(H) - 1), j]
                if a > b > 0:  # the fundamental's decay between 0.1 and 0.3 s after the strike
                    taus.append(2 * lag * lp.hop_s / np.log(a / b))
            if len(taus) >= lp.learn_min_strikes:
                self.tau[j] = float(np.clip(np.median(taus), 0.02, 5.0))
            if len(ratios) < lp.learn_min_strikes:
                continue
            q = np.percentile(np.stack(ratios), lp.learn_percentile, axis=0) * lp.learn_margin
            for pp in self.partial_probe[j]:
                if pp is not None and pp != self.fund_probe[j]:
                    W[pp, j] = min(float(q[pp]), lp.max_ratio)
            self.learned[int(p.notes[j])] = len(ratios)
        # Notes never heard alone take the median learned weight of each partial over the notes that were;
        # the others at least half of it (loud strokes are brighter: a note heard alone only softly would
        # get too weak a template and its loud strikes would leave phantoms).
        heard = [j for j in range(len(p.notes)) if int(p.notes[j]) in self.learned]
        for r_i, (ratio, _) in enumerate(lp.partials[1:], start=1):
            have = [W[self.partial_probe[j][r_i], j] for j in heard if self.partial_probe[j][r_i] is not None]
            if not have:
                continue
            scale = float(np.median(have)) / ratio_weight(lp, r_i)
            for j in range(len(p.notes)):
                pp = self.partial_probe[j][r_i]
                if pp is None or pp == self.fund_probe[j]:
                    continue
                pooled = min(self.default_templates[pp, j] * scale, lp.max_ratio)
                W[pp, j] = max(W[pp, j], 0.5 * pooled) if j in heard else pooled
        self.templates = W

    def _own_partials(self, v: np.ndarray, k: int) -> float | None:
        """How much of note k's expected upper partials one reading row shows, 0..1+: read at k's partial
        probes that no note's fundamental shares, relative to what its template expects there (None when
        it expects nothing there: no evidence either way)."""
        fk = self.fund_probe[k]
        probes = [pp for pp in self.partial_probe[k] if pp is not None and pp != fk and pp not in self.fund_probe]
        expect = self.templates[probes, k] * v[fk]
        return float(v[probes].sum() / expect.sum()) if len(probes) and expect.sum() > 1e-3 * v[fk] else None

    # ------------------------------------------------------------------- outputs

    def amplitudes(self, V: np.ndarray, H: np.ndarray) -> np.ndarray:
        """Each note's fundamental reading less what the other notes' templates put there (C4's 4x at
        C6), or its fitted activation where larger: ``note_amplitudes``' scale exactly for a note heard
        alone, whatever its partials do."""
        F = self.templates[self.fund_probe]  # (notes, notes): note m's share at note j's fundamental
        others = H.astype(np.float64) @ (F - np.diag(np.diag(F))).T
        fund = V[:, self.fund_probe]
        # The fit's own activation where it is larger: a C6 struck with C4 can partly cancel C4's 4x at
        # C6's fundamental (random phases), and then C6's own upper partials are what shows it.
        return np.maximum(np.clip(fund - others, 0.0, fund), H).astype(np.float32)

    def note_targets(self, audio: np.ndarray, n_frames: int, frame_times: Sequence[float] | None = None,
                     fitted: bool = False) -> np.ndarray:
        """``device.frontend.note_targets``' contract: (n_frames - frames_per_window + 1, notes) float32,
        row i = amplitude of each note in the audio under frames i..i+2, in ``note_amplitudes``' scale."""
        p = self.note_params
        k = p.frames_per_window
        if frame_times is None:
            frame_times = np.arange(n_frames) / p.fps
        starts = np.rint(np.asarray(frame_times[: max(n_frames - k + 1, 0)]) * p.sample_rate).astype(int)
        if not len(starts):
            return np.zeros((0, len(p.notes)), dtype=np.float32)
        if not fitted:
            self.fit(audio)
        V = self.probe_readings(audio, starts)
        return self.amplitudes(V, self.activations(V))

    def events(self, audio: np.ndarray, spec: MarimbaSpec = MarimbaSpec(), fitted: bool = False,
               time_offset: float = 0.0) -> list[NoteOn | NoteOff]:
        """Notes heard in a recording, time-ordered NoteOn/NoteOff (times in seconds from sample 0
        plus ``time_offset``); thresholds and velocities from ``spec.peaks`` / ``spec.target``."""
        starts = self.fine_starts(audio)
        V = self.probe_readings(audio, starts)
        if not fitted:
            self.templates, self.tau, self.learned = self.default_templates.copy(), self.default_tau.copy(), {}
            if self.params.learn:
                self._learn(V, starts, spec)
        H = self.activations(V)
        A = self.amplitudes(V, H)
        sr = self.note_params.sample_rate
        out: list[tuple[float, int, int]] = []
        lead = self.onset_leads()
        partial_lead = self.onset_leads(self.tau * self.params.partial_decay, fraction=1.0)
        rho = self.params.onset_fraction
        lag = self._hops(self.note_params.segment_samples / sr)
        for i, j, level, kind in self._onsets(A, H, V, spec):
            # The strike time: where the level first comes within onset_fraction of its peak (a room or a
            # second mode can keep the level growing after the strike, so the peak itself can be late).
            if kind:  # found by an upper partial: the window that holds most of its short ring
                t = starts[i] / sr + partial_lead[j] + time_offset
            else:
                k = i
                while k > max(i - lag, 0) and A[k - 1, j] >= rho * A[i, j]:
                    k -= 1
                t = starts[k] / sr + lead[j] + time_offset
            out.append((t, int(self.note_params.notes[j]), spec.target.velocity(level)))
        return _to_events(sorted(out), spec.peaks.hold_s)

    def onset_leads(self, tau: np.ndarray | None = None, fraction: float | None = None) -> np.ndarray:
        """Seconds before its strike that each note's reading first reaches ``fraction`` (default
        ``onset_fraction``) of its peak, for a tone decaying with decay times ``tau`` (default the notes'):
        added back to the onsets found."""
        tau = self.tau if tau is None else tau
        fraction = self.params.onset_fraction if fraction is None else fraction
        p = self.note_params
        n = p.segment_samples
        w = np.hamming(n)
        s = np.arange(n, -n // 2, -max(1, p.sample_rate // 2000))  # window starts L before .. L/2 after
        t = (np.arange(n)[None, :] - s[:, None]) / p.sample_rate  # time since the strike of each sample
        out = np.zeros(len(p.notes))
        for j, tau_j in enumerate(tau):
            env = np.where(t >= 0, np.exp(-np.maximum(t, 0) / tau_j), 0.0)
            r = env @ w
            first = int(np.argmax(r >= fraction * r.max() - 1e-12))
            out[j] = s[first] / p.sample_rate
        return out

    def notes(self, audio: np.ndarray, spec: MarimbaSpec = MarimbaSpec()) -> list[tuple[float, int, int]]:
        """(onset s, midi, velocity) of every note heard."""
        return [(e.t, e.note, e.velocity) for e in self.events(audio, spec) if isinstance(e, NoteOn)]

    def _onsets(self, A: np.ndarray, H: np.ndarray, V: np.ndarray, spec: MarimbaSpec
                ) -> list[tuple[int, int, float, int]]:
        """(window index, note index, level, kind) of each onset in fine-hop amplitudes ``A`` (activations
        ``H``, probe readings ``V``); kind 0: seen at its fundamental, 1: a ringing bar struck again, seen
        in its upper partials (``_restrikes``), 2: the same, seen where its partial lands on another bar.

        A window is an onset of a note when its level is the largest within
        +/- ``peak_halfwidth_s``, reaches ``spec.peaks.threshold``, and rises at
        least ``spec.peaks.min_rise`` above the level the window that ends where
        it starts would have decayed to (a ringing bar struck again counts);
        the note reads its own fundamental (``fundamental_support``) and still
        rings one window later (``sustain``: not a mallet's thump); a bar within
        ``mask_neighbours`` that is ``mask_margin`` louder around then masks it
        (an onset's splatter), as the device's peak picker does. An onset on a
        lower note's partial may be that note's (``_attribute``).
        """
        lp, pk = self.params, spec.peaks
        level = spec.target.forward(A)  # (T, J)
        T, J = level.shape
        if T == 0:
            return []
        half, lag = self._hops(lp.peak_halfwidth_s), self._hops(self.note_params.segment_samples
                                                                 / self.note_params.sample_rate)
        peak, lows = _peaks_and_lows(level, half, lag)
        # The ringing bar would have decayed since the window before: the rise is over that envelope.
        decay = np.exp(-lag * lp.hop_s / (self.tau * lp.decay_margin)).astype(np.float32)
        expected = spec.target.forward(spec.target.inverse(lows) * decay[None, :])
        is_peak = peak & (level >= pk.threshold) & (level - expected >= pk.min_rise)
        # A note needs its own fundamental: an activation the fit made up from partials (a high bar's
        # energy explained as a low bar's 4x) reads little at the low bar's fundamental.
        is_peak &= V[:, self.fund_probe] >= lp.fundamental_support * H
        # A struck bar rings on: one window later it still reads a share of its decayed peak; a mallet's
        # thump or an onset's splatter in a neighbour's bins is gone by then.
        # (Read at the fundamental itself: a fit's share of it can vanish when a partial takes it over.)
        fund = V[:, self.fund_probe]
        later = np.concatenate([fund[lag:], np.repeat(fund[-1:], min(lag, T), axis=0)])[:T]
        is_peak &= later >= lp.sustain * fund * decay[None, :]
        if pk.mask_neighbours > 0:
            # Over the window and the next one: a loud neighbour's level may peak a little later.
            loud = _running_max(level, half, ahead=lag)
            # A small bump on a ringing bar while a louder neighbour starts is that onset's splatter.
            starting = _running_max(np.where(is_peak, level, -np.inf), half, ahead=lag)
            small = (level - expected) < 2.5 * pk.min_rise
            mask = is_peak.copy()
            for d in range(1, pk.mask_neighbours + 1):
                mask[:, d:] &= (loud[:, :-d] < level[:, d:] + pk.mask_margin) & ~(
                    small[:, d:] & (starting[:, :-d] > level[:, d:]))
                mask[:, :-d] &= (loud[:, d:] < level[:, :-d] + pk.mask_margin) & ~(
                    small[:, :-d] & (starting[:, d:] > level[:, :-d]))
            is_peak = mask
        found: list[tuple[int, int, float, int]] = []  # (window, note, level, kind)
        for i, k in zip(*np.nonzero(is_peak)):
            j = self._attribute(A, H, V, level, is_peak, i, k, half, lag, pk.threshold)
            if j is not None:  # kind 2: a lower bar struck again, seen in its fresh partial at bar k
                found.append((int(i), j, float(level[i, j]), 0 if j == k else 2))
        if lp.restrike_rise > 0:
            found += self._restrikes(V, level, found, spec, half, lag)
        out = []
        refractory = self._hops(lp.refractory_s)
        for j in range(J):
            last = -10**9
            for i, _, lev, kind in sorted(x for x in found if x[1] == j):
                if i - last >= refractory:
                    out.append((i, j, lev, kind))
                    last = i
        return sorted(out)

    def _restrikes(self, V: np.ndarray, level: np.ndarray, found: list[tuple[int, int, float, int]],
                   spec: MarimbaSpec, half: int, lag: int) -> list[tuple[int, int, float, int]]:
        """Strikes of a ringing bar that its fundamental does not show (the new vibration adds to the old
        one at a random phase, so the sum can even shrink) but its upper partials do: they die several
        times faster than the fundamental, so a strike 0.15 s later brings them back from near silence.

        Read at the note's partial probes that are no note's fundamental (so another bar's strike cannot
        fake it), as the fundamental amplitude they imply; an onset when that rises ``restrike_rise``
        above its lowest value in the window before, reaches the threshold while the note sounds, no other
        note starts then (a mallet's thump lifts every bin) and the note's own onsets ``found`` by its
        fundamental are not within ``refractory_s`` (those come first).
        """
        pk, lp = spec.peaks, self.params
        fund_set = set(self.fund_probe.tolist())
        T = level.shape[0]
        near = self._hops(lp.refractory_s)
        starts = np.zeros(level.shape, bool)  # (T, J): another note's onset is in or near the window
        own = np.zeros(level.shape, bool)
        for i, k, _, _ in found:
            starts[max(i - lag - half, 0):i + half + 1, k] = True  # its thump is in every window that holds it
            own[max(i - near, 0):i + near + 1, k] = True
        out = []
        for j in range(level.shape[1]):
            # Only partials the template says are strong: dividing a weak one's reading by its weight
            # would turn leakage and noise into loud "strikes".
            probes = [pp for pp in self.partial_probe[j] if pp is not None and pp not in fund_set
                      and self.templates[pp, j] >= 0.1]
            w = self.templates[probes, j]
            if not probes:
                continue
            u = spec.target.forward((V[:, probes] @ w) / float(w @ w))
            peak = u >= _running_max(u[:, None], half)[:, 0]
            # The trough since the window before: these partials have all but died by then.
            trough = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.zeros(lag, u.dtype), u]), lag,
                                                              axis=0)[:T].min(axis=1)
            ok = peak & (u >= pk.threshold) & (u - trough >= lp.restrike_rise)
            ok &= level[:, j] >= pk.threshold
            ok &= ~np.delete(starts, j, axis=1).any(axis=1) & ~own[:, j]
            out += [(int(i), j, float(level[i, j]), 1) for i in np.flatnonzero(ok)]
        return out

    def _attribute(self, A: np.ndarray, H: np.ndarray, V: np.ndarray, level: np.ndarray, is_peak: np.ndarray,
                   i: int, k: int, half: int, lag: int, threshold: float) -> int | None:
        """Which note struck note k's onset at window i: k itself, a lower note whose partial lands on k's
        fundamental, or none.

        Only a lower note that sounds then can have made it, and only when k shows too little of its own
        upper partials (``own_partials``; a real C6 struck with C4 rings at 4x C6 too). If that note
        starts there as well, the onset is its partial read beyond its template: dropped. If it was
        ringing, it was struck again (its fundamental, adding at a random phase, need not grow, but its
        fresh partial does), unless the strike that partial implies is too loud for what that note's
        fundamental reads.
        """
        fk = self.fund_probe[k]
        # Partials proper, not a neighbour's main lobe (E4 reads F4 at -20 dB: no partial of it).
        roots = [j for j in range(H.shape[1]) if j != k and fk in self.partial_probe[j][1:]
                 and self.templates[fk, j] >= 0.1 and level[i, j] >= threshold]
        own = self._own_partials(V[i], k)
        if not roots or own is None or own >= self.params.own_partials:
            return k
        j = max(roots, key=lambda m: self.templates[fk, m] * H[i, m])
        lo, hi = max(i - half, 0), i + half + 1
        if is_peak[lo:i + lag + 1, j].any():  # j starts here too (its level may peak up to a window later)
            return None
        # A restrike of amplitude a_new on a ringing a_old leaves at least a_new - a_old at the fundamental,
        # whatever the phase: a partial jump too big for what j's fundamental shows is k's own strike.
        a_new = A[i, k] / self.templates[fk, j]
        a_old = A[max(i - lag, 0), j]
        return j if A[lo:hi, j].max() >= 0.7 * (a_new - a_old) else k

    def _hops(self, seconds: float) -> int:
        return max(1, round(seconds / self.params.hop_s))


def heard_events(audio: np.ndarray, spec: MarimbaSpec = MarimbaSpec(), note_params: NoteParams | None = None
                 ) -> list[NoteOn | NoteOff]:
    """The notes a recording's audio holds, as the project hears them: the harmonic labeller fitted to this
    recording. The one reference for training targets' notes, automatic calibration and
    ``transcribe --compare`` (times in seconds from the audio's first sample)."""
    params = note_params or NoteParams(fps=spec.fps, frames_per_window=spec.frames_per_window, notes=spec.notes)
    return HarmonicLabeller(params).events(audio, spec)


def ratio_weight(params: LabellerParams, index: int) -> float:
    """The physics default weight of partial ``index`` (> 0 so a learned median can rescale it)."""
    return max(params.partials[index][1], 1e-6)


def _running_max(x: np.ndarray, half: int, ahead: int | None = None) -> np.ndarray:
    """Max over rows i - half .. i + ahead (default half) of a (T, J) array (edges padded with -inf)."""
    J = x.shape[1]
    ahead = half if ahead is None else ahead
    pad = np.concatenate([np.full((half, J), -np.inf), x, np.full((ahead, J), -np.inf)])
    return np.lib.stride_tricks.sliding_window_view(pad, half + ahead + 1, axis=0).max(axis=2)


def _peaks_and_lows(level: np.ndarray, half: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(is the largest within +/- half rows, the lowest level of the window ``lag`` rows before)."""
    T, J = level.shape
    peak = level >= _running_max(level, half)
    before = np.concatenate([np.zeros((lag, J), level.dtype), level[:-lag]]) if T > lag else np.zeros_like(level)
    lows = np.lib.stride_tricks.sliding_window_view(
        np.concatenate([np.zeros((half, J), level.dtype), before]), half + 1, axis=0).min(axis=2)
    return peak, lows


def _to_events(onsets: Sequence[tuple[float, int, int]], hold_s: float) -> list[NoteOn | NoteOff]:
    """(t, note, velocity) onsets -> NoteOn, and a NoteOff ``hold_s`` later or at the note's next onset."""
    events: list[tuple[float, int, Any]] = []
    by_note: dict[int, list[tuple[float, int]]] = {}
    for t, note, vel in onsets:
        by_note.setdefault(note, []).append((t, vel))
    for note, ons in by_note.items():
        for k, (t, vel) in enumerate(ons):
            events.append((t, 1, NoteOn(note, vel, t)))
            end = t + hold_s
            if k + 1 < len(ons):
                end = min(end, ons[k + 1][0])
            events.append((end, 0, NoteOff(note, end)))
    events.sort(key=lambda e: (e[0], e[1]))  # a NoteOff before a NoteOn at the same time
    return [e for _, _, e in events]
