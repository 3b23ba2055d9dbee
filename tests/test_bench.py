"""`make bench`: the helpers, the latency bookkeeping, and a --quick run end to end.

No timing thresholds anywhere: the machine running the tests may be slow or
busy. The checks are that every figure exists and is a positive, finite number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from device.config import PROJECT_ROOT

# bench/ is a folder of the checkout, not an installed package: make it importable
# under a bare `pytest` too (`python -m pytest` has the checkout on sys.path already).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import report  # noqa: E402
from bench.e2e import marimba_latencies, match_detections, sound_latencies  # noqa: E402
from bench.stats import exact, figure, measure, ratio  # noqa: E402

SOUND_MODEL = PROJECT_ROOT / "models" / "sound.tflite"
MARIMBA_MODEL = PROJECT_ROOT / "models" / "marimba.tflite"

FRONTEND = ["frontend.batch_window", "frontend.streaming_hop", "frontend.batch_window_default_blas",
            "frontend.librosa_window", "frontend.librosa_cached_window", "frontend.librosa_over_batch",
            "frontend.librosa_cached_over_batch", "frontend.window_over_hop"]
MODEL = ["int8_tflite", "float32_tflite", "keras", "float32_over_int8", "keras_over_int8", "int8_bytes",
         "float32_bytes", "params", "macs"]
E2E_SOUND = ["e2e_sound.cpu_percent", "e2e_sound.cpu_percent_per_s", "e2e_sound.peak_rss",
             "e2e_sound.first_inference", "e2e_sound.launch_to_first_inference", "e2e_sound.onset_to_event",
             "e2e_sound.onset_to_led", "e2e_sound.onset_to_display"]


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
