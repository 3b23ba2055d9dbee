"""A fake ``Jetson.GPIO``: the RPi.GPIO API of ``fakes.gpio`` with Jetson's PWM rules.

Read from NVIDIA/jetson-gpio ``lib/python/Jetson/GPIO/gpio.py``: the module has
``model`` and ``JETSON_INFO``; ``GPIO.PWM`` is *hardware* PWM only, and
``_channel_to_info(channel, need_pwm=True)`` raises ``ValueError("Channel %s is
not a PWM")`` for every other pin (Orin Nano/NX in BCM numbering: 12, 13, 22).
A PWM pin set up as an output is cleaned up first, then exported through
``/sys/class/pwm/.../export``, which under ``ProtectKernelTunables=`` is a
read-only file system (``sysfs_writable=False`` here).
"""

from __future__ import annotations

import errno
import types

from fakes import gpio as _gpio

ORIN_PWM_PINS = (12, 13, 22)  # BCM; gpio_pin_data.JETSON_ORIN_NX_PIN_DEFS rows with a pwm chip


def make_modules(*, model: str = "JETSON_ORIN_NANO", pwm_pins=ORIN_PWM_PINS, sysfs_writable: bool = True
                 ) -> tuple[types.ModuleType, types.ModuleType]:
    """(Jetson package, Jetson.GPIO module); the module records calls like ``fakes.gpio``."""
    _, GPIO = _gpio.make_modules()
    GPIO.__name__ = "Jetson.GPIO"
    GPIO.model = model
    GPIO.JETSON_INFO = {"P1_REVISION": 1, "RAM": "8192M", "REVISION": "Unknown", "TYPE": model}
    GPIO.RPI_INFO = GPIO.JETSON_INFO
    GPIO.pwm_pins = tuple(pwm_pins)
    base_cleanup = GPIO.cleanup

    class HardwarePWM(GPIO.PWM):
        """The RPi fake's PWM bookkeeping (start, ChangeDutyCycle, stop, duty) with Jetson's rules."""

        def __init__(self, channel, frequency_hz):
            if GPIO.getmode() is None:
                raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD), GPIO.setmode(GPIO.BCM), "
                                   "GPIO.setmode(GPIO.TEGRA_SOC) or GPIO.setmode(GPIO.CVM)")
            if channel not in GPIO.pwm_pins:
                raise ValueError("Channel %s is not a PWM" % str(channel))
            if channel in GPIO.outputs:  # "undo the GPIO export to allow HW PWM to run on the pin"
                base_cleanup(channel)
            if not sysfs_writable:
                raise OSError(errno.EROFS, "Read-only file system", "/sys/class/pwm/pwmchip0/export")
            GPIO.calls.append(("PWM", channel, frequency_hz))
            self.channel, self.frequency = channel, frequency_hz
            self.duty_history = []
            self.running = False
            GPIO.pwms[channel] = self

        def _duty(self, duty):
            if duty < 0.0 or duty > 100.0:
                raise ValueError("")
            self.duty_history.append(duty)

        def ChangeFrequency(self, frequency):
            self.frequency = frequency

    GPIO.PWM = HardwarePWM
    Jetson = types.ModuleType("Jetson")
    Jetson.__path__ = []
    Jetson.GPIO = GPIO
    return Jetson, GPIO
