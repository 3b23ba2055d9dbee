"""Getting used to the room: a class the room keeps playing in long sounds stops being shown; short sounds never.

The real streaming pipeline with a transparent predictor (the mel band of a tone
is its class), driven by arrays: stream time is the sample index.
"""

import dataclasses

import numpy as np
import pytest

from device.config import SoundConfig, config_from_dict
from device.errors import ConfigError
from device.sound.habituation import Habituation
from device.sound.labels import UNKNOWN
from device.sound.open_set import OpenSetDecider, OpenSetParams
from device.sound.pipeline import ClassDetected, SoundPipeline
from test_sound_pipeline import LABELS, P, band_predict, run, silence, tone

pytestmark = pytest.mark.device_venv

SETTINGS = SoundConfig(max_latency_s=None, habituate_s=10.0, habituate_window_s=60.0, habituate_long_s=3.0)


def shown(events):
    return [e.label for e in events if isinstance(e, ClassDetected)]


def test_counts_only_the_part_of_a_sound_past_long_s_and_forgets_after_the_window():
    h = Habituation(after_s=2.0, window_s=10.0, long_s=3.0)
    for k in range(40):  # 2 s of one sound at 0.05 s hops: never 3 s into it
        h.hear(k * 0.05, "low", 0.05, sound_so_far_s=k * 0.05)
    assert h.heard_s("low", 2.0) == 0.0 and not h.is_background("low", 2.0)
    for k in range(60, 120):  # 3.0 .. 5.95 s into a sound: 3 s counted
        h.hear(k * 0.05, "low", 0.05, sound_so_far_s=k * 0.05)
    assert h.heard_s("low", 6.0) == pytest.approx(3.0)
    assert h.is_background("low", 6.0) and h.background(6.0) == ["low"]
    assert not h.is_background("high", 6.0)
    assert h.is_background("low", 13.0)  # the last 10 s still hold 3.05 .. 5.95 s
    assert not h.is_background("low", 14.5)  # 4.55 .. 5.95: under 2 s
    assert h.heard_s("low", 16.0) == 0.0 and h.background(16.0) == []


def test_zero_turns_it_off():
    h = Habituation(after_s=0.0, window_s=10.0, long_s=0.0)
    h.hear(1.0, "low", 100.0, 100.0)
    assert not h.is_background("low", 1.0) and h.background(1.0) == []


def test_a_long_sound_the_room_keeps_playing_is_not_shown_until_the_room_quietens():
    pipe = SoundPipeline(band_predict, LABELS, P, SETTINGS)
    tv = run(pipe, np.concatenate([silence(1.0), tone(400, 15.0), silence(1.0)]))
    assert shown(tv) == ["low"]  # the TV's first sound is shown: nothing is background yet
    assert pipe.background == ("low",)
    later = run(pipe, np.concatenate([tone(400, 1.0), silence(1.0), tone(3000, 1.0), silence(1.0)]))
    assert shown(later) == ["high"]  # "low" is the room's background now; other classes are not
    # A minute later the room has been quiet: "low" is shown again.
    again = run(pipe, np.concatenate([silence(60.0), tone(400, 1.0), silence(1.0)]))
    assert shown(again) == ["low"] and pipe.background == ()


def test_a_child_repeating_a_short_sound_is_answered_every_time():
    pipe = SoundPipeline(band_predict, LABELS, P, SETTINGS)
    barks = np.concatenate([np.concatenate([tone(400, 2.5), silence(1.0)]) for _ in range(30)])
    assert shown(run(pipe, barks)) == ["low"] * 30
    assert pipe.background == ()


def test_off_shows_the_long_sounds_class_again_at_once():
    pipe = SoundPipeline(band_predict, LABELS, P, dataclasses.replace(SETTINGS, habituate_s=0.0))
    events = run(pipe, np.concatenate([tone(400, 15.0), silence(1.0), tone(400, 1.0), silence(1.0)]))
    assert shown(events) == ["low", "low"]


def test_a_pipeline_rebuilt_for_a_taught_sound_keeps_the_room_background():
    first = SoundPipeline(band_predict, LABELS, P, SETTINGS)
    run(first, np.concatenate([tone(400, 15.0), silence(1.0)]))
    second = SoundPipeline(band_predict, LABELS, P, SETTINGS, habituation=first.habituation)
    second.frontend.samples_seen = first.frontend.samples_seen
    assert second.background == ("low",)
    fresh = SoundPipeline(band_predict, LABELS, P, SETTINGS)
    audio = np.concatenate([tone(400, 1.0), silence(1.0)])
    start = first.frontend.samples_seen
    assert [e.label for i in range(0, len(audio), 1600) for e in second.step(audio[i:i + 1600], start + i)
            if isinstance(e, ClassDetected)] == []
    assert shown(run(fresh, audio)) == ["low"]


def test_rejected_windows_still_tell_what_the_room_plays():
    """A TV's music is mostly rejected as unknown, yet it is the nearest built-in class that it keeps playing."""
    e = np.eye(4, dtype=np.float32)
    far = np.array([0.7, 0.0, 0.0, 0.714], np.float32)  # 0.3 from "low"'s centre, 1.0 from the rest
    params = OpenSetParams(min_confidence=0.5, max_centre_distance=0.2, class_centres={"low": e[0], "high": e[1]})
    d = OpenSetDecider(LABELS, params, {"moo": e[2]})
    sure = d.scores(np.array([0.9, 0.1]), e[0])
    assert sure.heard == "low"
    rejected = d.scores(np.array([0.9, 0.1]), far)
    assert d.labels_out[int(np.argmax(rejected))] == UNKNOWN and rejected.heard == "low"
    taught = d.scores(np.array([0.6, 0.4]), e[2])
    assert d.labels_out[int(np.argmax(taught))] == "moo" and taught.heard is None

    # Through the pipeline: windows only ever rejected make "low" the background all the same.
    def tv(feats):
        return d.scores(band_predict(feats), far)

    pipe = SoundPipeline(tv, d.labels_out, P, SETTINGS, agree_labels=LABELS)
    run(pipe, np.concatenate([tone(400, 15.0), silence(1.0)]))
    assert pipe.background == ("low",)


def test_config_checks_the_keys():
    assert config_from_dict({"sound": {"habituate_s": 0}}).sound.habituate_s == 0.0
    with pytest.raises(ConfigError, match="habituate_s"):
        config_from_dict({"sound": {"habituate_s": -1}})
