"""Raspberry Pi estimates: MACs x an assumed per-core int8 rate. Estimates, not measurements.

Method (kept deliberately simple, and reported with every number):

    estimated ms = MACs / (sustained int8 MAC/s of one Pi core) * 1000

Pi 4 rate. Published anchor: TFLite's mobilenet_v1_1.0_224_quant (569 M
Mult-Adds per Howard et al. 2017, "MobileNets", arXiv:1704.04861) runs at 38.5 frames/s on a
Pi 4 at 1950 MHz, 64-bit OS, 4 interpreter threads (Q-engineering,
github.com/Qengineering/TensorFlow_Lite_Classification_RPi_64-bits). That is
569e6 * 38.5 / 4 = 5.5 GMAC/s per core at 1.95 GHz (assuming perfect 4-thread
scaling, which makes the per-core rate a lower bound), i.e. 4.2 GMAC/s at
the stock 1.5 GHz.

Pi 5 rate. Published anchor: one TFLite MobileNet v2 (SSD, 300x300) model runs
112.6 ms on a Pi 4 and 23.5 ms on a Pi 5 (Alasdair Allan,
github.com/aallan/benchmarking-ml-on-the-edge), a 4.8x speed-up; applied to
the 1.5 GHz Pi 4 rate: 20 GMAC/s.

Per hop (``sound_per_hop``): the model's MACs plus the front end's new STFT
frames (counted by ``frontend_macs_per_frame``) at the same rate, and the
share of one core that implies at each design's hop while a sound is heard.

Caveats: small models like ours spend a larger share of their time in
per-operator overhead than MobileNet does, so the real time is likely
higher than the estimate; the interpreter runs with 1 thread on the box.
"""

from __future__ import annotations

import math
from typing import Any

MOBILENET_V1_MACS = 569e6
PI4_FPS_4_THREADS_1950MHZ = 38.5
PI4_STOCK_MHZ = 1500.0
PI5_OVER_PI4 = 112.6 / 23.5

PI4_MAC_PER_S = MOBILENET_V1_MACS * PI4_FPS_4_THREADS_1950MHZ / 4 * (PI4_STOCK_MHZ / 1950.0)
PI5_MAC_PER_S = PI4_MAC_PER_S * PI5_OVER_PI4

BOARDS = {
    "pi4": ("Raspberry Pi 4 (Cortex-A72, 1.5 GHz), 1 thread", PI4_MAC_PER_S),
    "pi5": ("Raspberry Pi 5 (Cortex-A76, 2.4 GHz), 1 thread", PI5_MAC_PER_S),
}


def frontend_macs_per_frame(n_fft: int = 512, n_mels: int = 64) -> float:
    """Multiply-adds of one log-mel STFT frame: Hann window, real FFT (~1.25 N log2 N), power, dense mel matrix."""
    bins = n_fft // 2 + 1
    return n_fft + 1.25 * n_fft * math.log2(n_fft) + 2 * bins + bins * n_mels + n_mels


def sound_per_hop(model_macs: float, hops: dict[str, float]) -> dict[str, Any]:
    """Per decision design: estimated ms per hop (new STFT frames + one model invoke) and the core share.

    The share holds while a sound is heard; in silence the gate skips the
    model and only the front end runs. Per-call Python overhead is not in a
    MAC count, so the real figure is likely higher.
    """
    from device.frontend import LogMelParams

    p = LogMelParams()
    out: dict[str, Any] = {}
    for design, hop_s in hops.items():
        frames = int(round(hop_s * p.sample_rate)) // p.hop_length
        macs = model_macs + frames * frontend_macs_per_frame(p.n_fft, p.n_mels)
        out[design] = {"hop_s": hop_s, "macs_per_hop": macs, **{
            board: {"label": f"sound, {design} design: front end + model per {hop_s:g} s hop on {name} (estimate)",
                    "ms_per_hop": macs / rate * 1e3, "cpu_percent": 100.0 * macs / rate / hop_s}
            for board, (name, rate) in BOARDS.items()}}
    return out


def pi_estimates(figures: dict[str, Any], sound_hops: dict[str, float] | None = None) -> dict[str, Any]:
    """Estimated int8 invoke ms per model and board, from the measured MAC counts; per-hop sound cost per design."""
    out: dict[str, Any] = {
        "method": "estimated ms = MACs / assumed sustained int8 MAC/s of one core; see bench/estimate.py "
                  "for the published anchors",
        "assumed_mac_per_s": {board: rate for board, (_, rate) in BOARDS.items()},
        "models": {},
    }
    for kind in ("sound", "marimba", "generator"):
        macs = figures.get(f"{kind}.macs")
        if macs is None:
            continue
        out["models"][kind] = {
            board: {"label": f"{kind} model int8 invoke on {name} (estimate)", "unit": "ms",
                    "estimate": macs["median"] / rate * 1e3}
            for board, (name, rate) in BOARDS.items()
        }
    if sound_hops and figures.get("sound.macs") is not None:
        out["sound_per_hop"] = sound_per_hop(figures["sound.macs"]["median"], sound_hops)
    return out
