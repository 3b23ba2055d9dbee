#!/usr/bin/env python3
"""The box side of a Say-and-See deploy: install a release, switch to it, prove it healthy, or roll back.

Runs *on the box*, from the uploaded release folder, started over ssh by the
workstation's ``systemd/deploy.py``::

    box_release.py activate --incoming .incoming-<version> --version <version> [--manifest-sha256 H]
    box_release.py rollback          # back to the previous good release, by hand
    box_release.py health            # one look, for a person at the box

``activate``:

1. verifies every file against ``manifest.json`` and renames the upload to
   ``/opt/saysee/releases/<version>``;
2. builds ``venv`` (``--system-site-packages``: numpy, picamera2, pygame, the
   GPIO library come from apt) and installs the release's own wheels offline,
   hash-checked (``pip install --no-index --no-deps --require-hashes``): every
   box of a release runs the same bytes, whatever the package index serves today;
3. installs config, unit and udev rule, flips ``/opt/saysee/current`` and
   restarts the service;
4. health: the unit must stay active, with the same main PID and no new
   automatic restart (``NRestarts``), for 2×``WatchdogSec`` + ``RestartSec``
   (read from systemd, so a drop-in counts) **and** the app's status file must
   show inference progress (its counters of processed audio hops / camera
   frames grow between two reads). A crash loop or a deaf box fails it;
5. on any failure after the switch (a ``systemctl restart`` that fails
   included) it switches back to the last good release. ``previous`` only ever
   points at a release that passed this check (marked ``GOOD``); a failed one is
   marked ``FAILED`` and pruned first.

The last line on stdout is a ``SAYSEE-RESULT {json}`` record the workstation
parses; every other line is progress, one per step.

Every absolute path can be redirected under ``--root`` (tests run the whole
thing in a temp dir with a fake ``systemctl``). Only the standard library is
used: this runs before the project's package is installed, with the box's
``python3`` (3.8+ so it can at least say clearly when a box is too old).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

# --- the layout on the box (the unit file refers to these; tests check they agree) ---
SERVICE = "saysee"
SERVICE_USER = "saysee"
INSTALL_DIR = "/opt/saysee"
CONFIG_PATH = "/etc/saysee/config.toml"
UNIT_PATH = "/etc/systemd/system/saysee.service"
UDEV_RULE_PATH = "/etc/udev/rules.d/99-saysee.rules"
STATUS_PATH = "/run/saysee/status.json"
KEEP_RELEASES = 3

# Inside a release folder.
MANIFEST = "manifest.json"
REL_CONFIG = "config/config.toml"
REL_UNIT = "systemd/saysee.service"
REL_UDEV = "systemd/99-saysee.rules"
REL_BOOTSTRAP = "systemd/bootstrap.sh"
REL_SELF = "systemd/box_release.py"
REL_WHEELS = "wheels"
REQUIREMENTS = "requirements.txt"  # inside wheels/<platform tag>/: every wheel pinned with its sha256
FAILED_MARK = "FAILED"
GOOD_MARK = "GOOD"
# Written before ``current`` moves to a release, replaced by GOOD or FAILED when its check ends: a release
# still PENDING was cut off mid-check (power, a dropped session) and is never a rollback target.
PENDING_MARK = "PENDING"
RESULT_TAG = "SAYSEE-RESULT "

# Status-file counters (device/runtime/app.py, App.status_dict) that only grow when
# the app really processed input: audio hops through the sound pipeline, camera
# windows through the marimba pipeline. Uptime or a status rewrite is not
# progress (a stalled mic still rewrites it; the app then says state "stalled").
PROGRESS_COUNTERS = ("sound_windows", "marimba_windows")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CHECKSUM, EXIT_ROLLED_BACK, EXIT_INSTALL = 3, 4, 5

# Health-check timings; the watchdog and restart delays themselves come from the unit.
START_TIMEOUT_S = 90.0  # = the unit's TimeoutStartSec: first model load on a Pi 3 is slow
# A start may ask systemd for more time (EXTEND_TIMEOUT_USEC): after a model update the app recomputes
# each taught sound before READY=1, asking RECOMPUTE_EXTEND_S (30 s) for each of up to [teach] max_sounds
# (100). While the new process is still starting, systemd enforces its own (extended) timeout; the check
# waits up to this much longer (tests/test_deploy.py holds it to those two values).
MAX_START_EXTENSION_S = 100 * 30.0
POLL_S = 0.5
STATUS_MAX_AGE_S = 15.0


class DeployError(Exception):
    """A problem the user must fix; printed as one line naming the host or file."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


