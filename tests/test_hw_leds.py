"""RGB LED backends: GPIO PWM through a fake ``RPi.GPIO``, and the recording sim."""

from __future__ import annotations

import itertools
import logging
import sys

import pytest

from device.errors import ConfigError
from device.hardware import leds as leds_mod
from device.hardware.leds import GpioLeds, RecordingLeds, open_leds, probe
from device.hardware.select import HardwareError
from fakes.gpio import make_modules

pytestmark = pytest.mark.device_venv


def _duties(gpio):
    return tuple(gpio.pwms[p].duty for p in (17, 27, 22))


def test_pins_set_up_in_bcm_with_pwm(fake_gpio):
    with GpioLeds(frequency=200) as leds:
        assert ("setmode", fake_gpio.BCM) in fake_gpio.calls
        assert [c for c in fake_gpio.calls if c[0] == "setup"] == [
            ("setup", pin, fake_gpio.OUT, fake_gpio.LOW) for pin in (17, 27, 22)
        ]
        assert [c for c in fake_gpio.calls if c[0] == "PWM"] == [("PWM", p, 200.0) for p in (17, 27, 22)]
        assert _duties(fake_gpio) == (0.0, 0.0, 0.0)
        assert all(fake_gpio.pwms[p].running for p in (17, 27, 22))
        assert leds.backend == "real"


def test_duty_follows_colour_times_brightness(fake_gpio):
    with GpioLeds(pins=(5, 6, 13)) as leds:
        leds.set((1.0, 0.5, 0.0), 0.8)
        assert tuple(fake_gpio.pwms[p].duty for p in (5, 6, 13)) == pytest.approx((80.0, 40.0, 0.0))
        assert leds.duty_cycles == pytest.approx((80.0, 40.0, 0.0))
        before = len(fake_gpio.calls)
        leds.set((1.0, 0.5, 0.0), 0.8)  # unchanged: no redundant library calls
        assert len(fake_gpio.calls) == before
        leds.off()
        assert tuple(fake_gpio.pwms[p].duty for p in (5, 6, 13)) == (0.0, 0.0, 0.0)
        with pytest.raises(ValueError):
            leds.set((1.2, 0, 0))
        with pytest.raises(ValueError):
            leds.set((0, 0, 0), float("nan"))


def test_common_anode_inverts_duty(fake_gpio):
    with GpioLeds(common_anode=True) as leds:
        # Off means the pins sit high, from the very first setup() on.
        assert {c[3] for c in fake_gpio.calls if c[0] == "setup"} == {fake_gpio.HIGH}
        assert _duties(fake_gpio) == (100.0, 100.0, 100.0)
        leds.set((1.0, 0.25, 0.0), 1.0)
        assert _duties(fake_gpio) == pytest.approx((0.0, 75.0, 100.0))


def test_cleanup_on_close_only_once(fake_gpio):
    leds = GpioLeds()
    leds.set((0, 1, 0), 1.0)
    leds.close()
    cleanups = [c for c in fake_gpio.calls if c[0] == "cleanup"]
    assert cleanups == [("cleanup", [17, 27, 22])]  # only our pins, not the whole header
    assert _duties(fake_gpio) == (0.0, 0.0, 0.0)  # dark before release
    assert not any(fake_gpio.pwms[p].running for p in (17, 27, 22))
    leds.close()
    assert [c for c in fake_gpio.calls if c[0] == "cleanup"] == cleanups
    with pytest.raises(RuntimeError):
        leds.set((1, 1, 1))


def test_board_mode_set_elsewhere_is_refused(monkeypatch):
    rpi, gpio = make_modules(preset_mode=10)  # BOARD
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    with pytest.raises(HardwareError, match="BOARD"):
        GpioLeds()


def test_bad_pins_are_config_errors(fake_gpio):
    with pytest.raises(ConfigError, match="pins"):
        GpioLeds(pins=(17, 17, 22))
    with pytest.raises(ConfigError, match="pins"):
        GpioLeds(pins=(17, 27))


def test_library_error_becomes_one_line(fake_gpio, monkeypatch):
    def broken_setup(*a, **k):
        raise RuntimeError("Cannot determine SOC peripheral base address")

    monkeypatch.setattr(fake_gpio, "setup", broken_setup)
    with pytest.raises(HardwareError) as err:
        GpioLeds()
    assert "rpi-lgpio" in str(err.value) and "\n" not in str(err.value)
    assert ("cleanup", [17, 27, 22]) in fake_gpio.calls


def test_recording_leds_timeline_and_assert_states():
    clock = itertools.count(0.0, 0.5).__next__
    with open_leds("sim", clock=clock) as leds:
        leds.set((1, 0, 0))
        leds.set((1, 0, 0))  # same state: not recorded
        leds.set((0, 0, 1), 0.5)
        leds.off()
        leds.assert_states([((0, 0, 0), 0), (1, 0, 0), ((0, 0, 1), 0.5), ((0, 0, 0), 0)])
        with pytest.raises(AssertionError, match="LED states differ"):
            leds.assert_states([(1, 0, 0)])
        times = [s.t for s in leds.timeline()]
        assert times == sorted(times) and times[0] == 0.0
        assert leds.timeline()[2].rgb == (0.0, 0.0, 1.0) and leds.timeline()[2].brightness == 0.5
        leds.set((0, 1, 0))
        leds.clear_states()
        leds.assert_states([(0, 1, 0)])
    leds.assert_states([(0, 1, 0), ((0, 0, 0), 0)])  # closing turns it off, recorded


def test_auto_falls_back_to_sim_without_gpio_nodes(fake_gpio, monkeypatch, caplog):
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [])
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_leds("auto", pins=[17, 27, 22]) as leds:
            assert isinstance(leds, RecordingLeds)
    assert any("no GPIO device node" in r.getMessage() for r in caplog.records)
    with pytest.raises(HardwareError, match="no GPIO device node"):
        open_leds("real")
    assert probe()[0][:2] == ("real", False)


def test_auto_picks_gpio_when_node_and_library_exist(fake_gpio, monkeypatch, tmp_path):
    node = tmp_path / "gpiochip0"
    node.write_bytes(b"")
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [str(node)])
    with open_leds("auto", common_anode=True) as leds:
        assert isinstance(leds, GpioLeds) and leds.common_anode
    backend, usable, why = probe()[0]
    assert (backend, usable) == ("real", True) and "RPi.GPIO" in why


def test_missing_library_reported(monkeypatch, tmp_path):
    node = tmp_path / "gpiomem"
    node.write_bytes(b"")
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [str(node)])
    monkeypatch.setitem(sys.modules, "RPi", None)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", None)
    monkeypatch.setitem(sys.modules, "Jetson", None)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", None)
    backend, usable, why = probe()[0]
    assert not usable and "RPi.GPIO not installed" in why
    with pytest.raises(HardwareError, match="rpi-lgpio"):
        GpioLeds()
