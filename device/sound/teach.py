"""`python -m device teach LABEL FILE [FILE ...]`: teach the box a new sound from a few takes.

    python -m device teach moo moo1.wav moo2.wav moo3.wav [--taught DIR]
                           [--picture cow.png] [--colour "#8844ff"] [--note 60] [--force]
    python -m device teach moo --record 3          # 3 takes from the box's mic, with a countdown

No retraining: each take goes through the device's own front end and the sound
model's embedding; the class's prototype is the normalised mean of the takes'
embeddings (a "prototypical" few-shot class, like Teachable Machine or
openWakeWord's custom verifier on a frozen embedding), and the embeddings of
the takes' windows, onset windows included, are kept as further prototypes
(the nearest decides), so the first tenths of a second of the sound, which the
streaming pipeline decides on, look like something taught. A file may hold several
takes separated by silence (``[teach] split_silence_s``): the silence gate
splits them.

Checks before anything is stored, each one line naming the file:
bad takes (silence, too short, clipped, recorded below the model's rate) are
refused outright; a take that does not sound like the others, or a new sound
that the box already recognises as another class ("this sounds like
dog_bark"), is a warning and a refusal unless ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from device.config import PROJECT_ROOT, Config, SoundConfig, TeachConfig, parse_colour
from device.errors import ConfigError, InputFileError, ModelError, SaySeeError
from device.frontend import LogMelParams, to_float, window_features
from device.resample import Resampler, to_int16
from device.sound.labels import UNKNOWN
from device.sound.open_set import OpenSetDecider, OpenSetModel, OpenSetParams, cosine_distance, infer, normalise
from device.sound.taught import TaughtClass, TaughtStore, colour_hex, without_clashes
from device.wavfile import iter_wav, wav_info

FULL_SCALE = 32766  # an int16 sample at or beyond this magnitude sits on the rail: clipped
MAX_FILE_S = 120.0  # takes are seconds long; a longer file is a mistake, not a take
TAKE_BLOCK_FRAMES = 1 << 16  # frames per block when a take file is read
MARGIN_S = 0.05  # kept around each take's sound so its onset and tail stay in
SILENCE_DBFS = SoundConfig().silence_dbfs  # the gate's one default: [sound] silence_dbfs


class TeachRefused(SaySeeError):
    """Enrolment stopped by a check (warnings already printed); ``--force`` overrides."""


class TaughtFull(SaySeeError):
    """The box keeps ``[teach] max_sounds`` taught sounds already: one must be forgotten first (no ``--force``)."""


def check_room(store: TaughtStore, teach: TeachConfig, label: str | None = None) -> None:
    """TaughtFull when a new sound (not a replacement of ``label``) would pass ``[teach] max_sounds``."""
    labels = store.labels()
    if label not in labels and len(labels) >= teach.max_sounds:
        raise TaughtFull(f"{store.root}: the box keeps {len(labels)} taught sounds, the most [teach] max_sounds "
                         f"allows ({teach.max_sounds}); forget one first (python -m device forget LABEL)")


@dataclass(frozen=True)
class Take:
    """One take: mono int16 at the model's rate; ``source`` names the file (and the take in it)."""

    source: str
    audio: np.ndarray


# ------------------------------------------------------------------ takes


def _frame_db(audio: np.ndarray, params: LogMelParams) -> np.ndarray:
    """Level of each 10 ms frame in dBFS."""
    h = params.hop_length
    x = to_float(audio)
    n = len(x) // h
    if n == 0:
        return np.full(1, 10 * np.log10(max(float(np.mean(x * x)) if x.size else 0.0, 1e-20)))
    frames = x[: n * h].reshape(n, h)
    power = np.einsum("ij,ij->i", frames, frames) / h  # no squared copy of a take file's length
    return 10 * np.log10(np.maximum(power, 1e-20))


