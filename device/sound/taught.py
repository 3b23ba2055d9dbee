"""The taught-sound store: one folder per sound taught on the box.

    DIR/<label>/class.json    label, mapping (picture, colour, note...), prototype,
                              per-take embeddings, window embeddings (optional),
                              embedding version, take files
    DIR/<label>/take-1.wav    the takes (16 kHz mono int16), kept so prototypes
    DIR/<label>/picture.png   can be recomputed after a model update; optional picture

Every file is written atomically (``device.atomic``), and a class appears in
one step: it is built in a hidden staging folder (``.staging-*``), fsynced,
then renamed to its name. A kill or a power cut during teaching therefore
leaves only a hidden folder that loading ignores (and removes once stale):
nothing already taught is touched. Replacing a class renames the old folder
away first (``.old-*``) and loading restores it if the new one never arrived.

The prototype and the take embeddings live in class.json beside the version
of the embedding that made them, so the three can never disagree. When the
loaded model's embedding version differs, ``refresh`` recomputes them from
the saved takes and rewrites class.json. ``window_embeddings`` (the takes'
onset and body windows, the class's further prototypes) is an optional key of
the same format 1: a class.json written before it existed loads as it is
(mean prototype only) and gets them at the next ``refresh``; an older reader
ignores the key.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from device.atomic import fsync_dir, write_atomic
from device.config import ClassMapping, parse_colour
from device.errors import ConfigError, SaySeeError
from device.jsonfile import JSON_READ_ERRORS
from device.wavfile import read_wav, write_wav

log = logging.getLogger("saysee")

CLASS_FILE = "class.json"
PICTURE_FILE = "picture.png"
FORMAT = 1
STALE_S = 3600.0  # a staging folder this old belongs to a teach that was killed
MAPPING_KEYS = ("picture", "colour", "program", "note", "velocity", "duration_s")

# Embeddings for a list of takes: (prototype, per-take embeddings[, window embeddings]).
EmbedTakes = Callable[[Sequence[np.ndarray]], tuple[np.ndarray, ...]]


class TaughtError(SaySeeError):
    """A taught sound that can't be found, stored or read (one line, naming it)."""


class TaughtStorageError(TaughtError):
    """The taught-sounds folder could not be written (a full or read-only card): not the sound's fault."""


def colour_hex(colour: Sequence[float] | None) -> str | None:
    """(r, g, b) 0..1 -> "#rrggbb" (None stays None)."""
    if colour is None:
        return None
    return "#" + "".join(f"{int(round(max(0.0, min(1.0, c)) * 255)):02x}" for c in colour)


@dataclass(frozen=True)
class TaughtClass:
    """One taught sound as stored: its folder, takes, prototype and mapping."""

    label: str
    folder: Path
    takes: tuple[str, ...]
    sample_rate: int
    prototype: np.ndarray | None
    take_embeddings: np.ndarray | None
    embedding_version: str | None
    mapping: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    window_embeddings: np.ndarray | None = None  # K x dim: onset and body windows of the takes

    def prototypes(self) -> np.ndarray | None:
        """Every prototype of the class, the mean first: what the open-set decision matches against."""
        if self.prototype is None:
            return None
        p = np.asarray(self.prototype, np.float32).reshape(1, -1)
        w = self.window_embeddings
        return p if w is None or len(w) == 0 else np.concatenate([p, np.asarray(w, np.float32)])

    def class_mapping(self) -> ClassMapping:
        """The Responder's mapping: picture path resolved in the folder, colour parsed."""
        m = dict(self.mapping)
        picture = m.get("picture") or ""
        if picture and not Path(picture).is_absolute():
            picture = str(self.folder / picture)
        colour = parse_colour(m["colour"], f"{self.folder / CLASS_FILE} colour") if m.get("colour") else None
        kw = {k: m[k] for k in ("program", "note", "velocity", "duration_s") if m.get(k) is not None}
        return ClassMapping(picture=picture, colour=colour, **kw)


def _to_json(c: TaughtClass) -> str:
    data = {
        "format": FORMAT, "label": c.label, "created": c.created, "sample_rate": c.sample_rate,
        "takes": list(c.takes), "mapping": dict(c.mapping), "embedding_version": c.embedding_version,
        "prototype": None if c.prototype is None else [round(float(v), 7) for v in c.prototype],
        "take_embeddings": None if c.take_embeddings is None else
        [[round(float(v), 7) for v in row] for row in c.take_embeddings],
    }
    if c.window_embeddings is not None:
        data["window_embeddings"] = [[round(float(v), 5) for v in row] for row in c.window_embeddings]
    return json.dumps(data, indent=1) + "\n"


