"""Rectification to the canonical bar-row view: homography, calibration files, the default view, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device.errors import SaySeeError
from device.marimba.pipeline import MarimbaPipeline, MarimbaSpec, preprocess_frame, preprocess_frames
from device.marimba.rectify import (
    FILL,
    UNIT_SQUARE,
    Calibration,
    Canonical,
    Rectifier,
    apply_homography,
    homography,
)

SPEC = MarimbaSpec()


def _old_crop_resize(img: np.ndarray, spec: MarimbaSpec) -> np.ndarray:
    """The pipeline's preprocessing before rectification (fixed crop + area resize), kept as the reference."""

    def area(n_in: int, n_out: int) -> np.ndarray:
        edges = np.linspace(0.0, n_in, n_out + 1)
        cells = np.arange(n_in)[None, :]
        ov = np.clip(np.minimum(edges[1:, None], cells + 1) - np.maximum(edges[:-1, None], cells), 0.0, None)
        return ov / ov.sum(axis=1, keepdims=True)

    r0, r1, c0, c1 = spec.crop.pixels(*img.shape[:2])
    crop = img[r0:r1, c0:c1].astype(np.float64)
    h, w = spec.input_size
    return np.clip(np.rint(area(crop.shape[0], h) @ crop @ area(crop.shape[1], w).T), 0, 255).astype(np.uint8)


@pytest.mark.device_venv
def test_homography_round_trip_and_degenerate_points():
    rng = np.random.default_rng(1)
    H_true = np.array([[1.1, 0.05, 12.0], [-0.03, 0.95, 7.0], [1e-4, -2e-4, 1.0]])
    for n in (4, 9):
        src = rng.uniform(0, 200, (n, 2))
        dst = apply_homography(H_true, src)
        H = homography(src, dst)
        assert np.allclose(H, H_true, atol=1e-8)
        back = apply_homography(np.linalg.inv(H), dst)
        assert np.abs(back - src).max() < 1e-6
    with pytest.raises(ValueError, match="4 or more"):
        homography(src[:3], dst[:3])
    with pytest.raises(ValueError, match="degenerate"):
        homography([(0, 0), (1, 1), (2, 2), (3, 3)], [(0, 0), (1, 0), (1, 1), (0, 1)])


@pytest.mark.device_venv
def test_default_calibration_reproduces_the_old_crop():
    rng = np.random.default_rng(0)
    gradient = np.add.outer(np.linspace(0, 120, 96), np.linspace(0, 130, 160))
    frames = [rng.integers(0, 256, (96, 160), dtype=np.uint8),
              np.clip(gradient + rng.normal(0, 20, (96, 160)), 0, 255).astype(np.uint8)]
    cal = Calibration.default_for(SPEC)
    assert cal.source == "default" and cal.frame_size == (96, 160)
    rect = Rectifier(cal, (96, 160), SPEC.canonical, SPEC.input_size)
    assert rect.axis_aligned and rect.outside_fraction < 1e-9
    for f in frames:
        ref = _old_crop_resize(f, SPEC)
        assert np.abs(rect(f).astype(int) - ref).max() <= 1
        assert np.abs(preprocess_frame(f, SPEC).astype(int) - ref).max() <= 1
    # The same aspect ratio at twice the size sees the same bar area.
    big = np.kron(frames[1], np.ones((2, 2), np.uint8))
    assert np.abs(preprocess_frame(big, SPEC).astype(int) - _old_crop_resize(frames[1], SPEC)).max() <= 1
    # The bar-row box sits inside the crop by the canonical margins.
    c = cal.corners_px()
    r0, r1, c0, c1 = SPEC.crop.pixels(96, 160)
    (u0, u1), (v0, v1) = SPEC.canonical.u, SPEC.canonical.v
    assert c[0, 0] == pytest.approx(c0 + (0 - u0) / (u1 - u0) * (c1 - c0))
    assert c[2, 1] == pytest.approx(r0 + (1 - v0) / (v1 - v0) * (r1 - r0))


@pytest.mark.device_venv
def test_batch_equals_single_and_colour_frames_are_averaged():
    rng = np.random.default_rng(2)
    cal = _rotated_default(1.5, (2.0, 1.0))
    frames = rng.integers(0, 256, (4, 192, 320), dtype=np.uint8)
    rect = Rectifier(cal, (192, 320))
    assert not rect.axis_aligned and rect.supersample == (4, 3) and rect.outside_fraction == 0
    batch = rect.batch(frames)
    assert np.array_equal(batch, np.stack([rect(f) for f in frames]))
    assert np.array_equal(preprocess_frames(frames, SPEC, cal), batch)
    colour = np.repeat(frames[0][..., None], 3, axis=2)
    assert np.array_equal(rect(colour), batch[0])
    flat = np.full((192, 320), 77, np.uint8)
    assert np.all(rect(flat) == 77)


