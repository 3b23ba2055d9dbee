"""`make train-sound`: train the log-mel CNN, report, and export the int8 model.

    python -m training.train_sound [--format synthetic|urbansound8k|esc50|folders]
        [--data PATH] [--out reports/sound] [--export models/sound.tflite]

Splits follow the dataset's folds (never random across folds): by default the
last fold is the held-out test set and the one before it validation. A full
cross-validation run is one call per ``--test-fold`` (see README).

The model and its world (default; ``--no-world`` trains the old classifier only)
--------------------------------------------------------------------------------
Besides the dataset's classes, training sees a wide world of sounds: procedural
families (training.datasets.sound_world) and espeak-ng words in many voices
(training.datasets.speech), all with room realism. Losses: cross-entropy on
the built-in classes plus "outlier exposure" (world sounds are pushed towards
a flat probability, so they get low confidence), and a supervised
contrastive loss on the embedding over built-in classes, families and words
alike (training.sound_model says why that loss). Batches hold every built-in
class and random world groups, 4 windows each, so each batch has positives.

Metadata contract for the device (models/sound.json; G2's unknown/teaching code reads it)
------------------------------------------------------------------------------------------
- ``"outputs": ["probabilities", "embedding"]``: the interpreter's output order
  (``get_output_details()``); output 0 is still the probabilities, so a loader
  that reads only output 0 works unchanged. ``"output_names"`` maps each role to
  the output tensor's name (the tensors are renamed to exactly these names by
  export.outputs), ``"output_indices"`` to its tensor index.
- ``"embedding": {"dim": D, "version": "<sha256 prefix of the trained weights>",
  "metric": "cosine"}``; the embedding is L2-normalised inside the model (int8
  output scale 1/128, so dequantized vectors have norm ~1; re-normalise after
  averaging).
- ``"open_set"``: ``min_confidence`` (softmax of the top class), ``max_centre_distance``
  (cosine distance 1 - e.c of the window's embedding to the top class's centre),
  ``class_centres`` ({label: unit vector of D floats} for every built-in label),
  ``taught_max_distance`` (cosine distance of a window to a taught 3-shot
  prototype that still counts as that sound) and ``calibration`` (what data, what
  target). Decision, as training.embedding_eval.decide implements and measures it:
  built-in class c = argmax(p) when p[c] >= min_confidence and
  dist(e, centre[c]) <= max_centre_distance; a taught class when its prototype is
  the nearest, within taught_max_distance, and nearer than centre[c] (or c was
  rejected); otherwise ``unknown``. Calibrated on the int8 outputs, on the
  built-in validation fold and held-out calibration families/voices (never the
  demo playlist, never the test families/words/voices). ``"strict"``: ``min_confidence`` and
  ``max_centre_distance`` of the same calibration at target STRICT_OPEN_SET_TARGET, which the box uses
  with config ``[teach] unknown = "strict"``.
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
from training.interrupt import stop_on_ctrl_c

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "train-sound"
# The strict calibration ([teach] unknown = "strict"): the share of validation clips it keeps (README:
# on held-out data 342 -> 204 false pictures per hour, but 11 % of built-in clips `unknown`, one tuning
# playlist's p95 201 -> 294 ms).
STRICT_OPEN_SET_TARGET = 0.99


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--format", default="synthetic", help="synthetic | urbansound8k | esc50 | folders")
    p.add_argument("--data", default=None, help="dataset root (not needed for synthetic)")
    p.add_argument("--out", default="reports/sound", help="report folder")
    p.add_argument("--export", default=None, help="also install the int8 model here (e.g. models/sound.tflite)")
    p.add_argument("--test-fold", type=int, default=None, help="held-out fold (default: the last)")
    p.add_argument("--val-fold", type=int, default=None, help="validation fold (default: the one before test)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--budget-min", type=float, default=28.0,
                   help="stop training (keeping the best weights) when the whole run reaches this many minutes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--crops", type=int, default=3, help="training crops per built-in clip")
    p.add_argument("--no-world", dest="world", action="store_false",
                   help="classifier only: no embedding, no procedural families or spoken words")
    p.add_argument("--families", type=int, default=None, help="procedural families (default: sound_world.N_FAMILIES)")
    p.add_argument("--family-takes", type=int, default=8, help="training windows per family")
    p.add_argument("--word-takes", type=int, default=12, help="training windows per spoken word")
    p.add_argument("--pseudo-words", type=int, default=200,
                   help="made-up words spoken besides the child's vocabulary (speech.pseudo_words)")
    p.add_argument("--embedding-dim", type=int, default=None, help="embedding size (default: sound_model.EMBEDDING_DIM)")
    p.add_argument("--outlier-weight", type=float, default=0.05,
                   help="weight of the flat-probability loss on world sounds (outlier exposure)")
    p.add_argument("--per-class", type=int, default=300, help="synthetic clips per class")
    p.add_argument("--esc50-map", action="store_true", help="ESC-50: keep only classes that map to ours")
    p.add_argument("--width", type=int, default=16, help="filters in the first conv block")
    p.add_argument("--max-int8-drop", type=float, default=2.0, help="fail export if int8 loses more points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny run for tests (few clips, families and words, 2 epochs)")
    p.add_argument("--open-set-target", type=float, default=1.0,
                   help="share of the built-in validation clips (of those the closed-set model gets right early) "
                        "the unknown decision must keep: lower shows fewer false pictures and misses more sounds")
    p.add_argument("--per-class-open-set", action="store_true",
                   help="one unknown threshold pair per class, each from its own validation clips and the "
                        "calibration negatives it would take (fewer false pictures, more sounds missed or late: "
                        "README); default: one pair for every class")
    p.add_argument("--recalibrate", default=None, metavar="MODEL",
                   help="only recompute the open-set calibration of this trained .tflite (its .json is rewritten)")
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
    where = dataset.report.path or dataset.report.format
    for name, clips in parts.items():
        if not clips:
            raise SaySeeError(f"{where}: the {name} split is empty")
    # Every class needs validation clips: its centre and unknown radius are set on them (a class without
    # any would get no centre and could never be shown), and test clips to be measured at all.
    labels = sorted({c.label for c in dataset.clips})
    for name, fold in (("val", val_fold), ("test", test_fold)):
        missing = sorted(set(labels) - {c.label for c in parts[name]})
        if missing:
            from training.datasets.folders import FOLDS_FILE

            raise SaySeeError(f"{where}: fold {fold} ({name}) holds no clip of {', '.join(missing)}; add clips "
                              f"of it, or set each file's fold in DATA/{FOLDS_FILE} (columns file,fold)")
    return parts, {"test_fold": test_fold, "val_fold": val_fold,
                   "train_folds": [f for f in folds if f not in (test_fold, val_fold)],
                   "clips": {k: len(v) for k, v in parts.items()}}


class Deadline:
    """Keras callback factory: ends training when the time budget is spent (the best epoch is kept)."""

    @staticmethod
    def make(deadline: float | None):
        import keras

        class _Deadline(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if deadline is not None and time.monotonic() > deadline:
                    print(f"{PROG}: time budget reached after epoch {epoch + 1}; keeping the best epoch", flush=True)
                    self.model.stop_training = True

        return _Deadline()


def fit(model, xtr, ytr, xva, yva, epochs: int, batch_size: int, seed: int, deadline: float | None = None):
    """The classifier-only model (``--no-world``): plain cross-entropy."""
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=6, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-4),
        Deadline.make(deadline),
        stop_on_ctrl_c(PROG),
    ]
    hist = model.fit(xtr, ytr, validation_data=(xva, yva), epochs=epochs, batch_size=batch_size,
                     callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2, shuffle=True)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def balanced_batches(x, y_cls, y_grp, n_classes: int, groups_per_batch: int = 24, per_group: int = 4,
                     steps: int | None = None, seed: int = 0, kinds: dict[int, str] | None = None):
    """A Keras PyDataset of batches with every built-in class and random world groups, ``per_group`` windows each.

    Contrastive learning needs positives in every batch; random batches over
    ~300 groups would hold almost none. ``kinds`` (world group id -> "family",
    "word" ...) gives each kind the same share of the world groups drawn, so
    a few hundred words do not crowd out the procedural families.
    """
    import keras

    by_group: dict[int, np.ndarray] = {}
    for g in np.unique(y_grp):
        by_group[int(g)] = np.flatnonzero(y_grp == g)
    builtin = [g for g in by_group if g < n_classes]
    world = [g for g in by_group if g >= n_classes]
    n_world = max(groups_per_batch - len(builtin), 0)
    steps = steps or max(1, len(x) // (groups_per_batch * per_group))
    kind_of = [(kinds or {}).get(g, "") for g in world]
    share = {k: kind_of.count(k) for k in set(kind_of)}
    p_world = np.array([1.0 / (len(share) * share[k]) for k in kind_of]) if world else None

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return steps

        def on_epoch_end(self):
            self.epoch += 1

        def __getitem__(self, i):
            rng = np.random.default_rng([seed, self.epoch, i])
            groups = builtin + list(rng.choice(world, size=min(n_world, len(world)), replace=False, p=p_world))
            idx = np.concatenate([rng.choice(by_group[g], per_group, replace=len(by_group[g]) < per_group)
                                  for g in groups])
            return x[idx], (y_cls[idx], y_grp[idx])

    return Batches()


def fit_embedding(model, data, xva, yva, n_classes: int, epochs: int, seed: int, deadline: float | None = None,
                  outlier_weight: float = 0.5):
    """Both heads at once: cross-entropy (+ outlier exposure for world sounds) and supervised contrastive."""
    import keras

    from training.sound_model import classes_or_outliers_loss, supervised_contrastive_loss

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=[classes_or_outliers_loss(outlier_weight), supervised_contrastive_loss()], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], []])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=6, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-4),
        Deadline.make(deadline),
        stop_on_ctrl_c(PROG),
    ]
    hist = model.fit(data, validation_data=(xva, (yva, yva)), epochs=epochs, callbacks=callbacks,
                     verbose=1 if sys.stdout.isatty() else 2)
    return {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def weights_version(model) -> str:
    """sha256 prefix of the trained weights: the embedding version taught prototypes are tied to."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def world_data(args: argparse.Namespace, params: LogMelParams, rng: np.random.Generator):
    """Training windows of the wide world: train families and train words in train voices."""
    from training.datasets import sound_world, speech
    from training.sound_windows import family_sources, source_windows, word_sources

    n_fam = args.families or sound_world.N_FAMILIES
    families = sound_world.train_families(20 if args.quick else n_fam)
    words = speech.TRAIN_WORDS[:4] if args.quick else speech.TRAIN_WORDS + speech.pseudo_words(args.pseudo_words)
    fx, fnames = source_windows(family_sources(families, params), 2 if args.quick else args.family_takes, params,
                                rng, desc="families")
    wx, wnames = source_windows(word_sources(words, speech.TRAIN_VOICES, params), 2 if args.quick else args.word_takes,
                                params, rng, desc="words")
    return np.concatenate([fx, wx]), fnames + wnames, {"families": len(families), "words": len(words),
                                                       "pseudo_words": 0 if args.quick else args.pseudo_words,
                                                       "voices": len(speech.TRAIN_VOICES)}


