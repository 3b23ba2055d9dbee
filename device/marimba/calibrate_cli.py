"""`python -m device calibrate-marimba RECORDING_DIR`: where the bars are, saved for `run` and training.

Automatic: the recording's audio says which bar sounded when (the marimba
pipeline's audio labeller), its video where the mallets landed then
(``device.marimba.calibrate``). Manual: ``--corners`` gives the bar row's four
corners in pixels of the recording's frames (top-left, top-right,
bottom-right, bottom-left, lowest note on the left). The calibration is
written beside the recording (``calibration.json``) unless ``--out`` says
otherwise; name it in the config (``[marimba] calibration``) or give it to
training / transcribe. ``--show`` draws the detected bars on the scene and the
rectified view the model will see into a PNG.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from device.errors import SaySeeError
from device.marimba.calibrate import CALIBRATION_FILE as DEFAULT_NAME
from device.marimba.rectify import Calibration
from device.marimba.video import FrameFile

PICTURE_NAME = "calibration.png"


def parse_corners(text: str) -> list[tuple[float, float]]:
    """'x1,y1,...,x4,y4' (pixels) -> 4 points, or one line saying what is wrong."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise SaySeeError(f"--corners {text!r}: expected 8 numbers x1,y1,x2,y2,x3,y3,x4,y4 (pixels)") from None
    if len(values) != 8 or not all(math.isfinite(v) for v in values):
        raise SaySeeError(f"--corners {text!r}: expected 8 finite numbers x1,y1,...,x4,y4 (pixels: top-left, "
                          f"top-right, bottom-right, bottom-left of the bar row, lowest note on the left), "
                          f"got {len(values)}")
    return [(values[i], values[i + 1]) for i in range(0, 8, 2)]


def recording_onsets(audio: np.ndarray, frame_times: np.ndarray, notes: Sequence[int]) -> list[tuple[float, int]]:
    """(time, bar index) of every note the audio labeller hears (the same labeller training uses)."""
    from device.marimba.labeller import heard_events
    from device.marimba.pipeline import MarimbaSpec, NoteOn

    spec = MarimbaSpec(notes=tuple(notes))
    events = heard_events(audio, spec)
    index = {n: i for i, n in enumerate(spec.notes)}
    return [(e.t, index[e.note]) for e in events if isinstance(e, NoteOn) and e.note in index]


def load_marimba_model(path: str | Path) -> Any:
    """The int8 marimba model (``device.model.Model``) that refines the calibration; one line if unusable."""
    from device.frontend import NoteParams
    from device.model import Model

    return Model(path, expected_frontend=NoteParams())


PICTURE_FRAMES = 60  # frames the scene picture is the median of (a moving mallet leaves no trace in it)


