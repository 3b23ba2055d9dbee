"""`make demo` / `python -m device demo`: the real pipelines on simulated hardware.

Sound phase: the bundled playlist (assets/demo/sounds.wav, with its known
onsets in sounds.json) is the microphone; LEDs are recorded, the display writes
PNG frames, the synth is the virtual synth on a pseudo-terminal (written to
through pyserial) rendering a WAV. Marimba phase (when the marimba model
exists): a synthetic marimba video is the camera and the notes go to the same
kind of virtual synth. Everything lands in one output folder, with a summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from device.config import PROJECT_ROOT, check_files, load_config
from device.errors import InputFileError

DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.toml"


def load_truth(wav_path: str | Path) -> list[dict[str, Any]]:
    """The playlist's ground truth: [{"label", "onset", "offset"}] from the JSON beside the WAV."""
    path = Path(wav_path).with_suffix(".json")
    try:
        return json.loads(path.read_text())["events"]
    except (OSError, ValueError, KeyError) as e:
        raise InputFileError(f"{path}: demo playlist truth missing or unreadable ({e})") from None


def score_detections(truth: Sequence[dict[str, Any]], detections: Sequence[Any], tolerance: float = 0.75) -> dict:
    """Match each true event to the first detection of its label within ``tolerance`` s of its onset.

    A detection is "during silence" when it starts outside every event
    (onset .. offset + 1 s of reverb/decision tail).
    """
    rows, hits = [], 0
    for ev in truth:
        match = next((d for d in detections if d.label == ev["label"]
                      and ev["onset"] <= d.t <= ev["onset"] + tolerance), None)
        first = next((d for d in detections if ev["onset"] <= d.t <= ev["offset"] + 1.0), None)
        hits += match is not None
        rows.append({"label": ev["label"], "onset": ev["onset"],
                     "detected": (match or first).label if (match or first) else None,
                     "latency_s": round(match.t - ev["onset"], 3) if match else None, "hit": match is not None})
    in_silence = [d for d in detections
                  if not any(ev["onset"] <= d.t <= ev["offset"] + 1.0 for ev in truth)]
    return {"clips": len(truth), "hits": hits, "hit_rate": hits / max(len(truth), 1),
            "false_in_silence": len(in_silence), "rows": rows}


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
    for name in ("synth.wav", "synth.log", "status.json"):
        if (out / name).exists():
            files[name] = str(out / name)
    return files


def render_marimba_input(folder: Path, seed: int, seconds: float = 12.0):
    """A synthetic marimba video (a seed never used in training) as the camera; returns (video, true strikes).

    The renderer is a workstation module: the demo is run from a checkout with the full venv.
    """
    from training.datasets.marimba_synth import SynthConfig, render, write

    if folder.exists():
        shutil.rmtree(folder)
    video = render(seed, SynthConfig(seconds=seconds))
    out = Path(write(video, folder))
    found = sorted(p for p in out.iterdir() if p.stem == "video")
    if not found:
        raise InputFileError(f"{out}: the renderer wrote no video file (is opencv installed?)")
    return found[0], video.events


def run_phase(cfg, out: Path, phase: str) -> tuple[list[Any], dict[str, str], Any]:
    """Run one App over sim backends to the end of its inputs; return (events, files, app)."""
    from device.runtime.builder import build_app

    if out.exists():
        shutil.rmtree(out)  # the demo's own scratch folder: each run starts clean
    out.mkdir(parents=True)
    cfg = dataclasses.replace(cfg, app=dataclasses.replace(cfg.app, status_file=str(out / "status.json")))
    events: list[Any] = []
    app, cleanup = build_app(cfg, sim=True, out_dir=out, on_event=events.append)
    try:
        app.run(seconds=None, stop_when_done=True)
    finally:
        cleanup()
    return events, _write_outputs(out, events, app.dev, phase), app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device demo", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(DEMO_CONFIG))
    ap.add_argument("--out", default="demo-output")
    ap.add_argument("--realtime", action="store_true", help="pace inputs in real time (slower)")
    ap.add_argument("--only", choices=("sound", "marimba"), default=None)
    ap.add_argument("--marimba-seed", type=int, default=7, help="seed of the synthetic marimba video")
    args = ap.parse_args(argv)
    base = load_config(args.config)
    out = Path(args.out)
    t0 = time.monotonic()
    summary: dict[str, Any] = {}
    phases = [m for m in ("sound", "marimba") if args.only in (None, m)]
    for phase in phases:
        cfg = dataclasses.replace(
            base, app=dataclasses.replace(base.app, modes=(phase,)),
            mic=dataclasses.replace(base.mic, realtime=args.realtime),
            camera=dataclasses.replace(base.camera, realtime=args.realtime))
        model = cfg.sound.model if phase == "sound" else cfg.marimba.model
        if not Path(model).is_file():
            print(f"demo: skipping the {phase} phase: {model} not found (run `make models`)")
            continue
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

            truth = load_truth(cfg.mic.playlist[0])
            score = score_detections(truth, [e for e in events if isinstance(e, ClassDetected)])
            result["score"] = score
            print(f"  {'clip':18s} {'onset':>6s}  {'detected':18s} latency")
            for r in score["rows"]:
                lat = f"{1000 * r['latency_s']:.0f} ms" if r["hit"] else "-"
                print(f"  {r['label']:18s} {r['onset']:6.2f}  {str(r['detected']):18s} {lat}")
            print(f"  {score['hits']}/{score['clips']} clips detected within 0.75 s of onset; "
                  f"{score['false_in_silence']} detections during silence")
        else:
            result["notes"] = sum(type(e).__name__ == "NoteOn" for e in events)
            print(f"  {result['notes']} notes played on the virtual synth")
            if reference is not None:
                from training.train_marimba import score

                from device.marimba.pipeline import events_to_notes

                result["score"] = score(reference, events_to_notes(events))
                sc = result["score"]
                print(f"  against the video's true strikes: precision {sc['precision']:.2f}  recall "
                      f"{sc['recall']:.2f}  F1 {sc['f1']:.2f} (50 ms onset tolerance, pitch must match)")
        for name, path in files.items():
            print(f"  {name:14s} {path}")
        summary[phase] = result
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"demo: done in {time.monotonic() - t0:.1f} s; everything is in {out}/ (summary.json)")
    return 0
