"""The one place that scores detections against the truth: training, the demo and the benchmark use it.

Two kinds of truth, two scores:

- **Sound classes** against a playlist's clips (``{"label", "onset", "offset"}``
  in the JSON beside the WAV): a clip is *hit* when a detection of its label
  starts within ``SOUND_TOLERANCE_S`` after its onset; a detection is *during
  silence* when it starts outside every clip (onset .. offset + ``TAIL_S``).
  Detections are events (``.label``, ``.t``) or rows (``["label"]``, ``["t"]``),
  so the live demo and the benchmark's JSON go through the same code.
- **Marimba notes** against true strikes: ``mir_eval`` note-onset matching
  (``ONSET_TOLERANCE_S`` = 50 ms, pitch within 50 cents, offsets ignored), with
  precision / recall / F1 and the timing and velocity errors of matched notes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from device.errors import InputFileError
from device.frontend import midi_to_hz
from device.marimba.transcribe import ONSET_TOLERANCE_S  # one tolerance: training and the box's --compare

SOUND_TOLERANCE_S = 0.75  # a detection this long after a clip's onset still counts as a hit
TAIL_S = 1.0  # reverb and the decision's clearing after a clip's offset: not "silence" yet
HOLD_FOR_SCORING = 0.1  # mir_eval needs intervals; onsets alone are scored (offset_ratio=None)


# ------------------------------------------------------------------ sound classes


def load_truth(wav_path: str | Path) -> list[dict[str, Any]]:
    """A playlist's ground truth: [{"label", "onset", "offset"}] from the JSON beside the WAV."""
    path = Path(wav_path).with_suffix(".json")
    try:
        return json.loads(path.read_text())["events"]
    except (OSError, ValueError, KeyError) as e:
        raise InputFileError(f"{path}: playlist truth missing or unreadable ({e})") from None


def _field(detection: Any, name: str) -> Any:
    return detection[name] if isinstance(detection, Mapping) else getattr(detection, name)


def first_hit(clip: Mapping[str, Any], detections: Sequence[Any], tolerance: float = SOUND_TOLERANCE_S) -> Any:
    """The first detection of ``clip``'s label within ``tolerance`` s after its onset, else None."""
    return next((d for d in detections if _field(d, "label") == clip["label"]
                 and clip["onset"] <= _field(d, "t") <= clip["onset"] + tolerance), None)


def match_detections(truth: Sequence[Mapping[str, Any]], detections: Sequence[Any],
                     tolerance: float = SOUND_TOLERANCE_S) -> list[tuple[Mapping[str, Any], Any]]:
    """(clip, detection) for each clip that was hit, in playlist order."""
    pairs = [(clip, first_hit(clip, detections, tolerance)) for clip in truth]
    return [(clip, hit) for clip, hit in pairs if hit is not None]


def _during(clip: Mapping[str, Any], t: float) -> bool:
    return clip["onset"] <= t <= clip["offset"] + TAIL_S


def score_detections(truth: Sequence[Mapping[str, Any]], detections: Sequence[Any],
                     tolerance: float = SOUND_TOLERANCE_S) -> dict[str, Any]:
    """Hits, hit rate, detections during silence and one row per clip (what was detected, how late)."""
    rows, hits = [], 0
    for clip in truth:
        match = first_hit(clip, detections, tolerance)
        shown = match or next((d for d in detections if _during(clip, _field(d, "t"))), None)
        hits += match is not None
        rows.append({"label": clip["label"], "onset": clip["onset"],
                     "detected": _field(shown, "label") if shown is not None else None,
                     "latency_s": round(_field(match, "t") - clip["onset"], 3) if match is not None else None,
                     "hit": match is not None})
    in_silence = [d for d in detections if not any(_during(clip, _field(d, "t")) for clip in truth)]
    return {"clips": len(truth), "hits": hits, "hit_rate": hits / max(len(truth), 1),
            "false_in_silence": len(in_silence), "rows": rows}


# ------------------------------------------------------------------ marimba notes


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where undefined)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def score_notes(reference: Sequence[tuple[float, int, int]], notes: Sequence[tuple[float, float, int, int]]
                ) -> dict[str, Any]:
    """mir_eval note-onset matching of ``notes`` (onset, offset, midi, velocity) against ``reference``
    strikes (onset, midi, velocity): counts + P/R/F1 + timing/velocity errors of the matched notes."""
    import mir_eval  # workstation-only; the sound half of this module works without it

    ref_on = np.array([r[0] for r in reference], dtype=float)
    est_on = np.array([n[0] for n in notes], dtype=float)
    ref_int = np.stack([ref_on, ref_on + HOLD_FOR_SCORING], 1) if len(ref_on) else np.zeros((0, 2))
    est_int = np.stack([est_on, est_on + HOLD_FOR_SCORING], 1) if len(est_on) else np.zeros((0, 2))
    ref_hz = midi_to_hz(np.array([r[1] for r in reference], dtype=float))
    est_hz = midi_to_hz(np.array([n[2] for n in notes], dtype=float))
    if len(ref_on) and len(est_on):
        matching = mir_eval.transcription.match_notes(ref_int, ref_hz, est_int, est_hz,
                                                      onset_tolerance=ONSET_TOLERANCE_S, offset_ratio=None)
    else:
        matching = []
    tp = len(matching)
    dt = [est_on[j] - ref_on[i] for i, j in matching]
    dv = [notes[j][3] - reference[i][2] for i, j in matching]
    return {"tp": tp, "fp": len(est_on) - tp, "fn": len(ref_on) - tp, **prf(tp, len(est_on) - tp, len(ref_on) - tp),
            "onset_error_ms_mean": float(1000 * np.mean(dt)) if dt else None,
            "onset_error_ms_sd": float(1000 * np.std(dt)) if dt else None,
            "velocity_error_mean_abs": float(np.mean(np.abs(dv))) if dv else None}


def combine(per_video: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Micro-average over videos (sum the counts), keeping the per-video scores."""
    tp, fp, fn = (sum(s[k] for s in per_video.values()) for k in ("tp", "fp", "fn"))
    return {"tp": tp, "fp": fp, "fn": fn, **prf(tp, fp, fn), "videos": per_video}
