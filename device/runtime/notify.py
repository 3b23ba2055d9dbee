"""systemd readiness, status and watchdog, spoken directly over ``$NOTIFY_SOCKET``.

The sd_notify protocol is one datagram of ``KEY=value`` lines to the unix socket
named in ``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace).
We speak it ourselves so the box needs no systemd Python bindings, and everything
here is a silent no-op when the variable is unset (a terminal, a test, the demo).

The watchdog is deliberately tied to *progress*, not to liveness of a thread: the
pipeline calls :meth:`Watchdog.heartbeat` once per step, and the pinger thread
only sends ``WATCHDOG=1`` while heartbeats keep arriving. A pipeline wedged in a
driver call or a deadlock therefore stops the pings, and systemd restarts the
service (``Restart=on-failure`` covers watchdog timeouts).

Typical use in the composition root (a ``Watchdog`` has the same
``ready`` / ``status`` / ``heartbeat`` / ``stopping`` methods as a ``Notifier``,
so the app can be handed either)::

    watchdog = Watchdog(Notifier())
    ...build backends, load models...
    watchdog.ready("listening")      # READY=1, starts the pinger thread
    while running:
        step()
        watchdog.heartbeat()         # progress: keeps the pings going
    watchdog.stopping()              # STOPPING=1, stops the pinger
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable

__all__ = ["Notifier", "Watchdog", "notify", "watchdog_interval"]


def _socket_address(value: str) -> str | bytes:
    # '@name' is systemd's spelling of an abstract socket; the kernel wants a NUL.
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd expects, in seconds, or None when it isn't watching us.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; a
    child that inherited the environment (a pip subprocess, a helper) must not
    think it is being watched.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; a no-op when it is unset.

    Sending never raises: a service manager that went away must not take the box
    down with it. ``send`` returns whether the datagram left.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = os.environ.get("NOTIFY_SOCKET") if socket_path is None else socket_path
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # the pinger thread and the main loop share the socket
        self.errors = 0

    @property
    def is_enabled(self) -> bool:
        return bool(self.socket_path)

    def send(self, *lines: str, **fields: object) -> bool:
        """Send ``KEY=value`` lines, e.g. ``send("READY=1", STATUS="listening")``."""
        if not self.socket_path:
            return False
        parts = list(lines) + [f"{key}={value}" for key, value in fields.items()]
        # Newlines inside a value would start a new (bogus) assignment.
        message = "\n".join(p.replace("\n", " ") for p in parts).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, _socket_address(self.socket_path))
                return True
            except OSError:
                self.errors += 1
                return False

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``Type=notify`` units wait for this)."""
        return self.send("READY=1", **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """One line shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd we are shutting down on purpose (so the watchdog isn't blamed)."""
        return self.send("STOPPING=1", **({"STATUS": status} if status else {}))

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def watchdog(self) -> bool:
        """One keep-alive ping."""
        return self.send("WATCHDOG=1")

    def heartbeat(self) -> bool:
        """The caller vouches that the pipeline made progress: ping now.

        For loops that judge liveness themselves (``App.run`` pings only while
        its workers keep stepping). :class:`Watchdog` offers the same method
        name with a pinger thread behind it, so either object can be handed to
        the app as its ``notifier``.
        """
        return self.watchdog()

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (e.g. a slow first model load on a Pi 3)."""
        return self.send(EXTEND_TIMEOUT_USEC=int(seconds * 1e6))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> "Notifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_default: Notifier | None = None


def notify(*lines: str, **fields: object) -> bool:
    """Module-level convenience: ``notify("READY=1")``; a no-op without ``$NOTIFY_SOCKET``."""
    global _default
    if _default is None:
        _default = Notifier()
    return _default.send(*lines, **fields)


class Watchdog:
    """Pings systemd's watchdog only while the pipeline keeps calling :meth:`heartbeat`.

    ``timeout`` defaults to ``$WATCHDOG_USEC`` (systemd's ``WatchdogSec=``); the
    thread pings every ``timeout / 2`` (systemd's own recommendation) as long as
    the newest heartbeat is younger than ``stall_after`` (default: ``timeout``).
    Once heartbeats stop, pings stop, and systemd kills and restarts the service
    within about two timeouts of the last step. ``on_stall`` is called once per
    stall (from the pinger thread) so the app can log which stage was stuck.

    Without a watchdog (no ``$NOTIFY_SOCKET`` / ``$WATCHDOG_USEC``) no thread is
    started and :meth:`heartbeat` costs one attribute store.
    """

    def __init__(
        self,
        notifier: Notifier | None = None,
        timeout: float | None = None,
        stall_after: float | None = None,
        on_stall: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier if notifier is not None else Notifier()
        self.timeout = watchdog_interval() if timeout is None else timeout
        self.stall_after = stall_after if stall_after is not None else self.timeout
        self.on_stall = on_stall
        self._clock = clock
        self._last_beat = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.is_stalled = False

    @property
    def is_enabled(self) -> bool:
        return bool(self.notifier.is_enabled and self.timeout)

    @property
    def ping_interval(self) -> float | None:
        return self.timeout / 2 if self.timeout else None

    def heartbeat(self) -> None:
        """Called by the pipeline loop after every step: 'I made progress'."""
        # A float store is atomic under the GIL; no lock on the hot path.
        self._last_beat = self._clock()

    def seconds_since_heartbeat(self) -> float:
        return self._clock() - self._last_beat

    # The Notifier-shaped side, so App(notifier=Watchdog(...)) just works.

    def ready(self, status: str | None = None) -> bool:
        """READY=1 (plus STATUS) and start pinging."""
        sent = self.notifier.ready(status)
        self.start()
        return sent

    def status(self, text: str) -> bool:
        return self.notifier.status(text)

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1 and stop pinging (a clean shutdown is not a stall)."""
        self.stop()
        return self.notifier.stopping(status)

    def start(self) -> "Watchdog":
        if self.is_enabled and self._thread is None:
            self._last_beat = self._clock()  # start-up counts as progress
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="saysee-watchdog", daemon=True)
            self._thread.start()
        return self

    def check(self) -> bool:
        """One pinger iteration: ping if the pipeline is alive; returns whether it pinged."""
        age = self.seconds_since_heartbeat()
        if self.stall_after is not None and age > self.stall_after:
            if not self.is_stalled:
                self.is_stalled = True
                # Say why in `systemctl status` before systemd pulls the plug.
                self.notifier.status(f"pipeline stalled: no progress for {age:.1f} s")
                if self.on_stall is not None:
                    try:
                        self.on_stall(age)
                    except Exception:  # a logging hook must never kill the pinger
                        pass
            return False
        self.is_stalled = False
        if self.notifier.watchdog():
            self.pings += 1
            return True
        return False

    def _run(self) -> None:
        interval = self.ping_interval or 1.0
        # First ping right away: start-up may have eaten part of the budget.
        while True:
            self.check()
            if self._stop.wait(interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
