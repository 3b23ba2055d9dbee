"""The teach button: hold it, make the sound 3 times (sim mic), the box learns "sound 1".

The GPIO fake here mimics RPi.GPIO's input side as the real library behaves:
setup() before a numbering mode, or input() on a pin never set up, raise
RuntimeError with the library's messages; a pull-up input reads HIGH until
the button (to ground) is pressed.
"""

from __future__ import annotations

import sys
import types

import pytest

from device.config import TeachConfig
from device.hardware.mic import PlaylistMic
from device.screen.palette import class_colour
from device.sound.taught import TaughtStore, colour_hex
from device.sound.teach_button import FULL_TEXT, ButtonTeacher, Prompt, TeachButton, TeachSession
from taught_helpers import StandInModel, join, silence, tone

pytestmark = pytest.mark.device_venv

OPEN_SET = {"min_confidence": 0.5, "taught_max_distance": 0.15, "max_centre_distance": 0.15}
DOG = 110 * 1.5 ** 3


def fake_gpio(pressed_between=(0.0, 0.0), clock=None):
    """An RPi.GPIO-like module; the button (active low) is down while clock() is in ``pressed_between``."""
    g = types.SimpleNamespace(BCM=11, BOARD=10, IN=1, OUT=0, LOW=0, HIGH=1, PUD_OFF=20, PUD_DOWN=21, PUD_UP=22)
    state = {"mode": None, "inputs": {}, "cleaned": []}

    def setmode(mode):
        if state["mode"] is not None and state["mode"] != mode:
            raise ValueError("A different mode has already been set!")
        state["mode"] = mode

    def setup(pin, direction, pull_up_down=g.PUD_OFF, initial=-1):
        if state["mode"] is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        if direction == g.IN:
            state["inputs"][pin] = pull_up_down

    def input_(pin):
        if pin not in state["inputs"]:
            raise RuntimeError("You must setup() the GPIO channel first")
        lo, hi = pressed_between
        down = lo <= clock() < hi
        if state["inputs"][pin] == g.PUD_UP:
            return g.LOW if down else g.HIGH
        return g.HIGH if down else g.LOW

    g.setmode, g.getmode, g.setup, g.input = setmode, lambda: state["mode"], setup, input_
    g.cleanup = lambda pin=None: state["cleaned"].append(pin)
    g.state = state
    return g


