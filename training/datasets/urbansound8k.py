"""UrbanSound8K (Salamon et al. 2014): 8732 labelled slices of up to 4 s in 10 predefined folds.

Layout::

    ROOT/metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
    ROOT/audio/fold1/*.wav ... ROOT/audio/fold10/*.wav

The files mix rates (8-96 kHz), bit depths (8/16/24/32) and channel counts;
all become 16 kHz mono, padded with zeros or cropped to ``clip_seconds``.
Use the official folds as they are: slices of one recording share a fold, so
random splits would leak (the dataset authors' warning).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from typing import Iterable

from device.errors import InputFileError
from training.datasets import URBANSOUND_CLASSES, Dataset, DatasetReport
from training.datasets.audio_io import load_entries_or_fail, warn_skipped

METADATA = os.path.join("metadata", "UrbanSound8K.csv")
REQUIRED_COLUMNS = ("slice_file_name", "fold", "class")


def read_csv(path: str, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a metadata CSV as dicts; a missing file or column raises InputFileError naming it."""
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: metadata file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise InputFileError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(columns) or 'none'})")
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(f"{path}: can't read CSV ({e})") from None


def select_folds(rows: list[dict], csv_path: str, folds) -> list[dict]:
    """Keep rows of the requested folds; asking for a fold the metadata lacks is an error."""
    if folds is None:
        return rows
    wanted = {int(f) for f in ([folds] if isinstance(folds, int) else folds)}
    present = {r["_fold"] for r in rows}
    absent = sorted(wanted - present)
    if absent:
        raise InputFileError(f"{csv_path}: no fold(s) {absent} (the metadata has folds {sorted(present)})")
    return [r for r in rows if r["_fold"] in wanted]


def cap_per_class(rows: list[dict], max_per_class: int | None, key: str) -> list[dict]:
    """The first ``max_per_class`` rows of each class, in file order (deterministic subsets)."""
    if max_per_class is None:
        return rows
    seen: Counter = Counter()
    out = []
    for r in rows:
        if seen[r[key]] < max_per_class:
            seen[r[key]] += 1
            out.append(r)
    return out


def parse_folds(rows: list[dict], csv_path: str, skipped: list) -> list[dict]:
    """Attach an int ``_fold`` to each row; rows with a bad fold are skipped with a reason."""
    good = []
    for r in rows:
        try:
            r["_fold"] = int(r["fold"])
            good.append(r)
        except ValueError:
            skipped.append((f"{csv_path} ({r.get('slice_file_name') or r.get('filename')})", f"bad fold '{r['fold']}'"))
    return good


# The official CSV spells one class differently from our label set.
CSV_CLASS_NAMES = {"engine_idling": "engine_idle"}


def load_urbansound8k(root: str, *, sample_rate: int = 16000, clip_seconds: float = 4.0, progress: bool = True,
                      folds: Iterable[int] | int | None = None, max_per_class: int | None = None,
                      workers: int | None = None) -> Dataset:
    """Load UrbanSound8K from ``root``; ``folds`` restricts to some folds, ``max_per_class`` caps each class."""
    csv_path = os.path.join(root, METADATA)
    skipped: list[tuple[str, str]] = []
    rows = parse_folds(read_csv(csv_path, REQUIRED_COLUMNS), csv_path, skipped)
    known = []
    for r in rows:
        r["class"] = CSV_CLASS_NAMES.get(r["class"], r["class"])
        if r["class"] in URBANSOUND_CLASSES:
            known.append(r)
        else:
            skipped.append((f"{csv_path} ({r['slice_file_name']})", f"unknown class '{r['class']}'"))
    warn_skipped(skipped, csv_path)
    rows = cap_per_class(select_folds(known, csv_path, folds), max_per_class, "class")
    entries = [(os.path.join(root, "audio", f"fold{r['_fold']}", r["slice_file_name"]), r["class"], r["_fold"])
               for r in rows]
    clips = load_entries_or_fail(entries, root, "UrbanSound8K", skipped, sample_rate=sample_rate,
                                 clip_seconds=clip_seconds, progress=progress, workers=workers)
    report = DatasetReport("urbansound8k", root, len(clips), skipped)
    fold_ids = sorted({c.fold for c in clips})
    desc = (f"UrbanSound8K at {root}: {len(clips)} clips, folds {fold_ids}, "
            f"{clip_seconds:g} s at {sample_rate} Hz mono ({len(skipped)} skipped)")
    return Dataset(clips, URBANSOUND_CLASSES, report, desc)
