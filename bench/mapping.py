"""Mappings taught by demonstration, measured (issue 13 §2): held-out error, jitter, training time, per-hop cost.

    python -m bench.mapping [--model models/sound.tflite] [--out bench] [--quick]

Demonstrations are built from sounds the model never trained on: 5 held-out families of the
generated sound world (``sound_world.test_families()``), 3 takes each (instances 0-2, room realism,
-20 dBFS), each family given its own LED colour and two CC values (``TARGETS``). Two splits:
``tune`` families (fams[2:7]; the regressors' parameters and the default method were chosen there)
and ``eval`` families (fams[14:19]; the figures quoted). Measured:

- leave-one-take-out error: each take held out in turn (all its windows, onset windows included, as
  the box sees them while the sound plays), the mapping fitted on the other 14 and asked for the held-out
  windows: mean absolute error of the colour (0..255 per channel) and of the CC values (0..127), and how
  often the prediction lies nearest the right family's outputs; for ``krr`` and ``knn`` (each with the
  parameter grid on the tune split);
- output jitter on a steady sound: 5 s of a sustained tone (not one of the families; taught as a sixth
  example from three 1 s takes of other seeds) through the real ``SoundPipeline`` and the box's
  ``ContinuousMapper``: std of the sent RGB (0..255) and CC values over the hops after the first 0.5 s,
  raw (unsmoothed mapping outputs) and as sent (smoothed), and how many CC messages went out;
- training time: embedding the takes and fitting (the fit the box makes at start);
- per-hop cost: ``ContinuousMapper.step`` (mapping, smoothing, change detection), microseconds, the
  model's inference excluded (the pipeline runs it anyway).

Writes ``mapping.json`` and the mapping plot ``mapping.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.config import PROJECT_ROOT, ContinuousConfig, SoundConfig
from device.frontend import LogMelParams
from device.sound.mapping import (
    KNN_K,
    KRR_LAMBDA,
    KRR_TAU,
    DefaultMapping,
    TaughtMapping,
    leave_one_take_out,
    projection_from_metadata,
)
from device.sound.mapping_store import Example, demonstrations

SR = 16000
TAKE_DBFS = -20.0
SPLITS = {"tune": slice(2, 7), "eval": slice(14, 19)}
# (colour, cc74, cc1) per demonstrated family: far apart, so a wrong guess shows.
TARGETS = [((1.0, 0.0, 0.0), 0, 127), ((0.0, 1.0, 0.0), 32, 96), ((0.0, 0.0, 1.0), 64, 0),
           ((1.0, 1.0, 0.0), 96, 32), ((1.0, 0.0, 1.0), 127, 64)]
STEADY_TARGET = ((1.0, 0.5, 0.0), 80, 80)
GRID = {"krr": [{"tau": t, "lambda": lam} for t in (0.05, 0.1, 0.2, 0.4) for lam in (0.01, 0.1, 1.0)],
        "knn": [{"k": k, "power": 2.0} for k in (1, 4, 8, 16)]}
STEADY_S = 5.0
SETTLE_S = 1.0  # the 1 s window holds only the tone from here on


def _outputs(target) -> dict[str, Any]:
    colour, cc74, cc1 = target
    return {"rgb": colour, "cc74": cc74, "cc1": cc1}


def family_examples(families, rng) -> list[Example]:
    from bench.taught_onset import _placed, _to_int16
    from training.datasets.sound_world import family_kind, family_sound

    return [Example(f"family {f} ({family_kind(f)})",
                    tuple(_to_int16(_placed(family_sound(f, i), TAKE_DBFS, rng)) for i in range(3)), _outputs(t))
            for f, t in zip(families, TARGETS)]


def steady_tone(seconds: float, seed: int) -> np.ndarray:
    """A sustained harmonic tone with a little vibrato over room noise (-20 dBFS, ~30 dB SNR), int16."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = 233.0 * (1 + 0.004 * np.sin(2 * np.pi * 5.3 * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = np.sin(ph) + 0.6 * np.sin(2 * ph) + 0.35 * np.sin(3 * ph) + 0.2 * np.sin(5 * ph)
    x *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)
    x = x / np.sqrt(np.mean(x ** 2)) * 10 ** (TAKE_DBFS / 20) + rng.normal(0, 10 ** ((TAKE_DBFS - 30) / 20), len(t))
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def _embedder(model):
    from device.sound.teach import embed_take_windows

    params = LogMelParams()

    def embed(audio):
        e, _, w = embed_take_windows(model, audio, params, SoundConfig().silence_dbfs)
        return e, w

    return embed


def loo_grid(demo) -> dict[str, list[dict]]:
    out = {}
    for method, grid in GRID.items():
        out[method] = [{**p, **{k: round(v, 3) for k, v in leave_one_take_out(demo.rows, demo.row_take, demo.targets,
                                                                              demo.names, method, p).items()}}
                       for p in grid]
    return out


