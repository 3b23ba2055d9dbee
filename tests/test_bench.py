"""`make bench`: the helpers, the latency bookkeeping, and a --quick run end to end.

No timing thresholds anywhere: the machine running the tests may be slow or
busy. The checks are that every figure exists and is a positive, finite number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from device.config import PROJECT_ROOT

# bench/ is a folder of the checkout, not an installed package: make it importable
# under a bare `pytest` too (`python -m pytest` has the checkout on sys.path already).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import report  # noqa: E402
from bench.e2e import (PLAYLIST_SEEDS, build_playlist, decision_quality, marimba_latencies,  # noqa: E402
                       match_detections, sound_latencies)
from bench.estimate import frontend_macs_per_frame, sound_per_hop  # noqa: E402
from bench.stats import exact, figure, measure, ratio  # noqa: E402

SOUND_MODEL = PROJECT_ROOT / "models" / "sound.tflite"
MARIMBA_MODEL = PROJECT_ROOT / "models" / "marimba.tflite"

FRONTEND = ["frontend.batch_window", "frontend.streaming_hop", "frontend.batch_window_default_blas",
            "frontend.librosa_window", "frontend.librosa_cached_window", "frontend.librosa_over_batch",
            "frontend.librosa_cached_over_batch", "frontend.window_over_hop"]
MODEL = ["int8_tflite", "float32_tflite", "keras", "float32_over_int8", "keras_over_int8", "int8_bytes",
         "float32_bytes", "params", "macs"]
E2E_SOUND = [f"e2e_sound_{design}.{name}" for design in ("onset", "window")
             for name in ("cpu_percent", "cpu_percent_per_s", "peak_rss", "first_inference",
                          "launch_to_first_inference", "onset_to_event", "onset_to_led", "onset_to_display")]


# ------------------------------------------------------------------ helpers


def test_measure_returns_one_positive_time_per_repeat():
    calls = []
    times = measure(lambda: calls.append(1), repeats=3, min_time=0.001)
    assert len(times) == 3 and all(t > 0 and math.isfinite(t) for t in times)
    assert len(calls) > 3  # warm-up and calibration ran it too


def test_figures_summarise_with_spread_and_units():
    f = figure([0.002, 0.001, 0.003], "ms", "x", scale=1e3, percentiles=True)
    assert (f["median"], f["min"], f["max"], f["n"], f["unit"]) == (2.0, 1.0, 3.0, 3, "ms")
    assert 2.0 < f["p95"] <= 3.0
    assert ratio([2.0, 4.0], [1.0, 1.0], "r")["median"] == 3.0
    assert exact(7, "bytes", "b")["n"] == 1


def test_check_flags_missing_zero_and_infinite_numbers():
    good = {"figures": {"a": figure([1.0], "ms", "a")}, "estimates": {}}
    assert report.check(good) == []
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        results = {"figures": {"a": figure([1.0], "ms", "a")}}
        results["figures"]["a"]["median"] = bad
        assert report.check(results), bad


def test_sound_latency_runs_from_onset_on_the_wall_clock():
    truth = [{"label": "siren", "onset": 1.0, "offset": 2.0}, {"label": "dog_bark", "onset": 4.0, "offset": 4.5}]
    start = 100.0
    raw = {
        "mic_started_at": start,
        "events": [
            {"type": "ClassDetected", "label": "siren", "t": 1.25, "wall": start + 1.30},
            {"type": "ClassCleared", "label": "siren", "t": 2.5, "wall": start + 2.6},
            {"type": "ClassDetected", "label": "car_horn", "t": 4.25, "wall": start + 4.3},  # wrong class
        ],
        "leds": [[start, 0, 0, 0, 0.0], [start + 1.301, 1, 0, 0, 1.0], [start + 2.601, 0, 0, 0, 0.0]],
        "display": [[start + 1.2, None], [start + 1.35, "siren"]],
    }
    assert [c["label"] for c, _ in match_detections(truth, raw["events"])] == ["siren"]
    lat = sound_latencies(raw, truth)
    assert lat["event"] == pytest.approx([0.30])
    assert lat["led"] == pytest.approx([0.301])
    assert lat["display"] == pytest.approx([0.35])


def test_decision_quality_counts_corrections_as_flickers_and_quiet_detections():
    truth = [{"label": "dog_bark", "onset": 1.0, "offset": 1.6}, {"label": "siren", "onset": 3.0, "offset": 4.0}]
    events = [
        # An early gun_shot corrected to dog_bark 0.2 s later: a flicker, and the clip is still correct.
        {"type": "ClassDetected", "label": "gun_shot", "t": 1.1, "early": True},
        {"type": "ClassCleared", "label": "gun_shot", "t": 1.3, "reason": "replaced"},
        {"type": "ClassDetected", "label": "dog_bark", "t": 1.3},
        {"type": "ClassCleared", "label": "dog_bark", "t": 2.0, "reason": "silence"},
        # In the quiet after the bark's tail (offset + 0.55 s < 2.4 < next onset).
        {"type": "ClassDetected", "label": "siren", "t": 2.4},
        {"type": "ClassCleared", "label": "siren", "t": 2.9, "reason": "silence"},
        # A new sound after a silence clear is not a flicker, even within 1 s.
        {"type": "ClassDetected", "label": "siren", "t": 3.1},
    ]
    q = decision_quality(truth, events)
    assert (q["clips"], q["correct"], q["detections"], q["early"]) == (2, 2, 4, 1)
    assert (q["flickers"], q["in_silence"]) == (1, 1)
    assert q["flicker_rate"] == pytest.approx(0.25)


def test_bench_playlist_is_every_class_at_every_level_on_held_out_seeds():
    audio, truth = build_playlist(20)
    assert len(truth) == 20 and {c["seed"] for c in truth} == set(PLAYLIST_SEEDS[:2])
    assert len({c["label"] for c in truth}) == 10
    assert not {c["seed"] for c in truth} & ({0, 2026} | set(range(5001, 5013)))  # training, demo, tuning
    ends = [0.0] + [c["offset"] for c in truth]
    assert all(c["onset"] > end for c, end in zip(truth, ends))
    levels = [20 * np.log10(np.sqrt(np.mean(audio[int(c["onset"] * 16000) : int(c["offset"] * 16000)] ** 2)))
              for c in truth]
    assert -38 <= min(levels) and max(levels) <= -10  # the seeds' level ranges (-35..-22 here), peak limiting aside
    assert build_playlist(3)[1] == truth[:3]


def test_tuning_replay_gives_the_pipelines_own_events():
    # bench.tune_sound scores each window once and replays the pipeline from the table: same events
    # as the pipeline calling the model itself, in both designs.
    from bench.tune_sound import replay, window_scores
    from device.config import SoundConfig
    from device.frontend import LogMelParams
    from device.sound.pipeline import SoundPipeline

    p, sr = LogMelParams(), 16000
    t = np.arange(sr) / sr
    audio = np.concatenate([np.zeros(sr), 0.3 * np.sin(2 * np.pi * 400 * t), np.zeros(sr),
                            0.3 * np.sin(2 * np.pi * 3000 * t), np.zeros(sr)])
    pcm = (audio * 32767).astype(np.int16)

    def predict(feats):  # low band vs high band, softly
        e = np.array([feats[:, :20, 0].mean(), feats[:, 40:, 0].mean()])
        z = np.exp(e - e.max())
        return z / z.sum()

    scores = window_scores(predict, pcm, p)
    for design in ("onset", "window"):
        settings = SoundConfig(decision=design, max_latency_s=None)
        rows, _ = replay(scores, ["low", "high"], pcm, settings, 1600, p)
        pipe = SoundPipeline(predict, ["low", "high"], p, settings)
        direct = [e for i in range(0, len(pcm), 1600) for e in pipe.step(pcm[i : i + 1600], i)]
        assert [(r["type"], r["label"], r["t"]) for r in rows] == [(type(e).__name__, e.label, e.t) for e in direct]
        assert [r["label"] for r in rows if r["type"] == "ClassDetected"] == ["low", "high"]


def test_only_runs_the_named_sections_and_lists_the_rest():
    from bench.__main__ import Run, parse_args

    with pytest.raises(SystemExit):
        parse_args(["--only", "e2e_sound,nope"])
    run, called = Run(parse_args(["--only", "e2e_sound"]).only), []
    run.section("frontend", lambda: called.append("frontend"))
    run.section("e2e_sound", lambda: (called.append("e2e_sound"), ({}, {}))[1])
    assert called == ["e2e_sound"] and run.unavailable == {"frontend": "skipped (--only)"}


def test_sound_per_hop_estimate_scales_with_the_hop():
    est = sound_per_hop(18.6e6, {"onset": 0.05, "window": 0.25})
    assert est["onset"]["macs_per_hop"] == pytest.approx(18.6e6 + 5 * frontend_macs_per_frame())
    assert est["window"]["macs_per_hop"] == pytest.approx(18.6e6 + 25 * frontend_macs_per_frame())
    # Five decisions for one: about five times the share of a core.
    ratio_ = est["onset"]["pi4"]["cpu_percent"] / est["window"]["pi4"]["cpu_percent"]
    assert 4.5 < ratio_ < 5.0
    assert "estimate" in est["onset"]["pi4"]["label"]


def test_marimba_latency_pairs_note_ons_in_order():
    raw = {
        "camera_started_at": 50.0,
        "events": [
            {"type": "NoteOn", "note": 60, "velocity": 90, "t": 1.0, "frame_captured_at": 1.1},
            {"type": "NoteOff", "note": 60, "t": 1.3},
            {"type": "NoteOn", "note": 60, "velocity": 80, "t": 2.0, "frame_captured_at": 2.1},
        ],
        "midi": [[50.0, "control_change", None, None], [51.12, "note_on", 60, 90], [51.4, "note_off", 60, 0],
                 [52.13, "note_on", 60, 80]],
    }
    lat = marimba_latencies(raw)
    assert lat["decision"] == pytest.approx([0.02, 0.03])
    assert lat["strike"] == pytest.approx([0.12, 0.13])


# ------------------------------------------------------------------ the command


def _walk(node, path="results"):
    """Every number anywhere in the figures/estimates tree, with its path."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


