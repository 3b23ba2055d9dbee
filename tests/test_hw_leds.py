"""RGB LED backends: GPIO PWM through a fake ``RPi.GPIO``, rpi-lgpio and Jetson.GPIO, and the recording sim.

What every backend must do alike (close twice, set after close, the same
recorded values) is in tests/contracts/test_leds.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import sys

import pytest

from device.config import LedsConfig, config_from_dict
from device.errors import ConfigError
from device.hardware import leds as leds_mod
from device.hardware.leds import MAX_RECORDED_STATES, GpioLeds, RecordingLeds, open_leds, probe
from device.hardware.select import HardwareError
from fakes import jetson_gpio, rpi_lgpio
from fakes.gpio import make_modules

pytestmark = pytest.mark.device_venv


def _duties(gpio):
    return tuple(gpio.pwms[p].duty for p in (17, 27, 22))


def test_pins_set_up_in_bcm_with_pwm(fake_gpio):
    with GpioLeds(LedsConfig(pwm_hz=200)) as leds:
        assert ("setmode", fake_gpio.BCM) in fake_gpio.calls
        assert [c for c in fake_gpio.calls if c[0] == "setup"] == [
            ("setup", pin, fake_gpio.OUT, fake_gpio.LOW) for pin in (17, 27, 22)
        ]
        assert [c for c in fake_gpio.calls if c[0] == "PWM"] == [("PWM", p, 200.0) for p in (17, 27, 22)]
        assert _duties(fake_gpio) == (0.0, 0.0, 0.0)
        assert all(fake_gpio.pwms[p].running for p in (17, 27, 22))
        assert leds.backend == "real"


def test_duty_follows_colour_times_brightness(fake_gpio):
    with GpioLeds(LedsConfig(pins=(5, 6, 13))) as leds:
        leds.set((1.0, 0.5, 0.0), 0.8)
        # Linear light, as the screen's sRGB 0.5 emits: 0.214, not 0.5 (the LED's orange matches the screen's).
        assert tuple(fake_gpio.pwms[p].duty for p in (5, 6, 13)) == pytest.approx((80.0, 17.12, 0.0), abs=0.01)
        assert leds.duty_cycles == pytest.approx((80.0, 17.12, 0.0), abs=0.01)
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
    with GpioLeds(LedsConfig(common_anode=True)) as leds:
        # Off means the pins sit high, from the very first setup() on.
        assert {c[3] for c in fake_gpio.calls if c[0] == "setup"} == {fake_gpio.HIGH}
        assert _duties(fake_gpio) == (100.0, 100.0, 100.0)
        leds.set((1.0, 0.25, 0.0), 1.0)
        assert _duties(fake_gpio) == pytest.approx((0.0, 100.0 - 5.08, 100.0), abs=0.01)


def test_close_releases_only_our_pins_dark(fake_gpio):
    leds = GpioLeds()
    leds.set((0, 1, 0), 1.0)
    leds.close()
    cleanups = [c for c in fake_gpio.calls if c[0] == "cleanup"]
    assert cleanups == [("cleanup", [17, 27, 22])]  # only our pins, not the whole header
    assert _duties(fake_gpio) == (0.0, 0.0, 0.0)  # dark before release
    assert not any(fake_gpio.pwms[p].running for p in (17, 27, 22))


def test_board_mode_set_elsewhere_is_refused(monkeypatch):
    rpi, gpio = make_modules(preset_mode=10)  # BOARD
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    with pytest.raises(HardwareError, match="BOARD"):
        GpioLeds()


def test_bad_pins_are_config_errors(fake_gpio):
    with pytest.raises(ConfigError, match="pins"):
        GpioLeds(LedsConfig(pins=(17, 17, 22)))
    with pytest.raises(ConfigError, match="pins"):
        GpioLeds(LedsConfig(pins=(17, 27)))
    with pytest.raises(ConfigError, match="hardware_pwm_pins"):
        GpioLeds(LedsConfig(hardware_pwm_pins=(12,)))


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


def test_recording_leds_keep_only_the_newest_states():
    """The sim LEDs stand in for broken GPIO on a box that runs for weeks: their record is bounded."""
    with RecordingLeds(clock=itertools.count(0.0, 0.05).__next__, max_states=100) as leds:
        for i in range(1000):  # a continuous mapping changing the colour every hop
            leds.set((i % 2, 0, 1), 1.0)
        kept = leds.timeline()
        assert len(kept) == 100 and kept[-1].rgb == (1.0, 0.0, 1.0)
        assert [s.t for s in kept] == sorted(s.t for s in kept) and kept[0].t > 0  # the oldest went first
        leds.clear_states()
        leds.set((0, 1, 0))
        assert len(leds.timeline()) == 2  # the bound survives clear_states
    default = RecordingLeds()
    for i in range(MAX_RECORDED_STATES + 10):
        default.set((0, 0, (i % 100) / 100), 1.0)
    assert len(default.timeline()) == MAX_RECORDED_STATES


def test_auto_falls_back_to_sim_without_gpio_nodes(fake_gpio, monkeypatch, caplog):
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [])
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_leds("auto", LedsConfig()) as leds:
            assert isinstance(leds, RecordingLeds)
    assert any("no GPIO device node" in r.getMessage() for r in caplog.records)
    with pytest.raises(HardwareError, match="no GPIO device node"):
        open_leds("real")
    assert probe()[0][:2] == ("real", False)


def test_auto_picks_gpio_when_node_and_library_exist(fake_gpio, monkeypatch, tmp_path):
    node = tmp_path / "gpiochip0"
    node.write_bytes(b"")
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [str(node)])
    with open_leds(None, LedsConfig(backend="auto", common_anode=True)) as leds:
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


# ------------------------------------------------------------------ rpi-lgpio: the FIFO under a read-only unit


@pytest.fixture
def gpio_node(monkeypatch, tmp_path):
    node = tmp_path / "gpiochip0"
    node.write_bytes(b"")
    monkeypatch.setattr(leds_mod, "_gpio_nodes", lambda: [str(node)])
    return node


@pytest.fixture
def read_only_cwd(monkeypatch, tmp_path):
    """The unit's WorkingDirectory under ProtectSystem=strict, and no LG_WD from outside."""
    ro = tmp_path / "release"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.chdir(ro)  # also restores the CWD lgpio chdir()s away from
    monkeypatch.delenv("LG_WD", raising=False)  # restored afterwards, though the backend sets it
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    yield ro
    ro.chmod(0o755)


