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


def training_windows(clips: Sequence, labels: Sequence[str], params: LogMelParams, rng: np.random.Generator,
                     crops_per_clip: int = 3, augment: Callable | None = None,
                     spec_augment: Callable | None = None, progress: bool = True,
                     min_event_s: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Random 1 s crops that overlap each clip's event, optionally augmented.

    Crops hold at least ``min_event_s`` of the event (the device's min_sound_s)
    at either edge of the window, so the model sees events entering and leaving
    the window exactly as it will live, including the first short sliver.
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
        for _ in range(crops_per_clip):
            lo = start_s - (params.window_seconds - min_event_s)
            hi = max(end_s - min_event_s, start_s)
            s = int(np.clip(rng.uniform(lo, hi), 0.0, hi_limit) * sr)
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
