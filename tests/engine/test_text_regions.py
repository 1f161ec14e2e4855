"""Local prompts -> regions: the weightless motion words, the --region syntax, and masks
segmented on perspective views and fused on the sphere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.text.motion import parse_motion, parse_region_arg
from engine.text.segment import SegmentConfig, clipseg_predictor, probe, require, segment_on_sphere
from tests.tiny_models import build_tiny_clipseg


@pytest.mark.parametrize(
    "prompt, motion, direction, speed",
    [
        ("clouds drifting slowly to the left", "flow", 180, 1.0),
        ("leaves swaying", "sway", 0, 2.0),
        ("water ripples", "flow", 0, 2.0),
        ("mist rising gently", "flow", 90, 1.0),
        ("a waterfall falling very fast", "flow", 270, 8.0),
        ("flags flutter in a strong wind", "sway", 0, 5.0),
        ("Clouds, drifting EAST quickly!", "flow", 0, 5.0),
        ("", "flow", 0, 2.0),
    ],
)
def test_motion_words(prompt, motion, direction, speed):
    m = parse_motion(prompt)
    assert (m.motion, m.direction_deg, m.speed_deg_s) == (motion, direction, speed)
    assert parse_motion(prompt) == m  # deterministic


def test_what_was_understood_names_the_deciding_words():
    m = parse_motion("clouds drifting slowly to the left")
    text = m.summary()
    assert "'drifting': flow" in text and "'left': direction 180" in text and "'slowly'" in text


def test_only_what_the_words_say_is_decided():
    assert parse_motion("leaves swaying").decided() == {"motion": "sway"}
    assert parse_motion("clouds drifting slowly to the left").decided() == {
        "motion": "flow",
        "direction_deg": 180.0,
        "speed_deg_s": 1.0,
    }
    assert parse_motion("going up fast").decided() == {"direction_deg": 90.0, "speed_deg_s": 5.0}
    assert parse_motion("a quiet lake").decided() == {}


def test_region_argument_syntax():
    assert parse_region_arg("sky: clouds drift left") == ("sky", "clouds drift left")
    assert parse_region_arg(" lake :ripples ") == ("lake", "ripples")
    for bad in ("sky clouds", ": ripples", ""):
        with pytest.raises(ValueError, match="NAME: how it moves"):
            parse_region_arg(bad)


def _sky_panorama(h=64, w=128):
    """Blue sky above the horizon band, green ground below; a tree of green crossing into the
    sky at the seam (columns 0-5 and 122-127)."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[: h // 3] = (40, 90, 230)
    rgb[h // 3 :] = (40, 160, 60)
    rgb[h // 4 : h // 3, list(range(0, 6)) + list(range(w - 6, w))] = (40, 160, 60)
    return rgb


def _blue_predictor(crops, prompts):
    """An analytic 'model': probability 1 where the pixel is sky blue (the same answer for
    every prompt)."""
    blue = (crops[..., 2] > 150) & (crops[..., 1] < 130)
    p = torch.from_numpy(blue.astype(np.float32))[:, None]
    return p.expand(-1, len(prompts), -1, -1).clone()


def test_sky_mask_is_one_seamless_region_up_to_the_pole():
    rgb = _sky_panorama()
    truth = (rgb[..., 2] > 150) & (rgb[..., 1] < 130)
    (mask,), prob = segment_on_sphere(
        rgb, ["sky"], _blue_predictor, SegmentConfig(view_size=32, grid_height=64)
    )
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.93
    assert mask[0].all()  # the whole top row: up to the pole
    # across the seam: the mask's first and last columns agree as neighbours do
    assert (mask[:, 0] != mask[:, -1]).mean() <= (mask[:, 1:] != mask[:, :-1]).mean(axis=0).max()
    assert not mask[h := rgb.shape[0] // 4 + 2, 0] and not mask[h, -1]  # the tree at the seam


def test_nothing_found_is_one_clear_error():
    rgb = np.full((64, 128, 3), (40, 160, 60), np.uint8)  # no sky at all
    with pytest.raises(InputError, match="found no 'sky'.*paint the region"):
        segment_on_sphere(
            rgb, ["sky"], _blue_predictor, SegmentConfig(view_size=32, grid_height=32)
        )


def test_clipseg_loads_offline_and_matches_transformers_own_pipeline(tmp_path):
    from transformers import AutoProcessor, CLIPSegForImageSegmentation

    folder = build_tiny_clipseg(tmp_path / "seg")
    assert probe(str(folder)).available
    predict = clipseg_predictor(str(folder))
    crops = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), dtype=np.uint8)
    got = predict(crops, ["sky", "lake"])
    assert got.shape == (2, 2, 40, 40) and float(got.min()) >= 0 and float(got.max()) <= 1
    proc = AutoProcessor.from_pretrained(folder)
    model = CLIPSegForImageSegmentation.from_pretrained(folder).eval()
    inputs = proc(text=["sky", "lake"], images=[crops[1]] * 2, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[:, None]
    ref = torch.nn.functional.interpolate(logits, size=(40, 40), mode="bilinear")[:, 0].sigmoid()
    torch.testing.assert_close(got[1], ref)
    # a name longer than the text encoder's 77 tokens is cut there, not an error
    long = predict(crops[:1], [" ".join(["sky"] * 120)])
    assert long.shape == (1, 1, 40, 40) and bool(torch.isfinite(long).all())
    with pytest.raises(InputError, match="needs --seg-model"):
        require(None)
    with pytest.raises(InputError, match="no segmentation model weights"):
        require(str(tmp_path / "none"))


def test_cli_region_found_by_name_and_moved_by_its_words(tmp_path, capsys, monkeypatch):
    """--region 'sky: clouds drifting slowly to the left' on an existing panorama: the mask
    comes from the segmentation (an analytic predictor standing in for CLIPSeg's forward
    pass, loaded from a real checkpoint folder), the motion from the words."""
    import json

    from PIL import Image

    from engine import cli
    from engine.text import segment

    folder = build_tiny_clipseg(tmp_path / "seg")
    monkeypatch.setattr(segment, "clipseg_predictor", lambda spec, **kw: _blue_predictor)
    Image.fromarray(np.repeat(np.repeat(_sky_panorama(), 2, 0), 2, 1)).save(tmp_path / "p.png")
    out = tmp_path / "run"
    argv = [
        "generate",
        str(tmp_path / "p.png"),
        "--region",
        "sky: clouds drifting slowly to the left",
    ]
    argv += ["--seg-model", str(folder), "--preset", "preview", "--frames", "2", "--out", str(out)]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "region:   sky: flow, direction 180°, 1°/s" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["regions_understood"]["sky"].startswith("flow, direction 180")
    manifest = json.loads((out / "scene" / "manifest.json").read_text())
    (region,) = manifest["provenance"]["regions"]
    assert region["direction_deg"] == 180 and region["prompt"].startswith("clouds drifting")


def test_regions_file_mask_prompt_and_prompt_words(tmp_path):
    """A region with a 'mask_prompt' and no 'mask' is segmented; its 'prompt' sets the motion
    when the file gives none; without a segmenter it is one clear error."""
    import json

    from engine.io import load_regions

    doc = {"format": "pano4d-regions", "version": 1, "regions": [
        {"name": "sky", "mask_prompt": "sky", "prompt": "clouds drifting slowly to the left"},
        {"name": "band", "mask_prompt": "ground", "prompt": "leaves swaying", "speed_deg_s": 3},
    ]}  # fmt: skip
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    rgb = _sky_panorama()
    asked = []

    def segment(prompt):
        asked.append(prompt)
        blue = (rgb[..., 2] > 150) & (rgb[..., 1] < 130)
        return blue if prompt == "sky" else ~blue

    sky, band = load_regions(path, rgb.shape[:2], segment)
    assert asked == ["sky", "ground"]
    assert (sky.motion, sky.direction_deg, sky.speed_deg_s) == ("flow", 180.0, 1.0)
    assert sky.mask[0].all() and sky.prompt.startswith("clouds")
    assert (band.motion, band.speed_deg_s) == ("flow", 3.0)  # explicit fields win
    with pytest.raises(InputError, match="'mask_prompt' needs a segmentation model"):
        load_regions(path, rgb.shape[:2])
