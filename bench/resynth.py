"""Camera -> sound (issue 13 §3): what the resynthesis costs, how late it plays, how true it sounds.

- ``marimba.resynth_step_*``: one camera frame's block (1600 samples at 48 kHz,
  30 fps) computed by ``device.marimba.resynth.Resynth``, with 2 notes sounding
  (typical) and all 18 (worst case).
- ``e2e_marimba.frame_to_audio``: in simulated real time (the app built by the
  builder from the demo config, the held-out video paced at 30 fps, the sim
  audio out pacing itself like a sound card with 512-frame periods), from the
  camera frame's capture to the moment the card's consumer takes the first
  sample of the block written for it. A real card adds its own output buffer
  (about one or two periods) on top.
- ``marimba.resynth_*``: on held-out synthetic videos (the bench's and the
  demo's seed 7, plus the training run's held-out test seeds), the 18-bin
  spectrum of the resynthesised audio against the true audio's targets, both
  read with the one note front end training uses (``device.frontend.note_targets``):
  Pearson correlation over every (window, note) amplitude, and the log-spectral
  distance per window where a note sounds (RMS over the 18 notes of the dB
  difference, both floored at the resynthesis gate, -60 dBFS), as played (the resynthesis follows the
  camera by the 3-frame window) and aligned (the lag of 0..3 frames that best
  lines the spectra up taken out, reported per video), and
  with the true targets driving the resynthesis (its own fidelity, no model).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from .stats import figure, measure

SPECTRUM_SEEDS = (7, 9000, 9001, 9002, 9003)  # the bench/demo video and train_marimba's held-out test seeds
FLOOR = 1e-3  # = device.marimba.resynth.GATE_AMPLITUDE: below it both sides count as silence


def spectrum_scores(true: np.ndarray, resynth: np.ndarray) -> tuple[float, np.ndarray]:
    """(correlation over all amplitudes, log-spectral distance in dB per window) of two (windows, 18) arrays.

    The distance is given for the windows where a note sounds (above FLOOR) on either
    side: two silences agree trivially and would only dilute it.
    """
    n = min(len(true), len(resynth))
    a, b = np.asarray(true[:n], np.float64), np.asarray(resynth[:n], np.float64)
    corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    db = 20 * np.log10(np.maximum(a, FLOOR) / np.maximum(b, FLOOR))
    sounding = (a >= FLOOR).any(axis=1) | (b >= FLOOR).any(axis=1)
    return corr, np.sqrt(np.mean(db * db, axis=1))[sounding]


def _video_scores(pipe, video, note_params) -> dict[str, Any]:
    from device.frontend import note_targets
    from device.hardware.base import Frame
    from device.marimba.resynth import Resynth

    spec = pipe.spec
    n = len(video.frames)
    truth = note_targets(video.audio, n, note_params, video.frame_times)
    # The box's path: every frame through the model, one block per frame of the newest levels.
    pipe.reset()
    played = Resynth.from_spec(spec, video.sample_rate, fps=video.fps)
    blocks = []
    for i, (img, t) in enumerate(zip(video.frames, video.frame_times)):
        pipe.step(Frame(img, i, float(t)))
        blocks.append(played.step_levels(pipe.levels))
    heard = note_targets(np.concatenate(blocks), n, note_params)
    # Window i is decided when frame i+2 arrives and then glides in: the lag (in frames, 0..3)
    # that best lines the heard spectra up with the true ones is taken out for "aligned".
    lag = max(range(4), key=lambda k: spectrum_scores(truth, heard[k:])[0])
    # Its own fidelity: the true targets drive the resynthesis, window i at frame i.
    oracle = note_targets(Resynth.from_spec(spec, video.sample_rate, fps=video.fps).render(truth), n, note_params)
    return {"as_played": spectrum_scores(truth, heard), "aligned": spectrum_scores(truth, heard[lag:]),
            "oracle": spectrum_scores(truth, oracle), "lag_frames": lag}


def bench_spectrum(model: Path, seconds: float, seeds=SPECTRUM_SEEDS) -> tuple[dict, dict]:
    """(figures, notes): resynthesised vs true 18-bin spectra on held-out synthetic videos."""
    from device.frontend import NoteParams
    from device.marimba.pipeline import MarimbaPipeline
    from training.datasets.marimba_synth import SynthConfig, render

    pipe = MarimbaPipeline.from_model_path(model, NoteParams())
    note_params = NoteParams(fps=pipe.spec.fps, frames_per_window=pipe.spec.frames_per_window, notes=pipe.spec.notes)
    per: dict[str, dict[str, list]] = {k: {"corr": [], "lsd": []} for k in ("as_played", "aligned", "oracle")}
    per_video = {}
    for seed in seeds:
        scores = _video_scores(pipe, render(seed, SynthConfig(seconds=seconds)), note_params)
        per_video[seed] = {"aligned_lag_frames": scores.pop("lag_frames")}
        per_video[seed].update({k: {"correlation": round(c, 4), "lsd_db_mean": round(float(np.mean(d)), 2)}
                                for k, (c, d) in scores.items()})
        for k, (c, d) in scores.items():
            per[k]["corr"].append(c)
            per[k]["lsd"].extend(d.tolist())
    what = {"as_played": "model -> resynthesis as played", "aligned": "model -> resynthesis, its lag taken out",
            "oracle": "true targets -> resynthesis (no model)"}
    figs: dict[str, Any] = {}
    for k, label in what.items():
        figs[f"marimba.resynth_correlation_{k}"] = figure(
            per[k]["corr"], "r", f"camera -> sound, 18-bin spectrum vs true audio: correlation ({label})",
            note="Pearson r over every (window, note) amplitude, one value per held-out video")
        figs[f"marimba.resynth_lsd_{k}"] = figure(
            per[k]["lsd"], "dB", f"camera -> sound, 18-bin log-spectral distance to true audio ({label})",
            percentiles=True, note=f"RMS over the 18 notes of the dB difference per 3-frame window where a note "
                                   f"sounds, floored at {20 * np.log10(FLOOR):.0f} dBFS")
    notes = {"resynth_spectrum_videos": {str(s): v for s, v in per_video.items()},
             "resynth_spectrum_seconds_per_video": seconds}
    return figs, notes, {"resynth_recording": "not available: no marimba recording (video + audio) in the repository"}


def bench_compute(repeats: int, min_time: float) -> tuple[dict, dict]:
    """(figures, notes): per-frame resynthesis time with 2 and with 18 notes sounding."""
    from device.config import AudioOutConfig
    from device.marimba.pipeline import MarimbaSpec
    from device.marimba.resynth import Resynth

    spec, rate = MarimbaSpec(), AudioOutConfig().sample_rate
    figs = {}
    for sounding in (2, 18):
        r = Resynth.from_spec(spec, rate)
        amps = np.zeros(len(spec.notes))
        amps[:sounding] = 0.05
        times = measure(lambda: r.step(amps), repeats, min_time)
        figs[f"marimba.resynth_step_{sounding}_notes"] = figure(
            times, "ms", f"resynthesis of one camera frame ({r.block_size(0)} samples, {sounding} notes sounding)",
            scale=1e3)
    return figs, {"resynth_rate_hz": rate}


class _Stamped:
    """Pass-through proxy for the camera: when ``start()`` ran and the frame being processed."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.started_at: float | None = None
        self.last: Any = None

    def start(self) -> None:
        self.started_at = time.monotonic()  # taken before the pacing starts: latencies err long
        self._inner.start()

    def read(self, timeout: float | None = None):
        frame = self._inner.read(timeout)
        if frame is not None:
            self.last = frame
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def frame_to_audio(writes: list[tuple[float, int]], takes: list[tuple[float, int, int]]) -> list[float]:
    """Seconds from each write's frame to the consumer taking the write's first sample.

    ``writes``: (frame capture time on the wall clock, global index of the block's first sample);
    ``takes``: (wall time, global index of the first sample taken, count). A block whose first
    sample was dropped before it was taken (the queue was full) has no latency.
    """
    out, j = [], 0
    for captured, first in writes:
        while j < len(takes) and takes[j][1] + takes[j][2] <= first:
            j += 1
        if j < len(takes) and takes[j][1] <= first:
            out.append(takes[j][0] - captured)
    return out


