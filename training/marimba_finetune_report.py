"""`make marimba-report`: the camera model on an instrument the project never rendered.

    python -m training.marimba_finetune_report [--model models/marimba.tflite] [--out reports/marimba-finetune]
        [--seeds 0 1 2] [--quick]

The "user" is the evaluation instrument (training.datasets.marimba_eval_look:
a rainbow toy xylophone on gingham, two camera poses, 320x240, drawn and
sounded by code that shares nothing with the training renderers):

1. **Zero-shot**: the committed model with the automatic calibration only
   (bars found from the motion at the notes the audio hears), through the
   device path, on held-out takes of that instrument.
2. **Fine-tuned**: ``train_marimba --data`` on at most two minutes of its
   recordings (training + validation), automatic calibration, starting from
   the committed weights, once per seed; held-out F1 per seed (mean and
   spread), and the project's own look scored by the same fine-tuned model.

Writes ``report.json`` and ``report.md`` (a table) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from device.errors import SaySeeError
from device.frontend import NoteParams
from device.marimba.pipeline import MarimbaSpec
from training.scoring import combine
from training.scoring import score_notes as score

PROG = "marimba-report"
ROOT = Path(__file__).resolve().parent.parent
USER_SEED0, HELDOUT_SEED0, OWN_SEED0 = 30000, 31000, 9000  # own look: train_marimba's held-out seeds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "marimba.tflite"), help="pretrained int8 model")
    p.add_argument("--out", default="reports/marimba-finetune")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds")
    p.add_argument("--user-seconds", type=float, default=120.0, help="the user's recordings (train + validation)")
    p.add_argument("--take-seconds", type=float, default=15.0, help="length of each recording")
    p.add_argument("--heldout", type=int, default=4, help="held-out recordings of the user's instrument")
    p.add_argument("--own", type=int, default=4, help="held-out videos in the project's own look")
    p.add_argument("--peaks-on", choices=("val", "val+replay"), default="val",
                   help="train_marimba --peaks-on: what the fine-tuned model's peak constants are tuned on")
    p.add_argument("--quick", action="store_true", help="tiny run for tests")
    args = p.parse_args(argv)
    if args.quick:
        args.user_seconds, args.take_seconds, args.heldout, args.own, args.seeds = 12.0, 4.0, 1, 1, args.seeds[:1]
    return args


def render(args: argparse.Namespace, data: Path) -> dict[str, list[Path]]:
    """The user's recordings (train / validation / held out) and the project's own look (held out)."""
    from training.datasets.marimba_eval_look import render_eval_dataset
    from training.datasets.marimba_synth import SynthConfig, render_dataset

    n_user = max(2, int(args.user_seconds // args.take_seconds))
    user = render_eval_dataset(data / "user", range(USER_SEED0, USER_SEED0 + n_user), args.take_seconds,
                               progress=True)
    from training.datasets.marimba_looks import HELDOUT_FAMILIES, LookConfig, render_look_dataset

    return {
        "families": render_look_dataset(data / "families", range(OWN_SEED0, OWN_SEED0 + 2 * args.heldout),
                                        HELDOUT_FAMILIES, LookConfig(seconds=args.take_seconds), progress=True),
        "train": user[:-1], "val": user[-1:],
        "heldout": render_eval_dataset(data / "heldout", range(HELDOUT_SEED0, HELDOUT_SEED0 + args.heldout),
                                       args.take_seconds, progress=True),
        "own": render_dataset(data / "own", range(OWN_SEED0, OWN_SEED0 + args.own),
                              SynthConfig(seconds=args.take_seconds), progress=True),
    }


def zero_shot(model: Path, folders: list[Path], calibrate: str = "auto") -> dict:
    """The model as committed through the device path, calibration found automatically ("auto") or the
    synthetic video's true corners ("truth"): per-video and combined scores."""
    from training.datasets.marimba_io import load_recording
    from training.train_marimba import device_notes, prepare

    params = NoteParams()
    spec = MarimbaSpec.from_metadata(json.loads(model.with_suffix(".json").read_text()))
    per, calibrations = {}, {}
    for f in folders:
        prep = prepare(load_recording(f, params), spec, params, calibrate=calibrate)
        notes, _ = device_notes(model, prep, spec, params)
        per[prep.name] = score(prep.reference, notes)
        calibrations[prep.name] = prep.calibration.to_dict() if prep.calibration is not None else None
    out = combine(per)
    out["calibrations"] = calibrations
    return out


