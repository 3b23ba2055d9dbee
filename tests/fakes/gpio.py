"""A fake ``RPi.GPIO`` (also the Jetson.GPIO / rpi-lgpio API) that records every call.

``make_modules()`` returns ``(RPi package, RPi.GPIO module)``; install both in
``sys.modules``. ``GPIO.calls`` lists ``(function, args...)`` in order and each
``GPIO.pwms[pin]`` keeps its duty-cycle history; ``GPIO.levels[pin]`` the
history of ``output()`` levels. Misuse raises the same errors
as the real library (no numbering mode set, PWM on a pin that is not an output,
duty outside 0..100).
"""

from __future__ import annotations

import types

BCM, BOARD = 11, 10
OUT, IN = 0, 1
LOW, HIGH = 0, 1


def make_modules(*, preset_mode: int | None = None) -> tuple[types.ModuleType, types.ModuleType]:
    """(RPi package, RPi.GPIO module), fresh state each call."""
    GPIO = types.ModuleType("RPi.GPIO")
    GPIO.__file__ = __file__
    GPIO.BCM, GPIO.BOARD, GPIO.OUT, GPIO.IN, GPIO.LOW, GPIO.HIGH = BCM, BOARD, OUT, IN, LOW, HIGH
    GPIO.calls = []
    GPIO.pwms = {}  # pin -> FakePWM (latest)
    GPIO.outputs = {}  # pin -> initial level of set-up outputs
    GPIO.levels = {}  # pin -> [levels written with output()]
    state = {"mode": preset_mode}

    def setwarnings(flag):
        GPIO.calls.append(("setwarnings", flag))

    def setmode(mode):
        GPIO.calls.append(("setmode", mode))
        if state["mode"] is not None and state["mode"] != mode:
            raise ValueError("A different mode has already been set!")
        state["mode"] = mode

    def getmode():
        return state["mode"]

    def setup(channel, direction, initial=-1, pull_up_down=None):
        GPIO.calls.append(("setup", channel, direction, initial))
        if state["mode"] is None:
            raise RuntimeError(
                "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)"
            )
        for ch in channel if isinstance(channel, (list, tuple)) else [channel]:
            if direction == OUT:
                GPIO.outputs[ch] = initial

    def output(channel, value):
        GPIO.calls.append(("output", channel, value))
        if channel not in GPIO.outputs:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        GPIO.levels.setdefault(channel, []).append(HIGH if value else LOW)

    class FakePWM:
        def __init__(self, channel, frequency):
            if channel not in GPIO.outputs:
                raise RuntimeError("You must setup() the GPIO channel as an output first")
            GPIO.calls.append(("PWM", channel, frequency))
            self.channel, self.frequency = channel, frequency
            self.duty_history = []
            self.running = False
            GPIO.pwms[channel] = self

        def _duty(self, duty):
            if not 0.0 <= duty <= 100.0:
                raise ValueError("dutycycle must have a value from 0.0 to 100.0")
            self.duty_history.append(duty)

        @property
        def duty(self):
            return self.duty_history[-1] if self.duty_history else None

        def start(self, duty):
            GPIO.calls.append(("start", self.channel, duty))
            self._duty(duty)
            self.running = True

        def ChangeDutyCycle(self, duty):
            GPIO.calls.append(("ChangeDutyCycle", self.channel, duty))
            self._duty(duty)

        def ChangeFrequency(self, frequency):
            GPIO.calls.append(("ChangeFrequency", self.channel, frequency))
            self.frequency = frequency

        def stop(self):
            GPIO.calls.append(("stop", self.channel))
            self.running = False

    def cleanup(channel=None):
        GPIO.calls.append(("cleanup", channel))
        if channel is None:
            channels = list(GPIO.outputs)
        else:
            channels = list(channel) if isinstance(channel, (list, tuple)) else [channel]
        for ch in channels:
            GPIO.outputs.pop(ch, None)
        if channel is None or not GPIO.outputs:
            state["mode"] = None

    GPIO.setwarnings, GPIO.setmode, GPIO.getmode, GPIO.setup = setwarnings, setmode, getmode, setup
    GPIO.PWM, GPIO.cleanup, GPIO.output = FakePWM, cleanup, output

    RPi = types.ModuleType("RPi")
    RPi.__path__ = []  # a package, so "import RPi.GPIO" resolves through sys.modules
    RPi.GPIO = GPIO
    return RPi, GPIO
