"""`python -m device run`: load the config, build the box, run it until a signal or an error.

Kept apart from ``app`` so the builder can import the App without a circle,
and so signal handling lives in the one place that owns the process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from device.argtypes import positive_finite
from device.config import check_files, load_config
from device.runtime.app import App

log = logging.getLogger("saysee")


def install_signal_handlers(app: App) -> None:
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) both ask the app to stop cleanly."""
    def stop(signum, _frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        app.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(argv: list[str] | None = None) -> int:
    from device.runtime.builder import build_app

    ap = argparse.ArgumentParser(prog="python -m device run", description="Run the Say-and-See box.")
    ap.add_argument("--config", default=os.environ.get("SAYSEE_CONFIG", "/etc/saysee/config.toml"))
    ap.add_argument("--sim", action="store_true", help="force every backend to its simulated one")
    ap.add_argument("--seconds", type=positive_finite, default=None, help="stop after this long")
    ap.add_argument("--out", default=None, help="(sim) folder for display frames, LED timeline, synth WAV")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    logging.basicConfig(level=cfg.app.log_level.upper(), format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    check_files(cfg)
    app, cleanup = build_app(cfg, sim=args.sim, out_dir=args.out)
    install_signal_handlers(app)
    try:
        return app.run(seconds=args.seconds, stop_when_done=args.sim or cfg.mic.backend == "sim")
    finally:
        cleanup()
