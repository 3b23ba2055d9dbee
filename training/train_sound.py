"""`make train-sound`: train the log-mel CNN, report, and export the int8 model.

    python -m training.train_sound [--format synthetic|urbansound8k|esc50|folders]
        [--data PATH] [--out reports/sound] [--export models/sound.tflite]

Splits follow the dataset's folds (never random across folds): by default the
last fold is the held-out test set and the one before it validation. A full
cross-validation run is one call per ``--test-fold`` (see README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from device.errors import SaySeeError
from device.frontend import LogMelParams
from device.model import Model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "train-sound"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--format", default="synthetic", help="synthetic | urbansound8k | esc50 | folders")
    p.add_argument("--data", default=None, help="dataset root (not needed for synthetic)")
    p.add_argument("--out", default="reports/sound", help="report folder")
    p.add_argument("--export", default=None, help="also install the int8 model here (e.g. models/sound.tflite)")
    p.add_argument("--test-fold", type=int, default=None, help="held-out fold (default: the last)")
    p.add_argument("--val-fold", type=int, default=None, help="validation fold (default: the one before test)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--budget-min", type=float, default=13.0,
                   help="stop training (keeping the best weights) when the whole run reaches this many minutes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--crops", type=int, default=3, help="training crops per clip per pass")
    p.add_argument("--per-class", type=int, default=300, help="synthetic clips per class")
    p.add_argument("--esc50-map", action="store_true", help="ESC-50: keep only classes that map to ours")
    p.add_argument("--width", type=int, default=16, help="filters in the first conv block")
    p.add_argument("--max-int8-drop", type=float, default=2.0, help="fail export if int8 loses more points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny run for tests (few clips, 2 epochs)")
    return p.parse_args(argv)


def load(args: argparse.Namespace, params: LogMelParams):
    from training.datasets import load_dataset

    options = {}
    if args.format == "synthetic":
        options = {"n_per_class": 6 if args.quick else args.per_class, "seed": args.seed}
    elif args.format == "esc50" and args.esc50_map:
        options = {"map_to_urbansound": True}
    return load_dataset(args.format, args.data, sample_rate=params.sample_rate, **options)


def split(dataset, test_fold: int | None, val_fold: int | None):
    folds = dataset.folds()
    if len(folds) < 3:
        raise SaySeeError(f"{dataset.report.path or dataset.report.format}: need at least 3 folds, found {folds}")
    test_fold = folds[-1] if test_fold is None else test_fold
    if test_fold not in folds:
        raise SaySeeError(f"--test-fold {test_fold}: no such fold (folds are {folds})")
    if val_fold is None:
        val_fold = folds[folds.index(test_fold) - 1]
    if val_fold not in folds or val_fold == test_fold:
        raise SaySeeError(f"--val-fold {val_fold}: must be a fold other than the test fold ({folds})")
    parts = {"train": [], "val": [], "test": []}
    for c in dataset.clips:
        parts["test" if c.fold == test_fold else "val" if c.fold == val_fold else "train"].append(c)
    for name, clips in parts.items():
        if not clips:
            raise SaySeeError(f"{dataset.report.path or dataset.report.format}: the {name} split is empty")
    return parts, {"test_fold": test_fold, "val_fold": val_fold,
                   "train_folds": [f for f in folds if f not in (test_fold, val_fold)],
                   "clips": {k: len(v) for k, v in parts.items()}}


def fit(model, xtr, ytr, xva, yva, epochs: int, batch_size: int, seed: int, deadline: float | None = None):
    import keras

    class Deadline(keras.callbacks.Callback):
        """Ends training when the time budget is spent; EarlyStopping still restores the best epoch."""

        def on_epoch_end(self, epoch, logs=None):
            if deadline is not None and time.monotonic() > deadline:
                print(f"{PROG}: time budget reached after epoch {epoch + 1}; keeping the best epoch", flush=True)
                self.model.stop_training = True

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=6, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-4),
        Deadline(),
    ]
    hist = model.fit(xtr, ytr, validation_data=(xva, yva), epochs=epochs, batch_size=batch_size,
                     callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2, shuffle=True)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def evaluate(predict_batch, clips, labels, params):
    from training.plots import classification_metrics
    from training.sound_windows import predict_clips

    index = {n: i for i, n in enumerate(labels)}
    probs = predict_clips(predict_batch, clips, params)
    y_true = np.array([index[c.label] for c in clips])
    return classification_metrics(y_true, probs.argmax(axis=1), labels), y_true, probs


def train(args: argparse.Namespace) -> dict:
    from training.augment import augment_waveform, spec_augment
    from training.plots import plot_confusion, plot_curves
    from training.sound_model import MAX_MACS, MAX_PARAMS, build_sound_model
    from training.sound_windows import training_windows
    from export.complexity import complexity
    from export.int8 import ExportError, convert_int8
    from export.metadata import install_model, write_metadata

    params = LogMelParams()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    dataset = load(args, params)
    labels = list(dataset.labels)
    parts, split_info = split(dataset, args.test_fold, args.val_fold)
    print(f"{PROG}: {len(dataset.clips)} clips, {len(labels)} classes, split {split_info['clips']}", flush=True)

    rng = np.random.default_rng(args.seed)
    xtr, ytr = training_windows(parts["train"], labels, params, rng, crops_per_clip=args.crops,
                                augment=lambda x, r: augment_waveform(x, r, params.sample_rate), spec_augment=spec_augment)
    xva, yva = training_windows(parts["val"], labels, params, np.random.default_rng(args.seed + 1), crops_per_clip=1)

    model = build_sound_model(params.input_shape, len(labels), width=args.width)
    cx = complexity(model)
    if cx["params"] > MAX_PARAMS or cx["macs"] > MAX_MACS:
        raise SaySeeError(f"model too big for the box: {cx} (limits {MAX_PARAMS} params, {MAX_MACS} MACs)")
    # Evaluation and export take about a minute after training; the deadline leaves room for them.
    deadline = t0 + 60 * args.budget_min - 90
    history = fit(model, xtr, ytr, xva, yva, 2 if args.quick else args.epochs, args.batch_size, args.seed, deadline)
    model.save(out / "sound.keras")
    plot_curves(history, out / "curves.png", "sound classifier")

    float_metrics, y_true, _ = evaluate(lambda x: model.predict_on_batch(x), parts["test"], labels, params)
    plot_confusion(np.array(float_metrics["confusion"]), labels, out / "confusion.png",
                   f"float, fold {split_info['test_fold']}: {100 * float_metrics['accuracy']:.1f}%")

    # int8: calibrate on training windows, then evaluate through the device's own loader.
    tfl = convert_int8(model, xtr, out / "sound.tflite", seed=args.seed)
    meta = {
        "kind": "sound",
        "labels": labels,
        "frontend_kind": "logmel",
        "frontend": params.to_dict(),
        "input_shape": list(params.input_shape),
        "input_dtype": "int8",
        "output": "softmax probabilities, one per label",
        "complexity": cx,
        "training_data": {"format": dataset.report.format, "path": dataset.report.path,
                          "description": dataset.description, "sha256": dataset.sha256(),
                          "clips": len(dataset.clips), "skipped": len(dataset.report.skipped),
                          "split": split_info},
    }
    write_metadata(tfl, meta)
    int8_model = Model(tfl, expected_frontend=params)
    int8_metrics, _, _ = evaluate(int8_model.predict_many, parts["test"], labels, params)
    plot_confusion(np.array(int8_metrics["confusion"]), labels, out / "confusion_int8.png",
                   f"int8, fold {split_info['test_fold']}: {100 * int8_metrics['accuracy']:.1f}%")
    drop = 100 * (float_metrics["accuracy"] - int8_metrics["accuracy"])
    meta["metrics"] = {"float": float_metrics, "int8": int8_metrics, "int8_drop_points": drop,
                       "test_clips": len(parts["test"])}
    write_metadata(tfl, meta)

    report = {"split": split_info, "complexity": cx, "history": history, "float": float_metrics,
              "int8": int8_metrics, "int8_drop_points": drop, "dataset": dataset.report.to_dict(),
              "seconds": round(time.monotonic() - t0, 1), "model_bytes": tfl.stat().st_size}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{PROG}: test accuracy float {100 * float_metrics['accuracy']:.1f}%  int8 "
          f"{100 * int8_metrics['accuracy']:.1f}%  ({cx['params']} params, {cx['macs'] / 1e6:.1f} M MACs, "
          f"{tfl.stat().st_size} bytes)  report: {out}/", flush=True)
    if drop > args.max_int8_drop:
        raise ExportError(f"{tfl}: int8 accuracy is {drop:.1f} points below float (limit {args.max_int8_drop}); "
                          "not exported")
    if args.export:
        dest = install_model(tfl, args.export, meta)
        print(f"{PROG}: installed {dest} and {dest.with_suffix('.json')}")
    return report


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_cli

    args = parse_args(argv)
    return run_cli(PROG, lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
