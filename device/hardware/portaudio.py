"""PyAudio (PortAudio) device lookup shared by the mic and the audio out.

Both directions find a card the same way (default, index or name substring),
pick an int16 format the card accepts (the wanted rate if possible, else its
own; mono, else the channel counts cards insist on), explain open errors in
one line and close a stream that may already be dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from device.hardware.select import HardwareError, one_line

PYAUDIO_HINT = "pip install pyaudio; it needs portaudio19-dev from apt"
PA_DEVICE_UNAVAILABLE = -9985
PA_INVALID_DEVICE = -9996


@dataclass(frozen=True)
class Direction:
    """Which side of PortAudio a backend opens: capture ("input") or playback ("output")."""

    kind: str  # the backend's name in messages: "mic" | "audio_out"
    side: str  # "input" | "output"
    missing: str  # what to check when no device of this side exists

    @property
    def channels_key(self) -> str:
        return f"max{self.side.capitalize()}Channels"


INPUT = Direction("mic", "input", "is the USB microphone plugged in?")
OUTPUT = Direction("audio_out", "output", "is the speaker/HAT or USB card there?")


def list_devices(pa: Any, d: Direction) -> list[dict]:
    """Every device with at least one channel on this side, each info dict with its ``index``."""
    out = []
    for i in range(pa.get_device_count()):
        info = dict(pa.get_device_info_by_index(i))
        info.setdefault("index", i)
        if int(info.get(d.channels_key, 0)) > 0:
            out.append(info)
    return out


def describe(infos: list[dict]) -> str:
    return ", ".join(f"{d['index']} '{d.get('name', '?')}'" for d in infos) or "none"


def find_device(pa: Any, device: int | str | None, d: Direction) -> dict:
    """The info of the device asked for: None/""/"default" = the default (else the first), an index, or a name part."""
    found = list_devices(pa, d)
    if not found:
        raise HardwareError(f"{d.kind}: no audio {d.side} device found ({d.missing})")
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "default")):
        try:
            info = dict(getattr(pa, f"get_default_{d.side}_device_info")())
            if int(info.get(d.channels_key, 0)) > 0:
                return info
        except (OSError, IOError):
            pass  # no default device on this side: take the first one
        return found[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        for info in found:
            if int(info["index"]) == index:
                return info
        raise HardwareError(f"{d.kind}: no {d.side} device with index {index}; {d.side}s: {describe(found)}")
    needle = str(device).lower()
    for info in found:
        if needle in str(info.get("name", "")).lower():
            return info
    raise HardwareError(f"{d.kind}: no {d.side} device matching {device!r}; {d.side}s: {describe(found)}")


def pick_format(pyaudio: Any, pa: Any, info: dict, target: int, d: Direction) -> tuple[int, int]:
    """(rate, channels) to open: ``target`` Hz if the card takes it, else its own rate; mono if possible.

    Some cards open only with all their channels (ReSpeaker-like arrays on input,
    HDMI and many HATs on output), so those counts are tried too.
    """
    native = int(round(float(info.get("defaultSampleRate", 0)))) or 48000
    max_ch = max(1, int(info.get(d.channels_key, 1)))
    rates = list(dict.fromkeys([target, native, 48000, 44100]))
    channels = list(dict.fromkeys([c for c in (1, 2, max_ch) if c <= max_ch]))
    for rate in rates:
        for ch in channels:
            kwargs = {f"{d.side}_device": int(info["index"]), f"{d.side}_channels": ch,
                      f"{d.side}_format": pyaudio.paInt16}
            try:
                if pa.is_format_supported(rate, **kwargs):
                    return rate, ch
            except ValueError as e:  # PyAudio's way of saying "not supported"... or busy, or gone
                # ALSA opens the device to answer: a card held by PipeWire says -9985, an unplugged one -9996;
                # those are the card's state, not a format to skip (every format would be "unsupported").
                if {PA_DEVICE_UNAVAILABLE, PA_INVALID_DEVICE} & {a for a in e.args if isinstance(a, int)}:
                    raise HardwareError(open_error_line(str(info.get("name", "?")), e, d)) from None
                continue
    raise HardwareError(
        f"{d.kind}: '{info.get('name', '?')}' supports no int16 {d.side} at {', '.join(map(str, rates))} Hz "
        f"with {', '.join(map(str, channels))} channel(s)")


def open_error_line(name: str, e: Exception, d: Direction) -> str:
    """One line for a failed ``PyAudio.open``: busy card, vanished device, or the library's words."""
    codes = {a for a in e.args if isinstance(a, int)}
    text = " ".join(str(a) for a in e.args).lower()
    if PA_DEVICE_UNAVAILABLE in codes or "busy" in text or "unavailable" in text:
        return (f"{d.kind}: '{name}' is busy: another process (PulseAudio/PipeWire or a second service) "
                "holds the sound card; stop it or pick its 'pulse'/'default' device")
    if PA_INVALID_DEVICE in codes:
        return f"{d.kind}: '{name}' is not a valid {d.side} device any more (unplugged?)"
    return f"{d.kind}: can't open '{name}': {one_line(e)}"


def close_quietly(stream: Any, pa: Any) -> None:
    """Stop and close ``stream`` (may be None) and terminate PortAudio; a dead stream must not fail shutdown."""
    steps = (stream.stop_stream, stream.close) if stream is not None else ()
    for step in (*steps, pa.terminate):
        try:
            step()
        except Exception:  # noqa: BLE001
            pass


def probe_device(device: int | str | None, d: Direction) -> tuple[bool, str]:
    """(usable, why) for `device check`: does PyAudio import, start and find the device asked for?"""
    from device.hardware.select import check_import

    ok, why, pyaudio = check_import("pyaudio", PYAUDIO_HINT)
    if not ok:
        return False, why
    try:
        pa = pyaudio.PyAudio()
    except Exception as e:  # noqa: BLE001
        return False, f"PortAudio failed to start: {one_line(e)}"
    try:
        info = find_device(pa, device, d)
    except HardwareError as e:
        return False, str(e).removeprefix(f"{d.kind}: ")
    except Exception as e:  # noqa: BLE001
        return False, f"can't list audio devices: {one_line(e)}"
    finally:
        pa.terminate()
    return True, (f"{d.side} '{info.get('name', '?')}' (index {info['index']}, "
                  f"{int(round(float(info.get('defaultSampleRate', 0))))} Hz, {info.get(d.channels_key)} ch)")
