"""The LED contract, on every backend that loads here (and the real LED under ``-m hardware``).

The same ``set`` sequence must reach the lowest layer as the same levels on
every backend: the sim's recorded timeline, RPi.GPIO's and rpi-lgpio's
software-PWM duty cycles, Jetson.GPIO's hardware PWM and on/off pins (those
quantised at ``ONOFF_THRESHOLD``). ``close()`` twice is fine, ``set`` after it
raises RuntimeError, bad values raise ValueError before any pin changes.
"""

from __future__ import annotations

import sys

import pytest

from contracts.conftest import real_or_skip
from device.config import LedsConfig
from device.hardware import leds as leds_mod
from device.hardware.leds import ONOFF_THRESHOLD, open_leds, srgb_to_linear
from fakes import gpio as gpio_fake
from fakes import jetson_gpio, rpi_lgpio

pytestmark = pytest.mark.device_venv

PINS = (17, 27, 22)
JETSON_PWM = (22,)  # Orin: BCM 22 has hardware PWM; 17 and 27 switch on/off


class LedBackend:
    """One backend as the contract sees it: how to open it and the level history each pin got."""

    def __init__(self, name: str, monkeypatch, tmp_path) -> None:
        self.name = name
        self.gpio = None
        self.cfg = LedsConfig()
        if name == "real":
            return
        node = tmp_path / "gpiochip0"
        node.write_bytes(b"")
        monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [str(node)])
        if name == "rpi-gpio":
            rpi, self.gpio = gpio_fake.make_modules()
            monkeypatch.setitem(sys.modules, "RPi", rpi)
            monkeypatch.setitem(sys.modules, "RPi.GPIO", self.gpio)
        elif name == "rpi-lgpio":
            rpi_lgpio.install(monkeypatch)
            monkeypatch.chdir(tmp_path)  # lgpio chdir()s into LG_WD; come back afterwards
            monkeypatch.setenv("LG_WD", str(tmp_path))
        elif name == "jetson":
            jetson, self.gpio = jetson_gpio.make_modules()
            monkeypatch.setitem(sys.modules, "RPi", None)
            monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
            monkeypatch.setitem(sys.modules, "Jetson", jetson)
            monkeypatch.setitem(sys.modules, "Jetson.GPIO", self.gpio)
            self.cfg = LedsConfig(hardware_pwm_pins=JETSON_PWM)

    def open(self):
        if self.name == "sim":
            return open_leds("sim", self.cfg)
        leds = real_or_skip(lambda: open_leds("real", self.cfg))
        if self.name == "rpi-lgpio":
            self.gpio = sys.modules["RPi.GPIO"]
        return leds

    def onoff(self, pin: int) -> bool:
        return self.name == "jetson" and pin not in JETSON_PWM

    def levels(self, leds) -> dict[int, list[float]] | None:
        """Per pin, the levels (0..1) the lowest layer saw, repeats collapsed; None for real hardware."""
        if self.name == "real":
            return None
        if self.name == "sim":
            # The sim records the colour asked for (sRGB, as the screen shows it); a real LED emits its light.
            raw = {p: [srgb_to_linear(s.rgb[i]) * s.brightness for s in leds.timeline()] for i, p in enumerate(PINS)}
        else:
            raw = {}
            for p in PINS:
                if self.onoff(p):
                    raw[p] = [0.0] + [float(v) for v in self.gpio.levels.get(p, [])]
                else:
                    raw[p] = [d / 100.0 for d in self.gpio.pwms[p].duty_history]
        return {p: collapse(v) for p, v in raw.items()}


def collapse(values):
    out = []
    for v in values:
        if not out or abs(out[-1] - v) > 1e-9:
            out.append(round(v, 9))
    return out


@pytest.fixture(params=["sim", "rpi-gpio", "rpi-lgpio", "jetson", pytest.param("real", marks=pytest.mark.hardware)])
def backend(request, monkeypatch, tmp_path):
    return LedBackend(request.param, monkeypatch, tmp_path)


SEQUENCE = [((1.0, 0.0, 0.0), 1.0), ((1.0, 0.5, 0.0), 0.8), ((1.0, 0.5, 0.0), 0.8), ((0.0, 0.25, 1.0), 0.5),
            ((0.0, 1.0, 0.6), 1.0)]


def test_same_levels_reach_the_pins_on_every_backend(backend):
    leds = backend.open()
    for rgb, level in SEQUENCE:
        leds.set(rgb, level)
    assert (leds.rgb, leds.brightness) == ((0.0, 1.0, 0.6), 1.0)
    leds.off()
    leds.close()
    got = backend.levels(leds)
    if got is None:
        return
    for i, pin in enumerate(PINS):
        want = [0.0] + [srgb_to_linear(rgb[i]) * level for rgb, level in SEQUENCE] + [0.0]  # light, as the screen
        if backend.onoff(pin):
            want = [float(v >= ONOFF_THRESHOLD) for v in want]
        assert got[pin] == collapse(want), (backend.name, pin)


def test_close_twice_then_set_raises(backend):
    leds = backend.open()
    leds.set((0.0, 1.0, 0.0))
    leds.close()
    leds.close()
    assert leds.is_closed
    with pytest.raises(RuntimeError, match="after close"):
        leds.set((1.0, 1.0, 1.0))
    with pytest.raises(RuntimeError, match="after close"):
        leds.off()


@pytest.mark.parametrize("rgb, level", [((1.2, 0, 0), 1.0), ((0, 0, 0), float("nan")), ((0, 0), 1.0),
                                        (("red", 0, 0), 1.0), ((0, 0, 0), -0.1)])
def test_bad_values_raise_before_any_pin_changes(backend, rgb, level):
    with backend.open() as leds:
        leds.set((0.0, 0.5, 0.0))
        before = backend.levels(leds)
        with pytest.raises(ValueError):
            leds.set(rgb, level)
        assert backend.levels(leds) == before
        assert (leds.rgb, leds.brightness) == ((0.0, 0.5, 0.0), 1.0)


def test_context_manager_leaves_the_led_dark(backend):
    with backend.open() as leds:
        leds.set((1.0, 1.0, 1.0))
    assert leds.is_closed
    got = backend.levels(leds)
    if got is not None:
        assert all(levels[-1] == 0.0 for levels in got.values())
