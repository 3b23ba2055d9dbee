"""Your own recordings: one folder per class (the layout ``python -m device record`` writes).

Layout::

    DATA/<class>/*.wav        (also .flac and .ogg; any rate, depth, channels)
    DATA/folds.csv            optional: file,fold   e.g.  dog_bark/take3.wav,2

Classes are the sorted names of the sub-folders (hidden ones, starting with
"." or "_", are ignored, as are files with other extensions). A class folder
without audio is an error, and so is a DATA with fewer than two classes.

Folds: a file listed in ``folds.csv`` (path relative to DATA, "/" separated)
gets that fold; any other file gets ``1 + sha1(file name) mod n_folds`` (5 by
default). The hash depends only on the file's name, so adding recordings never
moves old ones between folds. Hashing spreads takes of one session across
folds; when that would leak (many near-identical takes), list them in folds.csv.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Iterable

from device.errors import InputFileError
from training.datasets import Dataset, DatasetReport
from training.datasets.audio_io import AUDIO_EXTENSIONS, load_files
from training.datasets.urbansound8k import cap_per_class, read_csv

FOLDS_FILE = "folds.csv"


def hash_fold(file_name: str, n_folds: int = 5) -> int:
    """Deterministic fold 1..n_folds from a file's name (not its folder)."""
    # os.fsencode: a name that is not valid UTF-8 (a Latin-1 card) hashes too; valid names hash as before.
    return 1 + int(hashlib.sha1(os.fsencode(file_name)).hexdigest()[:8], 16) % n_folds


def _visible(name: str) -> bool:
    return not name.startswith((".", "_"))


def _fold_table(root: str, n_folds: int) -> dict[str, int]:
    path = os.path.join(root, FOLDS_FILE)
    if not os.path.exists(path):
        return {}
    table = {}
    for i, row in enumerate(read_csv(path, ("file", "fold")), start=2):
        try:
            fold = int(row["fold"])
        except ValueError:
            raise InputFileError(f"{path}: line {i}: fold '{row['fold']}' is not a whole number") from None
        if fold < 1:
            raise InputFileError(f"{path}: line {i}: fold {fold} must be 1 or more")
        table[posixpath.normpath(row["file"].replace("\\", "/"))] = fold
    return table


def list_class_files(root: str) -> dict[str, list[str]]:
    """{class: sorted audio file names} for DATA; raises InputFileError on an unusable layout."""
    try:
        names = sorted(n for n in os.listdir(root) if _visible(n) and os.path.isdir(os.path.join(root, n)))
    except OSError as e:
        raise InputFileError(f"{root}: can't list folder ({e.strerror or e})") from None
    if len(names) < 2:
        found = f" ({', '.join(names)})" if names else ""
        raise InputFileError(f"{root}: found {len(names)} class folder(s){found}; need at least 2 "
                             "(layout: DATA/<class>/*.wav)")
    out = {}
    for name in names:
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder)
                       if _visible(f) and f.lower().endswith(AUDIO_EXTENSIONS)
                       and os.path.isfile(os.path.join(folder, f)))
        if not files:
            raise InputFileError(f"{folder}: class folder has no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        out[name] = files
    return out


def load_folders(root: str, *, sample_rate: int = 16000, clip_seconds: float = 4.0, progress: bool = True,
                 folds: Iterable[int] | int | None = None, n_folds: int = 5, max_per_class: int | None = None,
                 workers: int | None = None) -> Dataset:
    """Load DATA/<class>/*.wav; see the module docstring for folds."""
    if int(n_folds) < 1:
        raise InputFileError(f"{root}: n_folds must be 1 or more (got {n_folds})")
    classes = list_class_files(root)
    table = _fold_table(root, n_folds)
    rows = []
    for label, files in classes.items():
        for f in files:
            fold = table.get(f"{label}/{f}", hash_fold(f, n_folds))
            rows.append({"label": label, "path": os.path.join(root, label, f), "_fold": fold})
    if folds is not None:
        wanted = {int(f) for f in ([folds] if isinstance(folds, int) else folds)}
        rows = [r for r in rows if r["_fold"] in wanted]
        if not rows:
            raise InputFileError(f"{root}: no file in fold(s) {sorted(wanted)}")
    rows = cap_per_class(rows, max_per_class, "label")
    entries = [(r["path"], r["label"], r["_fold"]) for r in rows]
    clips, skipped = load_files(entries, sample_rate=sample_rate, clip_seconds=clip_seconds, progress=progress,
                                workers=workers, desc=os.path.basename(os.path.normpath(root)) or root)
    loaded = {c.label for c in clips}
    requested = {r["label"] for r in rows}
    for label in sorted(requested - loaded):
        n_bad = sum(1 for f, _ in skipped if os.path.dirname(f) == os.path.join(root, label))
        raise InputFileError(f"{os.path.join(root, label)}: no readable audio ({n_bad} file(s) skipped)")
    report = DatasetReport("folders", root, len(clips), skipped)
    labels = tuple(sorted(classes))
    by_table = sum(1 for r in rows if f"{r['label']}/{os.path.basename(r['path'])}" in table)
    desc = (f"folders at {root}: {len(clips)} clips, {len(labels)} classes ({', '.join(labels)}), "
            f"folds {sorted({c.fold for c in clips})} ({by_table} from {FOLDS_FILE}, rest by file-name hash "
            f"mod {n_folds}), {clip_seconds:g} s at {sample_rate} Hz mono ({len(skipped)} skipped)")
    return Dataset(clips, labels, report, desc)
