"""The one exception type users see as a single line, never as a traceback."""

from __future__ import annotations


class SaySeeError(Exception):
    """A problem with the user's input (file, config, model, dataset).

    The message must name the file (or key) and say what is wrong; command-line
    entry points print it as one line and exit non-zero.
    """

    exit_code = 2


class ConfigError(SaySeeError):
    """A configuration file is missing, malformed or has a bad value."""


class ModelError(SaySeeError):
    """A model file or its metadata is missing, unreadable or incompatible."""


class InputFileError(SaySeeError):
    """An audio/video/dataset file or folder can't be used."""
