"""From dataset clips to model inputs: training crops around each event, evaluation windows."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from device.frontend import LogMelParams, dbfs, sliding_windows, window_features


def event_span(clip, params: LogMelParams) -> tuple[float, float]:
    """Seconds of a clip that hold its sound: the known onset/offset, else all of it."""
    length = len(clip.audio) / params.sample_rate
    start = float(getattr(clip, "onset", 0.0) or 0.0)
    end = getattr(clip, "offset", None)
    end = length if end is None else float(min(end, length))
    return start, max(end, start + 1e-3)


ONSET_SLIVER_S = (0.04, 0.3)  # onset crops: the window ends this long after the event's onset


def training_windows(clips: Sequence, labels: Sequence[str], params: LogMelParams, rng: np.random.Generator,
                     crops_per_clip: int = 3, augment: Callable | None = None,
                     spec_augment: Callable | None = None, progress: bool = True,
                     min_event_s: float = 0.05, onset_crops_per_clip: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random 1 s crops that overlap each clip's event, optionally augmented.

    Crops hold at least ``min_event_s`` of the event at either edge of the
    window, so the model sees events entering and leaving the window exactly as
    it will live, including the first short sliver. ``onset_crops_per_clip``
    more crops end ONSET_SLIVER_S after the onset: the windows the box's onset
    design decides on (``[sound] decision = "onset"``, early_min_sound_s).
    """
    index = {name: i for i, name in enumerate(labels)}
    n, sr = params.samples_per_window, params.sample_rate
    xs, ys = [], []
    it = clips
    if progress:
        from tqdm import tqdm

        it = tqdm(clips, desc="features", unit="clip", leave=False)
    for clip in it:
        start_s, end_s = event_span(clip, params)
        hi_limit = max(len(clip.audio) - n, 0) / sr
        starts = [rng.uniform(start_s - (params.window_seconds - min_event_s), max(end_s - min_event_s, start_s))
                  for _ in range(crops_per_clip)]
        starts += [start_s + rng.uniform(*ONSET_SLIVER_S) - params.window_seconds for _ in range(onset_crops_per_clip)]
        for start in starts:
            s = int(np.clip(start, 0.0, hi_limit) * sr)
            x = clip.audio[s : s + n]
            if augment is not None:
                x = augment(x, rng)
            feats = window_features(x, params)
            if spec_augment is not None and rng.random() < 0.5:
                feats = spec_augment(feats[..., 0], rng)[..., None]
            xs.append(feats)
            ys.append(index[clip.label])
    return np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)


def clip_windows(clip, params: LogMelParams) -> np.ndarray:
    """Hop-spaced windows of a clip that overlap its event and pass the silence gate."""
    start_s, end_s = event_span(clip, params)
    sr, n = params.sample_rate, params.samples_per_window
    wins = sliding_windows(clip.audio, params)
    overlapping = [(t, f) for t, f in wins if t < end_s and t + params.window_seconds > start_s] or wins[:1]
    loud = [f for t, f in overlapping if dbfs(clip.audio[int(t * sr) : int(t * sr) + n]) >= params.silence_dbfs]
    chosen = loud or [f for _, f in overlapping]
    return np.stack(chosen).astype(np.float32)


def predict_clips(predict_batch: Callable[[np.ndarray], np.ndarray], clips: Sequence,
                  params: LogMelParams) -> np.ndarray:
    """Clip-level probabilities: the mean over the clip's event windows."""
    return np.stack([predict_batch(clip_windows(c, params)).mean(axis=0) for c in clips])


# ------------------------------------------------------------------ the wide world: families and words

def place_event(dry: np.ndarray, rng: np.random.Generator, params: LogMelParams, snr_db=(5.0, 20.0),
                level_dbfs=(-32.0, -14.0), room: bool = True, max_delay_s: float = 0.25) -> np.ndarray:
    """One 1 s window holding ``dry`` (delayed up to ``max_delay_s``) in a room: reverb, mic, noise at ``snr_db``.

    ``snr_db=None`` leaves out the noise (the "clean" condition of the evaluation).
    """
    from training.augment import fit_length, room_realism

    n, sr = params.samples_per_window, params.sample_rate
    x = np.zeros(n, dtype=np.float32)
    d = int(rng.uniform(0, max_delay_s) * sr)
    x[d:] = fit_length(dry, n - d)
    if room:
        x = room_realism(x, rng, sr, snr_db=snr_db if snr_db is not None else 99.0,
                         p_noise=0.0 if snr_db is None else 1.0)
    elif snr_db is not None:
        from training.augment import mix_noise

        x = mix_noise(x, rng, snr_db)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    x *= np.float32(10 ** (rng.uniform(*level_dbfs) / 20) / max(rms, 1e-9))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def source_windows(sources: dict, takes: int, params: LogMelParams, rng: np.random.Generator,
                   first_take: int = 0, progress: bool = True, desc: str = "world", **place) -> tuple[np.ndarray, list]:
    """Log-mel windows of ``takes`` takes of every source: (features (N, *input_shape), group names).

    ``sources`` maps a group name to ``take(i, rng) -> dry float32 audio`` (a
    family's instance i, a word in a random voice ...); ``place`` goes to
    :func:`place_event`.
    """
    jobs = [(name, i) for name in sources for i in range(first_take, first_take + takes)]
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc=desc, unit="win", leave=False)
    xs, names = [], []
    for name, i in it:
        dry = sources[name](i, rng)
        xs.append(window_features(place_event(dry, rng, params, **place), params))
        names.append(name)
    return np.asarray(xs, dtype=np.float32).reshape((-1,) + params.input_shape), names


def family_sources(families, params: LogMelParams) -> dict:
    """{"family:<k>": take} for procedural families (training.datasets.sound_world)."""
    from training.datasets.sound_world import family_sound

    return {f"family:{k}": (lambda i, rng, k=k: family_sound(k, i, params.sample_rate)) for k in families}


def word_sources(words, voices, params: LogMelParams) -> dict:
    """{"word:<w>": take} for espeak-ng words, each take a random voice / pitch / speed from ``voices``."""
    from training.datasets.speech import word_take

    return {f"word:{w}": (lambda i, rng, w=w: word_take(w, voices, rng, params.sample_rate)) for w in words}
