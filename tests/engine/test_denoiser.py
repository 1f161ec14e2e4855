"""The Panoramic Denoiser and its sphere machinery, against engine.sphere's reference
functions, noise statistics and an analytic model whose clean video is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser, latent_mask, sv_crops
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
        from diffusers import EulerDiscreteScheduler

        self.first_z: list[torch.Tensor] = []
        self.sigma_max = 0.0
        # it predicts x0 itself; "trailing" spacing starts from noise of std sigma_max
        self.scheduler = EulerDiscreteScheduler(
            prediction_type="sample", timestep_spacing="trailing", use_karras_sigmas=True
        )

    def encode(self, images):
        return F.avg_pool2d(images.float(), self.latent_scale)

    def decode(self, latents):
        return F.interpolate(latents.float(), scale_factor=self.latent_scale, mode="nearest")

    def condition(self, crops, masks, frames, views=None):
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


# -- a denoiser whose output depends on its input: linear-Gaussian data -------------------


class GaussianOracle(ConditionedOracle):
    """The exact denoiser of Gaussian data: per latent pixel x0 ~ N(mu, s^2), with mu the
    view's conditioning crop on the latent grid. For z = a x0 + c eps at the scheduler's
    nominal level the posterior mean is linear in z, so the sampler's trajectory has a
    closed form and every part of the update (the state's share, the fused estimate, the
    noise of every step) shows in the result."""

    s2 = 0.25  # data variance

    def __init__(self, scheduler=None) -> None:
        super().__init__()
        if scheduler is not None:
            self.scheduler = scheduler

    def condition(self, crops, masks, frames, views=None):
        self.mu = self.encode(crops)[:, None].expand(-1, frames, -1, -1, -1)

    def denoise(self, z, sigma, timestep, views):
        mu = self.mu[views]
        if self.flow:  # z = (1 - t) x0 + t eps
            t = sigma
            gain = (1 - t) * self.s2 / ((1 - t) ** 2 * self.s2 + t * t)
            return mu + gain * (z - (1 - t) * mu)
        return mu + self.s2 / (self.s2 + sigma * sigma) * (z - mu)  # z = x0 + sigma eps

    @property
    def flow(self) -> bool:
        return "FlowMatch" in type(self.scheduler).__name__


def _unmasked_run(model, mode, steps=5, frames=2, h=32, w=64):
    image = _image(h, w)
    cfg = DenoiserConfig(steps=steps, two_pass=False, mode=mode, pin_first_frame=False)
    den = PanoramicDenoiser(model, cfg)
    return den, image, den.run(image, torch.ones(h, w), frames)


def test_equirect_sampling_follows_the_closed_form_euler_trajectory():
    """Euler on k-diffusion sigmas with the exact Gaussian denoiser D(z) = mu + b_i (z - mu):
    z_{i+1} - mu = (z_i - mu) (r_i + (1 - r_i) b_i), r_i = sigma_{i+1} / sigma_i, from
    z_0 = sigma_0 eps (float64 reference from the schedule's sigmas alone)."""
    model = GaussianOracle()
    den, image, out = _unmasked_run(model, "equirect")
    sig = model.scheduler.sigmas.double()
    factor = 1.0
    for i in range(len(sig) - 1):
        r, b = sig[i + 1] / sig[i], model.s2 / (model.s2 + sig[i] ** 2)
        factor *= float(r + (1 - r) * b)
    eps = torch.randn(1, 2, 3, 8, 16, generator=torch.Generator().manual_seed(0))[0].double()
    mu = model.encode(image[None].double())[0][None]
    expect = mu + (float(sig[0]) * eps - mu) * factor
    assert abs(factor) > 1e-3  # the noise still shows: a wrong noise term cannot hide
    torch.testing.assert_close(out.double(), expect, atol=2e-5, rtol=0)


def test_equirect_flow_matching_follows_the_ode_reference():
    """Rectified flow (FlowMatchEulerDiscreteScheduler, shifted sigmas): Euler on the
    velocity (z - D(z)) / t of the exact Gaussian denoiser, iterated in float64 from z = eps."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    model = GaussianOracle(FlowMatchEulerDiscreteScheduler(shift=3.0))
    den, image, out = _unmasked_run(model, "equirect", steps=6)
    model.scheduler.set_timesteps(6)
    t = model.scheduler.sigmas.double()
    mu = model.encode(image[None].double())[0][None]
    z = torch.randn(1, 2, 3, 8, 16, generator=torch.Generator().manual_seed(0))[0].double()
    for i in range(6):
        gain = (1 - t[i]) * model.s2 / ((1 - t[i]) ** 2 * model.s2 + t[i] ** 2)
        d = mu + gain * (z - (1 - t[i]) * mu)
        z = z + (t[i + 1] - t[i]) * (z - d) / t[i]
    torch.testing.assert_close(out.double(), z, atol=2e-5, rtol=0)
    assert float((z - mu).std()) > 0.05  # the sample keeps its noise-driven part


def test_sphere_sampling_matches_the_fused_euler_recursion():
    """The sphere mode against the recursion written from its definition with the sphere
    machinery as building blocks: every view sees a_i P_k(m) + sigma_i eps_k (the same
    per-view white noise at every step), the view estimates are fused by eq. 3, and the
    Euler update keeps r_i of the state: m <- r m + (1 - r) fuse(D_k(z_k))."""
    model = GaussianOracle()
    den, image, out = _unmasked_run(model, "sphere", steps=4)
    (plan,) = den.plan(32, 64)
    lviews = [
        View(v.yaw_deg, v.pitch_deg, v.fov_deg, v.height // 4, v.width // 4) for v in plan.views
    ]
    sv = SphereViews(lviews, 8, 16, feather=den.cfg.feather)
    _, noise, _ = sv.white_noise(2 * 3, torch.Generator().manual_seed(0))
    noise = noise.reshape(len(lviews), 2, 3, sv.h, sv.w)
    model.condition(sv_crops(image, plan.views), None, 2)  # the same conditioning crops
    sig = model.scheduler.sigmas.double()
    m = torch.zeros(2, 3, 8, 16)
    for i in range(4):
        z = sv.project(m) + float(sig[i]) * noise
        fused = sv.fuse(model.denoise(z, float(sig[i]), None, slice(None)), fill=m)
        r = float(sig[i + 1] / sig[i])
        m = r * m + (1 - r) * fused
    torch.testing.assert_close(out, m, atol=1e-4, rtol=0)
    assert float((m - sv.fuse(model.mu)).abs().mean()) > 0.02  # noise shaped the result


def test_progress_moves_at_every_step_of_both_passes():
    model = ConditionedOracle()
    den = PanoramicDenoiser(model, DenoiserConfig(steps=6, views=ViewSetConfig(size=512)))
    calls = []
    den.run(
        _image(), torch.ones(64, 128), 2, Progress("animate", lambda s, f, m: calls.append((f, m)))
    )
    passes = den.plan(64, 128)
    assert len(passes) == 2
    for k, p in enumerate(passes):
        seen = {m for _, m in calls if m.startswith(f"pass {k + 1}/2, step")}
        assert len(seen) == 6 - p.start
    assert any(m.startswith("upsampling") for _, m in calls)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions)
