"""Synthetic marimba videos with matching audio: the default training data.

``render(seed)`` draws one video: a top view of 18 wooden bars graded in length
by pitch (default the diatonic C4..F6), one or two mallets that move between
bars and strike them, seen by a camera with a random offset, scale, small
rotation, lighting and sensor noise, at 30 fps; and the audio of the strikes
at 48 kHz. ``write(video, folder)`` stores it in the dataset-folder layout the
recorder writes (``device.marimba.dataset``), so synthetic and real
recordings train with the same command. The ground-truth notes
(``notes.csv``) are for evaluation only; training targets come from the audio.

Pure numpy (OpenCV only when writing the video file), deterministic by seed,
and small: a 20 s video at 96x160 renders in about a second.

Picture
    Bars are vertical strips, lowest note on the left, length ~ 1/sqrt(f) like
    real bars, centred on one line, with wood grain, darker bevelled edges and
    two dark support cords through their nodal points. A mallet is a round
    head on a thin shaft reaching to the player at the bottom. Its height h
    (0 at the bar, 1 at the top of a loud stroke) is visible three ways: the
    head grows as it rises towards the camera, its image moves up (the camera
    looks slightly down the bars), and its shadow separates from it; at the
    strike the head sits on the bar and occludes it. A stroke's height grows
    with its velocity.

Sound
    Each strike excites the bar partials of ``device.marimba.tones`` (the
    virtual synth plays the same ones): 1x, 4x and 10x the fundamental,
    amplitudes 1, 0.05 (-26 dB), 0.02 (-34 dB), decay times tau, tau/4, tau/10
    with tau from 0.4 s (C4) to ~0.075 s (F6): higher partials are quieter and
    die faster. The 4x partial of C4..F4 falls exactly
    on C6..F6, which are bars too; at -26 dB at the onset and decaying four
    times faster, it stays >= 20 dB below the fundamental in every analysis
    window, so the note-amplitude targets don't hear a phantom C6 (tested in
    tests/test_marimba_targets.py). Strike amplitude = 0.2 * (velocity/127)^2.
    Re-striking a ringing bar adds in phase (one oscillator per bar partial).
    A faint mallet click and -66 dBFS room noise complete it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from device.frontend import DIATONIC_C4_F6, midi_to_hz
from device.marimba.tones import PARTIALS, bar_partials, decay_time  # noqa: F401 - one bar sound for sim and training

RENDERER_VERSION = 2  # bump when the picture or sound changes (cached renders are keyed by it)
STRIKE_AMPLITUDE = 0.2  # amplitude of a velocity-127 strike's fundamental
VELOCITY_EXPONENT = 2.0


def velocity_to_amplitude(velocity: float) -> float:
    return STRIKE_AMPLITUDE * (float(velocity) / 127.0) ** VELOCITY_EXPONENT


@dataclass(frozen=True)
class SynthConfig:
    """What a synthetic video looks like; the per-video random draws come from the seed."""

    seconds: float = 20.0
    fps: float = 30.0
    sample_rate: int = 48000
    height: int = 96
    width: int = 160
    notes: tuple[int, ...] = DIATONIC_C4_F6
    mallets: int = 2
    chord_probability: float = 0.2  # both mallets strike together
    min_interval: float = 0.16  # between successive strikes (either mallet)
    max_interval: float = 0.7
    same_note_gap: float = 0.3  # a bar is not struck again sooner than this
    velocity_range: tuple[int, int] = (50, 127)
    # camera: per-video random pose and picture
    max_offset: float = 0.015  # fraction of the frame width/height (~1/4 bar sideways)
    scale_range: tuple[float, float] = (0.97, 1.03)
    max_rotation_deg: float = 1.5
    gain_range: tuple[float, float] = (0.75, 1.25)
    noise_range: tuple[float, float] = (1.0, 4.0)  # sensor noise sd, grey levels

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(int(n) for n in self.notes))


@dataclass
class SynthVideo:
    """One rendered video: frames, audio, frame times and the ground truth."""

    frames: np.ndarray  # (N, H, W) uint8
    audio: np.ndarray  # (samples,) float32
    frame_times: np.ndarray  # (N,) seconds after audio sample 0
    events: list[tuple[float, int, int]]  # (onset_s, midi, velocity), sorted
    sample_rate: int
    fps: float
    notes: tuple[int, ...]
    seed: int
    camera: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class _Strike:
    t: float
    bar: int
    velocity: int
    y: float  # where along the bar (world units from the centre line)


# ------------------------------------------------------------------- score


def _score(rng: np.random.Generator, cfg: SynthConfig) -> list[list[_Strike]]:
    """Strikes per mallet. Mallet 0 stays left of mallet 1; chords use both."""
    n_bars = len(cfg.notes)
    n_m = max(1, min(2, cfg.mallets))
    pos = sorted(rng.choice(n_bars, size=n_m, replace=False).tolist())
    last_t = [-10.0] * n_m
    last_note_t = np.full(n_bars, -10.0)
    out: list[list[_Strike]] = [[] for _ in range(n_m)]
    t = 0.2 + rng.uniform(0, 0.3)
    t_end = cfg.seconds - 0.35  # every onset has a full analysis window after it
    lo_v, hi_v = cfg.velocity_range

    def ok(bar: int) -> bool:
        return t - last_note_t[bar] >= cfg.same_note_gap

    while t < t_end:
        chord = n_m == 2 and rng.random() < cfg.chord_probability and min(t - x for x in last_t) >= 0.2
        if chord:
            a = int(rng.integers(0, n_bars - 2))
            b = int(min(n_bars - 1, a + rng.integers(2, 8)))
            if ok(a) and ok(b):
                for m, bar in ((0, a), (1, b)):
                    out[m].append(_Strike(t, bar, int(rng.integers(lo_v, hi_v + 1)), 0.0))
                    pos[m], last_t[m], last_note_t[bar] = bar, t, t
        else:
            m = int(rng.integers(0, n_m))
            if t - last_t[m] < 0.2 and n_m == 2:
                m = 1 - m
            if t - last_t[m] >= 0.15:
                step = int(rng.integers(1, 6)) * (1 if rng.random() < 0.5 else -1)
                bar = int(np.clip(pos[m] + step, 0, n_bars - 1))
                if n_m == 2:  # keep the left mallet left of the right one
                    bar = min(bar, pos[1] - 1) if m == 0 else max(bar, pos[0] + 1)
                    bar = int(np.clip(bar, 0, n_bars - 1))
                if ok(bar) and not (n_m == 2 and bar == pos[1 - m]):
                    out[m].append(_Strike(t, bar, int(rng.integers(lo_v, hi_v + 1)), 0.0))
                    pos[m], last_t[m], last_note_t[bar] = bar, t, t
        t += rng.uniform(cfg.min_interval, cfg.max_interval)
    for strikes in out:
        for s in strikes:
            s.y = float(rng.uniform(-0.12, 0.12))
    return out


# ------------------------------------------------------------------- audio


def render_audio(events: Sequence[tuple[float, int, int]], seconds: float, sample_rate: int = 48000,
                 seed: int = 0, noise_dbfs: float = -66.0) -> np.ndarray:
    """Marimba audio of (onset_s, midi, velocity) strikes, float32 mono."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float64)
    phases: dict[tuple[int, int], float] = {}
    attack = int(0.002 * sample_rate)
    for onset, midi, velocity in events:
        f0 = float(midi_to_hz(midi))
        partials = bar_partials(f0, sample_rate)
        tau = decay_time(f0)
        s0 = int(round(onset * sample_rate))
        if s0 >= n:
            continue
        length = min(n - s0, int(6 * tau * sample_rate))
        t_rel = np.arange(length) / sample_rate
        t_abs = (s0 + np.arange(length)) / sample_rate
        amp = velocity_to_amplitude(velocity)
        env_attack = np.minimum(1.0, np.arange(1, length + 1) / attack)
        tone = np.zeros(length)
        for k, (f, weight, tau_k) in enumerate(partials):
            phase = phases.setdefault((midi, k), float(rng.uniform(0, 2 * np.pi)))  # one oscillator per bar
            tone += weight * np.exp(-t_rel / tau_k) * np.sin(2 * np.pi * f * t_abs + phase)
        # The mallet's click: a 4 ms noise burst 34 dB under the tone.
        click_n = min(length, int(0.004 * sample_rate))
        tone[:click_n] += 0.02 * rng.standard_normal(click_n) * np.exp(-np.arange(click_n) / (0.001 * sample_rate))
        fade = np.ones(length)
        tail = min(length, int(0.01 * sample_rate))
        fade[length - tail:] = np.linspace(1.0, 0.0, tail)
        out[s0 : s0 + length] += amp * tone * env_attack * fade
    out += 10 ** (noise_dbfs / 20) * rng.standard_normal(n)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------ picture


