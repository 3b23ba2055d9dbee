"""TOML configuration -> frozen dataclasses, validated.

Every problem is a ConfigError naming the file, the key, the bad value and what
is expected; unknown keys are errors (a typo must not be silently ignored).
Relative paths are resolved against the config file's folder, so a config
travels with the files it names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 boxes
    import tomli as tomllib

from device.errors import ConfigError

# Where bundled models/ and assets/ live: the release folder on a box (the unit sets
# SAYSEE_HOME, since the package itself is installed into a venv), else the checkout.
PROJECT_ROOT = Path(os.environ.get("SAYSEE_HOME") or Path(__file__).resolve().parent.parent)

Colour = tuple[float, float, float]
BACKENDS = ("auto", "real", "sim")


def _spec(default: Any = dataclasses.MISSING, *, choices: tuple | None = None, lo: float | None = None,
          hi: float | None = None, path: bool = False, doc: str = "", **kw):
    """A dataclass field with validation metadata."""
    meta = {"choices": choices, "lo": lo, "hi": hi, "path": path, "doc": doc}
    if default is dataclasses.MISSING:
        return field(metadata=meta, **kw)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AppConfig:
    """[app]: which pipelines run and where the status goes."""

    modes: tuple[str, ...] = _spec(("sound",), choices=("sound", "marimba"))
    status_file: str = _spec("/run/saysee/status.json", path=True)
    status_interval_s: float = _spec(1.0, lo=0.1, hi=60)
    log_level: str = _spec("info", choices=("debug", "info", "warning", "error"))
    assets_dir: str = _spec("", path=True, doc="folder with <class>.png pictures; '' = the bundled assets")


@dataclass(frozen=True)
class SoundConfig:
    """[sound]: the sound model and its decision tuning; also the sound pipeline's settings (one default each)."""

    model: str = _spec("models/sound.tflite", path=True)
    decision: str = _spec("onset", choices=("onset", "window"),
                          doc="onset: decide early on a sure sound onset, confirm as the window fills; "
                              "window: the earlier design (smoothed 1 s windows every 0.25 s)")
    hop_s: float | None = _spec(None, lo=0.01, hi=1.0, doc="seconds between decisions, a multiple of 0.01; "
                                                         "unset = the design's own (DESIGN_DEFAULTS)")
    threshold_on: float = _spec(0.6, lo=0.0, hi=1.0)
    threshold_off: float = _spec(0.3, lo=0.0, hi=1.0)
    smoothing: float = _spec(0.7, lo=0.01, hi=1.0, doc="weight of the newest 0.25 s in the running average")
    silence_dbfs: float = _spec(-45.0, lo=-120.0, hi=0.0)
    min_sound_s: float | None = _spec(None, lo=0.0, hi=1.0,
                                      doc="audio above the gate a window needs before the running average may "
                                          "use it; unset = the design's own (DESIGN_DEFAULTS)")
    clear_after_s: float = _spec(0.5, lo=0.0, hi=10.0, doc="quiet this long clears the class")
    early_threshold: float = _spec(0.85, lo=0.0, hi=1.0, doc="onset: model probability that decides early")
    early_min_sound_s: float = _spec(0.05, lo=0.0, hi=1.0, doc="onset: audio above the gate an early decision needs")
    early_exclude: tuple[str, ...] = _spec(("gun_shot",), doc="onset: classes never decided early")
    early_agree_s: float = _spec(0.1, lo=0.0, hi=1.0,
                                 doc="onset: a class that is the model's top choice, at early_agree_threshold or "
                                     "more, in every window of this long decides early too; 0 = only early_threshold")
    early_agree_threshold: float = _spec(0.5, lo=0.0, hi=1.0, doc="onset: see early_agree_s")
    # At 0 every window would be "stale" and skipped: a deaf box whose watchdog still pings.
    max_latency_s: float | None = _spec(0.75, lo=0.1, hi=10.0, doc="None: never skip (unpaced sim runs)")
    gate_while_synth: bool = True
    # Getting used to the room (device.sound.habituation): a TV's music is street_music to the model.
    habituate_s: float = _spec(10.0, lo=0.0, hi=3600.0,
                               doc="a built-in class heard this many seconds in long sounds within habituate_window_s "
                                   "is the room's background (a TV, a radio) and is not shown; 0 = never")
    habituate_window_s: float = _spec(120.0, lo=1.0, hi=86400.0, doc="see habituate_s")
    habituate_long_s: float = _spec(3.0, lo=0.0, hi=60.0,
                                    doc="only sounds going on this long count towards habituate_s (a child's short "
                                        "sounds never do)")
    num_threads: int = _spec(1, lo=1, hi=8)

    @property
    def decision_hop_s(self) -> float:
        return self.hop_s if self.hop_s is not None else DESIGN_DEFAULTS[self.decision]["hop_s"]

    @property
    def decision_min_sound_s(self) -> float:
        return self.min_sound_s if self.min_sound_s is not None else DESIGN_DEFAULTS[self.decision]["min_sound_s"]


