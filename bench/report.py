"""results.json and the Markdown table (results.md) from one bench run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

# Table order: the README quotes these sections in this order.
SECTIONS = (
    ("frontend.", "Front end (log-mel)"),
    ("sound.", "Sound model"),
    ("marimba.", "Marimba model"),
    ("rectify.", "Marimba frame rectification"),
    ("e2e_sound_onset.", "End to end: sound, onset design (simulated real time)"),
    ("e2e_sound_window.", "End to end: sound, earlier window design (simulated real time)"),
    ("e2e_sound_everything.", "End to end: sound with every feature on (dream pictures, continuous mapping)"),
    ("e2e_marimba.", "End to end: marimba (simulated real time)"),
    ("mapping.", "Mappings taught by demonstration"),
    ("generator.", "Sound -> picture generator (dream mode)"),
)


def _num(x: float) -> str:
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e4 or (a >= 1000 and float(x).is_integer()):
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _row(f: dict[str, Any]) -> str:
    one = f["n"] == 1
    spread = "" if one else f"{_num(f['min'])}–{_num(f['max'])}"
    p95 = _num(f["p95"]) if "p95" in f else ""
    return f"| {f['label']} | {_num(f['median'])} | {p95} | {spread} | {f['n']} | {f['unit']} |"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    figures = results["figures"]
    lines = [
        f"# Say-and-See bench, {m['date']}",
        "",
        f"Measured on {m['cpu_model']} ({m['cores_usable']} of {m['cores']} cores usable), Python {m['python']}, "
        f"numpy {m['versions'].get('numpy')}, TFLite runtime {m['tflite_runtime']} "
        f"(ai-edge-litert {m['versions'].get('ai-edge-litert')}), "
        f"TensorFlow {m['versions'].get('tensorflow-cpu') or m['versions'].get('tensorflow')}; "
        f"load average at start {m.get('load_average_at_start')}. "
        f"`python -m bench{' --quick' if results['settings']['quick'] else ''}` took "
        f"{results['elapsed_s']:.0f} s.",
        "",
        "Median over repeats (p50 for latencies), min–max spread, n = repeats or events. "
        "What each figure means: bench/README.md.",
        "",
        "| Figure | Median / p50 | p95 | Min–max | n | Unit |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for prefix, title in SECTIONS:
        rows = [f for key, f in figures.items() if key.startswith(prefix)]
        if rows:
            lines.append(f"| **{title}** | | | | | |")
            lines += [_row(f) for f in rows]
    if results.get("unavailable"):
        lines += ["", "Not measured in this run:", ""]
        lines += [f"- {key}: {why}" for key, why in results["unavailable"].items()]
    lines += designs_table(results)
    labeller = results.get("notes", {}).get("labeller") or {}
    if labeller.get("table"):  # bench/labeller.py: shares and counts (can be 0), so a table, not figures
        lines += ["", "## Marimba audio labellers, side by side (same clips, same run)", "", labeller["table"]]
    habituation = results.get("notes", {}).get("habituation") or {}
    if habituation.get("table"):  # bench/habituation.py: counts and rates, so a table, not figures
        h = habituation["settings"]
        lines += ["", "## Getting used to the room (same streams, same run)", "",
                  f"Default `habituate_s = {h['habituate_s']:g}`, `habituate_window_s = {h['habituate_window_s']:g}`, "
                  f"`habituate_long_s = {h['habituate_long_s']:g}`; TV room: "
                  + ", ".join(f"`{k} = {v:g}`" for k, v in habituation["tv_room"].items())
                  + f". Negatives: {habituation['negatives_minutes']:g} min; long sounds: held-out clips of "
                  f"{habituation['long_clip_s']:g} s; after the TV: the negatives, then held-out 1.6 s clips.", "",
                  habituation["table"]]
    est = results.get("estimates", {})
    if est.get("models"):
        lines += ["", "## Raspberry Pi estimates (not measured)", "", f"Method: {est['method']}.", "",
                  "| Model | Board | Estimated int8 invoke | Unit |", "|---|---|---:|---|"]
        for kind, boards in est["models"].items():
            for board, e in boards.items():
                lines.append(f"| {kind} | {e['label'].split(' on ', 1)[1]} | {_num(e['estimate'])} | {e['unit']} |")
    if est.get("sound_per_hop"):
        lines += ["", "Sound path per decision hop (new STFT frames + one model invoke), and the share of one core "
                  "that implies while a sound is heard (in silence the gate skips the model):", "",
                  "| Design | Hop | Board | Estimated ms per hop | Share of one core |", "|---|---:|---|---:|---:|"]
        for design, e in est["sound_per_hop"].items():
            for board in ("pi4", "pi5"):
                lines.append(f"| {design} | {e['hop_s']:g} s | {e[board]['label'].split(' on ', 1)[1].replace(' (estimate)', '')} "
                             f"| {_num(e[board]['ms_per_hop'])} | {_num(e[board]['cpu_percent'])} % |")
    return "\n".join(lines) + "\n"


def _p50_p95(figures: dict[str, Any], key: str) -> str:
    f = figures.get(key)
    return f"{_num(f['median'])} / {_num(f['p95'])}" if f and "p95" in f else "–"


def designs_table(results: dict[str, Any]) -> list[str]:
    """The sound decision designs side by side, from one run: latency, quality, CPU, Pi estimate."""
    designs = results.get("notes", {}).get("e2e_sound_designs") or {}
    if not designs:
        return []
    figures, per_hop = results["figures"], results.get("estimates", {}).get("sound_per_hop", {})
    names = list(designs)

    def row(title: str, cell) -> str:
        return f"| {title} | " + " | ".join(cell(d) for d in names) + " |"

    def pct(n: int, of: int) -> str:
        return f"{n} / {of} ({100.0 * n / max(of, 1):.1f} %)"

    lines = ["", "## Sound decision designs, side by side (same playlist, same run)", "",
             f"{next(iter(designs.values()))['clips']} held-out clips; latencies p50 / p95 in ms from the clip's onset; "
             f"taught sounds active ({len(results['notes'].get('e2e_sound_taught') or [])} held-out families).",
             "", "| | " + " | ".join(f"`decision = \"{d}\"`" for d in names) + " |",
             "|---|" + "---:|" * len(names)]
    lines += [
        row("hop (s)", lambda d: f"{designs[d]['hop_s']:g}"),
        row("onset → ClassDetected", lambda d: _p50_p95(figures, f"e2e_sound_{d}.onset_to_event")),
        row("onset → LED", lambda d: _p50_p95(figures, f"e2e_sound_{d}.onset_to_led")),
        row("onset → display frame", lambda d: _p50_p95(figures, f"e2e_sound_{d}.onset_to_display")),
        row("correct class within 0.75 s", lambda d: pct(designs[d]["correct"], designs[d]["clips"])),
        row("flickers (of detections)", lambda d: pct(designs[d]["flickers"], designs[d]["detections"])),
        row("early decisions (of detections)", lambda d: pct(designs[d]["early"], designs[d]["detections"])),
        row("detections in silence", lambda d: str(designs[d]["in_silence"])),
        row("false pictures per hour, negatives stream: built-in / taught (teach-me cards)",
            lambda d: (f"{designs[d]['negatives']['builtin_per_hour']:.0f} / {designs[d]['negatives']['taught_per_hour']:.0f}"
                       f" ({designs[d]['negatives']['unknown_cards_per_hour']:.0f})") if "negatives" in designs[d] else "–"),
        row("same with `[teach] unknown = \"strict\"`: built-in / taught (teach-me cards)",
            lambda d: (f"{designs[d]['negatives']['strict']['builtin_per_hour']:.0f} / "
                       f"{designs[d]['negatives']['strict']['taught_per_hour']:.0f}"
                       f" ({designs[d]['negatives']['strict']['unknown_cards_per_hour']:.0f})")
            if "strict" in designs[d].get("negatives", {}) else "–"),
        row("device process CPU, % of one core",
            lambda d: _num(figures[f"e2e_sound_{d}.cpu_percent"]["median"]) if f"e2e_sound_{d}.cpu_percent" in figures
            else "–"),
        row("Pi 4 per hop, ms (estimate)",
            lambda d: f"{_num(per_hop[d]['pi4']['ms_per_hop'])} ({_num(per_hop[d]['pi4']['cpu_percent'])} % of a core)"
            if d in per_hop else "–"),
    ]
    return lines


def numbers(results: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, value) of every number in the figures and estimates: what the tests check."""
    for key, f in results["figures"].items():
        for field in ("median", "min", "max", "n", "p95"):
            if field in f:
                yield f"figures.{key}.{field}", f[field]
    for kind, boards in results.get("estimates", {}).get("models", {}).items():
        for board, e in boards.items():
            yield f"estimates.{kind}.{board}", e["estimate"]
    for design, e in results.get("estimates", {}).get("sound_per_hop", {}).items():
        for board in ("pi4", "pi5"):
            yield f"estimates.sound_per_hop.{design}.{board}", e[board]["ms_per_hop"]


def check(results: dict[str, Any]) -> list[str]:
    """Paths of numbers that are missing, not positive or not finite (empty = all good)."""
    bad = []
    for path, v in numbers(results):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            bad.append(f"{path}={v!r}")
    return bad


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the checkout when inside it."""
    from device.config import PROJECT_ROOT

    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "results.json"
    md = out_dir / "results.md"
    js.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md.write_text(markdown(results))
    return js, md
