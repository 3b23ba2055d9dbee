"""ESC-50 (Piczak 2015): 2000 five-second clips, 50 classes, 5 predefined folds.

Layout::

    ROOT/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take
    ROOT/audio/*.wav      44.1 kHz mono

Clips are 5 s; with the default ``clip_seconds=4.0`` the last second (mostly
the dataset's own silence padding) is cropped; pass ``clip_seconds=5.0`` to keep it.

``map_to_urbansound=True`` keeps only the categories that are clearly the same
sound as one of our classes, renamed, with ``labels`` = URBANSOUND_CLASSES so
label indices match a model trained on UrbanSound8K or synthetic data. The map
(:data:`ESC50_TO_URBANSOUND`) is deliberately short: chainsaw and hand_saw are
not drilling, fireworks are not gun shots, laughing/crying_baby are not
children playing, and train/helicopter/airplane are not engine idling.
"""

from __future__ import annotations

import os
from typing import Iterable

from device.errors import InputFileError
from training.datasets import URBANSOUND_CLASSES, Dataset, DatasetReport
from training.datasets.audio_io import load_entries_or_fail, warn_skipped
from training.datasets.urbansound8k import cap_per_class, parse_folds, read_csv, select_folds

METADATA = os.path.join("meta", "esc50.csv")
REQUIRED_COLUMNS = ("filename", "fold", "category")

ESC50_TO_URBANSOUND = {
    "dog": "dog_bark",
    "siren": "siren",
    "car_horn": "car_horn",
    "engine": "engine_idle",
}


def _category_order(rows: list[dict]) -> tuple[str, ...]:
    # ESC-50's own index order (the "target" column) when it is there and consistent.
    try:
        by_target = {int(r["target"]): r["category"] for r in rows}
        if len(set(by_target.values())) == len(by_target):
            return tuple(by_target[t] for t in sorted(by_target))
    except (KeyError, ValueError):
        pass
    return tuple(sorted({r["category"] for r in rows}))


def load_esc50(root: str, *, sample_rate: int = 16000, clip_seconds: float = 4.0, progress: bool = True,
               folds: Iterable[int] | int | None = None, map_to_urbansound: bool = False,
               esc10_only: bool = False, max_per_class: int | None = None,
               workers: int | None = None) -> Dataset:
    """Load ESC-50 from ``root`` (all 50 categories, or only those mapped onto URBANSOUND_CLASSES)."""
    csv_path = os.path.join(root, METADATA)
    skipped: list[tuple[str, str]] = []
    rows = parse_folds(read_csv(csv_path, REQUIRED_COLUMNS), csv_path, skipped)
    warn_skipped(skipped, csv_path)
    labels = _category_order(rows)
    if esc10_only:
        if rows and "esc10" not in rows[0]:
            raise InputFileError(f"{csv_path}: esc10_only needs the 'esc10' column")
        rows = [r for r in rows if r["esc10"].lower() == "true"]
    if map_to_urbansound:
        rows = [dict(r, category=ESC50_TO_URBANSOUND[r["category"]]) for r in rows
                if r["category"] in ESC50_TO_URBANSOUND]
        labels = URBANSOUND_CLASSES
        if not rows:
            raise InputFileError(f"{csv_path}: no clip of a category that maps onto ours "
                                 f"({', '.join(ESC50_TO_URBANSOUND)})")
    rows = cap_per_class(select_folds(rows, csv_path, folds), max_per_class, "category")
    entries = [(os.path.join(root, "audio", r["filename"]), r["category"], r["_fold"]) for r in rows]
    clips = load_entries_or_fail(entries, root, "ESC-50", skipped, sample_rate=sample_rate,
                                 clip_seconds=clip_seconds, progress=progress, workers=workers)
    if not map_to_urbansound:
        present = {c.label for c in clips}
        labels = tuple(name for name in labels if name in present)
    report = DatasetReport("esc50", root, len(clips), skipped)
    what = "mapped onto UrbanSound8K classes" if map_to_urbansound else f"{len(labels)} categories"
    desc = (f"ESC-50{'-10' if esc10_only else ''} at {root} ({what}): {len(clips)} clips, "
            f"folds {sorted({c.fold for c in clips})}, {clip_seconds:g} s at {sample_rate} Hz mono "
            f"({len(skipped)} skipped)")
    return Dataset(clips, labels, report, desc)
