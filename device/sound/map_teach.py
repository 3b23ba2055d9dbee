"""`python -m device map-teach`: teach the box a continuous mapping by demonstration.

    python -m device map-teach [--taught DIR] \\
        --example low1.wav low2.wav --rgb "#ff0000" --cc 74=20 \\
        --example high.wav          --rgb 0000ff    --cc 74=110,1=64 \\
        --record 3                  --rgb "#00ff00" --cc 74=64,1=0
    python -m device map-teach --add --example squeak.wav --rgb ffff00 --cc 74=127,1=127
    python -m device map-forget [--taught DIR]

Each ``--example FILE...`` (or ``--record N``: N takes from the box's mic) starts one demonstration;
the ``--rgb`` (LED colour, ``#RRGGBB``) and ``--cc`` (``NUMBER=VALUE`` pairs, CC 0..119, value
0..127) after it are the outputs that sound should produce. Every example sets the same outputs.
A file may hold several takes separated by silence. No retraining: each take's windows go through
the sound model's embedding and a small regression (``device.sound.mapping``: k nearest windows, inverse-distance
weights) maps embedding -> outputs; the box runs it every hop with ``[continuous] mode = "taught"``.

Refused with one line, nothing saved changed: fewer than two examples, examples asking for the same
outputs, outputs missing from some example, values out of range or not numbers, bad colours,
silent / too short / clipped takes, and two examples that are the same sound but ask for very
different outputs (the regression could only average them). The mapping is saved beside the taught sounds
(``DIR/.mapping``, see ``device.sound.mapping_store``), with the takes, so it follows a model update.
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from device.config import parse_colour
from device.errors import ConfigError, ModelError
from device.frontend import LogMelParams
from device.sound.mapping import (
    CC_NUMBERS,
    DEFAULT_METHOD,
    MappingError,
    leave_one_take_out,
)
from device.sound.mapping_store import (
    Example,
    MappingStore,
    conflicts,
    demonstrations,
    describe_outputs,
    output_names,
)

_CC_PAIR = re.compile(r"^(?:cc)?(\d+)=(.+)$", re.IGNORECASE)


def parse_rgb(text: str, where: str) -> tuple[float, float, float]:
    """'#ff8800' or 'ff8800' -> 0..1 floats (MappingError naming ``where`` otherwise)."""
    t = text.strip()
    try:
        return parse_colour(t if t.startswith("#") else "#" + t, where)  # type: ignore[return-value]
    except ConfigError:
        raise MappingError(f"{where} {text!r}: expected a colour like \"#ff8800\"") from None


def parse_cc(text: str, where: str) -> dict[str, int]:
    """'74=100,1=20' (or 'cc74=100,cc1=20') -> {"cc74": 100, "cc1": 20}; numbers checked, NaN refused."""
    out: dict[str, int] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()] or [text]:
        m = _CC_PAIR.match(part)
        if not m:
            raise MappingError(f"{where} {part!r}: expected NUMBER=VALUE, e.g. 74=100")
        number, value = int(m.group(1)), m.group(2).strip()
        if number not in CC_NUMBERS:
            raise MappingError(f"{where} {part!r}: CC number {number} is not a controller (0..119; "
                               "120..127 are channel mode messages)")
        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v != int(v) or not 0 <= v <= 127:
            raise MappingError(f"{where} {part!r}: a CC value is a whole number 0..127, not {value!r}")
        out[f"cc{number}"] = int(v)
    return out


class _Start(argparse.Action):
    """--example FILE... / --record N: a new demonstration; the outputs that follow belong to it."""

    def __call__(self, parser, ns, values, option_string=None):
        examples = getattr(ns, "examples", None) or []
        if option_string == "--record":
            try:
                n = int(values)
            except ValueError:
                raise MappingError(f"--record {values!r}: expected a number of takes") from None
            if not 1 <= n <= 10:
                raise MappingError(f"--record {n}: between 1 and 10 takes")
            examples.append({"files": [], "record": n, "outputs": {}})
        else:
            examples.append({"files": list(values), "record": None, "outputs": {}})
        ns.examples = examples


class _Output(argparse.Action):
    """--rgb / --cc: an output of the latest example."""

    def __call__(self, parser, ns, values, option_string=None):
        examples = getattr(ns, "examples", None) or []
        if not examples:
            raise MappingError(f"{option_string} {values}: give the example's sound first "
                               "(--example FILE... or --record N), then its outputs")
        ex = examples[-1]
        where = f"example {len(examples)} {option_string}"
        new = {"rgb": parse_rgb(values, where)} if option_string == "--rgb" else parse_cc(values, where)
        twice = sorted(set(new) & set(ex["outputs"]))
        if twice:
            raise MappingError(f"{where}: {twice[0]} is given twice for one example")
        ex["outputs"].update(new)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m device map-teach", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[2:7]))
    ap.add_argument("--example", nargs="+", action=_Start, metavar="FILE", help="a demonstration's takes (WAV)")
    ap.add_argument("--record", action=_Start, metavar="N", help="a demonstration recorded from the mic (N takes)")
    ap.add_argument("--rgb", action=_Output, metavar="#RRGGBB", help="LED colour the latest example should give")
    ap.add_argument("--cc", action=_Output, metavar="N=V[,N=V]", help="MIDI CC values the latest example should give")
    ap.add_argument("--add", action="store_true", help="add these examples to the saved mapping's")
    ap.add_argument("--force", action="store_true", help="replace a saved mapping")
    ap.add_argument("--taught", "--out", dest="taught", help="taught-sounds folder (default: config [teach] dir)")
    ap.add_argument("--model", help="sound model (default: config [sound] model)")
    ap.add_argument("--config", help="config file (default /etc/saysee/config.toml if present)")
    ap.add_argument("--sim", action="append", default=[], metavar="WAV", help="--record from a WAV playlist")
    return ap


def _source(ex: dict[str, Any], i: int) -> str:
    return ", ".join(ex["files"]) if ex["files"] else f"{ex['record']} recorded take(s) of example {i}"


def main(argv: list[str] | None = None) -> int:
    from device.sound import teach
    from device.wavfile import wav_info

    args = _parser().parse_args(argv)
    given = getattr(args, "examples", None) or []
    if args.add and args.force:
        raise MappingError("give --add (keep the saved examples) or --force (replace them), not both")
    cfg = teach.load_config(args.config)
    store = MappingStore(args.taught or cfg.teach.dir)
    if store.exists() and not (args.add or args.force):
        raise MappingError(f"{store.folder}: a mapping is taught already (--add adds examples to it, "
                           "--force replaces it)")
    if args.add and not store.exists():
        raise MappingError(f"{store.root}: no mapping taught yet to --add to")
    old = store.examples() if args.add else []
    # Outputs first: a typo must not wait for the model or a recording.
    output_names(old + [Example(_source(ex, i), (), ex["outputs"]) for i, ex in enumerate(given, len(old) + 1)])
    for ex in given:
        for path in ex["files"]:
            wav_info(path)  # a bad header is reported before the model loads
    params = LogMelParams()
    silence = cfg.sound.silence_dbfs
    model = teach.load_model(args.model or cfg.sound.model, cfg.sound.num_threads)
    if not getattr(model, "has_embedding", False):
        raise ModelError(f"{args.model or cfg.sound.model}: the sound model has no embedding output: run make models")
    t0 = time.monotonic()
    examples = list(old)
    with tempfile.TemporaryDirectory(prefix="saysee-map-teach-") as tmp:
        for i, ex in enumerate(given, len(old) + 1):
            files = list(ex["files"])
            if ex["record"]:
                files = [str(p) for p in teach.record(cfg, ex["record"], f"example {i}", Path(tmp) / str(i),
                                                       args.sim, print)]
            takes = [t.audio for f in files for t in teach.read_takes(f, params, cfg.teach, silence)]
            examples.append(Example(_source(ex, i), tuple(takes), ex["outputs"]))

    def embed(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, _, windows = teach.embed_take_windows(model, audio, params, silence)
        return e, windows

    demo = demonstrations(examples, embed)
    embed_s = time.monotonic() - t0
    problems = conflicts(examples, demo)
    if problems:  # the regression could only average them: no --force for that
        raise MappingError(f"mapping not taught: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                   if len(problems) > 1 else "")
                           + "; give one sound one set of outputs")
    t1 = time.monotonic()
    m = store.save(examples, demo, params.sample_rate, model.embedding_version, DEFAULT_METHOD,
                   replace=args.add or args.force)
    m.mapping()  # the fit the box will make, timed here
    fit_s = time.monotonic() - t1
    loo = leave_one_take_out(demo.rows, demo.row_take, demo.targets, demo.names)
    n_takes = len(demo.take_embeddings)
    print(f"map-teach: {len(examples)} examples, {n_takes} takes, {len(demo.rows)} windows -> "
          f"{' '.join(demo.names)} ({DEFAULT_METHOD}; embedding {embed_s:.1f} s, storing and fitting {fit_s:.2f} s)")
    if n_takes > 2:
        errs = [f"{k} {loo[k]:.0f}/{255 if k == 'rgb' else 127}" for k in ("rgb", "cc") if k in loo]
        print(f"map-teach: leave-one-take-out error {', '.join(errs)}; the right example's outputs are the "
              f"nearest for {100 * loo['nearest_ok']:.0f} % of held-out windows")
    for i, ex in enumerate(examples, 1):
        print(f"  example {i}: {ex.source} ({len(ex.takes)} take(s)) -> {describe_outputs(ex.outputs)}")
    print(f"taught the mapping: {m.folder} (embedding {m.embedding_version}); "
          f"[continuous] mode = \"taught\" runs it on the box")
    return 0


def forget_main(argv: list[str] | None = None) -> int:
    """`python -m device map-forget`."""
    from device.sound import teach

    ap = argparse.ArgumentParser(prog="python -m device map-forget", description="Remove the taught mapping.")
    ap.add_argument("--taught", "--out", dest="taught", help="taught-sounds folder (default: config [teach] dir)")
    ap.add_argument("--config", help="config file (default /etc/saysee/config.toml if present)")
    args = ap.parse_args(argv)
    store = MappingStore(args.taught or teach.load_config(args.config).teach.dir)
    store.forget()
    print(f"forgot the taught mapping ({store.folder})")
    return 0
