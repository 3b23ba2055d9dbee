"""`make bench`: every speed, latency and size figure the README quotes.

    python -m bench [--repeats N] [--quick] [--out bench]

Writes <out>/results.json (machine, settings, every figure with its spread and
unit, the date) and <out>/results.md (the same as a Markdown table, also
printed). --quick is the reduced run the tests use: 2 repeats, short timing
loops, a 3-clip playlist and no marimba end-to-end run. The sound end-to-end
run plays its playlist once per decision design (onset, window), in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from device.config import PROJECT_ROOT

from . import report
from .machine import load_average, machine_info


SECTIONS = ("frontend", "e2e_sound", "e2e_marimba", "resynth", "models", "rectify", "generator", "taught_onset",
            "habituation", "mapping", "labeller")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help="repeats per timing (default 5; --quick: 2)")
    ap.add_argument("--quick", action="store_true", help="reduced run for tests (about 30 s)")
    ap.add_argument("--out", default=str(PROJECT_ROOT / "bench"), help="folder for results.json and results.md")
    ap.add_argument("--models", default=str(PROJECT_ROOT / "models"), help="folder of the int8 models")
    ap.add_argument("--reports", default=str(PROJECT_ROOT / "reports"),
                    help="training reports (trained Keras models for the float peers)")
    ap.add_argument("--clips", type=int, default=None,
                    help="held-out clips in each sound e2e run (default 60, at most 60; --quick: 3)")
    ap.add_argument("--marimba-seconds", type=float, default=20.0, help="length of the marimba e2e run")
    ap.add_argument("--only", default="", metavar="SECTION[,SECTION]",
                    help=f"run only these sections ({', '.join(SECTIONS)}); the rest are listed as skipped")
    args = ap.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.clips = args.clips or (3 if args.quick else 60)
    # Seconds each timing repeat lasts at least (see bench.stats.measure).
    args.min_time = 0.02 if args.quick else 0.2
    args.only = {x for x in args.only.split(",") if x}
    if args.quick and Path(args.out).resolve() == (PROJECT_ROOT / "bench").resolve():
        args.out = str(PROJECT_ROOT / "bench" / "quick")  # a reduced run never overwrites the full results
    if args.only - set(SECTIONS):
        ap.error(f"--only: unknown section(s) {', '.join(sorted(args.only - set(SECTIONS)))}")
    if args.repeats < 1 or not 1 <= args.clips <= 60:
        ap.error("--repeats must be positive and --clips between 1 and 60")
    return args


class Run:
    """Collects figures, notes and the reasons for anything not measured, section by section."""

    def __init__(self, only: set[str] = frozenset()) -> None:
        self.only = only
        self.figures: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.ran: list[str] = []
        self.failed = False
        self.interrupted = False

    def section(self, name: str, fn: Callable[[], tuple]) -> None:
        """Run one section; a failure is recorded (and fails the run) without losing the others. After a
        Ctrl-C no further section runs, and what finished is still written."""
        if self.only and name not in self.only:
            self.unavailable[name] = SKIPPED
            return
        if self.interrupted:
            self.unavailable[name] = "not run (interrupted)"
            return
        t0 = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        try:
            result = fn()
        except KeyboardInterrupt:
            self.interrupted = self.failed = True
            self.unavailable[name] = "interrupted"
            print(f"bench: {name} interrupted; writing what finished", file=sys.stderr, flush=True)
            return
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the rest
            self.failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            self.unavailable[name] = f"failed: {first}"
            traceback.print_exc()
            return
        figures, notes, *unavailable = result  # (figures, notes[, what could not be measured])
        self.figures.update(figures)
        self.notes.update(notes)
        for missing in unavailable:
            self.unavailable.update(missing)
        self.ran.append(name)
        print(f"bench: {name} done in {time.monotonic() - t0:.1f} s", flush=True)


SKIPPED = "skipped (--only)"


def merged(results: dict[str, Any], old: dict[str, Any], ran: list[str]) -> dict[str, Any]:
    """A partial run (--only) folded into the full one it refreshes: the sections it ran replace theirs,
    the others keep their figures; ``section_dates`` says when each section was last measured."""
    out = dict(results)
    out["figures"] = {**old.get("figures", {}), **results["figures"]}
    out["notes"] = {**old.get("notes", {}), **results["notes"]}
    kept = {k: v for k, v in old.get("unavailable", {}).items() if k not in ran}
    out["unavailable"] = {**kept, **{k: v for k, v in results["unavailable"].items() if v != SKIPPED}}
    dates = dict(old.get("section_dates") or {s: old.get("date") for s in SECTIONS})
    out["section_dates"] = {**dates, **{s: results["date"] for s in ran}}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    models, reports = Path(args.models), Path(args.reports)
    work = Path(tempfile.mkdtemp(prefix="saysee-bench-"))
    run = Run(args.only)
    machine = machine_info()

    from .frontend import bench_frontend

    run.section("frontend", lambda: bench_frontend(args.repeats, args.min_time))

    # The e2e runs go before TensorFlow is loaded here: the parent stays a small idle process meanwhile.
    from .e2e import bench_marimba_e2e, bench_sound_e2e

    sound_model, marimba_model = models / "sound.tflite", models / "marimba.tflite"
    if sound_model.is_file():
        run.section("e2e_sound", lambda: bench_sound_e2e(sound_model, args.clips, work,
                                                         negatives_minutes=1.0 if args.quick else 10.0))
    else:
        run.unavailable["e2e_sound"] = f"not available: {report.shown(sound_model)} missing"
    if not marimba_model.is_file():
        run.unavailable["e2e_marimba"] = f"not available: {report.shown(marimba_model)} missing"
    elif args.quick:
        run.unavailable["e2e_marimba"] = "skipped in --quick"
    else:
        run.section("e2e_marimba", lambda: bench_marimba_e2e(marimba_model, args.marimba_seconds, work))

    # Camera -> sound (issue 13 §3): resynthesis cost, frame -> audio latency, spectrum vs the true audio.
    from .resynth import bench_resynth

    if marimba_model.is_file():
        run.section("resynth", lambda: bench_resynth(marimba_model, args.quick, args.repeats, args.min_time,
                                                     args.marimba_seconds, work))
    else:
        run.unavailable["resynth"] = f"not available: {report.shown(marimba_model)} missing"

    from .models import bench_models

    run.section("models", lambda: bench_models(models, reports, args.repeats, args.min_time, work))

    # Marimba frames rectified to the canonical bar-row view (issue 14 §1), against OpenCV.
    from .rectify import bench_rectify

    run.section("rectify", lambda: bench_rectify(args.repeats, args.min_time))

    # Sound -> picture (issue 13 §1): the dream mode's generator against the sound model, same run.
    from .generator import bench_generator

    run.section("generator", lambda: bench_generator(models, args.repeats, args.min_time))

    # Taught sounds through the streaming pipeline on held-out families (bench/taught_onset.py).
    from .taught_onset import bench_taught_onset

    if sound_model.is_file():
        run.section("taught_onset", lambda: bench_taught_onset(sound_model, args.quick))
    else:
        run.unavailable["taught_onset"] = f"not available: {report.shown(sound_model)} missing"

    # Getting used to the room: false pictures saved, long and after-the-TV sounds lost (bench/habituation.py).
    from .habituation import bench_habituation

    if sound_model.is_file():
        run.section("habituation", lambda: bench_habituation(sound_model, args.quick))
    else:
        run.unavailable["habituation"] = f"not available: {report.shown(sound_model)} missing"

    # Mappings taught by demonstration (issue 13 §2): held-out error, jitter, fit time, per-hop cost, plot.
    from .mapping import bench_mapping

    if sound_model.is_file():
        run.section("mapping", lambda: bench_mapping(sound_model, Path(args.out), args.quick))
    else:
        run.unavailable["mapping"] = f"not available: {report.shown(sound_model)} missing"

    # Marimba audio labellers (issue 14 §4): old / harmonic / basic-pitch on two timbres, same run.
    from .labeller import bench_labeller

    run.section("labeller", lambda: bench_labeller(args.quick))

    from device.config import SoundConfig

    from .e2e import DESIGNS
    from .estimate import pi_estimates

    machine["load_average_at_end"] = load_average()
    results = {
        "machine": machine,
        "date": machine["date"],
        "settings": {"repeats": args.repeats, "quick": args.quick, "min_time_per_repeat_s": args.min_time,
                     "clips": args.clips, "marimba_seconds": args.marimba_seconds},
        "elapsed_s": round(time.monotonic() - t0, 1),
        "figures": run.figures,
        "estimates": pi_estimates(run.figures, {d: SoundConfig(decision=d).decision_hop_s for d in DESIGNS}),
        "unavailable": run.unavailable,
        "notes": run.notes,
    }
    results["section_dates"] = {s: results["date"] for s in run.ran}
    bad = report.check(results)
    if bad:
        run.failed = True
        results["unavailable"]["invalid_figures"] = "; ".join(bad)
    previous = Path(args.out) / "results.json"
    if args.only and previous.is_file():  # refresh some sections of a full run, never replace it with them
        import json

        with contextlib.suppress(ValueError, OSError):
            results = merged(results, json.loads(previous.read_text()), run.ran)
    js, md = report.write(results, Path(args.out))
    print()
    print(report.markdown(results))
    print(f"bench: wrote {js} and {md} in {results['elapsed_s']:.0f} s")
    if run.interrupted:
        return 130
    if run.failed:
        print(f"bench: some sections failed; scratch files kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0



if __name__ == "__main__":
    sys.exit(main())
