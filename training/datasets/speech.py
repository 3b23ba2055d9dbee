"""Spoken words and vocal imitations ("moo", "meow", "choo choo") rendered with espeak-ng.

A child teaches the box by voice as often as with a toy, so the embedding must
group one word said by many voices and keep different words apart. espeak-ng
(Debian package ``espeak-ng``; the Makefile installs it for training, the
device never needs it) renders each word in many voices, pitches and speeds.

Held out, never trained on: ``TEST_WORDS`` (the few-shot test's new words) and
``TEST_VOICES`` (unseen speakers, also used for the negatives stream's speech);
``CALIBRATION_VOICES`` speak the calibration negatives of the unknown decision
(``CORE_WORDS``). Training hears ``TRAIN_WORDS`` (a child's vocabulary) and
``pseudo_words`` (made-up syllable words: the embedding must place words it
never heard, so it needs many more than a child's few) in ``TRAIN_VOICES``.
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

# The words a child says to the box most often: trained on, and (in calibration voices) the open-set calibration.
CORE_WORDS = (
    "moo", "meow", "woof woof", "choo choo", "baa", "oink oink", "quack quack", "tweet tweet", "neigh",
    "ribbit", "buzz", "beep beep", "tick tock", "vroom", "boom", "splash", "achoo", "wow", "hello",
    "bye bye", "mama", "ball", "cat", "yes", "water", "apple", "banana", "train", "hooray", "peekaboo",
    "roar", "zoom",
)
# More of a child's world: an embedding that has heard a few hundred words places a new one apart from
# the rest; 32 words taught it mostly those 32 (5-way 3-shot on new words by unseen voices 65 %).
# Near rhymes of a test word ("kiss" / "hiss", "uh huh" / "uh oh", "ta da" / "dada") are left out.
MORE_WORDS = (
    "car", "dog", "fish", "bird", "duck", "cow", "pig", "sheep", "horse", "frog", "bee", "owl", "lion",
    "tiger", "monkey", "elephant", "snake", "mouse", "rabbit", "bear", "chicken", "goat", "donkey", "whale",
    "shark", "dinosaur", "rocket", "plane", "boat", "bike", "truck", "tractor", "digger", "fire engine",
    "police", "ambulance", "helicopter", "drum", "bell", "whistle", "trumpet", "guitar", "piano", "milk",
    "juice", "cookie", "cake", "bread", "cheese", "egg", "pizza", "soup", "spoon", "cup", "bath", "bed",
    "shoe", "sock", "hat", "coat", "book", "doll", "blocks", "car seat", "garden", "flower", "tree", "sun",
    "moon", "star", "rain", "snow", "wind", "cloud", "happy", "sad", "hungry", "sleepy", "big", "little",
    "up", "down", "open", "shut", "stop", "go", "again", "all gone", "oops", "yummy", "yucky",
    "ouch", "night night", "good morning", "thank you", "please", "sorry", "grandma", "grandpa", "baby",
    "sister", "brother", "kitty", "puppy", "bunny", "tweet", "growl", "purr", "squeak", "hoot hoot",
    "moo moo", "baa baa", "brrr", "la la la", "yippee", "whoosh", "pop", "crash", "bang",
    "tap tap", "clap clap", "jump", "run", "dance", "sing", "sleep", "eat", "drink", "play", "hug",
    "red", "blue", "green", "yellow", "purple", "orange", "pink", "one", "two", "three", "four", "five",
)
TRAIN_WORDS = CORE_WORDS + MORE_WORDS
TEST_WORDS = (
    "ding dong", "honk honk", "cock a doodle doo", "hiss", "knock knock", "uh oh", "dada", "doggy",
    "no no", "bus", "more", "teddy",
)
CALIBRATION_VOICES = ("en+m8", "en+f5", "en+norbert", "en+shelby")  # open-set calibration only
TEST_VOICES = ("en+m7", "en-us+f4", "en+whisperf", "en+kaukovalta", "en+Tweaky", "en-gb-scotland+m6")
# Training speakers: espeak-ng's voice variants (files under espeak-ng-data/voices/!v; an unknown name
# silently falls back to the plain voice) in six English accents. Held out of training: every variant a
# test or calibration voice uses, its whispering sibling, and the Scottish accent of the test voices.
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "croak", "klatt", "klatt2", "klatt3", "klatt4",
    "Andy", "Annie", "robert", "steph", "grandpa", "grandma", "adam", "Alex", "Alicia", "Andrea",
    "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene",
    "gustave", "Hugo", "iven", "Jacky", "john", "Lee", "linda", "Mario", "max", "Michael", "Mike",
    "pablo", "paul", "quincy", "rob", "sandro", "travis", "victor", "zac", "anika", "steph2",
)
TRAIN_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan")
TRAIN_VOICES = tuple(f"{a}+{v}" for v in TRAIN_VARIANTS for a in TRAIN_ACCENTS)
# Sentences for the negatives stream: adult speech that must never become a picture.
SENTENCES = {
    "en": ("the weather is lovely today, shall we go for a walk", "could you pass me the salt please",
           "I will call you back after the news", "dinner is ready in ten minutes",
           "have you seen my keys anywhere", "the meeting moved to thursday afternoon"),
    "de": ("das Wetter ist heute sehr schön", "kannst du mir bitte das Salz geben", "wir fahren morgen in die Stadt"),
    "fr": ("il fait très beau aujourd'hui", "le dîner est prêt dans dix minutes", "où sont mes clés"),
    "es": ("hace muy buen tiempo hoy", "la cena está lista en diez minutos", "dónde están mis llaves"),
}
# Sentences for the open-set calibration only (spoken by CALIBRATION_VOICES): never the stream's texts, since
# the thresholds are chosen on what these make the model say.
CALIBRATION_SENTENCES = ("the bus was late again this morning", "put the kettle on, I will be down in a minute",
                         "we ran out of milk so I went to the corner shop", "turn left at the second traffic light",
                         "my sister is visiting us next weekend", "that film was much longer than I expected",
                         "please remember to water the plants", "the printer upstairs is out of paper")
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


# Made-up words from these spellings (espeak-ng reads them as English): onset + vowel (+ coda) syllables.
_ONSETS = ("b", "d", "g", "k", "p", "t", "m", "n", "l", "r", "s", "sh", "ch", "f", "v", "z", "h", "w", "y",
           "j", "th", "bl", "st", "tr", "gr", "sn", "fl", "kw", "sp", "pl")
_VOWELS = ("a", "ee", "oo", "o", "i", "ay", "ow", "oy", "u", "ai", "er", "ar", "or", "ie")
_CODAS = ("", "", "", "n", "m", "k", "p", "t", "sh", "ng", "z", "l", "ks")


def pseudo_words(count: int, seed: int = 0) -> tuple[str, ...]:
    """``count`` distinct made-up words of 1-3 syllables, none sharing three letters in a row with a test word."""
    rng = np.random.default_rng([seed, 7001])
    banned = {w[i:i + 3] for w in (t.replace(" ", "") for t in TEST_WORDS) for i in range(len(w) - 2)}
    known = set(TRAIN_WORDS) | set(TEST_WORDS)
    out: list[str] = []
    while len(out) < count:
        n = int(rng.choice([1, 2, 2, 3]))
        word = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS))
                       + (str(rng.choice(_CODAS)) if k == n - 1 else "") for k in range(n))
        if word in known or any(word[i:i + 3] in banned for i in range(len(word) - 2)):
            continue
        known.add(word)
        out.append(word)
    return tuple(out)


def word_take(word: str, voices, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One take of ``word``: a random voice from ``voices``, random pitch and speed."""
    voice = str(rng.choice(list(voices)))
    return render(word, voice, int(rng.integers(20, 90)), int(rng.integers(110, 230)), sample_rate)