# Each decision design's own values of the [sound] keys left unset: "window" keeps the earlier
# design exactly; "onset" was tuned on held-out playlists (bench.e2e.build_playlist, seeds 5001-5012).
DESIGN_DEFAULTS = {"onset": {"hop_s": 0.05, "min_sound_s": 0.1}, "window": {"hop_s": 0.25, "min_sound_s": 0.15}}


@dataclass(frozen=True)
class MarimbaConfig:
    """[marimba]: the camera-to-notes model and its note-event tuning."""

    model: str = _spec("models/marimba.tflite", path=True)
    # Peak-picker overrides; unset = the values tuned at training time (in the model's metadata).
    threshold: float | None = _spec(None, lo=0.0, hi=10.0)
    refractory_s: float | None = _spec(None, lo=0.0, hi=5.0)
    hold_s: float | None = _spec(None, lo=0.0, hi=10.0)
    num_threads: int = _spec(1, lo=1, hi=8)
    calibration: str = _spec("", path=True, doc="where the bars are in the camera picture: a calibration JSON from "
                             "`python -m device calibrate-marimba`; '' = the model's default view")


@dataclass(frozen=True)
class AudioOutConfig:
    """[audio_out]: the box's own speaker: the camera's notes resynthesised (pyaudio; sim writes a WAV)."""

    mode: str = _spec("off", choices=("off", "resynth"),
                      doc="resynth: the marimba model's 18 levels drive 18 bar oscillators (needs marimba mode)")
    backend: str = _spec("auto", choices=BACKENDS)
    device: str = _spec("", doc="output device: name substring or index; '' = the default output")
    sample_rate: int = _spec(48000, choices=(16000, 22050, 32000, 44100, 48000),
                             doc="preferred rate; a card that refuses it opens at its own")
    block: int = _spec(512, lo=64, hi=8192, doc="frames per sound-card period (latency vs. underruns)")
    buffer_s: float = _spec(0.2, lo=0.02, hi=5.0,
                            doc="audio queued for the card at most; beyond it the oldest is dropped (counted)")
    smoothing_s: float = _spec(0.02, lo=0.001, hi=1.0, doc="time constant of each oscillator's amplitude envelope")
    gain: float = _spec(1.0, lo=0.0, hi=8.0, doc="output gain on the resynthesised amplitudes")
    wav: str = _spec("", path=True, doc="sim: the WAV written; '' = marimba-resynth.wav in the run's out_dir")
    realtime: bool = _spec(True, doc="sim: the WAV writer plays like a card (drops, underruns); "
                                     "false = every sample written, write waits for room")


@dataclass(frozen=True)
class MicConfig:
    """[mic]: pyaudio device by name substring or index; sim plays WAV files."""

    backend: str = _spec("auto", choices=BACKENDS)
    device: str = ""
    playlist: tuple[str, ...] = _spec((), path=True)
    realtime: bool = True
    # At most 1 s at 16 kHz: a healthy mic must deliver well inside the inputs' stall limit (INPUT_STALL_S, 2 s).
    chunk: int = _spec(800, lo=64, hi=16000)
    buffer_seconds: float = _spec(2.0, lo=0.25, hi=60)


