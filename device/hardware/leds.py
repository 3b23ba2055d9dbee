"""One RGB LED: GPIO through the RPi.GPIO API (real) or a recorder (sim).

The real backend speaks only the ``RPi.GPIO`` API, which three libraries provide:
RPi.GPIO itself (Pi 4 and older), rpi-lgpio (Pi 5, where RPi.GPIO fails with
"Cannot determine SOC peripheral base address") and Jetson.GPIO (imported as
``Jetson.GPIO``, and as ``RPi.GPIO`` through its shim). They differ where it
matters on a box:

- rpi-lgpio imports ``lgpio``, whose C library creates a notification FIFO
  ``.lgd-nfy*`` in ``$LG_WD`` (else the current directory) *at import* and
  chdir()s there; under the unit the working directory is read-only, so
  ``LG_WD`` is pointed at a writable runtime folder before the import.
- Jetson.GPIO has no software PWM: ``GPIO.PWM`` is hardware PWM on a few pins
  (Orin: BCM 12, 13, 22) through ``/sys/class/pwm`` and raises ``ValueError``
  for any other pin. On a Jetson each pin is therefore switched on/off, except
  those listed in ``[leds] hardware_pwm_pins``.

The sim backend records every state change with a timestamp, like gpiozero's
MockPin, and its ``timeline()`` is what the demo writes out as the LED timeline.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import tempfile
import time
from collections import deque
from typing import Callable, NamedTuple, Sequence

from device.config import LedsConfig
from device.errors import ConfigError
from device.hardware.base import Leds
from device.hardware.select import HardwareError, Probe, check_import, check_path, one_line, open_chosen

log = logging.getLogger("saysee.hardware")

__all__ = ["open_leds", "probe", "GpioLeds", "RecordingLeds", "LedState", "lgpio_work_dir"]

GPIO_MODULES = ("RPi.GPIO", "Jetson.GPIO")  # same API; first that imports wins
GPIO_HINT = "add the user to the 'gpio' group"

JETSON_PWM_HINT = "Jetson hardware PWM exists only on a few pins (Orin: BCM 12, 13, 22)"


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


PWM_SYSFS = "/sys/class/pwm"  # where Jetson.GPIO exports hardware PWM channels


def _read_only(path: str) -> bool:
    """True when ``path`` is on a file system mounted read-only (systemd's ProtectKernelTunables= on /sys)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False  # no such path here: nothing to say


def is_jetson(gpio) -> bool:
    """True for Jetson.GPIO (also when imported through its ``RPi.GPIO`` shim)."""
    return getattr(gpio, "JETSON_INFO", None) is not None or str(getattr(gpio, "model", "")).startswith("JETSON")


class _PwmPin:
    """A pin driven by ``GPIO.PWM`` (software PWM on a Pi, hardware PWM on a Jetson)."""

    def __init__(self, gpio, pin: int, frequency: float, duty: float, common_anode: bool = False) -> None:
        self.pin = pin
        self._pwm = gpio.PWM(pin, frequency)
        self._pwm.start(duty)

    def drive(self, duty: float) -> None:
        self._pwm.ChangeDutyCycle(duty)

    def effective(self, duty: float) -> float:
        return duty

    def stop(self) -> None:
        self._pwm.stop()


class _OnOffPin:
    """A pin switched fully on or off with ``GPIO.output``: lit from ``ONOFF_THRESHOLD`` of full level."""

    def __init__(self, gpio, pin: int, frequency: float, duty: float, common_anode: bool = False) -> None:
        self.pin = pin
        self._gpio = gpio
        self._common_anode = common_anode
        self.drive(duty)

    def lit(self, duty: float) -> bool:
        level = (100.0 - duty if self._common_anode else duty) / 100.0
        return level >= ONOFF_THRESHOLD

    def effective(self, duty: float) -> float:
        """The duty this pin really has: 0 or 100 (after inversion)."""
        return 100.0 * (self.lit(duty) != self._common_anode)

    def drive(self, duty: float) -> None:
        high = self.lit(duty) != self._common_anode  # common anode: a lit pin is pulled low
        self._gpio.output(self.pin, self._gpio.HIGH if high else self._gpio.LOW)

    def stop(self) -> None:
        pass


def srgb_to_linear(c: float) -> float:
    """An sRGB channel (0..1, what the screen shows) as linear light: PWM duty is linear light, so without
    this an LED's hue drifts from the screen's (a class's orange became yellow-orange)."""
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


ONOFF_THRESHOLD = srgb_to_linear(0.5)  # on/off pins (Jetson without hardware PWM) light from half level (sRGB)


class GpioLeds(Leds):
    """An RGB LED on three GPIO pins (BCM numbering), configured by ``[leds]``.

    ``cfg.pins``: BCM pins of red, green, blue. ``cfg.pwm_hz``: PWM frequency
    (200 Hz is well above flicker and cheap for software PWM). ``cfg.common_anode``:
    the LED's shared leg goes to 3.3 V, so a pin pulls *low* to light it and the
    duty is inverted. ``cfg.gpio_module``: "" = RPi.GPIO (or rpi-lgpio) if it
    imports, else Jetson.GPIO. On a Jetson, pins not in ``cfg.hardware_pwm_pins``
    are on/off (lit from ``ONOFF_THRESHOLD``).
    """

    backend = "real"

    def __init__(self, cfg: LedsConfig = LedsConfig()) -> None:
        pins = tuple(int(p) for p in cfg.pins)
        if len(pins) != 3 or len(set(pins)) != 3:
            raise ConfigError(f"[leds] pins: expected three different BCM pin numbers, got {list(pins)}")
        extra = sorted(set(cfg.hardware_pwm_pins) - set(pins))
        if extra:
            raise ConfigError(f"[leds] hardware_pwm_pins: {extra} not among pins {list(pins)}")
        self.pins = pins
        self.frequency = float(cfg.pwm_hz)
        self.common_anode = bool(cfg.common_anode)
        self.gpio = import_gpio(cfg.gpio_module or None)
        self.is_jetson = is_jetson(self.gpio)
        self._drivers: list = []
        self._kinds: list = []
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
            if self.is_jetson and cfg.hardware_pwm_pins and _read_only(PWM_SYSFS):
                # Jetson.GPIO would wait for ever for a pwmN/enable it can't write (a channel left exported
                # by an earlier run) or fail with EROFS: say why now (bootstrap.sh writes the drop-in).
                raise HardwareError(f"leds: {PWM_SYSFS} is read-only for this process, and Jetson hardware PWM "
                                    "writes it: install systemd/bootstrap.sh's saysee.service.d/jetson-pwm.conf "
                                    "(ProtectKernelTunables=no), or empty [leds] hardware_pwm_pins (on/off LEDs)")
            for pin in pins:
                GPIO.setup(pin, GPIO.OUT, initial=GPIO.HIGH if self.common_anode else GPIO.LOW)
                pwm = not self.is_jetson or pin in cfg.hardware_pwm_pins
                self._drivers.append((_PwmPin if pwm else _OnOffPin)(GPIO, pin, self.frequency, off, self.common_anode))
            self._duty = [off, off, off]
            self._kinds = list(self._drivers)  # kept after close() for duty_cycles
        except HardwareError:
            self._release()
            raise
        except Exception as e:  # noqa: BLE001 - RuntimeError/ValueError/OSError from the library, one line
            self._release()
            text = one_line(e)
            if "peripheral base address" in text:
                text += " (on a Pi 5 install rpi-lgpio instead of RPi.GPIO)"
            if self.is_jetson:
                text += f" ({JETSON_PWM_HINT}; it needs a writable /sys/class/pwm; list only such pins in " \
                        "[leds] hardware_pwm_pins, the others are switched on/off)"
            raise HardwareError(f"leds: GPIO setup of pins {list(pins)} failed: {text}") from None
        if self.is_jetson:
            onoff = [p for p in pins if p not in cfg.hardware_pwm_pins]
            if onoff:
                log.info("leds: Jetson.GPIO has no software PWM; pins %s switch on/off", onoff)

    def _level_duty(self, level: float) -> float:
        duty = 100.0 * level
        return 100.0 - duty if self.common_anode else duty

    def set(self, rgb: tuple[float, float, float], brightness: float = 1.0) -> None:
        """Show ``rgb`` (0..1 sRGB each, as the screen draws it) at ``brightness`` (0..1):
        duty = 100 * linear light of the colour * brightness."""
        if self.is_closed:
            raise RuntimeError("leds: set() after close()")
        self.rgb, self.brightness = _check_colour(rgb, brightness)
        for i, c in enumerate(self.rgb):
            duty = self._level_duty(srgb_to_linear(c) * self.brightness)
            if duty != self._duty[i]:  # skip redundant calls: each one costs a syscall path
                self._drivers[i].drive(duty)
                self._duty[i] = duty

    @property
    def duty_cycles(self) -> tuple[float, float, float]:
        """Current duty (0..100) of the red, green, blue pins, after inversion; on/off pins: 0 or 100."""
        return tuple(drv.effective(d) for drv, d in zip(self._kinds, self._duty))  # type: ignore[return-value]

    def _release(self) -> None:
        for drv in self._drivers:
            try:
                drv.stop()
            except Exception:  # noqa: BLE001
                pass
        self._drivers = []
        try:
            # Only our pins: other code in the process may own other GPIOs.
            self.gpio.cleanup(list(self.pins))
        except Exception as e:  # noqa: BLE001
            log.warning("leds: GPIO cleanup failed: %s", one_line(e))

    def _close(self) -> None:
        try:
            for drv in self._drivers:
                drv.drive(self._level_duty(0.0))
        except Exception:  # noqa: BLE001
            pass
        self._release()


class LedState(NamedTuple):
    """One recorded LED state: ``t`` seconds since the LEDs were opened."""

    t: float
    rgb: tuple[float, float, float]
    brightness: float


# The newest LED states the sim keeps (about 4 MB). "auto" falls back to the sim on a box whose GPIO
# won't open, where [continuous] changes the LED every 50 ms hop: an unbounded record would take the
# box's memory within days (~190 MB a day). Demo and bench runs stay far below this.
MAX_RECORDED_STATES = 20_000


class RecordingLeds(Leds):
    """Sim LEDs: record every state change with a timestamp (like gpiozero's MockPin).

    The first entry is the initial "off" state at t=0. Setting the same state
    again records nothing. Only the newest ``max_states`` are kept (the oldest
    go first). ``clock`` is injectable for tests.
    """

    backend = "sim"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_states: int = MAX_RECORDED_STATES) -> None:
        self._clock = clock
        self._t0 = clock()
        self.rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.brightness = 0.0
        self._states: deque[LedState] = deque([LedState(0.0, self.rgb, 0.0)], maxlen=max_states)

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
        self._states = deque([LedState(self._clock() - self._t0, self.rgb, self.brightness)],
                             maxlen=self._states.maxlen)

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


