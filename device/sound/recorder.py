"""`python -m device record-sound`: record takes of one sound class for training.

    python -m device record-sound --label dog_bark --seconds 4 --count 10 [--out data/recordings]

Each take is preceded by a countdown (stdout, plus the display and LED when
``--indicators`` is given or objects are passed in) and written as
``OUT/<label>/<label>_<YYYYmmdd-HHMMSS>_<n>.wav`` (mono int16 at the mic's
pipeline rate, 16 kHz), the folder-per-class layout that
``make train-sound FORMAT=folders DATA=OUT`` trains on.

A take is never lost and never half-written under a real name: it is written
to a dot-prefixed ``.partial`` file in the same folder (the folders loader skips
dot files), fsynced, then *linked* to its final name, which fails instead of
overwriting if that name exists (a new name is picked). SIGTERM/SIGINT only set
a flag: a take being written is finished; a take still being captured is
discarded, and the process exits 128+signal.

The countdown runs on the microphone's clock (samples read and thrown away), so
with a live mic it takes real seconds and with a fast simulated mic none, and the
take always starts with the audio that follows it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import signal
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from device.errors import InputFileError, SaySeeError
from device.hardware.base import INPUT_STALL_S, Display, Leds, Mic, Scene
from device.atomic import fsync_dir as _fsync_dir

DEFAULT_OUT = "data/recordings"
COUNTDOWN_COLOUR = (1.0, 0.55, 0.0)  # amber: get ready
RECORDING_COLOUR = (1.0, 0.0, 0.0)  # red: recording
STALE_PARTIAL_S = 3600.0

_LABEL_OK = re.compile(r"^\w[\w.\- ]*$", re.UNICODE)


class RecorderError(SaySeeError):
    """A bad label, output folder or recording setup (one line, non-zero exit)."""


def validate_label(label: str) -> str:
    """A class label that is safe as a folder and file name, or RecorderError."""
    raw = label
    label = label.strip()
    if not label:
        raise RecorderError("--label is empty; give the sound class name, e.g. --label dog_bark")
    if "/" in label or "\\" in label or os.sep in label or (os.altsep and os.altsep in label):
        raise RecorderError(f"--label {raw!r}: must not contain path separators ('/' or '\\')")
    if label.startswith((".", "_")):
        raise RecorderError(f"--label {raw!r}: must not start with '.' or '_' (training skips such folders)")
    if len(label) > 64:
        raise RecorderError(f"--label {raw!r}: too long (at most 64 characters)")
    if not _LABEL_OK.match(label) or label.endswith((".", " ")):
        raise RecorderError(
            f"--label {raw!r}: use letters, digits, '_', '-', '.' or spaces (e.g. dog_bark)")
    return label


def write_take(folder: Path, stem: str, samples: np.ndarray, sample_rate: int) -> Path:
    """Write one take durably as ``folder/<stem>.wav`` without ever overwriting a file.

    If that name is taken (a second run in the same second, or a file copied in),
    ``<stem>-2.wav``, ``-3``... is used. Returns the final path.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.{os.getpid()}.wav.partial"
    data = np.ascontiguousarray(np.asarray(samples, dtype=np.int16)).astype("<i2", copy=False)
    try:
        with open(tmp, "wb") as f:
            with wave.open(f, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(int(sample_rate))
                w.setnframes(len(data))  # header right from the start
                w.writeframes(data.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        for i in range(1, 10000):
            final = folder / (f"{stem}.wav" if i == 1 else f"{stem}-{i}.wav")
            try:
                # link() refuses to replace an existing name, unlike rename().
                os.link(tmp, final)
            except FileExistsError:
                continue
            except OSError:
                # FAT/exFAT USB sticks have no hard links: check, then rename.
                if final.exists():
                    continue
                os.rename(tmp, final)
                _fsync_dir(folder)
                return final
            tmp.unlink()
            _fsync_dir(folder)
            return final
        raise RecorderError(f"{folder}: no free file name for {stem}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def remove_stale_partials(folder: Path, max_age_s: float = STALE_PARTIAL_S) -> int:
    """Delete ``.partial`` files left by a recorder that was killed hard (SIGKILL, power cut)."""
    removed = 0
    if not folder.is_dir():
        return 0
    now = time.time()
    for p in folder.glob(".*.partial"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > max_age_s:
                p.unlink()
                removed += 1
    return removed


@dataclass
class RecordResult:
    """What a recording session produced."""

    saved: list[Path] = field(default_factory=list)
    discarded: int = 0  # takes cut short by a stop request or the end of a finite source
    stopped_by: Optional[str] = None  # "SIGTERM", "SIGINT", "end of input", a lost mic or None
    dropped_samples: int = 0
    lost_input: bool = False  # the mic stopped delivering (unplugged) rather than ending


class _Indicators:
    """Display + LED feedback that can never cost a take: failures are reported once, then ignored."""

    def __init__(self, label: str, display: Optional[Display], leds: Optional[Leds], log: Callable[[str], None]):
        self.label, self.display, self.leds, self.log = label, display, leds, log
        self._failed: set[str] = set()

    def _safe(self, what: str, fn: Callable[[], Any]) -> None:
        if what in self._failed:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - feedback is optional, the take is not
            self._failed.add(what)
            self.log(f"record-sound: warning: {what} failed ({e}); carrying on without it")

    def show(self, text: str, colour: tuple[float, float, float]) -> None:
        if self.display is not None:
            scene = Scene(mode="sound", label=self.label, colour=colour, status=text)
            self._safe("display", lambda: self.display.show(scene))
        if self.leds is not None:
            self._safe("leds", lambda: self.leds.set(colour, 1.0))

    def off(self) -> None:
        if self.leds is not None:
            self._safe("leds", self.leds.off)
        if self.display is not None:
            self._safe("display", lambda: self.display.show(Scene(mode="sound", label=None, status="done")))


def record_takes(
    mic: Mic,
    label: str,
    seconds: float,
    count: int,
    out: str | os.PathLike,
    *,
    countdown: float = 3.0,
    display: Optional[Display] = None,
    leds: Optional[Leds] = None,
    stop: Optional[threading.Event] = None,
    log: Callable[[str], None] = print,
    now: Callable[[], float] = time.time,
    log_progress: Optional[Callable[[str], None]] = None,
) -> RecordResult:
    """Record ``count`` takes of ``seconds`` each from ``mic`` into ``out/<label>/``.

    ``mic`` is any started-or-not :class:`Mic`; it is started here and left open
    (the caller owns it). ``stop`` is polled between chunks: when set, a take
    being captured is discarded and the function returns.
    """
    label = validate_label(label)
    if not math.isfinite(seconds) or seconds <= 0:
        raise RecorderError(f"--seconds {seconds:g}: must be a positive, finite number of seconds")
    if not math.isfinite(countdown):
        raise RecorderError(f"--countdown {countdown:g}: must be a finite number of seconds")
    if count <= 0:
        raise RecorderError(f"--count {count}: must be at least 1")
    folder = Path(out) / label
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RecorderError(f"{folder}: cannot create the output folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise RecorderError(f"{folder}: not writable")
    stale = remove_stale_partials(folder)
    if stale:
        log(f"record-sound: removed {stale} unfinished take(s) left by an earlier run that was killed")
    stop = stop or threading.Event()
    rate = int(getattr(mic, "sample_rate", 16000))
    take_len = int(round(seconds * rate))
    ui = _Indicators(label, display, leds, log)
    result = RecordResult()
    mic.start()
    # `pending` holds samples read past the end of a countdown or a take, so the
    # next phase starts exactly where the previous one ended.
    pending = np.zeros(0, np.int16)
    next_index: Optional[int] = None

    def take_samples(n: int, on_progress: Callable[[int], None] | None = None) -> Optional[np.ndarray]:
        """Exactly n samples from the mic, or None if stopped / the source ended."""
        nonlocal pending, next_index
        parts, have = [], 0
        if len(pending):
            use = pending[:n]
            parts.append(use)
            have = len(use)
            pending = pending[n:]
        silent_since = None
        while have < n:
            if stop.is_set():
                return None
            chunk = mic.read(timeout=0.2)
            if chunk is None:
                if getattr(mic, "is_finished", False):
                    result.stopped_by = result.stopped_by or "end of input"
                    return None
                silent_since = silent_since if silent_since is not None else now()
                if now() - silent_since > INPUT_STALL_S:  # a live mic delivers every chunk: this one is gone
                    result.stopped_by = "the microphone stopped delivering (unplugged?)"
                    result.lost_input = True
                    return None
                continue
            silent_since = None
            x = np.asarray(chunk.samples, dtype=np.int16).reshape(-1)
            if next_index is not None and chunk.start > next_index:
                # The mic's ring dropped audio (we fell behind); keep the take, say so.
                result.dropped_samples += chunk.start - next_index
            next_index = chunk.start + len(x)
            need = n - have
            parts.append(x[:need])
            pending = x[need:]
            have += min(len(x), need)
            if on_progress is not None:
                on_progress(have)
        return np.concatenate(parts) if parts else np.zeros(0, np.int16)

    try:
        for n in range(1, count + 1):
            # --- countdown, on the mic's clock
            whole = int(np.ceil(countdown)) if countdown > 0 else 0
            if whole:
                log(f"take {n}/{count}: get ready...")
                for k in range(whole, 0, -1):
                    log(f"  {k}")
                    ui.show(str(k), COUNTDOWN_COLOUR)
                    step = countdown - (whole - 1) if k == whole else 1.0
                    if take_samples(int(round(step * rate))) is None:
                        return _finish(result, stop, n, False, log, folder)
            log(f"take {n}/{count}: recording {seconds:g} s...")
            ui.show(f"recording {n}/{count}", RECORDING_COLOUR)
            started = now()
            dropped_before = result.dropped_samples
            shown = [-1]

            def progress(have: int) -> None:  # whole seconds, on one line
                if have // rate != shown[0]:
                    shown[0] = have // rate
                    log_progress(f"  {have / rate:4.1f} / {seconds:g} s")

            audio = take_samples(take_len, progress if log_progress else None)
            if audio is None:
                return _finish(result, stop, n, True, log, folder)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
            try:
                path = write_take(folder, f"{label}_{stamp}_{n}", audio, rate)
            except OSError as e:  # a full card: the takes already saved stay, and say so
                raise RecorderError(f"{folder}: take {n} not saved ({e.strerror or e}); {len(result.saved)} "
                                    f"take(s) saved before it") from None
            result.saved.append(path)
            gap = result.dropped_samples - dropped_before
            note = f" (warning: {gap / rate:.2f} s of audio dropped: the box was too busy)" if gap else ""
            log(f"take {n}/{count}: saved {path}{note}")
        return result
    finally:
        ui.off()


def _finish(result: RecordResult, stop: threading.Event, n: int, mid_take: bool,
            log: Callable[[str], None], folder: Path) -> RecordResult:
    if stop.is_set() and result.stopped_by in (None, "end of input"):
        result.stopped_by = getattr(stop, "reason", None) or "stop request"
    if mid_take:
        result.discarded += 1
        log(f"take {n}: stopped ({result.stopped_by}) before it was complete: discarded, nothing written")
    log(f"record-sound: {len(result.saved)} take(s) saved in {folder}")
    return result


# ------------------------------------------------------------------ command line


def _load_config(path: Optional[str]):
    from device.config import Config, load_config

    if path:
        return load_config(path)
    default = os.environ.get("SAYSEE_CONFIG", "/etc/saysee/config.toml")
    return load_config(default) if Path(default).is_file() else Config()


def _open_mic(cfg, args) -> Mic:
    from device.hardware.mic import open_mic

    m = cfg.mic
    backend = args.mic or m.backend
    playlist = list(args.sim) if args.sim else list(m.playlist)
    if args.sim:
        backend = "sim"
    realtime = m.realtime if args.realtime is None else args.realtime
    device = args.device if args.device is not None else (m.device or None)
    try:
        # A longer buffer than the box's: a take must survive a slow SD card write.
        return open_mic(backend, dataclasses.replace(m, device=device or "", playlist=tuple(playlist),
                                                     realtime=realtime, buffer_seconds=max(m.buffer_seconds, 5.0)))
    except SaySeeError as e:
        if "busy" in str(e):
            raise type(e)(f"{e} (is the box running? stop it first: sudo systemctl stop saysee)") from None
        raise


def _open_indicators(cfg, log):
    """LED and display from the config; each is optional and failure is only a warning."""
    leds = display = None
    try:
        from device.hardware.leds import open_leds

        leds = open_leds(None, cfg.leds)
    except Exception as e:  # noqa: BLE001
        log(f"record-sound: warning: no LED ({e})")
    try:
        from device.hardware.display import open_display
        from device.screen.render import Renderer

        display = open_display(None, cfg.display, renderer=Renderer, out_dir=cfg.display.out_dir or None)
    except Exception as e:  # noqa: BLE001
        log(f"record-sound: warning: no display ({e})")
    return leds, display


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device record-sound",
        description="Record takes of one sound class as OUT/<label>/<label>_<time>_<n>.wav for "
                    "`make train-sound FORMAT=folders DATA=OUT`.")
    p.add_argument("--label", required=True, help="sound class name, e.g. dog_bark (becomes the folder name)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each take (default 4)")
    p.add_argument("--count", type=int, default=1, help="number of takes (default 1)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"dataset folder (default {DEFAULT_OUT})")
    p.add_argument("--countdown", type=float, default=3.0, help="seconds of countdown before each take (0: none)")
    p.add_argument("--config", default=None,
                   help="config file for [mic] (and [leds]/[display]); default /etc/saysee/config.toml if present")
    p.add_argument("--mic", default=None, choices=("auto", "real", "sim"), help="mic backend (overrides the config)")
    p.add_argument("--device", default=None, help="input device name substring or index (overrides the config)")
    p.add_argument("--sim", action="append", default=[], metavar="WAV",
                   help="use a WAV playlist as the mic (repeatable); implies --mic sim")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=None,
                      help="pace the sim playlist in real time")
    pace.add_argument("--fast", dest="realtime", action="store_false", help="read the sim playlist as fast as possible")
    p.add_argument("--indicators", action="store_true", help="also count down on the LED and display from the config")
    return p


def main(argv: Optional[list[str]] = None, *, mic: Optional[Mic] = None,
         display: Optional[Display] = None, leds: Optional[Leds] = None) -> int:
    """CLI entry; ``mic``/``display``/``leds`` may be injected (tests, other front ends)."""
    args = _parser().parse_args(argv)
    label = validate_label(args.label)  # before any device opens
    if not math.isfinite(args.seconds) or args.seconds <= 0:
        raise RecorderError(f"--seconds {args.seconds:g}: must be a positive, finite number of seconds")
    if args.count <= 0:
        raise RecorderError(f"--count {args.count}: must be at least 1")
    if not math.isfinite(args.countdown) or args.countdown < 0:
        raise RecorderError(f"--countdown {args.countdown:g}: must be 0 or more (finite)")
    for wav in args.sim:
        if not Path(wav).is_file():
            raise InputFileError(f"{wav}: no such WAV file (--sim)")

    stop = threading.Event()
    stop.reason = None  # type: ignore[attr-defined]

    def on_signal(signum, _frame):
        # Only a flag: a take being written finishes; one being captured is discarded.
        stop.reason = signal.Signals(signum).name  # type: ignore[attr-defined]
        stop.set()

    own: list[Any] = []
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        cfg = None
        if mic is None or (args.indicators and display is None and leds is None):
            cfg = _load_config(args.config)
        if mic is None:
            mic = _open_mic(cfg, args)
            own.append(mic)
        if args.indicators and display is None and leds is None:
            leds, display = _open_indicators(cfg, print)
            own += [d for d in (leds, display) if d is not None]
        result = record_takes(mic, label, args.seconds, args.count, args.out, countdown=args.countdown,
                              display=display, leds=leds, stop=stop, log=print,
                              log_progress=lambda line: print(line, end="\r" if sys.stdout.isatty() else "\n",
                                                              flush=True))
    finally:
        for dev in reversed(own):
            with contextlib.suppress(Exception):
                dev.close()
        for s, h in old.items():
            signal.signal(s, h)
    sys.stdout.flush()
    if stop.is_set():
        signum = getattr(signal, str(getattr(stop, "reason", "") or "SIGTERM"), signal.SIGTERM)
        return 128 + int(signum)
    if result.lost_input:
        print(f"record-sound: error: {result.stopped_by} after {len(result.saved)} of {args.count} take(s); "
              "those were kept", file=sys.stderr)
        return 1
    if len(result.saved) < args.count:
        print(f"record-sound: error: the microphone ran out of audio after {len(result.saved)} of "
              f"{args.count} take(s)", file=sys.stderr)
        return 1
    return 0

