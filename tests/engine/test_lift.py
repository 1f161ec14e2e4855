"""Lifting: geometry of the initial Gaussians, the whole stage, per-frame geometry, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.camera import View
from engine.gaussians import sh0_to_rgb
from engine.lift.cells import CellConfig, Cells, build_cells
from engine.lift.init import InitConfig, init_gaussians, order_rank, tangent_frames
from engine.lift.optimize import LiftConfig, Lifter
from engine.lift.raster import project, quat_to_rotmat, render_view, view_camera
from engine.lift.refine import RefineConfig
from engine.lift.solve import SolveConfig
from engine.sphere import perspective_view
from tests.conftest import textured_equirect


def _cells(h=16, density=1.0, levels=3):
    pano = textured_equirect(h, 2 * h, seed=0)
    cfg = CellConfig(density=density, levels=levels)
    return build_cells(pano, np.full((h, 2 * h), 5.0), np.zeros((h, 2 * h), bool), cfg)


def test_init_places_discs_on_their_rays_facing_the_viewer():
    cells = _cells(density=0.5, levels=1)
    assert set(cells.level.tolist()) == {0, 1}
    depth = torch.linspace(2.0, 9.0, len(cells), dtype=torch.float64)
    cfg = InitConfig()
    g = init_gaussians(cells, torch.full((len(cells), 3), 0.25), depth, cfg)
    r = g.means.norm(dim=-1).double()
    # on its ray, pushed back by the order offset: rank (0..3, + 4 per merge level) times
    # order_step finest-cell heights
    rank = order_rank(cells)
    assert set(rank[cells.level == 0].tolist()) == {0, 1, 2, 3}
    assert torch.equal(rank[cells.level == 1] // 4, torch.ones_like(rank[cells.level == 1]))
    finest = math.pi / 16
    expect = depth * (1 + cfg.order_step * finest * rank.double())
    assert torch.allclose(r, expect, rtol=1e-5)
    dirs = g.means.double() / r[:, None]
    lat = torch.asin(dirs[:, 1])
    assert torch.allclose(lat, cells.lat, atol=1e-5)
    rot = quat_to_rotmat(g.quats)
    assert torch.allclose(rot, tangent_frames(cells.lon, cells.lat).float(), atol=1e-5)
    normal = rot[:, :, 2]
    assert torch.allclose((normal * -dirs.float()).sum(-1), torch.ones(len(cells)), atol=1e-5)
    s = g.log_scales.exp().double()
    # the tangential size is the cell's angular footprint at its distance
    assert torch.allclose(s[:, 1], cfg.footprint * cells.d_lat * r, rtol=1e-4)
    assert (s[:, 2] < s[:, :2].min(dim=1).values).all()
    assert torch.allclose(sh0_to_rgb(g.sh[:, 0]), torch.full((len(cells), 3), 0.25), atol=1e-6)


def test_finest_cells_may_have_their_own_footprint():
    grid = _cells(density=0.5, levels=1)
    layer = grid.subset(grid.level == 0)  # background-layer cells are level -1
    layer.level = torch.full_like(layer.level, -1)
    cells = Cells.cat([grid, layer])
    depth = torch.linspace(2.0, 9.0, len(cells), dtype=torch.float64)
    cfg = InitConfig(footprint=0.6, fine_footprint=0.45)
    g = init_gaussians(cells, torch.zeros(len(cells), 3), depth, cfg)
    r = g.means.norm(dim=-1).double()
    fraction = g.log_scales.exp().double()[:, 1] / (cells.d_lat * r)
    fine = cells.level == 0
    assert torch.allclose(fraction[fine], torch.full_like(fraction[fine], 0.45), rtol=1e-4)
    assert torch.allclose(fraction[~fine], torch.full_like(fraction[~fine], 0.6), rtol=1e-4)


def _order_agreement(step: float) -> list[float]:
    """Per view, the share of neighbour pairs whose camera-depth order is their distance
    order (what every view from the centre then agrees on)."""
    cells = _cells(h=128, density=1.0, levels=1)
    depth = torch.full((len(cells),), 5.0, dtype=torch.float64)
    g = init_gaussians(cells, torch.zeros(len(cells), 3), depth, InitConfig(order_step=step))
    dirs = g.means / g.means.norm(dim=-1, keepdim=True)
    sub = torch.nonzero(cells.lat.abs() < 1.2).squeeze(1)[::7][:3000]
    ii, j = torch.nonzero(dirs[sub] @ dirs.T > math.cos(1.6 * math.pi / 128), as_tuple=True)
    i = sub[ii]
    i, j = i[i != j], j[i != j]
    radial = g.means.norm(dim=-1)
    out = []
    for view in (
        View(0, 0, 90, 256, 256),
        View(40, 30, 90, 256, 256),
        View(-75, -20, 90, 256, 256),
    ):
        vm, k, w, h = view_camera(view)
        m2, _, z = project(g.means, g.quats, g.log_scales, vm, k, w, h)
        sel = (
            (z[i] > 0)
            & (z[j] > 0)
            & (m2[i, 0] >= 0)
            & (m2[i, 0] < w)
            & (m2[i, 1] >= 0)
            & (m2[i, 1] < h)
        )
        assert int(sel.sum()) > 500
        out.append(float(((z[i] < z[j]) == (radial[i] < radial[j]))[sel].float().mean()))
    return out


def test_neighbours_composite_in_the_same_order_in_every_view_from_the_centre():
    assert min(_order_agreement(InitConfig().order_step)) > 0.95
    assert max(_order_agreement(0.0)) < 0.65  # without the offsets: a coin toss per view


def _inputs(h=48, frames=3, moving_depth=False):
    pano = textured_equirect(h, 2 * h, seed=1)
    w = 2 * h
    frames_ = np.stack([np.roll(pano, 2 * t, axis=1) for t in range(frames)])
    weight = np.zeros((h, w), np.float32)
    weight[h // 4 : h // 2, w // 4 : 3 * w // 4] = 1.0
    frames_[:, weight == 0] = pano[weight == 0]
    depth = np.full((frames, h, w), 4.0, np.float32)
    if moving_depth:
        for t in range(frames):
            depth[t][weight > 0] = 4.0 - 0.8 * t  # the region comes closer every frame
    return frames_, depth, weight


FAST = LiftConfig(solve=SolveConfig(view_sets=1), refine=RefineConfig(passes=1))


def test_lift_renders_the_input_back_at_its_own_resolution():
    frames, depth, weight = _inputs(h=64, frames=2)
    out = Lifter(FAST).run(frames, depth, weight)
    m = out.metrics
    assert m["gaussians_per_input_pixel"] >= 0.5
    assert m["psnr_native"] > 33.0, m
    assert (
        "deg/px" in m["psnr_native_resolution"] and "static pixels" in m["psnr_native_resolution"]
    )
    assert (
        m["static_flicker"] < 0.5
    )  # 0..255: dynamic footprints reach a pixel or two past the region
    # a deliberately blurred lift (half the resolution) fails the same check
    blurred = Lifter(
        LiftConfig(scale=0.5, solve=SolveConfig(view_sets=1), refine=RefineConfig(passes=1))
    ).run(frames, depth, weight)
    assert blurred.metrics["psnr_native"] < m["psnr_native"] - 4.0
    assert blurred.metrics["psnr_native"] < 33.0
    assert blurred.metrics["gaussians_per_input_pixel"] < 0.2
    # magnified as in a headset (this tiny input at the 4x cap) the blur costs too
    assert m["psnr_headset"] > 28.0 and "magnified 4.0x" in m["psnr_headset_resolution"]
    assert blurred.metrics["psnr_headset"] < m["psnr_headset"] - 3.0


def test_headset_views_are_at_the_headsets_angular_resolution():
    """1832 px over 100 degrees: 40-degree views of 733 px; a 4096-wide panorama is seen
    1.6x magnified, a 2048-wide one 3.2x; tiny inputs at most 4x."""
    from engine.lift.evaluate import headset_views, native_views

    for width in (2048, 4096):
        views = headset_views(width)
        assert len(views) == 8 and {(v.width, v.height, v.fov_deg) for v in views} == {
            (733, 733, 40.0)
        }
    assert [(v.yaw_deg, v.pitch_deg) for v in headset_views(4096)] == [
        (v.yaw_deg, v.pitch_deg) for v in native_views(4096, 8)
    ]
    assert headset_views(128)[0].width == round(40 * 4 * 128 / 360)


def test_refinement_passes_improve_the_fit():
    frames, depth, weight = _inputs(h=48, frames=1)
    base = dict(solve=SolveConfig(view_sets=1))
    before = Lifter(LiftConfig(refine=RefineConfig(passes=0), **base)).run(frames, depth, weight)
    after = Lifter(LiftConfig(refine=RefineConfig(passes=3), **base)).run(frames, depth, weight)
    assert after.metrics["psnr_train"] > before.metrics["psnr_train"] + 0.2


def test_per_frame_depth_gives_per_frame_geometry():
    frames, depth, weight = _inputs(h=48, frames=3, moving_depth=True)
    out = Lifter(FAST).run(frames, depth, weight)
    assert len(out.dynamic) == 3 and len(out.static) > 0
    region = View(0, 20, 60, 48, 48)  # looks at the animated region
    mask = perspective_view((weight > 0).astype(np.float32), region) > 0.999
    rendered = [
        render_view(out.static.cat([out.static, d]), region, with_depth=True).depth.numpy()[mask]
        for d in out.dynamic
    ]
    for t in range(3):
        # the region's rendered depth follows depth[t] (the order offsets, up to 3 ranks of
        # 2 cell heights, push it back by at most 40 % at this coarse size)
        want = 4.0 - 0.8 * t
        assert 1.0 <= np.median(rendered[t]) / want < 1.4
        assert np.median(np.abs(rendered[t] / rendered[0] - want / 4.0)) < 0.01
    # the static set never moves; the dynamic one moves along its rays
    d0, d2 = out.dynamic[0], out.dynamic[2]
    ratio = d2.means.norm(dim=-1) / d0.means.norm(dim=-1)
    assert torch.allclose(ratio, torch.full_like(ratio, 2.4 / 4.0), rtol=1e-4)
    assert torch.allclose(
        d2.log_scales - d0.log_scales, torch.log(ratio)[:, None].expand(-1, 3), atol=1e-5
    )
    cos = (d2.means * d0.means).sum(-1) / (d2.means.norm(dim=-1) * d0.means.norm(dim=-1))
    assert float(cos.min()) > 1 - 1e-6


def test_static_geometry_keeps_dynamic_positions_and_changes_colours():
    frames, depth, weight = _inputs(h=32, frames=3)
    out = Lifter(FAST).run(frames, depth, weight)
    for d in out.dynamic[1:]:
        assert torch.equal(d.means, out.dynamic[0].means)
        assert torch.equal(d.log_scales, out.dynamic[0].log_scales)
    assert not torch.equal(out.dynamic[2].sh, out.dynamic[0].sh)


def test_checkpoint_hooks_and_resume_give_the_same_result():
    frames, depth, weight = _inputs(h=32, frames=3)
    saved = {}
    full = Lifter(FAST).run(
        frames,
        depth,
        weight,
        on_static=lambda s, d0: saved.update(static=s, d0=d0),
        on_frame=lambda t, g: saved.update({t: g}),
    )
    assert set(saved) == {"static", "d0", 1, 2}
    resumed = Lifter(FAST).run(
        frames, depth, weight, resume_static=saved["static"], resume_dynamic=[saved["d0"], saved[1]]
    )
    assert torch.equal(resumed.dynamic[2].sh, full.dynamic[2].sh)
    assert len(resumed.dynamic) == 3


@pytest.mark.parametrize("scale", [0.5])
def test_lift_scale_keeps_evaluating_against_the_full_input(scale):
    frames, depth, weight = _inputs(h=64, frames=1)
    out = Lifter(
        LiftConfig(scale=scale, solve=SolveConfig(view_sets=1), refine=RefineConfig(passes=0))
    ).run(frames, depth, weight)
    assert f"{360 / 128:.4f} deg/px" in out.metrics["psnr_native_resolution"]  # the input's
    assert "at 21x21 px" in out.metrics["psnr_native_resolution"]
    assert out.metrics["gaussians_per_input_pixel"] < 0.2


def test_the_cuda_preset_is_refused_here_with_one_line_naming_the_fallback():
    from engine.config import build_config
    from engine.errors import InputError
    from engine.lift.raster import has_gsplat

    if has_gsplat():
        pytest.skip("CUDA and gsplat are here: the preset runs")
    with pytest.raises(InputError, match="needs CUDA and gsplat.*--preset standard"):
        build_config("cuda")
    with pytest.raises(InputError, match="--device cuda needs CUDA"):
        build_config("standard", device="cuda")
    assert build_config("standard").lift.device == "auto"


@pytest.mark.gpu
def test_cuda_lift_with_gsplat_matches_the_cpu_lift():
    from engine.lift.raster import has_gsplat

    if not has_gsplat():
        pytest.skip("needs CUDA and the gsplat package")
    frames, depth, weight = _inputs(h=64, frames=2, moving_depth=True)
    cpu = Lifter(FAST).run(frames, depth, weight)
    gpu = Lifter(
        LiftConfig(solve=SolveConfig(view_sets=1), refine=RefineConfig(passes=1), device="cuda")
    ).run(frames, depth, weight)
    assert gpu.metrics["lift_device"].startswith("cuda")
    assert abs(gpu.metrics["psnr_native"] - cpu.metrics["psnr_native"]) < 1.0
    assert gpu.static.means.device.type == "cpu"
    assert torch.allclose(gpu.dynamic[1].means, cpu.dynamic[1].means, atol=1e-4)


def test_temporal_target_is_the_least_squares_blend():
    """Reference: the normal equations of min ||r - y||^2 + lam ||r - p||^2, solved by
    torch.linalg.lstsq on the stacked system [I; sqrt(lam) I] r = [y; sqrt(lam) p]."""
    from engine.lift.optimize import temporal_target

    g = torch.Generator().manual_seed(0)
    y, p = torch.rand(2, 5, 3, generator=g, dtype=torch.float64)
    for lam in (0.0, 0.05, 2.0):
        eye = torch.eye(5, dtype=torch.float64)
        a = torch.cat([eye, math.sqrt(lam) * eye])
        ref = torch.linalg.lstsq(a, torch.cat([y, math.sqrt(lam) * p])).solution
        torch.testing.assert_close(temporal_target(y, p, lam), ref)


def test_refinement_loss_adds_the_temporal_term():
    """step_loss = L_rgb + lambda_temporal * L1(render, render of frame t-1) (+ L_geo, off)."""
    from types import SimpleNamespace

    from engine.lift.losses import rgb_loss
    from engine.lift.refine import Step, step_loss
    from engine.lift.regularizers import RegularizerConfig, Regularizers

    g = torch.Generator().manual_seed(0)
    rgb, target, previous = torch.rand(3, 8, 8, 3, generator=g)
    cfg = RefineConfig()
    regs = Regularizers(RegularizerConfig(lambda_geo=0.0), None, torch.device("cpu"))
    render = SimpleNamespace(rgb=rgb, depth=None)
    step = Step(View(0, 0, 60, 8, 8), (0, 0, 8, 8), target, previous)
    got = float(step_loss(render, step, cfg, regs, None, 1, 0.5))
    want = float(rgb_loss(rgb, target)) + cfg.lambda_temporal * float((rgb - previous).abs().mean())
    assert got == pytest.approx(want, rel=1e-6) and cfg.lambda_temporal > 0
    first = Step(step.view, step.roi, target, None)  # frame 0: no temporal term
    assert float(step_loss(render, first, cfg, regs, None, 0, 0.5)) == pytest.approx(
        float(rgb_loss(rgb, target)), rel=1e-6
    )
