"""Choose the sound decision settings on held-out playlists, never on the bench's own.

    python -m bench.tune_sound [--models DIR] [--config FILE] [--seeds 5001-5012] [--chunk 800]
                               [--set early_threshold=0.7,0.8,0.9] [--set min_sound_s=0.1,0.15] ...

Builds playlists with ``bench.e2e.build_playlist`` on seeds the bench does not
play (default 5001-5012: 120 clips), scores every window on the front end's
10 ms grid once with the box's model (through the open-set decision, as the
builder runs it, with five held-out sound-world families taught: ``TUNE_TAUGHT``,
not the bench's), then replays the real ``SoundPipeline`` over the audio for
each combination of ``--set`` values, in simulated time: no threads, no
waiting. Each decision is stamped with the end of the mic chunk that carried
it (``--chunk`` samples, the box's [mic] chunk), so the latency is what the
e2e bench measures less the few milliseconds of processing and sinks.
Printed per combination and design: correct-class rate, p50 / p95 onset ->
ClassDetected, flickers, detections in silence, early decisions
(``bench.e2e.decision_quality``, the bench's own definitions).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from device.config import PROJECT_ROOT, MicConfig, load_config
from device.frontend import LogMelParams, StreamingLogMel, log_mel

from .e2e import TUNE_TAUGHT, build_playlist, decision_quality, taught_box
from .false_pictures import per_hour

TUNING_SEEDS = tuple(range(5001, 5013))
NEGATIVES_SEED = 7  # bench.false_pictures' stream is seed 0, bench.taught_onset's seed 5


class _Window(np.ndarray):
    """Features of one window, tagged with the index of its first STFT frame."""

    frame: int


class _TaggingLogMel(StreamingLogMel):
    """The streaming front end, tagging each window so the replay can look its scores up."""

    def push(self, chunk: np.ndarray) -> list[tuple[int, np.ndarray]]:
        out = []
        for end, feats in super().push(chunk):
            w = feats.view(_Window)
            w.frame = (end - self.params.samples_per_window) // self.params.hop_length
            out.append((end, w))
        return out


class WindowScores(np.ndarray):
    """Scores of every window, shape (windows, labels); ``heard``: each window's
    ``device.sound.open_set.Scores.heard`` (None when ``predict`` gives none)."""

    heard: list[str | None] | None = None


def window_scores(predict, audio: np.ndarray, params: LogMelParams) -> WindowScores:
    """Scores of the window starting at every STFT frame: shape (windows, labels)."""
    rows = log_mel(audio, params)
    n = params.frames_per_window
    raw = [predict(rows[j : j + n, :, None]) for j in range(len(rows) - n + 1)]
    out = np.stack([np.asarray(r, dtype=np.float32) for r in raw]).view(WindowScores)
    out.heard = [r.heard for r in raw] if raw and hasattr(raw[0], "heard") else None
    return out


def replay(scores: np.ndarray, labels: list[str], audio: np.ndarray, settings: Any, chunk: int,
           params: LogMelParams, agree_labels=None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Event rows (as the e2e bench records them, ``wall`` = chunk end in stream seconds) and counters."""
    from device.sound.open_set import Scores
    from device.sound.pipeline import SoundPipeline

    heard = getattr(scores, "heard", None)

    def predict(w: _Window) -> np.ndarray:
        if heard is None:
            return np.asarray(scores[w.frame])
        row = np.asarray(scores[w.frame]).view(Scores)
        row.heard = heard[w.frame]
        return row

    pipe = SoundPipeline(predict, labels, params, settings, agree_labels=agree_labels)
    pipe.frontend = _TaggingLogMel(pipe.stream_params)
    rows = []
    for i in range(0, len(audio), chunk):
        for e in pipe.step(audio[i : i + chunk], i):
            row = {"type": type(e).__name__, "wall": min(i + chunk, len(audio)) / params.sample_rate,
                   **{f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.name != "probabilities"}}
            rows.append(row)
    return rows, dict(pipe.counters)


