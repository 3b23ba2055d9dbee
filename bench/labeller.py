"""The marimba audio labeller, old against new against basic-pitch, on two timbres in one run (issue 14 §4).

    python -m bench.labeller [--clips N] [--no-basic-pitch] [--out DIR]

Labellers:

- ``old``: today's reading, ``device.frontend.note_targets`` (each bar's
  fundamental) through the device's peak picker (``audio_events``);
- ``harmonic``: ``device.marimba.labeller.HarmonicLabeller`` (per-note
  harmonic templates learned from the recording, non-negative fit, onsets on a
  5 ms hop);
- ``basic-pitch``: Spotify's transcriber (Apache-2.0; the TFLite model inside
  its wheel, ``make bench`` installs it), its default thresholds, notes
  outside C4..F6's 18 bars dropped (they cannot be bars).

Timbres, both with their true strikes:

- ``project render``: ``training.datasets.marimba_synth.render_sound`` (the
  sound the project trains on: 1x, 4x at -26 dB, 10x);
- ``eval marimba``: ``training.datasets.marimba_eval_look`` (code that shares
  nothing with the project's renderer: 4x at about -8 dB, 3x, 9.9x, mallet
  thump, a room; chords and quick repeats 0.12-0.2 s apart).

Scores: ``training.scoring.score_notes`` (mir_eval, 50 ms onsets, pitch must
match); a *phantom* is a detection that matches no true note but sits exactly
+24 (or +12, +19) semitones above a note struck within 50 ms: a partial read as
a note. Seeds here are not the ones the labeller's constants were chosen on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Truth = list[tuple[float, int, int]]  # (onset s, midi, velocity)
Notes = list[tuple[float, int, int]]

RENDER_SEED0, EVAL_SEED0 = 20000, 30000  # the labeller was tuned on other seeds
PHANTOM_INTERVALS = (12, 19, 24)
ONSET_TOLERANCE_S = 0.05


# ------------------------------------------------------------------ data


def project_renders(clips: int, seconds: float) -> list[tuple[np.ndarray, Truth]]:
    from training.datasets.marimba_synth import SynthConfig, render_sound

    return [render_sound(RENDER_SEED0 + i, SynthConfig(seconds=seconds)) for i in range(clips)]


def eval_marimba(clips: int, seconds: float, sample_rate: int = 48000) -> list[tuple[np.ndarray, Truth]]:
    """The second timbre: marimba_eval_look's score and sound (audio only; its video is not drawn)."""
    from training.datasets import marimba_eval_look as look

    out = []
    for i in range(clips):
        rng = np.random.default_rng(EVAL_SEED0 + i)
        hits = look.make_score(rng, seconds)
        audio = look.render_sound(hits, seconds, sample_rate, rng)
        out.append((audio, [(h.t, look.NOTES[h.bar], h.velocity) for h in hits]))
    return out


TIMBRES: dict[str, Callable[[int, float], list[tuple[np.ndarray, Truth]]]] = {
    "project render": project_renders, "eval marimba": eval_marimba}


# ------------------------------------------------------------------ labellers


def old_labeller(audio: np.ndarray, sample_rate: int = 48000) -> Notes:
    from device.frontend import NoteParams
    from device.marimba.pipeline import MarimbaSpec, NoteOn, audio_events

    spec = MarimbaSpec()
    params = NoteParams(sample_rate=sample_rate, fps=spec.fps, frames_per_window=spec.frames_per_window,
                        notes=spec.notes)
    n_frames = int(len(audio) / sample_rate * spec.fps)
    return [(e.t, e.note, e.velocity) for e in audio_events(audio, n_frames, spec, params, labeller=None) if isinstance(e, NoteOn)]


def harmonic_labeller(audio: np.ndarray, sample_rate: int = 48000) -> Notes:
    from device.frontend import NoteParams
    from device.marimba.labeller import HarmonicLabeller

    return HarmonicLabeller(NoteParams(sample_rate=sample_rate)).notes(audio)


class BasicPitch:
    """basic-pitch's bundled model, loaded once; ``__call__(audio, sample_rate) -> notes``.

    Raises ``RuntimeError`` with the reason when it cannot run here."""

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import basic_pitch
            from basic_pitch import inference
        except Exception as e:  # noqa: BLE001 - any import failure is "unavailable", with its reason
            raise RuntimeError(f"basic-pitch not importable ({type(e).__name__}: {e}); "
                               "`make bench` installs it (pip install --no-deps basic-pitch==0.4.0)") from None
        self.inference = inference
        self.version = getattr(basic_pitch, "__version__", None) or _dist_version("basic-pitch")
        model_path = Path(str(basic_pitch.ICASSP_2022_MODEL_PATH) + ".tflite")
        try:
            self.model = inference.Model(model_path)
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"basic-pitch model {model_path.name} does not load "
                               f"({str(e).splitlines()[0][:200]})") from None
        self.backend = getattr(self.model.model_type, "name", str(self.model.model_type))

    def __call__(self, audio: np.ndarray, sample_rate: int = 48000) -> Notes:
        from device.frontend import DIATONIC_C4_F6
        from device.wavfile import write_wav

        with tempfile.TemporaryDirectory(prefix="saysee-bp-") as tmp:
            path = write_wav(Path(tmp) / "clip.wav", np.clip(audio, -1, 1), sample_rate)
            _, _, events = self.inference.predict(str(path), self.model)
        bars = set(DIATONIC_C4_F6)
        return sorted((float(t0), int(p), int(max(1, min(127, round(127 * a)))))
                      for t0, _, p, a, _ in events if int(p) in bars)


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


# ------------------------------------------------------------------ scores