def _from_json(folder: Path) -> TaughtClass:
    path = folder / CLASS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format') if isinstance(data, dict) else '?'} (expected {FORMAT})")
        takes = tuple(str(t) for t in data["takes"])
        proto = data.get("prototype")
        embs = data.get("take_embeddings")
        windows = data.get("window_embeddings")
        mapping = dict(data.get("mapping") or {})
        if mapping.get("colour"):
            parse_colour(mapping["colour"], f"{path} colour")
        # The folder's name is the label: a rename is one folder rename, so a power cut before class.json
        # is rewritten must not leave a sound listed under a name no command can reach.
        return TaughtClass(
            label=folder.name, folder=folder, takes=takes, sample_rate=int(data["sample_rate"]),
            prototype=None if proto is None else np.asarray(proto, dtype=np.float32),
            take_embeddings=None if embs is None else np.asarray(embs, dtype=np.float32),
            embedding_version=data.get("embedding_version"), mapping=mapping, created=str(data.get("created", "")),
            window_embeddings=None if windows is None else _matrix(windows, proto))
    except FileNotFoundError:
        raise TaughtError(f"{path}: missing; the folder is not a taught sound") from None
    except (*JSON_READ_ERRORS, KeyError, TypeError, ValueError, ConfigError) as e:
        raise TaughtError(f"{path}: damaged taught sound ({e})") from None


