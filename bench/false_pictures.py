"""Pictures the box wrongly shows in a room that makes none of its sounds, through its own decision.

The negatives stream of issue 11 (``training.datasets.negatives.negatives_stream``:
speech in unseen voices and languages, music, speech over music, household
sounds; events 70 % of the time, quiet room noise between; seed 0, the stream
``training.embedding_eval`` counts on) played through the box's real
``SoundPipeline`` (the [sound] decision design given, mic chunks of the demo
config) and open-set decision with taught sounds, in simulated time: every
``ClassDetected`` of a built-in or taught label is a false picture; ``unknown``
is a teach-me card. ``training.embedding_eval`` counts on the same stream with
a 0.25 s-hop re-implementation of the decision; this is the box itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

NEGATIVES_SEED = 0  # the stream training.embedding_eval reports on


def per_hour(shown, builtin, seconds: float) -> dict[str, float]:
    """Built-in pictures, taught pictures and teach-me cards per hour from the labels ``shown``."""
    from device.sound.labels import UNKNOWN

    hours = seconds / 3600
    unknown = sum(x == UNKNOWN for x in shown)
    mine = sum(x in builtin for x in shown)
    return {"builtin_per_hour": mine / hours, "taught_per_hour": (len(shown) - mine - unknown) / hours,
            "unknown_cards_per_hour": unknown / hours}


def false_pictures(model_path: Path, taught: Path | None, designs, minutes: float = 10.0,
                   seed: int = NEGATIVES_SEED, unknowns=("default",), taught_families=()) -> dict[str, dict[str, Any]]:
    """Per [sound] decision design: pictures per hour (``per_hour``) and the built-in ones by kind of sound,
    with the model's default calibration; with ``unknowns`` ("default", "strict"), each further
    ``[teach] unknown`` choice's under its name. The stream is rendered and the model loaded once for all;
    its household sounds never use ``taught_families`` (the box would rightly name those)."""
    from device.config import PROJECT_ROOT, load_config
    from device.frontend import LogMelParams
    from device.model import Model
    from device.sound.pipeline import ClassDetected, SoundPipeline
    from device.sound.teach import open_set_model
    from training.datasets.negatives import negatives_stream

    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    if taught:
        cfg = dataclasses.replace(cfg, teach=dataclasses.replace(cfg.teach, dir=str(taught)))
    params = LogMelParams()
    model = Model(model_path, expected_frontend=params, num_threads=1)
    audio, events = negatives_stream(minutes, seed=seed, exclude_families=taught_families)
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    builtin, chunk = set(model.labels), cfg.mic.chunk
    out: dict[str, dict[str, Any]] = {design: {} for design in designs}
    for unknown in unknowns:
        decider, _ = open_set_model(dataclasses.replace(cfg, teach=dataclasses.replace(cfg.teach, unknown=unknown)),
                                    model)
        for design in designs:
            settings = dataclasses.replace(cfg.sound, decision=design, max_latency_s=None)
            pipe = SoundPipeline(decider.predict, decider.labels, params, settings,
                                 agree_labels=decider.builtin_labels)
            shown = [e for i in range(0, len(pcm), chunk) for e in pipe.step(pcm[i : i + chunk], i)
                     if isinstance(e, ClassDetected)]
            by_kind: dict[str, dict[str, int]] = {}
            for e in shown:
                if e.label in builtin:
                    kind = next((k for k, a, b in events if a <= e.t <= b + 1.0), "quiet")
                    by_kind.setdefault(kind, {}).setdefault(e.label, 0)
                    by_kind[kind][e.label] += 1
            figures = {"stream_minutes": round(minutes, 2), "seed": seed,
                       **per_hour([e.label for e in shown], builtin, len(pcm) / params.sample_rate),
                       "builtin_by_kind": by_kind}
            if unknown == "default":
                out[design].update(figures)
            else:
                out[design][unknown] = figures
    return out
