"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

One helper for every file the project must never leave half-written (status,
models, metadata, taught sounds): a pulled plug leaves the old file or the new
one, never a mix. ``systemd/box_release.py`` keeps its own stdlib-only copy because
it runs on hosts where this package is not installed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | str, mode: int = 0o644, durable: bool = True,
                 make_parents: bool = True) -> Path:
    """Replace ``path`` with ``data`` in one step; ``durable=False`` skips fsync (files under /run);
    ``make_parents=False``: FileNotFoundError when the folder is gone, rather than making it again."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; the service user must be able to read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path
