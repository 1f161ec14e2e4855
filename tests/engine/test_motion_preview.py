"""The motion preview (engine.animate.preview) is the run's own flow motion at a lower
resolution: checked against the full-resolution animator's frames reduced by block
averaging (numpy), with a reversed direction as the wrong answer it must tell apart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.animate import FlowAnimator, FlowConfig
from engine.animate.preview import preview_motion, shrink_regions
from engine.errors import InputError
from engine.io import Panorama, Region
from engine.metrics import psnr
from tests.conftest import textured_equirect

H, W = 256, 512
CFG = FlowConfig(frames=8, fps=8.0)


def blocks(x: np.ndarray, k: int) -> np.ndarray:
    """[H, W, ...] -> [H/k, W/k, ...] block means (float)."""
    h, w = x.shape[:2]
    return x.reshape(h // k, k, w // k, k, *x.shape[2:]).astype(np.float64).mean((1, 3))


@pytest.fixture(scope="module")
def scene():
    rgb = textured_equirect(H, W, seed=3)
    band = np.zeros((H, W), bool)
    band[40:120, :] = True
    regions = [Region("clouds", band, 0.0, 12.0, feather_px=8.0)]
    full = FlowAnimator(CFG).run(Panorama(rgb, None, "test"), regions)
    return rgb, regions, full


def test_preview_frames_are_the_full_runs_frames_at_half_size(scene):
    rgb, regions, full = scene
    prev = preview_motion(rgb, regions, CFG, width=W // 2)
    assert prev.frames.shape == (CFG.frames, H // 2, W // 2, 3) and prev.fps == CFG.fps
    west = dataclasses.replace(regions[0], direction_deg=180.0)
    wrong = preview_motion(rgb, [west], CFG, width=W // 2)
    inside = np.zeros((H // 2, W // 2), bool)
    inside[26:54] = True  # well inside the band, away from the feather
    for t in (2, 3, 6):  # not 4: half way, the cross-faded loop is symmetric in time
        ref = blocks(full.frames[t], 2) / 255
        good = psnr(prev.frames[t] / 255, ref, mask=inside)
        bad = psnr(wrong.frames[t] / 255, ref, mask=inside)
        still = psnr(prev.frames[0] / 255, ref, mask=inside)
        print(f"frame {t}: preview {good:.1f} dB, reversed {bad:.1f} dB, frame 0 {still:.1f} dB")
        assert good > 40.0 and good > bad + 10.0 and good > still + 10.0


def test_static_pixels_are_the_reduced_panorama(scene):
    rgb, regions, _ = scene
    prev = preview_motion(rgb, regions, CFG, width=W // 4)
    small = np.rint(blocks(rgb, 4))
    static = ~shrink_regions(regions, (H // 4, W // 4), W)[0].mask
    static[5:35] = False  # the feather around the band moves a little too
    for f in prev.frames:
        np.testing.assert_allclose(f[static], small[static], atol=1)


def test_shrunk_masks_keep_thin_regions_and_scale_feathers():
    half = np.zeros((H, W), bool)
    half[:, : W // 2] = True
    line = np.zeros((H, W), bool)
    line[100, 50:150] = True  # one pixel tall: covers 1/4 of each 4x4 block
    corner = np.zeros((H, W), bool)
    corner[0:4, 0:2] = True  # half of one block
    regions = [Region(n, m, 0.0, 1.0, feather_px=8.0) for n, m in
               (("half", half), ("line", line), ("corner", corner))]  # fmt: skip
    a, b, c = shrink_regions(regions, (H // 4, W // 4), W)
    assert a.mask.sum() == (H // 4) * (W // 8) and a.feather_px == 2.0
    assert b.mask.sum() == 26 and b.mask[25, 12:38].all()  # every block it touches
    assert c.mask.sum() == 1 and c.mask[0, 0]


def test_nothing_painted_is_one_clear_error():
    rgb = textured_equirect(64, 128)
    with pytest.raises(InputError, match="paint a region"):
        preview_motion(rgb, [Region("x", np.zeros((64, 128), bool), 0.0, 1.0)])