def split_takes(audio: np.ndarray, source: str, params: LogMelParams, teach: TeachConfig,
                silence_dbfs: float) -> list[Take]:
    """The takes in one recording: runs of sound above the gate separated by >= split_silence_s of quiet.

    A run shorter than ``min_take_s`` among longer ones is a click, dropped; if
    nothing reaches ``min_take_s`` the file is refused (one line naming it).
    """
    audio = np.asarray(audio, dtype=np.int16)
    rate, h = params.sample_rate, params.hop_length
    loud = _frame_db(audio, params) >= silence_dbfs
    if not loud.any():
        raise InputFileError(f"{source}: silent (loudest 10 ms at {_frame_db(audio, params).max():.0f} dBFS, "
                             f"below the {silence_dbfs:g} dBFS gate): no take in it")
    gap = max(1, int(round(teach.split_silence_s * rate / h)))
    idx = np.flatnonzero(loud)
    runs, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i - prev > gap:
            runs.append((start, prev + 1))
            start = i
        prev = i
    runs.append((start, prev + 1))
    margin = int(round(MARGIN_S * rate))
    takes, longest = [], 0.0
    for a, b in runs:
        sound_s = float(np.count_nonzero(loud[a:b])) * h / rate
        longest = max(longest, sound_s)
        if sound_s < teach.min_take_s:
            continue
        lo, hi = max(0, a * h - margin), min(len(audio), b * h + margin)
        takes.append(Take(source, audio[lo:hi]))
    if not takes:
        raise InputFileError(f"{source}: the sound lasts only {longest:.2f} s above the gate; "
                             f"a take needs at least {teach.min_take_s:g} s")
    if len(takes) > 1:
        takes = [Take(f"{source} take {i}", t.audio) for i, t in enumerate(takes, 1)]
    return takes


def read_takes(path: str | os.PathLike, params: LogMelParams, teach: TeachConfig,
               silence_dbfs: float) -> list[Take]:
    """Check one WAV file as teaching material and split it into takes (InputFileError naming it)."""
    rate, _, frames = wav_info(path)
    if rate < params.sample_rate:
        raise InputFileError(f"{path}: recorded at {rate} Hz, below the model's {params.sample_rate} Hz "
                             "(its top octave is missing); record at 16 kHz or more")
    seconds = frames / rate
    if seconds < teach.min_take_s:
        raise InputFileError(f"{path}: only {seconds:.2f} s long; a take needs at least {teach.min_take_s:g} s of sound")
    if seconds > MAX_FILE_S:
        raise InputFileError(f"{path}: {seconds:.0f} s long; takes are short sounds (at most {MAX_FILE_S:g} s a file)")
    # Block by block (iter_wav + the streaming resampler, as classify and the sim mic read): memory holds the
    # take at the model's rate, not the file at its own (a 192 kHz stereo file is 24 times that).
    resampler = Resampler(rate, params.sample_rate, zero_phase=True)
    pieces, at_full_scale, samples = [], 0, 0
    for block in iter_wav(path, TAKE_BLOCK_FRAMES):
        at_full_scale += int(np.count_nonzero(np.abs(block.astype(np.int32)) >= FULL_SCALE))
        samples += block.size
        pieces.append(to_int16(resampler.process(to_float(block))))
    clipped = at_full_scale / samples if samples else 0.0
    if clipped > teach.max_clipped:
        raise InputFileError(f"{path}: clipped ({100 * clipped:.1f}% of samples at full scale); "
                             "record it quieter or further from the mic")
    return split_takes(np.concatenate(pieces + [to_int16(resampler.flush())]), str(path), params, teach, silence_dbfs)


# ------------------------------------------------------------------ embeddings


# The body windows a take gives at most: about what a 3 s take (the button's) gives at the 0.25 s hop, which
# taught_window_share was tuned on; a 2-minute take would otherwise bring ~480 near-by-chance prototypes.
MAX_TAKE_WINDOWS = 16