_session_gone = False


def say(msg: str) -> None:
    """Progress for the workstation; once its ssh session is gone, the deploy goes on without it."""
    global _session_gone
    if _session_gone:
        return
    try:
        print(msg, flush=True)
    except (BrokenPipeError, OSError):
        # A dropped connection must not stop an activation halfway: it still has to check the new
        # release, mark it and roll back if it is bad. Nothing reads stdout any more.
        _session_gone = True
        with contextlib.suppress(OSError, AttributeError, ValueError):  # (a stdout without a descriptor)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rooted(root: "str | os.PathLike[str]", path: str) -> Path:
    """``path`` (absolute, as on a real box) redirected under ``root``."""
    return Path(root) / path.lstrip("/")


JETSON_MARK = "/etc/nv_tegra_release"  # present on every JetPack install


def platform_tag(pyver: Optional[str] = None, machine: Optional[str] = None, jetson: Optional[bool] = None) -> str:
    """``cp311-aarch64`` (``-jetson`` appended on JetPack): which of a release's wheel sets this box installs.

    The workstation computes the same tag from the box's probe answer. A Jetson
    gets its own set because JetPack's OpenCV (built with GStreamer) must not be
    shadowed by a pip wheel.
    """
    pyver = pyver or "%d.%d" % sys.version_info[:2]
    machine = machine or platform.machine()
    if jetson is None:
        jetson = os.path.exists(JETSON_MARK)
    return "cp%s-%s%s" % (pyver.replace(".", ""), machine, "-jetson" if jetson else "")


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def install_file(src: Path, dst: Path, mode: int = 0o644) -> bool:
    """Copy atomically (temp, fsync, rename, fsync dir) if the content differs; True if it changed.

    The one atomic-write helper of systemd/: device/atomic.py does the same for
    the package, but this file runs where that package is not installed yet.
    """
    return install_bytes(src.read_bytes(), dst, mode)