def bar_lengths(notes: Sequence[int]) -> np.ndarray:
    """World length of each bar: 0.5 for C4, ~1/sqrt(f)."""
    f = midi_to_hz(np.asarray(notes, dtype=np.float64))
    return 0.5 * np.sqrt(midi_to_hz(60) / f)


class _Scene:
    """Per-video constants: camera mapping, static background, mallet looks."""

    def __init__(self, rng: np.random.Generator, cfg: SynthConfig):
        H, W = cfg.height, cfg.width
        self.cfg = cfg
        n = len(cfg.notes)
        self.pitch = 1.0 / n
        self.bar_w = 0.78 * self.pitch
        self.lengths = bar_lengths(cfg.notes)
        # Camera: world (x in 0..1 across the bars, y down the bars from the centre line) -> pixels.
        scale = rng.uniform(*cfg.scale_range)
        rot = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
        dx = rng.uniform(-cfg.max_offset, cfg.max_offset) * W
        dy = rng.uniform(-cfg.max_offset, cfg.max_offset) * H
        self.k = 0.92 * W * scale  # pixels per world unit
        self.camera = {"scale": float(scale), "rotation_deg": float(np.rad2deg(rot)), "offset_px": [float(dx), float(dy)]}
        rows, cols = np.mgrid[0:H, 0:W].astype(np.float64)
        cx, cy = (W - 1) / 2 + dx, (H - 1) / 2 + dy
        c, s = np.cos(rot), np.sin(rot)
        u, v = cols - cx, rows - cy
        self.X = (c * u + s * v) / self.k + 0.5  # world coordinates of every pixel
        self.Y = (-s * u + c * v) / self.k
        self.px = 1.0 / self.k  # one pixel in world units (anti-aliasing width)
        # Lighting: gain, a gradient and vignetting, a little black level.
        gain = rng.uniform(*cfg.gain_range)
        gx, gy = rng.uniform(-0.2, 0.2, size=2)
        rr = ((cols / W - 0.5) ** 2 + (rows / H - 0.5) ** 2)
        self.light = gain * (1 + gx * (cols / W - 0.5) + gy * (rows / H - 0.5)) * (1 - rng.uniform(0.1, 0.4) * rr)
        self.black = rng.uniform(2, 12)
        self.noise = rng.uniform(*cfg.noise_range)
        self.flicker = rng.uniform(0.0, 0.02)
        self.camera.update({"gain": float(gain), "noise_sd": float(self.noise)})
        self.background = self._background(rng)
        # Mallets: dark yarn or light rubber heads.
        self.head_luma = float(rng.uniform(0.05, 0.25) if rng.random() < 0.6 else rng.uniform(0.8, 0.95))
        self.shaft_luma = float(rng.uniform(0.55, 0.85))
        self.head_r = self.pitch * rng.uniform(0.36, 0.44)
        self.shadow_dir = np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.4, 1.0)])
        self.camera.update({"head_luma": self.head_luma})

    def _soft(self, dist_inside: np.ndarray) -> np.ndarray:
        """Coverage 0..1 from a signed distance (positive inside), one pixel of anti-aliasing."""
        return np.clip(0.5 + dist_inside / self.px, 0.0, 1.0)

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        X, Y = self.X, self.Y
        H, W = X.shape
        table = rng.uniform(0.08, 0.22)
        img = table * (1 + 0.15 * rng.standard_normal((H, W)) * 0.3)
        # Support cords through the nodal points (0.224 L from each end).
        xb = np.clip(X / self.pitch - 0.5, 0, len(self.lengths) - 1)
        L = np.interp(xb, np.arange(len(self.lengths)), self.lengths)
        inside_x = (X > -0.01) & (X < 1.01)
        for sign in (-1, 1):
            d = np.abs(Y - sign * (0.5 - 0.224) * L)
            img = np.where(inside_x, img * (1 - 0.6 * self._soft(0.004 - d)), img)
        # Bars.
        wood = rng.uniform(0.45, 0.72)
        j = np.clip(np.floor(X / self.pitch).astype(int), 0, len(self.lengths) - 1)
        xl = X - (j + 0.5) * self.pitch
        Lj = self.lengths[j]
        dist = np.minimum(self.bar_w / 2 - np.abs(xl), Lj / 2 - np.abs(Y))
        cover = self._soft(dist) * ((X >= 0) & (X <= 1))
        per_bar = wood * (1 + 0.06 * rng.standard_normal(len(self.lengths)))[j]
        grain_f = rng.uniform(60, 120)
        grain = 0.07 * np.sin(2 * np.pi * grain_f * xl + 3 * np.sin(7 * Y + j)) + 0.03 * rng.standard_normal((H, W))
        bevel = 0.8 + 0.2 * np.clip(dist / (2.0 * self.px), 0, 1)
        bar = per_bar * (1 + grain) * bevel
        return (1 - cover) * img + cover * bar

    def draw(self, base: np.ndarray, mallets: list[tuple[float, float, float, float]], rng: np.random.Generator
             ) -> np.ndarray:
        """Frame from the background and mallets [(x, y, h, hand_dx)], with light and noise, uint8."""
        img = base.copy()
        X, Y = self.X, self.Y
        for x, y, h, hand_dx in mallets:
            # Shadow on the bars, leaving the head as it rises.
            sx, sy = x + self.shadow_dir[0] * 0.12 * h, y + self.shadow_dir[1] * 0.12 * h
            rs = self.head_r * (1 + 0.3 * h)
            d = np.hypot(X - sx, Y - sy)
            img *= 1 - (0.5 - 0.25 * h) * np.clip(0.5 + (rs - d) / (2 * self.px), 0, 1)
        for x, y, h, hand_dx in mallets:
            r = self.head_r * (1 + 0.5 * h)  # nearer the camera when raised
            hy = y - 0.1 * h  # oblique view: a raised head appears further up
            # Shaft: from the head to the player's hand below the picture.
            hx2, hy2 = x + hand_dx, 0.9
            vx, vy = hx2 - x, hy2 - hy
            tt = np.clip(((X - x) * vx + (Y - hy) * vy) / (vx * vx + vy * vy), 0, 1)
            ds = np.hypot(X - (x + tt * vx), Y - (hy + tt * vy))
            shaft = self._soft(0.004 * (1 + 0.3 * h) - ds)
            img = img * (1 - shaft) + self.shaft_luma * shaft
            head = self._soft(r - np.hypot(X - x, Y - hy))
            shade = self.head_luma * (1 - 0.25 * np.clip(np.hypot(X - x + 0.3 * r, Y - hy + 0.3 * r) / r, 0, 1))
            img = img * (1 - head) + shade * head
        light = self.light * (1 + self.flicker * rng.standard_normal())
        out = 255 * img * light + self.black + self.noise * rng.standard_normal(img.shape)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def true_corners(camera: dict[str, Any], config: SynthConfig = SynthConfig()) -> np.ndarray:
    """(4, 2) pixel corners (TL, TR, BR, BL, lowest note left) of the bar-row box of a render.

    The bar-row box is world X 0..1 (the 18 bar slots) by Y -0.25..0.25 (the
    longest bar); ``camera`` is ``SynthVideo.camera``. Pixels are continuous
    coordinates (pixel (i, j) covers x j..j+1, y i..i+1), as in
    ``device.marimba.rectify.Calibration.from_pixels``.
    """
    H, W = config.height, config.width
    k = 0.92 * W * float(camera["scale"])
    rot = np.deg2rad(float(camera["rotation_deg"]))
    dx, dy = (float(v) for v in camera["offset_px"])
    c, s = np.cos(rot), np.sin(rot)
    X = np.array([0.0, 1.0, 1.0, 0.0]) - 0.5
    Y = np.array([-0.25, -0.25, 0.25, 0.25])
    # _Scene inverts this: X = (c u + s v) / k + 0.5, Y = (-s u + c v) / k at pixel centre (col, row)
    u, v = k * (c * X - s * Y), k * (s * X + c * Y)
    return np.stack([(W - 1) / 2 + dx + u + 0.5, (H - 1) / 2 + dy + v + 0.5], axis=1)


