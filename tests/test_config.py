"""Config validation: every mistake is one line naming the file, key, value and expectation."""

from pathlib import Path

import pytest

from device.config import PROJECT_ROOT, check_files, load_config
from device.errors import ConfigError

pytestmark = pytest.mark.device_venv


def write(tmp_path, text, name="box.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_configs_load():
    for name in ("default.toml", "demo.toml"):
        cfg = load_config(PROJECT_ROOT / "config" / name)
        assert cfg.sound.threshold_off <= cfg.sound.threshold_on
        assert set(cfg.app.modes) <= {"sound", "marimba"}
    demo = load_config(PROJECT_ROOT / "config" / "demo.toml")
    assert {demo.mic.backend, demo.leds.backend, demo.display.backend, demo.synth.backend} == {"sim"}
    check_files(demo)


def test_values_and_relative_paths(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "dog.png").write_bytes(b"png")
    cfg = load_config(write(tmp_path, """
[sound]
threshold_on = 0.7
model = "m/sound.tflite"
[synth]
baud = 115200
[mapping.dog_bark]
picture = "pics/dog.png"
colour = "#ff8000"
program = 12
note = 60
[note_colours]
60 = [255, 0, 0]
"""))
    assert cfg.sound.threshold_on == 0.7
    assert Path(cfg.sound.model) == tmp_path / "m" / "sound.tflite"
    assert cfg.synth.baud == 115200
    m = cfg.mapping["dog_bark"]
    assert m.picture == str(tmp_path / "pics" / "dog.png")
    assert m.colour == pytest.approx((1.0, 128 / 255, 0.0))
    assert (m.program, m.note) == (12, 60)
    assert cfg.note_colours[60] == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("text, message", [
    ("[sound]\ntreshold_on = 0.5\n", r"\[sound\]: unknown key 'treshold_on'"),
    ("[sound]\nthreshold_on = 'high'\n", r"\[sound\] threshold_on = 'high': expected a number between 0.0 and 1.0"),
    ("[sound]\nthreshold_on = 1.5\n", r"threshold_on = 1.5: expected a number"),
    ("[leds]\npins = [17, 27, 'x']\n", r"\[leds\] pins\[2\] = 'x': expected an integer"),
    ("[synth]\nbaud = 9600\n", r"\[synth\] baud = 9600: expected an integer in \[31250"),
    ("[mic]\nrealtime = 'yes'\n", r"\[mic\] realtime = 'yes': expected true or false"),
    ("[app]\nmodes = ['sound', 'video']\n", r"\[app\] modes\[1\] = 'video': expected one of"),
    ("[speaker]\nvolume = 3\n", r"unknown section \[speaker\]"),
    ("[mapping.siren]\ncolour = 'red'\n", r"\[mapping.siren\] colour = 'red': expected a colour"),
    ("[mapping.siren]\npicture = 'nope.png'\n", r"\[mapping.siren\] picture = 'nope.png': file not found"),
    ("[sound]\nthreshold_on = 0.2\nthreshold_off = 0.4\n", r"threshold_off 0.4 must not exceed"),
    ("[sound\n", r"not valid TOML"),
    ("[camera]\ndriver = 'v4l'\n", r"\[camera\] driver = 'v4l': expected one of 'auto', 'picamera2', 'opencv'"),
    ("[camera]\ncapture_timeout_s = 0\n", r"\[camera\] capture_timeout_s = 0: expected a number between 0.1"),
    ("[leds]\nhardware_pwm_pins = [12, 99]\n", r"\[leds\] hardware_pwm_pins\[1\] = 99: expected an integer between 0"),
    ("[leds]\ngpio_module = 'lgpio'\n", r"\[leds\] gpio_module = 'lgpio': expected one of"),
    ("[display]\nevery_nth = 0\n", r"\[display\] every_nth = 0: expected an integer between 1"),
    # Values that used to pass and then failed or misbehaved on the box:
    ("[sound]\nmax_latency_s = 0\n", r"\[sound\] max_latency_s = 0: expected a number between 0.1"),  # deaf
    ("[sound]\nhop_s = 0.033\n", r"\[sound\] hop_s = 0.033: expected a multiple of 0.01 s"),
    ("[mic]\nchunk = 48000\n", r"\[mic\] chunk = 48000: expected an integer between 64 and 16000"),
    ("[audio_out]\nmode = 'resynth'\nbuffer_s = 0.05\n[camera]\nfps = 30\n",
     r"\[audio_out\] buffer_s = 0.05: must hold two camera frames' audio, at least 0.067 s at 30 fps"),
])
def test_bad_config_names_file_key_and_expectation(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_model_and_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    cfg = load_config(write(tmp_path, "[sound]\nmodel = 'gone.tflite'\n"))
    with pytest.raises(ConfigError, match=r"\[sound\] model = .*gone.tflite.*: file not found"):
        check_files(cfg)


def test_hardware_defaults_have_one_source(fake_picamera2, fake_gpio):
    """Backend names, LED pins, screen and camera size: the config dataclass is the only default."""
    from device import config as config_mod
    from device.config import CameraConfig, DisplayConfig, LedsConfig
    from device.hardware import select
    from device.hardware.camera import Picamera2Camera
    from device.hardware.display import open_display
    from device.hardware.leds import GpioLeds

    assert select.BACKENDS is config_mod.BACKENDS
    sizes = []

    class Size:
        def __init__(self, size):
            sizes.append(size)

    open_display("sim", renderer=Size).close()
    assert sizes == [(DisplayConfig().width, DisplayConfig().height)]
    with Picamera2Camera() as cam:
        assert cam.size == (CameraConfig().width, CameraConfig().height)
        assert cam.capture_timeout == CameraConfig().capture_timeout_s
    with GpioLeds() as leds:
        assert leds.pins == LedsConfig().pins and leds.frequency == LedsConfig().pwm_hz
