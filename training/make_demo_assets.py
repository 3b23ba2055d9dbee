"""Generate the demo's bundled inputs: assets/demo/sounds.wav + sounds.json (known onsets).

    python -m training.make_demo_assets [--seed 2026] [--out assets/demo]

The seed differs from every training seed, so the demo hears clips the model never saw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from device.wavfile import write_wav
from training.datasets import URBANSOUND_CLASSES
from training.datasets.synthetic_sound import synthetic_playlist


def make_sound_playlist(out: Path, seed: int = 2026, labels=URBANSOUND_CLASSES, gap_seconds: float = 1.0,
                        event_seconds: float = 1.6) -> Path:
    audio, events = synthetic_playlist(list(labels), seed, gap_seconds=gap_seconds, event_seconds=event_seconds)
    out.mkdir(parents=True, exist_ok=True)
    wav = write_wav(out / "sounds.wav", audio, 16000)
    truth = {"seed": seed, "sample_rate": 16000, "events": [
        {"label": label, "onset": onset, "offset": offset} for label, onset, offset in events]}
    (out / "sounds.json").write_text(json.dumps(truth, indent=1) + "\n")
    return wav


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default="assets/demo")
    args = ap.parse_args(argv)
    print(make_sound_playlist(Path(args.out), args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
