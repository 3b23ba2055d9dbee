"""Fake hardware libraries (pyaudio, RPi.GPIO, picamera2) for driving the real backends in tests.

Each module has a ``make_module(...)`` factory returning a fresh module object,
so tests install it with ``monkeypatch.setitem(sys.modules, ...)`` (see
``tests/conftest.py``) and no state leaks between tests.
"""
