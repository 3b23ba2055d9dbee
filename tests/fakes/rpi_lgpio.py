"""Install the on-disk fake rpi-lgpio (``tests/fakes/lgpio_site``) so ``import RPi.GPIO`` really runs.

The real import order matters here (``RPi.GPIO`` imports ``lgpio``, which makes
its FIFO at import), so these fakes are files on ``sys.path``, not module
objects dropped into ``sys.modules``.
"""

from __future__ import annotations

import sys
from pathlib import Path

SITE = Path(__file__).with_name("lgpio_site")
MODULES = ("lgpio", "RPi", "RPi.GPIO")


def install(monkeypatch) -> None:
    """Put the fakes first on sys.path; every import after this executes them afresh."""
    monkeypatch.syspath_prepend(str(SITE))
    for name in MODULES:
        # setitem records "absent" so teardown removes what the test imported.
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
