"""The responder, driven directly: events in, actions out, no threads and no devices."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from device.config import config_from_dict
from device.marimba.pipeline import NoteOff, NoteOn
from device.runtime.responder import LED_OFF, Midi, Responder, SetLed, ShowScene
from device.screen.palette import class_colour, note_colour
from device.sound.pipeline import ClassCleared, ClassDetected

pytestmark = pytest.mark.device_venv


def responder(tmp_path, **sections):
    data = {"app": {"assets_dir": str(tmp_path)}, "synth": {"channel": 3, "release_s": 0.5}}
    data.update(sections)
    return Responder(config_from_dict(data, tmp_path / "box.toml"), labels=("dog_bark", "siren"),
                     notes=(60, 62, 64))


def midi(actions):
    return [(a.message.type, a.message.channel, getattr(a.message, "note", None)) for a in actions
            if isinstance(a, Midi)]


def test_mapped_class_lights_led_plays_note_and_schedules_its_note_off(tmp_path):
    r = responder(tmp_path, mapping={"dog_bark": {"colour": "#00ff00", "program": 9, "note": 72,
                                                  "duration_s": 0.4}})
    actions = r.on_event(ClassDetected("dog_bark", 0.9, t=10.0))
    assert actions[0] == SetLed((0.0, 1.0, 0.0), 0.9)
    assert [(a.message.type, a.message.channel) for a in actions[1:]] == [("program_change", 2), ("note_on", 2)]
    assert r.due(10.39) == []  # not yet
    off = r.due(10.4)
    assert midi(off) == [("note_off", 2, 72)]
    assert r.due(99.0) == []  # sent once


def test_unmapped_class_uses_the_palette_and_sends_no_midi(tmp_path):
    r = responder(tmp_path)
    actions = r.on_event(ClassDetected("siren", 0.05, t=1.0))
    assert actions == [SetLed(class_colour("siren"), 0.15)]  # faint detections still visibly light the LED
    assert r.on_event(ClassCleared("siren", 2.0, "silence")) == [LED_OFF]


def test_self_sound_gate_lasts_note_plus_release(tmp_path):
    r = responder(tmp_path, mapping={"dog_bark": {"note": 72, "duration_s": 0.4}})
    assert not r.is_gated(5.0)
    r.on_event(ClassDetected("dog_bark", 0.9, t=5.0))
    assert r.is_gated(5.85) and not r.is_gated(5.95)  # 0.4 s note + 0.5 s release
    assert r.is_gated(9.0, synth_playing=True)
    off = responder(tmp_path, sound={"gate_while_synth": False}, mapping={"dog_bark": {"note": 72}})
    off.on_event(ClassDetected("dog_bark", 0.9, t=5.0))
    assert not off.is_gated(5.1, synth_playing=True)


def test_marimba_notes_map_to_midi_and_note_colours(tmp_path):
    r = responder(tmp_path, note_colours={"62": "#0000ff"})
    on = r.on_event(NoteOn(62, 127, 1.0))
    assert midi(on) == [("note_on", 2, 62)] and on[1] == SetLed((0.0, 0.0, 1.0), 1.0)
    assert r.on_event(NoteOn(60, 64, 1.1))[1] == SetLed(note_colour(60), 64 / 127)
    assert midi(r.on_event(NoteOff(62, 1.5))) == [("note_off", 2, 62)]


def test_picture_files_are_checked_once_when_the_mapping_loads(tmp_path, caplog):
    (tmp_path / "dog_bark.png").write_bytes(b"\x89PNG")
    with caplog.at_level(logging.WARNING, logger="saysee"):
        r = responder(tmp_path)
    assert r.mapping("dog_bark").picture == str(tmp_path / "dog_bark.png")
    assert r.mapping("siren").picture == ""  # missing: the screen draws the name instead
    warnings = [m for m in caplog.messages if "no picture for class siren" in m]
    (tmp_path / "siren.png").write_bytes(b"\x89PNG")  # appearing later changes nothing: checked once
    for _ in range(3):
        r.on_event(ClassDetected("siren", 0.9, t=1.0))
    assert len(warnings) == 1 and r.mapping("siren").picture == ""


class FakeSound:
    """The state a SoundPipeline exposes to the screen."""

    def __init__(self, current):
        self.current = current
        self.probabilities = {"dog_bark": 0.8, "siren": 0.2}
        self.spectrogram = np.zeros((4, 64), np.float32)
        self.last = type("Hop", (), {"level_dbfs": -20.4, "t": 3.5})()


def test_sound_scene_shows_the_heard_class_or_the_listening_card(tmp_path):
    r = responder(tmp_path, mapping={"dog_bark": {"colour": "#ff0000"}})
    heard = r.sound_scene(FakeSound("dog_bark"))
    assert isinstance(heard, ShowScene)
    s = heard.scene
    assert (s.mode, s.label, s.colour, s.timestamp) == ("sound", "dog_bark", (1.0, 0.0, 0.0), 3.5)
    assert s.status == "dog_bark  level -20 dBFS"
    quiet = r.sound_scene(FakeSound(None)).scene
    assert quiet.label is None and quiet.picture is None and quiet.status.startswith("listening")
    src = FakeSound("dog_bark")
    scene = r.sound_scene(src).scene
    src.spectrogram[:] = 1.0  # the pipeline keeps writing; the shown scene must not change
    assert not scene.spectrogram.any()


def test_one_note_ending_leaves_the_led_on_the_notes_still_sounding(tmp_path):
    """Chords and quick runs: the LED follows the newest bar still sounding, dark only when none is."""
    r = responder(tmp_path, note_colours={"60": "#ff0000", "64": "#00ff00"})
    r.on_event(NoteOn(60, 127, 1.0))
    r.on_event(NoteOn(64, 100, 1.1))
    assert r.on_event(NoteOff(64, 1.2))[1] == SetLed((1.0, 0.0, 0.0), 1.0)  # back to the bar still ringing
    r.on_event(NoteOn(64, 100, 1.3))
    assert r.on_event(NoteOff(60, 1.4))[1] == SetLed((0.0, 1.0, 0.0), 100 / 127)
    assert r.on_event(ClassCleared("siren", 1.45, "silence")) == [SetLed((0.0, 1.0, 0.0), 100 / 127)]
    assert r.on_event(NoteOff(64, 1.5))[1] == LED_OFF
    assert r.led_off() == [LED_OFF]