def install_bytes(data: bytes, dst: Path, mode: int = 0o644) -> bool:
    """``install_file`` for content in hand."""
    if dst.is_file() and dst.read_bytes() == data:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(".%s.tmp-%d" % (dst.name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)
    return True


def last_line(data: "bytes | str") -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def result(outcome: str, **fields) -> None:
    say(RESULT_TAG + json.dumps(dict(result=outcome, **fields)))


# =====================================================================================
# The install layout
# =====================================================================================


class Box:
    """The install layout on one box, every path under ``root`` (``/`` for real)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.base = rooted(root, INSTALL_DIR)
        self.releases = self.base / "releases"
        self.current = self.base / "current"
        self.previous = self.base / "previous"
        self.config = rooted(root, CONFIG_PATH)
        self.unit = rooted(root, UNIT_PATH)
        self.udev = rooted(root, UDEV_RULE_PATH)

    @property
    def status(self) -> Path:
        """The status file the app writes: ``[app] status_file`` of the installed config."""
        path = STATUS_PATH
        try:
            import tomllib  # Python 3.11+ (Pi OS Bookworm); an older box keeps the default

            with open(self.config, "rb") as f:
                path = str(tomllib.load(f).get("app", {}).get("status_file", STATUS_PATH)) or STATUS_PATH
        except Exception:  # missing/unparsable config: the app would not start anyway
            pass
        return rooted(self.root, path) if path.startswith("/") else self.config.parent / path

    @property
    def is_real(self) -> bool:
        return os.path.realpath(self.root) == "/"

    def target(self, link: Path) -> Optional[str]:
        """Release name a symlink points at (``releases/<name>``), or None."""
        try:
            dest = os.readlink(link)
        except OSError:
            return None
        name = Path(dest).name
        return name if (self.releases / name).is_dir() else None

    def point(self, link: Path, release: str) -> None:
        """Atomically repoint ``link`` at ``releases/<release>``: a new symlink, then rename(2)."""
        tmp = link.with_name(".%s.tmp-%d" % (link.name, os.getpid()))
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink("releases/" + release, tmp)  # relative: works under any root prefix
        os.replace(tmp, link)  # rename() never follows the old link: atomic swap
        fsync_dir(link.parent)

    def is_good(self, release: Optional[str]) -> bool:
        """Passed a health check here (``GOOD``), or predates the marks and never failed; a release whose
        check was cut off (``PENDING``) is not good."""
        if not release or not (self.releases / release).is_dir():
            return False
        folder = self.releases / release
        if (folder / FAILED_MARK).exists():
            return False
        return (folder / GOOD_MARK).exists() or not any(
            (folder / m).exists() for m in (GOOD_MARK, FAILED_MARK, PENDING_MARK))

    def mark(self, release: str, good: Optional[bool], why: str = "") -> None:
        """GOOD (True), FAILED (False) or PENDING (None: about to be checked), replacing the others."""
        folder = self.releases / release
        name = PENDING_MARK if good is None else GOOD_MARK if good else FAILED_MARK
        (folder / name).write_text(why + "\n")
        for other in {GOOD_MARK, FAILED_MARK, PENDING_MARK} - {name}:
            with contextlib.suppress(FileNotFoundError):
                (folder / other).unlink()
        fsync_dir(folder)

    def last_good(self) -> Optional[str]:
        """What a failed deploy goes back to: the running release if good; else the release that passed a
        check here most recently (a check cut off by a power loss leaves ``current`` PENDING, and ``previous``
        older than the release that ran before it); else ``previous`` if it predates the marks."""
        current = self.target(self.current)
        if self.is_good(current):
            return current
        marks = [f / GOOD_MARK for f in self.releases.iterdir()] if self.releases.is_dir() else []
        checked = [(m.stat().st_mtime_ns, m.parent.name) for m in marks
                   if not m.parent.name.startswith(".") and m.is_file() and self.is_good(m.parent.name)]
        if checked:
            return max(checked)[1]
        previous = self.target(self.previous)
        return previous if self.is_good(previous) else None


# =====================================================================================
# systemd
# =====================================================================================


def systemctl(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise DeployError("systemctl not found on the box (is this a systemd system?)") from None
    except subprocess.TimeoutExpired:
        raise DeployError("systemctl %s timed out" % " ".join(args)) from None
    if check and proc.returncode != 0:
        raise DeployError("systemctl %s failed: %s" % (" ".join(args), last_line(proc.stderr or proc.stdout)))
    return proc


_TIMESPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "µs": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0,
    "seconds": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0,
    "hour": 3600.0, "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0,
}


def parse_timespan(text: str) -> float:
    """Seconds from a systemd timespan as ``systemctl show`` prints it (``10s``, ``1min 30s``, ``500ms``, ``0``)."""
    text = text.strip()
    if text in ("", "0"):
        return 0.0
    if text == "infinity":
        return float("inf")
    total, pos = 0.0, 0
    for m in re.finditer(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]*)", text):
        if m.start() != pos:
            break
        unit = m.group(2)
        if unit not in _TIMESPAN_UNITS and unit != "":
            raise ValueError("unknown time unit %r in %r" % (unit, text))
        # A bare number in a *USec property is microseconds.
        total += float(m.group(1)) * (_TIMESPAN_UNITS[unit] if unit else 1e-6)
        pos = m.end()
    if pos != len(text):
        raise ValueError("not a systemd timespan: %r" % text)
    return total


SHOW_PROPERTIES = ("ActiveState", "SubState", "MainPID", "NRestarts", "WatchdogUSec", "RestartUSec")


def show(service: str = SERVICE) -> Dict[str, str]:
    """``systemctl show`` of the properties the health check needs, as a dict."""
    proc = systemctl("show", *("--property=" + p for p in SHOW_PROPERTIES), service)
    if proc.returncode != 0:
        return {"ActiveState": "unknown", "error": last_line(proc.stderr or proc.stdout)}
    props = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def _int(props: Dict[str, str], key: str) -> int:
    try:
        return int(props.get(key, "0") or 0)
    except ValueError:
        return 0


def progress_count(status: dict) -> Optional[int]:
    """Sum of the status file's progress counters; None when it has none of them."""
    counters = status.get("counters")
    if not isinstance(counters, dict):
        return None
    found = [counters[k] for k in PROGRESS_COUNTERS if isinstance(counters.get(k), (int, float))]
    return int(sum(found)) if found else None


class HealthCheck:
    """Waits until a freshly restarted service proves itself healthy, printing one line per step.

    Healthy = active with the same main PID and no new automatic restart for
    ``2 × WatchdogSec + RestartSec`` (a crash loop or a watchdog kill shows up
    within that), and the status file, written by *this* PID, shows its
    progress counters growing between two reads (a deaf box does not pass).

    ``show``, ``read_status``, ``clock`` and ``sleep`` are injectable so tests
    can run it against a scripted service on a fake clock.
    """

    def __init__(self, status_path: Path, *, show: Callable[[], Dict[str, str]] = show,
                 read_status: Optional[Callable[[], Optional[dict]]] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time, start_timeout: float = START_TIMEOUT_S,
                 poll: float = POLL_S, status_max_age: float = STATUS_MAX_AGE_S,
                 report: Callable[[str], None] = say) -> None:
        self.status_path = status_path
        self.show = show
        self.read_status = read_status or self._read_status_file
        self.clock, self.sleep, self.wall = clock, sleep, wall
        self.start_timeout, self.poll, self.status_max_age = start_timeout, poll, status_max_age
        self.report = report

    def _read_status_file(self) -> Optional[dict]:
        try:
            data = json.loads(self.status_path.read_text())
            age = self.wall() - self.status_path.stat().st_mtime
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        data.setdefault("_age_s", age)
        return data

    def wait(self, old_pid: int = 0) -> Tuple[bool, str]:
        """Health of the instance started by the restart just issued; ``old_pid``: the main PID before it.

        ``restart --no-block`` returns before the old instance stops: until the
        main PID changes, what ``show`` describes is still the old one.
        """
        t0 = self.clock()
        deadline = t0 + self.start_timeout
        # 1. Up at all.
        self.report("  health: waiting for %s to become active (up to %g s)" % (SERVICE, self.start_timeout))
        while True:
            props = self.show()
            state = "%s/%s" % (props.get("ActiveState", "?"), props.get("SubState", "?"))
            pid = _int(props, "MainPID")
            if props.get("ActiveState") == "active" and pid and pid != old_pid:
                break
            starting = state == "activating/start" and pid and pid != old_pid  # systemd times this start
            if self.clock() >= deadline + (MAX_START_EXTENSION_S if starting else 0.0):
                return False, "%s not active after %g s (%s)" % (SERVICE, self.start_timeout, state)
            self.sleep(self.poll)
        restarts = _int(props, "NRestarts")
        try:
            watchdog = parse_timespan(props.get("WatchdogUSec", "0"))
            restart_sec = parse_timespan(props.get("RestartUSec", "0"))
        except ValueError as e:
            return False, "cannot read the unit's timings: %s" % e
        need = 2 * watchdog + restart_sec
        up_at = self.clock()
        self.report("  health: active (pid %d, NRestarts %d); must stay up %g s (2 x WatchdogSec %g s + "
                    "RestartSec %g s) and show inference progress" % (pid, restarts, need, watchdog, restart_sec))
        # Progress may start late (model load), but not later than the start allowance after need.
        deadline = up_at + need + self.start_timeout
        first: Optional[int] = None
        progressed = False
        why_not = "no status file yet"
        next_line = up_at + max(5.0, need / 5)
        while True:
            self.sleep(self.poll)
            now = self.clock()
            props = self.show()
            if props.get("ActiveState") != "active":
                return False, "%s stopped being active after %.1f s (%s/%s)" % (
                    SERVICE, now - up_at, props.get("ActiveState", "?"), props.get("SubState", "?"))
            if _int(props, "NRestarts") > restarts or _int(props, "MainPID") != pid:
                return False, "%s restarted after %.1f s (NRestarts %d -> %d, pid %d -> %d): a crash loop" % (
                    SERVICE, now - up_at, restarts, _int(props, "NRestarts"), pid, _int(props, "MainPID"))
            status = self.read_status()
            fresh = False  # this read came from this process, recently, with its inputs running
            if status is None:
                why_not = "%s not written" % self.status_path
            elif status.get("pid") not in (None, pid):
                why_not = "%s is from an older process (pid %s)" % (self.status_path, status.get("pid"))
            elif status.get("_age_s", 0) > self.status_max_age:
                why_not = "%s is stale (%.0f s old)" % (self.status_path, status["_age_s"])
            elif status.get("state") == "stalled":
                why_not = "the app says its inputs stalled (%s)" % "; ".join(map(str, status.get("stalled") or []))
            else:
                fresh = True
                count = progress_count(status)
                if count is None:
                    why_not = "%s has no progress counters (%s)" % (self.status_path, ", ".join(PROGRESS_COUNTERS))
                elif first is None:
                    first = count
                    why_not = "no inference progress yet (counters at %d)" % count
                elif count > first and not progressed:
                    progressed = True
                    self.report("  health: inference progress (processed %d -> %d)" % (first, count))
                elif not progressed:
                    why_not = "no inference progress (counters stuck at %d)" % count
            if progressed and fresh and now - up_at >= need:
                return True, "up %.1f s without a restart, inference progressing" % (now - up_at)
            if now >= deadline:
                return False, why_not
            if now >= next_line:
                self.report("  health: up %.0f/%g s, NRestarts %d, %s" % (
                    now - up_at, need, restarts, "progressing" if progressed else why_not))
                next_line = now + max(5.0, need / 5)


# =====================================================================================
# Steps
# =====================================================================================


def verify_release(folder: Path, manifest_sha256: Optional[str] = None) -> dict:
    """Check every file in ``manifest.json``; DeployError naming the first bad file."""
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise DeployError("%s: manifest missing (incomplete upload?)" % mpath, EXIT_CHECKSUM)
    if manifest_sha256 and sha256_file(mpath) != manifest_sha256:
        raise DeployError("checksum mismatch: %s (corrupted upload)" % MANIFEST, EXIT_CHECKSUM)
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (ValueError, KeyError) as e:
        raise DeployError("%s: not a valid manifest (%s)" % (mpath, e), EXIT_CHECKSUM) from None
    for rel, meta in sorted(files.items()):
        path = folder / rel
        if not path.is_file():
            raise DeployError("checksum mismatch: %s is missing" % rel, EXIT_CHECKSUM)
        got = sha256_file(path)
        if got != meta["sha256"]:
            raise DeployError("checksum mismatch: %s (expected %s..., got %s...)" % (rel, meta["sha256"][:12], got[:12]),
                              EXIT_CHECKSUM)
    return manifest


def make_venv(folder: Path, manifest: dict, tag: Optional[str] = None) -> None:
    """``venv`` with system site packages (apt's numpy, picamera2, pygame, GPIO) + the release's wheels.

    Offline and hash-checked: only the wheels the workstation put into the
    release for this platform, each pinned by sha256 in its requirements.txt.
    """
    tag = tag or platform_tag()
    platforms = manifest.get("platforms", {})
    if tag not in platforms:
        built = ", ".join(sorted(platforms)) or "none"
        raise DeployError("this release has no wheels for %s (built for: %s); redeploy so the workstation "
                          "downloads them" % (tag, built), EXIT_INSTALL)
    requirements = folder / platforms[tag]
    venv = folder / "venv"
    # --without-pip: ensurepip costs seconds on a Pi; the pip that python3-pip
    # put in the system site packages installs into the venv just as well.
    proc = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DeployError("%s: python3 -m venv failed (%s); install python3-venv (bootstrap.sh does)"
                          % (venv, last_line(proc.stderr)), EXIT_INSTALL)
    py = str(venv / "bin" / "python")
    if subprocess.run([py, "-c", "import pip"], capture_output=True).returncode != 0:
        proc = subprocess.run([py, "-m", "ensurepip", "--default-pip"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeployError("%s: no pip (install python3-pip or python3-venv; bootstrap.sh does): %s"
                              % (venv, last_line(proc.stderr)), EXIT_INSTALL)
    # --no-deps: the requirements file *is* the resolved set (the workstation
    # resolved it for this platform); what apt provides (numpy, pygame, pyserial...)
    # is left out on purpose and comes from the system site packages.
    cmd = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-warn-script-location",
           "--no-index", "--no-deps", "--require-hashes", "--find-links", str(folder / REL_WHEELS),
           "--find-links", str(requirements.parent), "-r", str(requirements)]
    n = sum(1 for ln in requirements.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
    say("  venv: pip install %d pinned wheels from %s (offline, hash-checked)" % (n, requirements.parent.relative_to(folder)))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        for line in (proc.stdout + proc.stderr).strip().splitlines()[-15:]:
            say("  pip: " + line)
        raise DeployError("pip install failed: %s" % last_line(proc.stderr or proc.stdout), EXIT_INSTALL)
    # The box must be able to import what it will run, before we switch to it.
    # device.__main__ loads lazily: import what `run` needs (its config reader too) before switching to it.
    proc = subprocess.run([py, "-c", "import device.__main__, device.runtime.run, device.config"],
                          capture_output=True, text=True, cwd=str(folder))
    if proc.returncode != 0:
        raise DeployError("the new venv cannot import device: %s" % last_line(proc.stderr), EXIT_INSTALL)


def switch(box: Box, release: str, config: Optional[bytes] = None) -> int:
    """Install one release's unit/udev rule, flip ``current``, install its config (``config``: these bytes
    instead, the box's own from before a deploy that is being rolled back), restart; the main PID before.

    The config goes in after the flip: a power cut between the two leaves the new code with the old config,
    which it reads, never the old code with a new config it may refuse. Raises DeployError if systemctl fails.
    """
    folder = box.releases / release
    running = box.target(box.current)
    if box.config.is_file() and running and running != release:
        shipped = box.releases / running / REL_CONFIG
        # Hand edits on the box would be overwritten: keep a copy, say where.
        if shipped.is_file() and shipped.read_bytes() != box.config.read_bytes():
            keep = box.config.with_name("config.toml.local-" + time.strftime("%Y%m%dT%H%M%S"))
            shutil.copy2(box.config, keep)
            say("  config: %s had local edits; saved them as %s" % (box.config, keep.name))
    install_file(folder / REL_UNIT, box.unit, 0o644)
    if (folder / REL_UDEV).is_file() and install_file(folder / REL_UDEV, box.udev, 0o644):
        if box.is_real and shutil.which("udevadm"):
            subprocess.run(["udevadm", "control", "--reload-rules"], capture_output=True)
            subprocess.run(["udevadm", "trigger", "--subsystem-match=tty"], capture_output=True)
    if not (folder / GOOD_MARK).is_file():
        box.mark(release, None, "switched to at %s; health check not finished" % time.strftime("%Y-%m-%dT%H:%M:%S"))
    # Every file of the release (uploaded, pip-installed, config, unit) on the card before current points
    # at it: a power cut right after the switch must not boot a release with empty files.
    os.sync()
    box.point(box.current, release)
    say("  switch: %s -> releases/%s" % (box.current, release))
    if config is not None:
        install_bytes(config, box.config, 0o644)
    else:
        install_file(folder / REL_CONFIG, box.config, 0o644)
    # Always: also picks up a unit someone edited by hand since the last deploy.
    systemctl("daemon-reload", check=True)
    systemctl("enable", "--quiet", SERVICE)
    # --no-block: a start that never sends READY=1 must not hang us for
    # TimeoutStartSec; the health check decides.
    say("  restart: systemctl restart %s" % SERVICE)
    old_pid = _int(show(), "MainPID")
    systemctl("restart", "--no-block", SERVICE, check=True)
    return old_pid


def switch_and_check(box: Box, release: str, a: argparse.Namespace,
                     config: Optional[bytes] = None) -> Tuple[bool, str]:
    """``switch`` then the health check; a failing systemctl is an unhealthy result, not a crash."""
    try:
        old_pid = switch(box, release, config)
    except DeployError as e:
        return False, str(e)
    except OSError as e:  # a full card after current moved: unhealthy, so the rollback runs (not a crash)
        return False, "switch to %s failed: %s" % (release, e.strerror or e)
    return HealthCheck(box.status, start_timeout=a.start_timeout, poll=a.poll,
                       status_max_age=a.status_max_age).wait(old_pid)


def journal_tail(box: Box) -> None:
    if box.is_real and shutil.which("journalctl"):
        proc = subprocess.run(["journalctl", "-u", SERVICE, "-n", "15", "--no-pager", "-o", "cat"],
                              capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            say("  journal: " + line)


def _created(folder: Path) -> str:
    try:
        return json.loads((folder / MANIFEST).read_text()).get("created", "")
    except (OSError, ValueError):
        return ""


def prune(box: Box, keep: int) -> List[str]:
    """Remove old releases: keep ``keep`` in all, always current and previous, failed ones first."""
    current, previous = box.target(box.current), box.target(box.previous)
    names = [p.name for p in box.releases.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # Newest first; a failed release is worth less than any good one.
    names.sort(key=lambda n: (not (box.releases / n / FAILED_MARK).exists(),
                              _created(box.releases / n), (box.releases / n).stat().st_mtime), reverse=True)
    kept = [n for n in (current, previous) if n]
    for n in names:
        if len(kept) >= keep:
            break
        if n not in kept:
            kept.append(n)
    removed = [n for n in names if n not in kept]
    for n in removed:
        shutil.rmtree(box.releases / n, ignore_errors=True)
    clear_abandoned_uploads(box)
    return removed


def clear_abandoned_uploads(box: Box, keep: Optional[Path] = None) -> None:
    """Uploads abandoned over an hour ago, never ``keep`` (the one this deploy is about to verify)."""
    for p in box.releases.glob(".incoming-*"):
        if p != keep and time.time() - p.stat().st_mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)


def clear_leftovers(box: Box, incoming: Optional[Path] = None) -> List[str]:
    """Before a deploy: failed releases (not current or previous; their deploy already said why) and uploads
    abandoned over an hour ago. Only a successful deploy prunes, so a run of failed ones (a full card among
    them) would otherwise keep the card full until no deploy fits."""
    if not box.releases.is_dir():
        return []
    keep = {box.target(box.current), box.target(box.previous)}
    gone = [p.name for p in box.releases.iterdir()
            if p.is_dir() and not p.name.startswith(".") and p.name not in keep and (p / FAILED_MARK).is_file()]
    for name in gone:
        shutil.rmtree(box.releases / name, ignore_errors=True)
    clear_abandoned_uploads(box, keep=incoming)  # rsync -t gave it the build's (maybe old) mtime
    return gone


@contextlib.contextmanager
def deploy_lock(box: Box):
    import fcntl

    box.base.mkdir(parents=True, exist_ok=True)
    with open(box.base / ".deploy.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DeployError("another deploy is running on this box") from None
        yield


def run_bootstrap(folder: Path) -> None:
    script = folder / REL_BOOTSTRAP
    say("  bootstrap: %s (first-time setup: packages, user, udev rule)" % script)
    proc = subprocess.run(["bash", str(script), "--no-start"], capture_output=True, text=True)
    for line in proc.stdout.strip().splitlines()[-10:]:
        say("  bootstrap: " + line)
    if proc.returncode != 0:
        raise DeployError("bootstrap.sh failed: %s" % last_line(proc.stderr or proc.stdout), EXIT_INSTALL)


# =====================================================================================
# Actions
# =====================================================================================


def activate(a: argparse.Namespace) -> int:
    os.umask(0o022)
    # The workstation's ssh session may drop (Wi-Fi, a closed laptop): finish the check and the rollback.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    box = Box(a.root)
    with deploy_lock(box):
        gone = clear_leftovers(box, box.releases / a.incoming)
        if gone:
            say("  prune: removed failed releases " + ", ".join(gone))
        incoming = box.releases / a.incoming
        try:
            manifest = verify_release(incoming, a.manifest_sha256)
        except DeployError:
            shutil.rmtree(incoming, ignore_errors=True)  # corrupt: never activated, not kept
            raise
        say("  verify: %d files match %s" % (len(manifest["files"]), MANIFEST))
        folder = box.releases / a.version
        if folder.exists():
            raise DeployError("%s: release already exists on this box" % folder)
        os.rename(incoming, folder)
        if a.bootstrap:
            run_bootstrap(folder)
        good = box.last_good()
        # What a rollback puts back: the config the box ran with, hand edits included (not good's shipped one).
        config_before = box.config.read_bytes() if box.config.is_file() and box.target(box.current) == good else None
        try:
            make_venv(folder, manifest)
        except DeployError as e:
            box.mark(a.version, good=False, why=str(e))
            still = "; the box still runs %s" % box.target(box.current) if box.target(box.current) else ""
            raise DeployError(str(e) + still, e.code) from None
        ok, why = switch_and_check(box, a.version, a)
        if ok:
            say("  health: ok (%s)" % why)
            box.mark(a.version, good=True, why=why)
            if good and good != a.version:
                box.point(box.previous, good)
            removed = prune(box, a.keep)
            if removed:
                say("  prune: removed " + ", ".join(removed))
            result("ok", version=a.version, previous=good, message=why)
            return EXIT_OK
        say("  health: FAILED (%s)" % why)
        journal_tail(box)
        box.mark(a.version, good=False, why=why)
        if not good:
            result("failed", version=a.version, message="health check failed: %s; no good release to roll back to" % why)
            return EXIT_ROLLED_BACK
        say("  rollback: back to %s (the last good release)" % good)
        ok2, why2 = switch_and_check(box, good, a, config_before)
        # A release that passed before stays good when only its check after the rollback failed (it may be
        # recomputing what the new one saved): FAILED would leave no release to roll back to next time.
        box.mark(good, True, why2 if ok2 else "passed before; its check after the rollback failed: " + why2)
        after = "healthy" if ok2 else "NOT healthy either: " + why2
        say("  ROLLED BACK to %s (%s)" % (good, after))
        result("rolled-back", version=a.version, previous=good,
               message="to %s (%s); health check failed: %s" % (good, after, why))
        return EXIT_ROLLED_BACK


def rollback(a: argparse.Namespace) -> int:
    box = Box(a.root)
    with deploy_lock(box):
        current, previous = box.target(box.current), box.target(box.previous)
        if not previous or not box.is_good(previous):
            raise DeployError("no previous good release to roll back to")
        ok, why = switch_and_check(box, previous, a)
        box.mark(previous, ok, why)
        # The release we left becomes "previous" only if it was good: a roll
        # *forward* must never land on a broken release.
        if current and current != previous and box.is_good(current):
            box.point(box.previous, current)
        result("ok" if ok else "failed", version=previous, message=why)
        return EXIT_OK if ok else EXIT_FAILED


def health(a: argparse.Namespace) -> int:
    box = Box(a.root)
    props = show()
    status = HealthCheck(box.status)._read_status_file()
    active = props.get("ActiveState") == "active"
    count = progress_count(status) if status else None
    say("%s: %s/%s, pid %s, NRestarts %s, status %s (release %s)" % (
        "healthy" if active and status else "UNHEALTHY", props.get("ActiveState", "?"), props.get("SubState", "?"),
        props.get("MainPID", "?"), props.get("NRestarts", "?"),
        "missing" if status is None else "processed %s" % count, box.target(box.current) or "-"))
    return EXIT_OK if active and status else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="box_release.py", description="box-side deploy steps (run by deploy.py over ssh)")
    p.add_argument("action", choices=("activate", "rollback", "health"))
    p.add_argument("--root", default="/")
    p.add_argument("--incoming", default="")
    p.add_argument("--version", default="")
    p.add_argument("--manifest-sha256", default=None)
    p.add_argument("--keep", type=int, default=KEEP_RELEASES)
    p.add_argument("--start-timeout", type=float, default=START_TIMEOUT_S,
                   help="seconds to become active, and after the required uptime to show progress")
    p.add_argument("--poll", type=float, default=POLL_S, help="seconds between two looks")
    p.add_argument("--status-max-age", type=float, default=STATUS_MAX_AGE_S)
    p.add_argument("--bootstrap", action="store_true")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    a = parser().parse_args(argv)
    try:
        if a.action == "activate":
            return activate(a)
        if a.action == "rollback":
            return rollback(a)
        return health(a)
    except DeployError as e:
        print("deploy: error: %s" % e, file=sys.stderr, flush=True)
        result("failed", version=a.version, message=str(e))
        return e.code
    except Exception as e:  # one line for the workstation, never a traceback
        print("deploy: error: unexpected %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
        result("failed", version=a.version, message="unexpected %s: %s" % (type(e).__name__, e))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
