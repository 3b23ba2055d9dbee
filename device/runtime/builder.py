"""Config -> opened backends, loaded models and a ready App: the choice is made once, here."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

from device.runtime.app import App, Devices
from device.runtime.responder import Responder
from device.config import Config
from device.errors import ConfigError
from device.frontend import LogMelParams
from device.model import Model

log = logging.getLogger("saysee")

RESYNTH_WAV = "marimba-resynth.wav"  # the sim audio out's file in a run's out_dir
# Start time each taught sound recomputed at boot (after a model update) asks systemd for, from then
# (EXTEND_TIMEOUT_USEC): one runs the model on every window of its takes; the unit allows 90 s in all.
RECOMPUTE_EXTEND_S = 30.0


def _backend(configured: str, sim: bool) -> str:
    return "sim" if sim else configured


def open_devices(cfg: Config, sim: bool = False, out_dir: str | Path | None = None) -> Devices:
    """Open every backend the enabled modes need; on failure close what was opened."""
    from device.hardware.audio_out import open_audio_out
    from device.hardware.camera import open_camera
    from device.hardware.display import open_display
    from device.hardware.leds import open_leds
    from device.hardware.mic import open_mic
    from device.hardware.synth import open_synth
    from device.screen.render import Renderer

    out = Path(out_dir) if out_dir else None
    modes = set(cfg.app.modes)
    dev = Devices()
    try:
        if "sound" in modes:
            m = cfg.mic
            dev.mic = open_mic(_backend(m.backend, sim), m)
        if "marimba" in modes:
            c = cfg.camera
            if _backend(c.backend, sim) == "sim" and not c.video:
                raise ConfigError(f"{cfg.source}: [camera] video: a simulated camera needs a video file")
            dev.camera = open_camera(_backend(c.backend, sim), c)
        dev.leds = open_leds(_backend(cfg.leds.backend, sim), cfg.leds)
        d = cfg.display
        frames = (out / "frames") if out else (d.out_dir or None)
        # The display is handed its renderer: hardware never imports screen code.
        dev.display = open_display(_backend(d.backend, sim), d, renderer=Renderer, out_dir=frames)
        s = cfg.synth
        dev.synth = open_synth(_backend(s.backend, sim), s,
                               wav_path=(out / "synth.wav") if out else None,
                               log_path=(out / "synth.log") if out else None)
        a = cfg.audio_out
        if a.mode == "resynth" and "marimba" in modes:
            # In sim the resynthesis lands beside the synth's WAV, so the two can be compared.
            wav = (out / RESYNTH_WAV) if out else (a.wav or None)
            if not cfg.camera.realtime and _backend(cfg.camera.backend, sim) == "sim":
                # An unpaced video makes blocks faster than real time: a card-paced WAV would
                # drop most of them, so the sim writes every block (batch) instead.
                a = dataclasses.replace(a, realtime=False)
            dev.audio_out = open_audio_out(_backend(a.backend, sim), a, path=wav)
    except BaseException:
        dev.close()
        raise
    return dev


def load_models(cfg: Config):
    """(sound model or None, marimba pipeline or None); metadata is checked against the front ends."""
    sound = marimba = None
    if "sound" in cfg.app.modes:
        sound = Model(cfg.sound.model, expected_frontend=LogMelParams(), num_threads=cfg.sound.num_threads)
    if "marimba" in cfg.app.modes:
        import dataclasses

        from device.marimba.pipeline import MarimbaPipeline
        from device.marimba.rectify import Calibration

        m = cfg.marimba
        # A missing or bad calibration file is one line at startup, before any hardware opens.
        calibration = Calibration.load(m.calibration) if m.calibration else None
        marimba = MarimbaPipeline.from_model_path(m.model, num_threads=m.num_threads, calibration=calibration)
        overrides = {k: getattr(m, k) for k in ("threshold", "refractory_s", "hold_s") if getattr(m, k) is not None}
        if overrides:
            marimba = MarimbaPipeline(marimba.model, peaks=dataclasses.replace(marimba.spec.peaks, **overrides),
                                      calibration=calibration)
        # The camera's size against the model's view (or the calibration's): refused here in one line.
        marimba.check_frame_size((cfg.camera.height, cfg.camera.width))
    return sound, marimba


def build_app(cfg: Config, sim: bool = False, out_dir: str | Path | None = None,
              on_event: Callable | None = None) -> tuple[App, Callable[[], None]]:
    """Models first (a bad model fails before any hardware opens), then devices, then the App."""
    from device.runtime.notify import Notifier, Watchdog

    notifier = Notifier()
    sound, marimba = load_models(cfg)
    continuous = None
    if sound is not None and cfg.continuous.mode != "off":
        from device.runtime.continuous import continuous_mapping

        # The model behind a tap: the responder gets each classified window's embedding every hop.
        sound, continuous = continuous_mapping(cfg, sound)
    dream = None
    if sound is not None and cfg.display.picture_mode == "dream":
        from device.runtime.continuous import EmbeddingTap
        from device.screen.dream import DreamPicture

        # A generator trained on another embedding is refused here, before any hardware opens.
        dream = DreamPicture.from_model(cfg.display.generator, sound.metadata)
        sound = sound if isinstance(sound, EmbeddingTap) else EmbeddingTap(sound)
    decision, taught = None, []
    if sound is not None:
        from device.sound.teach import open_set_model

        # The pipeline decides built-in | taught ([teach] dir) | unknown; the responder maps the taught ones.
        # After a model update every taught sound is recomputed before READY=1: many of them on a Pi 3
        # would outlast the unit's TimeoutStartSec, so each one asks systemd for more time.
        decision, taught = open_set_model(cfg, sound, lambda c: notifier.extend_timeout(RECOMPUTE_EXTEND_S))
    devices = open_devices(cfg, sim=sim, out_dir=out_dir)
    watchdog = Watchdog(notifier, on_stall=lambda s: log.error("pipeline stalled for %.1f s", s))
    responder = Responder(cfg, labels=sound.labels if sound else (), notes=marimba.notes if marimba else (),
                          taught={c.label: c.class_mapping() for c in taught}, continuous=continuous)
    if dream is not None:
        from device.runtime.continuous import latest_embedding

        dream.source = lambda: latest_embedding(decision)  # the embedding of the window just classified
        responder.dream = dream
    teach_button = None
    if decision is not None and cfg.teach.button_pin is not None and not sim:
        from device.sound.teach_button import open_button

        try:
            teach_button = open_button(cfg.teach, cfg.leds.gpio_module)
        except BaseException:
            devices.close()
            raise
    try:
        app = App(cfg, devices, sound_model=decision, marimba=marimba, notifier=watchdog, on_event=on_event,
                  responder=responder, teach_button=teach_button)
    except BaseException:  # a serial port left open would be reopened (and a synth reset) at every restart
        devices.close()
        if teach_button is not None:
            teach_button.close()
        raise
    return app, watchdog.stop
