"""`make train-marimba`: train the camera -> notes CNN, report, and export the int8 model.

    python -m training.train_marimba [--data DIR ...] [--test-data DIR ...] [--val-data DIR ...]
        --out reports/marimba [--export models/marimba.tflite] [--init M.keras | --from-scratch] [--quick]

Without ``--data`` it renders synthetic videos (training.datasets.marimba_synth)
into dataset folders under ``<out>/data`` and reads them back through the same
loader as real recordings (``python -m device record-marimba``), so a real
recording trains with the same command. Targets come from each recording's
audio (``device.frontend.note_targets``), never from labels.

Splits are by video: synthetic training, validation and held-out test videos
use disjoint seeds, so different scores, camera poses, lighting and mallets.
With ``--data`` you choose the held-out recordings (``--test-data``) and the
validation recordings (``--val-data``; early stopping and the peak picker are
tuned on them). Left out, the last recording (after sorting) is held out and
the one before it validates, and the run says so. A recorded run starts from
the committed pretrained model (``models/marimba.keras``, trained on the wide
generated world) unless ``--from-scratch``, and rehearses a few videos of the
project's own look (``--replay-videos``); the epochs are sized for the data
(minutes of video) and early stopping keeps the best validation epoch. One
seed gives one answer: TensorFlow op determinism, seeded shuffles and seeded
augmentation (``--seed``).

Report (``--out``): curves.png (loss), piano_roll.png (a held-out video:
predicted levels, true and detected notes), metrics.json (mir_eval note-onset
precision/recall/F1, 50 ms tolerance, pitch must match, for the float Keras
model and for the int8 TFLite model run through the device path
``device.marimba.pipeline.MarimbaPipeline`` + ``device.model.Model``; the float/int8
parity of the raw outputs), marimba.keras, marimba.tflite + .json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.atomic import write_atomic
from device.errors import SaySeeError
from device.frontend import NoteParams
from device.marimba.rectify import Calibration
from device.marimba.pipeline import (
    MarimbaPipeline,
    MarimbaSpec,
    NoteOn,
    PeakParams,
    audio_events,
    events_to_notes,
    levels_to_events,
    preprocess_frames,
    space_time_image,
    window_stacks,
)
from device.model import Model
from training.interrupt import stop_on_ctrl_c
from training.scoring import ONSET_TOLERANCE_S, combine
from training.scoring import score_notes as score  # the name the trainer's callers and tests use

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "train-marimba"
TRAIN_SEED0, VAL_SEED0, TEST_SEED0 = 1000, 5000, 9000
# The own-look video a fine-tune's peak constants may also be tuned on (--peaks-on val+replay): a range no
# training run draws from (replay videos are TRAIN_SEED0 + 100 * seed + i, training ones TRAIN_SEED0 + i).
PEAKS_SEED0 = 7000
PRETRAINED = Path(__file__).resolve().parent.parent / "models" / "marimba.keras"
FINE_TUNE_STEPS = 1500  # minutes of video are a few thousand windows: ~25 passes at batch 64
MAX_EPOCHS = 60
SYNTHETIC_EPOCHS = 16  # the wide world's validation loss still fell at 10 (early stopping keeps the best)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=None, help="dataset folder(s) (recordings); default: synthetic")
    p.add_argument("--test-data", nargs="+", default=None, help="held-out dataset folder(s) for the report")
    p.add_argument("--val-data", nargs="+", default=None,
                   help="validation recording(s): early stopping and peak-picker tuning")
    p.add_argument("--init", default=None,
                   help=f"start from these Keras weights (default with --data: {PRETRAINED})")
    p.add_argument("--from-scratch", action="store_true", help="with --data: don't start from the pretrained model")
    p.add_argument("--calibration", choices=("truth", "auto"), default="truth",
                   help="training and validation videos: true corners when synthetic (else calibration.json / "
                        "automatic), or automatic only (what a user's recordings get)")
    p.add_argument("--test-calibration", choices=("auto", "truth"), default="auto",
                   help="held-out videos: found from motion at the audio's notes (auto, what a box does) or, for "
                        "synthetic videos, their true corners")
    p.add_argument("--replay-videos", type=int, default=8,
                   help="with --data: videos of the project's own look mixed into training (0: none)")
    p.add_argument("--peaks-on", choices=("val", "val+replay"), default="val",
                   help="with --data: tune the peak picker on the validation recording(s) only, or on them and one "
                        "unseen video of the project's own look (the mean of the two looks' F1): one set of "
                        "constants that serves both")
    p.add_argument("--no-augment", action="store_true", help="train on the windows as recorded")
    p.add_argument("--patience", type=int, default=4, help="early stopping: epochs without validation improvement")
    p.add_argument("--out", default="reports/marimba", help="report folder")
    p.add_argument("--export", default=None, help="also install the int8 model here (e.g. models/marimba.tflite)")
    p.add_argument("--train-videos", type=int, default=96, help="synthetic training videos (all looks)")
    p.add_argument("--own-look-share", type=float, default=0.3,
                   help="share of the training videos in the project's own look (the rest: many looks)")
    p.add_argument("--val-videos", type=int, default=4, help="synthetic validation videos")
    p.add_argument("--test-videos", type=int, default=4, help="held-out videos in the project's own look")
    p.add_argument("--heldout-videos", type=int, default=6, help="held-out videos of look families never trained on")
    p.add_argument("--eval-videos", type=int, default=4, help="held-out videos of the evaluation instrument")
    p.add_argument("--seconds", type=float, default=12.0, help="length of each synthetic video")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default: {SYNTHETIC_EPOCHS} synthetic; recorded data: sized to about "
                        f"{FINE_TUNE_STEPS} steps, at most {MAX_EPOCHS})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=16, help="filters in the first conv layer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-int8-drop", type=float, default=0.05, help="fail export if int8 onset F1 drops more")
    p.add_argument("--quick", action="store_true", help="tiny run for tests (few short videos, 1 epoch)")
    args = p.parse_args(argv)
    if (args.test_data or args.val_data) and not args.data:
        # Otherwise the run trains on synthetic videos and reports a held-out figure the user never asked for.
        p.error("--test-data / --val-data choose among your recordings: give the training ones with --data too")
    if args.quick:
        args.train_videos, args.val_videos, args.test_videos = 2, 1, 1
        args.heldout_videos, args.eval_videos, args.replay_videos = 1, 0, min(args.replay_videos, 1)
        args.seconds, args.width = 4.0, 4
        args.epochs = 1 if args.epochs is None else args.epochs
        args.from_scratch = args.from_scratch or not args.init  # the tiny width can't load the real weights
    return args


# ------------------------------------------------------------------ data


@dataclass
class Prepared:
    """One recording ready for training and scoring."""

    name: str
    rec: Any  # training.datasets.marimba_io.Recording
    frames: np.ndarray  # (N, h, w) uint8, cropped and resized
    windows: np.ndarray  # indices of usable windows (audio fully inside the recording)
    levels: np.ndarray  # (len(windows), notes) targets
    weights: np.ndarray  # (len(windows), notes) loss weights (onsets count more)
    amplitudes: np.ndarray  # (len(windows), notes) linear note amplitudes
    times: np.ndarray  # (len(windows),) start time of each window
    reference: list[tuple[float, int, int]]  # notes to score against (onset, midi, velocity)
    reference_source: str  # "ground truth" | "audio"
    calibration: Calibration | None = None  # where the bars are (None: the model's default view)
    calibration_source: str = "default"  # "truth" | "file" | "auto" | "default"


def truth_calibration(rec) -> Calibration | None:
    """The true bar-row corners of a synthetic video (from its manifest), else None."""
    cam = (rec.manifest.get("synthetic") or {}).get("camera") or {}
    h, w = rec.frame_size
    if cam.get("corners") is not None:
        # Those renderers put pixel centres at whole numbers; a Calibration's pixel i spans i..i+1.
        return Calibration.from_pixels(np.asarray(cam["corners"], dtype=float) + 0.5, (h, w), source="manual")
    if {"scale", "rotation_deg", "offset_px"} <= set(cam):  # the project's own renderer
        from training.datasets.marimba_synth import SynthConfig, true_corners

        return Calibration.from_pixels(true_corners(cam, SynthConfig(height=h, width=w)), (h, w), source="manual")
    return None


def recording_calibration(rec, spec: MarimbaSpec, params: NoteParams, how: str,
                          notes: list[tuple[float, int, int]] | None = None) -> tuple[Calibration, str]:
    """Where the bars are in a recording: ``how`` = "truth" (a synthetic video's true corners when it has
    them), else its calibration.json, else found automatically from the motion at the audio's notes."""
    if how == "truth":
        cal = truth_calibration(rec)
        if cal is not None:
            return cal, "truth"
    from device.marimba.calibrate import CALIBRATION_FILE

    path = rec.folder / CALIBRATION_FILE
    if how != "auto-only" and path.is_file():
        return Calibration.load(path), "file"
    index = {n: j for j, n in enumerate(spec.notes)}
    onsets = [(t, index[m]) for t, m, _ in (notes or []) if m in index]
    # The heat-map estimate refined by the pretrained int8 model (the device's calibrate-marimba does the same).
    from device.marimba.calibrate_refine import calibrate_with_model, pretrained_model

    model = pretrained_model(PRETRAINED.with_suffix(".tflite"), spec.notes)
    return calibrate_with_model(rec.frames, rec.frame_times, onsets, model=model, spec=spec,
                                what=str(rec.folder))[0], "auto"