class TaughtStore:
    """The folder of taught sounds (config ``[teach] dir``); a missing folder is an empty store."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ------------------------------------------------------------ reading

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def load(self, on_error: Callable[[str], None] | None = None, recover: bool = True) -> list[TaughtClass]:
        """Every intact taught sound; a damaged one is reported through ``on_error`` (default: log) and skipped.

        ``recover=False`` only reads: for a reader (the running box) that must not finish or undo the
        work of a CLI that may still be running."""
        if recover:
            self.recover()
        out = []
        for folder in self._folders():
            try:
                out.append(_from_json(folder))
            except TaughtError as e:
                (on_error or log.warning)(str(e))
        return out

    def labels(self) -> list[str]:
        """The intact taught sounds' names; reads only (no crash recovery), so any process may ask."""
        return [c.label for c in self.load(on_error=lambda _msg: None, recover=False)]

    def get(self, label: str) -> TaughtClass:
        folder = self.root / label
        if not (folder / CLASS_FILE).is_file():
            raise TaughtError(f"{self.root}: no taught sound called {label!r}"
                              f" (taught: {', '.join(self.labels()) or 'none'})")
        return _from_json(folder)

    def read_takes(self, c: TaughtClass) -> list[np.ndarray]:
        """The class's takes as int16 arrays at ``c.sample_rate``."""
        out = []
        for name in c.takes:
            audio, rate = read_wav(c.folder / name)
            if rate != c.sample_rate:
                raise TaughtError(f"{c.folder / name}: {rate} Hz, the class says {c.sample_rate} Hz")
            out.append(audio if audio.ndim == 1 else audio.mean(axis=1).astype(np.int16))
        return out

    def prototypes(self, classes: Sequence[TaughtClass] | None = None) -> dict[str, np.ndarray]:
        return {c.label: c.prototype for c in (self.load() if classes is None else classes)
                if c.prototype is not None}

    # ------------------------------------------------------------ crash recovery

    def recover(self) -> None:
        """Finish or undo what a killed teach left: restore an ``.old-*`` class whose replacement
        never arrived, drop stale staging folders."""
        if not self.root.is_dir():
            return
        now = time.time()
        for p in self.root.iterdir():
            if not p.is_dir():
                continue
            if p.name.startswith(".old-"):
                label = p.name[len(".old-"):].rsplit(".", 1)[0]
                target = self.root / label
                with contextlib.suppress(OSError):
                    if target.exists():
                        shutil.rmtree(p)
                    else:
                        os.rename(p, target)
                        fsync_dir(self.root)
            elif p.name.startswith(".staging-"):
                with contextlib.suppress(OSError):
                    if now - p.stat().st_mtime > STALE_S:
                        shutil.rmtree(p)

    # ------------------------------------------------------------ writing

    def add(self, label: str, takes: Sequence[np.ndarray], sample_rate: int, prototype: np.ndarray | None,
            take_embeddings: np.ndarray | None, embedding_version: str | None,
            mapping: Mapping[str, Any] | None = None, picture: str | os.PathLike | None = None,
            replace: bool = False, window_embeddings: np.ndarray | None = None) -> TaughtClass:
        """Store a new class in one step (staging folder, then rename); ``replace`` overwrites one of that name."""
        _check_folder_name(label)
        final = self.root / label
        if final.exists() and not replace:
            raise TaughtError(f"{final}: a taught sound {label!r} exists already (--force replaces it)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TaughtStorageError(f"{self.root}: cannot create the taught-sounds folder ({e.strerror})") from None
        staging = self.root / f".staging-{uuid.uuid4().hex[:12]}"
        try:
            staging.mkdir()
            names = []
            for i, take in enumerate(takes, 1):
                names.append(f"take-{i}.wav")
                write_wav(staging / names[-1], np.asarray(take), sample_rate)
            m = {k: v for k, v in dict(mapping or {}).items() if k in MAPPING_KEYS and v not in (None, "")}
            if picture:
                write_atomic(staging / PICTURE_FILE, _read_picture(picture))
                m["picture"] = PICTURE_FILE
            c = TaughtClass(label, final, tuple(names), int(sample_rate),
                            None if prototype is None else np.asarray(prototype, np.float32),
                            None if take_embeddings is None else np.asarray(take_embeddings, np.float32),
                            embedding_version, m, time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            None if window_embeddings is None else np.asarray(window_embeddings, np.float32))
            write_atomic(staging / CLASS_FILE, _to_json(c))
            fsync_dir(staging)
            old = None
            if replace and final.exists():
                old = self.root / f".old-{label}.{uuid.uuid4().hex[:8]}"
                os.rename(final, old)
            try:
                os.rename(staging, final)  # fails onto a class taught meanwhile: never replaced unasked
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY) and not replace:
                    raise TaughtError(f"{final}: a taught sound {label!r} was taught meanwhile "
                                      "(--force replaces it)") from None
                raise
            fsync_dir(self.root)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return c
        except OSError as e:
            raise TaughtStorageError(f"{final}: could not store the taught sound ({e.strerror or e})") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _rewrite(self, c: TaughtClass) -> TaughtClass:
        # Never make the folder again: one forgotten or renamed meanwhile (the CLI beside the running box)
        # would come back holding only its class.json.
        write_atomic(c.folder / CLASS_FILE, _to_json(c), make_parents=False)
        return c

    @contextlib.contextmanager
    def _storing(self, what: Path):
        """An OSError while changing ``what`` as one line (a read-only or full card, a CLI run without sudo)."""
        try:
            yield
        except OSError as e:
            raise TaughtStorageError(f"{what}: could not change the taught sound ({e.strerror or e})") from None

    def update(self, label: str, *, mapping: Mapping[str, Any] | None = None,
               picture: str | os.PathLike | None = None) -> TaughtClass:
        """Change a class's mapping (None values remove a key); ``picture`` copies a PNG into its folder."""
        c = self.get(label)
        m = dict(c.mapping)
        for k, v in dict(mapping or {}).items():
            if k not in MAPPING_KEYS:
                raise TaughtError(f"unknown mapping key {k!r} (expected one of: {', '.join(MAPPING_KEYS)})")
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        with self._storing(c.folder):
            if picture:
                write_atomic(c.folder / PICTURE_FILE, _read_picture(picture))
                m["picture"] = PICTURE_FILE
            return self._rewrite(_replace(c, mapping=m))

    def rename(self, label: str, new: str) -> TaughtClass:
        """Rename a class: its folder moves in one step (the folder's name is the label), then class.json
        is brought in line; a failure there loses nothing."""
        _check_folder_name(new)
        c = self.get(label)
        target = self.root / new
        if target.exists():
            raise TaughtError(f"{target}: a taught sound {new!r} exists already")
        with self._storing(c.folder):
            os.rename(c.folder, target)
            fsync_dir(self.root)
        moved = _replace(c, label=new, folder=target)
        try:
            return self._rewrite(moved)
        except OSError as e:
            log.warning("taught sound %s: renamed, but %s still says %r (%s)", new, target / CLASS_FILE, label,
                        e.strerror or e)
            return moved

    def forget(self, label: str) -> None:
        """Remove a class, a damaged one too (its class.json is not read): renamed away in one step (gone for
        every reader), then deleted."""
        _check_folder_name(label)
        folder = self.root / label
        if not (folder / CLASS_FILE).is_file():
            self.get(label)  # the one-line "no taught sound called ..." error
        trash = self.root / f".staging-forget-{uuid.uuid4().hex[:8]}"
        with self._storing(folder):
            os.rename(folder, trash)
            fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def refresh(self, version: str | None, embed: EmbedTakes | None,
                classes: Sequence[TaughtClass] | None = None,
                on_recompute: Callable[[TaughtClass], None] = lambda c: None,
                save: bool = True) -> list[TaughtClass]:
        """Classes with prototypes for embedding ``version``: any made by another version is recomputed
        from its saved takes with ``embed`` and rewritten (kept in memory when the folder is read-only).
        A class stored before window embeddings existed gets them too, when ``embed`` gives them.
        ``on_recompute(c)`` is called before each recompute (the service asks systemd for more start time).
        ``save=False`` keeps recomputed prototypes in memory only: for a look with another model (classify
        --model), which must not rewrite the prototypes the box's own model made."""
        out = []
        for c in (self.load() if classes is None else classes):
            if embed is None or (c.embedding_version == version and c.prototype is not None
                                 and (c.window_embeddings is not None or not getattr(embed, "windows", True))):
                out.append(c)
                continue
            on_recompute(c)
            try:
                proto, embs, *windows = embed(self.read_takes(c))
            except SaySeeError as e:  # one damaged take must not keep the box (or the other sounds) from starting
                log.warning("taught sound %s: not used, its takes can't be read (%s)", c.label, e)
                continue
            fresh = _replace(c, prototype=np.asarray(proto, np.float32),
                             take_embeddings=np.asarray(embs, np.float32), embedding_version=version,
                             window_embeddings=np.asarray(windows[0], np.float32) if windows else None)
            try:
                if save:
                    self._rewrite(fresh)
            except FileNotFoundError:
                log.info("taught sound %s: forgotten or renamed while its prototype was recomputed", c.label)
                continue
            except OSError as e:
                log.warning("taught sound %s: prototype recomputed but not saved (%s)", c.label, e.strerror or e)
            log.info("taught sound %s: prototype recomputed for embedding version %s (was %s)",
                     c.label, version, c.embedding_version)
            out.append(fresh)
        return out