@pytest.mark.long
def test_quick_bench_writes_every_figure(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)  # a hang guard, not a timing check
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()

    for key in ("date", "cpu_model", "cores", "python", "tflite_runtime", "versions"):
        assert results["machine"][key], key
    assert results["machine"]["versions"]["numpy"]

    expected = list(FRONTEND)
    if SOUND_MODEL.is_file():
        expected += [f"sound.{m}" for m in MODEL] + E2E_SOUND
    else:
        assert "missing" in results["unavailable"]["e2e_sound"]
    if MARIMBA_MODEL.is_file():
        expected += [f"marimba.{m}" for m in MODEL]
    else:
        assert results["unavailable"]["marimba_model"] == "not available: models/marimba.tflite missing"
    assert results["unavailable"]["e2e_marimba"]  # skipped in --quick, or the model is missing
    missing = [k for k in expected if k not in results["figures"]]
    assert not missing, f"figures missing: {missing}; notes: {results['notes']}"

    for key, f in results["figures"].items():
        assert f["unit"] and f["label"], key
        assert f["label"] in md, key
    numbers = list(_walk(results["figures"], "figures")) + list(_walk(results["estimates"]["models"], "estimates"))
    assert numbers
    bad = [(p, v) for p, v in numbers if not (math.isfinite(v) and v > 0)]
    assert not bad, bad
    if SOUND_MODEL.is_file():
        assert set(results["estimates"]["models"]["sound"]) == {"pi4", "pi5"}
        assert "not measured" in md  # the estimate table is labelled as such
        designs = results["notes"]["e2e_sound_designs"]
        assert set(designs) == set(results["estimates"]["sound_per_hop"]) == {"onset", "window"}
        assert all(d["clips"] == 3 and 0 <= d["correct"] <= 3 for d in designs.values())
        # The box that played had taught sounds, and each design met the negatives stream.
        assert len(results["notes"]["e2e_sound_taught"]) == 5
        assert all(d["negatives"]["stream_minutes"] == 1.0 and d["negatives"]["builtin_per_hour"] >= 0
                   for d in designs.values())
        # ... and once more with [teach] unknown = "strict" (the committed model carries that calibration).
        assert all(d["negatives"]["strict"]["stream_minutes"] == 1.0 and d["negatives"]["strict"]["builtin_per_hour"] >= 0
                   for d in designs.values())
        assert "false pictures per hour" in md and 'unknown = "strict"' in md
        assert "side by side" in md and "Sound path per decision hop" in md
        # Getting used to the room only ever takes built-in pictures away, and says what that costs.
        h = results["notes"]["habituation"]
        assert h["negatives"]["default"]["builtin_per_hour"] <= h["negatives"]["off"]["builtin_per_hour"]
        assert h["long sounds"]["off"]["clips"] == h["after the TV"]["off"]["clips"] == 10
        assert "Getting used to the room" in md and "after the TV" in md