def prepare(rec, spec: MarimbaSpec, params: NoteParams, calibrate: str = "truth") -> Prepared:
    from training.datasets.marimba_io import usable_windows
    from training.marimba_model import onset_weights

    from device.marimba.labeller import HarmonicLabeller

    # Targets and heard notes come from the marimba-physics labeller (templates fitted to this recording):
    # a low strike's tuned 4x partial must not teach the model a note two octaves up.
    labeller = HarmonicLabeller(params)
    heard = [(e.t, e.note, e.velocity) for e in audio_events(rec.audio, len(rec.frames), spec, params,
                                                              rec.frame_times, labeller=labeller)
             if isinstance(e, NoteOn)]
    reference, source = (list(rec.notes), "ground truth") if rec.notes is not None else (heard, "audio")
    if calibrate == "default":
        calibration, cal_source = None, "default"
    else:
        # Auto calibration hears the notes from the audio, never from ground truth: as on a user's recording.
        calibration, cal_source = recording_calibration(rec, spec, params, calibrate, heard)
    frames = preprocess_frames(rec.frames, spec, calibration)
    # The labeller was fitted by audio_events above: fitting it again would take as long for the same templates.
    amps_all = labeller.note_targets(rec.audio, len(rec.frames), rec.frame_times, fitted=True)
    win = usable_windows(rec, params)
    amps = amps_all[win]
    levels = spec.target.forward(amps)
    return Prepared(rec.name, rec, frames, win, levels, onset_weights(levels), amps, rec.frame_times[win],
                    reference, source, calibration, cal_source)