def evaluate(predict_batch, clips, labels, params):
    from training.plots import classification_metrics
    from training.sound_windows import predict_clips

    index = {n: i for i, n in enumerate(labels)}
    probs = predict_clips(predict_batch, clips, params)
    y_true = np.array([index[c.label] for c in clips])
    return classification_metrics(y_true, probs.argmax(axis=1), labels), y_true, probs


def embedding_metadata(model, outputs: list[dict], world_info: dict) -> dict:
    """The contract fields the device reads to use the embedding (see the module docstring)."""
    emb = next(o for o in outputs if o["name"] == "embedding")
    return {
        "outputs": [o["name"] for o in outputs],
        "output_names": {o["name"]: o["name"] for o in outputs},
        "output_indices": {o["name"]: o["index"] for o in outputs},
        "embedding": {"dim": int(emb["shape"][-1]), "version": weights_version(model), "metric": "cosine",
                      "normalised": "L2 inside the model (int8 scale 1/128)"},
    }


def calibration_negatives(params: LogMelParams, rng: np.random.Generator, args: argparse.Namespace):
    """Windows that must not be a built-in class, from sources neither trained on nor tested: calibration
    families, spoken words and sentences in calibration voices, and music from a generator of its own."""
    from training.datasets import sound_world, speech
    from training.datasets.calibration_music import calibration_music
    from training.sound_windows import family_sources, source_windows, word_sources

    quick = args.quick
    fams = sound_world.calibration_families(args.families or sound_world.N_FAMILIES)[: 6 if quick else None]
    words = speech.CORE_WORDS[: 6 if quick else None]
    fx, fn = source_windows(family_sources(fams, params), 6, params, rng, first_take=500, snr_db=(5.0, 20.0),
                            desc="calibration families")
    wx, _ = source_windows(word_sources(words, speech.CALIBRATION_VOICES, params), 2, params, rng, first_take=500,
                           snr_db=(5.0, 20.0), desc="calibration words")
    sentences = list(speech.CALIBRATION_SENTENCES)  # never the negatives stream's texts (the test)
    voices = speech.CALIBRATION_VOICES

    def sentence(i, r):
        x = speech.render(sentences[i % len(sentences)], voices[i % len(voices)], int(r.integers(25, 75)),
                          int(r.integers(130, 200)), params.sample_rate)
        s = int(r.integers(0, max(len(x) - params.samples_per_window, 1)))
        return x[s:]

    def music(i, r):  # its own generator: the stream's music is the test
        return calibration_music(1.0, np.random.default_rng([args.seed, 900_000 + i]), params.sample_rate)

    n = 4 if quick else 48
    sx, _ = source_windows({"sentences": sentence}, n, params, rng, snr_db=(5.0, 30.0), max_delay_s=0.0,
                           desc="calibration speech")
    mx, _ = source_windows({"music": music}, n, params, rng, snr_db=(5.0, 30.0), max_delay_s=0.0,
                           desc="calibration music")
    parts = {"families": len(fams) * 6, "words": len(words) * 2, "sentences": n, "music": n}
    return np.concatenate([fx, wx, sx, mx]), fx, fn, parts