@dataclass(frozen=True)
class CameraConfig:
    """[camera]: picamera2 / OpenCV device; sim plays a video file or the synthetic marimba."""

    backend: str = _spec("auto", choices=BACKENDS)
    driver: str = _spec("auto", choices=("auto", "picamera2", "opencv"),
                        doc="real camera library; auto = picamera2 when it sees a CSI camera, else OpenCV")
    device: str = _spec("", doc="picamera2 camera number, OpenCV index or /dev/videoN; '' = the first camera")
    video: str = _spec("", path=True)
    width: int = _spec(160, lo=16, hi=4096)
    height: int = _spec(96, lo=16, hi=4096)
    fps: float = _spec(30.0, lo=1.0, hi=240.0)
    realtime: bool = True
    loop: bool = _spec(False, doc="sim: restart the video at its end")
    capture_timeout_s: float = _spec(2.0, lo=0.1, hi=60.0,
                                     doc="a real camera that delivers no frame for this long is an error")


@dataclass(frozen=True)
class LedsConfig:
    """[leds]: one RGB LED on three BCM pins (red, green, blue).

    Software PWM through RPi.GPIO / rpi-lgpio. Jetson.GPIO has hardware PWM only,
    on a few pins (Orin: BCM 12, 13, 22), so on a Jetson each pin is on/off unless
    it is listed in ``hardware_pwm_pins``.
    """

    backend: str = _spec("auto", choices=BACKENDS)
    pins: tuple[int, ...] = _spec((17, 27, 22), lo=0, hi=40)
    common_anode: bool = False
    pwm_hz: float = _spec(200.0, lo=10.0, hi=10000.0)
    hardware_pwm_pins: tuple[int, ...] = _spec((), lo=0, hi=40, doc="Jetson: pins driven by hardware PWM")
    gpio_module: str = _spec("", choices=("", "RPi.GPIO", "Jetson.GPIO"),
                             doc="'' = RPi.GPIO (also rpi-lgpio) if it imports, else Jetson.GPIO")


@dataclass(frozen=True)
class DisplayConfig:
    """[display]: pygame screen (fullscreen on KMS/DRM) or PNG frames in out_dir."""

    backend: str = _spec("auto", choices=BACKENDS)
    width: int = _spec(800, lo=64, hi=8192)
    height: int = _spec(480, lo=64, hi=8192)
    fullscreen: bool = True
    out_dir: str = _spec("", path=True)
    max_fps: float = _spec(10.0, lo=0.1, hi=120.0)
    every_nth: int = _spec(1, lo=1, hi=1000, doc="draw only every n-th scene")
    max_frames: int = _spec(3000, lo=0, hi=1_000_000,
                            doc="sim: stop writing PNGs after this many (~90 KB each: 5 min at 10 fps)")
    picture_mode: str = _spec("cards", choices=("cards", "dream"),
                              doc="cards: the class's picture; dream: a picture generated from the sound every hop")
    generator: str = _spec("models/generator.tflite", path=True, doc="dream mode's int8 generator (+ .json beside it)")


@dataclass(frozen=True)
class SynthConfig:
    """[synth]: MIDI over a serial port (path or pyserial URL); 31250 baud = DIN MIDI."""

    backend: str = _spec("auto", choices=BACKENDS)
    port: str = "/dev/saysee-synth"
    baud: int = _spec(31250, choices=(31250, 38400, 57600, 115200))
    channel: int = _spec(1, lo=1, hi=16, doc="MIDI channel as printed on synths, 1..16")
    release_s: float = _spec(0.5, lo=0.0, hi=10.0, doc="detection stays gated this long after a note-off")
    # Opening a USB serial port asserts DTR, which resets Arduino-style boards; their
    # bootloader then swallows whatever arrives for up to ~2 s. A UART synth loses
    # nothing by the wait: it only delays the first note after each (re)connection.
    reset_wait_s: float = _spec(2.0, lo=0.0, hi=10.0, doc="after opening the port, wait this long before sending")


