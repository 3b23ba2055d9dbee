"""The continuous mapping on the box: every hop, embedding -> smoothed LED colour and synth CC values.

``ContinuousMapper.step`` is pure (numbers in, changes out); the ``Responder`` turns its changes
into SetLed / Midi actions (``Responder.on_hop``). What it does with each kind of hop:

- a classified hop (sound above the gate): the mapping's colour and CC values become the targets;
  the LED brightness follows the hop's loudness. A taught mapping's hop further than
  ``[continuous] max_distance`` from every demonstration is treated as silence (it was never taught).
- a silent hop: the LED fades to dark with the smoothing time constant; the CC values hold (the synth
  keeps the last sound's settings instead of jumping to an arbitrary "neutral" patch).
- a gated hop (the box's own synth sounding) or a stale one: everything holds.

Values are smoothed with one pole (time constant ``[continuous] smoothing_s``, by stream time, so
the hop length does not matter) and reported only when they change by a visible or audible step
from what was last sent (``CC_STEPS``, ``COLOUR_STEPS``, ``BRIGHTNESS_STEP``; the LED going dark always).

``EmbeddingTap`` wraps the sound model so the app can hand the responder the embedding of the
window the pipeline just classified, without a second inference.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from device.config import Config, ContinuousConfig
from device.errors import ConfigError, SaySeeError
from device.sound.mapping import DefaultMapping, MappingError, projection_from_metadata
from device.sound.open_set import infer

log = logging.getLogger("saysee")

DEFAULTS = ContinuousConfig()  # the [continuous] section's one source of defaults
MIN_BRIGHTNESS = 0.15  # a sound just above the gate still visibly lights the LED (as the class mapping)
LOUDNESS_RANGE_DB = 30.0  # from the silence gate to full brightness
# Hysteresis: a value is sent again only when it moved this far from what was sent, so a steady sound whose
# smoothed value wobbles around x.5 sends nothing (one step would send every hop).
CC_STEPS = 1.0  # MIDI CC steps
COLOUR_STEPS = 2.0  # 8-bit colour steps, largest channel
BRIGHTNESS_STEP = 0.02


class EmbeddingTap:
    """The sound model, remembering the embedding of the newest window it ran on."""

    def __init__(self, model: Any):
        self.model = model
        self.embedding: np.ndarray | None = None

    def infer(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probs, emb = infer(self.model, x)
        self.embedding = emb
        return probs, emb

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.infer(x)[0]

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)


def latest_embedding(decision: Any) -> np.ndarray | None:
    """The embedding of the newest classified window, when ``decision`` (an OpenSetModel) runs on a tap."""
    inner = getattr(decision, "model", None)
    return inner.embedding if isinstance(inner, EmbeddingTap) else None


class ContinuousMapper:
    """One mapping's outputs, smoothed per hop and reported on change (see module doc)."""

    def __init__(self, mapping: Any, settings: ContinuousConfig = DEFAULTS,
                 silence_dbfs: float = -45.0, max_distance: float | None = None):
        self.mapping = mapping
        self.tau = settings.smoothing_s
        self.silence_dbfs = silence_dbfs
        self.max_distance = settings.max_distance if max_distance is None else max_distance
        self.colour: np.ndarray | None = None
        self.brightness = 0.0
        self.cc: dict[int, float] = {}
        self._t: float | None = None
        self._sent_led: tuple | None = None
        self._sent_cc: dict[int, int] = {}
        self.drives_led = bool(getattr(mapping, "has_colour", True))  # a CC-only taught mapping leaves the LED alone

    def _weight(self, t: float) -> float:
        dt = None if self._t is None else t - self._t
        self._t = t
        if dt is None or self.tau <= 0:
            return 1.0
        return 1.0 - math.exp(-max(dt, 0.0) / self.tau)

    def step(self, t: float, level_dbfs: float, skipped: str | None,
             embedding: np.ndarray | None) -> tuple[tuple[tuple[float, float, float], float] | None, dict[int, int]]:
        """(LED (colour, brightness) when it changed, else None; {CC number: value} that changed)."""
        if skipped in ("gated", "stale"):
            self._t = t  # held: the next hop smooths from here, not across the gap
            return None, {}
        a = self._weight(t)
        out = self.mapping.predict(embedding) if skipped is None and embedding is not None else None
        if out is not None and out.nearest is not None and out.nearest > self.max_distance:
            out = None  # never taught anything like it: as silence
        if out is not None:
            loud = min(1.0, max(0.0, (level_dbfs - self.silence_dbfs) / LOUDNESS_RANGE_DB))
            target_b = MIN_BRIGHTNESS + (1.0 - MIN_BRIGHTNESS) * loud
            if out.colour is not None:
                c = np.asarray(out.colour, np.float64)
                self.colour = c if self.colour is None or self.brightness <= 1e-3 else self.colour + a * (c - self.colour)
            for n, v in out.cc.items():
                self.cc[n] = v if n not in self.cc else self.cc[n] + a * (v - self.cc[n])
        else:
            target_b = 0.0
        self.brightness += a * (target_b - self.brightness)
        led = None
        if self.drives_led and self.colour is not None:
            b = round(float(self.brightness), 2) if self.brightness >= 0.005 else 0.0
            q = (tuple(round(float(x) * 255) / 255 for x in self.colour), b) if b > 0 else ((0.0, 0.0, 0.0), 0.0)
            last = self._sent_led
            if last is None or (b == 0) != (last[1] == 0) or (b > 0 and (
                    abs(b - last[1]) >= BRIGHTNESS_STEP
                    or max(abs(x - y) for x, y in zip(q[0], last[0])) * 255 >= COLOUR_STEPS)):
                self._sent_led = led = q
        changed = {}
        for n, v in self.cc.items():
            if n not in self._sent_cc or abs(v - self._sent_cc[n]) >= CC_STEPS:
                self._sent_cc[n] = changed[n] = int(min(127, max(0, round(v))))
        return led, changed