def _mallet_state(strikes: list[_Strike], t: float, x_of_bar, rest: tuple[float, float]) -> tuple[float, float, float]:
    """(x, y, h) of one mallet at time t from its strike list (h = 0 at each strike)."""
    if not strikes:
        return rest[0], rest[1], 0.8
    times = [s.t for s in strikes]
    i = int(np.searchsorted(times, t))  # strikes[i-1].t <= t < strikes[i].t
    prev = strikes[i - 1] if i > 0 else None
    nxt = strikes[i] if i < len(strikes) else None
    if prev is None:
        a_t, a_x, a_y = nxt.t - 5.0, x_of_bar(nxt.bar), nxt.y
    else:
        a_t, a_x, a_y = prev.t, x_of_bar(prev.bar), prev.y
    if nxt is None:
        b_t, b_x, b_y, vel = a_t + 5.0, a_x, a_y, 80
    else:
        b_t, b_x, b_y, vel = nxt.t, x_of_bar(nxt.bar), nxt.y, nxt.velocity
    gap = b_t - a_t
    u = np.clip((t - a_t) / gap, 0.0, 1.0)
    move = np.clip((u - 0.1) / 0.8, 0, 1)
    move = move * move * (3 - 2 * move)  # smoothstep: still over the bar at each strike
    x = a_x + (b_x - a_x) * move
    y = a_y + (b_y - a_y) * move
    lift = min(0.12, gap / 2)  # seconds to rise from / fall to a bar
    top = 0.35 + 0.65 * (vel / 127.0)  # louder strokes start higher
    dist = min(t - a_t if prev is not None else np.inf, b_t - t if nxt is not None else np.inf)
    h = top * min(1.0, dist / lift) ** 0.7
    return float(x), float(y), float(h)


