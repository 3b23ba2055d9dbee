"""Fake rpi-lgpio package (``RPi``), importable from tests/fakes/lgpio_site."""