def lgpio_work_dir() -> str:
    """A writable folder for lgpio's FIFO: $LG_WD if set, else $RUNTIME_DIRECTORY, /run/saysee, the temp dir.

    The unit's working directory is read-only (ProtectSystem=strict) and systemd
    hands the service its RuntimeDirectory= in $RUNTIME_DIRECTORY (a
    colon-separated list when there are several).
    """
    if os.environ.get("LG_WD"):
        return os.environ["LG_WD"]
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    for folder in (runtime, "/run/saysee"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            return folder
    return tempfile.gettempdir()


def _import_module(module: str) -> tuple[bool, str, object]:
    # rpi-lgpio imports lgpio, which makes its FIFO in LG_WD at import and then
    # chdir()s the whole process there: set it first, and never to a relative path.
    os.environ["LG_WD"] = os.path.abspath(lgpio_work_dir())
    ok, why, mod = check_import(module)
    if not ok and ".lgd-nfy" in why:
        why += f" (lgpio could not create its FIFO in LG_WD={os.environ['LG_WD']}: make it writable)"
    return ok, why, mod


def import_gpio(name: str | None):
    """The RPi.GPIO-API module to use (``name``, else the first of GPIO_MODULES that imports), with
    lgpio's FIFO pointed at a writable LG_WD; one HardwareError line when none imports."""
    names = (name,) if name else GPIO_MODULES
    reasons = []
    for module in names:
        ok, why, mod = _import_module(module)
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
        ok, why, mod = _import_module(module)
        if ok:
            kind = "on/off or hardware PWM (Jetson)" if is_jetson(mod) else "software PWM"
            return True, f"{module} with {accessible[0]}, {kind}"
        reasons.append(why)
    return False, "; ".join(reasons)


def probe(cfg: LedsConfig = LedsConfig()) -> list[Probe]:
    """[(backend, usable, why)] for `python -m device check`, for the ``[leds]`` section given."""
    usable, why = _probe_real(cfg.gpio_module or None)
    return [("real", usable, why), ("sim", True, "records LED states with timestamps")]


def open_leds(backend: str | None = None, cfg: LedsConfig | None = None, *,
              clock: Callable[[], float] = time.monotonic) -> Leds:
    """Open the RGB LED: ``backend`` "auto" | "real" (RPi.GPIO API) | "sim" (recorder).

    ``cfg`` is the ``[leds]`` section (None: the defaults); ``backend`` None means
    ``cfg.backend``; ``clock`` times the sim's recorded states. "auto" uses the
    sim when no GPIO is usable here *or* the real LED fails to open (one
    warning); "real" raises a one-line HardwareError instead.
    """
    cfg = cfg if cfg is not None else LedsConfig()
    return open_chosen(
        "leds", cfg.backend if backend is None else backend, lambda: _probe_real(cfg.gpio_module or None),
        lambda: GpioLeds(cfg), lambda: RecordingLeds(clock=clock), sim_why="recorded LED timeline",
    )
