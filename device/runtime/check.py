"""`python -m device check`: each hardware backend and TFLite runtime, usable here or why not."""

from __future__ import annotations

import argparse
import importlib
import json

from device.hardware import KINDS


def runtime_probe() -> list[tuple[str, bool, str]]:
    """Which TFLite runtimes are installed; found by spec so TensorFlow itself is never loaded."""
    import importlib.util

    from device.model import RUNTIMES

    rows = []
    for name in RUNTIMES:
        found = importlib.util.find_spec(name) is not None
        rows.append((name, found, "installed" if found else "not installed"))
    return rows


def _probe_args(kind: str, cfg) -> tuple[tuple, dict]:
    """What ``probe`` of ``kind`` is called with: its config section (mic/synth: the device they name)."""
    if cfg is None:
        return (), {}
    if kind == "mic":
        return (), {"device": cfg.mic.device}
    if kind == "synth":
        return (), {"port": cfg.synth.port}
    return (getattr(cfg, kind),), {}


def probe_all(cfg=None) -> dict[str, list[tuple[str, bool, str]]]:
    """{kind: [(backend, usable, why)]} for every hardware kind plus the TFLite runtimes.

    ``cfg`` (a ``device.config.Config`` or None for the defaults) says which
    devices to look at: the synth port, mic, camera node, LED pins, screen.
    """
    out: dict[str, list[tuple[str, bool, str]]] = {}
    for kind in KINDS:
        try:
            module = importlib.import_module(f"device.hardware.{kind}")
            args, kwargs = _probe_args(kind, cfg)
            rows = module.probe(*args, **kwargs)
            out[kind] = [(str(b), bool(ok), str(why)) for b, ok, why in rows]
        except Exception as e:  # a broken probe is itself a finding to report, not a crash
            out[kind] = [("?", False, f"probe failed: {type(e).__name__}: {e}")]
    out["tflite"] = runtime_probe()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device check", description=__doc__)
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--config", default=None,
                    help="look at the devices this config names (default: /etc/saysee/config.toml if present)")
    args = ap.parse_args(argv)
    from pathlib import Path

    from device.config import load_config

    path = args.config or ("/etc/saysee/config.toml" if Path("/etc/saysee/config.toml").is_file() else None)
    results = probe_all(load_config(path) if path else None)
    if args.json:
        print(json.dumps({k: [{"backend": b, "usable": ok, "why": why} for b, ok, why in rows]
                          for k, rows in results.items()}, indent=2))
        return 0
    for kind, rows in results.items():
        for backend, ok, why in rows:
            print(f"{kind:8s} {backend:16s} {'yes' if ok else 'no ':3s}  {why}")
    # Every kind always has its sim backend, so the box can run; say if no real one is usable.
    missing = [k for k in KINDS if not any(ok and b not in ("sim", "null") for b, ok, _ in results[k])]
    if missing:
        print(f"no real backend usable for: {', '.join(missing)} (those run simulated)")
    return 0
