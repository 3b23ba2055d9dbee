"""A fake ``pyaudio`` module: configurable input devices, streams driven by the test.

``make_module(FakeDevice(...), ...)`` returns a module with PyAudio's API surface
used by ``device.hardware.mic``. The test pushes audio through the backend's real
stream callback with ``module.streams[-1].feed(samples, status_flags)``, exactly
as PortAudio's thread would.

Or the device plays by itself: ``FakeDevice(..., live=True)`` makes
``start_stream()`` start a thread that calls the callback every period
(``frames_per_buffer`` frames, paced in real time) with ``source`` audio, like
PortAudio's callback thread. ``stall_after=N`` makes that thread go quiet after
N periods while the stream still reports itself active -- a USB mic pulled out
or a wedged driver, as PortAudio's ALSA backend shows it: no error, no callback,
no more audio. ``stream.stalled`` (an Event) is set when that happens.
As in PortAudio, a callback returning paComplete or paAbort ends the stream.

Output streams (``open(output=True, stream_callback=...)``) work the same way
the other way round, as PyAudio's C callback does: the callback gets
``in_data=None`` and returns ``(bytes, flag)``; fewer bytes than
``frame_count`` frames are padded with zeros *and end the stream*
(paComplete), an invalid flag aborts it. ``stream.pull(frames)`` is one
callback made by the test (a sound card asking for a period); a live device
pulls every period by itself, and ``stall_after`` makes it stop pulling (a
consumer that stopped). Everything played is in ``stream.played`` (int16,
(frames, channels)). Devices take output formats from ``output_rates`` and
``output_channels`` (``()``: input only, ``maxOutputChannels`` 0).
"""

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass

import numpy as np

paInt16 = 8
paContinue, paComplete, paAbort = 0, 1, 2
paInputUnderflow, paInputOverflow = 0x1, 0x2
paOutputUnderflow, paOutputOverflow, paPrimingOutput = 0x4, 0x8, 0x10


@dataclass
class FakeDevice:
    """One sound device: the rates and channel counts it accepts for int16 input."""

    name: str
    rates: tuple = (16000,)
    channels: tuple = (1,)
    default_rate: float | None = None
    busy: bool = False  # open() fails like an ALSA card held by PulseAudio/PipeWire
    max_input_channels: int | None = None
    live: bool = False  # start_stream() starts a PortAudio-like callback thread playing ``source``
    source: np.ndarray | None = None  # int16 frames (frames,) or (frames, channels), looped; None = silence
    stall_after: int | None = None  # live: deliver this many periods, then nothing more (stream stays active)
    output_channels: tuple = (1, 2)  # channel counts accepted for int16 output; () = an input-only device
    output_rates: tuple | None = None  # rates accepted for output; None = the same as ``rates``

    def info(self, index: int) -> dict:
        return {
            "index": index,
            "name": self.name,
            "maxInputChannels": self.max_input_channels if self.max_input_channels is not None else max(self.channels),
            "maxOutputChannels": max(self.output_channels, default=0),
            "defaultSampleRate": float(self.default_rate or self.rates[-1]),
        }


class FakeStream:
    """What ``PyAudio.open`` returns; ``feed`` plays PortAudio's callback thread."""

    def __init__(self, device: FakeDevice, kwargs: dict) -> None:
        self.device = device
        self.kwargs = kwargs
        self.active = False
        self.closed = False
        self.stop_calls = 0
        self.periods_delivered = 0  # callbacks made by the live thread
        self.stalled = threading.Event()
        self.played: list[np.ndarray] = []  # output: what each callback gave, int16 (frames, channels)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def channels(self) -> int:
        return self.kwargs["channels"]

    @property
    def rate(self) -> int:
        return self.kwargs["rate"]

    def start_stream(self) -> None:
        self.active = True
        if self.device.live and self._thread is None:
            self._halt.clear()
            self._thread = threading.Thread(target=self._play, name="fake-portaudio", daemon=True)
            self._thread.start()

    def stop_stream(self) -> None:
        self.stop_calls += 1
        self.active = False
        self._join()

    def close(self) -> None:
        self.closed = True
        self.active = False
        self._join()

    def _join(self) -> None:
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    @property
    def is_output(self) -> bool:
        return bool(self.kwargs.get("output"))

    @property
    def played_samples(self) -> np.ndarray:
        """Everything the output callback gave, int16 (frames, channels)."""
        if not self.played:
            return np.zeros((0, self.channels), np.int16)
        return np.concatenate(self.played)

    def pull(self, frames: int, status_flags: int = 0) -> int:
        """One output callback for ``frames`` frames, handled as PyAudio's C code does; returns the flag."""
        assert self.is_output, "pull() is for output streams"
        assert self.active, "pulled from a stream that was not started"
        frame_bytes = 2 * self.channels
        now = time.monotonic()
        time_info = {"input_buffer_adc_time": 0.0, "current_time": now,
                     "output_buffer_dac_time": now + frames / self.rate}
        data, flag = self.kwargs["stream_callback"](None, frames, time_info, status_flags)
        data = b"" if data is None else bytes(data)
        if flag not in (paContinue, paComplete, paAbort):
            flag = paAbort  # PyAudio: "Invalid PaStreamCallbackResult from callback"
        else:
            wanted = frames * frame_bytes
            out = data[:wanted]
            if len(out) < wanted:  # too few frames: zeros to the card and the stream completes
                out += bytes(wanted - len(out))
                flag = paComplete
            self.played.append(np.frombuffer(out, "<i2").reshape(-1, self.channels).copy())
        if flag != paContinue:
            self.active = False
        return flag

    def _play(self) -> None:
        period = int(self.kwargs.get("frames_per_buffer") or 1024)
        if self.is_output:
            self._play_output(period)
            return
        source = self.device.source
        if source is None:
            source = np.zeros(period, np.int16)
        source = np.asarray(source, dtype=np.int16)
        if source.ndim == 1:
            source = np.repeat(source[:, None], self.channels, axis=1)
        pos = 0
        while not self._halt.is_set():
            if self.device.stall_after is not None and self.periods_delivered >= self.device.stall_after:
                self.stalled.set()
                self._halt.wait()  # the device went quiet; only stop/close ends this
                return
            idx = (pos + np.arange(period)) % len(source)
            pos = (pos + period) % len(source)
            block = source[idx]
            flag = self.kwargs["stream_callback"](block.astype("<i2").tobytes(), period, {}, 0)[1]
            self.periods_delivered += 1
            if flag != paContinue:  # paComplete / paAbort: PortAudio ends the stream
                self.active = False
                return
            self._halt.wait(period / self.rate)

    def _play_output(self, period: int) -> None:
        while not self._halt.is_set():
            if self.device.stall_after is not None and self.periods_delivered >= self.device.stall_after:
                self.stalled.set()
                self._halt.wait()  # the card stopped asking; only stop/close ends this
                return
            flag = self.pull(period)
            self.periods_delivered += 1
            if flag != paContinue:
                return
            self._halt.wait(period / self.rate)

    def is_active(self) -> bool:
        return self.active

    def feed(self, samples: np.ndarray, status_flags: int = 0):
        """Call the stream callback with int16 frames, shape (frames,) or (frames, channels)."""
        assert self.active, "fed a stream that was not started"
        a = np.asarray(samples, dtype=np.int16)
        if a.ndim == 1:
            a = a[:, None]
        assert a.shape[1] == self.channels, f"stream has {self.channels} channel(s), got {a.shape}"
        return self.kwargs["stream_callback"](a.astype("<i2").tobytes(), len(a), {}, status_flags)


