"""One RGB LED: software PWM through the RPi.GPIO API (real) or a recorder (sim).

The real backend speaks only the ``RPi.GPIO`` API, which three libraries provide:
RPi.GPIO itself (Pi 4 and older), rpi-lgpio (Pi 5, where RPi.GPIO fails with
"Cannot determine SOC peripheral base address") and Jetson.GPIO (imported as
``Jetson.GPIO`` but the same calls). The sim backend records every state change
with a timestamp, like gpiozero's MockPin, and its ``timeline()`` is what the demo
writes out as the LED timeline.
"""

from __future__ import annotations

import glob
import logging
import math
import time
from typing import Callable, NamedTuple, Sequence

from device.errors import ConfigError
from device.hardware.base import Leds
from device.hardware.select import HardwareError, Probe, check_import, check_path, choose_backend, one_line, split_options

log = logging.getLogger("saysee.hardware")

__all__ = ["open_leds", "probe", "GpioLeds", "RecordingLeds", "LedState"]

DEFAULT_PINS = (17, 27, 22)  # BCM numbers of the red, green and blue legs
GPIO_MODULES = ("RPi.GPIO", "Jetson.GPIO")  # same API; first that imports wins
GPIO_HINT = "add the user to the 'gpio' group"


def _check_colour(rgb, brightness) -> tuple[tuple[float, float, float], float]:
    """Validate and normalise a colour (three 0..1 floats) and a 0..1 brightness."""
    try:
        r, g, b = (float(c) for c in rgb)
        level = float(brightness)
    except (TypeError, ValueError):
        raise ValueError(
            f"LED colour must be three numbers 0..1 and brightness a number, got {rgb!r}, {brightness!r}"
        ) from None
    for v in (r, g, b, level):
        if not (0.0 <= v <= 1.0) or math.isnan(v):
            raise ValueError(f"LED values must be within 0..1, got rgb={rgb!r} brightness={brightness!r}")
    return (r, g, b), level


class GpioLeds(Leds):
    """An RGB LED on three GPIO pins (BCM numbering) driven by software PWM.

    ``pins``: BCM pins of red, green, blue. ``frequency``: PWM Hz (200 is well
    above flicker and cheap for software PWM). ``common_anode``: the LED's shared
    leg goes to 3.3 V, so a pin pulls *low* to light it and the duty is inverted.
    ``gpio_module``: module name to import ("RPi.GPIO" or "Jetson.GPIO"; default:
    the first that imports).
    """

    backend = "real"

    def __init__(
        self,
        pins: Sequence[int] = DEFAULT_PINS,
        *,
        frequency: float = 200.0,
        common_anode: bool = False,
        gpio_module: str | None = None,
    ) -> None:
        pins = tuple(int(p) for p in pins)
        if len(pins) != 3 or len(set(pins)) != 3:
            raise ConfigError(f"[leds] pins: expected three different BCM pin numbers, got {list(pins)}")
        if float(frequency) <= 0:
            raise ConfigError(f"[leds] frequency: expected a positive number of Hz, got {frequency!r}")
        self.pins = pins
        self.frequency = float(frequency)
        self.common_anode = bool(common_anode)
        self.gpio = _import_gpio(gpio_module)
        self._pwms: list = []
        self._duty = [None, None, None]
        self.rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.brightness = 0.0
        GPIO = self.gpio
        try:
            # Another library (or an earlier run in this process) may have chosen
            # BOARD numbering; mixing would drive the wrong pins, so refuse.
            mode = GPIO.getmode() if hasattr(GPIO, "getmode") else None
            if mode not in (None, GPIO.BCM):
                raise HardwareError("leds: GPIO numbering already set to BOARD by other code; expected BCM")
            GPIO.setwarnings(False)  # "channel already in use" after an unclean exit is expected
            GPIO.setmode(GPIO.BCM)
            off = self._level_duty(0.0)
            for pin in pins:
                GPIO.setup(pin, GPIO.OUT, initial=GPIO.HIGH if self.common_anode else GPIO.LOW)
                pwm = GPIO.PWM(pin, self.frequency)
                pwm.start(off)
                self._pwms.append(pwm)
            self._duty = [off, off, off]
        except HardwareError:
            self._release()
            raise
        except Exception as e:  # noqa: BLE001 - RuntimeError from the library, one line to the user
            self._release()
            text = one_line(e)
            if "peripheral base address" in text:
                text += " (on a Pi 5 install rpi-lgpio instead of RPi.GPIO)"
            raise HardwareError(f"leds: GPIO setup of pins {list(pins)} failed: {text}") from None

    def _level_duty(self, level: float) -> float:
        duty = 100.0 * level
        return 100.0 - duty if self.common_anode else duty

    def set(self, rgb: tuple[float, float, float], brightness: float = 1.0) -> None:
        """Show ``rgb`` (0..1 each) at ``brightness`` (0..1): duty = 100 * colour * brightness."""
        if self.is_closed:
            raise RuntimeError("leds: set() after close()")
        self.rgb, self.brightness = _check_colour(rgb, brightness)
        for i, c in enumerate(self.rgb):
            duty = self._level_duty(c * self.brightness)
            if duty != self._duty[i]:  # skip redundant calls: each one costs a syscall path
                self._pwms[i].ChangeDutyCycle(duty)
                self._duty[i] = duty

    @property
    def duty_cycles(self) -> tuple[float, float, float]:
        """Current PWM duty (0..100) of the red, green, blue pins, after inversion."""
        return tuple(self._duty)  # type: ignore[return-value]

    def _release(self) -> None:
        for pwm in self._pwms:
            try:
                pwm.stop()
            except Exception:  # noqa: BLE001
                pass
        self._pwms = []
        try:
            # Only our pins: other code in the process may own other GPIOs.
            self.gpio.cleanup(list(self.pins))
        except Exception as e:  # noqa: BLE001
            log.warning("leds: GPIO cleanup failed: %s", one_line(e))

    def _close(self) -> None:
        try:
            for pwm in self._pwms:
                pwm.ChangeDutyCycle(self._level_duty(0.0))
        except Exception:  # noqa: BLE001
            pass
        self._release()


