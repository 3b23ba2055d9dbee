"""device.runtime.notify against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time

import pytest

from device.runtime import notify as sdnotify
from device.runtime.notify import Notifier, Watchdog, watchdog_interval

pytestmark = pytest.mark.device_venv


class FakeSystemd:
    """A bound AF_UNIX datagram socket that collects what a service sends."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)

    def messages(self, wait: float = 0.0) -> list[str]:
        out, deadline = [], time.monotonic() + wait
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                if time.monotonic() >= deadline:
                    return out

    def close(self):
        self.sock.close()


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    fake = FakeSystemd(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield fake
    fake.close()


def test_ready_status_stopping_reach_the_socket(systemd):
    with Notifier() as n:
        assert n.is_enabled
        assert n.ready("loading models")
        assert n.status("listening")
        assert n.stopping()
        assert n.watchdog()
    assert systemd.messages() == [
        "READY=1\nSTATUS=loading models",
        "STATUS=listening",
        "STOPPING=1",
        "WATCHDOG=1",
    ]


def test_newlines_in_status_cannot_inject_assignments(systemd):
    Notifier().status("bad\nREADY=1")
    assert systemd.messages() == ["STATUS=bad READY=1"]


def test_module_level_notify(systemd, monkeypatch):
    monkeypatch.setattr(sdnotify, "_default", None)
    assert sdnotify.notify("READY=1")
    assert systemd.messages() == ["READY=1"]


def test_abstract_namespace_socket(monkeypatch):
    name = f"saysee-test-{os.getpid()}-{time.monotonic_ns()}"
    fake = FakeSystemd(b"\0" + name.encode())
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready()
        assert fake.messages() == ["READY=1"]
    finally:
        fake.close()


def test_noop_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    n = Notifier()
    assert not n.is_enabled
    assert n.ready() is False
    wd = Watchdog(n)
    assert not wd.is_enabled
    wd.start()
    assert wd._thread is None  # no thread when nobody listens
    wd.heartbeat()
    wd.stop()


def test_send_to_a_vanished_socket_does_not_raise(tmp_path):
    n = Notifier(str(tmp_path / "gone.sock"))
    assert n.ready() is False
    assert n.errors == 1


def test_watchdog_interval_from_env():
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": pid}) == 10.0
    # Meant for another process (we are a child that inherited the environment).
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_watchdog_pings_at_half_the_interval_while_heartbeats_arrive(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s -> a ping every 0.2 s
    wd = Watchdog()
    assert wd.timeout == pytest.approx(0.4) and wd.ping_interval == pytest.approx(0.2)
    with wd:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            wd.heartbeat()
            time.sleep(0.02)
    pings = [m for m in systemd.messages() if m == "WATCHDOG=1"]
    # ~1.0 s / 0.2 s = 5 intervals plus the immediate first ping.
    assert 3 <= len(pings) <= 9, pings  # loose: CI machines are busy


def test_watchdog_stops_pinging_when_the_pipeline_stalls(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # 0.3 s timeout, 0.15 s pings
    stalls = []
    wd = Watchdog(on_stall=stalls.append)
    with wd:
        for _ in range(10):  # 0.5 s of progress
            wd.heartbeat()
            time.sleep(0.05)
        systemd.messages()  # drain
        time.sleep(0.45)  # pipeline wedged: the last pings may still leave...
        systemd.messages()
        time.sleep(0.6)  # ...but once stale, no ping for well over a timeout
        late = systemd.messages()
        assert "WATCHDOG=1" not in late
        assert wd.is_stalled and len(stalls) == 1
        # Progress again: pings resume.
        for _ in range(8):
            wd.heartbeat()
            time.sleep(0.05)
        assert "WATCHDOG=1" in systemd.messages()
        assert not wd.is_stalled


def test_stall_reports_status_once(systemd):
    now = [0.0]
    wd = Watchdog(timeout=10.0, clock=lambda: now[0])
    wd.heartbeat()
    now[0] = 4.0
    assert wd.check() is True
    now[0] = 11.0
    assert wd.check() is False
    assert wd.check() is False
    msgs = systemd.messages()
    assert msgs[0] == "WATCHDOG=1"
    assert sum(m.startswith("STATUS=pipeline stalled") for m in msgs) == 1


def test_watchdog_is_a_drop_in_notifier_for_the_app(systemd):
    """App calls notifier.ready() / .heartbeat() / .stopping(); a Watchdog accepts all three."""
    wd = Watchdog(timeout=0.2)
    assert wd.ready("listening")
    assert wd._thread is not None  # ready() starts the pinger
    for _ in range(5):
        wd.heartbeat()
        time.sleep(0.04)
    assert wd.stopping()
    assert wd._thread is None
    msgs = systemd.messages()
    assert msgs[0] == "READY=1\nSTATUS=listening"
    assert "WATCHDOG=1" in msgs
    assert msgs[-1] == "STOPPING=1"


def test_notifier_heartbeat_pings_directly(systemd):
    assert Notifier().heartbeat()
    assert systemd.messages() == ["WATCHDOG=1"]
