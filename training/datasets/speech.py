"""Spoken words and vocal imitations ("moo", "meow", "choo choo") rendered with espeak-ng.

A child teaches the box by voice as often as with a toy, so the embedding must
group one word said by many voices and keep different words apart. espeak-ng
(Debian package ``espeak-ng``; the Makefile installs it for training, the
device never needs it) renders each word in many voices, pitches and speeds.

Held out, never trained on: ``TEST_WORDS`` (the few-shot test's new words) and
``TEST_VOICES`` (unseen speakers, also used for the negatives stream's speech);
``CALIBRATION_VOICES`` speak the calibration negatives of the unknown decision.
Renders are cached as WAV under ``.cache/espeak`` (gitignored) keyed by all
their settings, so a second run costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from device.errors import SaySeeError
from device.config import PROJECT_ROOT

TRAIN_WORDS = (
    "moo", "meow", "woof woof", "choo choo", "baa", "oink oink", "quack quack", "tweet tweet", "neigh",
    "ribbit", "buzz", "beep beep", "tick tock", "vroom", "boom", "splash", "achoo", "wow", "hello",
    "bye bye", "mama", "ball", "cat", "yes", "water", "apple", "banana", "train", "hooray", "peekaboo",
    "roar", "zoom",
)
TEST_WORDS = (
    "ding dong", "honk honk", "cock a doodle doo", "hiss", "knock knock", "uh oh", "dada", "doggy",
    "no no", "bus", "more", "teddy",
)
TRAIN_VOICES = (
    "en+m1", "en+m2", "en+m3", "en+m4", "en+f1", "en+f2", "en+f3", "en+croak", "en+klatt", "en-us+m5",
    "en-us+f5", "en+Andy", "en+Annie", "en+robert", "en+steph", "en+grandpa",
)
CALIBRATION_VOICES = ("en+m8", "en+f5", "en+norbert", "en+shelby")  # open-set calibration only
TEST_VOICES = ("en+m7", "en-us+f4", "en+whisperf", "en+kaukovalta", "en+Tweaky", "en-gb-scotland+m6")
# Sentences for the negatives stream: adult speech that must never become a picture.
SENTENCES = {
    "en": ("the weather is lovely today, shall we go for a walk", "could you pass me the salt please",
           "I will call you back after the news", "dinner is ready in ten minutes",
           "have you seen my keys anywhere", "the meeting moved to thursday afternoon"),
    "de": ("das Wetter ist heute sehr schön", "kannst du mir bitte das Salz geben", "wir fahren morgen in die Stadt"),
    "fr": ("il fait très beau aujourd'hui", "le dîner est prêt dans dix minutes", "où sont mes clés"),
    "es": ("hace muy buen tiempo hoy", "la cena está lista en diez minutos", "dónde están mis llaves"),
}
SENTENCE_VOICES = {"en": TEST_VOICES, "de": ("de+m7", "de+f4"), "fr": ("fr+m7", "fr+f4"), "es": ("es+m7", "es+f4")}
CACHE = PROJECT_ROOT / ".cache" / "espeak"


class EspeakMissing(SaySeeError):
    """espeak-ng is needed to render speech for training and is not installed."""


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakMissing("espeak-ng not found: it renders the spoken words for training "
                            "(apt-get install espeak-ng, or run `make models` as root)")
    return exe


def render(text: str, voice: str, pitch: int = 50, speed: int = 160, sample_rate: int = 16000,
           cache: Path | None = None) -> np.ndarray:
    """``text`` spoken by ``voice`` at ``pitch`` (0-99) and ``speed`` (words/min): float32 mono, leading silence trimmed."""
    from training.datasets.audio_io import read_audio

    cache = Path(cache or CACHE)
    key = hashlib.sha256(f"{text}|{voice}|{int(pitch)}|{int(speed)}".encode()).hexdigest()[:20]
    path = cache / f"{key}.wav"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.wav")
        r = subprocess.run([espeak_binary(), "-v", voice, "-p", str(int(pitch)), "-s", str(int(speed)),
                            "-w", str(tmp), text], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or not tmp.is_file():
            raise SaySeeError(f"espeak-ng -v {voice}: could not render {text!r} ({r.stderr.strip()[:200]})")
        os.replace(tmp, path)
    x = read_audio(path, sample_rate)
    loud = np.flatnonzero(np.abs(x) > 0.01 * max(float(np.max(np.abs(x))), 1e-9))
    return np.asarray(x[loud[0]:] if len(loud) else x, dtype=np.float32)


def word_take(word: str, voices, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One take of ``word``: a random voice from ``voices``, random pitch and speed."""
    voice = str(rng.choice(list(voices)))
    return render(word, voice, int(rng.integers(20, 90)), int(rng.integers(110, 230)), sample_rate)
