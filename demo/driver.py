"""`make demo` / `python -m demo`: the real pipelines on simulated hardware.

Sound phase: the bundled playlist (assets/demo/sounds.wav, with its known
onsets in sounds.json) is the microphone; LEDs are recorded, the display writes
PNG frames, the synth is the virtual synth on a pseudo-terminal (written to
through pyserial) rendering a WAV. Marimba phase (when the marimba model
exists): a synthetic marimba video is the camera and the notes go to the same
kind of virtual synth, while the model's note levels are resynthesised
(``[audio_out] mode = "resynth"``) into marimba-resynth.wav beside its
synth.wav. Everything lands in one output folder, with a summary.

This driver lives outside ``device/`` because it renders the marimba video and
scores both phases with workstation code (``training``); the box never needs it.
The output folder is the demo's own: it deletes only what it writes there, and
refuses a non-empty folder that is not an earlier demo output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from device.config import PROJECT_ROOT, check_files, load_config
from device.errors import InputFileError
from device.runtime.builder import RESYNTH_WAV
from training.cli import run_cli
from training.scoring import ONSET_TOLERANCE_S, SOUND_TOLERANCE_S, load_truth, score_detections

DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.toml"
PHASES = ("sound", "teach", "marimba")
MARKER = ".saysee-demo"  # written first, so a run that crashed midway is still recognised as the demo's
PRODUCTS = (*PHASES, "marimba-input", "summary.json", MARKER)  # everything the demo writes in --out


def prepare_out(out: Path) -> None:
    """Make ``out`` ready for a run: create it, or clear the demo's own products from an earlier run.

    Raises InputFileError for a path that is not a folder, or a non-empty
    folder that no demo wrote: the demo must never delete a user's files.
    """
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not _is_demo_output(out):
        raise InputFileError(f"{out}: not empty and not an earlier demo output; "
                             "the demo deletes only what it wrote, so choose another --out")
    for name in PRODUCTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"Written by `python -m demo`; a rerun replaces {', '.join(PRODUCTS[:-1])} here.\n")


def _is_demo_output(out: Path) -> bool:
    if (out / MARKER).is_file():
        return True
    # Output of a demo from before the marker existed: its summary names only the demo's phases.
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and set(summary) <= set(PHASES)


def _write_outputs(out: Path, events: list[Any], devices, phase: str) -> dict[str, str]:
    from device.screen.contact_sheet import animated_gif, contact_sheet

    files: dict[str, str] = {}
    (out / "events.log").write_text("".join(f"{e}\n" for e in events))
    files["events"] = str(out / "events.log")
    leds = devices.leds
    if leds is not None and hasattr(leds, "timeline"):
        lines = ["t_s,r,g,b,brightness"]
        t0 = None
        for st in leds.timeline():
            t0 = st.t if t0 is None else t0
            lines.append(f"{st.t - t0:.3f},{st.rgb[0]:.3f},{st.rgb[1]:.3f},{st.rgb[2]:.3f},{st.brightness:.3f}")
        (out / "leds.csv").write_text("\n".join(lines) + "\n")
        files["led timeline"] = str(out / "leds.csv")
    frames = sorted((out / "frames").glob("frame_*.png"))
    if frames:
        files["contact sheet"] = str(contact_sheet(frames, out / "contact_sheet.png", columns=4, max_frames=16))
        gif = animated_gif(frames, out / f"{phase}.gif", fps=4)
        if gif:
            files["animation"] = str(gif)
    for name in ("synth.wav", RESYNTH_WAV, "synth.log", "status.json"):
        if (out / name).exists():
            files[name] = str(out / name)
    return files


def dream_unusable(cfg) -> str | None:
    """Why dream mode cannot run with this config's models (None = it can): the demo then shows cards."""
    from device.errors import ModelError
    from device.model import metadata_path_for, read_metadata
    from device.screen.dream import check_sound_model

    gen = Path(cfg.display.generator)
    if not gen.is_file():
        return f"{gen} not found"
    try:
        check_sound_model(read_metadata(metadata_path_for(gen)), read_metadata(metadata_path_for(cfg.sound.model)), gen)
    except ModelError as e:
        return str(e).split(";")[0]
    return None