def run_steady(model, mapping, settings: ContinuousConfig, max_distance: float | None = None) -> dict[str, Any]:
    """The steady tone through the pipeline and the mapper: jitter of raw and sent outputs, messages sent."""
    from device.runtime.continuous import ContinuousMapper, EmbeddingTap
    from device.sound.pipeline import SoundPipeline

    tap = EmbeddingTap(model)
    pipe = SoundPipeline(tap.predict, model.labels, LogMelParams(), SoundConfig(max_latency_s=None))
    mapper = ContinuousMapper(mapping, settings, SoundConfig().silence_dbfs, max_distance)
    audio = np.concatenate([np.zeros(SR // 2, np.int16), steady_tone(STEADY_S, 99), np.zeros(SR // 2, np.int16)])
    raw_rgb, raw_cc, sent_rgb, sent_cc, messages, last, nearest = [], [], [], [], 0, None, []
    led, ccs = None, {}
    for i in range(0, len(audio), 800):
        pipe.step(audio[i: i + 800], i)
        w = pipe.last
        if w is None or w is last:
            continue
        last = w
        new_led, changed = mapper.step(w.t, w.level_dbfs, w.skipped, tap.embedding if w.skipped is None else None)
        messages += len(changed)
        led = new_led or led
        ccs.update(changed)
        inside = 0.5 + SETTLE_S <= w.t <= 0.5 + STEADY_S - 0.05
        if inside and w.skipped is None:
            out = mapping.predict(tap.embedding)
            nearest.append(out.nearest if out.nearest is not None else np.nan)
            raw_rgb.append(np.asarray(out.colour) * 255)
            raw_cc.append([out.cc[n] for n in sorted(out.cc)])
            sent_rgb.append(np.asarray(led[0]) * 255 if led else np.zeros(3))
            sent_cc.append([ccs.get(n, 0) for n in sorted(out.cc)])
    r = {"hops": len(raw_rgb), "cc_messages": messages,
         "raw_rgb_std": round(float(np.std(raw_rgb, axis=0).mean()), 2),
         "raw_cc_std": round(float(np.std(raw_cc, axis=0).mean()), 2),
         "sent_rgb_std": round(float(np.std(sent_rgb, axis=0).mean()), 2),
         "sent_cc_std": round(float(np.std(sent_cc, axis=0).mean()), 2),
         "mean_rgb": [round(float(v)) for v in np.mean(sent_rgb, axis=0)],
         "mean_cc": [round(float(v), 1) for v in np.mean(sent_cc, axis=0)],
         "nearest_demonstration": None if np.all(np.isnan(nearest)) else round(float(np.nanmedian(nearest)), 3)}
    return r


def per_hop_us(mapping, embedding: np.ndarray, settings: ContinuousConfig, n: int = 2000,
               repeats: int = 5) -> list[float]:
    """Microseconds per ``ContinuousMapper.step`` on jittered copies of ``embedding``, one value per repeat."""
    from device.runtime.continuous import ContinuousMapper

    mapper = ContinuousMapper(mapping, settings, -45.0)
    rng = np.random.default_rng(0)
    embs = [embedding + 0.05 * rng.normal(size=embedding.shape) for _ in range(16)]
    embs = [e / np.linalg.norm(e) for e in embs]
    out, k = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            mapper.step(k * 0.05, -20.0, None, embs[k % 16])
            k += 1
        out.append((time.perf_counter() - t0) / n * 1e6)
    return out


def plot(demo, mapping: TaughtMapping, path: Path, title: str) -> Path:
    """Demonstration windows in the plane that best separates them; the background is the mapping's LED
    colour for the embedding at each grid point of that plane (lifted as said below)."""
    from training.plots import _plt

    plt = _plt()
    x = demo.rows / np.linalg.norm(demo.rows, axis=1, keepdims=True)
    mean = x.mean(axis=0)
    # The plane that best separates the demonstrated sounds (the top two Fisher discriminant directions,
    # shrunk within-sound scatter, made orthonormal so the grid is a true slice of the embedding space).
    ex = demo.take_example[demo.row_take]
    centres = np.stack([x[ex == i].mean(axis=0) for i in np.unique(ex)])
    within = sum(np.cov(x[ex == i].T, bias=True) * np.sum(ex == i) for i in np.unique(ex)) / len(x)
    between = np.cov((centres - mean).T, bias=True)
    vals, vecs = np.linalg.eig(np.linalg.solve(within + 0.1 * np.trace(within) / len(within) * np.eye(len(within)),
                                               between))
    top = np.real(vecs[:, np.argsort(-np.real(vals))[:2]])
    vt = np.linalg.qr(top)[0].T
    z = (x - mean) @ vt[:2].T
    lo, hi = z.min(axis=0) - 0.15, z.max(axis=0) + 0.15
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120))
    # Each grid point is lifted back into the embedding with the off-plane part of the demonstration window
    # nearest to it in the plane, so the background at a dot is what that window gets, and in between it
    # shows how the mapping blends as a sound moves along the plane.
    p = np.stack([gx.ravel(), gy.ravel()], axis=1)
    residual = x - mean - z @ vt[:2]
    nearest = np.argmin(((p[:, None, :] - z[None]) ** 2).sum(-1), axis=1)
    grid = mean + p @ vt[:2] + residual[nearest]
    pred, _ = mapping.model.predict(grid)
    img = np.clip(pred[:, :3], 0, 1).reshape(120, 120, 3)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=110)
    ax.imshow(img, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), aspect="auto", interpolation="bilinear")
    colours = np.clip(demo.targets[:, :3], 0, 1)
    ax.scatter(z[:, 0], z[:, 1], c=colours, edgecolors="black", linewidths=0.6, s=28)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("embedding, discriminant direction 1 of the demonstrated sounds")
    ax.set_ylabel("discriminant direction 2")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(model_path: str | Path, out: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    from bench.taught_onset import CachedModel
    from device.model import Model
    from training.datasets.sound_world import test_families

    model = CachedModel(Model(model_path, expected_frontend=LogMelParams()))
    embed = _embedder(model)
    fams = test_families()
    settings = ContinuousConfig()
    result: dict[str, Any] = {"model": str(model_path), "embedding_version": model.embedding_version,
                              "defaults": {"krr": {"tau": KRR_TAU, "lambda": KRR_LAMBDA}, "knn": {"k": KNN_K}},
                              "smoothing_s": settings.smoothing_s}
    for split, sl in SPLITS.items():
        if quick and split == "tune":
            continue
        rng = np.random.default_rng([seed, 13])
        examples = family_examples(fams[sl], rng)
        t0 = time.perf_counter()
        demo = demonstrations(examples, embed)
        embed_s = time.perf_counter() - t0
        grid = loo_grid(demo) if not quick else {}
        best = {m: min(g, key=lambda r: r["rgb"] + r["cc"]) for m, g in grid.items()}
        default = {"krr": leave_one_take_out(demo.rows, demo.row_take, demo.targets, demo.names, "krr"),
                   "knn": leave_one_take_out(demo.rows, demo.row_take, demo.targets, demo.names, "knn")}
        result[split] = {"families": [int(f) for f in fams[sl]], "takes": len(demo.take_embeddings),
                         "windows": len(demo.rows), "embed_s": round(embed_s, 3),
                         "loo_default": {m: {k: round(v, 3) for k, v in d.items()} for m, d in default.items()},
                         "loo_best": best, "loo_grid": grid}
    # Training time and per-hop cost on the eval demonstrations (+ the steady tone as a sixth example).
    rng = np.random.default_rng([seed, 14])
    examples = family_examples(fams[SPLITS["eval"]], rng)
    examples.append(Example("steady tone", tuple(steady_tone(1.0, s) for s in (1, 2, 3)), _outputs(STEADY_TARGET)))
    demo = demonstrations(examples, embed)
    timing, n_hops = {}, 300 if quick else 2000
    for method in ("krr", "knn"):
        reps = []
        for _ in range(3 if quick else 10):
            t0 = time.perf_counter()
            m = TaughtMapping(demo.names, demo.rows, demo.targets, method)
            reps.append(1e3 * (time.perf_counter() - t0))
        hops = per_hop_us(m, demo.rows[0], settings, n_hops)
        timing[method] = {"fit_ms": round(float(np.median(reps)), 3), "per_hop_us": round(float(np.median(hops)), 1),
                          "fit_ms_samples": reps, "per_hop_us_samples": hops}
    proj, why = projection_from_metadata(model.metadata, model.embedding_dim, model.embedding_version)
    default_map = DefaultMapping(proj, settings.cc)
    hops = per_hop_us(default_map, demo.rows[0], settings, n_hops)
    timing["default"] = {"per_hop_us": round(float(np.median(hops)), 1), "per_hop_us_samples": hops}
    result["timing"] = timing
    result["train_rows"] = len(demo.rows)
    result["default_projection"] = why
    knn = TaughtMapping(demo.names, demo.rows, demo.targets, "knn")
    result["steady"] = {"taught_knn": run_steady(model, knn, settings),
                        "taught_krr": run_steady(model, TaughtMapping(demo.names, demo.rows, demo.targets, "krr"),
                                                 settings),
                        "default": run_steady(model, default_map, settings),
                        # The tone is not among these 5 demonstrations: the mapping interpolates (no fade).
                        "taught_knn_not_demonstrated": run_steady(
                            model, TaughtMapping(demo.names, demo.rows[demo.take_example[demo.row_take] < 5],
                                                 demo.targets[demo.take_example[demo.row_take] < 5], "knn"),
                            settings, max_distance=2.0),
                        "default_unsmoothed": run_steady(model, default_map, ContinuousConfig(smoothing_s=0.0))}
    result["plot"] = str(plot(demo, knn, out / "mapping.png",
                              "map-teach: 5 held-out families + a steady tone, 3 takes each\n"
                              "dots: demonstration windows, their colour; background: the mapping's LED colour"))
    return result


def table(r: dict) -> str:
    header = ("| mapping | leave-one-take-out colour error (0..255) | CC error (0..127) | nearest right | "
              "jitter on a steady sound: RGB std raw / sent | CC std raw / sent | CC messages in 5 s | fit ms | "
              "per hop µs |")
    rows = [header, "|---" * 9 + "|"]
    ev, tm, st = r["eval"], r["timing"], r["steady"]
    for m in ("knn", "krr"):
        loo, s = ev["loo_default"][m], st[f"taught_{m}"]
        rows.append(f"| taught, {m} | {loo['rgb']:.1f} | {loo['cc']:.1f} | {100 * loo['nearest_ok']:.0f} % "
                    f"| {s['raw_rgb_std']} / {s['sent_rgb_std']} | {s['raw_cc_std']} / {s['sent_cc_std']} "
                    f"| {s['cc_messages']} | {tm[m]['fit_ms']} | {tm[m]['per_hop_us']} |")
    s = st["taught_knn_not_demonstrated"]
    rows.append(f"| taught, knn; the steady sound not demonstrated | - | - | - | {s['raw_rgb_std']} / "
                f"{s['sent_rgb_std']} | {s['raw_cc_std']} / {s['sent_cc_std']} | {s['cc_messages']} | - | - |")
    s = st["default"]
    rows.append(f"| default (projection) | - | - | - | {s['raw_rgb_std']} / {s['sent_rgb_std']} "
                f"| {s['raw_cc_std']} / {s['sent_cc_std']} | {s['cc_messages']} | - | {tm['default']['per_hop_us']} |")
    return "\n".join(rows)


def bench_mapping(model_path: Path, out: Path, quick: bool = False) -> tuple[dict, dict]:
    """``python -m bench``'s section: figures (errors, jitter, times) and the full result in the notes."""
    from device.model import Model

    if not Model(model_path, expected_frontend=LogMelParams()).has_embedding:
        return {}, {}, {"mapping": f"not available: {model_path} has no embedding output (nothing to map from)"}
    from bench.stats import figure

    r = evaluate(model_path, out, quick)
    print(table(r))
    ev, tm = r["eval"]["loo_default"]["knn"], r["timing"]
    # Errors can be 0 (the bench's figures may not): jitter and message counts live in the notes.
    figures = {
        "mapping.loo_colour_error": figure([max(ev["rgb"], 1e-3)], "of 255",
                                           "Taught mapping (k-NN): leave-one-take-out colour error, held-out families"),
        "mapping.loo_cc_error": figure([max(ev["cc"], 1e-3)], "of 127",
                                       "Taught mapping (k-NN): leave-one-take-out CC error"),
        "mapping.fit": figure(tm["knn"]["fit_ms_samples"], "ms",
                              f"Taught mapping: fit on {r['train_rows']} demonstration windows"),
        "mapping.per_hop": figure(tm["knn"]["per_hop_us_samples"], "µs",
                                  "Taught mapping: per hop (map, smooth, send on change)"),
        "mapping.default_per_hop": figure(tm["default"]["per_hop_us_samples"], "µs", "Default mapping: per hop"),
    }
    return figures, {"mapping": r | {"table": table(r)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.mapping", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "sound.tflite"))
    ap.add_argument("--out", default=str(PROJECT_ROOT / "bench"), help="folder for mapping.json and mapping.png")
    ap.add_argument("--quick", action="store_true", help="no parameter grid, fewer timing repeats")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.monotonic()
    r = evaluate(args.model, out, args.quick)
    r["elapsed_s"] = round(time.monotonic() - t0, 1)
    (out / "mapping.json").write_text(json.dumps(r, indent=1) + "\n")
    print(table(r))
    for split in SPLITS:
        if split in r and r[split]["loo_best"]:
            print(f"{split}: best by leave-one-take-out: " + "; ".join(
                f"{m} {p}" for m, p in r[split]["loo_best"].items()))
    print(f"wrote {out / 'mapping.json'} and {r['plot']} in {r['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
