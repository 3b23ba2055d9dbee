"""The taught mapping's storage and fitting: demonstrations -> checked rows -> DIR/.mapping/.

    DIR/.mapping/mapping.json          outputs, examples (source, takes, targets), method and its
                                       parameters, embedding version, window embeddings (rows)
    DIR/.mapping/example-1-take-1.wav  the takes (16 kHz mono int16), kept so the rows can be
                                       recomputed after a model update

DIR is the taught-sounds folder (config ``[teach] dir``); the mapping's folder starts with a dot, so
the taught-sound store (which lists visible folders as sounds) never mistakes it for a sound, and no
sound name can clash with it. It appears in one step: built in a ``.staging-mapping-*`` folder
(the taught store's stale-staging cleanup removes one a killed teach left), fsynced, then renamed;
a replaced mapping is renamed away first (``.mapping-old-*``) and restored by ``load`` if the new one
never arrived. Bad demonstrations are refused before anything is written, so nothing saved is lost.

When the model's embedding version differs from the stored one, ``refresh`` recomputes the rows
from the saved takes and rewrites mapping.json (kept in memory when the folder is read-only), as
the taught store does for prototypes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.atomic import fsync_dir, write_atomic
from device.errors import ConfigError
from device.jsonfile import JSON_READ_ERRORS
from device.sound.mapping import (
    DEFAULT_METHOD,
    MappingError,
    TaughtMapping,
    encode,
    output_columns,
    regressor,
)
from device.sound.taught import colour_hex
from device.wavfile import read_wav, write_wav

log = logging.getLogger("saysee")

FOLDER = ".mapping"
FILE = "mapping.json"
FORMAT = 1
# Two takes of *different* examples this close in the embedding are "the same sound"; asking them for
# outputs further apart than CONFLICT_DELTA (0..1 scale: 64 of 255 colour steps, 32 of 127 CC steps) is a
# contradiction the regression can only average. Chosen from bench/mapping.py: takes of one held-out
# family lie 0.04-0.5 apart (median 0.11), takes of different families 0.24 and more (30 takes, 10 families).
CONFLICT_DISTANCE = 0.15
CONFLICT_DELTA = 0.25

# Embeddings of one take: (take embedding, window embeddings K x dim).
EmbedTake = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Example:
    """One demonstration: a sound (one or more takes, int16 at the model's rate) and its outputs.

    ``outputs``: ``{"rgb": (r, g, b) 0..1, "cc74": 0..127, ...}``; ``source`` names it for messages.
    """

    source: str
    takes: tuple[np.ndarray, ...]
    outputs: dict[str, Any]


@dataclass
class Demonstrations:
    """Examples turned into training rows: every window of every take, with its example's target."""

    names: list[str]
    rows: np.ndarray  # n x dim window embeddings
    row_take: np.ndarray  # n: index of the take (over all examples) each row came from
    targets: np.ndarray  # n x outputs, 0..1
    take_embeddings: np.ndarray  # takes x dim
    take_example: np.ndarray  # takes: index of the example


def describe_outputs(outputs: dict[str, Any]) -> str:
    parts = []
    for k in sorted(outputs, key=lambda k: (k != "rgb", int(k[2:]) if k.startswith("cc") else 0)):
        v = outputs[k]
        parts.append(colour_hex(v) if k == "rgb" else f"{k}={round(v)}")
    return " ".join(parts)


def output_names(examples: Sequence[Example]) -> list[str]:
    """The outputs every example sets (MappingError, one line, when they differ or are too few)."""
    if not examples:
        raise MappingError("no examples: give at least two sounds, each with the outputs it should produce")
    first = examples[0]
    names = sorted(first.outputs, key=lambda k: (k != "rgb", int(k[2:]) if k.startswith("cc") else 0))
    for i, ex in enumerate(examples, 1):
        if not ex.outputs:
            raise MappingError(f"example {i} ({ex.source}): no outputs; give --rgb and/or --cc")
        if set(ex.outputs) != set(names):
            extra = min(set(ex.outputs) ^ set(names))
            has, lacks = (i, 1) if extra in ex.outputs else (1, i)
            src = {1: first.source, i: ex.source}
            raise MappingError(f"example {has} ({src[has]}) sets {extra} but example {lacks} ({src[lacks]}) "
                               "does not: every example must set the same outputs")
    output_columns(names)
    if len(examples) < 2:
        raise MappingError(f"only one example ({first.source}): one example gives the same outputs for every "
                           "sound; give at least two examples with different outputs")
    targets = {tuple(np.round(encode(names, ex.outputs), 6)) for ex in examples}
    if len(targets) < 2:
        raise MappingError(f"all {len(examples)} examples ask for the same outputs "
                           f"({describe_outputs(first.outputs)}): give at least two different ones")
    return names


def demonstrations(examples: Sequence[Example], embed: EmbedTake) -> Demonstrations:
    """Embed every take; rows are its windows, each with its example's target."""
    names = output_names(examples)
    rows, row_take, targets, take_embs, take_ex = [], [], [], [], []
    for i, ex in enumerate(examples):
        if not ex.takes:
            raise MappingError(f"example {i + 1} ({ex.source}): no takes")
        target = encode(names, ex.outputs)
        for take in ex.takes:
            e, windows = embed(take)
            windows = np.asarray(windows, np.float32).reshape(-1, len(e))
            rows.append(windows)
            row_take += [len(take_embs)] * len(windows)
            targets += [target] * len(windows)
            take_embs.append(np.asarray(e, np.float32))
            take_ex.append(i)
    return Demonstrations(names, np.concatenate(rows), np.asarray(row_take), np.asarray(targets),
                          np.stack(take_embs), np.asarray(take_ex))


def conflicts(examples: Sequence[Example], demo: Demonstrations) -> list[str]:
    """Near-identical takes of different examples asking for very different outputs (one line each)."""
    e = demo.take_embeddings / np.maximum(np.linalg.norm(demo.take_embeddings, axis=1, keepdims=True), 1e-12)
    d = 1.0 - e @ e.T
    out, seen = [], set()
    for a in range(len(e)):
        for b in range(a + 1, len(e)):
            ea, eb = int(demo.take_example[a]), int(demo.take_example[b])
            if ea == eb or (ea, eb) in seen or d[a, b] >= CONFLICT_DISTANCE:
                continue
            ta, tb = encode(demo.names, examples[ea].outputs), encode(demo.names, examples[eb].outputs)
            if np.max(np.abs(ta - tb)) > CONFLICT_DELTA:
                seen.add((ea, eb))
                out.append(f"examples {ea + 1} ({examples[ea].source}) and {eb + 1} ({examples[eb].source}) are the "
                           f"same sound (distance {d[a, b]:.2f} < {CONFLICT_DISTANCE}) but ask for different outputs "
                           f"({describe_outputs(examples[ea].outputs)} vs {describe_outputs(examples[eb].outputs)})")
    return out


# ------------------------------------------------------------------ storage


@dataclass(frozen=True)
class StoredMapping:
    """mapping.json as read: everything needed to fit the mapping again, or to re-embed its takes."""

    folder: Path
    names: list[str]
    examples: list[dict[str, Any]]  # {"source", "takes": [file names], "outputs": {...}} (outputs in user units)
    sample_rate: int
    embedding_version: str | None
    method: str
    params: dict[str, float]
    rows: np.ndarray
    row_take: np.ndarray
    created: str = ""

    def targets(self) -> np.ndarray:
        per_take = [encode(self.names, _outputs_from_json(ex["outputs"])) for ex in self.examples
                    for _ in ex["takes"]]
        return np.asarray(per_take)[self.row_take]

    def mapping(self) -> TaughtMapping:
        return TaughtMapping(self.names, self.rows, self.targets(), self.method, self.params)

    def take_files(self) -> list[tuple[int, Path]]:
        return [(i, self.folder / name) for i, ex in enumerate(self.examples) for name in ex["takes"]]


def _outputs_to_json(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: (colour_hex(v) if k == "rgb" else round(v)) for k, v in outputs.items()}


def _outputs_from_json(outputs: dict[str, Any]) -> dict[str, Any]:
    from device.config import parse_colour

    return {k: (parse_colour(v, "rgb") if k == "rgb" else int(v)) for k, v in outputs.items()}


def _to_json(m: StoredMapping) -> str:
    return json.dumps({
        "format": FORMAT, "created": m.created, "embedding_version": m.embedding_version,
        "method": m.method, "params": m.params, "outputs": m.names, "sample_rate": m.sample_rate,
        "examples": m.examples, "row_take": [int(t) for t in m.row_take],
        "rows": [[round(float(v), 5) for v in r] for r in m.rows],
    }, indent=1) + "\n"


def _from_json(folder: Path) -> StoredMapping:
    path = folder / FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format') if isinstance(data, dict) else '?'} (expected {FORMAT})")
        names = [str(n) for n in data["outputs"]]
        output_columns(names)
        examples = [{"source": str(ex["source"]), "takes": [str(t) for t in ex["takes"]],
                     "outputs": _outputs_to_json(_outputs_from_json(ex["outputs"]))} for ex in data["examples"]]
        for ex in examples:  # every demonstration must set every output, or encoding it fails at start-up
            if set(ex["outputs"]) != set(names):
                raise ValueError(f"example {ex['source']!r} sets {sorted(ex['outputs'])}, the mapping's outputs "
                                 f"are {sorted(names)}")
        rows = np.asarray(data["rows"], np.float32)
        row_take = np.asarray(data["row_take"], int)
        n_takes = sum(len(ex["takes"]) for ex in examples)
        if rows.ndim != 2 or len(rows) != len(row_take) or not np.all(np.isfinite(rows)) \
                or (len(row_take) and (row_take.min() < 0 or row_take.max() >= n_takes)):
            raise ValueError("rows and row_take do not match the takes")
        method = str(data.get("method", DEFAULT_METHOD))
        params = {str(k): float(v) for k, v in dict(data.get("params") or {}).items()}
        regressor(method, params)
        return StoredMapping(folder, names, examples, int(data["sample_rate"]), data.get("embedding_version"),
                             method, params, rows, row_take, str(data.get("created", "")))
    except FileNotFoundError:
        raise MappingError(f"{path}: missing; no mapping taught here") from None
    except MappingError as e:
        raise MappingError(f"{path}: damaged mapping ({e})") from None
    except (*JSON_READ_ERRORS, KeyError, TypeError, ValueError, ConfigError) as e:
        raise MappingError(f"{path}: damaged mapping ({e})") from None


class MappingStore:
    """The taught mapping beside the taught sounds: ``DIR/.mapping`` (see module doc)."""

    def __init__(self, taught_dir: str | os.PathLike):
        self.root = Path(taught_dir)
        self.folder = self.root / FOLDER

    def recover(self) -> None:
        """Restore a mapping whose replacement never arrived; drop leftovers of a finished replace."""
        if not self.root.is_dir():
            return
        olds = sorted(p for p in self.root.iterdir() if p.name.startswith(FOLDER + "-old-") and p.is_dir())
        for p in olds:
            with contextlib.suppress(OSError):
                if self.folder.exists():
                    shutil.rmtree(p)
                else:
                    os.rename(p, self.folder)
                    fsync_dir(self.root)

    def exists(self) -> bool:
        self.recover()
        return (self.folder / FILE).is_file()

    def load(self) -> StoredMapping:
        self.recover()
        if not self.folder.exists():
            raise MappingError(f"{self.root}: no mapping taught (python -m device map-teach)")
        return _from_json(self.folder)

    def read_takes(self, m: StoredMapping) -> list[tuple[int, np.ndarray]]:
        """(example index, int16 take) for every saved take."""
        out = []
        for i, path in m.take_files():
            try:
                audio, rate = read_wav(path)
            except (OSError, ValueError) as e:
                raise MappingError(f"{path}: cannot read the take ({e})") from None
            if rate != m.sample_rate:
                raise MappingError(f"{path}: {rate} Hz, the mapping says {m.sample_rate} Hz")
            out.append((i, audio if audio.ndim == 1 else audio.mean(axis=1).astype(np.int16)))
        return out

    def examples(self, m: StoredMapping | None = None) -> list[Example]:
        """The stored demonstrations as Examples (to add new ones to them)."""
        m = m or self.load()
        takes = self.read_takes(m)
        return [Example(ex["source"], tuple(a for j, a in takes if j == i), _outputs_from_json(ex["outputs"]))
                for i, ex in enumerate(m.examples)]

    def save(self, examples: Sequence[Example], demo: Demonstrations, sample_rate: int, version: str | None,
             method: str = DEFAULT_METHOD, params: dict[str, float] | None = None,
             replace: bool = False) -> StoredMapping:
        """Store the mapping in one step (staging folder, then rename); ``replace`` overwrites one."""
        if self.exists() and not replace:
            raise MappingError(f"{self.folder}: a mapping is taught already (--add adds examples to it, "
                               "--force replaces it)")
        params = dict(params or regressor(method).params)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MappingError(f"{self.root}: cannot create the taught-sounds folder ({e.strerror})") from None
        staging = self.root / f".staging-mapping-{uuid.uuid4().hex[:12]}"
        try:
            staging.mkdir()
            stored = []
            for i, ex in enumerate(examples, 1):
                names = []
                for j, take in enumerate(ex.takes, 1):
                    names.append(f"example-{i}-take-{j}.wav")
                    write_wav(staging / names[-1], np.asarray(take), sample_rate)
                stored.append({"source": ex.source, "takes": names, "outputs": _outputs_to_json(ex.outputs)})
            m = StoredMapping(self.folder, demo.names, stored, int(sample_rate), version, method, params,
                              demo.rows, demo.row_take, time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            write_atomic(staging / FILE, _to_json(m))
            fsync_dir(staging)
            old = None
            if self.folder.exists():
                old = self.root / f"{FOLDER}-old-{uuid.uuid4().hex[:8]}"
                os.rename(self.folder, old)
            os.rename(staging, self.folder)
            fsync_dir(self.root)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return m
        except OSError as e:
            raise MappingError(f"{self.folder}: could not store the mapping ({e.strerror or e})") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def forget(self) -> None:
        """Remove the mapping: renamed away in one step (gone for every reader), then deleted."""
        if not self.exists():
            raise MappingError(f"{self.root}: no mapping taught, nothing to forget")
        trash = self.root / f".staging-mapping-forget-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.folder, trash)
            fsync_dir(self.root)
        except OSError as e:
            raise MappingError(f"{self.folder}: could not forget the mapping ({e.strerror or e})") from None
        shutil.rmtree(trash, ignore_errors=True)

    def refresh(self, version: str | None, embed: EmbedTake | None) -> StoredMapping:
        """The stored mapping with rows for embedding ``version``: recomputed from its takes and
        rewritten when another version made them (kept in memory when the folder is read-only)."""
        m = self.load()
        if embed is None or m.embedding_version == version:
            return m
        rows, row_take = [], []
        for k, (_, audio) in enumerate(self.read_takes(m)):
            _, windows = embed(audio)
            windows = np.asarray(windows, np.float32)
            rows.append(windows)
            row_take += [k] * len(windows)
        import dataclasses

        fresh = dataclasses.replace(m, rows=np.concatenate(rows), row_take=np.asarray(row_take),
                                    embedding_version=version)
        try:
            write_atomic(self.folder / FILE, _to_json(fresh))
        except OSError as e:
            log.warning("mapping: rows recomputed but not saved (%s)", e.strerror or e)
        log.info("mapping: rows recomputed for embedding version %s (was %s)", version, m.embedding_version)
        return fresh