def _draw(seed: int, cfg: SynthConfig):
    """The per-video random draws, in a fixed order: scene, score, audio."""
    rng = np.random.default_rng(seed)
    scene = _Scene(rng, cfg)
    score = _score(rng, cfg)
    events = sorted((s.t, cfg.notes[s.bar], s.velocity) for strikes in score for s in strikes)
    audio = render_audio(events, cfg.seconds, cfg.sample_rate, seed=int(rng.integers(1 << 31)))
    return rng, scene, score, events, audio


def render_sound(seed: int, config: SynthConfig = SynthConfig()) -> tuple[np.ndarray, list[tuple[float, int, int]]]:
    """Just the audio and ground truth of ``render(seed, config)`` (no frames drawn)."""
    _, _, _, events, audio = _draw(seed, config)
    return audio, events


def render(seed: int, config: SynthConfig = SynthConfig()) -> SynthVideo:
    """One synthetic video (frames + audio + ground truth), deterministic by seed."""
    cfg = config
    rng, scene, score, events, audio = _draw(seed, cfg)
    n_frames = int(round(cfg.seconds * cfg.fps))
    times = np.arange(n_frames) / cfg.fps
    x_of_bar = lambda b: (b + 0.5) * scene.pitch  # noqa: E731
    rests = [(0.25, 0.05), (0.75, 0.05)]
    hands = [-0.06, 0.06] if len(score) == 2 else [0.0]
    frames = np.empty((n_frames, cfg.height, cfg.width), np.uint8)
    for i, t in enumerate(times):
        mallets = []
        for m, strikes in enumerate(score):
            x, y, h = _mallet_state(strikes, t, x_of_bar, rests[m])
            mallets.append((x, y, h, hands[m]))
        frames[i] = scene.draw(scene.background, mallets, rng)
    return SynthVideo(frames=frames, audio=audio, frame_times=times, events=events, sample_rate=cfg.sample_rate,
                      fps=cfg.fps, notes=cfg.notes, seed=seed, camera=scene.camera)