class LedState(NamedTuple):
    """One recorded LED state: ``t`` seconds since the LEDs were opened."""

    t: float
    rgb: tuple[float, float, float]
    brightness: float


class RecordingLeds(Leds):
    """Sim LEDs: record every state change with a timestamp (like gpiozero's MockPin).

    The first entry is the initial "off" state at t=0. Setting the same state
    again records nothing. ``clock`` is injectable for tests.
    """

    backend = "sim"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self.rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.brightness = 0.0
        self._states: list[LedState] = [LedState(0.0, self.rgb, 0.0)]

    def set(self, rgb: tuple[float, float, float], brightness: float = 1.0) -> None:
        if self.is_closed:
            raise RuntimeError("leds: set() after close()")
        rgb, level = _check_colour(rgb, brightness)
        if (rgb, level) == (self.rgb, self.brightness):
            return
        self.rgb, self.brightness = rgb, level
        self._states.append(LedState(self._clock() - self._t0, rgb, level))

    def timeline(self) -> list[LedState]:
        """Every recorded state, oldest first (a copy)."""
        return list(self._states)

    def clear_states(self) -> None:
        """Forget the history, keeping the current state as the first entry."""
        self._states = [LedState(self._clock() - self._t0, self.rgb, self.brightness)]

    def assert_states(self, expected: Sequence, *, tolerance: float = 1e-6) -> None:
        """Assert the recorded (rgb, brightness) sequence, ignoring times.

        Entries of ``expected`` are (rgb, brightness) pairs or bare rgb triples
        (brightness 1). Raises AssertionError showing both sequences on mismatch.
        """
        got = [(s.rgb, s.brightness) for s in self._states]
        want = [
            (tuple(e[0]), float(e[1])) if len(e) == 2 else (tuple(float(c) for c in e), 1.0) for e in expected
        ]
        same = len(got) == len(want) and all(
            abs(gb - wb) <= tolerance and all(abs(g - w) <= tolerance for g, w in zip(gc, wc))
            for (gc, gb), (wc, wb) in zip(got, want)
        )
        if not same:
            raise AssertionError(f"LED states differ:\n  got      {got}\n  expected {want}")

    def _close(self) -> None:
        # Record the LED going dark at shutdown, as the real one does.
        if (self.rgb, self.brightness) != ((0.0, 0.0, 0.0), 0.0):
            self.rgb, self.brightness = (0.0, 0.0, 0.0), 0.0
            self._states.append(LedState(self._clock() - self._t0, self.rgb, 0.0))


# --------------------------------------------------------------------- choice


def _import_gpio(name: str | None):
    names = (name,) if name else GPIO_MODULES
    reasons = []
    for module in names:
        ok, why, mod = check_import(module)
        if ok:
            return mod
        reasons.append(why)
    raise HardwareError(f"leds: {'; '.join(reasons)} (install rpi-lgpio on a Pi 5, RPi.GPIO on older Pis)")


def _gpio_nodes() -> list[str]:
    return sorted(glob.glob("/dev/gpiomem*")) + sorted(glob.glob("/dev/gpiochip*"))


def _probe_real(gpio_module: str | None = None) -> tuple[bool, str]:
    nodes = _gpio_nodes()
    if not nodes:
        return False, "no GPIO device node (/dev/gpiomem*, /dev/gpiochip*) on this machine"
    # Device node first: importing RPi.GPIO off a Pi raises, and there is no point trying.
    accessible = [n for n in nodes if check_path(n, "GPIO node")[0]]
    if not accessible:
        return False, check_path(nodes[0], "GPIO node", hint=GPIO_HINT)[1]
    reasons = []
    for module in (gpio_module,) if gpio_module else GPIO_MODULES:
        ok, why, _ = check_import(module)
        if ok:
            return True, f"{module} with {accessible[0]}"
        reasons.append(why)
    return False, "; ".join(reasons)


def probe(**options) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`; takes open_leds' options."""
    usable, why = _probe_real(options.get("gpio_module"))
    return [("real", usable, why), ("sim", True, "records LED states with timestamps")]


def open_leds(backend: str = "auto", **options) -> Leds:
    """Open the RGB LED: ``backend`` "auto" | "real" (RPi.GPIO API) | "sim" (recorder).

    Options: real ``pins`` ([17, 27, 22] BCM red/green/blue), ``frequency`` (200 Hz),
    ``common_anode`` (False), ``gpio_module`` (None: RPi.GPIO then Jetson.GPIO).
    """
    opts = split_options("leds", options, real=GpioLeds, sim=RecordingLeds)
    choice = choose_backend(
        "leds", backend, lambda: _probe_real(opts["real"].get("gpio_module")), sim_why="recorded LED timeline"
    )
    if choice == "real":
        return GpioLeds(**opts["real"])
    return RecordingLeds(**opts["sim"])