def fine_tune(args: argparse.Namespace, model: Path, parts: dict[str, list[Path]], seed: int, out: Path) -> dict:
    """One train_marimba run on the user's recordings; its metrics.json."""
    cmd = [sys.executable, "-m", "training.train_marimba", "--data", *map(str, parts["train"]),
           "--val-data", *map(str, parts["val"]), "--test-data", *map(str, parts["heldout"] + parts["own"]),
           "--calibration", "auto", "--test-calibration", "auto", "--seed", str(seed), "--out", str(out),
           "--init", str(model.with_suffix(".keras")), "--max-int8-drop", "1", "--peaks-on", args.peaks_on]
    if args.quick:
        cmd += ["--epochs", "1"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SaySeeError(f"fine-tuning with seed {seed} failed: {tail[0]}")
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["wall_s"] = round(time.monotonic() - t0, 1)
    return metrics


def summary(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4), "max": round(float(v.max()), 4),
            "values": [round(float(x), 4) for x in v]}


def table(report: dict) -> str:
    z, f = report["zero_shot"], report["fine_tuned"]
    lines = [
        f"| {report['instrument']} | onset F1 (int8, device path) |",
        "|---|---|",
        f"| zero-shot: committed model, automatic calibration, {z['videos']} held-out takes | {z['f1']:.3f} |",
        f"| fine-tuned on {report['user_seconds']:.0f} s of recordings, {len(f['seeds'])} seeds: held-out "
        f"| {f['heldout_f1']['mean']:.3f} (min {f['heldout_f1']['min']:.3f}, max {f['heldout_f1']['max']:.3f}) |",
        f"| same fine-tuned models on the project's own look | {f['own_f1']['mean']:.3f} "
        f"(min {f['own_f1']['min']:.3f}) |",
        f"| the project's own look before fine-tuning | {report['own_before']['f1']:.3f} |",
        f"| fine-tuning time per seed (2 cores) | {f['wall_s']['mean']:.0f} s |",
        "",
        "| the committed model, zero-shot | onset F1, automatic calibration | with the true corners |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {v.get('auto', float('nan')):.3f} | {v.get('truth', float('nan')):.3f} |"
              for name, v in report.get("zero_shot_by_look", {}).items()]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    from training.datasets.marimba_eval_look import LOOK_FAMILY

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model)
    parts = render(args, out / "data")
    print(f"{PROG}: zero-shot on {len(parts['heldout'])} held-out takes of {LOOK_FAMILY} ...", flush=True)
    zs = zero_shot(model, parts["heldout"])
    own_before = zero_shot(model, parts["own"])
    # Calibration or model? The committed model on every held-out look, found corners against true ones.
    by_look: dict[str, dict[str, float]] = {}
    for how in ("auto", "truth"):
        for name, folders in (("own look", parts["own"]), (LOOK_FAMILY, parts["heldout"])):
            by_look.setdefault(name, {})[how] = round(zero_shot(model, folders, how)["f1"], 4)
        for f in parts["families"]:
            fam = f.name.split("-", 2)[-1]
            by_look.setdefault(fam, {}).setdefault(f"_{how}", []).append(f)
    for fam, entry in list(by_look.items()):
        for how in ("auto", "truth"):
            folders = entry.pop(f"_{how}", None)
            if folders:
                entry[how] = round(zero_shot(model, folders, how)["f1"], 4)
    runs = {}
    for seed in args.seeds:
        print(f"{PROG}: fine-tuning, seed {seed} ...", flush=True)
        runs[seed] = fine_tune(args, model, parts, seed, out / f"seed-{seed}")
    heldout = [m["by_look"][LOOK_FAMILY]["int8"]["f1"] for m in runs.values()]
    own = [m["by_look"]["project"]["int8"]["f1"] for m in runs.values()]
    report = {
        "instrument": f"{LOOK_FAMILY} (training.datasets.marimba_eval_look, 320x240, 2 poses)",
        "user_seconds": len(parts["train"] + parts["val"]) * args.take_seconds,
        "zero_shot": {k: zs[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")}
        | {"videos": len(parts["heldout"]), "calibrations": zs["calibrations"]},
        "own_before": {k: own_before[k] for k in ("precision", "recall", "f1")},
        "zero_shot_by_look": by_look,
        "fine_tuned": {"seeds": list(runs), "heldout_f1": summary(heldout), "own_f1": summary(own),
                       "epochs": [m["training_data"]["epochs"] if "training_data" in m else None for m in runs.values()],
                       "wall_s": summary([m["wall_s"] for m in runs.values()])},
        "model": str(model),
        "peaks_on": args.peaks_on,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(table(report))
    print(table(report), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_cli

    args = parse_args(argv)
    return run_cli(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