def calibrate_open_set(tfl, val_clips, labels, params: LogMelParams, args: argparse.Namespace):
    """The device's unknown thresholds from the INT8 model on data neither trained on nor tested:
    built-in validation-fold clips (positives) and calibration_negatives()."""
    from training.embedding_eval import (TwoOutputModel, calibrate_clips, class_centres, prototype_distances,
                                         take_agreement_distances)
    from training.sound_windows import clip_windows

    m = TwoOutputModel(tfl)
    index = {n: i for i, n in enumerate(labels)}
    clips, es, ys = [], [], []
    for c in val_clips:
        p, e = m.predict(clip_windows(c, params))
        clips.append((p, e, index[c.label]))
        es.append(e)
        ys += [index[c.label]] * len(e)
    rng = np.random.default_rng([args.seed, 5])
    neg_x, fam_x, fam_names, parts = calibration_negatives(params, rng, args)
    neg_p, neg_e = m.predict(neg_x)
    centres = class_centres(np.concatenate(es), np.array(ys), len(labels))
    same, other = prototype_distances(neg_e[: len(fam_x)], fam_names, rng)
    agreement = take_agreement_distances(neg_e[: len(fam_x)], fam_names, np.random.default_rng([args.seed, 6]))
    open_set, info = calibrate_clips(clips, neg_p, neg_e, centres, same, other, take_agreement=agreement,
                                     target=args.open_set_target, per_class=args.per_class_open_set)
    # The box's [teach] unknown = "strict": the same rule at a lower target, chosen here where the data is.
    strict, strict_info = calibrate_clips(clips, neg_p, neg_e, centres, same, other, target=STRICT_OPEN_SET_TARGET)
    desc = (f"int8 outputs; positives: {len(clips)} built-in validation-fold clips, target: "
            f"{100 * info['target_clips']:.0f}% of the {info['clips_right_early_closed_set']} that the closed-set "
            f"model gets right early stay accepted as their class within their first {info['first_windows']} windows; negatives: {len(neg_p)} windows ({parts}) from calibration "
            f"families, calibration voices and generated music, 5-30 dB SNR, none trained on or tested; "
            f"negatives accepted: {100 * info['negatives_accepted']:.2f}% of windows; class centres: mean "
            f"validation-window embedding per class; taught_max_distance: {100 * info['taught_quantile']:.0f}th percentile of calibration "
            f"takes to their own 3-shot prototype; take_max_distance: {100 * info['take_quantile']:.0f}th percentile of "
            f"a calibration take's distance to the mean of 2 other takes of its sound")
    info.update(positives=len(clips), negatives=int(len(neg_p)), negative_sources=parts)
    block = open_set.to_dict(desc, labels)
    block["strict"] = {"target": STRICT_OPEN_SET_TARGET, "min_confidence": round(float(strict.min_confidence), 4),
                       "max_centre_distance": round(float(strict.max_centre_distance), 4),
                       "negatives_accepted": round(float(strict_info["negatives_accepted"]), 4)}
    return block, info


