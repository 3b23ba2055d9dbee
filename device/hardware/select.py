"""Choosing a backend once, at the edge, and saying why (like gpiozero's pin factories).

Every ``open_<kind>(backend, cfg)`` goes through ``choose_backend``:
``"sim"`` always works, ``"real"`` raises a one-line ``HardwareError`` when the
real backend can't be used, and ``"auto"`` takes the real one when its library
imports *and* its device is present, else the simulated one. Each choice is
logged as one line on the ``saysee.hardware`` logger. ``open_chosen`` then opens
it, and an "auto" real backend that still fails to open falls back to the sim
with one warning, so a service runs on instead of crash-looping.

``probe()`` functions return ``Probe`` tuples ``(backend, usable, why)`` that
``python -m device check`` prints.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any, Callable, Iterable

from device.config import BACKENDS
from device.errors import ConfigError, SaySeeError

log = logging.getLogger("saysee.hardware")

Probe = tuple[str, bool, str]  # (backend, usable, why)


class HardwareError(SaySeeError):
    """A requested hardware backend can't be used here; the message is one line saying why."""


def choose_backend(
    kind: str,
    backend: str,
    probe_real: Callable[[], tuple[bool, str]],
    *,
    extra: Iterable[str] = (),
    sim_why: str = "simulated",
) -> str:
    """Return "real", "sim" (or one of ``extra``) for ``backend``; log one line.

    ``probe_real()`` -> (usable, why) is only called for "auto" and "real".
    """
    allowed = BACKENDS + tuple(extra)
    choice = normalise(backend)
    if choice not in allowed:
        raise ConfigError(f"[{kind}] backend: expected one of {', '.join(allowed)}; got {backend!r}")
    if choice not in ("auto", "real"):
        log.info("%s: %s backend (requested: %s)", kind, choice, sim_why if choice == "sim" else choice)
        return choice
    usable, why = probe_real()
    if choice == "real":
        if not usable:
            raise HardwareError(f"{kind}: real backend requested but unusable: {why}")
        log.info("%s: real backend (requested: %s)", kind, why)
        return "real"
    if usable:
        log.info("%s: real backend (auto: %s)", kind, why)
        return "real"
    log.info("%s: sim backend (auto: real unusable: %s; using %s)", kind, why, sim_why)
    return "sim"


def open_chosen(
    kind: str,
    backend: str,
    probe_real: Callable[[], tuple[bool, str]],
    make_real: Callable[[], Any],
    make_sim: Callable[[], Any],
    *,
    sim_why: str = "simulated",
) -> Any:
    """Choose with ``choose_backend`` and open; an "auto" real backend that fails to open falls back.

    A probe can only look (library imports, device node exists); opening can still
    fail (a pin without PWM, a busy camera, an SDL without the screen's driver).
    "auto" then logs one warning and opens the sim backend, so a service keeps
    running instead of crash-looping; "real" raises the one-line HardwareError.
    """
    choice = choose_backend(kind, backend, probe_real, sim_why=sim_why)
    if choice == "real":
        try:
            return make_real()
        except HardwareError as e:
            if normalise(backend) != "auto":
                raise
            log.warning("%s: real backend failed to open (%s); using sim (%s)", kind, one_line(e), sim_why)
    return make_sim()


def normalise(backend: str | None) -> str:
    """A backend name as ``choose_backend`` compares it."""
    return str(backend).strip().lower() if backend is not None else "auto"


def check_import(module: str, hint: str = "") -> tuple[bool, str, Any]:
    """Import ``module`` lazily: (ok, why, module or None). Any import-time failure counts.

    Hardware libraries fail in odd ways off their board (RPi.GPIO raises
    RuntimeError on a PC, picamera2 fails inside libcamera), so everything is caught.
    """
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None) or module
        why = f"{module} not installed" if missing == module else f"{module} can't import {missing}"
        return False, why + (f" ({hint})" if hint else ""), None
    except Exception as e:  # noqa: BLE001 - report, don't crash `check`
        return False, f"{module} fails to import: {one_line(e)}", None
    return True, f"{module} imports", mod


def check_path(path: str, what: str, *, write: bool = True, hint: str = "") -> tuple[bool, str]:
    """Is a device node present and accessible? (ok, why) naming the node."""
    if not os.path.exists(path):
        return False, f"{what} {path} absent"
    mode = os.R_OK | (os.W_OK if write else 0)
    if not os.access(path, mode):
        return False, f"{what} {path}: permission denied" + (f" ({hint})" if hint else "")
    return True, f"{what} {path}"


def one_line(exc: BaseException | str) -> str:
    """An exception as one short line (hardware libraries like multi-line messages)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:300]