def test_a_partial_run_refreshes_its_sections_and_keeps_the_rest():
    """--only must not replace a full run's results with the few sections it measured."""
    from bench.__main__ import SKIPPED, merged

    old = {"date": "2026-12-01", "figures": {"frontend_ms": 1.0, "e2e_p95_ms": 300.0},
           "notes": {"frontend": "a", "e2e": "old"}, "unavailable": {"labeller": "not available: basic-pitch"}}
    new = {"date": "2026-12-03", "figures": {"e2e_p95_ms": 210.0}, "notes": {"e2e": "new"},
           "unavailable": {"frontend": SKIPPED, "labeller": SKIPPED}}
    out = merged(new, old, ["e2e_sound"])
    assert out["figures"] == {"frontend_ms": 1.0, "e2e_p95_ms": 210.0}
    assert out["notes"] == {"frontend": "a", "e2e": "new"}
    assert out["unavailable"] == {"labeller": "not available: basic-pitch"}
    assert out["section_dates"]["e2e_sound"] == "2026-12-03" and out["section_dates"]["frontend"] == "2026-12-01"


def test_an_interrupted_section_stops_the_run_and_keeps_what_finished():
    from bench.__main__ import Run

    run = Run()
    run.section("frontend", lambda: ({"frontend_ms": 1.0}, {}))

    def ctrl_c():
        raise KeyboardInterrupt

    run.section("e2e_sound", ctrl_c)
    run.section("models", lambda: ({"models_ms": 2.0}, {}))
    assert run.figures == {"frontend_ms": 1.0} and run.ran == ["frontend"]
    assert run.unavailable == {"e2e_sound": "interrupted", "models": "not run (interrupted)"}