def test_lgpio_fifo_goes_to_the_runtime_directory(monkeypatch, tmp_path, gpio_node, read_only_cwd):
    rpi_lgpio.install(monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(run))
    with open_leds("real", LedsConfig()) as leds:
        leds.set((1, 0, 0))
        assert sys.modules["RPi.GPIO"].pwms[17].duty == 100.0
    assert os.environ["LG_WD"] == str(run)
    assert stat.S_ISFIFO((run / ".lgd-nfy0").stat().st_mode)
    assert not list(read_only_cwd.iterdir())


def test_lgpio_that_cannot_make_its_fifo_fails_loudly_when_asked_for(monkeypatch, gpio_node, read_only_cwd, caplog):
    rpi_lgpio.install(monkeypatch)
    monkeypatch.setenv("LG_WD", str(read_only_cwd))  # a misconfigured unit: LG_WD points somewhere read-only
    with pytest.raises(HardwareError) as err:
        open_leds("real", LedsConfig(gpio_module="RPi.GPIO"))
    text = str(err.value)
    assert "\n" not in text and ".lgd-nfy" in text and f"LG_WD={read_only_cwd}" in text
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_leds("auto", LedsConfig(gpio_module="RPi.GPIO")) as leds:
            assert isinstance(leds, RecordingLeds)
    assert any("LG_WD" in r.getMessage() for r in caplog.records)


def test_lgpio_work_dir_prefers_lg_wd_then_runtime_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("LG_WD", "/somewhere")
    assert leds_mod.lgpio_work_dir() == "/somewhere"
    monkeypatch.delenv("LG_WD")
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{tmp_path}:/other")
    assert leds_mod.lgpio_work_dir() == str(tmp_path)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "absent"))
    assert leds_mod.lgpio_work_dir() in ("/run/saysee", __import__("tempfile").gettempdir())


# ------------------------------------------------------------------ Jetson.GPIO: hardware PWM on few pins


