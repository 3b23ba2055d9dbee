"""The running box: sim playlist accuracy, serial port loss mid-run, SIGTERM, bad configs."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from device.runtime.app import PROMPT_HOLD_S, App, Devices
from device.runtime.run import install_signal_handlers
from device.config import PROJECT_ROOT, LedsConfig, config_from_dict, load_config
from device.frontend import LogMelParams
from device.hardware.leds import GpioLeds, RecordingLeds
from device.hardware.mic import PlaylistMic
from device.hardware.synth import SerialSynth
from device.sound.pipeline import ClassDetected
from device.hardware.virtual_synth import VirtualSynth
from tests.fakes.pyaudio import FakeDevice as FakePyAudioDevice

P = LogMelParams()
SR = P.sample_rate
SOUND_MODEL = PROJECT_ROOT / "models" / "sound.tflite"


class ToneModel:
    """Stands in for the TFLite model: 'beep' when the 1 kHz mel band dominates, else 'hum'."""

    labels = ["beep", "hum"]

    def __init__(self):
        from device.frontend import mel_filterbank

        fb = mel_filterbank(P.sample_rate, P.n_fft, P.n_mels, P.fmin, P.fmax)
        self.band = int(np.argmax(fb[:, int(1000 * P.n_fft / SR)]))

    def predict(self, feats):
        beep = feats[:, self.band, 0].mean() > feats[:, :, 0].mean() + 3
        return np.array([0.95, 0.05] if beep else [0.05, 0.95], dtype=np.float32)


def beeps(seconds, period=2.0, length=0.5):
    t = np.arange(int(seconds * SR)) / SR
    on = (t % period) >= (period - length)
    return (0.3 * np.sin(2 * np.pi * 1000 * t) * on * 32767).astype(np.int16)


def wait_until(predicate, timeout=15.0):
    """Poll with a generous bound (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def tone_config(tmp_path, **sections):
    data = {"app": {"status_file": str(tmp_path / "status.json"), "status_interval_s": 0.1},
            "sound": {"gate_while_synth": False}, "mapping": {"beep": {"note": 72, "colour": "#00ff00"}}}
    data.update(sections)
    return config_from_dict(data, tmp_path / "box.toml")


@pytest.mark.skipif(not SOUND_MODEL.exists(), reason="models/sound.tflite not built yet (make models)")
def test_sim_playlist_detects_each_clip_near_its_onset(tmp_path):
    from device.runtime.builder import build_app
    from training.scoring import score_detections
    from device.wavfile import write_wav
    from training.datasets import URBANSOUND_CLASSES
    from training.datasets.synthetic_sound import synthetic_playlist

    labels = list(URBANSOUND_CLASSES) * 2
    audio, truth = synthetic_playlist(labels, seed=4242, gap_seconds=1.2, event_seconds=1.6)
    wav = write_wav(tmp_path / "playlist.wav", audio, SR)
    cfg = load_config(PROJECT_ROOT / "config" / "demo.toml")
    cfg = dataclasses.replace(
        cfg, app=dataclasses.replace(cfg.app, status_file=str(tmp_path / "status.json")),
        mic=dataclasses.replace(cfg.mic, playlist=(str(wav),), realtime=False))
    events = []
    app, cleanup = build_app(cfg, sim=True, out_dir=tmp_path / "out", on_event=events.append)
    try:
        app.run()
    finally:
        cleanup()
    detections = [e for e in events if isinstance(e, ClassDetected)]
    score = score_detections([{"label": lb, "onset": on, "offset": off} for lb, on, off in truth], detections)
    assert score["hit_rate"] >= 0.9, score["rows"]
    assert score["false_in_silence"] == 0
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "stopped" and status["counters"]["dropped_samples"] == 0
    # Every detection reached the LEDs and the synth through the real sim backends.
    assert len(app.dev.leds.timeline()) >= len(detections)
    assert (tmp_path / "out" / "frames").is_dir() and any((tmp_path / "out" / "frames").iterdir())


def test_serial_port_lost_and_back_mid_run(tmp_path):
    link = tmp_path / "synth-port"
    first = VirtualSynth(link=link)
    first.start()
    second = VirtualSynth()
    cfg = tone_config(tmp_path)
    mic = PlaylistMic(playlist=[beeps(8.0)], realtime=True, chunk_size=800)
    synth = SerialSynth(str(link), retry_seconds=0.05, max_retry_seconds=0.2, reset_wait_s=0.0)
    app = App(cfg, Devices(mic=mic, leds=RecordingLeds(), synth=synth), sound_model=ToneModel())
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        assert wait_until(lambda: any(m.type == "note_on" and m.note == 72 for _, m in first.messages))
        first.stop()  # the synth's cable is pulled: its pty and our symlink vanish
        assert wait_until(lambda: not synth.is_connected)
        second.start()
        os.symlink(second.port, link)  # plugged back in
        assert wait_until(lambda: any(m.type == "note_on" and m.note == 72 for _, m in second.messages))
    finally:
        runner.join(timeout=20)
        second.stop()
    assert not runner.is_alive()
    assert synth.reconnects >= 1
    assert mic.dropped_samples == 0 and mic.is_finished
    assert app.counters.errors == 0
    assert app.sound.counters["stale"] == 0  # nothing was classified late while the port was away


def test_sigterm_stops_within_two_seconds_and_releases_gpio(tmp_path, fake_gpio):
    cfg = tone_config(tmp_path)
    leds = GpioLeds(LedsConfig(pins=(17, 27, 22), gpio_module="RPi.GPIO"))
    mic = PlaylistMic(playlist=[beeps(30.0)], realtime=True)
    app = App(cfg, Devices(mic=mic, leds=leds), sound_model=ToneModel())
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    install_signal_handlers(app)
    sent = {}

    def kill():
        sent["t"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(1.5, kill)
    timer.start()
    try:
        app.run()
        stopped = time.monotonic()
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    assert stopped - sent["t"] < 2.0
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "stopped"
    gpio = fake_gpio
    assert ("cleanup", [17, 27, 22]) in [(c[0], list(c[1]) if len(c) > 1 and c[1] is not None else None)
                                          for c in gpio.calls if c[0] == "cleanup"]
    assert app.status_dict()["uptime_s"] < 10  # stopped by the signal, not by the 30 s playlist ending


@pytest.mark.parametrize("text, needle", [
    ("[sound]\nthreshold = 0.5\n", "unknown key 'threshold'"),
    ("[leds]\npins = 'seventeen'\n", "[leds] pins = 'seventeen': expected a list"),
    ("[mapping.dog_bark]\npicture = 'missing.png'\n", "picture = 'missing.png': file not found"),
    ("[sound]\nmodel = 'nowhere.tflite'\n[mic]\nbackend = 'sim'\n", "model = "),
])
def test_bad_config_exits_nonzero_with_one_line(tmp_path, text, needle):
    cfg = tmp_path / "box.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=60, cwd=PROJECT_ROOT)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0] and str(cfg) in lines[0]
    assert "Traceback" not in r.stderr


def test_model_whose_front_end_differs_is_refused(tmp_path):
    if not SOUND_MODEL.exists():
        pytest.skip("models/sound.tflite not built yet (make models)")
    import shutil

    model = tmp_path / "sound.tflite"
    shutil.copy(SOUND_MODEL, model)
    meta = json.loads(SOUND_MODEL.with_suffix(".json").read_text())
    meta["frontend"]["n_mels"] = 40
    model.with_suffix(".json").write_text(json.dumps(meta))
    wav = tmp_path / "x.wav"
    from device.wavfile import write_wav

    write_wav(wav, np.zeros(SR, dtype=np.int16), SR)
    r = subprocess.run([sys.executable, "-m", "device", "classify", "--model", str(model), str(wav)],
                       capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert r.returncode != 0
    assert "n_mels: model 40 vs device 64" in r.stderr and str(model.with_suffix(".json")) in r.stderr
    assert "Traceback" not in r.stderr
    model.with_suffix(".json").unlink()
    r = subprocess.run([sys.executable, "-m", "device", "classify", "--model", str(model), str(wav)],
                       capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert r.returncode != 0 and "metadata missing" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------ recovery: watchdog and dead workers


def test_stalled_mic_stops_watchdog_pings_within_one_interval(tmp_path, fake_pyaudio):
    """A mic that stops delivering (unplugged, wedged driver) must let systemd restart the box."""
    import socket

    from device.hardware.mic import PyAudioMic
    from device.runtime.notify import Notifier, Watchdog

    sock_path = tmp_path / "notify.sock"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(sock_path))
    systemd.settimeout(0.05)

    def pings(wait):
        """WATCHDOG=1 messages already queued plus those arriving within ``wait`` seconds."""
        got, deadline = 0, time.monotonic() + wait
        while True:
            try:
                got += systemd.recv(4096).decode() == "WATCHDOG=1"
            except (socket.timeout, BlockingIOError):
                if time.monotonic() >= deadline:
                    return got

    interval = 0.6  # WatchdogSec; the pinger pings every 0.3 s while there is progress
    pa = fake_pyaudio(FakePyAudioDevice("USB mic"))
    mic = PyAudioMic(chunk_size=800)
    watchdog = Watchdog(Notifier(str(sock_path)), timeout=interval)
    app = App(tone_config(tmp_path), Devices(mic=mic), sound_model=ToneModel(), notifier=watchdog,
              stall_after_s=0.2)
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        assert wait_until(lambda: pa.streams and pa.streams[-1].active)
        stream = pa.streams[-1]
        audio = beeps(1.5)
        t0 = time.monotonic()
        for i in range(0, len(audio), 800):  # 1.5 s of audio at about real time
            stream.feed(audio[i:i + 800])
            time.sleep(max(0.0, t0 + (i + 800) / SR - time.monotonic()))
        assert pings(0.0) >= 3  # progress: pinged all along
        assert pings(interval + 0.2) <= 3  # the last pings may still leave within one interval...
        assert pings(1.0) == 0  # ...then silence: systemd's watchdog fires
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["state"] == "stalled" and status["stalled"][0].startswith("mic delivered nothing")
        assert app.counters.read_timeouts > 0
        stream.feed(audio[:1600])  # the mic comes back: pings resume
        stream.feed(audio[1600:3200])
        assert pings(0.8) >= 1
    finally:
        app.stop_event.set()
        runner.join(timeout=10)
        systemd.close()
    assert not runner.is_alive()


def test_a_worker_that_dies_ends_the_run_with_a_failure_exit_code(tmp_path, fake_pyaudio):
    """PortAudio refusing to start the stream kills the sound worker: exit 1 so Restart=on-failure acts."""
    from device.hardware.mic import PyAudioMic

    pa = fake_pyaudio(FakePyAudioDevice("USB mic"))
    mic = PyAudioMic(chunk_size=800)

    def start_fails():
        raise OSError(-9996, "Invalid input device (no default output device)")

    pa.streams[-1].start_stream = start_fails
    app = App(tone_config(tmp_path), Devices(mic=mic, leds=RecordingLeds()), sound_model=ToneModel())
    assert app.run(seconds=10) == 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["failed_worker"] == "sound"
    assert app.status_dict()["uptime_s"] < 5  # ended by the failure, not by the 10 s limit


def test_a_mic_missing_at_boot_fails_the_run_so_the_service_restarts(tmp_path, fake_pyaudio, caplog):
    """No input device when the box starts (a USB mic that enumerates late): "auto" falls back to the empty
    sim mic, which ends at once. That is a lost input, not a finished recording: exit 1 (Restart=on-failure
    tries again and finds the mic), never a box that runs on without ears."""
    from device.hardware.mic import open_mic

    fake_pyaudio()  # PortAudio with no device at all
    mic = open_mic("auto", config_from_dict({}, tmp_path / "box.toml").mic)
    assert mic.backend == "sim" and not mic.plays_out
    app = App(tone_config(tmp_path), Devices(mic=mic, leds=RecordingLeds()), sound_model=ToneModel())
    with caplog.at_level(logging.INFO, logger="saysee"):
        assert app.run(seconds=10) == 1
    assert app.status_dict()["uptime_s"] < 5  # ended by the lost mic, not by the 10 s limit
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and status["failed_worker"] == "sound"
    lost = [r.getMessage() for r in caplog.records if "mic lost" in r.getMessage()]
    assert lost == ["mic lost: it delivers nothing any more (no device, or nothing to play); "
                    "the box stops so that its service restarts it"]


def test_a_played_out_recording_ends_the_run_cleanly_and_sources_say_which_end():
    """The other side of a lost input: a playlist or video played once ends a sim run with exit 0."""
    from device.config import CameraConfig
    from device.hardware.camera import SimCamera

    assert PlaylistMic(playlist=[beeps(0.1)], realtime=False).plays_out
    assert not PlaylistMic(playlist=[beeps(0.1)], realtime=False, loop=True).plays_out  # loops never end
    frames = np.zeros((2, 24, 32), np.uint8)
    assert SimCamera(frames, CameraConfig(loop=False)).plays_out
    assert not SimCamera(frames, CameraConfig(loop=True)).plays_out


def test_a_pipeline_failing_on_every_chunk_stops_the_pings_and_logs_once(tmp_path, monkeypatch, caplog):
    """A sound model that raises on every window: the box is deaf, so the watchdog must stop being fed
    (status "stalled"), and the journal gets one traceback, not one per 50 ms chunk."""
    from device.runtime import error_runs

    class BrokenModel(ToneModel):
        def predict(self, feats):
            raise RuntimeError("tensor arena corrupted")

    monkeypatch.setattr(error_runs, "SUMMARY_EVERY_S", 3600.0)
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR) * 32767).astype(np.int16)
    mic = PlaylistMic(playlist=[tone], realtime=True, loop=True, chunk_size=800)
    app = App(tone_config(tmp_path), Devices(mic=mic), sound_model=BrokenModel(), stall_after_s=0.3)
    runner = threading.Thread(target=app.run)
    with caplog.at_level(logging.INFO, logger="saysee"):
        runner.start()
        try:
            assert wait_until(lambda: app.counters.errors >= 10)
            assert wait_until(lambda: app.stalled_inputs() == ["mic"])
        finally:
            app.stop_event.set()
            runner.join(timeout=10)
    failures = [r for r in caplog.records if "sound pipeline error" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None, [r.getMessage() for r in failures]
    assert "tensor arena corrupted" in failures[0].getMessage()


def test_a_display_wedged_in_its_driver_is_a_stall(tmp_path, monkeypatch):
    """pygame's flip() never returning (a wedged KMS/DRM driver) freezes the screen: the status says so
    and the watchdog stops being fed, while the mic keeps delivering."""
    pygame = pytest.importorskip("pygame")
    from device.config import DisplayConfig
    from device.hardware.display import open_display
    from device.screen.render import Renderer

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    wedged, release = threading.Event(), threading.Event()
    flip = pygame.display.flip

    def wedged_flip():
        if wedged.is_set():
            release.wait(20)
        flip()

    monkeypatch.setattr(pygame.display, "flip", wedged_flip)
    display = open_display("real", DisplayConfig(fullscreen=False, max_fps=120.0), renderer=Renderer)
    mic = PlaylistMic(playlist=[beeps(2.0)], realtime=True, loop=True, chunk_size=800)
    app = App(tone_config(tmp_path), Devices(mic=mic, display=display), sound_model=ToneModel(), stall_after_s=0.5)
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        assert wait_until(lambda: display.shown >= 2)
        assert app.stalled_inputs() == []
        wedged.set()
        assert wait_until(lambda: app.stalled_inputs() == ["display"])
        assert app.status_dict()["state"] == "stalled"
    finally:
        release.set()
        app.stop_event.set()
        runner.join(timeout=10)
        pygame.display.quit()
    assert not runner.is_alive()


def _button_box(tmp_path):
    """(config with a teach button on BCM 5, the stand-in model, its open-set decision)."""
    from device.sound.open_set import OpenSetModel
    from device.sound.teach import build_decider
    from taught_helpers import StandInModel
    from test_teach_button import OPEN_SET

    cfg = config_from_dict({"app": {"status_file": str(tmp_path / "status.json"), "status_interval_s": 0.1},
                            "teach": {"dir": str(tmp_path / "taught"), "button_pin": 5, "hold_s": 0.5}},
                           tmp_path / "box.toml")
    model = StandInModel(open_set=OPEN_SET)
    return cfg, model, OpenSetModel(model, build_decider(model, cfg.teach))


def test_teach_button_on_the_running_box_learns_a_sound_and_then_recognises_it(tmp_path):
    """Hold the button, make the sound three times: the running box shows prompts, learns 'sound 1'
    (stored on disk), then hears it and lights its palette colour; no restart."""
    from device.runtime.responder import Responder
    from device.screen.palette import class_colour
    from device.sound.taught import TaughtStore
    from device.sound.teach_button import TeachButton
    from taught_helpers import join, silence, tone
    from test_teach_button import fake_gpio

    cfg, model, decision = _button_box(tmp_path)
    audio = join(silence(1.8), *[join(tone(f, 0.6), silence(1.0)) for f in (300, 304, 297)],
                 silence(1.0), tone(301, 1.0), silence(1.5))
    mic = PlaylistMic(playlist=[audio], realtime=True, chunk_size=800)
    leds = RecordingLeds()
    t0 = time.monotonic()
    button = TeachButton(fake_gpio((t0 + 0.2, t0 + 1.6), clock=time.monotonic), 5, cfg.teach.hold_s)
    shown = []
    app = App(cfg, Devices(mic=mic, leds=leds), sound_model=decision, teach_button=button,
              responder=Responder(cfg, labels=model.labels), on_event=shown.append)
    drawn = []  # (clock, mode, status) of every scene sent to the screen
    app._scene_slot.put = lambda scene: drawn.append((time.monotonic(), scene.mode, scene.status))
    assert app.run(seconds=30) == 0
    prompts = [status for _, mode, status in drawn if mode == "prompt"]
    assert prompts[0] == "Make the sound! 1/3" and "Learned sound 1!" in prompts, prompts
    # The prompts keep the screen: nothing live is drawn while teaching, nor within PROMPT_HOLD_S of one.
    first = next(i for i, (_, mode, _) in enumerate(drawn) if mode == "prompt")
    last = max(i for i, (_, mode, _) in enumerate(drawn) if mode == "prompt")
    assert all(mode == "prompt" for _, mode, _ in drawn[first : last + 1])
    after = [t for t, mode, _ in drawn[last + 1 :] if mode != "prompt"]
    assert after and after[0] - drawn[last][0] >= PROMPT_HOLD_S - 0.05
    assert TaughtStore(cfg.teach.dir).labels() == ["sound 1"]
    heard = [e.label for e in shown if isinstance(e, ClassDetected)]
    assert heard == ["sound 1"], heard  # the takes themselves were not classified
    lit = [s.rgb for s in leds.timeline() if s.brightness > 0]
    assert lit[-1] == pytest.approx(class_colour("sound 1"), abs=1 / 255)  # heard: its palette colour
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["taught"] == ["sound 1"] and status["teaching"] is False


def test_the_sound_pipeline_runs_the_whole_sound_section(tmp_path):
    """Every [sound] decision key reaches the pipeline (the bench once had to rebuild it: the app passed a
    hand-picked subset, so both compared designs ran the default one)."""
    cfg = tone_config(tmp_path, sound={"gate_while_synth": False, "decision": "window", "early_threshold": 0.9,
                                       "threshold_on": 0.7, "hop_s": 0.25})
    realtime = App(cfg, Devices(mic=PlaylistMic(playlist=[beeps(1.0)], realtime=True)), sound_model=ToneModel())
    assert realtime.sound.settings == cfg.sound and realtime.sound.hop_s == 0.25
    unpaced = App(cfg, Devices(mic=PlaylistMic(playlist=[beeps(1.0)], realtime=False)), sound_model=ToneModel())
    assert unpaced.sound.settings == dataclasses.replace(cfg.sound, max_latency_s=None)  # never "late" when unpaced


def test_a_worker_still_busy_at_shutdown_does_not_act_on_closed_devices(tmp_path):
    """SIGTERM during a slow inference: shutdown's join gives up, closes the devices; the worker's late
    detection must neither reach the closed LEDs nor turn a clean stop into a failed one."""
    entered, release = threading.Event(), threading.Event()

    class SlowFirstBeep(ToneModel):
        def predict(self, feats):
            if not entered.is_set():  # the first sound's inference: a slow Pi, a page-fault storm
                entered.set()
                release.wait(20)
            return super().predict(feats)

    leds = RecordingLeds()
    app = App(tone_config(tmp_path), Devices(mic=PlaylistMic(playlist=[beeps(30.0, period=4.0, length=2.0)],
                                                             realtime=True), leds=leds),
              sound_model=SlowFirstBeep())
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("rc", app.run()))
    runner.start()
    assert entered.wait(15)
    app.stop_event.set()
    runner.join(20)
    assert result["rc"] == 0 and leds.is_closed
    release.set()  # the inference finishes after the devices closed
    sound = next(t for t in app._threads if t.name == "sound")
    sound.join(20)
    assert not sound.is_alive() and app.failed_worker is None and app.counters.errors == 0


def test_a_box_that_fails_after_its_devices_opened_closes_them(tmp_path, monkeypatch):
    """Restart=on-failure would otherwise reopen (and reset) a serial synth every 5 s with the old port open."""
    import device.runtime.builder as builder
    import device.sound.teach as teach
    from device.errors import ConfigError

    cfg = config_from_dict({"app": {"status_file": str(tmp_path / "s.json")}, "mic": {"backend": "sim"},
                            "leds": {"backend": "sim"}, "display": {"backend": "sim"}, "synth": {"backend": "sim"}},
                           tmp_path / "box.toml")
    opened = {}

    def spy(*a, **k):
        opened["dev"] = real_open(*a, **k)
        return opened["dev"]

    def refuse(*a, **k):
        raise ConfigError(f"{cfg.source}: refused by the app")

    real_open = builder.open_devices
    monkeypatch.setattr(builder, "open_devices", spy)
    monkeypatch.setattr(builder, "load_models", lambda cfg: (ToneModel(), None))
    monkeypatch.setattr(teach, "open_set_model", lambda cfg, sound, extend: (sound, []))
    monkeypatch.setattr(builder, "App", refuse)
    with pytest.raises(ConfigError, match="refused by the app"):
        builder.build_app(cfg)
    dev = opened["dev"]
    assert dev.synth.is_closed and dev.leds.is_closed


def test_a_teach_prompt_puts_the_led_back_to_rest_when_its_card_goes(tmp_path):
    """'Learned sound 1!' lights the LED in the new sound's colour; in a quiet room afterwards it must not stay
    lit until the next detection (days, on a shelf)."""
    from device.runtime.responder import Responder
    from device.sound.teach_button import TeachButton
    from taught_helpers import join, silence, tone
    from test_teach_button import fake_gpio

    cfg, model, decision = _button_box(tmp_path)
    audio = join(silence(1.8), *[join(tone(f, 0.6), silence(1.0)) for f in (300, 304, 297)],
                 silence(PROMPT_HOLD_S + 1.5))
    leds = RecordingLeds()
    t0 = time.monotonic()
    button = TeachButton(fake_gpio((t0 + 0.2, t0 + 1.6), clock=time.monotonic), 5, cfg.teach.hold_s)
    app = App(cfg, Devices(mic=PlaylistMic(playlist=[audio], realtime=True, chunk_size=800), leds=leds),
              sound_model=decision, teach_button=button, responder=Responder(cfg, labels=model.labels))
    app.run(seconds=30)
    states = leds.timeline()
    learned = max(i for i, s in enumerate(states) if s.brightness > 0)  # the last lit state: the prompt's
    rest = [s for s in states[learned + 1 :] if s.brightness == 0]
    audio_end = len(audio) / 16000
    assert rest and rest[0].t < audio_end - 0.5, [(round(s.t, 2), s.brightness) for s in states]


def test_a_note_off_is_not_held_back_by_a_mic_that_hiccups(tmp_path):
    """Note-offs are scheduled in stream time; when a live mic delivers nothing for a while, they still go
    out on time by the wall clock (a 0.4 s note used to last the whole hiccup)."""
    from device.hardware.synth import RecordingSynth

    class HiccupMic(PlaylistMic):
        """The sim playlist, but reads time out for 3 s once 1.95 s of audio went out (a USB mic hiccup)."""

        stall_until = None

        def read(self, timeout=None):
            if self.stall_until is not None and time.monotonic() < self.stall_until:
                time.sleep(timeout or 0)
                return None
            chunk = super().read(timeout)
            if chunk is not None and chunk.start >= int(1.95 * SR) and self.stall_until is None:
                self.stall_until = time.monotonic() + 3.0
            return chunk

    cfg = config_from_dict({"app": {"status_file": str(tmp_path / "s.json"), "status_interval_s": 0.2},
                            "sound": {"gate_while_synth": False},
                            "mapping": {"beep": {"note": 72, "duration_s": 0.4}}}, tmp_path / "box.toml")
    synth = RecordingSynth()
    app = App(cfg, Devices(mic=HiccupMic(playlist=[beeps(4.0)], realtime=True, chunk_size=800),
                           leds=RecordingLeds(), synth=synth), sound_model=ToneModel())
    app.run(seconds=15)
    notes = [(t, m.type) for t, m in synth.messages if m.type in ("note_on", "note_off")]
    on = next(t for t, kind in notes if kind == "note_on")
    off = next(t for t, kind in notes if kind == "note_off")
    assert off - on < 1.0, notes  # 0.4 s and a read timeout or two, not the 3 s hiccup


def test_a_sound_the_room_keeps_playing_becomes_its_background_and_outlives_a_taught_sound(tmp_path, caplog):
    """A 15 s beep (a TV left on) is shown once; the beeps after it are the room's background: not shown, logged
    in one line, listed in the status file; a pipeline rebuilt for a newly taught sound keeps that."""
    cfg = tone_config(tmp_path)
    tv = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(15 * SR) / SR) * 32767).astype(np.int16)
    audio = np.concatenate([np.zeros(SR, np.int16), tv, np.zeros(SR, np.int16), beeps(6.0)])
    shown = []
    app = App(cfg, Devices(mic=PlaylistMic(playlist=[audio], realtime=False)), sound_model=ToneModel(),
              on_event=shown.append)
    with caplog.at_level(logging.INFO, logger="saysee"):
        assert app.run(seconds=60) == 0
    # (The stand-in calls each beep's quiet-led first windows "hum": only "beep" is the TV's.)
    assert [e.label for e in shown if isinstance(e, ClassDetected)].count("beep") == 1
    assert any("room background now beep" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "status.json").read_text())["background"] == ["beep"]
    assert app._sound_pipeline().habituation is app.sound.habituation