def continuous_mapping(cfg: Config, model: Any) -> tuple[Any, ContinuousMapper | None]:
    """(model, mapper): for ``[continuous] mode`` other than off, the model behind an EmbeddingTap and
    the mapper of the taught mapping (``[teach] dir``, rows recomputed after a model update) or the
    default one. A model without an embedding can map nothing: logged, (model, None)."""
    c = cfg.continuous
    if c.mode == "off" or model is None:
        return model, None
    if not getattr(model, "has_embedding", False):
        log.warning("[continuous] mode = %s: the sound model has no embedding output; continuous mapping off", c.mode)
        return model, None
    mapping = None
    if c.mode == "taught":
        from device.frontend import LogMelParams
        from device.sound.mapping_store import MappingStore
        from device.sound.teach import embed_take_windows

        store = MappingStore(cfg.teach.dir)
        if store.exists():
            params, silence = LogMelParams(), cfg.sound.silence_dbfs

            def embed(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                e, _, windows = embed_take_windows(model, audio, params, silence)
                return e, windows

            try:
                stored = store.refresh(model.embedding_version, embed)
                mapping = stored.mapping()
                log.info("continuous mapping: taught (%d examples -> %s)", len(stored.examples), " ".join(stored.names))
            except SaySeeError as e:  # a damaged mapping must not keep the box from starting
                log.warning("taught mapping not used (%s): the default mapping runs", e)
        else:
            log.info("continuous mapping: nothing taught in %s yet, the default mapping runs", store.folder)
    if mapping is None:
        meta = getattr(model, "metadata", {}) or {}
        dim = int(getattr(model, "embedding_dim", None) or (meta.get("embedding") or {}).get("dim") or 0)
        proj, why = projection_from_metadata(meta, dim, model.embedding_version)
        try:
            mapping = DefaultMapping(proj, c.cc)
        except MappingError as e:
            raise ConfigError(f"{cfg.source}: [continuous] cc = {list(c.cc)}: {e}") from None
        log.info("continuous mapping: default (%s)", why)
    return EmbeddingTap(model), ContinuousMapper(mapping, c, cfg.sound.silence_dbfs)