def dream_frames(out: Path, n: int = 6) -> list[str]:
    """A few of the sound phase's frames (dream mode: the pictures generated from the sound), copied to
    ``out/dream/``, evenly spaced through the run."""
    frames = sorted((out / "frames").glob("frame_*.png"))
    if not frames:
        return []
    picked = [frames[round(i * (len(frames) - 1) / max(n - 1, 1))] for i in range(min(n, len(frames)))]
    (out / "dream").mkdir(exist_ok=True)
    copies = []
    for i, f in enumerate(dict.fromkeys(picked)):
        dest = out / "dream" / f"dream_{i + 1}.png"
        shutil.copyfile(f, dest)
        copies.append(str(dest))
    return copies


def render_marimba_input(folder: Path, seed: int, seconds: float = 12.0):
    """A synthetic marimba video (a seed never used in training) as the camera; returns (video, true strikes).

    ``folder`` should be new or empty (the demo's is cleared by ``prepare_out``).
    """
    from training.datasets.marimba_synth import SynthConfig, render, write

    video = render(seed, SynthConfig(seconds=seconds))
    out = Path(write(video, folder))
    found = sorted(p for p in out.iterdir() if p.stem == "video")
    if not found:
        raise InputFileError(f"{out}: the renderer wrote no video file (is opencv installed?)")
    return found[0], video.events


def run_phase(cfg, out: Path, phase: str) -> tuple[list[Any], dict[str, str], Any]:
    """Run one App over sim backends to the end of its inputs; return (events, files, app)."""
    from device.runtime.builder import build_app

    out.mkdir(parents=True)  # new: prepare_out removed the previous run's
    cfg = dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, status_file=str(out / "status.json")))
    events: list[Any] = []
    app, cleanup = build_app(cfg, sim=True, out_dir=out, on_event=events.append)
    try:
        app.run(seconds=None, stop_when_done=True)
    finally:
        cleanup()
    return events, _write_outputs(out, events, app.dev, phase), app


def print_rows(score: dict[str, Any], what: str) -> None:
    """The demo's table: each clip, what the box decided and how long after the onset."""
    print(f"  {what:18s} {'onset':>6s}  {'detected':18s} latency")
    for r in score["rows"]:
        lat = f"{1000 * r['latency_s']:.0f} ms" if r["hit"] else "-"
        print(f"  {r['label']:18s} {r['onset']:6.2f}  {str(r['detected']):18s} {lat}")


def teach_phase(cfg, out: Path) -> dict[str, Any] | None:
    """Teach the box a sound from three takes, then play it and a sound it does not know."""
    from demo import teach
    from device.sound.pipeline import ClassDetected

    if not teach.has_embedding(cfg.sound.model):
        print(f"demo: skipping the teach phase: {cfg.sound.model} has no embedding output (run `make models`)")
        return None
    print("demo: teach phase ...", flush=True)
    label, fourth, other, taught = teach.enrol_takes(cfg, out)
    print(f"  taught '{label}' from 3 takes ({out / 'take-1.wav'} ...) into {out / 'taught'}")
    wav, truth = teach.playlist(fourth, other, label, out)
    cfg = dataclasses.replace(cfg, mic=dataclasses.replace(cfg.mic, playlist=(str(wav),)),
                              teach=dataclasses.replace(cfg.teach, dir=str(out / "taught")))
    events, files, app = run_phase(cfg, out / "run", "teach")
    score = score_detections(truth, [e for e in events if isinstance(e, ClassDetected)])
    print_rows(score, "sound")
    print(f"  {score['hits']}/{score['clips']} as expected (the taught sound by its name, the other as "
          f"'unknown': the teach-me card); {score['false_in_silence']} detections during silence")
    for name, path in files.items():
        print(f"  {name:14s} {path}")
    return {"taught": label, "events": len(events), "files": files, "score": score, "status": app.status_dict()}


