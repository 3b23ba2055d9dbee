"""`make train-generator`: a sound -> picture generator, its report and the int8 model.

    python -m training.train_generator [--sound-model models/sound.tflite] [--out reports/generator]
        [--export models/generator.tflite] [--quick] [--seed 0]

What it learns. A small conv decoder maps the sound model's 64-d L2 embedding
plus a loudness value (65 inputs) to a 64 x 64 RGB picture in [0, 1]
(sigmoid output), int8 on the box (``device.screen.dream``).

Training pairs. Every embedding is computed by the committed int8 sound model
through the device code (``device.model.Model.infer`` on
``device.frontend.sliding_windows``), so the generator learns the embeddings
the box will give it:

- the ten classes' *training* sounds (``synthetic_sound`` clips of the sound
  model's training folds, clip index i % 10 in 0..7) -> a variant of that
  class's picture (``training.picture_variants``);
- sounds of the wider generated world's training families -> an abstract
  "unknown-ish" picture coloured by the classes the sound is nearest to. Not the
  nearest class's picture: that would teach the box to show a confident wrong
  picture for a sound it does not know, where the issue asks what the sound
  *looks like*; a mixed colour and rings still follow the embedding smoothly.

Diversity. Which variant a sound gets is not random: its pose, scale, hue,
shift and line weight are read off the embedding (the window's offset from its
class centre projected on the top principal directions of the pooled
within-class scatter, scaled to [-1, 1]), plus a little seeded jitter. So two
takes of one class give two different, repeatable pictures and nearby sounds
give nearby pictures. A purely random pairing would make an L1-trained decoder
draw the average of all variants of a class (one blurry picture per class,
diversity collapsed), and a noise input would simply be ignored by it; an
adversarial term could use noise but is unstable and slow on one CPU thread,
so there is no noise input. Loudness is drawn at random per pair and sets the
target's brightness, so the generator learns intensity from it.

Loss: L1 on pixels plus 0.5 x L1 on horizontal and vertical pixel differences
(an edge term: outlines are what make the cartoons readable; plain L1/L2 blurs
them). Deterministic for a fixed ``--seed``: TensorFlow op determinism, seeded
Keras, numpy generators keyed by the seed, one thread.

Report (``--out``): samples.png (per class, pictures generated from held-out
sounds: fold-10 clips, never trained on), targets.png (the variants they aim
for), interpolation.png (walks between classes' held-out sounds),
curves.png, metrics.json: int8 generation time per image through
``device.model.Model`` (1 thread), recognisability (a separately trained judge
CNN, trained only on variants drawn from other seeds, names the intended class
of generated pictures: per 1 s window, per clip, and smoothed over hops as the
box shows them), diversity (mean pairwise pixel distance within vs
between classes), continuity (per-step distances along the walks), params and
MACs (``export.complexity``), float/int8 parity.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from device.atomic import write_atomic
from device.config import PROJECT_ROOT
from device.errors import SaySeeError
from device.frontend import LogMelParams, dbfs, sliding_windows
from device.model import Model
from device.screen.dream import LOUDNESS_DBFS, PICTURE_SIDE, loudness
from device.sound.labels import URBANSOUND_CLASSES
from training import picture_variants as V
from training.interrupt import stop_on_ctrl_c

PROG = "train-generator"
MAX_PARAMS = 1_100_000
MAX_MACS = 30_000_000
SIMILARITY_TEMPERATURE = 0.08  # softmax over cosine similarity to class centres: the abstract picture's colours
JITTER = 0.12  # seeded noise on the embedding-derived controls (variety the embedding does not explain)
EDGE_WEIGHT = 0.5
# Interpolation walks for the report: (from, to) built-in classes.
WALKS = (("siren", "dog_bark"), ("car_horn", "air_conditioner"), ("gun_shot", "street_music"))


@dataclass
class Settings:
    clips_per_class: int  # training clips per class (sound model training folds)
    heldout_per_class: int  # held-out clips per class (fold 10)
    world_families: int  # wider-world training families used (one instance each, two for the first half)
    variants_per_window: int  # target pictures (different loudness/jitter) per sound window
    epochs: int
    batch_size: int
    judge_per_class: int
    judge_epochs: int
    width: int  # channel multiplier of the decoder (1 = the released size)


FULL = Settings(clips_per_class=24, heldout_per_class=6, world_families=192, variants_per_window=2,
                epochs=16, batch_size=32, judge_per_class=240, judge_epochs=4, width=1)
QUICK = Settings(clips_per_class=2, heldout_per_class=1, world_families=6, variants_per_window=1,
                 epochs=1, batch_size=16, judge_per_class=12, judge_epochs=1, width=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m training.{PROG.replace('-', '_')}", description=__doc__.split("\n")[0])
    p.add_argument("--sound-model", default=str(PROJECT_ROOT / "models" / "sound.tflite"),
                   help="int8 sound model whose embedding is the input (default: the committed one)")
    p.add_argument("--out", default="reports/generator", help="report folder")
    p.add_argument("--export", default=None, help="also install the int8 model here (e.g. models/generator.tflite)")
    p.add_argument("--quick", action="store_true", help="tiny run (tests): a few clips, one epoch")
    p.add_argument("--epochs", type=int, default=None, help="override the epochs")
    p.add_argument("--clips", type=int, default=None, help="override training clips per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-eval", action="store_true", help="skip the judge and report figures (tests)")
    return p.parse_args(argv)


# ------------------------------------------------------------------ sounds -> embeddings


def _set_threads() -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process (tests): the first setting stands
    tf.config.experimental.enable_op_determinism()


def clip_indices(n: int, held_out: bool) -> list[int]:
    """Synthetic clip indices: the sound model's training folds (i % 10 < 8) or its test fold (i % 10 == 9)."""
    out, i = [], 0
    while len(out) < n:
        if (i % 10 == 9) if held_out else (i % 10 < 8):
            out.append(i)
        i += 1
    return out


