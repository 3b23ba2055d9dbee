"""The metadata JSON written beside every .tflite (the contract the device checks at load)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import device
from device.atomic import write_atomic
from device.model import metadata_path_for


def code_version() -> str:
    """Package version plus the git commit (and '+dirty' when the tree has changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev, dirty = "", ""
    return f"{device.__version__}+{rev}{'.dirty' if dirty else ''}" if rev else device.__version__


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_metadata(tflite_path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Write ``<model>.json``: the caller's fields plus size, hash, time and code version."""
    tflite_path = Path(tflite_path)
    full = dict(meta)
    full.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    full.setdefault("code_version", code_version())
    full["model_file"] = tflite_path.name
    full["model_bytes"] = tflite_path.stat().st_size
    full["model_sha256"] = sha256_file(tflite_path)
    out = metadata_path_for(tflite_path)
    return write_atomic(out, json.dumps(full, indent=2, sort_keys=False) + "\n")


def install_model(tflite_path: str | os.PathLike, dest: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Copy a checked model to its release place (e.g. models/) with fresh metadata beside it."""
    dest = Path(dest)
    write_atomic(dest, Path(tflite_path).read_bytes())
    write_metadata(dest, meta)
    return dest
