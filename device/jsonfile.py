"""Reading a JSON object file (model metadata, calibration, recording manifest) with one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from device.errors import SaySeeError

# What reading and decoding a JSON file can raise (a missing file included, as OSError).
JSON_READ_ERRORS = (OSError, UnicodeDecodeError, json.JSONDecodeError)


def read_json_object(path: str | os.PathLike, error: type[SaySeeError], what: str) -> dict[str, Any]:
    """The object in ``path``; an unreadable file, bad JSON or a non-object is one ``error`` line naming
    the file and saying it is not a valid ``what``. (A missing file is the caller's message to give.)"""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except JSON_READ_ERRORS as e:
        raise error(f"{p}: not valid JSON for a {what} ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{p}: a {what} must be a JSON object")
    return data
