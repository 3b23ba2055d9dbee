"""espeak-ng words: rendered, cached, held-out words and voices kept apart, a clear line when espeak-ng is missing."""

import subprocess

import numpy as np
import pytest

from training.datasets import speech


def test_held_out_words_and_voices_never_overlap_training():
    assert not set(speech.TRAIN_WORDS) & set(speech.TEST_WORDS)
    voices = [set(speech.TRAIN_VOICES), set(speech.TEST_VOICES), set(speech.CALIBRATION_VOICES)]
    assert all(not (a & b) for i, a in enumerate(voices) for b in voices[i + 1:])


def test_missing_espeak_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(speech.EspeakMissing, match="apt-get install espeak-ng"):
        speech.render("moo", "en+m1", cache=tmp_path)


@pytest.mark.skipif(speech.shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_render_is_cached_and_voices_differ(monkeypatch, tmp_path):
    a = speech.render("meow", "en+m1", 50, 160, cache=tmp_path)
    assert a.dtype == np.float32 and 0.2 < len(a) / 16000 < 2.0 and np.max(np.abs(a)) > 0.05
    assert abs(a[0]) > 0.001 * np.max(np.abs(a))  # leading silence trimmed

    def no_espeak(*args, **kwargs):
        raise AssertionError("espeak-ng ran although the render is cached")

    monkeypatch.setattr(subprocess, "run", no_espeak)
    assert np.array_equal(speech.render("meow", "en+m1", 50, 160, cache=tmp_path), a)
    monkeypatch.undo()
    b = speech.render("meow", "en+f3", 50, 160, cache=tmp_path)
    assert len(b) != len(a) or not np.allclose(a, b)


def test_a_failing_render_names_the_voice(monkeypatch, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: "/bin/false")
    with pytest.raises(speech.SaySeeError, match="espeak-ng -v nosuchvoice"):
        speech.render("moo", "nosuchvoice", cache=tmp_path)


def test_pseudo_words_are_new_distinct_and_reproducible():
    words = speech.pseudo_words(300)
    assert len(set(words)) == 300 and words == speech.pseudo_words(300)
    assert not set(words) & (set(speech.TRAIN_WORDS) | set(speech.TEST_WORDS))
    # No made-up word may share three letters in a row with a held-out test word ("hiss" / "hissoo").
    held = [w.replace(" ", "") for w in speech.TEST_WORDS]
    assert not [w for w in words for i in range(len(w) - 2) if any(w[i:i + 3] in h for h in held)]


def test_training_voices_keep_every_held_out_speaker_out():
    variant = lambda v: v.split("+", 1)[1]  # noqa: E731
    held = {variant(v) for v in speech.TEST_VOICES + speech.CALIBRATION_VOICES} | {"whisper"}
    assert not held & set(speech.TRAIN_VARIANTS)
    assert not [v for v in speech.TRAIN_VOICES if v.startswith("en-gb-scotland")]
    assert len(set(speech.TRAIN_VOICES)) == len(speech.TRAIN_VOICES) >= 100


@pytest.mark.skipif(speech.shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_every_voice_names_a_real_espeak_variant():
    # espeak-ng falls back to the plain voice for an unknown variant without a word: two "speakers"
    # would silently be one. Its variant list names each variant's file as "!v/<name>".
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    known = {line.split()[4].split("/", 1)[1] for line in out.splitlines()[1:] if "!v/" in line}
    used = {v.split("+", 1)[1] for v in speech.TRAIN_VOICES + speech.TEST_VOICES + speech.CALIBRATION_VOICES}
    assert used <= known, sorted(used - known)
