"""Relative depth (disparity up to a scale *and a shift* per view) made consistent across
the views before eq. 4, on synthetic scenes of known geometry (tests/engine/test_align.py).

Each view's true disparity 1 / z (planar depth, as DPT and Depth Anything predict it) is
corrupted by its own random scale in [1/2, 2] and shift (up to 30 % of the median
disparity, centred: a shift common to every view is barely observable). The reference is
the scene itself; the scale-only normalisation of one view at a time
(``to_ray_depth``) is the baseline that the shift defeats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.depth.disparity import DisparityAlignConfig, align_disparities, fit_disparity_affine
from engine.depth.models import DepthModelConfig, to_ray_depth
from engine.sphere import fuse_views
from tests.engine.test_align import FAR, SCENES, VIEWS, absrel, render_views


def disparity_affine(truth: np.ndarray, seed: int = 0):
    """(corrupted disparity [V, h, w], scales [V], shifts [V]) of the truth's views."""
    ray = render_views(truth).double()
    planar = ray / torch.from_numpy(VIEWS[0].planar_to_ray())
    disp = 1.0 / planar
    rng = np.random.default_rng(seed)
    s = np.exp(rng.uniform(-np.log(2), np.log(2), len(VIEWS)))
    t = rng.uniform(-0.3, 0.3, len(VIEWS)) * float(disp.median())
    t -= t.mean()
    out = torch.from_numpy(s)[:, None, None] * disp + torch.from_numpy(t)[:, None, None]
    return out.float(), s, t


def _fused(view_depth: torch.Tensor, h: int, w: int) -> np.ndarray:
    fused, _ = fuse_views(view_depth[:, None, None], VIEWS, h, w)
    return fused[0, 0].numpy()


@pytest.mark.parametrize("scene", list(SCENES))
def test_disparity_affine_corruption_is_undone(scene):
    truth = SCENES[scene](64, 128)
    disp, _, _ = disparity_affine(truth)
    cfg = DisparityAlignConfig(far=FAR)
    aligned = align_disparities(disp, VIEWS, cfg)
    fac = torch.from_numpy(VIEWS[0].planar_to_ray())
    scale_only = to_ray_depth(disp, "relative", fac, DepthModelConfig(far=FAR))
    err, base = absrel(_fused(aligned, 64, 128), truth), absrel(_fused(scale_only, 64, 128), truth)
    assert err < 0.01, err
    assert base > 0.05 and base > 10 * err, (base, err)
    # each view on its own agrees with the truth too (not only their average)
    views = render_views(truth).numpy()
    k = np.median(views / aligned.numpy())
    assert float(np.mean(np.abs(k * aligned.numpy() - views) / views)) < 0.02


def test_shifts_are_fitted_not_only_scales():
    """Forcing every shift to 0 (an enormous ridge) is the scale-only fit: it cannot undo
    the corruption, so the shifts are what the overlaps determine."""
    truth = SCENES["box room"](64, 128)
    disp, _, t = disparity_affine(truth, seed=3)
    free = align_disparities(disp, VIEWS, DisparityAlignConfig(far=FAR))
    pinned = align_disparities(disp, VIEWS, DisparityAlignConfig(far=FAR, ridge=1e9))
    e_free, e_pinned = absrel(_fused(free, 64, 128), truth), absrel(_fused(pinned, 64, 128), truth)
    assert e_free < 0.01 and e_pinned > 3 * e_free, (e_free, e_pinned)
    alpha, beta = fit_disparity_affine(disp, VIEWS, DisparityAlignConfig(far=FAR))
    assert np.corrcoef(beta.numpy(), -t)[0, 1] > 0.8  # the shift removed is the one added


def test_a_failed_view_goes_to_the_far_shell():
    truth = SCENES["ground + far shell"](64, 128)
    disp, _, _ = disparity_affine(truth)
    disp[0] = torch.nan  # a view the model failed on
    out = align_disparities(disp, VIEWS, DisparityAlignConfig(far=FAR))
    assert torch.isfinite(out).all() and float(out.max()) <= FAR
    assert bool((out[0] == FAR).all())  # no finite disparity: all far shell