def without_clashes(classes: Sequence[TaughtClass], builtin: Sequence[str]) -> list[TaughtClass]:
    """The classes the decision can use: one named like a built-in class or "unknown" (a sound model trained
    on other classes came, or it was renamed so) is left out with a warning, not a box that cannot start."""
    from device.sound.labels import UNKNOWN

    taken = set(builtin) | {UNKNOWN}
    for c in classes:
        if c.label in taken:
            log.warning("taught sound %s (%s) is not used: the sound model has a class of that name; rename it "
                        "with: python -m device taught %s --rename NEW", c.label, c.folder, json.dumps(c.label))
    return [c for c in classes if c.label not in taken]


def _matrix(rows: Any, proto: Any) -> np.ndarray:
    """window_embeddings as K x dim finite floats, dim that of the prototype (ValueError otherwise)."""
    m = np.asarray(rows, dtype=np.float32)
    dim = len(proto) if proto is not None else (m.shape[1] if m.ndim == 2 else -1)
    if m.ndim != 2 or m.shape[1] != dim or not np.all(np.isfinite(m)):
        raise ValueError(f"window_embeddings must be rows of {dim} finite numbers")
    return m


def _replace(c: TaughtClass, **changes: Any) -> TaughtClass:
    import dataclasses

    return dataclasses.replace(c, **changes)


_NAME_OK = re.compile(r"^\w[\w.\- ]*$", re.UNICODE)


def _check_folder_name(label: str) -> None:
    if (not label or len(label) > 64 or not _NAME_OK.match(label) or label.endswith((".", " "))
            or "/" in label or "\\" in label):
        raise TaughtError(f"{label!r}: a taught sound's name uses letters, digits, '_', '-', '.' or spaces "
                          "(at most 64, not starting with '.' or '_'), e.g. moo or \"sound 1\"")


def _read_picture(path: str | os.PathLike) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TaughtError(f"{path}: cannot read the picture ({e.strerror})") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise TaughtError(f"{path}: not a PNG picture")
    return data