def matched(truth: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(clip, its first right ClassDetected row) for every clip that was hit (the bench's matching)."""
    from training import scoring

    return scoring.match_detections(truth, [r for r in rows if r["type"] == "ClassDetected"])


def summarise(truth: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    q = decision_quality(truth, rows)
    lat = [hit["wall"] - clip["onset"] for clip, hit in matched(truth, rows)]
    q["p50_ms"] = float(np.percentile(lat, 50) * 1e3) if lat else float("nan")
    q["p95_ms"] = float(np.percentile(lat, 95) * 1e3) if lat else float("nan")
    return q


def by_class(truth: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per true class: clips, correct, median and slowest onset -> ClassDetected (ms), early decisions.

    Which classes hold the p95 up: the tail of a pooled latency says nothing of where it comes from."""
    hits = matched(truth, rows)
    out: dict[str, dict[str, float]] = {}
    for label in sorted({c["label"] for c in truth}):
        mine = [(clip, hit) for clip, hit in hits if clip["label"] == label]
        lat = [(hit["wall"] - clip["onset"]) * 1e3 for clip, hit in mine]
        out[label] = {"clips": sum(c["label"] == label for c in truth), "correct": len(mine),
                      "p50_ms": float(np.median(lat)) if lat else float("nan"),
                      "max_ms": max(lat) if lat else float("nan"),
                      "early": sum(bool(hit.get("early")) for _, hit in mine)}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.tune_sound", description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=str(PROJECT_ROOT / "models"), help="folder holding sound.tflite")
    ap.add_argument("--config", default=str(PROJECT_ROOT / "config" / "demo.toml"),
                    help="config whose [sound] and [teach] sections are the starting point")
    ap.add_argument("--seeds", default=f"{TUNING_SEEDS[0]}-{TUNING_SEEDS[-1]}", help="playlist seeds, a-b")
    ap.add_argument("--chunk", type=int, default=MicConfig().chunk, help="mic chunk in samples (default: the box's [mic] chunk)")
    ap.add_argument("--negatives-minutes", type=float, default=5.0,
                    help="also replay this much of a negatives stream (speech, music, household sounds; its own "
                         "seed) and count the pictures it wrongly shows per hour; 0 = skip")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                    help="[sound] key and the values to try (repeatable)")
    ap.add_argument("--by-class", action="store_true",
                    help="also print, for the first combination of each design, latency per true class")
    args = ap.parse_args(argv)
    lo, _, hi = args.seeds.partition("-")
    args.seed_list = tuple(range(int(lo), int(hi or lo) + 1))
    if set(args.seed_list) & {4101, 4102, 4103, 4104, 4105, 4106}:
        ap.error("those seeds are the bench playlist's: choose settings on other clips")
    return args


def main(argv: list[str] | None = None) -> int:
    from device.model import Model
    from device.sound.teach import open_set_model

    args = parse_args(argv)
    cfg = load_config(args.config)
    params = LogMelParams()
    model = Model(Path(args.models) / "sound.tflite", expected_frontend=params)
    with tempfile.TemporaryDirectory(prefix="saysee-tune-") as tmp:
        # Taught sounds active, as on the bench's box, but other held-out families than the bench's.
        taught = taught_box(Path(tmp) / "taught", model.path, TUNE_TAUGHT)
        decision, _ = open_set_model(dataclasses.replace(cfg, teach=dataclasses.replace(cfg.teach, dir=str(taught))),
                                     model)
    audio, truth = build_playlist(10 * len(args.seed_list), seeds=args.seed_list)
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    print(f"tune_sound: {len(truth)} clips ({len(pcm) / 16000:.0f} s) on seeds {args.seeds}, "
          f"model {model.path}", flush=True)
    scores = window_scores(decision.predict, pcm, params)
    negatives = None
    if args.negatives_minutes > 0:
        from training.datasets.negatives import negatives_stream

        from training.datasets.sound_world import test_families

        neg, _ = negatives_stream(args.negatives_minutes, seed=NEGATIVES_SEED,
                                  exclude_families=test_families()[TUNE_TAUGHT])
        neg_pcm = np.round(np.clip(neg, -1.0, 1.0) * 32767).astype(np.int16)
        negatives = (neg_pcm, window_scores(decision.predict, neg_pcm, params))
    builtin = set(model.labels)
    grid = {}
    for item in args.set:
        key, _, values = item.partition("=")
        if not hasattr(cfg.sound, key) or key == "decision":
            raise SystemExit(f"tune_sound: --set {item}: not a tunable [sound] key")
        kind = type(getattr(cfg.sound, key)) if getattr(cfg.sound, key) is not None else float
        grid[key] = [kind(v) if kind in (int, float) else v for v in values.split(",")]
    print("| design | " + " | ".join(grid) + " | correct | p50 ms | p95 ms | flickers | in silence | early "
          "| false pictures / h (built-in, taught) |")
    print("|---|" + "---|" * len(grid) + "---:|---:|---:|---:|---:|---:|---:|")
    per_class_done: set[str] = set()
    for design in ("onset", "window"):
        for values in itertools.product(*grid.values()) if grid else [()]:
            settings = dataclasses.replace(cfg.sound, decision=design, max_latency_s=None, **dict(zip(grid, values)))
            rows, _ = replay(scores, list(decision.labels), pcm, settings, args.chunk, params, builtin)
            q = summarise(truth, rows)
            false = "-"
            if negatives is not None:
                neg_rows, _ = replay(negatives[1], list(decision.labels), negatives[0], settings, args.chunk, params,
                                     builtin)
                f = per_hour([r["label"] for r in neg_rows if r["type"] == "ClassDetected"], builtin,
                             len(negatives[0]) / params.sample_rate)
                false = f"{f['builtin_per_hour']:.0f}, {f['taught_per_hour']:.0f}"
            print(f"| {design} | " + " | ".join(str(v) for v in values) + (" | " if values else "")
                  + f"{q['correct']}/{q['clips']} | {q['p50_ms']:.0f} | {q['p95_ms']:.0f} | "
                  f"{q['flickers']}/{q['detections']} | {q['in_silence']} | {q['early']} | {false} |", flush=True)
            if args.by_class and design not in per_class_done:
                per_class_done.add(design)
                for label, c in by_class(truth, rows).items():
                    print(f"|   {design} {label}: {c['correct']}/{c['clips']} correct, p50 {c['p50_ms']:.0f} ms, "
                          f"slowest {c['max_ms']:.0f} ms, {c['early']} early", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