@dataclass(frozen=True)
class TeachConfig:
    """[teach]: sounds taught on the box (store, teach button, take checks) and the ``unknown`` decision."""

    dir: str = _spec("/var/lib/saysee/taught", path=True, doc="one folder per taught sound (the service's StateDirectory)")
    button_pin: int | None = _spec(None, lo=0, hi=40, doc="BCM pin of the teach button (to ground); None = no button")
    hold_s: float = _spec(1.0, lo=0.1, hi=10.0, doc="hold the button this long to start teaching")
    takes: int = _spec(3, lo=1, hi=10, doc="takes the button asks for")
    take_s: float = _spec(3.0, lo=0.5, hi=10.0, doc="longest take; --record takes are this long")
    countdown_s: float = _spec(3.0, lo=0.0, hi=10.0, doc="countdown before each recorded take")
    wait_s: float = _spec(10.0, lo=1.0, hi=60.0, doc="button: give up when no sound comes for this long")
    min_take_s: float = _spec(0.15, lo=0.01, hi=5.0, doc="sound above the gate a take needs")
    split_silence_s: float = _spec(0.5, lo=0.1, hi=5.0, doc="silence this long separates takes in one file")
    max_clipped: float = _spec(0.01, lo=0.0, hi=1.0, doc="fraction of samples at full scale that makes a take clipped")
    max_sounds: int = _spec(100, lo=1, hi=1000, doc="taught sounds the box keeps; teaching one more is refused "
                                                    "until one is forgotten (a button pressed all day fills no card)")
    unknown: str = _spec("default", choices=("default", "strict"),
                         doc="which calibration of the model decides built-in vs unknown: strict keeps 99 % "
                             "of the validation sounds instead of all, for a room with a TV or music (fewer "
                             "false pictures; a quiet sound may be named later or not at all)")
    # Open-set thresholds; unset = the values calibrated into the model's metadata (open_set).
    min_confidence: float | None = _spec(None, lo=0.0, hi=1.0, doc="a built-in class needs this probability")
    max_centre_distance: float | None = _spec(None, lo=0.0, hi=2.0, doc="... and this cosine distance to its centre")
    taught_max_distance: float | None = _spec(None, lo=0.0, hi=2.0, doc="a taught class needs this distance to its prototype")


@dataclass(frozen=True)
class ContinuousConfig:
    """[continuous]: every hop, the sound's embedding mapped to LED colour and synth CC values (issue 13 §2)."""

    mode: str = _spec("off", choices=("off", "default", "taught"),
                      doc="off: class mapping only; default: the model's embedding projection; taught: the "
                          "mapping taught with map-teach (the default one until a mapping is taught)")
    smoothing_s: float = _spec(0.15, lo=0.0, hi=5.0, doc="one-pole time constant of colour, brightness and CC values")
    cc: tuple[int, ...] = _spec((74, 71, 1), lo=0, hi=119,
                                doc="default mapping: the CC numbers its 3 components drive (at most 3)")
    max_distance: float = _spec(0.45, lo=0.0, hi=2.0,
                                doc="taught: beyond this cosine distance from every demonstration the LED fades "
                                    "to dark and the CC values hold")


@dataclass(frozen=True)
class ClassMapping:
    """[mapping.<class>]: what the box shows and plays for one sound class."""

    picture: str = _spec("", path=True)
    colour: Colour | None = _spec(None, doc="None = the class's default colour")
    program: int | None = _spec(None, lo=0, hi=127)
    note: int | None = _spec(None, lo=0, hi=127)
    velocity: int = _spec(100, lo=1, hi=127)
    duration_s: float = _spec(0.4, lo=0.01, hi=10.0)