def main(argv: list[str] | None = None) -> int:
    """``python -m demo [--out D] [--only sound|marimba] ...``; problems print as one line, exit non-zero."""
    ap = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(DEMO_CONFIG))
    ap.add_argument("--out", default="demo-output")
    ap.add_argument("--realtime", action="store_true", help="pace inputs in real time (slower)")
    ap.add_argument("--only", choices=PHASES, default=None)
    ap.add_argument("--marimba-seed", type=int, default=7, help="seed of the synthetic marimba video")
    args = ap.parse_args(argv)
    return run_cli("demo", lambda: run(args))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both phases (or ``--only`` one) into ``args.out``; prints the tables and returns the summary."""
    base = load_config(args.config)
    out = Path(args.out)
    prepare_out(out)
    t0 = time.monotonic()
    summary: dict[str, Any] = {}
    phases = [m for m in PHASES if args.only in (None, m)]
    for phase in phases:
        cfg = dataclasses.replace(
            base, app=dataclasses.replace(base.app, modes=(phase,)),
            mic=dataclasses.replace(base.mic, realtime=args.realtime),
            camera=dataclasses.replace(base.camera, realtime=args.realtime))
        model = cfg.marimba.model if phase == "marimba" else cfg.sound.model
        if not Path(model).is_file():
            print(f"demo: skipping the {phase} phase: {model} not found (run `make models`)")
            continue
        if phase == "teach":
            # Cards, not dreams: this phase shows the taught sound's card and the "teach me" card.
            cfg = dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, modes=("sound",)),
                                      display=dataclasses.replace(cfg.display, picture_mode="cards"))
            result = teach_phase(cfg, out / "teach")
            if result is not None:
                summary[phase] = result
            continue
        if phase == "sound" and cfg.display.picture_mode == "dream":
            why = dream_unusable(cfg)
            if why:
                print(f"demo: the sound phase shows cards: {why} (run `make train-generator`)")
                cfg = dataclasses.replace(cfg, display=dataclasses.replace(cfg.display, picture_mode="cards"))
        reference = None
        if phase == "marimba" and not cfg.camera.video:
            video, reference = render_marimba_input(out / "marimba-input", args.marimba_seed)
            cfg = dataclasses.replace(cfg, camera=dataclasses.replace(cfg.camera, video=str(video)))
        check_files(cfg)
        print(f"demo: {phase} phase ...", flush=True)
        events, files, app = run_phase(cfg, out / phase, phase)
        result: dict[str, Any] = {"events": len(events), "files": files, "status": app.status_dict()}
        if phase == "sound":
            from device.sound.pipeline import ClassDetected

            if cfg.display.picture_mode == "dream":
                result["dream frames"] = dream_frames(out / phase)
                print(f"  dream mode: {len(result['dream frames'])} generated-picture frames in {out / phase / 'dream'}")

            truth = load_truth(cfg.mic.playlist[0])
            score = score_detections(truth, [e for e in events if isinstance(e, ClassDetected)])
            result["score"] = score
            print_rows(score, "clip")
            print(f"  {score['hits']}/{score['clips']} clips detected within {SOUND_TOLERANCE_S:.2f} s of onset; "
                  f"{score['false_in_silence']} detections during silence")
        else:
            result["notes"] = sum(type(e).__name__ == "NoteOn" for e in events)
            print(f"  {result['notes']} notes played on the virtual synth")
            if reference is not None:
                from device.marimba.pipeline import events_to_notes
                from training.scoring import score_notes

                result["score"] = score_notes(reference, events_to_notes(events))
                sc = result["score"]
                print(f"  against the video's true strikes: precision {sc['precision']:.2f}  recall "
                      f"{sc['recall']:.2f}  F1 {sc['f1']:.2f} ({1000 * ONSET_TOLERANCE_S:.0f} ms onset tolerance, "
                      "pitch must match)")
        for name, path in files.items():
            print(f"  {name:14s} {path}")
        summary[phase] = result
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"demo: done in {time.monotonic() - t0:.1f} s; everything is in {out}/ (summary.json)")
    return summary
