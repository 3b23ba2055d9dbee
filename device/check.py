"""`python -m device check`: each hardware backend and TFLite runtime, usable here or why not."""

from __future__ import annotations

import argparse
import importlib
import json

KINDS = ("mic", "camera", "leds", "display", "synth")


def runtime_probe() -> list[tuple[str, bool, str]]:
    from .model import RUNTIMES, _interpreter_class

    rows = []
    for name in RUNTIMES:
        try:
            _interpreter_class(name)
            rows.append((name, True, "importable"))
        except ImportError as e:
            rows.append((name, False, f"not installed ({e.name or e})"))
    return rows


def probe_all() -> dict[str, list[tuple[str, bool, str]]]:
    """{kind: [(backend, usable, why)]} for every hardware kind plus the TFLite runtimes."""
    out: dict[str, list[tuple[str, bool, str]]] = {}
    for kind in KINDS:
        try:
            module = importlib.import_module(f"device.hardware.{kind}")
            out[kind] = [(str(b), bool(ok), str(why)) for b, ok, why in module.probe()]
        except Exception as e:  # a broken probe is itself a finding to report, not a crash
            out[kind] = [("?", False, f"probe failed: {e}")]
    out["tflite"] = runtime_probe()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device check", description=__doc__)
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    results = probe_all()
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
