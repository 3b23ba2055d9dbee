"""`python -m device <command>`: the box's command line.

Each command lives in its own module exposing ``main(argv) -> int``; imports are
lazy so `check` works on a box that lacks some libraries. User-facing problems
(SaySeeError) print as one line and exit non-zero, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

from device.errors import SaySeeError

COMMANDS = {
    "run": ("device.runtime.run", "Run the box (sound and/or marimba pipelines) from a config file."),
    "check": ("device.runtime.check", "List each hardware backend and whether it is usable here."),
    "classify": ("device.sound.classify", "Print the top-3 sound classes for each 1 s window of a WAV."),
    "transcribe": ("device.marimba.transcribe", "Print the notes the camera sees in a marimba video or recording."),
    "record-sound": ("device.sound.recorder", "Record takes of one sound class for training."),
    "record-marimba": ("device.marimba.recorder", "Record camera + audio for marimba training."),
    "calibrate-marimba": ("device.marimba.calibrate_cli", "Find the bars in a marimba recording (or take corners) and save it."),
    "teach": ("device.sound.teach", "Teach the box a new sound from a few takes (files or --record N)."),
    "taught": ("device.sound.taught_cli", "List taught sounds; rename one or give it a picture, colour, note."),
    "forget": ("device.sound.forget", "Remove a taught sound."),
    "map-teach": ("device.sound.map_teach", "Teach a continuous mapping (sound -> LED colour, MIDI CC) by examples."),
    "map-forget": ("device.sound.map_forget", "Remove the mapping taught with map-teach."),
}


def usage() -> str:
    lines = ["usage: python -m device <command> [options]", "", "commands:"]
    lines += [f"  {name:15s} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"saysee: unknown command '{name}'\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
        return int(module.main(rest) or 0)
    except SaySeeError as e:
        print(f"saysee: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
