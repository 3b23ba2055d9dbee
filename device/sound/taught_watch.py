"""Sounds taught, renamed or forgotten with the CLI while the box runs count without a restart.

The service reads the taught folder at start; a parent who runs
``python -m device teach moo ...`` over ssh expects the running box to know
"moo" a moment later. ``TaughtWatcher`` notices a change cheaply (folder
names and ``class.json`` stamps, checked every few seconds of stream time) and
``reload_taught`` swaps in the store's current classes.

Reading is strictly read-only: the running box never runs the store's crash
recovery (it would race a CLI that is half-way through replacing a class) and
never rewrites prototypes; a class whose prototype was made by another
embedding model is skipped until a CLI command or a restart refreshes it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from device.sound.taught import CLASS_FILE, TaughtClass, TaughtStore, without_clashes

log = logging.getLogger("saysee")

DEFAULT_POLL_S = 2.0


class TaughtWatcher:
    """Says when the taught folder changed since the last look (at most every ``interval_s``)."""

    def __init__(self, root: str | os.PathLike, interval_s: float = DEFAULT_POLL_S):
        self.root = Path(root)
        self.interval_s = float(interval_s)
        self._next = 0.0
        self._seen = self.signature()

    def signature(self) -> tuple:
        """(folder, class.json mtime, size) of every visible class folder: changes with every teach/forget."""
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:  # no folder yet: nothing taught
            return ()
        out = []
        for f in folders:
            try:
                st = (f / CLASS_FILE).stat()
                out.append((f.name, st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((f.name, None, None))
        return tuple(out)

    def poll(self, now: float) -> bool:
        """True once per change (checked when ``now`` has passed the next poll time)."""
        if now < self._next:
            return False
        self._next = now + self.interval_s
        sig = self.signature()
        if sig == self._seen:
            return False
        self._seen = sig
        return True


def current_classes(store: TaughtStore, embedding_version: str | None,
                    builtin: Sequence[str] = ()) -> list[TaughtClass]:
    """The store's intact classes made by this embedding model and not named like a ``builtin`` class,
    read without writing anything."""
    usable = []
    for c in store.load(on_error=log.warning, recover=False):
        if c.prototype is None or c.embedding_version != embedding_version:
            log.warning("taught sound %s was made by another model: restart the box to recompute it", c.label)
            continue
        usable.append(c)
    return without_clashes(usable, builtin)


def reload_taught(decision: Any, responder: Any, store: TaughtStore,
                  log_line: Callable[[str], None] = log.info) -> bool:
    """Give ``decision`` (an OpenSetModel) and ``responder`` the store's current classes.

    Returns True when the labels changed (the caller builds a fresh sound pipeline for them).
    """
    before = list(decision.labels)
    classes = current_classes(store, getattr(decision.model, "embedding_version", None), decision.decider.builtin)
    decision.decider = decision.decider.with_prototypes({c.label: c.prototypes() for c in classes})
    for c in classes:
        responder.add_class(c.label, c.class_mapping())
    log_line("taught sounds now: " + (", ".join(c.label for c in classes) or "none"))
    return list(decision.labels) != before
