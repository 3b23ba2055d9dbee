"""The box side of a deploy (systemd/box_release.py): the health check and what a failure rolls back to.

Two layers:
- ``HealthCheck`` against a scripted service on a fake clock: the real timings
  (WatchdogSec=10, RestartSec=5 -> 25 s of required uptime) cost no wall time;
- ``activate`` / ``rollback`` end to end in a temp root, with the fake
  ``systemctl`` of tests/test_deploy.py first on PATH (it plays systemd and the
  app, and reads its behaviour from the installed config). Only the venv build
  is skipped here; tests/test_deploy.py covers it through a real sshd.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from test_deploy import ROOT, Box

sys.path.insert(0, str(ROOT / "systemd"))
import box_release  # noqa: E402
import deploy  # noqa: E402

sys.path.pop(0)


# ------------------------------------------------------------------ HealthCheck on a fake clock


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


class Service:
    """A scripted unit + app: ``events`` maps a time to a change of state."""

    def __init__(self, clock: FakeClock, active_at: float = 1.0, pid: int = 100, rate: float = 4.0,
                 watchdog: str = "10s", restart: str = "5s") -> None:
        self.clock = clock
        self.active_at, self.pid, self.rate = active_at, pid, rate
        self.watchdog, self.restart = watchdog, restart
        self.restarts = 0
        self.crash_at: float | None = None  # systemd restarts it here (NRestarts + 1, new pid)
        self.stall_from: float | None = None  # counters stop growing here
        self.stalled_state = False  # the app reports state "stalled"
        self.status_pid: int | None = None  # another pid in the status file (an older process)

    def _crashed(self) -> bool:
        return self.crash_at is not None and self.clock.t >= self.crash_at

    def show(self) -> dict[str, str]:
        t = self.clock.t
        up = t >= self.active_at
        crashed = self._crashed()
        return {"ActiveState": "active" if up else "activating", "SubState": "running" if up else "start",
                "MainPID": str((self.pid + 1 if crashed else self.pid) if up else 0),
                "NRestarts": str(self.restarts + (1 if crashed else 0)),
                "WatchdogUSec": self.watchdog, "RestartUSec": self.restart}

    def status(self) -> dict | None:
        t = self.clock.t
        if t < self.active_at:
            return None
        end = t if self.stall_from is None else min(t, self.stall_from)
        return {"state": "stalled" if self.stalled_state else "running",
                "stalled": ["mic delivered nothing for 3.0 s"] if self.stalled_state else [],
                "pid": self.status_pid or self.pid,
                "counters": {"sound_windows": int((end - self.active_at) * self.rate), "errors": 0}}


def check(service: Service, clock: FakeClock, lines: list[str], **kw) -> tuple[bool, str]:
    hc = box_release.HealthCheck(Path("/run/saysee/status.json"), show=service.show, read_status=service.status,
                                 clock=clock, sleep=clock.sleep, report=lines.append,
                                 **{"start_timeout": 30.0, "poll": 0.5, **kw})
    return hc.wait()


def test_healthy_only_after_two_watchdog_intervals_plus_restart_sec():
    clock, lines = FakeClock(), []
    svc = Service(clock, active_at=2.0)
    ok, why = check(svc, clock, lines)
    assert ok, why
    # Active at 2 s; 2 x 10 s + 5 s later at the earliest (the old check settled for 5 s).
    assert 2.0 + 25.0 <= clock.t < 2.0 + 25.0 + 1.0
    assert any("2 x WatchdogSec 10 s + RestartSec 5 s" in ln for ln in lines), lines
    assert any("inference progress" in ln for ln in lines)
    assert any(ln.startswith("  health: up ") for ln in lines)  # progress shown while waiting
    assert all(ln.startswith("  health: ") and "\n" not in ln for ln in lines)


def test_a_crash_loop_fails_even_when_each_run_looks_fine():
    """The service restarts 12 s in (e.g. the watchdog killed it); each run writes a fresh
    status and counts audio: the old 'active and status fresh for 5 s' passed this."""
    clock, lines = FakeClock(), []
    svc = Service(clock)
    svc.crash_at = 13.0
    ok, why = check(svc, clock, lines)
    assert not ok
    assert "NRestarts 0 -> 1" in why and "crash loop" in why
    assert clock.t < 14.0  # fails at the first look after the restart, not at the deadline


def test_restarts_from_before_the_deploy_do_not_count_only_new_ones():
    clock, lines = FakeClock(), []
    svc = Service(clock)
    svc.restarts = 7  # the counter systemd kept from earlier crashes
    ok, why = check(svc, clock, lines)
    assert ok, why


def test_no_inference_progress_fails():
    clock, lines = FakeClock(), []
    svc = Service(clock)
    svc.stall_from = 1.0  # up and writing its status, but the counters never move (a deaf box)
    ok, why = check(svc, clock, lines, start_timeout=10.0)
    assert not ok and "no inference progress" in why and "stuck at 0" in why
    assert clock.t >= 1.0 + 25.0 + 10.0  # it waited the whole allowance before saying so


def test_the_app_reporting_stalled_inputs_fails():
    clock, lines = FakeClock(), []
    svc = Service(clock)
    svc.stalled_state = True
    ok, why = check(svc, clock, lines, start_timeout=5.0)
    assert not ok and "stalled" in why and "mic delivered nothing" in why


def test_a_status_file_from_another_process_is_not_progress():
    clock, lines = FakeClock(), []
    svc = Service(clock)
    svc.status_pid = 99  # the file a previous process left behind
    ok, why = check(svc, clock, lines, start_timeout=5.0)
    assert not ok and "older process" in why


def test_the_old_instance_still_running_is_not_taken_for_the_new_one():
    """`restart --no-block` returns at once: the first looks still see the old process, active.
    Its PID must not become the baseline (its stop would read as a crash of the new release)."""
    clock, lines = FakeClock(), []
    svc = Service(clock, active_at=0.0, pid=500)
    hc = box_release.HealthCheck(Path("/run/saysee/status.json"), show=svc.show, read_status=svc.status,
                                 clock=clock, sleep=clock.sleep, report=lines.append, start_timeout=4.0, poll=0.5)
    ok, why = hc.wait(old_pid=500)  # the restart never happened: still the old pid
    assert not ok and "not active after 4 s" in why
    svc.pid = 501  # the new instance
    ok, why = hc.wait(old_pid=500)
    assert ok, why
    assert any("active (pid 501" in ln for ln in lines)


def test_never_active_fails_after_the_start_allowance():
    clock, lines = FakeClock(), []
    svc = Service(clock, active_at=1e9)
    ok, why = check(svc, clock, lines, start_timeout=12.0)
    assert not ok and "not active after 12 s" in why and "activating/start" in why
    assert 12.0 <= clock.t < 13.0


class SlowStart(Service):
    """Recomputing taught sounds before READY=1: the new process exists (its PID shows) while systemd,
    extended by EXTEND_TIMEOUT_USEC, still says activating/start."""

    def show(self) -> dict[str, str]:
        props = super().show()
        if props["ActiveState"] == "activating":
            props["MainPID"] = str(self.pid)
        return props


def test_a_start_that_systemd_extends_is_waited_for_not_rolled_back():
    clock, lines = FakeClock(), []
    svc = SlowStart(clock, active_at=120.0)
    ok, why = check(svc, clock, lines, start_timeout=90.0)
    assert ok, why
    assert clock.t >= 120.0 + 25.0


def test_a_start_extension_is_not_waited_for_for_ever():
    clock, lines = FakeClock(), []
    svc = SlowStart(clock, active_at=1e9)
    ok, why = check(svc, clock, lines, start_timeout=90.0)
    assert not ok and "activating/start" in why
    assert clock.t < 90.0 + box_release.MAX_START_EXTENSION_S + 1.0


def test_the_start_extension_covers_every_taught_sound_recomputed():
    """One number per source: the box's cap on taught sounds times the extra start time each one asks for."""
    from device.config import TeachConfig
    from device.runtime.builder import RECOMPUTE_EXTEND_S

    assert box_release.MAX_START_EXTENSION_S == TeachConfig().max_sounds * RECOMPUTE_EXTEND_S