def _rotated_default(deg: float, shift_px=(0.0, 0.0), scale: float = 1.0) -> Calibration:
    cal = Calibration.default_for(SPEC)
    c = cal.corners_px()
    ctr = c.mean(axis=0)
    t = np.deg2rad(deg)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return Calibration.from_pixels((c - ctr) @ R.T * scale + ctr + shift_px, cal.frame_size, source="manual")


@pytest.mark.device_venv
def test_outside_the_frame_reads_mid_grey():
    cal = _rotated_default(0.0, (0.0, 0.0), scale=1.6)  # the canonical view reaches past the frame
    rect = Rectifier(cal, (96, 160))
    out = rect(np.zeros((96, 160), np.uint8))
    assert rect.outside_fraction > 0.1
    assert out[0, 0] == round(FILL) and out[-1, -1] == round(FILL) and out[24, 64] == 0


def test_a_rotated_shifted_render_rectifies_to_the_canonical_bars():
    from training.datasets.marimba_synth import SynthConfig, render, true_corners

    still = SynthConfig(seconds=0.1, max_offset=0.0, scale_range=(1.0, 1.0), max_rotation_deg=0.0, mallets=1)
    posed = SynthConfig(seconds=0.1, max_offset=0.08, scale_range=(0.8, 0.85), max_rotation_deg=8.0, mallets=1)
    profiles = {}
    for name, cfg in (("still", still), ("posed", posed)):
        video = render(3, cfg)
        if name == "posed":
            assert abs(video.camera["rotation_deg"]) > 2.0
        cal = Calibration.from_pixels(true_corners(video.camera, cfg), (cfg.height, cfg.width))
        view = preprocess_frame(video.frames[0], SPEC, cal).astype(float)
        profiles[name] = view[12:36].mean(axis=0)  # across the bars, middle rows
    # Under the identity pose the true corners are the default calibration (within a pixel).
    cal0 = Calibration.from_pixels(true_corners(render(3, still).camera, still), (96, 160))
    assert np.abs(cal0.corners_px() - Calibration.default_for(SPEC).corners_px()).max() < 1.0
    a, b = (p - p.mean() for p in profiles.values())
    corr = [float(np.dot(a, np.roll(b, s)) / np.linalg.norm(a) / np.linalg.norm(b)) for s in range(-4, 5)]
    assert int(np.argmax(corr)) == 4 and corr[4] > 0.9  # same bars at the same columns
    # Wrong corners (a quarter bar off) do not line up as well.
    bad = np.roll(b, 2)
    assert float(np.dot(a, bad) / np.linalg.norm(a) / np.linalg.norm(bad)) < corr[4] - 0.1


@pytest.mark.device_venv
def test_aspect_ratio_refusals_and_adaptation():
    default = Calibration.default_for(SPEC)
    with pytest.raises(SaySeeError) as e:
        preprocess_frame(np.zeros((180, 320), np.uint8), SPEC)
    assert str(e.value) == ("camera 320x180 is 16:9 but the model's frame 160x96 is 5:3: "
                            "run python -m device calibrate-marimba")
    # A calibration measured at 16:9 works for that camera, at any resolution of it.
    cal = Calibration.from_pixels([(20, 30), (300, 28), (302, 150), (18, 152)], (180, 320), source="auto")
    assert preprocess_frame(np.zeros((180, 320), np.uint8), SPEC, cal).shape == SPEC.input_size
    assert preprocess_frame(np.zeros((360, 640), np.uint8), SPEC, cal).shape == SPEC.input_size
    # ... but not a 5:3 camera.
    cal = Calibration.from_dict(cal.to_dict(), path="box/calibration.json")
    with pytest.raises(SaySeeError, match=r"camera 160x96 is 5:3 but box/calibration.json was measured on "
                                          r"320x180 \(16:9\)"):
        Rectifier(cal, (96, 160))
    assert default.check_frame((192, 320)) is None


