"""Logging a run of the same failure once, not once per chunk, on a box that runs for weeks."""

from __future__ import annotations

import logging
import time
from typing import Callable

from device.hardware.select import one_line

log = logging.getLogger("saysee")

# While a step keeps failing, one summary line this often (the first failure is logged whole).
SUMMARY_EVERY_S = 60.0


class ErrorRun:
    """Counts consecutive failures of one step (a pipeline, the display, audio out) and logs them sparingly.

    The first failure of a run is logged with its traceback; while it goes on, one line every
    ``SUMMARY_EVERY_S`` says how many followed; the first success after a run says it recovered. A
    pipeline failing on every 50 ms chunk would otherwise write 70,000 tracebacks an hour to the journal.
    """

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.clock = clock
        self.failures = 0  # consecutive, since the last success
        self._next_summary = 0.0

    def failed(self, error: BaseException) -> None:
        """Call from the ``except`` block (the first failure's traceback is the one being handled)."""
        now = self.clock()
        self.failures += 1
        if self.failures == 1:
            log.exception("%s error: %s", self.what, one_line(error))
        elif now >= self._next_summary:
            log.error("%s error: still failing, %d times in a row: %s", self.what, self.failures, one_line(error))
        else:
            return
        self._next_summary = now + SUMMARY_EVERY_S

    def succeeded(self) -> None:
        if self.failures > 1:
            log.info("%s recovered after %d errors in a row", self.what, self.failures)
        self.failures = 0