@dataclass(frozen=True)
class Config:
    """The whole box: one frozen object built once by ``load_config``."""

    app: AppConfig = AppConfig()
    sound: SoundConfig = SoundConfig()
    marimba: MarimbaConfig = MarimbaConfig()
    audio_out: AudioOutConfig = AudioOutConfig()
    mic: MicConfig = MicConfig()
    camera: CameraConfig = CameraConfig()
    leds: LedsConfig = LedsConfig()
    display: DisplayConfig = DisplayConfig()
    synth: SynthConfig = SynthConfig()
    teach: TeachConfig = TeachConfig()
    continuous: ContinuousConfig = ContinuousConfig()
    mapping: Mapping[str, ClassMapping] = field(default_factory=dict)
    note_colours: Mapping[int, Colour] = field(default_factory=dict)
    source: str = "<defaults>"


_SECTION_TYPES = {"app": AppConfig, "sound": SoundConfig, "marimba": MarimbaConfig, "audio_out": AudioOutConfig,
                  "mic": MicConfig,
                  "camera": CameraConfig, "leds": LedsConfig, "display": DisplayConfig, "synth": SynthConfig, "teach": TeachConfig,
                  "continuous": ContinuousConfig}


def parse_colour(value: Any, where: str) -> Colour:
    """'#rrggbb' or [r, g, b] with 0..255 integers -> floats 0..1."""
    if isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return tuple(int(value[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
    if (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                             and 0 <= v <= 255 for v in value)):
        return tuple(v / 255.0 for v in value)  # type: ignore[return-value]
    raise ConfigError(f"{where} = {value!r}: expected a colour like \"#ff8800\" or [255, 136, 0]")


def _check_number(v: Any, f: dataclasses.Field, where: str, kind: type) -> Any:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) if kind is float else \
        isinstance(v, int) and not isinstance(v, bool)
    lo, hi, choices = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices")
    rng = f" between {lo} and {hi}" if lo is not None else f" in {list(choices)}" if choices else ""
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi) or (choices and v not in choices):
        raise ConfigError(f"{where} = {v!r}: expected {'a number' if kind is float else 'an integer'}{rng}")
    return float(v) if kind is float else v


def _coerce(v: Any, f: dataclasses.Field, hint: Any, where: str, base: Path) -> Any:
    """Check one value against its field's type and metadata."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint == Colour:
        return parse_colour(v, where)
    if origin is typing.Union or (origin is not None and type(None) in args):  # Optional[...]
        inner = next(a for a in args if a is not type(None))
        return _coerce(v, f, inner, where, base)
    if origin is tuple:
        if not isinstance(v, list):
            raise ConfigError(f"{where} = {v!r}: expected a list")
        return tuple(_coerce(item, f, args[0], f"{where}[{i}]", base) for i, item in enumerate(v))
    if hint is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{where} = {v!r}: expected true or false")
        return v
    if hint in (int, float):
        return _check_number(v, f, where, hint)
    if hint is str:
        if not isinstance(v, str):
            raise ConfigError(f"{where} = {v!r}: expected a string")
        choices = f.metadata.get("choices")
        if choices and v not in choices:
            raise ConfigError(f"{where} = {v!r}: expected one of {', '.join(map(repr, choices))}")
        if f.metadata.get("path") and v and not re.match(r"^[a-z]+://", v):
            return str((base / v).resolve()) if not Path(v).is_absolute() else v
        return v
    raise TypeError(f"unsupported config type {hint}")  # programming error, not user input


def _resolve_defaults(obj: Any) -> Any:
    """Relative default paths (e.g. models/sound.tflite) point into the project, not the CWD."""
    changes = {f.name: str(PROJECT_ROOT / getattr(obj, f.name)) for f in dataclasses.fields(obj)
               if f.metadata.get("path") and isinstance(getattr(obj, f.name), str)
               and getattr(obj, f.name) and not Path(getattr(obj, f.name)).is_absolute()}
    return dataclasses.replace(obj, **changes) if changes else obj


def build_section(cls: type, table: Any, where: str, base: Path) -> Any:
    """A section's dataclass from its TOML table; unknown keys and bad values raise ConfigError."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (expected one of: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, v in table.items():
        key = f"{where} {name}"
        f = fields[name]
        values[name] = _coerce(v, f, hints[name], key, base)
        if isinstance(values[name], tuple) and f.metadata.get("choices") and hints[name] != Colour:
            bad = [x for x in values[name] if x not in f.metadata["choices"]]
            if bad:
                raise ConfigError(f"{key} = {v!r}: expected items from {', '.join(f.metadata['choices'])}")
    return _resolve_defaults(cls(**values))


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; every failure is one ConfigError line."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        # tomllib decodes the bytes itself; TOML files must be UTF-8.
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the config as UTF-8") from None
    return config_from_dict(data, path)