def make_module(*devices: FakeDevice, default_index: int | None = 0,
                default_output_index: int | None = 0) -> types.ModuleType:
    mod = types.ModuleType("pyaudio")
    mod.__file__ = __file__
    for name in ("paInt16", "paContinue", "paComplete", "paAbort", "paInputUnderflow", "paInputOverflow",
                 "paOutputUnderflow", "paOutputOverflow", "paPrimingOutput"):
        setattr(mod, name, globals()[name])
    mod.devices = list(devices)
    mod.streams = []  # every stream opened, oldest first
    mod.instances = []

    class PyAudio:
        def __init__(self) -> None:
            self.terminated = False
            mod.instances.append(self)

        def get_device_count(self) -> int:
            return len(mod.devices)

        def get_device_info_by_index(self, index: int) -> dict:
            if not 0 <= index < len(mod.devices):
                raise OSError(-9996, "Invalid device")
            return mod.devices[index].info(index)

        def get_default_input_device_info(self) -> dict:
            if default_index is None or default_index >= len(mod.devices):
                raise OSError(-9996, "No Default Input Device Available")
            return mod.devices[default_index].info(default_index)

        def get_default_output_device_info(self) -> dict:
            if default_output_index is None or default_output_index >= len(mod.devices):
                raise OSError(-9996, "No Default Output Device Available")
            return mod.devices[default_output_index].info(default_output_index)

        def is_format_supported(self, rate, input_device=None, input_channels=None, input_format=None,
                                output_device=None, output_channels=None, output_format=None):
            if input_device is None and output_device is None:
                raise ValueError("must specify stream format for input, output, or both", -9999)
            for index in (input_device, output_device):
                # PortAudio's ALSA host opens the device to answer (pa_linux_alsa.c): a busy card says so here
                # too, and PyAudio raises it as ValueError(text, code) (misc.c).
                if index is not None and mod.devices[index].busy:
                    raise ValueError("Device unavailable", -9985)
            if input_device is not None:
                dev = mod.devices[input_device]
                if input_format != paInt16:
                    raise ValueError("Sample format not supported", -9994)
                if input_channels not in dev.channels:
                    raise ValueError("Invalid number of channels", -9998)
                if int(rate) not in dev.rates:
                    raise ValueError("Invalid sample rate", -9997)
            if output_device is not None:
                dev = mod.devices[output_device]
                if output_format != paInt16:
                    raise ValueError("Sample format not supported", -9994)
                if output_channels not in dev.output_channels:
                    raise ValueError("Invalid number of channels", -9998)
                if int(rate) not in (dev.output_rates if dev.output_rates is not None else dev.rates):
                    raise ValueError("Invalid sample rate", -9997)
            return True

        def open(self, *, format, channels, rate, input=False, output=False, input_device_index=None,
                 output_device_index=None, **kwargs):
            if not input and not output:
                raise ValueError("Must specify an input or output stream.")
            if output:
                index = output_device_index if output_device_index is not None else default_output_index
                dev = mod.devices[index]
                if dev.busy:
                    raise OSError(-9985, "Device unavailable")
                self.is_format_supported(rate, output_device=index, output_channels=channels, output_format=format)
            else:
                dev = mod.devices[input_device_index]
                if dev.busy:
                    raise OSError(-9985, "Device unavailable")
                self.is_format_supported(rate, input_device_index, channels, format)
            stream = FakeStream(dev, dict(kwargs, channels=channels, rate=rate, format=format, output=output))
            if kwargs.get("start", True):
                stream.start_stream()
            mod.streams.append(stream)
            return stream

        def terminate(self) -> None:
            self.terminated = True

    mod.PyAudio = PyAudio
    return mod