@pytest.mark.device_venv
def test_calibration_files_round_trip_and_bad_files_are_one_line(tmp_path):
    cal = Calibration.from_pixels([(10, 12), (150, 14), (149, 80), (11, 82)], (96, 160), "auto", residual_px=0.7)
    path = cal.save(tmp_path / "calibration.json")
    again = Calibration.load(path)
    assert again == cal and again.path == str(path)
    assert np.allclose(again.corners_px(), [(10, 12), (150, 14), (149, 80), (11, 82)])
    bad = {
        "missing.json": None,
        "notjson.json": "{corners",
        "list.json": "[]",
        "three.json": json.dumps({**cal.to_dict(), "corners": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}),
        "crossed.json": json.dumps({**cal.to_dict(), "corners": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}),
        "source.json": json.dumps({**cal.to_dict(), "source": "guess"}),
        "extra.json": json.dumps({**cal.to_dict(), "colour": 1}),
        "format.json": json.dumps({**cal.to_dict(), "format": "other"}),
    }
    for name, text in bad.items():
        p = tmp_path / name
        if text is not None:
            p.write_text(text)
        with pytest.raises(SaySeeError) as e:
            Calibration.load(p)
        msg = str(e.value)
        assert msg.startswith(f"{p}: ") and "\n" not in msg, msg


@pytest.mark.device_venv
def test_spec_records_the_canonical_view_and_old_metadata_keeps_the_crop():
    spec = SPEC.replace(canonical=Canonical(u=(-0.05, 1.05), v=(-0.1, 1.1)))
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["canonical"] == {"u": [-0.05, 1.05], "v": [-0.1, 1.1]}
    assert MarimbaSpec.from_dict(d) == spec
    old = {k: v for k, v in SPEC.to_dict().items() if k != "canonical"}
    assert MarimbaSpec.from_dict(old).canonical == Canonical()
    with pytest.raises(ValueError):
        Canonical(u=(1.0, 0.0))


class _Model:
    metadata = {"marimba": SPEC.to_dict()}
    input_shape = SPEC.input_shape

    def predict(self, x):
        return np.zeros(len(SPEC.notes), np.float32)


@pytest.mark.device_venv
def test_pipeline_note_regions_follow_the_calibration():
    pipe = MarimbaPipeline(_Model())
    regions = pipe.note_regions()
    cal = Calibration.default_for(SPEC)
    (x0, y0), (x1, y1) = cal.corners[0], cal.corners[2]
    first, last = regions[SPEC.notes[0]], regions[SPEC.notes[-1]]
    assert first[0] == pytest.approx(x0) and first[1] == pytest.approx(y0)
    assert last[0] + last[2] == pytest.approx(x1) and first[1] + first[3] == pytest.approx(y1)
    moved = Calibration.from_pixels(cal.corners_px() + [16.0, 0.0], (96, 160))
    pipe = MarimbaPipeline(_Model(), calibration=moved)
    assert pipe.note_regions()[SPEC.notes[0]][0] == pytest.approx(x0 + 0.1)
    with pytest.raises(SaySeeError, match="16:9"):
        pipe.check_frame_size((180, 320))
    assert pipe.check_frame_size((192, 320)).out_size == SPEC.input_size
    # A box mirrored left-right (lowest note on the right of the picture) is still read lowest-first.
    c = cal.corners_px()
    mirrored = Calibration.from_pixels(c[[1, 0, 3, 2]], (96, 160))
    img = np.tile(np.linspace(0, 255, 160, dtype=np.float32), (96, 1)).astype(np.uint8)
    a, b = preprocess_frame(img, SPEC), preprocess_frame(img, SPEC, mirrored)
    assert np.abs(a[:, ::-1].astype(int) - b).max() <= 1
    assert UNIT_SQUARE[0] == (0.0, 0.0)


@pytest.mark.device_venv
def test_run_loads_the_configured_calibration_and_refuses_bad_ones(tmp_path):
    from device.config import PROJECT_ROOT, config_from_dict
    from device.runtime.builder import load_models

    def cfg(**marimba):
        camera = marimba.pop("camera", {})
        return config_from_dict({"app": {"modes": ["marimba"]}, "camera": camera,
                                 "marimba": {"model": str(PROJECT_ROOT / "models" / "marimba.tflite"), **marimba}},
                                tmp_path / "box.toml")

    _, pipe = load_models(cfg())
    assert pipe.calibration is None
    cal = Calibration.from_pixels([(12, 10), (150, 12), (148, 84), (10, 82)], (96, 160), "manual")
    cal.save(tmp_path / "cal.json")
    _, pipe = load_models(cfg(calibration="cal.json", threshold=0.5))
    assert pipe.calibration == cal and pipe.spec.peaks.threshold == 0.5
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SaySeeError, match=r"bad\.json: not valid JSON for a calibration"):
        load_models(cfg(calibration="bad.json"))
    with pytest.raises(SaySeeError, match="camera 320x180 is 16:9 but the model's frame 160x96 is 5:3"):
        load_models(cfg(camera={"width": 320, "height": 180}))