def config_from_dict(data: Mapping[str, Any], path: str | Path = "<config>") -> Config:
    path = Path(path)
    base = path.parent.resolve()
    known = set(_SECTION_TYPES) | {"mapping", "note_colours"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown section [{unknown[0]}] (expected: {', '.join(sorted(known))})")
    sections = {name: build_section(cls, data.get(name, {}), f"{path}: [{name}]", base)
                for name, cls in _SECTION_TYPES.items()}
    mapping = {}
    for label, table in dict(data.get("mapping", {})).items():
        m = build_section(ClassMapping, table, f"{path}: [mapping.{label}]", base)
        if m.picture and not Path(m.picture).is_file():
            raise ConfigError(f"{path}: [mapping.{label}] picture = {table.get('picture')!r}: file not found ({m.picture})")
        mapping[label] = m
    note_colours = {}
    for note, colour in dict(data.get("note_colours", {})).items():
        if not str(note).isdigit() or not 0 <= int(note) <= 127:
            raise ConfigError(f"{path}: [note_colours] key {note!r}: expected a MIDI note number 0..127")
        note_colours[int(note)] = parse_colour(colour, f"{path}: [note_colours] {note}")
    cfg = Config(**sections, mapping=mapping, note_colours=note_colours, source=str(path))
    hop = cfg.sound.hop_s
    if hop is not None and abs(hop * 100 - round(hop * 100)) > 1e-6:  # the front end's 10 ms frames
        raise ConfigError(f"{path}: [sound] hop_s = {hop}: expected a multiple of 0.01 s")
    if cfg.audio_out.mode == "resynth" and cfg.audio_out.buffer_s < 2.0 / cfg.camera.fps:
        # One camera frame's block would push out the last: audio dropped and an underrun every frame.
        raise ConfigError(f"{path}: [audio_out] buffer_s = {cfg.audio_out.buffer_s}: must hold two camera "
                          f"frames' audio, at least {2.0 / cfg.camera.fps:.3f} s at {cfg.camera.fps:g} fps")
    if cfg.sound.threshold_off > cfg.sound.threshold_on:
        raise ConfigError(f"{path}: [sound] threshold_off {cfg.sound.threshold_off} must not exceed "
                          f"threshold_on {cfg.sound.threshold_on}")
    return cfg


def check_files(cfg: Config) -> None:
    """The files the enabled modes need must exist (checked at start, before any hardware opens)."""
    needed = []
    if "sound" in cfg.app.modes:
        needed.append(("[sound] model", cfg.sound.model))
    if "marimba" in cfg.app.modes:
        needed.append(("[marimba] model", cfg.marimba.model))
        if cfg.marimba.calibration:
            needed.append(("[marimba] calibration", cfg.marimba.calibration))
    if "sound" in cfg.app.modes and cfg.display.picture_mode == "dream":
        needed.append(("[display] generator", cfg.display.generator))
    if cfg.mic.backend == "sim":
        needed += [(f"[mic] playlist[{i}]", p) for i, p in enumerate(cfg.mic.playlist)]
    if cfg.camera.backend == "sim" and cfg.camera.video:
        needed.append(("[camera] video", cfg.camera.video))
    for key, p in needed:
        if not Path(p).is_file():
            raise ConfigError(f"{cfg.source}: {key} = {p!r}: file not found")