def phantoms(truth: Truth, notes: Notes) -> dict[int, int]:
    """Per interval, detections that match no true note but sit that many semitones above a true strike
    within 50 ms."""
    out = {k: 0 for k in PHANTOM_INTERVALS}
    for t, m, _ in notes:
        if any(abs(t - rt) <= ONSET_TOLERANCE_S and rm == m for rt, rm, _ in truth):
            continue
        for k in PHANTOM_INTERVALS:
            if any(abs(t - rt) <= ONSET_TOLERANCE_S and m - rm == k for rt, rm, _ in truth):
                out[k] += 1
                break
    return out


def score(clips: Sequence[tuple[Truth, Notes]]) -> dict[str, Any]:
    """Pooled counts over clips -> P/R/F1 and phantom shares (of all detections)."""
    from training.scoring import prf, score_notes

    tp = fp = fn = det = 0
    ph = {k: 0 for k in PHANTOM_INTERVALS}
    errs = []
    for truth, notes in clips:
        s = score_notes(truth, [(t, t + 0.1, m, v) for t, m, v in notes])
        tp, fp, fn, det = tp + s["tp"], fp + s["fp"], fn + s["fn"], det + len(notes)
        if s["onset_error_ms_mean"] is not None:
            errs.append(s["onset_error_ms_mean"])
        for k, n in phantoms(truth, notes).items():
            ph[k] += n
    r = {"tp": tp, "fp": fp, "fn": fn, "detections": det, **{k: round(v, 4) for k, v in prf(tp, fp, fn).items()}}
    r["phantom_24"] = ph[24]
    r["phantom_24_pct"] = round(100.0 * ph[24] / max(det, 1), 2)
    r["phantom_harmonic"] = sum(ph.values())
    r["phantom_harmonic_pct"] = round(100.0 * sum(ph.values()) / max(det, 1), 2)
    r["onset_error_ms_mean"] = round(float(np.mean(errs)), 1) if errs else None
    return r


def evaluate(clips: int = 6, seconds: float = 15.0, basic_pitch: bool = True,
             timbres: Sequence[str] = tuple(TIMBRES)) -> dict[str, Any]:
    """Every labeller on every timbre's clips: {"rows": [...], "unavailable": {...}, settings}."""
    labellers: dict[str, Callable[[np.ndarray], Notes]] = {"old": old_labeller, "harmonic": harmonic_labeller}
    unavailable: dict[str, str] = {}
    info: dict[str, Any] = {}
    if basic_pitch:
        try:
            bp = BasicPitch()
            labellers["basic-pitch"] = bp
            info["basic_pitch"] = {"version": bp.version, "backend": bp.backend}
        except RuntimeError as e:
            unavailable["basic-pitch"] = f"unavailable: {e}"
    else:
        unavailable["basic-pitch"] = "unavailable: not requested (--no-basic-pitch)"
    rows = []
    for timbre in timbres:
        data = TIMBRES[timbre](clips, seconds)
        for name, fn in labellers.items():
            t0 = time.perf_counter()
            found = [(truth, fn(audio)) for audio, truth in data]
            took = time.perf_counter() - t0
            rows.append({"labeller": name, "timbre": timbre, "clips": len(data), "notes": sum(len(t) for _, t in data),
                         **score(found), "seconds_per_audio_second": round(took / (len(data) * seconds), 4)})
        rows += [{"labeller": name, "timbre": timbre, "unavailable": why} for name, why in unavailable.items()]
    return {"clips_per_timbre": clips, "seconds": seconds, "rows": rows, "unavailable": unavailable, **info}


def table(r: dict[str, Any]) -> str:
    """Markdown: labeller x timbre, P / R / F1, phantom shares."""
    title = (f"Marimba audio labellers, {r['clips_per_timbre']} clips of {r['seconds']:g} s per timbre "
             "(mir_eval onsets, 50 ms, pitch must match; phantom = unmatched detection +24 (+12/+19) semitones "
             "above a strike within 50 ms, share of detections):")
    header = ("| Timbre | Labeller | Notes | Precision | Recall | F1 | Phantoms +24 | Phantoms +12/+19/+24 "
              "| Onset error mean |")
    out = [title, "", header, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        if "unavailable" in row:
            out.append(f"| {row['timbre']} | {row['labeller']} | {row['unavailable']} | | | | | | |")
            continue
        out.append(f"| {row['timbre']} | {row['labeller']} | {row['notes']} | {row['precision']:.3f} | "
                   f"{row['recall']:.3f} | {row['f1']:.3f} | {row['phantom_24']} ({row['phantom_24_pct']:.1f} %) | "
                   f"{row['phantom_harmonic']} ({row['phantom_harmonic_pct']:.1f} %) | "
                   f"{row['onset_error_ms_mean']} ms |")
    return "\n".join(out)


def bench_labeller(quick: bool = False) -> tuple[dict, dict, dict]:
    """``python -m bench``'s section: the table goes in the notes (counts and shares can be 0, which
    figures may not be); basic-pitch missing is listed as not measured, the rest still runs."""
    r = evaluate(clips=2 if quick else 8, seconds=8.0 if quick else 15.0)
    print(table(r))
    missing = {f"labeller.{k}": v for k, v in r["unavailable"].items()}
    return {}, {"labeller": r | {"table": table(r)}}, missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.labeller", description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8, help="clips per timbre")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--no-basic-pitch", action="store_true")
    ap.add_argument("--out", default=None, help="folder for labeller.json")
    args = ap.parse_args(argv)
    r = evaluate(args.clips, args.seconds, basic_pitch=not args.no_basic_pitch)
    print(table(r))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "labeller.json").write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
