"""Lifting: Gaussian initialisation geometry, static/dynamic split, and the optimiser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.camera import View
from engine.gaussians import sh0_to_rgb
from engine.lift.init import equal_area_grid, init_gaussians, sample_at_grid, tangent_frames
from engine.lift.optimize import LiftConfig, Lifter
from engine.lift.raster import quat_to_rotmat, render_view
from engine.sphere import perspective
from tests.conftest import textured_equirect


def test_equal_area_grid_spacing():
    g = equal_area_grid(64)
    assert abs(len(g) - 1.27 * 64 * 64) < 0.02 * 64 * 64
    # every sample covers about the same solid angle: d_lon * cos(lat) * d_lat
    area = g.d_lon * torch.cos(g.lat) * g.d_lat
    assert float(area.sum()) == pytest.approx(4 * math.pi, rel=0.01)
    inner = area[torch.cos(g.lat) > 0.2]
    assert float(inner.max() / inner.min()) < 1.1


def test_init_places_discs_on_their_rays_facing_the_viewer():
    grid = equal_area_grid(16)
    depth = torch.linspace(2.0, 9.0, len(grid))
    g = init_gaussians(grid, torch.full((len(grid), 3), 0.25), depth)
    assert torch.allclose(g.means.norm(dim=-1), depth, rtol=1e-5)
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(len(grid)), atol=1e-5)
    # the third local axis (thin) points at the viewer; quats reproduce the tangent frames
    r = quat_to_rotmat(g.quats)
    assert torch.allclose(r, tangent_frames(grid.lon, grid.lat).float(), atol=1e-5)
    normal = r[:, :, 2]
    assert torch.allclose(
        (normal * -g.means / depth[:, None]).sum(-1), torch.ones(len(grid)), atol=1e-5
    )
    s = g.log_scales.exp()
    assert (s[:, 2] < s[:, :2].min(dim=1).values).all()
    assert torch.allclose(sh0_to_rgb(g.sh[:, 0]), torch.full((len(grid), 3), 0.25), atol=1e-6)


def test_initial_gaussians_reproduce_the_panorama_from_the_origin():
    pano = textured_equirect(128, 256, seed=5)
    grid = equal_area_grid(128)
    rgb = sample_at_grid(pano.astype(np.float32) / 255, grid)
    g = init_gaussians(grid, rgb, torch.full((len(grid),), 5.0))
    for yaw, pitch in [(0, 0), (140, 30), (-60, -70)]:
        view = View(yaw, pitch, 90, 64, 64)
        got = render_view(g, view).rgb.numpy()
        ref = perspective(pano, yaw, pitch, 90, (64, 64)).astype(np.float32) / 255
        mse = float(((got - ref) ** 2).mean())
        assert 10 * math.log10(1 / mse) > 24, (yaw, pitch)


def _lift_inputs(frames=3):
    pano = textured_equirect(64, 128, seed=1)
    frames_ = np.stack([np.roll(pano, 2 * t, axis=1) for t in range(frames)])
    weight = np.zeros((64, 128), np.float32)
    weight[10:25, 30:90] = 1.0
    frames_[:, weight == 0] = pano[weight == 0]
    depth = np.full((frames, 64, 128), 4.0, np.float32)
    return frames_, depth, weight


def test_lifter_splits_static_and_dynamic_and_improves_fit():
    frames, depth, weight = _lift_inputs()
    base = dict(work_height=32, view_size=48, dynamic_iters=2, eval_size=48, eval_views=2)
    before = Lifter(LiftConfig(static_iters=0, **base)).run(frames, depth, weight)
    after = Lifter(LiftConfig(static_iters=25, **base)).run(frames, depth, weight)
    n_static, n_dyn = len(after.static), len(after.dynamic[0])
    assert n_static > 0 and n_dyn > 0 and len(after.dynamic) == 3
    # dynamic samples are those whose footprint touches the region (~15/64 x 60/128 area)
    assert 0.05 < n_dyn / (n_static + n_dyn) < 0.3
    # later frames keep positions, orientations and scales; colours change
    for d in after.dynamic[1:]:
        assert torch.equal(d.means, after.dynamic[0].means)
        assert torch.equal(d.log_scales, after.dynamic[0].log_scales)
    assert not torch.equal(after.dynamic[2].sh, after.dynamic[0].sh)
    assert after.metrics["psnr_train"] > before.metrics["psnr_train"] + 0.3


def test_checkpoint_hooks_and_resume_give_the_same_result():
    frames, depth, weight = _lift_inputs()
    cfg = LiftConfig(
        work_height=24, view_size=32, static_iters=3, dynamic_iters=1, eval_size=32, eval_views=2
    )
    saved = {}
    full = Lifter(cfg).run(
        frames,
        depth,
        weight,
        on_static=lambda s, d0: saved.update(static=s, d0=d0),
        on_frame=lambda t, g: saved.update({t: g}),
    )
    assert set(saved) == {"static", "d0", 1, 2}
    resumed = Lifter(cfg).run(
        frames, depth, weight, resume_static=saved["static"], resume_dynamic=[saved["d0"], saved[1]]
    )
    assert torch.equal(resumed.dynamic[1].sh, full.dynamic[1].sh)
    assert len(resumed.dynamic) == 3


def _footprint_brute(mask, grid):
    h, w = mask.shape
    out = []
    for lon, lat, dl in zip(grid.lon.tolist(), grid.lat.tolist(), grid.d_lon.tolist()):
        r = min(h - 1, max(0, round((0.5 - lat / math.pi) * h - 0.5)))
        hit = False
        for c in range(w):  # column c spans [c, c + 1) in units of (lon / 2pi + 0.5) w
            lo = ((lon - dl / 2) / (2 * math.pi) + 0.5) * w
            hi = ((lon + dl / 2) / (2 * math.pi) + 0.5) * w
            for shift in (-w, 0, w):  # wrap across the seam
                if mask[r, c] and c + shift < hi - 1e-9 and c + shift + 1 > lo + 1e-9:
                    hit = True
        out.append(hit)
    return torch.tensor(out)


def test_dynamic_split_sees_thin_regions_at_high_latitude_and_the_seam():
    from engine.lift.init import footprint_any

    grid = equal_area_grid(16)
    mask = np.zeros((16, 32), bool)
    mask[1, 7] = True  # one column near the pole: samples there span ~5 columns
    mask[8, 0] = True  # straddling the seam
    mask[12, 20:22] = True
    got = footprint_any(mask, grid)
    assert torch.equal(got, _footprint_brute(mask, grid))
    assert int(got.sum()) >= 3
