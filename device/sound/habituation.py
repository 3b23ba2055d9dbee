"""Getting used to the room: a built-in class the box keeps hearing in long sounds stops being shown.

A TV or radio plays for minutes on end, and its music sits where the
``street_music`` class sits in the embedding (0.09 from its centre: no
threshold can tell them apart, nor a taught "my TV" class). What does tell
them apart is time: the room's own sounds go on and on, a child's sounds at
the box are short. So the pipeline counts, per built-in class, the seconds it
accepted that class in windows of *long* sounds (``long_s`` or more since the
last silence); a class heard for ``after_s`` seconds within the last
``window_s`` is the room's background and its picture is not shown (the
screen stays on "listening"). It comes back on its own once the class has
been heard less than that within the window. Short sounds never count, so a
child barking at the box twenty times in a row is still answered every time.

Pure logic, no I/O, no clock: times are the pipeline's stream seconds.
"""

from __future__ import annotations

from collections import deque


class Habituation:
    """Per-class seconds heard in long sounds over a sliding window; ``is_background(label)`` says enough.

    ``after_s`` = 0 turns it off (nothing is ever background)."""

    def __init__(self, after_s: float, window_s: float, long_s: float):
        self.after_s = after_s
        self.window_s = window_s
        self.long_s = long_s
        self._heard: deque[tuple[float, str, float]] = deque()  # (stream time, label, seconds)
        self._totals: dict[str, float] = {}

    def hear(self, t: float, label: str, seconds: float, sound_so_far_s: float) -> None:
        """One window at stream time ``t`` accepted as ``label``, ``sound_so_far_s`` into its sound."""
        if self.after_s <= 0:
            return
        self._forget(t)
        if sound_so_far_s >= self.long_s:
            self._heard.append((t, label, seconds))
            self._totals[label] = self._totals.get(label, 0.0) + seconds

    def _forget(self, t: float) -> None:
        while self._heard and self._heard[0][0] <= t - self.window_s:
            _, label, seconds = self._heard.popleft()
            self._totals[label] -= seconds

    def heard_s(self, label: str, t: float) -> float:
        """Seconds of ``label`` in long sounds within the window ending at ``t``."""
        self._forget(t)
        return max(self._totals.get(label, 0.0), 0.0)

    def is_background(self, label: str, t: float) -> bool:
        return self.after_s > 0 and self.heard_s(label, t) >= self.after_s - 1e-9

    def background(self, t: float) -> list[str]:
        """The classes that are the room's background now (for the status file)."""
        self._forget(t)
        return sorted(x for x, s in self._totals.items() if self.after_s > 0 and s >= self.after_s - 1e-9)