def recalibrate(args: argparse.Namespace) -> dict:
    """``--recalibrate MODEL``: recompute the open_set block of a trained model's metadata (no retraining)."""
    import json as _json

    from export.metadata import install_model, write_metadata

    params = LogMelParams()
    tfl = Path(args.recalibrate)
    meta = _json.loads(tfl.with_suffix(".json").read_text())
    # The model's own data and split, as its metadata records them: calibrating on another split could
    # choose thresholds on the model's test fold.
    trained = meta.get("training_data") or {}
    folds = trained.get("split") or {}
    if trained.get("format") and trained["format"] != args.format:
        raise SaySeeError(f"{tfl.with_suffix('.json')}: trained on --format {trained['format']}"
                          f"{' --data ' + str(trained['path']) if trained.get('path') else ''}; "
                          f"--recalibrate needs the same data (got --format {args.format})")
    dataset = load(args, params)
    if trained.get("sha256") and dataset.sha256() != trained["sha256"]:
        raise SaySeeError(f"{tfl.with_suffix('.json')}: trained on other data than this "
                          f"({trained.get('description', '?')}); --recalibrate needs the same data and --seed")
    parts, _ = split(dataset, folds.get("test_fold", args.test_fold), folds.get("val_fold", args.val_fold))
    open_set, calibration = calibrate_open_set(tfl, parts["val"], list(meta["labels"]), params, args)
    meta["open_set"] = open_set
    meta["training_data"]["open_set_calibration"] = calibration
    for key in ("created", "code_version", "model_file", "model_bytes", "model_sha256"):
        meta.pop(key, None)
    write_metadata(tfl, meta)
    if args.export:
        install_model(tfl, args.export, meta)
    print(f"{PROG}: open_set {json.dumps({k: v for k, v in open_set.items() if k != 'class_centres'})}")
    return meta


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

    world_info = None
    if args.world:
        from training.sound_model import EMBEDDING_DIM

        wx, wnames, world_info = world_data(args, params, rng)
        group_names = sorted(set(wnames))
        gid = {g: len(labels) + i for i, g in enumerate(group_names)}
        x_all = np.concatenate([xtr, wx])
        y_cls = np.concatenate([ytr, -np.ones(len(wx), np.int64)])
        y_grp = np.concatenate([ytr, np.array([gid[g] for g in wnames], np.int64)])
        world_info.update(windows=int(len(wx)), builtin_windows=int(len(xtr)), groups=len(group_names),
                          loss=f"cross-entropy + {args.outlier_weight} x outlier exposure (world -> flat) "
                               "+ 0.5 x supervised contrastive (t=0.1) on the embedding")
        print(f"{PROG}: {len(xtr)} built-in + {len(wx)} world windows ({len(group_names)} groups)", flush=True)
        model = build_sound_model(params.input_shape, len(labels), width=args.width,
                                  embedding_dim=args.embedding_dim or EMBEDDING_DIM)
    else:
        x_all = xtr
        model = build_sound_model(params.input_shape, len(labels), width=args.width, embedding_dim=None)
    cx = complexity(model)
    if cx["params"] > MAX_PARAMS or cx["macs"] > MAX_MACS:
        raise SaySeeError(f"model too big for the box: {cx} (limits {MAX_PARAMS} params, {MAX_MACS} MACs)")
    # Evaluation, calibration and export take a few minutes after training; the deadline leaves room for them.
    deadline = t0 + 60 * args.budget_min - (240 if args.world else 90)
    epochs = 2 if args.quick else args.epochs
    if args.world:
        kinds = {gid[g]: g.split(":", 1)[0] for g in group_names}
        data = balanced_batches(x_all, y_cls, y_grp, len(labels), seed=args.seed, kinds=kinds)
        history = fit_embedding(model, data, xva, yva, len(labels), epochs, args.seed, deadline, args.outlier_weight)
    else:
        history = fit(model, xtr, ytr, xva, yva, epochs, args.batch_size, args.seed, deadline)
    model.save(out / "sound.keras")
    plot_curves(history, out / "curves.png", "sound classifier + embedding" if args.world else "sound classifier")

    def float_probs(x):
        y = model.predict_on_batch(x)
        return np.asarray(y[0] if isinstance(y, (list, tuple)) else y)

    float_metrics, y_true, _ = evaluate(float_probs, parts["test"], labels, params)
    plot_confusion(np.array(float_metrics["confusion"]), labels, out / "confusion.png",
                   f"float, fold {split_info['test_fold']}: {100 * float_metrics['accuracy']:.1f}%")

    # int8: calibrate on training windows (built-in and world), then evaluate through the device's own loader.
    tfl = convert_int8(model, x_all, out / "sound.tflite", seed=args.seed)
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
    if args.world:
        from export.outputs import name_outputs
        from training.sound_model import OUTPUT_NAMES

        outputs = name_outputs(tfl, OUTPUT_NAMES)
        meta.update(embedding_metadata(model, outputs, world_info))
        meta["output"] = "probabilities: softmax, one per label; embedding: L2-normalised (cosine metric)"
        write_metadata(tfl, meta)
        open_set, calibration = calibrate_open_set(tfl, parts["val"], labels, params, args)
        meta["open_set"] = open_set
        meta["training_data"]["world"] = world_info
        meta["training_data"]["open_set_calibration"] = calibration
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
              "world": world_info, "open_set": {k: v for k, v in meta.get("open_set", {}).items() if k != "class_centres"},
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
    return run_cli(PROG, lambda: recalibrate(args) if args.recalibrate else train(args))


if __name__ == "__main__":
    sys.exit(main())