def _median_picture(video: FrameFile) -> np.ndarray:
    """The median of about PICTURE_FRAMES frames spread over the video, streamed: memory holds those frames
    only, whatever the video's length (its frame count may be unknown until the end)."""
    step = max(1, (video.declared_frames or 0) // PICTURE_FRAMES)
    kept: list[np.ndarray] = []
    for i, frame in enumerate(video):
        if i % step == 0:
            kept.append(frame)
            if len(kept) >= 2 * PICTURE_FRAMES:  # longer than declared: thin out, keep the spread
                kept, step = kept[::2], step * 2
    video.check_complete()
    return np.median(np.stack(kept), axis=0).astype(np.uint8)


def calibrate_recording(folder: str | Path, corners: Sequence[tuple[float, float]] | None = None,
                        model: Any = None) -> tuple[Calibration, Any, np.ndarray | None]:
    """(calibration, Detection or None, a picture of the scene or None) for one recording folder.

    With ``model`` (a loaded marimba model, or its path) the heat-map estimate is refined by the model
    (``device.marimba.calibrate_refine``); the Detection then carries the ``Refinement`` as ``refinement``.
    """
    from device.frontend import DIATONIC_C4_F6, NoteParams
    from device.marimba.recording import read_manifest, read_recording, video_path

    folder = Path(folder)
    if corners is not None:
        video = FrameFile(video_path(folder, read_manifest(folder)))
        h, w = video.frame_size
        try:
            cal = Calibration.from_pixels(corners, (h, w), source="manual")
        except ValueError as e:
            raise SaySeeError(f"--corners: {e} (frame {w}x{h})") from None
        return cal, None, _median_picture(video)
    from device.marimba.calibrate_refine import calibrate_with_model

    frames, times, audio, _, _, m = read_recording(folder, sample_rate=NoteParams().sample_rate)
    notes = tuple(int(n) for n in m.get("notes") or DIATONIC_C4_F6)
    onsets = recording_onsets(audio, times, notes)
    if not onsets:
        raise SaySeeError(f"{folder}: no notes heard in {m.get('audio', 'audio.wav')}; play each bar a few times "
                          "or use --corners")
    spec = None
    if isinstance(model, (str, Path)):
        model = load_marimba_model(model)  # after the recording is read: a bad folder is reported first
    if model is not None:
        from device.marimba.pipeline import MarimbaSpec

        spec = MarimbaSpec.from_metadata(model.metadata)
        if tuple(spec.notes) != notes:
            raise SaySeeError(f"{folder}: the recording's {len(notes)} notes differ from the model's "
                              f"{len(spec.notes)}; use --no-model")
    cal, det, ref = calibrate_with_model(frames, times, onsets, model=model, spec=spec, notes=notes,
                                         what=str(folder))
    scene = det.background if det is not None else np.median(frames[:: max(1, len(frames) // 60)], axis=0)
    if scene.ndim == 3:
        scene = scene.mean(axis=2)
    return cal, _Found(det, ref), scene.astype(np.uint8)


class _Found:
    """What the automatic search found: the heat-map ``Detection`` (or None) and the model's ``Refinement``."""

    def __init__(self, det: Any, ref: Any):
        self.det, self.refinement = det, ref
        self.bar_points = det.bar_points if det is not None else {}

    def describe(self) -> str:
        d, r = self.det, self.refinement
        out = (f"from {d.strikes} strikes, {len(d.bar_points)} bars seen, residual {d.residual_px:.2f} px"
               if d is not None else "heat map refused; from whole-frame guesses")
        if r is not None:
            moved = "kept" if r.initial_score is not None and r.score == r.initial_score else "refined"
            out += (f"; model {moved} it: mean log P(struck bar) {r.score:.2f}"
                    f"{'' if r.initial_score is None else f' (heat map {r.initial_score:.2f})'}, {r.seconds:.1f} s")
        return out


def draw(scene: np.ndarray, cal: Calibration, n_bars: int, path: str | Path,
         bar_points: dict[int, tuple[float, float]] | None = None) -> Path:
    """PNG: the scene with the bar-row box and each bar's slot drawn, the rectified view beneath."""
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from device.marimba.pipeline import MarimbaSpec, preprocess_frame
    from device.atomic import write_atomic

    h, w = scene.shape
    k = max(1, round(640 / w))  # draw big enough to see on a screen
    spec = MarimbaSpec()
    view = preprocess_frame(scene, spec, cal)
    kv = (w * k) / view.shape[1]
    vh = round(view.shape[0] * kv)
    surf = pygame.Surface((w * k, h * k + vh + 8))
    surf.fill((0, 0, 0))
    rgb = np.repeat(np.kron(scene, np.ones((k, k), np.uint8))[..., None], 3, axis=2)
    surf.blit(pygame.surfarray.make_surface(rgb.transpose(1, 0, 2)), (0, 0))
    quads = cal.bar_quads(n_bars, (h, w)) * k
    for j, q in enumerate(quads):
        colour = (255, 200, 0) if j % 2 == 0 else (0, 200, 255)
        pygame.draw.polygon(surf, colour, [tuple(p) for p in q], 1)
    box = cal.corners_px((h, w)) * k
    pygame.draw.polygon(surf, (255, 60, 60), [tuple(p) for p in box], 2)
    for _, (x, y) in (bar_points or {}).items():
        pygame.draw.circle(surf, (60, 255, 60), (round(x * k), round(y * k)), max(2, k))
    big = np.kron(view, np.ones((1, 1), np.uint8))
    vs = pygame.transform.scale(pygame.surfarray.make_surface(np.repeat(big.T[..., None], 3, axis=2)), (w * k, vh))
    surf.blit(vs, (0, h * k + 8))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    pygame.image.save(surf, str(tmp))  # pygame writes by name; the rename makes it atomic
    write_atomic(path, tmp.read_bytes())
    tmp.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device calibrate-marimba",
                                description="Find the marimba's bars in a recording (or take corners by hand) and "
                                            "save the calibration.")
    p.add_argument("recording", help="a recording folder (python -m device record-marimba)")
    p.add_argument("--out", default=None, help=f"calibration file to write (default RECORDING/{DEFAULT_NAME})")
    p.add_argument("--corners", default=None, metavar="x1,y1,x2,y2,x3,y3,x4,y4",
                   help="the bar row's corners in pixels of the recording's frames: top-left, top-right, "
                        "bottom-right, bottom-left, lowest note on the left (skips the automatic search)")
    p.add_argument("--show", nargs="?", const="", default=None, metavar="PNG",
                   help=f"draw the detected bars and the rectified view into a PNG (default RECORDING/{PICTURE_NAME})")
    p.add_argument("--model", default=None, metavar="TFLITE",
                   help="marimba model that refines the automatic calibration (default: the config's [marimba] model)")
    p.add_argument("--no-model", action="store_true", help="the heat-map estimate only (no model refinement)")
    p.add_argument("--config", default=None, help="config TOML (for the default model)")
    args = p.parse_args(argv)
    corners = parse_corners(args.corners) if args.corners is not None else None  # bad input before any reading
    folder = Path(args.recording)
    model = None
    if corners is None and not args.no_model:
        path = args.model
        if path is None:
            from device.sound.teach import load_config

            path = load_config(args.config).marimba.model
        model = path
    cal, det, scene = calibrate_recording(folder, corners, model=model)
    out = Path(args.out) if args.out else folder / DEFAULT_NAME
    cal.save(out)
    h, w = cal.frame_size
    pts = " ".join(f"({x:.1f},{y:.1f})" for x, y in cal.corners_px())
    how = "by hand" if det is None else det.describe()
    print(f"{out}: bar row at {pts} in {w}x{h} frames (TL TR BR BL), {how}")
    if args.show is not None:
        from device.frontend import DIATONIC_C4_F6
        from device.marimba.recording import read_manifest

        n_bars = len(read_manifest(folder).get("notes") or DIATONIC_C4_F6)
        png = draw(scene, cal, n_bars, args.show or folder / PICTURE_NAME, det.bar_points if det else None)
        print(f"{png}: the bars found and the view the model sees")
    return 0