class StreamClock:
    """Time = audio fed so far (the button is polled once per mic chunk)."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def drive(teacher, mic, clock):
    mic.start()
    teaching = []
    while True:
        chunk = mic.read(timeout=1.0)
        if chunk is None:
            if mic.is_finished:
                break
            continue
        clock.t = (chunk.start + len(chunk.samples)) / 16000
        teaching.append(teacher.step(chunk.samples))
    mic.close()
    return teaching


def setup_teacher(tmp_path, audio, pressed=(0.2, 1.6), **teach_kw):
    clock = StreamClock()
    gpio = fake_gpio(pressed, clock)
    model = StandInModel(open_set=OPEN_SET)
    teach = TeachConfig(button_pin=5, hold_s=1.0, **teach_kw)
    shown: list[Prompt] = []
    taught = []
    teacher = ButtonTeacher(TeachButton(gpio, 5, teach.hold_s, clock), TaughtStore(tmp_path / "t"), model, teach,
                            show=shown.append, on_taught=taught.append)
    mic = PlaylistMic([(audio, 16000)], realtime=False, chunk_size=800)
    return teacher, mic, clock, shown, taught, gpio


def three_takes(freqs=(300, 304, 297)):
    parts = [silence(1.8)]  # the button is held during this
    for f in freqs:
        parts += [tone(f, 0.6), silence(1.0)]
    return join(*parts)


def test_hold_the_button_make_the_sound_three_times_and_it_is_learned(tmp_path):
    teacher, mic, clock, shown, taught, gpio = setup_teacher(tmp_path, three_takes())
    drive(teacher, mic, clock)
    texts = [p.text for p in shown]
    assert texts[0] == "Make the sound! 1/3"
    assert texts.count("Make the sound! 2/3") == 1 and texts.count("Make the sound! 3/3") == 1
    assert texts[-1] == "Learned sound 1!" and shown[-1].colour == class_colour("sound 1")
    (c,) = taught
    assert c.label == "sound 1" and len(c.takes) == 3 and c.mapping["colour"] == colour_hex(class_colour("sound 1"))
    store = TaughtStore(tmp_path / "t")
    assert store.labels() == ["sound 1"]
    lengths = [len(a) / 16000 for a in store.read_takes(store.get("sound 1"))]
    assert all(0.6 <= s <= 0.85 for s in lengths), lengths  # each take: the tone plus pre-roll and a short tail
    assert gpio.state["inputs"] == {5: gpio.PUD_UP}


def test_the_next_sound_is_sound_2(tmp_path):
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes())
    drive(teacher, mic, clock)
    teacher2, mic2, clock2, shown2, taught2, _ = setup_teacher(tmp_path, three_takes((700, 705, 695)))
    drive(teacher2, mic2, clock2)
    assert [c.label for c in taught2] == ["sound 2"]
    assert TaughtStore(tmp_path / "t").labels() == ["sound 1", "sound 2"]


def test_a_short_press_does_nothing_and_the_audio_goes_to_the_pipeline(tmp_path):
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes(), pressed=(0.2, 0.9))
    teaching = drive(teacher, mic, clock)
    assert not any(teaching) and shown == [] and taught == []


def test_a_sound_the_box_knows_is_not_learned_and_the_screen_says_so(tmp_path):
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes((DOG, DOG * 1.01, DOG * 0.99)))
    drive(teacher, mic, clock)
    assert taught == [] and shown[-1].text == "That sounds like dog_bark!"
    assert TaughtStore(tmp_path / "t").labels() == []


def test_no_sound_gives_up_after_wait_s(tmp_path):
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, silence(6.0), wait_s=3.0)
    teaching = drive(teacher, mic, clock)
    assert shown[-1].text.startswith("No sound heard") and taught == []
    assert teaching[-1] is False  # back to listening


def test_too_short_takes_are_asked_again():
    s = TeachSession(TeachConfig(takes=2, min_take_s=0.15))
    s.feed(join(silence(0.3), tone(300, 0.08), silence(1.0), tone(300, 0.5), silence(1.0),
                tone(300, 0.5), silence(1.0)))
    texts = [p.text for p in s.prompts]
    assert "Too short! Make the sound again." in texts and s.state == "done" and len(s.takes) == 2


def test_input_before_setup_raises_like_the_library():
    g = fake_gpio()
    with pytest.raises(RuntimeError, match="setup"):
        g.input(5)
    TeachButton(g, 5, 1.0, clock=lambda: 0.0)  # sets BCM itself when no mode is set
    assert g.getmode() == g.BCM


def test_button_and_leds_share_the_numbering_mode():
    g = fake_gpio()
    g.setmode(g.BCM)  # the LEDs set it first
    b = TeachButton(g, 6, 0.5, clock=lambda: 0.0)
    b.close()
    b.close()
    assert g.state["cleaned"] == [6]


def test_a_sound_learned_while_running_is_heard_by_the_next_pipeline(tmp_path):
    from device.config import Config, SoundConfig
    from device.frontend import LogMelParams
    from device.runtime.responder import Responder, SetLed
    from device.sound.open_set import OpenSetModel
    from device.sound.pipeline import ClassDetected, SoundPipeline
    from device.sound.teach import build_decider
    from device.sound.teach_button import add_taught

    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes())
    decision = OpenSetModel(teacher.model, build_decider(teacher.model, teacher.teach))
    responder = Responder(Config(), labels=teacher.model.labels)
    teacher.on_taught = lambda c: add_taught(decision, responder, c)
    drive(teacher, mic, clock)
    assert decision.labels[-2:] == ["sound 1", "unknown"]
    pipe = SoundPipeline(decision.predict, decision.labels, LogMelParams(), SoundConfig(max_latency_s=None))
    audio = join(silence(0.5), tone(301, 1.0), silence(1.0))
    events = [e for i in range(0, len(audio), 800) for e in pipe.step(audio[i : i + 800], i)]
    (heard,) = [e for e in events if isinstance(e, ClassDetected)]
    assert heard.label == "sound 1"
    (led,) = [a for a in responder.on_event(heard) if isinstance(a, SetLed)]
    assert led.colour == pytest.approx(class_colour("sound 1"), abs=1 / 255)


def test_open_button_from_config(monkeypatch, tmp_path):
    from device.sound.teach_button import open_button

    assert open_button(TeachConfig()) is None  # no [teach] button_pin: no button
    now = [1.0]
    gpio = fake_gpio((2.0, 10.0), clock=lambda: now[0])  # pressed a second after the box starts
    module = types.ModuleType("RPi.GPIO")
    module.__dict__.update(vars(gpio))
    package = types.ModuleType("RPi")
    package.GPIO = module
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", module)
    monkeypatch.setenv("LG_WD", str(tmp_path))
    button = open_button(TeachConfig(button_pin=26, hold_s=0.5), gpio_module="RPi.GPIO", clock=lambda: now[0])
    now[0] = 3.0
    assert button.pin == 26 and button.is_pressed and gpio.state["inputs"] == {26: gpio.PUD_UP}


def test_a_full_card_is_not_blamed_on_the_sound(tmp_path, monkeypatch):
    """Saving fails (card full or read-only): the child is not told the takes don't match, nothing is half
    stored, and the box goes on."""
    import errno

    from device.sound import taught as taught_mod

    def full_card(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(taught_mod, "write_wav", full_card)
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes())
    drive(teacher, mic, clock)
    assert taught == [] and shown[-1].text == "I couldn't save that sound! Ask a grown-up to check the box."
    assert TaughtStore(tmp_path / "t").labels() == [] and list((tmp_path / "t").iterdir()) == []
    assert not teacher.active


def test_a_full_box_says_so_when_the_button_is_held_and_asks_for_no_takes(tmp_path):
    """[teach] max_sounds: a button held all day must not fill the card; the screen says why at once."""
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes(), max_sounds=1)
    drive(teacher, mic, clock)
    assert [c.label for c in taught] == ["sound 1"]
    teacher2, mic2, clock2, shown2, taught2, _ = setup_teacher(tmp_path, three_takes((700, 705, 695)), max_sounds=1)
    teaching = drive(teacher2, mic2, clock2)
    assert taught2 == [] and [p.text for p in shown2] == [FULL_TEXT]  # no "Make the sound!" prompt first
    assert not any(teaching)  # the audio went on to the pipeline
    assert TaughtStore(tmp_path / "t").labels() == ["sound 1"]


def test_clicks_every_few_seconds_cannot_keep_a_session_open_for_ever(tmp_path):
    """Too-short takes restart the wait; the session as a whole still ends, and the box listens again."""
    click = join(tone(900, 0.05), silence(1.95))
    audio = join(silence(1.8), *[click] * 60)  # two minutes of a clock ticking every 2 s
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, audio, wait_s=3.0, take_s=2.0)
    teaching = drive(teacher, mic, clock)
    assert taught == [] and shown[-1].text.startswith("That took too long")
    limit = 3 * (3.0 + 2.0)
    ended = len(teaching) - teaching[::-1].index(True)  # chunks (0.05 s) until the last one taught
    assert ended * 0.05 <= 1.8 + limit + 0.5 and not teaching[-1]
    assert sum(p.text.startswith("Too short") for p in shown) >= 3  # the clicks were heard and refused


def test_the_button_runs_no_crash_recovery_inside_the_running_box(tmp_path):
    """A CLI half-way through replacing a sound (old one moved aside) while a child teaches with the button:
    the box leaves the CLI's folders alone."""
    teacher, mic, clock, shown, taught, _ = setup_teacher(tmp_path, three_takes())
    store = TaughtStore(tmp_path / "t")
    store.root.mkdir(parents=True)
    aside = store.root / ".old-moo.0123abcd"
    aside.mkdir()
    drive(teacher, mic, clock)
    assert [c.label for c in taught] == ["sound 1"] and aside.is_dir() and not (store.root / "moo").exists()


def test_a_button_that_reads_pressed_at_start_is_not_used(monkeypatch, caplog):
    """No pull-up (Jetson.GPIO ignores pull_up_down) or a stuck button: it would start teaching by itself."""
    from device.hardware import leds as leds_mod
    from device.sound.teach_button import open_button

    clock = StreamClock()
    gpio = fake_gpio((0.0, 1e9), clock)  # reads LOW from the start
    gpio.JETSON_INFO = {"TYPE": "JETSON_ORIN_NANO"}
    monkeypatch.setattr(leds_mod, "import_gpio", lambda name=None: gpio)
    assert open_button(TeachConfig(button_pin=5), clock=clock) is None
    text = caplog.text
    assert "no internal pull-up" in text and "reads pressed as the box starts" in text
    assert gpio.state["cleaned"] == [5]  # the pin released again
    released = fake_gpio((0.0, 0.0), clock)
    monkeypatch.setattr(leds_mod, "import_gpio", lambda name=None: released)
    assert open_button(TeachConfig(button_pin=5), clock=clock) is not None
