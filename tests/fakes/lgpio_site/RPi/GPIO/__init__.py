"""Fake rpi-lgpio ``RPi.GPIO``: imports ``lgpio`` first, as waveform80/rpi-lgpio does, then the fake API.

Everything else is ``fakes.gpio``'s recording RPi.GPIO API, so tests read
``calls``/``pwms`` from this module as from the in-memory fake.
"""

import lgpio  # noqa: F401 - at import, exactly like the real RPi/GPIO/__init__.py

from fakes import gpio as _gpio

_rpi, _api = _gpio.make_modules()
globals().update({k: v for k, v in vars(_api).items() if not k.startswith("__")})
