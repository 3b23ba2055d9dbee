"""The one way workstation commands turn user-facing errors into a single line and an exit code."""

from __future__ import annotations

import sys
from typing import Any, Callable

from device.errors import SaySeeError


def run_cli(prog: str, work: Callable[[], Any]) -> int:
    """Run ``work``; a SaySeeError prints ``prog: error: ...`` (no traceback) and exits non-zero."""
    try:
        work()
    except SaySeeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0