@pytest.mark.parametrize("text,seconds", [("10s", 10.0), ("1min 30s", 90.0), ("500ms", 0.5), ("0", 0.0),
                                          ("2s 500ms", 2.5), ("1h", 3600.0), ("infinity", float("inf"))])
def test_systemd_timespans(text, seconds):
    assert box_release.parse_timespan(text) == seconds


def test_a_bad_timespan_is_an_error():
    with pytest.raises(ValueError):
        box_release.parse_timespan("10 parsecs")


# ------------------------------------------------------------------ activate / rollback in a temp root


GOOD = "# good config\n[app]\n"


@pytest.fixture
def fake_box(tmp_path, monkeypatch):
    box = Box(tmp_path)
    monkeypatch.setenv("PATH", f"{box.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    venvs: list[str] = []
    monkeypatch.setattr(box_release, "make_venv", lambda folder, manifest, tag=None: venvs.append(folder.name))
    box.venvs = venvs
    return box


def _activate(box: Box, version: str, config: str) -> int:
    """Upload a minimal release (config + unit, with a manifest) and run ``activate`` on it."""
    releases = box.base / "releases"
    incoming = releases / f".incoming-{version}"
    (incoming / "config").mkdir(parents=True)
    (incoming / "config" / "config.toml").write_text(config)
    (incoming / "systemd").mkdir()
    shutil.copy2(ROOT / "systemd" / "saysee.service", incoming / "systemd" / "saysee.service")
    deploy._write_manifest(incoming, {"version": version, "created": f"2026-01-01T00:00:{version[-2:]}",
                                      "platforms": {}})
    return box_release.main(["activate", "--root", str(box.root), "--incoming", incoming.name, "--version", version,
                             "--start-timeout", "1", "--poll", "0.05"])


def _result(capsys) -> dict:
    out = capsys.readouterr().out
    records = [ln for ln in out.splitlines() if ln.startswith(box_release.RESULT_TAG)]
    assert len(records) == 1, out
    return json.loads(records[0][len(box_release.RESULT_TAG):]) | {"_out": out}


def test_a_failing_restart_after_the_switch_rolls_back(fake_box, capsys):
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    assert _result(capsys)["result"] == "ok"
    rc = _activate(box, "v02", "# simulate_restart_fails\n[app]\n")
    res = _result(capsys)
    assert rc == box_release.EXIT_ROLLED_BACK and res["result"] == "rolled-back", res
    assert "bad unit file setting" in res["message"]
    assert box.current() == "v01" and box.previous() is None  # never the broken one
    assert (box.root / "etc/saysee/config.toml").read_text() == GOOD  # v1's config is back
    assert (box.base / "releases/v02/FAILED").is_file()
    assert "ROLLED BACK to v01 (healthy)" in res["_out"]


def test_crash_loop_and_deaf_releases_roll_back_and_previous_stays_the_last_good_one(fake_box, capsys):
    box = fake_box
    for v in ("v01", "v02"):
        assert _activate(box, v, GOOD) == 0
        capsys.readouterr()
    assert box.current() == "v02" and box.previous() == "v01"

    assert _activate(box, "v03", "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    res = _result(capsys)
    assert "NRestarts 0 -> 1" in res["message"] and box.current() == "v02" and box.previous() == "v01"

    assert _activate(box, "v04", "# simulate_stalled\n[app]\n") == box_release.EXIT_ROLLED_BACK
    res = _result(capsys)
    assert "no inference progress" in res["message"] and box.current() == "v02" and box.previous() == "v01"
    out = res["_out"]
    # One line per step while it waits.
    for step in ("switch:", "restart:", "health: waiting for saysee", "health: active (pid",
                 "health: FAILED", "rollback: back to v02"):
        assert step in out, out

    assert _activate(box, "v05", GOOD) == 0
    capsys.readouterr()
    assert box.current() == "v05" and box.previous() == "v02"  # the last good one, not v03/v04

    # By hand: back to v02; v05 (good) becomes previous, so rolling forward lands on a good one.
    assert box_release.main(["rollback", "--root", str(box.root), "--start-timeout", "1", "--poll", "0.05"]) == 0
    assert _result(capsys)["result"] == "ok"
    assert box.current() == "v02" and box.previous() == "v05"


def test_a_broken_first_release_never_becomes_previous(fake_box, capsys):
    box = fake_box
    assert _activate(box, "v01", "# simulate_broken\n[app]\n") == box_release.EXIT_ROLLED_BACK
    res = _result(capsys)
    assert res["result"] == "failed" and "no good release to roll back to" in res["message"]
    assert box.current() == "v01"  # nothing better to run
    assert _activate(box, "v02", GOOD) == 0
    capsys.readouterr()
    assert box.current() == "v02" and box.previous() is None  # not the broken v01
    assert box_release.main(["rollback", "--root", str(box.root)]) == box_release.EXIT_FAILED
    assert box.current() == "v02"
    assert "no previous good release" in capsys.readouterr().err


def test_failed_venv_never_switches(fake_box, capsys, monkeypatch):
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    capsys.readouterr()

    def broken_venv(folder, manifest, tag=None):
        raise box_release.DeployError("pip install failed: no matching wheel", box_release.EXIT_INSTALL)

    monkeypatch.setattr(box_release, "make_venv", broken_venv)
    calls_before = len(box.calls())
    assert _activate(box, "v02", GOOD) == box_release.EXIT_INSTALL
    assert "the box still runs v01" in capsys.readouterr().err
    assert box.current() == "v01" and len(box.calls()) == calls_before  # no restart at all
    assert (box.base / "releases/v02/FAILED").is_file()


def test_a_session_dropped_mid_check_still_checks_and_rolls_back(fake_box, capsys, monkeypatch):
    """The workstation's ssh session dies while the box checks a crash-looping release (Wi-Fi, a closed
    laptop): writing progress fails, but the box still finishes the check, marks and rolls back."""
    box = fake_box
    for v in ("v01", "v02"):
        assert _activate(box, v, GOOD) == 0
    capsys.readouterr()

    class DroppedSession:
        def write(self, text):
            if "restart:" in text:
                self.write = self._gone
            return len(text)

        def _gone(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", DroppedSession())
    monkeypatch.setattr(box_release, "_session_gone", False)
    assert _activate(box, "v03", "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    assert box.current() == "v02" and box.previous() == "v01"
    assert (box.base / "releases/v03/FAILED").is_file() and not (box.base / "releases/v03/PENDING").exists()


def test_a_check_cut_off_leaves_the_release_pending_and_never_a_rollback_target(fake_box, capsys, monkeypatch):
    """Power lost while the box checks a new release: it stays current but PENDING, and the next deploy
    rolls back to the last release that passed a check, not to it."""
    box = fake_box
    for v in ("v01", "v02"):
        assert _activate(box, v, GOOD) == 0
    capsys.readouterr()

    def power_cut(self, old_pid):
        raise SystemExit("power cut")

    with monkeypatch.context() as m:
        m.setattr(box_release.HealthCheck, "wait", power_cut)
        with pytest.raises(SystemExit):
            _activate(box, "v03", "# simulate_crashloop\n[app]\n")
    assert box.current() == "v03" and (box.base / "releases/v03/PENDING").is_file()
    assert not box_release.Box(box.root).is_good("v03")
    capsys.readouterr()
    assert _activate(box, "v04", "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    assert "rollback: back to v02" in _result(capsys)["_out"]
    assert box.current() == "v02"


def test_a_full_disk_on_the_box_is_named_not_rsyncs_last_line():
    rsync = (b'rsync: [receiver] write failed on "/opt/saysee/releases/.incoming-v02/models/sound.tflite": '
             b"No space left on device (28)\nrsync error: error in file IO (code 11) at receiver.c(378) "
             b"[receiver=3.2.7]\n")
    why = deploy._last_line(rsync)
    assert why.startswith("no space left on the box's disk (rsync: [receiver] write failed on")
    assert why.endswith("free some, or deploy with a lower --keep")
    assert deploy._last_line(b"tar: Exiting with failure status due to previous errors\n") == (
        "tar: Exiting with failure status due to previous errors")


def test_failed_releases_are_cleared_before_the_next_deploy_not_only_after_a_good_one(fake_box, capsys):
    """Only a successful deploy prunes: a run of failed ones (a full card among them) must not pile up."""
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    for v in ("v02", "v03"):
        assert _activate(box, v, "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    capsys.readouterr()
    releases = box.base / "releases"
    assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == ["v01", "v03"]
    assert (releases / "v03/FAILED").is_file()  # the newest failure stays until the next deploy
    assert _activate(box, "v04", "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    assert "prune: removed failed releases v03" in _result(capsys)["_out"]
    assert box.current() == "v01"


def test_a_rollback_puts_back_the_config_the_box_ran_with_hand_edits_included(fake_box, capsys):
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    capsys.readouterr()
    config = box.root / "etc/saysee/config.toml"
    edited = GOOD + "# the installer's own tweak on the box\n"
    config.write_text(edited)
    assert _activate(box, "v02", "# simulate_crashloop\n[app]\n") == box_release.EXIT_ROLLED_BACK
    out = _result(capsys)["_out"]
    assert box.current() == "v01" and config.read_text() == edited  # not v01's shipped config
    assert "had local edits; saved them as config.toml.local-" in out  # and the copy v02's install made


def test_the_config_is_switched_after_current_so_old_code_never_reads_a_new_config(fake_box, capsys, monkeypatch):
    """A power cut between the two writes: the new release with the old config, never the reverse."""
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    capsys.readouterr()
    config = box.root / "etc/saysee/config.toml"
    seen = []
    real_point = box_release.Box.point

    def point(self, link, release):
        if link == self.current:
            seen.append((release, config.read_text()))
        return real_point(self, link, release)

    monkeypatch.setattr(box_release.Box, "point", point)
    new = "# v02's config, with a key v01 does not know\n[app]\n"
    assert _activate(box, "v02", new) == 0
    assert seen == [("v02", GOOD)] and config.read_text() == new


def test_a_full_card_after_the_switch_rolls_back_instead_of_leaving_an_unchecked_release(fake_box, capsys,
                                                                                          monkeypatch):
    box = fake_box
    assert _activate(box, "v01", GOOD) == 0
    capsys.readouterr()
    real = box_release.install_bytes, box_release.install_file
    calls = {"n": 0}

    def full_once(*a, **k):  # the new release's config: written after current moved
        if str(a[1]).endswith("config.toml") and calls["n"] == 0:
            calls["n"] += 1
            raise OSError(28, "No space left on device")
        return (real[0] if isinstance(a[0], bytes) else real[1])(*a, **k)

    monkeypatch.setattr(box_release, "install_file", full_once)
    monkeypatch.setattr(box_release, "install_bytes", full_once)
    assert _activate(box, "v02", GOOD) == box_release.EXIT_ROLLED_BACK
    res = _result(capsys)
    assert "No space left on device" in res["message"] and box.current() == "v01"
    assert (box.base / "releases/v02/FAILED").is_file() and (box.base / "releases/v01/GOOD").is_file()


def test_an_upload_with_an_old_build_time_is_not_cleared_as_abandoned(fake_box, capsys, monkeypatch):
    """One build, many hosts: rsync -t can give the upload the build's time, over an hour old by the last host."""
    box = fake_box
    releases = box.base / "releases"
    stale = releases / ".incoming-v00"
    stale.mkdir(parents=True)
    old = os.path.getmtime(stale) - 7200
    os.utime(stale, (old, old))
    write_manifest = deploy._write_manifest

    def uploaded_with_the_build_time(folder, data):
        write_manifest(folder, data)
        os.utime(folder, (old, old))

    monkeypatch.setattr(deploy, "_write_manifest", uploaded_with_the_build_time)
    assert _activate(box, "v01", GOOD) == 0
    assert _result(capsys)["result"] == "ok" and box.current() == "v01"
    assert not stale.exists()  # a really abandoned upload still goes
