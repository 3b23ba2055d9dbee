"""make marimba-report end to end on a tiny run: zero-shot and fine-tuned figures come from actual runs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")


@pytest.mark.long
def test_quick_report_has_zero_shot_fine_tuned_and_per_look_figures(tmp_path):
    from training.marimba_finetune_report import main

    out = tmp_path / "report"
    assert main(["--quick", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["user_seconds"] <= 120
    z = report["zero_shot"]
    assert 0.0 <= z["f1"] <= 1.0 and z["videos"] == 1 and z["tp"] + z["fn"] > 0
    assert all(c["source"] in ("auto", "manual") for c in z["calibrations"].values() if c)
    f = report["fine_tuned"]
    assert f["seeds"] == [0] and 0.0 <= f["heldout_f1"]["mean"] <= 1.0 and 0.0 <= f["own_f1"]["mean"] <= 1.0
    looks = report["zero_shot_by_look"]
    assert {"own look", "eval-rainbow-gingham"} <= set(looks)
    assert all({"auto", "truth"} <= set(v) for v in looks.values())
    table = (out / "report.md").read_text()
    assert "zero-shot" in table and "fine-tuned" in table and "with the true corners" in table
    # The fine-tuning run is a real train-marimba run, seeded, starting from the committed weights.
    meta = json.loads((out / "seed-0" / "marimba.json").read_text())
    assert meta["training_data"]["started_from"].endswith("marimba.keras")