def class_windows(model: Model, labels: list[str], n_clips: int, held_out: bool,
                  params: LogMelParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, dBFS, class index, clip id, sound model's top class) of the loud windows of each class's clips."""
    from training.datasets.synthetic_sound import synthesize_clip

    embs, levels, ys, clips, tops = [], [], [], [], []
    for ci, label in enumerate(labels):
        for i in clip_indices(n_clips, held_out):
            clip = synthesize_clip(label, i, params.sample_rate)
            for start, feats in sliding_windows(clip.audio, params):
                a = int(round(start * params.sample_rate))
                seg = clip.audio[a : a + params.samples_per_window]
                hop = seg[-params.samples_per_hop :]
                if dbfs(hop) < params.silence_dbfs or dbfs(seg) < params.silence_dbfs:
                    continue  # the box's silence gate: these windows are never classified
                probs, e = model.infer(feats)
                embs.append(e)
                tops.append(int(np.argmax(probs)))
                levels.append(dbfs(seg))
                ys.append(ci)
                clips.append(ci * 100_000 + i)
    return (np.array(embs, np.float32), np.array(levels, np.float32), np.array(ys, int), np.array(clips, int),
            np.array(tops, int))


def world_windows(model: Model, n_families: int, params: LogMelParams, held_out: bool = False) -> np.ndarray:
    """Embeddings of wider-world sounds (training families, or the held-out test families)."""
    from device.frontend import log_mel, pad_or_crop
    from training.datasets import sound_world as W

    fams = (W.test_families() if held_out else W.train_families())[:n_families]
    embs = []
    for j, k in enumerate(fams):
        for inst in range(2 if j < len(fams) // 2 else 1):
            x = pad_or_crop(W.family_sound(k, inst, params.sample_rate), params.samples_per_window)
            feats = log_mel(x, params)[: params.frames_per_window, :, None]
            _, e = model.infer(feats)
            embs.append(e)
    return np.array(embs, np.float32)


# ------------------------------------------------------------------ embedding -> variant controls


@dataclass
class Controls:
    """Embedding -> variant controls u in [-1, 1] (see the module docstring)."""

    centres: np.ndarray  # (classes, dim) unit class centres (training windows)
    axes: np.ndarray  # (dim, N_CONTROLS) top principal directions of the within-class scatter
    scale: np.ndarray  # (N_CONTROLS,) 2 std of each projection: u = clip(proj / scale)
    world_mean: np.ndarray

    @classmethod
    def fit(cls, embs: np.ndarray, ys: np.ndarray, n_classes: int, world: np.ndarray) -> Controls:
        centres = np.stack([_unit(embs[ys == c].mean(axis=0)) for c in range(n_classes)])
        resid = embs - centres[ys]
        _, _, vt = np.linalg.svd(resid - resid.mean(axis=0), full_matrices=False)
        axes = vt[: V.N_CONTROLS].T
        # Fix each axis's sign (SVD's is arbitrary) so a rerun gives the same mapping.
        axes = axes * np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(V.N_CONTROLS)])
        scale = 2.0 * (resid @ axes).std(axis=0) + 1e-6
        wm = world.mean(axis=0) if len(world) else np.zeros(embs.shape[1], np.float32)
        return cls(centres.astype(np.float32), axes.astype(np.float32), scale.astype(np.float32), wm.astype(np.float32))

    def class_u(self, embs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return np.clip(((embs - self.centres[ys]) @ self.axes) / self.scale, -1, 1)

    def world_u(self, embs: np.ndarray) -> np.ndarray:
        return np.clip(((embs - self.world_mean) @ self.axes) / (2 * self.scale), -1, 1)

    def weights(self, embs: np.ndarray) -> np.ndarray:
        sim = embs @ self.centres.T / SIMILARITY_TEMPERATURE
        w = np.exp(sim - sim.max(axis=1, keepdims=True))
        return w / w.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "u = clip(((e - class centre) @ axes) / scale, -1, 1): pose, scale, hue, dx, dy, line",
                "scale": [round(float(v), 6) for v in self.scale]}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def make_pairs(embs, ys, world, controls: Controls, labels, n_variants: int, rng: np.random.Generator):
    """(inputs (N, 65), targets (N, 64, 64, 3), kind: class index or -1 for world)."""
    xs, ts, kinds = [], [], []
    u_cls, u_world, w_world = controls.class_u(embs, ys), controls.world_u(world), controls.weights(world)
    for i in range(len(embs)):
        for _ in range(n_variants):
            loud = float(rng.uniform(0, 1))
            u = u_cls[i] + rng.normal(0, JITTER, V.N_CONTROLS)
            xs.append(np.append(embs[i], loud))
            ts.append(V.class_variant(labels[ys[i]], u, loud))
            kinds.append(ys[i])
    for i in range(len(world)):
        for _ in range(n_variants):
            loud = float(rng.uniform(0, 1))
            u = u_world[i] + rng.normal(0, JITTER, V.N_CONTROLS)
            xs.append(np.append(world[i], loud))
            ts.append(V.abstract_picture(w_world[i], labels, u, loud))
            kinds.append(-1)
    return np.array(xs, np.float32), np.array(ts, np.float32), np.array(kinds)


# ------------------------------------------------------------------ models


def build_generator(input_dim: int = 65, width: int = 1, batch_size: int | None = None):
    """Dense to 8x8x96, then three (upsample x2, 3x3 conv) stages to 64x64x3, sigmoid.

    ``batch_size=1`` is the export twin: the converter needs static shapes after UpSampling2D.
    """
    import keras
    from keras import layers

    c = [96 * width, 64 * width, 48 * width, 24 * width]
    x_in = keras.Input((input_dim,), batch_size=batch_size, name="embedding_loudness")
    x = layers.Dense(8 * 8 * c[0], activation="relu", name="seed")(x_in)
    x = layers.Reshape((8, 8, c[0]))(x)
    x = layers.Conv2D(c[1], 3, padding="same", activation="relu", name="conv8")(x)
    for k, ch in ((16, c[2]), (32, c[3])):
        x = layers.UpSampling2D(2, name=f"up{k}")(x)
        x = layers.Conv2D(ch, 3, padding="same", activation="relu", name=f"conv{k}")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="up64")(x)
    out = layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="picture")(x)
    return keras.Model(x_in, out, name="generator")


def generator_loss(y_true, y_pred):
    """L1 on pixels + EDGE_WEIGHT x L1 on neighbouring-pixel differences (keeps outlines crisp)."""
    import keras.ops as K

    l1 = K.mean(K.abs(y_true - y_pred))
    dx = lambda t: t[:, :, 1:, :] - t[:, :, :-1, :]
    dy = lambda t: t[:, 1:, :, :] - t[:, :-1, :, :]
    edge = K.mean(K.abs(dx(y_true) - dx(y_pred))) + K.mean(K.abs(dy(y_true) - dy(y_pred)))
    return l1 + EDGE_WEIGHT * edge


def build_judge(n_classes: int):
    """The recognisability judge: a small CNN over 64x64 pictures, trained apart from the generator."""
    import keras
    from keras import layers

    x_in = keras.Input((PICTURE_SIDE, PICTURE_SIDE, 3))
    x = x_in
    for ch in (16, 32, 48):
        x = layers.Conv2D(ch, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(x_in, out, name="judge")


def _blur(img: np.ndarray) -> np.ndarray:
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    return sum(pad[i : i + img.shape[0], j : j + img.shape[1]] for i in range(3) for j in range(3)) / 9.0


def judge_set(labels, n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out picture variants for the judge: controls from their own seed (never a generator target),
    half of them blurred once so a soft picture is judged by what it shows, not by its sharpness."""
    rng = np.random.default_rng([seed, 424_242])
    xs, ys = [], []
    for ci, label in enumerate(labels):
        for _ in range(n_per_class):
            img = V.class_variant(label, V.random_u(rng), float(rng.uniform(0, 1)))
            xs.append(_blur(img) if rng.uniform() < 0.5 else img)
            ys.append(ci)
    return np.array(xs, np.float32), np.array(ys)


# ------------------------------------------------------------------ metrics


def pixel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two pictures in [0, 1] (0 = identical, 1 = black vs white)."""
    return float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def diversity(images: np.ndarray, ys: np.ndarray, n_classes: int, per_class: int = 24,
              seed: int = 0) -> dict[str, Any]:
    """Mean pairwise pixel distance within each class and between classes (a seeded subsample)."""
    rng = np.random.default_rng([seed, 31])
    pick = {c: rng.permutation(np.flatnonzero(ys == c))[:per_class] for c in range(n_classes)}
    flat = {c: images[idx].reshape(len(idx), -1) for c, idx in pick.items() if len(idx)}
    within, between = [], []
    for c in flat:
        f = flat[c]
        d = np.abs(f[:, None, :] - f[None, :, :]).mean(axis=-1)
        iu = np.triu_indices(len(f), 1)
        within.append(float(d[iu].mean()) if len(iu[0]) else 0.0)
        for c2 in (k for k in flat if k > c):
            between.append(float(np.abs(f[:, None, :] - flat[c2][None, :, :]).mean()))
    return {"within_class_mean": float(np.mean(within)), "between_class_mean": float(np.mean(between)),
            "within_by_class": [round(w, 4) for w in within]}


def walk(gen: Model, a: np.ndarray, b: np.ndarray, steps: int, loud: float) -> tuple[np.ndarray, list[float]]:
    """Pictures along the normalised straight line from embedding a to b, and the per-step distances."""
    imgs = []
    for t in np.linspace(0, 1, steps):
        e = _unit((1 - t) * a + t * b)
        imgs.append(gen.predict(np.append(e, loud).astype(np.float32)))
    imgs = np.array(imgs)
    return imgs, [pixel_distance(imgs[i], imgs[i + 1]) for i in range(len(imgs) - 1)]


def time_per_image(gen: Model, x: np.ndarray, n: int) -> float:
    """Median ms of one int8 invoke (1 thread) over ``n`` runs after a warm-up."""
    for _ in range(5):
        gen.predict(x)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        gen.predict(x)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))


def save_png(img: np.ndarray, path: Path) -> Path:
    import pygame

    arr = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    pygame.image.save(pygame.surfarray.make_surface(np.ascontiguousarray(arr.transpose(1, 0, 2))), str(path))
    return path


def labelled_grid(rows: list[np.ndarray], names: list[str], path: Path, title: str, scale: int = 2) -> Path:
    """Rows of pictures with a name on the left of each row (matplotlib, workstation only)."""
    from training.plots import _plt

    plt = _plt()
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(cols * 0.62 * scale / 2 + 1.6, len(rows) * 0.66 * scale / 2 + 0.5),
                             squeeze=False)
    for ax, r, name in zip(axes[:, 0], rows, names):
        ax.imshow(V.contact_sheet(np.asarray(r), cols), interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ the run


def _fit(model, x, t, settings: Settings, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=generator_loss)
    n_val = max(1, len(x) // 20)
    idx = np.random.default_rng([seed, 7]).permutation(len(x))
    va, tr = idx[:n_val], idx[n_val:]
    # Full rate for the first half, then halving every fifth of the run.
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch, lr: 2e-3 * 0.5 ** (max(0, epoch - settings.epochs // 2) / max(1, settings.epochs // 5)))
    h = model.fit(x[tr], t[tr], validation_data=(x[va], t[va]), epochs=settings.epochs,
                  batch_size=settings.batch_size, shuffle=True, verbose=2, callbacks=[schedule, stop_on_ctrl_c(PROG)])
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


def train(args: argparse.Namespace) -> dict[str, Any]:
    _set_threads()
    import keras

    from export.complexity import complexity
    from export.int8 import convert_int8
    from export.metadata import install_model, sha256_file, write_metadata

    settings = QUICK if args.quick else FULL
    if args.epochs is not None or args.clips is not None:
        import dataclasses

        settings = dataclasses.replace(settings, **{k: v for k, v in (("epochs", args.epochs),
                                                                      ("clips_per_class", args.clips)) if v is not None})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    params = LogMelParams()
    sound_path = Path(args.sound_model)
    if not sound_path.is_file():
        raise SaySeeError(f"{sound_path}: sound model not found (make models trains it)")
    sound = Model(sound_path, expected_frontend=params, num_threads=1)
    if not sound.has_embedding:
        raise SaySeeError(f"{sound_path}: this sound model has no embedding output; the generator needs one")
    labels = [x for x in sound.labels if V.P.has_drawing(x)]
    if labels != list(URBANSOUND_CLASSES):
        print(f"{PROG}: note: training on the classes that have drawings: {', '.join(labels)}")

    embs, _, ys, _, _ = class_windows(sound, labels, settings.clips_per_class, False, params)
    world = world_windows(sound, settings.world_families, params)
    h_embs, h_levels, h_ys, h_clips, h_tops = class_windows(sound, labels, settings.heldout_per_class, True, params)
    print(f"{PROG}: {len(embs)} training windows of {len(labels)} classes, {len(world)} world sounds, "
          f"{len(h_embs)} held-out windows ({time.monotonic() - t_start:.0f} s)", flush=True)
    controls = Controls.fit(embs, ys, len(labels), world)
    rng = np.random.default_rng([args.seed, 1])
    x, t, _ = make_pairs(embs, ys, world, controls, labels, settings.variants_per_window, rng)
    print(f"{PROG}: {len(x)} training pairs drawn ({time.monotonic() - t_start:.0f} s)", flush=True)

    keras.utils.set_random_seed(args.seed)
    gen = build_generator(x.shape[1], settings.width)
    cx = complexity(gen)
    if cx["params"] > MAX_PARAMS or cx["macs"] > MAX_MACS:
        raise SaySeeError(f"generator too big: {cx['params']} params / {cx['macs']} MACs "
                          f"(limits {MAX_PARAMS} / {MAX_MACS})")
    t_fit = time.monotonic()
    history = _fit(gen, x, t, settings, args.seed)
    fit_s = time.monotonic() - t_fit
    gen.save(out / "generator.keras")

    twin = build_generator(x.shape[1], settings.width, batch_size=1)
    twin.set_weights(gen.get_weights())
    tfl = convert_int8(twin, x, out / "generator.tflite", seed=args.seed)
    meta = {
        "kind": "generator",
        "labels": labels,
        "frontend_kind": "LogMelParams",
        "frontend": params.to_dict(),
        "input_shape": [int(x.shape[1])],
        "input_dtype": "int8",
        "input_layout": {"embedding": [0, sound.embedding_dim], "loudness": [sound.embedding_dim, sound.embedding_dim + 1]},
        "loudness": {"from_dbfs": list(LOUDNESS_DBFS), "meaning": "0..1 = clip((dBFS - lo) / (hi - lo))"},
        "output_shape": [PICTURE_SIDE, PICTURE_SIDE, 3],
        "output_range": [0.0, 1.0],
        "embedding": {"dim": sound.embedding_dim},
        "sound_model": {"file": sound_path.name, "sha256": sha256_file(sound_path),
                        "embedding_version": sound.embedding_version},
        "complexity": cx,
        "controls": controls.to_dict(),
        "training_data": {
            "class_windows": len(embs), "world_sounds": len(world), "pairs": len(x),
            "description": (f"synthetic_sound clips {settings.clips_per_class}/class from the sound model's training "
                            f"folds (i % 10 < 8) + {len(world)} sound_world training-family sounds; embeddings from "
                            f"{sound_path.name} (int8, device code); targets: training.picture_variants, seed {args.seed}"),
        },
        "settings": vars(settings) | {"seed": args.seed},
    }
    write_metadata(tfl, meta)
    g = Model(tfl, num_threads=1, kind="generator")

    metrics: dict[str, Any] = {"complexity": cx, "fit_seconds": round(fit_s, 1), "pairs": len(x),
                               "history_last": {k: v[-1] for k, v in history.items()}}
    hx = np.concatenate([h_embs, np.array([[loudness(v)] for v in h_levels], np.float32)], axis=1)
    if len(hx):
        gen_imgs = np.array([g.predict(v) for v in hx])
        flt = gen.predict(hx, verbose=0)
        metrics["int8_vs_float_mean_abs"] = round(pixel_distance(gen_imgs, flt), 5)
        metrics["output_range"] = [float(gen_imgs.min()), float(gen_imgs.max())]
        metrics["time_ms_per_image_int8_1thread"] = round(time_per_image(g, hx[0], 30 if args.quick else 300), 3)
        metrics["sound_model_ms_per_invoke_1thread"] = round(
            time_per_image(sound, np.zeros(sound.input_shape, np.float32), 30 if args.quick else 300), 3)
        metrics["time_ratio_generator_vs_sound_model"] = round(
            metrics["time_ms_per_image_int8_1thread"] / max(metrics["sound_model_ms_per_invoke_1thread"], 1e-9), 3)
    if not args.no_eval and len(hx):
        metrics |= evaluate(args, settings, out, g, labels, controls, h_embs, h_ys, h_clips, h_levels, h_tops, gen_imgs,
                            world_windows(sound, 24 if not args.quick else 2, params, held_out=True))
    from training.plots import plot_curves

    plot_curves(history, out / "curves.png", "generator: L1 + edge loss")
    metrics["total_seconds"] = round(time.monotonic() - t_start, 1)
    meta["metrics"] = {k: metrics[k] for k in ("recognisability", "diversity", "continuity",
                                               "time_ms_per_image_int8_1thread") if k in metrics}
    write_metadata(tfl, meta)
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if args.export:
        install_model(tfl, args.export, meta)
        print(f"{PROG}: installed {args.export}")
    print(f"{PROG}: {cx['params']} params, {cx['macs'] / 1e6:.1f} M MACs; "
          + (f"recognisable {100 * metrics['recognisability']['accuracy']:.1f}%; " if "recognisability" in metrics else "")
          + f"{metrics.get('time_ms_per_image_int8_1thread', float('nan')):.2f} ms/image; report in {out}")
    return metrics


def _per_clip_and_smoothed(g, judge, h_embs, h_ys, h_clips, h_levels) -> tuple[float, float]:
    """Two more views of recognisability on the same held-out windows.

    Per clip: one picture from the clip's mean embedding (its loud windows, re-normalised) at its
    mean loudness. Smoothed like the box: the clip's windows in order through ``DreamPicture``
    (0.25 s apart, the box's moving average), every picture after the first judged.
    """
    from device.screen.dream import DreamPicture

    clip_imgs, clip_ys, box_imgs, box_ys = [], [], [], []
    for cid in dict.fromkeys(h_clips.tolist()):
        idx = np.flatnonzero(h_clips == cid)
        e = _unit(h_embs[idx].mean(axis=0))
        clip_imgs.append(g.predict(np.append(e, loudness(float(np.mean(h_levels[idx])))).astype(np.float32)))
        clip_ys.append(h_ys[idx[0]])
        d = DreamPicture(g.predict)
        for k, i in enumerate(idx):
            img = d.step(h_embs[i], float(h_levels[i]), None if k == 0 else 0.25)
            if k:
                box_imgs.append(img.copy())
                box_ys.append(h_ys[i])

    def acc(imgs, ys):
        if not imgs:
            return None
        return round(float(np.mean(np.argmax(judge.predict(np.array(imgs), verbose=0), axis=1) == np.array(ys))), 4)

    return acc(clip_imgs, clip_ys), acc(box_imgs, box_ys)


def evaluate(args, settings, out, g, labels, controls, h_embs, h_ys, h_clips, h_levels, h_tops, gen_imgs, world_test):
    """Judge, diversity, continuity and the report figures (held-out sounds only)."""
    import keras

    n = len(labels)
    jx, jy = judge_set(labels, settings.judge_per_class, args.seed)
    keras.utils.set_random_seed(args.seed + 3)
    judge = build_judge(n)
    judge.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    idx = np.random.default_rng([args.seed, 9]).permutation(len(jx))
    n_val = max(1, len(jx) // 10)
    judge.fit(jx[idx[n_val:]], jy[idx[n_val:]], epochs=settings.judge_epochs, batch_size=32, verbose=2)
    judge_val = float(np.mean(np.argmax(judge.predict(jx[idx[:n_val]], verbose=0), axis=1) == jy[idx[:n_val]]))
    pred = np.argmax(judge.predict(gen_imgs, verbose=0), axis=1)
    per_class = {labels[c]: round(float(np.mean(pred[h_ys == c] == c)), 4) for c in range(n) if np.any(h_ys == c)}
    # The targets the generator aims at for these held-out sounds (no jitter), judged the same way: an upper bound.
    targets = np.array([V.class_variant(labels[c], u, loudness(lv))
                        for c, u, lv in zip(h_ys, controls.class_u(h_embs, h_ys), h_levels)])
    target_acc = float(np.mean(np.argmax(judge.predict(targets, verbose=0), axis=1) == h_ys))
    right = h_tops == h_ys  # windows the sound model itself names correctly (a diagnostic split)
    clip_acc, box_acc = _per_clip_and_smoothed(g, judge, h_embs, h_ys, h_clips, h_levels)
    recog = {"accuracy": round(float(np.mean(pred == h_ys)), 4), "images": len(pred),
             "per_clip_accuracy": clip_acc, "smoothed_like_the_box_accuracy": box_acc,
             "accuracy_where_sound_model_right": round(float(np.mean(pred[right] == h_ys[right])), 4) if right.any() else None,
             "accuracy_where_sound_model_wrong": round(float(np.mean(pred[~right] == h_ys[~right])), 4) if (~right).any() else None,
             "sound_model_window_accuracy": round(float(np.mean(right)), 4),
             "per_class": per_class, "judge_accuracy_on_its_own_held_out_variants": round(judge_val, 4),
             "judge_accuracy_on_the_targets_of_these_sounds": round(target_acc, 4),
             "held_out": f"synthetic_sound fold-10 clips (i % 10 == 9), {settings.heldout_per_class}/class, loud windows",
             "judge_trained_on": f"{len(jx)} picture variants, controls from seed [{args.seed}, 424242] (no generator target)"}
    div = diversity(gen_imgs, h_ys, n, seed=args.seed)
    div_t = diversity(targets, h_ys, n, seed=args.seed)
    div["targets_within_class_mean"] = round(div_t["within_class_mean"], 4)
    div["targets_between_class_mean"] = round(div_t["between_class_mean"], 4)
    div["distance"] = "mean absolute pixel difference, RGB in [0, 1]"

    # Continuity: walk from one class's most typical held-out window (nearest its training centre) to another's.
    strips, names, walks = [], [], {}
    for a, b in WALKS:
        if a not in labels or b not in labels:
            continue
        ends = []
        for c in (labels.index(a), labels.index(b)):
            e_c = h_embs[h_ys == c]
            ends.append(e_c[int(np.argmax(e_c @ controls.centres[c]))] if len(e_c) else None)
        if ends[0] is None or ends[1] is None:
            continue
        imgs, d = walk(g, ends[0], ends[1], 12, 0.8)
        strips.append(imgs)
        names.append(f"{a} -> {b}")
        walks[f"{a}->{b}"] = {"per_step": [round(v, 4) for v in d], "max": round(max(d), 4),
                              "mean": round(float(np.mean(d)), 4), "end_to_end": round(pixel_distance(imgs[0], imgs[-1]), 4)}
    cont = {"walks": walks, "steps": 12, "loudness": 0.8,
            "max_step": round(max(w["max"] for w in walks.values()), 4) if walks else None,
            "mean_step": round(float(np.mean([w["mean"] for w in walks.values()])), 4) if walks else None,
            "method": "e(t) = normalise((1 - t) a + t b), 12 steps; mean absolute pixel difference between steps"}

    # Figures: per class 8 generated pictures from held-out sounds (different clips first) and their targets.
    rows, trows = [], []
    for c in range(n):
        idx_c = np.flatnonzero(h_ys == c)
        order = sorted(idx_c, key=lambda i: (list(h_clips[idx_c]).index(h_clips[i]) % 3, i))
        pick = np.array(order[:: max(1, len(order) // 8)][:8]) if len(order) else np.array([], int)
        rows.append(gen_imgs[pick])
        trows.append(targets[pick])
    if len(world_test):
        wx = np.concatenate([world_test, np.full((len(world_test), 1), 0.8, np.float32)], axis=1)
        rows.append(np.array([g.predict(v) for v in wx[:8]]))
    row_names = labels + (["unknown (held-out world)"] if len(world_test) else [])
    labelled_grid(rows, row_names, out / "samples.png", "generated from held-out sounds (int8 generator)")
    labelled_grid(trows, labels, out / "targets.png", "the picture variants those sounds were aimed at")
    if strips:
        labelled_grid(strips, names, out / "interpolation.png", "walking the embedding from one sound to another")
    save_png(V.contact_sheet(np.concatenate([r[:4] for r in rows[:n]]), 8), out / "samples_raw.png")
    return {"recognisability": recog, "diversity": div, "continuity": cont}


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_cli

    args = parse_args(argv)
    return run_cli(PROG, lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