def install_jetson(monkeypatch, **kw):
    jetson, gpio = jetson_gpio.make_modules(**kw)
    for name in ("RPi", "RPi.GPIO"):
        monkeypatch.setitem(sys.modules, name, None)  # a Jetson without the RPi shim
    monkeypatch.setitem(sys.modules, "Jetson", jetson)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", gpio)
    return gpio


def test_jetson_pins_without_hardware_pwm_switch_on_off(monkeypatch):
    gpio = install_jetson(monkeypatch)
    with GpioLeds(LedsConfig()) as leds:  # 17, 27, 22: software PWM would raise on 17
        assert leds.is_jetson and not gpio.pwms
        leds.set((1.0, 0.2, 0.6))
        assert {p: gpio.levels[p][-1] for p in (17, 27, 22)} == {17: gpio.HIGH, 27: gpio.LOW, 22: gpio.HIGH}
        assert leds.duty_cycles == (100.0, 0.0, 100.0)
        leds.set((1.0, 0.2, 0.6), 0.5)  # 0.5, 0.1, 0.3 of full level
        assert leds.duty_cycles == (100.0, 0.0, 0.0)
    with GpioLeds(LedsConfig(common_anode=True)) as leds:
        leds.set((1.0, 0.0, 0.0))
        assert [gpio.levels[p][-1] for p in (17, 27, 22)] == [gpio.LOW, gpio.HIGH, gpio.HIGH]


def test_jetson_hardware_pwm_on_the_configured_pwm_pin(monkeypatch):
    gpio = install_jetson(monkeypatch)
    with GpioLeds(LedsConfig(hardware_pwm_pins=(22,))) as leds:
        leds.set((0.0, 1.0, 0.6))
        assert list(gpio.pwms) == [22] and gpio.pwms[22].duty == pytest.approx(31.85, abs=0.01)
        assert gpio.levels[27][-1] == gpio.HIGH and gpio.levels[17][-1] == gpio.LOW


@pytest.mark.parametrize("kw, reason", [({}, "Channel 17 is not a PWM"),
                                        ({"sysfs_writable": False}, "Read-only file system")])
def test_jetson_pwm_that_cannot_work_is_one_line(monkeypatch, kw, reason):
    gpio = install_jetson(monkeypatch, **kw)
    pins = (17,) if not kw else (22,)
    with pytest.raises(HardwareError) as err:
        GpioLeds(LedsConfig(hardware_pwm_pins=pins))
    text = str(err.value)
    assert "\n" not in text and reason in text and "Orin: BCM 12, 13, 22" in text
    assert ("cleanup", [17, 27, 22]) in gpio.calls


def test_auto_that_fails_to_open_falls_back_with_one_warning(monkeypatch, gpio_node, caplog):
    install_jetson(monkeypatch)
    cfg = config_from_dict({"leds": {"hardware_pwm_pins": [17]}}).leds
    with caplog.at_level(logging.INFO, logger="saysee.hardware"):
        with open_leds("auto", cfg) as leds:
            assert isinstance(leds, RecordingLeds)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not a PWM" in warnings[0] and "using sim" in warnings[0]
    with pytest.raises(HardwareError, match="not a PWM"):
        open_leds("real", cfg)


def test_jetson_hardware_pwm_under_a_read_only_sys_is_one_line_not_a_hang(monkeypatch):
    """Jetson.GPIO waits for ever for a pwmN/enable it can't write when the channel was left exported:
    a read-only /sys (the unit's ProtectKernelTunables=) is named before any PWM is created."""
    from device.hardware import leds as leds_mod
    from device.hardware.select import HardwareError

    gpio = install_jetson(monkeypatch)
    monkeypatch.setattr(leds_mod, "_read_only", lambda path: path == "/sys/class/pwm")
    with pytest.raises(HardwareError, match=r"/sys/class/pwm is read-only .*jetson-pwm.conf"):
        GpioLeds(LedsConfig(hardware_pwm_pins=(22,)))
    assert not gpio.pwms
    with GpioLeds(LedsConfig()) as leds:  # no hardware PWM asked for: on/off pins, /sys not needed
        leds.set((1.0, 0.0, 0.0))
