"""The demo's teach phase: the box learns a sound it never heard, then tells it apart from another.

Three takes of a sound from a family the sound model never trained on are
enrolled with the same ``enrol`` the ``teach`` command uses; then the box runs
a playlist holding a fourth take, a sound of another unseen family (which must
come out ``unknown``: shown as the "teach me" card) and silence. Both families
come from the held-out part of the generated sound world, so this shows
teaching and ``unknown`` on sounds the model's training never saw.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from device.sound.labels import UNKNOWN
from device.wavfile import write_wav

SR = 16000
LEVEL_DBFS = -18.0  # peak level of the demo's sounds: a child's sound at arm's length


def _at_level(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / max(np.max(np.abs(x)), 1e-9) * 10 ** (LEVEL_DBFS / 20)


def sounds() -> tuple[str, list[np.ndarray], np.ndarray, np.ndarray]:
    """(label, three takes, a fourth take, a sound of another family) from two held-out families."""
    from training.datasets.sound_world import family_kind, family_sound, test_families

    taught, other = test_families()[:2]
    label = f"my {family_kind(taught)}"
    takes = [_at_level(family_sound(taught, i)) for i in range(3)]
    return label, takes, _at_level(family_sound(taught, 3)), _at_level(family_sound(other, 0))


def playlist(fourth: np.ndarray, other: np.ndarray, label: str, folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A WAV (silence, the taught sound, silence, the unknown sound, silence) and its truth."""
    gap = np.zeros(int(1.5 * SR))
    parts, truth, t = [np.zeros(SR)], [], 1.0
    for name, x in ((label, fourth), (UNKNOWN, other)):
        truth.append({"label": name, "onset": round(t, 4), "offset": round(t + len(x) / SR, 4)})
        parts += [x, gap]
        t += (len(x) + len(gap)) / SR
    wav = folder / "teach-playlist.wav"
    write_wav(wav, np.concatenate(parts).astype(np.float32), SR)
    wav.with_suffix(".json").write_text(json.dumps({"sample_rate": SR, "events": truth}, indent=1) + "\n")
    return wav, truth


def enrol_takes(cfg, folder: Path) -> tuple[str, np.ndarray, np.ndarray, Any]:
    """Enrol the three takes into ``folder/taught``; returns (label, fourth take, other sound, taught class)."""
    from device.config import TeachConfig
    from device.model import Model
    from device.frontend import LogMelParams
    from device.sound.taught import TaughtStore
    from device.sound.teach import Take, TeachRefused, enrol

    label, takes, fourth, other = sounds()
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(takes, 1):  # what the user would have recorded, kept for listening
        write_wav(folder / f"take-{i}.wav", x.astype(np.float32), SR)
    model = Model(cfg.sound.model, expected_frontend=LogMelParams())
    teach: TeachConfig = dataclasses.replace(cfg.teach, dir=str(folder / "taught"))
    store = TaughtStore(teach.dir)
    as_takes = [Take(f"take-{i}.wav", (x * 32767).astype(np.int16)) for i, x in enumerate(takes, 1)]
    try:
        taught = enrol(store, model, label, as_takes, teach=teach, log=lambda line: print(f"  {line}"))
    except TeachRefused:
        # What a user sees and does: the warning above, then `teach ... --force` when the takes are right.
        print("  the demo goes on as a user would, with --force")
        taught = enrol(store, model, label, as_takes, teach=teach, force=True, log=lambda line: print(f"  {line}"))
    return label, fourth, other, taught


def has_embedding(model_path: str) -> bool:
    from device.model import Model

    return Model(model_path).has_embedding
