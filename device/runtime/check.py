"""`python -m device check`: each hardware backend and TFLite runtime, usable here or why not."""

from __future__ import annotations

import argparse
import importlib
import json

KINDS = ("mic", "camera", "leds", "display", "synth")


def runtime_probe() -> list[tuple[str, bool, str]]:
    """Which TFLite runtimes are installed; found by spec so TensorFlow itself is never loaded."""
    import importlib.util

    from device.model import RUNTIMES

    rows = []
    for name in RUNTIMES:
        found = importlib.util.find_spec(name) is not None
        rows.append((name, found, "installed" if found else "not installed"))
    return rows


def probe_options(cfg) -> dict[str, dict]:
    """The config values a probe needs to look at the right device (synth port, mic, camera)."""
    if cfg is None:
        return {}
    return {"mic": {"device": cfg.mic.device}, "camera": {"device": cfg.camera.device},
            "synth": {"port": cfg.synth.port}}


def probe_all(options: dict[str, dict] | None = None) -> dict[str, list[tuple[str, bool, str]]]:
    """{kind: [(backend, usable, why)]} for every hardware kind plus the TFLite runtimes."""
    options = options or {}
    out: dict[str, list[tuple[str, bool, str]]] = {}
    for kind in KINDS:
        try:
            module = importlib.import_module(f"device.hardware.{kind}")
            rows = module.probe(**options[kind]) if options.get(kind) else module.probe()
            out[kind] = [(str(b), bool(ok), str(why)) for b, ok, why in rows]
        except Exception as e:  # a broken probe is itself a finding to report, not a crash
            out[kind] = [("?", False, f"probe failed: {e}")]
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
    results = probe_all(probe_options(load_config(path) if path else None))
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
