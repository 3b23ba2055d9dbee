"""Shared fixtures. Fakes of hardware libraries live in tests/fakes/."""

from __future__ import annotations

import sys

import pytest

from fakes import gpio as _gpio
from fakes import picamera2 as _picamera2
from fakes import pyaudio as _pyaudio


@pytest.fixture
def fake_pyaudio(monkeypatch):
    """Install a fake ``pyaudio``: ``mod = fake_pyaudio(FakeDevice(...), ...)``."""

    def install(*devices, **kwargs):
        mod = _pyaudio.make_module(*devices, **kwargs)
        monkeypatch.setitem(sys.modules, "pyaudio", mod)
        return mod

    return install


@pytest.fixture
def fake_gpio(monkeypatch):
    """Install a fake ``RPi.GPIO`` and return it (calls recorded in ``GPIO.calls``)."""
    rpi, gpio = _gpio.make_modules()
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    return gpio


@pytest.fixture
def fake_picamera2(monkeypatch):
    """Install a fake ``picamera2`` with one camera and return the module."""
    mod = _picamera2.make_module()
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return mod
