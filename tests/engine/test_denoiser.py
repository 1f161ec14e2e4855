"""The Panoramic Denoiser and its sphere machinery, against engine.sphere's reference
functions, noise statistics and an analytic model whose clean video is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser, latent_mask
from engine.animate.fusion import SphereViews, ring_views
from engine.camera import View
from engine.errors import Cancelled
from engine.progress import CancelToken, Progress
from engine.sphere import (
    ViewSetConfig,
    coverage,
    fuse_views,
    make_views,
    perspective_view,
)
from tests.conftest import smooth_equirect


def _views(size=12, fov=90.0):
    return make_views(ViewSetConfig(fov_deg=fov, size=size))


def test_project_matches_perspective_reference():
    img = torch.from_numpy(smooth_equirect(24, 48)).permute(2, 0, 1)[None]  # [1, 3, H, W]
    views = _views(10) + [View(179.0, 10.0, 70.0, 10, 10)]  # one view across the seam
    sv = SphereViews(views, 24, 48)
    got = sv.project(img)  # [V, 1, 3, h, w]
    for k, v in enumerate(views):
        ref = perspective_view(img, v)
        assert torch.allclose(got[k], ref, atol=1e-5)


def test_fuse_matches_fuse_views_reference():
    views = _views(8)
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(len(views), 2, 3, 8, 8, generator=g)
    sv = SphereViews(views, 20, 40, feather=0.2)
    got = sv.fuse(imgs)
    ref, weight = fuse_views(imgs, views, 20, 40, feather=0.2)
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(sv.weight.float(), weight, atol=1e-5)
    assert bool(sv.covered.all())  # the default view set covers the sphere


def test_fuse_of_projection_recovers_a_smooth_sphere_signal_and_wraps_the_seam():
    s = torch.from_numpy(smooth_equirect(32, 64)).permute(2, 0, 1)[None]
    sv = SphereViews(_views(24), 32, 64)
    back = sv.fuse(sv.project(s))
    err = (back - s).abs()
    assert float(err.max()) < 0.02
    # the seam columns are no worse than the rest
    assert float(err[..., [0, -1]].mean()) < 2 * float(err.mean()) + 1e-3


def _lag1(x: torch.Tensor) -> float:
    """Mean lag-1 correlation along rows and columns of [..., h, w] samples."""
    x = x - x.mean()
    a = (x[..., 1:] * x[..., :-1]).mean() / x.var()
    b = (x[..., 1:, :] * x[..., :-1, :]).mean() / x.var()
    return float((a + b) / 2)


def test_view_noise_is_unit_variance_white_and_consistent_with_the_sphere():
    views = _views(16)
    sv = SphereViews(views, 32, 64)
    g = torch.Generator().manual_seed(1)
    eq, vn, unfilled = sv.white_noise(8, g)
    assert unfilled == 0.0
    assert vn.shape == (len(views), 8, 16, 16) and eq.shape == (8, 32, 64)
    for k in range(len(views)):  # every view on its own: N(0, 1), white
        assert abs(float(vn[k].mean())) < 0.08
        assert abs(float(vn[k].std()) - 1) < 0.06
        assert abs(_lag1(vn[k])) < 0.08
    assert abs(float(eq.std()) - 1) < 0.03 and abs(_lag1(eq)) < 0.05
    # the same noise field: views correlate strongly with the projected sphere noise
    proj = sv.project(eq[None])[:, 0]
    corr = float(((proj - proj.mean()) * (vn - vn.mean())).mean() / (proj.std() * vn.std()))
    assert corr > 0.5
    # ... while naive bilinear projection of the noise shrinks its variance (why we don't)
    assert float(proj.std()) < 0.85


def test_ring_views_cover_the_sphere_with_overlap():
    views = ring_views(43.0, 32)
    cov = coverage(views, height=128)
    assert cov.covered > 0.999 and cov.overlap > 0.3
    assert len({(v.height, v.width) for v in views}) == 1


def test_latent_mask_dilates_and_wraps_the_seam():
    w = torch.zeros(32, 64)
    w[8:16, 0:4] = 0.5  # touches the left edge
    m = latent_mask(w, 8)  # [4, 8]
    assert m.shape == (4, 8)
    assert float(m[1, 0]) == 0.5 and float(m[1, -1]) == 0.5  # wrapped to the last column
    assert float(m[1, 1]) == 0.5 and float(m[3, 3]) == 0.0


class ConditionedOracle:
    """An analytic image-to-video 'model': the clean video of a view is its conditioning crop,
    area-downsampled to the latent grid, brightened by 10 % per frame. Whatever noisy latent
    it is given, it returns that (the ideal denoiser of a one-point distribution), so the
    Panoramic Denoiser must return encode(panorama) x (1 + 0.1 t) inside the mask."""

    latent_channels = 3
    latent_scale = 4
    size_multiple = 8
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self) -> None:
        self.first_z: list[torch.Tensor] = []
        self.sigma_max = 0.0

    def schedule(self, steps):
        sig = torch.exp(torch.linspace(math.log(80.0), math.log(0.02), steps)).double()
        return torch.cat([sig, torch.zeros(1, dtype=torch.float64)]), torch.log(sig) / 4

    def encode(self, images):
        return F.avg_pool2d(images.float(), self.latent_scale)

    def decode(self, latents):
        return F.interpolate(latents.float(), scale_factor=self.latent_scale, mode="nearest")

    def condition(self, crops, masks, frames):
        gain = 1 + 0.1 * torch.arange(frames, dtype=torch.float32)
        self.clean = self.encode(crops)[:, None] * gain[None, :, None, None, None]

    def denoise(self, z, sigma, timestep, views):
        if sigma >= self.sigma_max:
            self.sigma_max = sigma
            self.first_z.append(z / sigma)
        return self.clean[views].expand_as(z).clone()


def _image(h=64, w=128):
    return torch.from_numpy(smooth_equirect(h, w)).permute(2, 0, 1) * 2 - 1


@pytest.mark.parametrize("two_pass", [False, True])
def test_oracle_result_exact_outside_and_analytic_inside(two_pass):
    image = _image()
    weight = torch.zeros(64, 128)
    weight[16:40] = 1.0  # a band all the way round: crosses the seam
    model = ConditionedOracle()
    cfg = DenoiserConfig(steps=6, views=ViewSetConfig(size=512), two_pass=two_pass, view_batch=7)
    den = PanoramicDenoiser(model, cfg)
    calls = []
    prog = Progress("animate", lambda s, f, m: calls.append(f))
    frames = 3
    out = den.run(image, weight, frames, prog)
    src = model.encode(image[None])[0]
    assert out.shape == (frames, 3, 16, 32) and out.dtype == torch.float32
    mask = latent_mask(weight, 4) > 0
    # outside the (dilated) mask and in frame 0 the latent is the source, exactly
    assert torch.equal(out[:, :, ~mask], src[None, :, ~mask].expand(frames, -1, -1))
    assert torch.equal(out[0], src)
    # inside: the analytic clean video (up to projection / fusion resampling)
    gain = 1 + 0.1 * torch.arange(frames)
    expect = src[None] * gain[:, None, None, None]
    assert float((out - expect)[1:, :, mask].abs().max()) < 0.06
    plan = den.plan(64, 128)
    assert len(plan) == (2 if two_pass else 1)
    assert den.stats.steps == sum(6 - p.start for p in plan) and den.stats.noise_unfilled == 0
    if two_pass:
        assert plan[0].scale == 2 and plan[1].start == round(6 * (1 - cfg.refine_strength))
    assert len(calls) >= den.stats.steps and calls == sorted(calls)
    # the noise every view saw at the first step is unit-variance white Gaussian
    z = torch.cat(model.first_z)
    assert abs(float(z.std()) - 1) < 0.05 and abs(float(z.mean())) < 0.05
    assert abs(_lag1(z)) < 0.08


def test_ablation_modes_run_and_the_sphere_mode_agrees_across_views():
    image, weight = _image(), torch.zeros(64, 128)
    weight[8:56] = 1.0
    stats = {}
    for mode in ("sphere", "independent", "equirect"):
        cfg = DenoiserConfig(steps=3, views=ViewSetConfig(size=512), two_pass=False, mode=mode)
        den = PanoramicDenoiser(ConditionedOracle(), cfg)
        out = den.run(image, weight, 2)
        assert out.shape == (2, 3, 16, 32) and torch.isfinite(out).all()
        stats[mode] = den.stats
    assert stats["equirect"].views == [1] and stats["sphere"].views == [20]
    # the oracle's views are consistent by construction; only resampling separates them
    assert stats["sphere"].consistency < 0.05


def test_plan_at_4k_refines_with_denser_narrower_views():
    class Big(ConditionedOracle):
        latent_scale, size_multiple = 8, 64

    den = PanoramicDenoiser(Big(), DenoiserConfig(steps=25))
    low, high = den.plan(2048, 4096)
    assert (low.scale, low.start, len(low.views), low.views[0].width) == (2, 0, 20, 512)
    assert high.scale == 1 and high.start == 15 and high.views[0].width == 512
    assert high.views[0].fov_deg == pytest.approx(42.9, abs=0.1) and len(high.views) > 40


def test_cancel_stops_at_the_next_step():
    token = CancelToken()
    seen = []

    def cb(stage, fraction, message):
        seen.append(message)
        if len(seen) == 2:
            token.cancel()

    den = PanoramicDenoiser(ConditionedOracle(), DenoiserConfig(steps=8, two_pass=False))
    w = torch.ones(64, 128)
    with pytest.raises(Cancelled):
        den.run(_image(), w, 2, Progress("animate", cb, token))
    assert den.stats.steps == 2


def test_bad_mode_and_size():
    with pytest.raises(ValueError, match="mode"):
        PanoramicDenoiser(ConditionedOracle(), DenoiserConfig(mode="nope"))
    den = PanoramicDenoiser(ConditionedOracle(), DenoiserConfig(steps=2))
    with pytest.raises(ValueError, match="multiple"):
        den.run(torch.zeros(3, 30, 60), torch.ones(30, 60), 2)
    assert np.isfinite(den.stats.fusion_share)


@pytest.mark.parametrize("size", [(45, 90), (13, 26), (64, 128)])
def test_resize_wrapped_has_no_seam(size):
    """Resizing wraps across the seam: the same samples as resizing three copies side by
    side and keeping the middle one (independent reference: F.interpolate)."""
    from engine.animate.fusion import resize_wrapped

    x = torch.randn(2, 3, 20, 40, generator=torch.Generator().manual_seed(0))
    tiled = torch.cat([x, x, x], dim=-1)
    ref = F.interpolate(tiled, size=(size[0], 3 * size[1]), mode="bicubic", align_corners=False)
    ref = ref[..., size[1] : 2 * size[1]]
    torch.testing.assert_close(resize_wrapped(x, size), ref, atol=1e-4, rtol=0)