def bench_latency(model: Path, seconds: float, workdir: Path) -> tuple[dict, dict]:
    """(figures, notes): camera frame -> first audio sample, the app in simulated real time."""
    from demo.driver import DEMO_CONFIG, render_marimba_input
    from device.config import load_config
    from device.runtime.builder import build_app

    video, _ = render_marimba_input(workdir / "resynth-input", seed=7, seconds=seconds)
    cfg = load_config(DEMO_CONFIG)
    cfg = dataclasses.replace(
        cfg, app=dataclasses.replace(cfg.app, modes=("marimba",), status_file=str(workdir / "resynth-status.json")),
        marimba=dataclasses.replace(cfg.marimba, model=str(model)),
        camera=dataclasses.replace(cfg.camera, video=str(video), realtime=True),
        audio_out=dataclasses.replace(cfg.audio_out, mode="resynth", backend="sim", realtime=True, wav=""),
        display=dataclasses.replace(cfg.display, out_dir=""))
    app, cleanup = build_app(cfg, sim=True, out_dir=None)
    camera = app.dev.camera = _Stamped(app.dev.camera)
    out = app.dev.audio_out
    writes: list[tuple[float, int]] = []
    takes: list[tuple[float, int, int]] = []
    write, take = out.write, out._queue.take

    def stamped_write(block):
        first = out._queue._write  # global index the block's first sample gets
        n = write(block)
        writes.append((camera.started_at + camera.last.captured_at, first))
        return n

    def stamped_take(n, timeout=0.0):
        start, x = take(n, timeout)
        if len(x):
            takes.append((time.monotonic(), start, len(x)))
        return start, x

    out.write, out._queue.take = stamped_write, stamped_take
    try:
        app.run(seconds=seconds, stop_when_done=True)
    finally:
        cleanup()
    lat = frame_to_audio(writes, takes)
    figs = {}
    if lat:
        figs["e2e_marimba.frame_to_audio"] = figure(
            lat, "ms", "e2e marimba: camera frame -> first sample of its resynthesised block taken by the card",
            scale=1e3, percentiles=True,
            note=f"sim card with {cfg.audio_out.block}-frame periods at {out.sample_rate} Hz, behind the jitter "
                 "buffer (one frame's block plus one period); a real card adds its own output buffer")
    notes = {"resynth_e2e_blocks": len(writes), "resynth_e2e_timed": len(lat),
             "resynth_e2e_dropped_samples": out.dropped_samples, "resynth_e2e_underruns": out.underruns}
    return figs, notes


def bench_resynth(model: Path, quick: bool, repeats: int, min_time: float, seconds: float,
                  workdir: Path) -> tuple[dict, dict, dict]:
    """The ``resynth`` section: compute time, spectrum against the true audio, and (not --quick) latency.

    --quick: the spectrum on the bench's own video only, 4 s of it, and no real-time run.
    """
    figs, notes = bench_compute(repeats, min_time)
    sfigs, snotes, unavailable = bench_spectrum(model, 4.0 if quick else seconds,
                                                SPECTRUM_SEEDS[:1] if quick else SPECTRUM_SEEDS)
    figs.update(sfigs)
    notes.update(snotes)
    if quick:
        unavailable["resynth_latency"] = "skipped in --quick"
    else:
        lfigs, lnotes = bench_latency(model, seconds, workdir)
        figs.update(lfigs)
        notes.update(lnotes)
    return figs, notes, unavailable