def take_windows(audio: np.ndarray, params: LogMelParams, silence_dbfs: float) -> list[np.ndarray]:
    """Model inputs for one take: the take padded with silence and seen at every hop position,
    keeping the windows that hold most of its sound (the pipeline sees it at any position too)."""
    x = to_float(np.asarray(audio))
    n, hop = params.samples_per_window, params.samples_per_hop
    pad = np.zeros(n - hop)
    padded = np.concatenate([pad, x, pad])
    starts = list(range(0, max(1, len(padded) - n + 1), hop))
    loud = _frame_db(padded, params) >= silence_dbfs
    h = params.hop_length
    sound = [int(np.count_nonzero(loud[s // h : (s + n) // h])) for s in starts]
    best = max(sound) if sound else 0
    keep = [s for s, k in zip(starts, sound) if k >= 0.5 * best and k > 0] or starts[:1]
    if len(keep) > MAX_TAKE_WINDOWS:  # evenly over a long take: its share of prototypes stays a 3 s take's
        keep = [keep[i] for i in np.linspace(0, len(keep) - 1, MAX_TAKE_WINDOWS).round().astype(int)]
    return [window_features(padded[s : s + n], params) for s in keep]


# Onset windows: what the streaming pipeline classifies at the start of a sound (its window ends this
# long after the sound's first loud frame, every ONSET_STEP_S), so a taught sound is recognised early.
ONSET_ENDS_S = (0.05, 0.3)
ONSET_STEP_S = 0.05


def onset_windows(audio: np.ndarray, params: LogMelParams, silence_dbfs: float) -> list[np.ndarray]:
    """Model inputs for one take as the pipeline sees its start: windows of silence + the first
    0.05 ... 0.3 s of the sound (``ONSET_ENDS_S``), none when the take has no loud frame."""
    x = to_float(np.asarray(audio))
    n = params.samples_per_window
    loud = np.flatnonzero(_frame_db(x, params) >= silence_dbfs)
    if len(loud) == 0:
        return []
    onset = int(loud[0]) * params.hop_length
    padded = np.concatenate([np.zeros(n), x, np.zeros(n)])
    out = []
    lo, hi = ONSET_ENDS_S
    for k in range(round((hi - lo) / ONSET_STEP_S) + 1):
        end = n + onset + round((lo + k * ONSET_STEP_S) * params.sample_rate)
        out.append(window_features(padded[end - n : end], params))
    return out


def _embed(model: Any, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(unit embeddings K x dim, probabilities K x classes) of model inputs."""
    embs, probs = [], []
    for feats in windows:
        p, e = infer(model, feats)
        if e is None:
            raise ModelError("the sound model has no embedding output: run make models")
        probs.append(np.asarray(p, np.float32))
        embs.append(normalise(e))
    return np.stack(embs), np.stack(probs)


def embed_take_windows(model: Any, audio: np.ndarray, params: LogMelParams,
                       silence_dbfs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit embedding, mean probabilities, window embeddings) of one take, each window run once.

    The first two are averaged over the windows holding most of the take (``take_windows``); the
    window embeddings (K x dim) are those windows and the onset windows (``onset_windows``): a taught
    class's further prototypes, matched nearest-first (``OpenSetDecider``).
    """
    body, probs = _embed(model, take_windows(audio, params, silence_dbfs))
    onset = onset_windows(audio, params, silence_dbfs)
    rows = np.concatenate([_embed(model, onset)[0], body]) if onset else body
    return normalise(body.mean(axis=0)), probs.mean(axis=0), rows


def embed_take(model: Any, audio: np.ndarray, params: LogMelParams,
               silence_dbfs: float) -> tuple[np.ndarray, np.ndarray]:
    """(unit embedding, mean probabilities) of one take, averaged over its windows."""
    return embed_take_windows(model, audio, params, silence_dbfs)[:2]


def embedder(model: Any, params: LogMelParams, silence_dbfs: float) -> Callable:
    """``TaughtStore.refresh``'s embed function: takes -> (prototype, per-take embeddings, window embeddings)."""

    def embed(takes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        each = [embed_take_windows(model, t, params, silence_dbfs) for t in takes]
        embs = np.stack([e for e, _, _ in each])
        return normalise(embs.mean(axis=0)), embs, np.concatenate([w for _, _, w in each])

    return embed


def open_set_params(model: Any, teach: TeachConfig) -> OpenSetParams:
    """The model's calibrated thresholds, with config [teach] overrides."""
    meta = getattr(model, "metadata", {}) or {}
    return OpenSetParams.from_metadata(meta, str(getattr(model, "path", "<model>")), unknown=teach.unknown,
                                       min_confidence=teach.min_confidence,
                                       max_centre_distance=teach.max_centre_distance,
                                       taught_max_distance=teach.taught_max_distance)


def load_taught(store: TaughtStore, model: Any, params: LogMelParams, silence_dbfs: float,
                on_recompute: Callable[[TaughtClass], None] = lambda c: None, recover: bool = True,
                save: bool = True) -> list[TaughtClass]:
    """The store's classes with prototypes for this model's embedding (recomputed after a model update;
    ``on_recompute(c)`` before each). ``recover=False``: no crash recovery (the running box, which may race
    a CLI half-way through a teach); ``save=False``: recomputed prototypes stay in memory.

    A model without an embedding can use no taught sound: they are kept on disk, unused.
    """
    if not getattr(model, "has_embedding", False):
        return []
    classes = store.refresh(model.embedding_version, embedder(model, params, silence_dbfs),
                            classes=store.load(recover=recover), on_recompute=on_recompute, save=save)
    return without_clashes(classes, model.labels)


def build_decider(model: Any, teach: TeachConfig, classes: Sequence[TaughtClass] = ()) -> OpenSetDecider:
    """The open-set decision for ``model`` with these taught classes."""
    protos = {c.label: c.prototypes() for c in classes if c.prototype is not None}
    return OpenSetDecider(model.labels, open_set_params(model, teach), protos)


def open_set_model(cfg: Config, model: Any, on_recompute: Callable[[TaughtClass], None] = lambda c: None
                   ) -> tuple[OpenSetModel, list[TaughtClass]]:
    """What the builder runs: ``model`` seen through the open-set decision with the box's taught sounds
    (config ``[teach] dir``, prototypes recomputed after a model update), and those sounds for the Responder."""
    classes = load_taught(TaughtStore(cfg.teach.dir), model, LogMelParams(), cfg.sound.silence_dbfs, on_recompute)
    if classes:
        import logging

        logging.getLogger("saysee").info("taught sounds: %s", ", ".join(c.label for c in classes))
    return OpenSetModel(model, build_decider(model, cfg.teach, classes)), classes


# ------------------------------------------------------------------ enrolment


def enrolment_problems(decider: OpenSetDecider, takes: Sequence[Take], embs: np.ndarray,
                       probs: np.ndarray) -> list[str]:
    """Warnings that stop an enrolment without --force: a take unlike the others, a sound the box knows."""
    problems = []
    limit, take_limit = decider.params.taught_max_distance, decider.params.take_limit
    if len(takes) == 2:
        d = cosine_distance(embs[0], embs[1])
        if d > take_limit:
            problems.append(f"the two takes do not sound alike (distance {d:.2f} > {take_limit:.2f}): "
                            f"{takes[0].source}, {takes[1].source}")
    elif len(takes) > 2:
        for i, t in enumerate(takes):
            others = normalise(np.delete(embs, i, axis=0).mean(axis=0))
            d = cosine_distance(embs[i], others)
            if d > take_limit:
                problems.append(f"take {i + 1} ({t.source}) does not sound like the others "
                                f"(distance {d:.2f} > {take_limit:.2f})")
    proto = normalise(embs.mean(axis=0))
    dist = decider.distances(proto)
    close = sorted((d, k) for k, d in dist.items() if d <= limit)
    votes = [decider.decide(p, e) for p, e in zip(probs, embs)]
    known = [v.label for v in votes if v.kind != "unknown"]
    if close:
        d, k = close[0]
        problems.append(f"this sounds like {k} (distance {d:.2f} <= {limit:.2f})")
    elif known and max(known.count(k) for k in set(known)) * 2 > len(votes):
        k = max(set(known), key=known.count)
        sure = np.mean([v.confidence for v in votes if v.label == k])
        problems.append(f"this sounds like {k} (the box already hears it as {k}, {sure:.2f} sure)")
    return problems


def enrol(store: TaughtStore, model: Any, label: str, takes: Sequence[Take], *, teach: TeachConfig,
          params: LogMelParams = LogMelParams(), silence_dbfs: float = SILENCE_DBFS,
          mapping: dict[str, Any] | None = None, picture: str | None = None, force: bool = False,
          log: Callable[[str], None] = print, recover: bool = True) -> TaughtClass:
    """Check and store one taught class; TeachRefused (after printing the warnings) unless ``force``.
    ``recover=False`` for the running box's teach button (see ``load_taught``)."""
    check_label(label, model)
    if not getattr(model, "has_embedding", False):
        raise ModelError(f"{getattr(model, 'path', 'the sound model')} has no embedding output: run make models")
    if not takes:
        raise TeachRefused(f"{label}: no takes to teach from")
    check_room(store, teach, label)
    existing = [c for c in load_taught(store, model, params, silence_dbfs, recover=recover) if c.label != label]
    if (store.root / label).exists() and not force:
        raise TeachRefused(f"{store.root / label}: {label!r} is taught already; --force replaces it")
    decider = build_decider(model, teach, existing)
    each = [embed_take_windows(model, t.audio, params, silence_dbfs) for t in takes]
    embs = np.stack([e for e, _, _ in each])
    probs = np.stack([p for _, p, _ in each])
    windows = np.concatenate([w for _, _, w in each])
    problems = enrolment_problems(decider, takes, embs, probs)
    for p in problems:
        log(f"teach: warning: {p}")
    if problems and not force:
        raise TeachRefused(f"{label!r} not taught: {problems[0]}"
                           + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                           + "; --force teaches it anyway")
    return store.add(label, [t.audio for t in takes], params.sample_rate, normalise(embs.mean(axis=0)), embs,
                     model.embedding_version, mapping=mapping, picture=picture, replace=force,
                     window_embeddings=windows)


def check_label_text(label: str) -> None:
    """A taught name is never ``unknown`` nor a built-in class (for a model with any labels)."""
    from device.sound.labels import URBANSOUND_CLASSES

    if label == UNKNOWN or label in URBANSOUND_CLASSES:
        raise TeachRefused(f"{label!r} is a built-in class name; choose another name for the taught sound")


def check_label(label: str, model: Any) -> None:
    """A taught label must not be a built-in class or ``unknown`` (no --force for that)."""
    check_label_text(label)
    if label in model.labels:
        raise TeachRefused(f"{label!r} is a built-in class name; choose another name for the taught sound")


def next_generated_name(taken: Sequence[str], prefix: str = "sound") -> str:
    """"sound 1", "sound 2"... the first free one (the button's names; the CLI renames them later)."""
    i = 1
    while f"{prefix} {i}" in taken:
        i += 1
    return f"{prefix} {i}"


# ------------------------------------------------------------------ command line


def load_model(path: str, num_threads: int = 1) -> Any:
    """The sound model the CLI commands use (one place, so tests can hand in a stand-in)."""
    from device.model import Model

    return Model(path, expected_frontend=LogMelParams(), num_threads=num_threads)


def load_config(path: str | None) -> Config:
    """--config, else $SAYSEE_CONFIG, else /etc/saysee/config.toml when present, else the defaults."""
    from device.config import load_config as _load

    if path:
        return _load(path)
    default = os.environ.get("SAYSEE_CONFIG", "/etc/saysee/config.toml")
    return _load(default) if Path(default).is_file() else Config()


def _note(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a MIDI note number") from None
    if not 0 <= n <= 127:
        raise argparse.ArgumentTypeError(f"{text}: a MIDI note is 0..127")
    return n


def _colour(text: str) -> str:
    try:
        return colour_hex(parse_colour(text, "--colour"))  # type: ignore[return-value]
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m device teach", description=__doc__.split("\n")[0])
    ap.add_argument("label", help="name of the new sound, e.g. moo")
    ap.add_argument("files", nargs="*", help="WAV files with the takes (several takes per file are split at silence)")
    ap.add_argument("--record", type=int, metavar="N", help="record N takes from the box's mic instead of files")
    ap.add_argument("--taught", help="taught-sounds folder (default: config [teach] dir)")
    ap.add_argument("--picture", help="PNG shown when the sound is heard")
    ap.add_argument("--colour", type=_colour, help="LED and screen colour, e.g. \"#ff8800\"")
    ap.add_argument("--note", type=_note, help="MIDI note the synth plays when the sound is heard")
    ap.add_argument("--force", action="store_true", help="teach despite warnings; replace a sound of that name")
    ap.add_argument("--model", help="sound model (default: config [sound] model)")
    ap.add_argument("--config", help="config file (default /etc/saysee/config.toml if present)")
    ap.add_argument("--sim", action="append", default=[], metavar="WAV", help="--record from a WAV playlist")
    return ap


def record(cfg: Config, n: int, label: str, out: Path, sim: Sequence[str], log: Callable[[str], None]) -> list[Path]:
    """N takes from the configured mic into ``out``, counted down on stdout, the LED and the screen."""
    from device.hardware.mic import open_mic
    from device.sound.recorder import _open_indicators, record_takes

    m = cfg.mic
    if sim:  # a WAV playlist as the mic, read as fast as the takes are taken
        m = dataclasses.replace(m, backend="sim", playlist=tuple(sim), realtime=False)
    mic = open_mic(m.backend, dataclasses.replace(m, buffer_seconds=max(m.buffer_seconds, 5.0)))
    leds, display = (None, None) if sim else _open_indicators(cfg, log)
    try:
        result = record_takes(mic, label, cfg.teach.take_s, n, out, countdown=cfg.teach.countdown_s,
                              display=display, leds=leds, log=log)
    finally:
        for dev in (display, leds, mic):
            if dev is not None:
                with contextlib.suppress(Exception):
                    dev.close()
    if len(result.saved) < n:
        raise TeachRefused(f"{label}: only {len(result.saved)} of {n} takes recorded ({result.stopped_by})")
    return result.saved


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.record is not None and args.files:
        raise TeachRefused("give either FILEs or --record N, not both")
    if args.record is None and not args.files:
        raise TeachRefused("no takes: give WAV files or --record N")
    if args.record is not None and not 1 <= args.record <= 10:
        raise TeachRefused(f"--record {args.record}: between 1 and 10 takes")
    for path in args.files:
        wav_info(path)  # a bad header is reported before the model loads
    if args.picture and not Path(args.picture).is_file():
        raise InputFileError(f"{args.picture}: no such picture (--picture)")
    cfg = load_config(args.config)
    params = LogMelParams()
    model = load_model(args.model or cfg.sound.model, cfg.sound.num_threads)
    check_label(args.label, model)
    if not getattr(model, "has_embedding", False):
        shown = args.model or _shown(cfg.sound.model)
        raise ModelError(f"{shown} has no embedding output: run make models")
    store = TaughtStore(args.taught or cfg.teach.dir)
    check_room(store, cfg.teach, args.label)  # before any take is recorded
    silence = cfg.sound.silence_dbfs
    with tempfile.TemporaryDirectory(prefix="saysee-teach-") as tmp:
        files = list(args.files)
        if args.record is not None:
            files = [str(p) for p in record(cfg, args.record, args.label, Path(tmp), args.sim, print)]
        takes = [t for f in files for t in read_takes(f, params, cfg.teach, silence)]
        from device.screen.palette import class_colour

        mapping = {"colour": args.colour or colour_hex(class_colour(args.label)), "note": args.note}
        c = enrol(store, model, args.label, takes, teach=cfg.teach, params=params, silence_dbfs=silence,
                  mapping=mapping, picture=args.picture, force=args.force)
    print(f"taught {c.label!r} from {len(c.takes)} take(s) (embedding {c.embedding_version}): {c.folder}")
    return 0


def _shown(path: str) -> str:
    """A model path as the user knows it: relative to the project when it lies inside."""
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(PROJECT_ROOT.resolve()))
    return path