def synthetic_folders(args: argparse.Namespace, out: Path) -> dict[str, list[Path]]:
    """The generated world: many looks (marimba_looks' training families) plus the project's own look.

    Held out for the report: the project's look (other seeds), whole look families never trained on
    (marimba_looks.HELDOUT_FAMILIES) and, when present, the evaluation instrument drawn by code that
    shares nothing with the training renderers (training.datasets.marimba_eval_look).
    """
    from training.datasets import marimba_looks as looks
    from training.datasets.marimba_synth import RENDERER_VERSION, SynthConfig, render_dataset

    cfg, lcfg = SynthConfig(seconds=args.seconds), looks.LookConfig(seconds=args.seconds)
    own, world = (out / "data" / f"v{RENDERER_VERSION}-{args.seconds:g}s",
                  out / "data" / f"looks-v{looks.RENDERER_VERSION}-{args.seconds:g}s")
    s0 = args.seed * 100

    def seeds(seed0: int, n: int, skip: int = 0) -> list[int]:
        return [seed0 + s0 + skip + i for i in range(max(n, 0))]

    n_own = max(1, round(args.train_videos * args.own_look_share))
    n_own_val = 1 if args.val_videos > 1 else 0
    folders = {
        "train": render_dataset(own / "train", seeds(TRAIN_SEED0, n_own), cfg, progress=True)
        + looks.render_look_dataset(world / "train", seeds(TRAIN_SEED0, args.train_videos - n_own),
                                    looks.TRAIN_FAMILIES, lcfg, progress=True),
        "val": render_dataset(own / "val", seeds(VAL_SEED0, n_own_val), cfg, progress=True)
        + looks.render_look_dataset(world / "val", seeds(VAL_SEED0, args.val_videos - n_own_val),
                                    looks.TRAIN_FAMILIES, lcfg, progress=True),
        "test": render_dataset(own / "test", seeds(TEST_SEED0, args.test_videos), cfg, progress=True)
        + looks.render_look_dataset(world / "heldout", seeds(TEST_SEED0, args.heldout_videos),
                                    looks.HELDOUT_FAMILIES, lcfg, progress=True),
    }
    folders["test"] += eval_look_folders(args, out)
    return folders


def replay_folders(args: argparse.Namespace, out: Path, extra: int = 0) -> list[Path]:
    """A few videos of the project's own look mixed into fine-tuning, so learning your instrument does not
    unlearn the rest (rehearsal); their true corners are known, so they add no calibration error.
    ``extra`` more after them (never trained on): the peak picker's own-look validation."""
    from training.datasets.marimba_synth import RENDERER_VERSION, SynthConfig, render_dataset

    seconds = 12.0
    return render_dataset(out / "data" / f"replay-v{RENDERER_VERSION}-{seconds:g}s",
                          [TRAIN_SEED0 + args.seed * 100 + i for i in range(args.replay_videos)]
                          + [PEAKS_SEED0 + args.seed * 100 + i for i in range(extra)],
                          SynthConfig(seconds=seconds), progress=True)


def eval_look_folders(args: argparse.Namespace, out: Path) -> list[Path]:
    """Videos of the evaluation instrument (its own renderer), if that module is installed."""
    if args.eval_videos <= 0:
        return []
    try:
        from training.datasets import marimba_eval_look as ev
    except ImportError:
        return []
    return ev.render_eval_dataset(out / "data" / f"eval-look-v{ev.RENDERER_VERSION}-{args.seconds:g}s",
                             [TEST_SEED0 + args.seed * 100 + i for i in range(args.eval_videos)],
                             seconds=args.seconds, progress=True)


