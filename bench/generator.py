"""The sound -> picture generator (dream mode): int8 invoke time against the sound model's, one thread each.

Both models run through ``device.model.Model`` in this process, one after the
other, so the ratio compares them on the same machine at the same moment. The
generator's input is a real one: the siren class centre from the sound
model's metadata plus a loudness. The dream-mode hop (``DreamPicture.follow``:
smoothing, one invoke and the bilinear scale-up to the display picture) is
timed too, since that is what the box adds per hop. Raspberry Pi figures are
estimates from the MAC count (bench/estimate.py), not measurements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .report import shown
from .stats import exact, figure, measure, ratio


class _Hop:
    """A classified decision hop, as the sound pipeline's ``WindowResult`` looks to the dream picture."""

    skipped = None
    level_dbfs = -20.0
    t = 0.0


def bench_generator(models: Path, repeats: int, min_time: float) -> tuple[dict, dict, dict]:
    from device.frontend import LogMelParams
    from device.model import Model
    from device.screen.dream import DreamPicture

    from .models import _sound_input

    gen_path, sound_path = models / "generator.tflite", models / "sound.tflite"
    for p in (gen_path, sound_path):
        if not p.is_file():
            return {}, {}, {"generator": f"not available: {shown(p)} missing"}
    gen = Model(gen_path, kind="generator", num_threads=1)
    sound = Model(sound_path, expected_frontend=LogMelParams(), num_threads=1)
    meta = gen.metadata
    centres = (sound.metadata.get("open_set") or {}).get("class_centres") or {}
    e = np.asarray(centres.get("siren") or np.eye(1, sound.embedding_dim)[0], np.float32)
    x = np.append(e / np.linalg.norm(e), 0.8).astype(np.float32)
    sx = _sound_input(sound.metadata)
    t_gen = measure(lambda: gen.predict(x), repeats, min_time)
    t_sound = measure(lambda: sound.infer(sx), repeats, min_time)
    dream = DreamPicture.from_model(gen_path, sound.metadata, source=lambda: e)
    t_hop = measure(lambda: dream.follow(_Hop()), repeats, min_time)  # a new hop object each call: one step each
    cx = meta.get("complexity") or {}
    figures: dict[str, Any] = {
        "generator.int8_tflite": figure(t_gen, "ms", "generator: int8 TFLite invoke via device.model.Model, 1 thread",
                                        1e3),
        "generator.over_sound_invoke": ratio(t_gen, t_sound, "generator invoke time / sound model invoke time "
                                                             "(same run, 1 thread each)"),
        "generator.dream_hop": figure(t_hop, "ms", "dream mode per hop: smoothing + generator + scale-up to 256x256, "
                                                   "1 thread", 1e3),
        "generator.int8_bytes": exact(gen_path.stat().st_size, "bytes", "generator: int8 .tflite size"),
    }
    if cx.get("params") and cx.get("macs"):
        figures["generator.params"] = exact(cx["params"], "count", "generator: parameters")
        figures["generator.macs"] = exact(cx["macs"], "count", "generator: multiply-accumulates per picture")
    notes = {"generator_int8_model": str(gen_path), "generator_runtime": gen.runtime,
             "generator_sound_model_pinned": json.dumps(meta.get("sound_model", {}).get("embedding_version")),
             "generator_input": "siren class centre + loudness 0.8"}
    return figures, notes, {}
