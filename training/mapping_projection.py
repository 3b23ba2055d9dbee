"""The default continuous mapping's projection: PCA of the training sounds' embeddings, into the model metadata.

    python -m training.mapping_projection [--model models/sound.tflite] [--families 64] [--clips 6]

Runs the committed int8 sound model (the device's own front end and windows) on sounds it was
trained on: instances 0-1 of ``--families`` training families of the generated sound world and
``--clips`` generated clips of each built-in class. The three principal components of their window
embeddings (with the mean and each component's spread) become the ``mapping_projection`` key of the
model's metadata JSON, for ``device.sound.mapping.DefaultMapping`` ([continuous] mode = "default"):
similar sounds get similar colours and CC values, and the colours spread over the sounds the model
knows. Only that key is added (or replaced), atomically; nothing is retrained and every other key is
left as it is. The embedding version is recorded: a model with another embedding falls back to the
random projection until this is run again (``make models`` runs it after export).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.atomic import write_atomic
from device.config import PROJECT_ROOT
from device.frontend import LogMelParams
from device.sound.mapping import PROJECTION_KEY

SEED = 2026


def embeddings(model, families: int, clips: int, seed: int = SEED) -> tuple[np.ndarray, dict[str, int]]:
    """Window embeddings (n x dim) of training-family instances and built-in class clips; counts by source."""
    from device.sound.open_set import infer
    from device.sound.teach import take_windows
    from training.augment import room_realism
    from training.datasets.sound_world import family_sound, train_families
    from training.datasets.synthetic_sound import synthesize_clip
    from training.sound_windows import clip_windows

    params = LogMelParams()
    rng = np.random.default_rng(seed)
    windows: list[np.ndarray] = []
    fams = train_families()
    picked = [fams[i] for i in np.linspace(0, len(fams) - 1, min(families, len(fams))).astype(int)]
    for f in picked:
        for i in range(2):
            x = room_realism(family_sound(f, i), rng, params.sample_rate, snr_db=(15.0, 30.0), p_noise=0.7)
            x = x * (0.1 / max(float(np.max(np.abs(x))), 1e-6))
            windows += take_windows(np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16), params,
                                    params.silence_dbfs)
    n_family = len(windows)
    for label in model.labels:
        for k in range(clips):
            windows += list(clip_windows(synthesize_clip(label, seed * 1000 + k), params))
    embs = [infer(model, w)[1] for w in windows]
    return np.stack(embs).astype(np.float64), {"family_windows": n_family, "class_windows": len(windows) - n_family,
                                               "families": len(picked), "clips_per_class": clips}


def projection(emb: np.ndarray) -> dict:
    """Mean, the top three principal directions (rows) and the spread along each."""
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    mean = e.mean(axis=0)
    _, s, vt = np.linalg.svd(e - mean, full_matrices=False)
    scale = s[:3] / np.sqrt(len(e) - 1)
    var = s ** 2
    return {"mean": [round(float(v), 6) for v in mean], "components": [[round(float(v), 6) for v in r] for r in vt[:3]],
            "scale": [round(float(v), 6) for v in scale],
            "explained_variance": [round(float(v), 4) for v in var[:3] / var.sum()]}


def write_projection(meta_path: Path, block: dict) -> None:
    """Add (or replace) only the projection key of the metadata JSON, atomically, keeping key order."""
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta[PROJECTION_KEY] = block
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.mapping_projection", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "sound.tflite"))
    ap.add_argument("--families", type=int, default=64, help="training families of the sound world (2 instances each)")
    ap.add_argument("--clips", type=int, default=6, help="generated clips of each built-in class")
    args = ap.parse_args(argv)
    from device.model import Model, metadata_path_for

    t0 = time.monotonic()
    model = Model(args.model, expected_frontend=LogMelParams())
    if not model.has_embedding:
        print(f"{args.model}: the model has no embedding output; nothing to project", file=sys.stderr)
        return 2
    emb, counts = embeddings(model, args.families, args.clips)
    block = {"embedding_version": model.embedding_version, **projection(emb),
             "source": f"{counts['family_windows']} windows of {counts['families']} training families of the sound "
                       f"world (2 instances each) and {counts['class_windows']} windows of {counts['clips_per_class']} "
                       "generated clips per built-in class", "windows": len(emb)}
    meta_path = metadata_path_for(args.model)
    write_projection(meta_path, block)
    print(f"{meta_path}: {PROJECTION_KEY} from {len(emb)} windows (explained variance "
          f"{', '.join(f'{v:.2f}' for v in block['explained_variance'])}) in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