def recorded_folders(args: argparse.Namespace) -> dict[str, list[Path]]:
    """train / val / test recordings: as named by --test-data / --val-data, else the last ones by name."""
    from device.errors import InputFileError
    from training.datasets.marimba_io import find_recordings

    def found(paths) -> list[Path]:
        return sorted(set(find_recordings(paths))) if paths else []

    test, val = found(args.test_data), found(args.val_data)
    if set(test) & set(val):
        raise InputFileError(f"{sorted(set(test) & set(val))[0]}: named both as --test-data and --val-data")
    folders = [f for f in found(args.data) if f not in test and f not in val]
    if not test:
        if len(folders) < 2:
            raise InputFileError(f"{args.data[0]}: need at least 2 recordings (one held out), or --test-data")
        test, folders = folders[-1:], folders[:-1]
        print(f"{PROG}: no --test-data: holding out {test[0].name} (the last by name)", flush=True)
    if not val and len(folders) >= 2:
        val, folders = folders[-1:], folders[:-1]
        print(f"{PROG}: no --val-data: validating on {val[0].name} (the last training recording by name)",
              flush=True)
    if not folders:
        raise InputFileError(f"{args.data[0]}: no recordings left to train on after the held-out and validation ones")
    return {"train": folders, "val": val, "test": test}


def training_epochs(args: argparse.Namespace, train: list["Prepared"], synthetic: bool) -> int:
    """Epochs: as given; SYNTHETIC_EPOCHS on the generated world; else sized to about FINE_TUNE_STEPS steps."""
    if args.epochs is not None:
        return int(args.epochs)
    if synthetic:
        return SYNTHETIC_EPOCHS
    per_epoch = max(1, int(np.ceil(sum(len(p.windows) for p in train) / args.batch_size)))
    return int(np.clip(round(FINE_TUNE_STEPS / per_epoch), 3, MAX_EPOCHS))