def render_notes(events: Sequence[tuple[float, int, int]], seconds: float, sample_rate: int = 48000,
                 seed: int = 0) -> np.ndarray:
    """Audio only (for target tests): same sound model as ``render``."""
    return render_audio(sorted(events), seconds, sample_rate, seed=seed)


def write(video: SynthVideo, folder: str | Path, config: SynthConfig | None = None) -> Path:
    """Store a rendered video in the dataset-folder layout of ``device.marimba.dataset``."""
    from device.marimba.dataset import write_dataset

    extra = {"synthetic": {"seed": video.seed, "renderer_version": RENDERER_VERSION, "camera": video.camera,
                           "config": _jsonable(asdict(config)) if config is not None else None}}
    return write_dataset(folder, video.frames, video.frame_times, video.audio, video.sample_rate, video.fps,
                         ground_truth=video.events, notes=video.notes, source="synthetic", extra=extra)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def render_dataset(folder: str | Path, seeds: Sequence[int], config: SynthConfig = SynthConfig(),
                   progress: bool = False) -> list[Path]:
    """Render several videos into ``folder/<seed>`` dataset folders (skipping ones already there)."""
    folder = Path(folder)
    out = []
    it = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=f"render {folder.name}", unit="video", leave=False)
    for seed in it:
        sub = folder / f"seed-{seed:05d}"
        if not (sub / "manifest.json").is_file():
            if sub.exists():
                import shutil

                shutil.rmtree(sub)  # a partial render from an interrupted run
            write(render(seed, config), sub, config)
        out.append(sub)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m training.datasets.marimba_synth --out DIR [--seeds 1 2 3] [--seconds 20]`."""
    import argparse

    p = argparse.ArgumentParser(prog="marimba-synth", description="Render synthetic marimba dataset folders.")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args(argv)
    for path in render_dataset(args.out, args.seeds, SynthConfig(seconds=args.seconds), progress=True):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
