"""Sound datasets as one in-memory shape: clips of 16 kHz mono float32 with a label and a fold.

    from training.datasets import load_dataset
    ds = load_dataset("urbansound8k", "/data/UrbanSound8K")      # or "synthetic", "esc50", "folders"

Every format gives the same :class:`Dataset`: ``clips`` (each exactly
``clip_seconds`` long, padded with zeros or cropped), ``labels`` (index order
for the model), a :class:`DatasetReport` of what was loaded and skipped, and a
one-line ``description`` plus ``sha256()`` for model metadata.

Fold convention (all formats): the **highest fold is the held-out test set and
the one below it validation**; the rest train. Folds come from the dataset
itself where it has them (UrbanSound8K 1-10, ESC-50 1-5), from the clip index
for synthetic data (1-10) and from a file-name hash or a ``folds.csv`` for
folders (1-5); see each loader's docstring. Cross-validation is one training
run per test fold.

Also importable from here: ``synthesize_clip``, ``synthetic_dataset``,
``synthetic_playlist`` (see :mod:`.synthetic_sound`) and ``read_audio``,
``write_wav`` (see :mod:`.audio_io`).

Files that can't be read are skipped with a :class:`DatasetWarning` naming
them and listed in ``report.skipped``; problems that make the whole dataset
unusable (missing folder or metadata, empty class, unknown format or option)
raise :class:`device.errors.InputFileError` with "PATH: problem".
"""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device.errors import InputFileError
from device.sound.labels import URBANSOUND_CLASSES  # noqa: F401  (re-exported: one list, shared with the device)

FORMATS = ("synthetic", "urbansound8k", "esc50", "folders")


class DatasetWarning(UserWarning):
    """A file of a dataset was skipped (unreadable, missing, unusable); loading goes on."""


@dataclass
class Clip:
    """One labelled sound: float32 mono at the dataset's rate, exactly ``clip_seconds`` long.

    ``onset``/``offset`` (seconds) say where the sound is: exact for synthetic
    clips; for real files, where the non-silent audio starts and ends (digital
    silence and zero padding trimmed), not an annotated event.
    """

    audio: np.ndarray
    label: str
    fold: int
    source: str  # file path, or "synthetic:<seed>"
    onset: float = 0.0
    offset: float | None = None


@dataclass
class DatasetReport:
    """What a loader did: how many clips it loaded and which files it skipped, and why."""

    format: str
    path: str | None
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "path": self.path, "loaded": self.loaded,
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped]}


@dataclass
class Dataset:
    """Labelled clips plus the label order, a load report and a human description."""

    clips: list[Clip]
    labels: tuple[str, ...]
    report: DatasetReport
    description: str

    def folds(self) -> list[int]:
        """Sorted fold ids present; by convention [-1] is test and [-2] validation."""
        return sorted({c.fold for c in self.clips})

    def counts(self) -> dict[str, int]:
        """Clips per label, in label order (labels without clips count 0)."""
        out = {name: 0 for name in self.labels}
        for c in self.clips:
            out[c.label] = out.get(c.label, 0) + 1
        return out

    def sha256(self) -> str:
        """Hash of labels, clip order, file names, folds, spans and audio samples.

        File names enter without their folder, so the same data copied to
        another machine hashes the same.
        """
        h = hashlib.sha256()
        h.update("\x1f".join(self.labels).encode())
        for c in self.clips:
            name = c.source if c.source.startswith("synthetic:") else os.path.basename(c.source)
            h.update(f"\x1e{name}\x1f{c.label}\x1f{c.fold}\x1f{c.onset:.4f}\x1f{c.offset}\x1f".encode())
            h.update(np.ascontiguousarray(c.audio, dtype="<f4").tobytes())
        return h.hexdigest()


def _loader(fmt: str):
    # Imported lazily: the submodules import the classes above from this package.
    if fmt == "synthetic":
        from training.datasets.synthetic_sound import load_synthetic
        return load_synthetic
    if fmt == "urbansound8k":
        from training.datasets.urbansound8k import load_urbansound8k
        return load_urbansound8k
    if fmt == "esc50":
        from training.datasets.esc50 import load_esc50
        return load_esc50
    from training.datasets.folders import load_folders
    return load_folders


def load_dataset(format: str, path: str | os.PathLike | None = None, *, sample_rate: int = 16000,
                 clip_seconds: float = 4.0, progress: bool = True, **options) -> Dataset:
    """Load a dataset of one of :data:`FORMATS` (extra ``options`` go to that format's loader).

    Options: synthetic ``n_per_class, seed, labels, workers``; urbansound8k
    ``folds, max_per_class, workers``; esc50 ``folds, map_to_urbansound,
    esc10_only, max_per_class, workers``; folders ``folds, n_folds,
    max_per_class, workers``.
    """
    if format not in FORMATS:
        raise InputFileError(f"unknown dataset FORMAT '{format}' (expected one of {', '.join(FORMATS)})")
    loader = _loader(format)
    accepted = [n for n, p in inspect.signature(loader).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("sample_rate", "clip_seconds", "progress")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputFileError(f"dataset format '{format}': unknown option(s) {', '.join(unknown)} "
                             f"(accepted: {', '.join(accepted) or 'none'})")
    if not clip_seconds or clip_seconds <= 0:
        raise InputFileError(f"dataset format '{format}': clip_seconds must be positive (got {clip_seconds})")
    if format == "synthetic":
        if path is not None:
            raise InputFileError(f"{os.fspath(path)}: the synthetic dataset is generated and takes no data path")
        return loader(sample_rate=sample_rate, clip_seconds=clip_seconds, progress=progress, **options)
    if path is None:
        raise InputFileError(f"dataset format '{format}' needs a dataset folder (--data PATH)")
    root = os.fspath(path)
    if not os.path.exists(root):
        raise InputFileError(f"{root}: no such dataset folder")
    if not os.path.isdir(root):
        raise InputFileError(f"{root}: not a folder (a {format} dataset is a folder)")
    return loader(root, sample_rate=sample_rate, clip_seconds=clip_seconds, progress=progress, **options)


# Conveniences re-exported lazily (the submodules import this package's classes first).
_LAZY = {"synthesize_clip": "synthetic_sound", "synthetic_dataset": "synthetic_sound",
         "synthetic_playlist": "synthetic_sound", "read_audio": "audio_io", "write_wav": "audio_io"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"training.datasets.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'training.datasets' has no attribute '{name}'")