def deterministic(seed: int) -> None:
    """One seed, one answer: seeded Python/NumPy/TF RNGs and deterministic TF kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def load_parts(folders: dict[str, list[Path]], spec: MarimbaSpec, params: NoteParams, test_calibration: str = "auto",
               calibration: str = "truth") -> tuple[dict[str, list[Prepared]], tuple[int, int]]:
    """Load and rectify every recording. Frame sizes may differ: each is rectified to the canonical view.

    Training and validation videos use their true corners when synthetic (else calibration.json or the
    automatic calibration); held-out videos use ``test_calibration`` ("auto": what a user's box would find).
    """
    from tqdm import tqdm

    from training.datasets.marimba_io import load_recording

    frame_size = None
    parts: dict[str, list[Prepared]] = {}
    for part, paths in folders.items():
        parts[part] = []
        for path in tqdm(paths, desc=f"load {part}", unit="video", leave=False):
            rec = load_recording(path, params)
            frame_size = frame_size or rec.frame_size
            parts[part].append(prepare(rec, spec, params, test_calibration if part == "test" else calibration))
    return parts, frame_size


def data_hash(folders: dict[str, list[Path]]) -> str:
    """sha256 over the manifests and audio of every recording used (cheap, content-based)."""
    h = hashlib.sha256()
    for part in sorted(folders):
        for f in folders[part]:
            h.update(part.encode())
            for name in ("manifest.json", "audio.wav"):
                p = Path(f) / name
                if p.is_file():
                    h.update(p.read_bytes())
    return h.hexdigest()


def inputs(prep: Prepared, spec: MarimbaSpec, idx: np.ndarray | None = None,
           augment: np.random.Generator | None = None) -> np.ndarray:
    """Model inputs (M, h, w, 3) for the usable windows (or a subset), augmented when given a generator."""
    from training.marimba_augment import augment_stacks

    win = prep.windows if idx is None else prep.windows[idx]
    stacks = window_stacks(prep.frames, spec.frames_per_window)[win]
    return space_time_image(augment_stacks(stacks, augment) if augment is not None else stacks, spec)


def make_batches(preps: list[Prepared], spec: MarimbaSpec, batch_size: int, shuffle: bool, seed: int,
                 augment: bool = False):
    import keras

    index = np.concatenate([np.stack([np.full(len(p.windows), k), np.arange(len(p.windows))], 1)
                            for k, p in enumerate(preps)])

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.epoch = -1
            self.order = np.arange(len(index))
            self.on_epoch_end()

        def __len__(self):
            return int(np.ceil(len(index) / batch_size))

        def on_epoch_end(self):
            self.epoch += 1
            if shuffle:
                self.rng.shuffle(self.order)

        def __getitem__(self, b):
            sel = index[self.order[b * batch_size : (b + 1) * batch_size]]
            # Seeded by (seed, epoch, batch), not by call order: the same batch is drawn the same way
            # however Keras schedules the calls.
            aug = np.random.default_rng([seed, 1, self.epoch, b]) if augment else None
            xs, ys = [], []
            for k in np.unique(sel[:, 0]):
                rows = sel[sel[:, 0] == k, 1]
                xs.append(inputs(preps[k], spec, rows, aug))
                ys.append(np.concatenate([preps[k].levels[rows], preps[k].weights[rows]], axis=1))
            return np.concatenate(xs), np.concatenate(ys)

    return Batches()


def predict_keras(model, prep: Prepared, spec: MarimbaSpec, batch_size: int = 256) -> np.ndarray:
    out = [np.asarray(model.predict_on_batch(inputs(prep, spec, np.arange(s, min(s + batch_size, len(prep.windows))))))
           for s in range(0, len(prep.windows), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(spec.notes)), np.float32)


def keras_notes(levels: np.ndarray, prep: Prepared, spec: MarimbaSpec) -> list[tuple[float, float, int, int]]:
    return events_to_notes(levels_to_events(levels, prep.times, spec.notes, spec.peaks, spec.target))


def device_notes(tflite: Path, prep: Prepared, spec: MarimbaSpec, params: NoteParams
                 ) -> tuple[list[tuple[float, float, int, int]], np.ndarray]:
    """The int8 model through the device path: Frames -> MarimbaPipeline -> events (and its raw outputs)."""
    from device.hardware.base import Frame

    pipe = MarimbaPipeline(Model(tflite, expected_frontend=params), spec=spec, piano_roll_steps=len(prep.rec.frames),
                           calibration=prep.calibration)
    frames = (Frame(img, i, float(t)) for i, (img, t) in enumerate(zip(prep.rec.frames, prep.rec.frame_times)))
    events = pipe.run(frames)
    return events_to_notes(events), pipe.piano_roll


def tune_peaks(preds: list[np.ndarray], preps: list[Prepared], spec: MarimbaSpec,
               quick: bool = False, by_look: bool = False) -> tuple[PeakParams, dict]:
    """Grid-search threshold / rise / masking on validation predictions.

    For each setting the onset offset is first calibrated (median timing error
    of the matched notes), then the F1 is measured with it: over all videos, or
    (``by_look``) the mean of each look's F1, so a user's recording and the
    project's own look count alike whatever their lengths.
    """
    import itertools

    def run(peaks: PeakParams) -> list[dict]:
        s = spec.replace(peaks=peaks)
        return [score(p.reference, keras_notes(y, p, s)) for y, p in zip(preds, preps)]

    looks = [look_of(p) for p in preps] if by_look else []

    def objective(results: list[dict]) -> float:
        if not by_look:
            return combine(dict(enumerate(results)))["f1"]
        return float(np.mean([combine({i: r for i, (r, g) in enumerate(zip(results, looks)) if g == look})["f1"]
                              for look in sorted(set(looks))]))

    best, best_f1 = spec.peaks, -1.0
    # The grid reaches well above the project's own look's choice (0.3-0.5): on an instrument the model was
    # not trained on, its outputs are high away from strikes too, and a grid that stops at 0.5 left the
    # validation take no way to say so (fine-tuning on the evaluation instrument picked 0.5 / 0.2, the corner).
    grid = ([(0.3, 0.1, 0.25)] if quick else
            itertools.product((0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8), (0.05, 0.1, 0.15, 0.2, 0.3),
                              (0.15, 0.25, 2.0)))
    for thr, rise, margin in grid:
        peaks = PeakParams(**{**spec.peaks.to_dict(), "threshold": thr, "min_rise": rise, "mask_margin": margin,
                              "onset_offset_s": 0.0})
        errors = [e for e in (r["onset_error_ms_mean"] for r in run(peaks)) if e is not None]
        offset = round(-float(np.median(errors)) / 1000, 4) if errors else 0.0
        peaks = PeakParams(**{**peaks.to_dict(), "onset_offset_s": offset})
        f1 = objective(run(peaks))
        if f1 > best_f1 + 1e-9:
            best, best_f1 = peaks, f1
    return best, {"validation_f1": best_f1, "peaks": best.to_dict(), "videos": [p.name for p in preps],
                  "objective": "mean of each look's F1" if by_look else "F1 over the videos"}


def calibrate_velocity(preps: list[Prepared], spec: MarimbaSpec) -> MarimbaSpec:
    """velocity_ref = median peak window amplitude / (velocity/127)^exponent over ground-truth notes."""
    ratios = []
    index = {n: j for j, n in enumerate(spec.notes)}
    for p in preps:
        if p.reference_source != "ground truth":
            continue
        for onset, midi, vel in p.reference:
            j = index.get(midi)
            near = np.flatnonzero(np.abs(p.times - onset) <= 0.06)
            if j is None or not len(near) or vel <= 0:
                continue
            ratios.append(p.amplitudes[near, j].max() / (vel / 127.0) ** spec.target.velocity_exponent)
    if not ratios:
        return spec
    target = type(spec.target)(**{**spec.target.to_dict(), "velocity_ref": round(float(np.median(ratios)), 5)})
    return spec.replace(target=target)


# ---------------------------------------------------------------- plots


def plot_piano_roll(prep: Prepared, levels: np.ndarray, float_notes, int8_notes, spec: MarimbaSpec,
                    out: Path, title: str) -> Path:
    from training.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(14, 7), sharex=True)
    t = prep.times
    extent = (t[0], t[-1] + 1 / spec.fps, -0.5, len(spec.notes) - 0.5) if len(t) else None
    index = {n: j for j, n in enumerate(spec.notes)}
    for ax, data, name in ((axes[0], prep.levels, "target (from audio)"), (axes[1], levels, "predicted (float)")):
        ax.imshow(np.clip(data, 0, 1).T, aspect="auto", origin="lower", cmap="magma", extent=extent,
                  interpolation="nearest", vmin=0, vmax=1)
        ax.set_yticks(range(len(spec.notes)), spec.labels, fontsize=7)
        ax.set_ylabel(name)
        ref = [(o, index[m]) for o, m, _ in prep.reference if m in index]
        if ref:
            ax.scatter(*zip(*ref), s=40, facecolors="none", edgecolors="cyan", label=f"true ({prep.reference_source})")
        fl = [(o, index[m]) for o, _, m, _ in float_notes if m in index]
        if fl:
            ax.scatter(*zip(*fl), s=18, marker="x", color="lime", label="float model")
        i8 = [(o, index[m]) for o, _, m, _ in int8_notes if m in index]
        if i8:
            ax.scatter(*zip(*i8), s=18, marker="+", color="white", label="int8 device path")
    axes[0].legend(loc="upper right", fontsize=7, facecolor="gray")
    axes[1].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# ---------------------------------------------------------------- train


def fit(model, train, val, spec: MarimbaSpec, args: argparse.Namespace, epochs: int, lr0: float
        ) -> dict[str, list[float]]:
    """Adam + cosine decay; with validation data, early stopping restores the best validation epoch."""
    import keras

    from training.marimba_model import weighted_mse

    steps = int(np.ceil(sum(len(p.windows) for p in train) / args.batch_size)) * epochs
    lr = keras.optimizers.schedules.CosineDecay(lr0, decay_steps=max(steps, 1), alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=weighted_mse(len(spec.notes)))
    tr = make_batches(train, spec, args.batch_size, True, args.seed, augment=not args.no_augment)
    va = make_batches(val, spec, 256, False, args.seed) if val else None
    callbacks = ([keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                restore_best_weights=True, verbose=1)] if val else [])
    callbacks.append(stop_on_ctrl_c(PROG))
    hist = model.fit(tr, validation_data=va, epochs=epochs, callbacks=callbacks,
                     verbose=1 if sys.stdout.isatty() else 2)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def initial_model(args: argparse.Namespace, spec: MarimbaSpec, synthetic: bool):
    """(model, where it came from): the --init / pretrained weights for recorded data, else a fresh CNN."""
    import keras

    from training.marimba_model import build_marimba_model

    init = Path(args.init) if args.init else (PRETRAINED if not synthetic and not args.from_scratch else None)
    if init is None:
        return build_marimba_model(spec.input_shape, len(spec.notes), width=args.width), "scratch"
    if not init.is_file():
        raise SaySeeError(f"{init}: no pretrained marimba model (make models writes it; or --from-scratch)")
    try:
        model = keras.models.load_model(init, compile=False)
    except Exception as e:  # noqa: BLE001 - any unreadable Keras file is one line
        raise SaySeeError(f"{init}: not a readable Keras model ({type(e).__name__}: {e})") from None
    if tuple(model.input_shape[1:]) != spec.input_shape or model.output_shape[-1] != len(spec.notes):
        raise SaySeeError(f"{init}: input {tuple(model.input_shape[1:])} / {model.output_shape[-1]} notes, "
                          f"but this run needs {spec.input_shape} / {len(spec.notes)}")
    return model, str(init)


def convert(model, representative: np.ndarray, path: Path, seed: int) -> Path:
    """Full-integer int8 TFLite (export.int8), calibrated on training windows."""
    from export.int8 import convert_int8

    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the traced signature
        return convert_int8(model, representative, path, seed=seed)


def parity(float_levels: list[np.ndarray], int8_levels: list[np.ndarray]) -> dict[str, float]:
    a = np.concatenate([f.reshape(-1) for f in float_levels])
    b = np.concatenate([i.reshape(-1) for i in int8_levels])
    return {"max_abs_diff": float(np.max(np.abs(a - b))), "mean_abs_diff": float(np.mean(np.abs(a - b))),
            "correlation": float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 1.0}


def train(args: argparse.Namespace) -> dict:
    from export.complexity import complexity
    from export.int8 import ExportError
    from export.metadata import install_model, write_metadata
    from training.marimba_model import MAX_MACS, MAX_PARAMS
    from training.plots import plot_curves

    t0 = time.monotonic()
    params = NoteParams()
    spec = MarimbaSpec(notes=params.notes, fps=params.fps, frames_per_window=params.frames_per_window)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    synthetic = not args.data
    joint_peaks = args.peaks_on == "val+replay"
    if joint_peaks and (synthetic or args.replay_videos <= 0):
        raise SaySeeError("--peaks-on val+replay needs --data and --replay-videos above 0 (the own-look videos)")
    folders = synthetic_folders(args, out) if synthetic else recorded_folders(args)
    if not synthetic and args.replay_videos > 0:
        replay = replay_folders(args, out, extra=1 if joint_peaks else 0)
        folders["train"] = folders["train"] + replay[: args.replay_videos]
        if joint_peaks:
            folders["peaks"] = replay[args.replay_videos:]
    parts, frame_size = load_parts(folders, spec, params, args.test_calibration, args.calibration)
    peak_extra = parts.pop("peaks", [])
    spec = spec.replace(frame_size=frame_size)
    spec = calibrate_velocity(parts["train"], spec)
    n_windows = {k: int(sum(len(p.windows) for p in v)) for k, v in parts.items()}
    print(f"{PROG}: videos train {len(parts['train'])} / val {len(parts['val'])} / test {len(parts['test'])}, "
          f"windows {n_windows}, frame {frame_size[1]}x{frame_size[0]} -> input {spec.input_shape}", flush=True)
    t_data = time.monotonic() - t0

    deterministic(args.seed)
    model, started_from = initial_model(args, spec, synthetic)
    cx = complexity(model)
    if cx["params"] > MAX_PARAMS or cx["macs"] > MAX_MACS:
        raise SaySeeError(f"model too big for the box: {cx} (limits {MAX_PARAMS} params, {MAX_MACS} MACs)")
    epochs = training_epochs(args, parts["train"], synthetic)
    print(f"{PROG}: start {started_from}, up to {epochs} epochs, seed {args.seed}", flush=True)
    history = fit(model, parts["train"], parts["val"], spec, args, epochs,
                  lr0=2e-3 if started_from == "scratch" else 5e-4)
    t_fit = time.monotonic() - t0 - t_data
    model.save(out / "marimba.keras")
    args.epochs_run, args.started_from = len(history.get("loss", [])), started_from
    plot_curves(history, out / "curves.png", "marimba CNN (onset-weighted MSE on note levels)")

    # The peak picker is tuned on the validation videos (float predictions), never on the test videos.
    tune_on = (parts["val"] or parts["train"][-1:]) + peak_extra
    peaks, tuning = tune_peaks([predict_keras(model, p, spec) for p in tune_on], tune_on, spec, args.quick,
                               by_look=bool(peak_extra))
    spec = spec.replace(peaks=peaks)

    test = parts["test"]
    float_levels = [predict_keras(model, p, spec) for p in test]
    float_notes = [keras_notes(y, p, spec) for y, p in zip(float_levels, test)]
    float_metrics = combine({p.name: score(p.reference, n) for p, n in zip(test, float_notes)})
    # The audio-target extractor (same peak picker, its default settings) against the ground truth.
    audio_spec = spec.replace(peaks=PeakParams())
    from device.marimba.labeller import HarmonicLabeller

    audio_metrics = combine({p.name: score(p.rec.notes, events_to_notes(audio_events(
        p.rec.audio, len(p.rec.frames), audio_spec, params, p.rec.frame_times, labeller=HarmonicLabeller(params))))
        for p in test if p.rec.notes is not None})

    # int8: calibrate on training windows, then evaluate through the device's own path.
    rng = np.random.default_rng(args.seed)
    rep = np.concatenate([inputs(p, spec, np.sort(rng.choice(len(p.windows), min(len(p.windows), 40), replace=False)))
                          for p in parts["train"]])
    tfl = convert(model, rep, out / "marimba.tflite", args.seed)
    meta = metadata(spec, params, cx, args, folders, parts, synthetic)
    write_metadata(tfl, meta)
    int8_notes, int8_levels = [], []
    for p in test:
        notes, roll = device_notes(tfl, p, spec, params)
        int8_notes.append(notes)
        int8_levels.append(roll[p.windows])
    int8_metrics = combine({p.name: score(p.reference, n) for p, n in zip(test, int8_notes)})
    by_look = look_groups(test, float_metrics, int8_metrics)
    par = parity(float_levels, int8_levels)
    plot_piano_roll(test[0], float_levels[0], float_notes[0], int8_notes[0], spec, out / "piano_roll.png",
                    f"held-out {test[0].name}: onset F1 float {float_metrics['videos'][test[0].name]['f1']:.3f}, "
                    f"int8 {int8_metrics['videos'][test[0].name]['f1']:.3f}")
    t_total = time.monotonic() - t0
    summary = lambda m: {k: m[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")}  # noqa: E731
    meta["metrics"] = {
        "note_onsets": f"mir_eval.transcription.match_notes, onset tolerance {ONSET_TOLERANCE_S * 1000:.0f} ms, "
                       "pitch must match, offsets ignored; micro-averaged over the held-out videos",
        "reference": sorted({p.reference_source for p in test}),
        "test_videos": [p.name for p in test],
        "float": summary(float_metrics), "int8": summary(int8_metrics),
        "int8_path": "device.marimba.pipeline.MarimbaPipeline + device.model.Model (TFLite int8)",
        "audio_extractor": summary(audio_metrics) if audio_metrics["videos"] else None,
        "parity": par,
        "by_look": {g: {k: summary(m) for k, m in v.items()} for g, v in by_look.items()},
    }
    write_metadata(tfl, meta)
    report = {
        "seconds": {"data": round(t_data, 1), "fit": round(t_fit, 1), "total": round(t_total, 1)},
        "windows": n_windows, "complexity": cx, "history": history, "peak_tuning": tuning,
        "spec": spec.to_dict(), "float": float_metrics, "int8": int8_metrics, "audio_extractor": audio_metrics,
        "parity": par, "model_bytes": tfl.stat().st_size, "training_data": meta["training_data"],
        "by_look": by_look,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{PROG}: held-out note-onset F1 float {float_metrics['f1']:.3f}  int8 (device path) "
          f"{int8_metrics['f1']:.3f}  (P {int8_metrics['precision']:.3f} R {int8_metrics['recall']:.3f}; "
          f"{cx['params']} params, {cx['macs'] / 1e6:.1f} M MACs, {tfl.stat().st_size} bytes; "
          f"{t_total / 60:.1f} min)  report: {out}/", flush=True)
    if len(by_look) > 1:
        print(f"{PROG}: int8 F1 by look: " + ", ".join(f"{g} {m['int8']['f1']:.3f} ({len(m['int8']['videos'])} videos)"
                                                     for g, m in by_look.items()), flush=True)
    drop = float_metrics["f1"] - int8_metrics["f1"]
    if args.export:
        if drop > args.max_int8_drop:
            raise ExportError(f"{tfl}: int8 onset F1 is {drop:.3f} below float (limit {args.max_int8_drop}); "
                              "not exported")
        dest = install_model(tfl, args.export, meta)
        # The float weights go beside it: the starting point for fine-tuning on a user's recordings.
        write_atomic(dest.with_suffix(".keras"), (out / "marimba.keras").read_bytes())
        print(f"{PROG}: installed {dest}, {dest.with_suffix('.json')} and {dest.with_suffix('.keras')}")
    return report


def look_of(prep: Prepared) -> str:
    """The look family a synthetic video was drawn in ("project" for the original renderer), else "recorded"."""
    synthetic = prep.rec.manifest.get("synthetic")
    if not synthetic:
        return "recorded"
    return str(synthetic.get("look_family") or (synthetic.get("camera") or {}).get("look_family") or "project")


def look_groups(test: list[Prepared], float_metrics: dict, int8_metrics: dict) -> dict[str, dict[str, dict]]:
    """Per look family: the float and int8 scores micro-averaged over its held-out videos."""
    groups: dict[str, list[str]] = {}
    for p in test:
        groups.setdefault(look_of(p), []).append(p.name)
    return {g: {kind: combine({n: m["videos"][n] for n in names})
                for kind, m in (("float", float_metrics), ("int8", int8_metrics))}
            for g, names in sorted(groups.items())}


def metadata(spec: MarimbaSpec, params: NoteParams, cx: dict, args: argparse.Namespace,
             folders: dict[str, list[Path]], parts: dict[str, list[Prepared]], synthetic: bool) -> dict[str, Any]:
    if synthetic:
        from training.datasets.marimba_looks import HELDOUT_FAMILIES, TRAIN_FAMILIES
        from training.datasets.marimba_synth import SynthConfig

        description = (f"synthetic marimba videos, {args.seconds:g} s each: {args.own_look_share:.0%} the project's "
                       f"own look (training.datasets.marimba_synth), the rest drawn from look families "
                       f"{', '.join(TRAIN_FAMILIES)} (training.datasets.marimba_looks: materials, backgrounds, "
                       f"mallets and hands, light, perspective poses); held out: families "
                       f"{', '.join(HELDOUT_FAMILIES)} and the evaluation instrument; every frame rectified to "
                       f"the canonical bar-row view (true corners in training, automatic calibration on held-out)")
        seeds = {part: [p.rec.manifest.get("synthetic", {}).get("seed") for p in v] for part, v in parts.items()}
        extra = {"renderer": {k: v if not isinstance(v, tuple) else list(v)
                              for k, v in SynthConfig(seconds=args.seconds).__dict__.items()}}
    else:
        description = f"recorded marimba dataset folders: {', '.join(str(d) for d in args.data)}"
        seeds = None
        extra = {}
    extra["calibration"] = {part: sorted({p.calibration_source for p in v}) for part, v in parts.items()}
    return {
        "kind": "marimba",
        "labels": spec.labels,
        "notes": list(spec.notes),
        "frontend_kind": "notes",
        "frontend": params.to_dict(),
        "input_shape": list(spec.input_shape),
        "input_dtype": "int8",
        "frame_size": list(spec.frame_size),
        "crop": spec.crop.to_dict(),
        "fps": spec.fps,
        "output": (f"per-note level = log1p(a / {spec.target.floor}) / log1p({spec.target.full} / "
                   f"{spec.target.floor}) of the note amplitude a under the window's 3 frames "
                   "(device.marimba.pipeline.TargetTransform)"),
        "marimba": spec.to_dict(),
        "complexity": cx,
        "training_data": {
            "description": description, "synthetic": synthetic,
            "videos": {k: [p.name for p in v] for k, v in parts.items()},
            "seeds": seeds, "training_seed": args.seed,
            "epochs": getattr(args, "epochs_run", args.epochs), "started_from": getattr(args, "started_from", None), "sha256": data_hash(folders),
            **extra,
        },
    }


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_cli

    args = parse_args(argv)
    return run_cli(PROG, lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
