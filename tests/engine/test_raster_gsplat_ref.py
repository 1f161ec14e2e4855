"""The pure-torch rasteriser's pieces against gsplat 1.5's own PyTorch reference, on the CPU.

gsplat ships ``gsplat.cuda._torch_impl``: the formulas its CUDA kernels implement, in plain
torch (no kernels built, no GPU). These tests hold our projection, spherical harmonics and
tile binning to that peer reference, so the CPU path and the gsplat path of the CUDA preset
agree by construction. (The opacity-aware footprint box is the CUDA kernel's, which the
torch reference simplifies to 3.33 sigma; it is checked in test_raster.py.)
"""

from __future__ import annotations

import math

import torch
from gsplat.cuda import _torch_impl as ref

from engine.gaussians import Gaussians
from engine.lift import raster
from engine.lift.sh import eval_sh

W, H = 96, 64


def _camera() -> tuple[torch.Tensor, torch.Tensor]:
    """A rotated, translated camera with an off-centre principal point (as a crop has)."""
    a = 0.4
    R = torch.tensor(
        [[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]],
        dtype=torch.float64,
    )
    viewmat = torch.eye(4, dtype=torch.float64)
    viewmat[:3, :3], viewmat[:3, 3] = R, torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    K = torch.tensor([[70.0, 0, 30.0], [0, 75.0, 40.0], [0, 0, 1]], dtype=torch.float64)
    return viewmat, K


def _cloud(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussians in front of the camera, many of them far outside its view (where the
    Jacobian's clamp matters), anisotropic and arbitrarily rotated."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    viewmat, _ = _camera()
    cam = r(n, 3) * torch.tensor([3.0, 3.0, 1.0]) + torch.tensor([0.0, 0.0, 3.0])
    cam[:, 2] = cam[:, 2].abs() + 0.2
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    return {
        "means": (cam - t) @ R,  # world points whose camera coordinates are ``cam``
        "quats": r(n, 4),
        "log_scales": r(n, 3) * 0.6 - 1.5,
    }


def test_rotations_match_gsplat():
    quats = torch.randn(500, 4, dtype=torch.float64) * 3.0  # any norm
    torch.testing.assert_close(
        raster.quat_to_rotmat(quats), ref._quat_to_rotmat(quats), rtol=0, atol=1e-12
    )


def test_projection_matches_gsplat_world_to_cam_and_persp_proj():
    g, (viewmat, K) = _cloud(2000), _camera()
    means2d, cov2d, depth = raster.project(
        g["means"], g["quats"], g["log_scales"], viewmat, K, W, H
    )

    covars, _ = ref._quat_scale_to_covar_preci(
        g["quats"], torch.exp(g["log_scales"]), compute_preci=False
    )
    means_c, covars_c = ref._world_to_cam(g["means"], covars, viewmat[None])
    m2, c2 = ref._persp_proj(means_c, covars_c, K[None], W, H)
    m2, c2 = m2[0], c2[0] + raster.EPS2D * torch.eye(2, dtype=torch.float64)

    torch.testing.assert_close(means2d, m2, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(depth, means_c[0, :, 2], rtol=1e-12, atol=1e-12)
    ours = torch.stack([cov2d[:, 0], cov2d[:, 1], cov2d[:, 2]], -1)
    theirs = torch.stack([c2[:, 0, 0], c2[:, 0, 1], c2[:, 1, 1]], -1)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)
    outside = (m2[:, 0] < 0) | (m2[:, 0] > W) | (m2[:, 1] < 0) | (m2[:, 1] > H)
    assert outside.float().mean() > 0.3  # the clamp was exercised


def test_conics_match_gsplat_fully_fused_projection():
    """The inverse 2D covariances the compositor uses (its _pack rows hold -a/2, -b, -c/2)
    against gsplat's conics, for the Gaussians gsplat keeps."""
    g, (viewmat, K) = _cloud(800, seed=1), _camera()
    cloud = Gaussians(
        means=g["means"],
        quats=g["quats"],
        log_scales=g["log_scales"],
        opacities=torch.full((800,), 4.0, dtype=torch.float64),
        sh=torch.zeros(800, 1, 3, dtype=torch.float64),
    )
    idx = raster._visible(cloud, viewmat, K, W, H, 0.01, 1e10)
    means2d, cov2d, _ = raster.project(
        g["means"][idx], g["quats"][idx], g["log_scales"][idx], viewmat, K, W, H
    )
    packed = raster._pack(
        means2d,
        raster.conic(cov2d),
        torch.ones(len(idx), dtype=torch.float64),
        torch.zeros(len(idx), 3, dtype=torch.float64),
    )

    covars, _ = ref._quat_scale_to_covar_preci(
        g["quats"], torch.exp(g["log_scales"]), compute_preci=False
    )
    radii, m2, _, conics_ref, _ = ref._fully_fused_projection(
        g["means"], covars, viewmat[None], K[None], W, H, eps2d=raster.EPS2D
    )
    assert len(idx) > 100 and bool((radii[0, idx] > 0).all())
    a, b, c = conics_ref[0, idx].unbind(-1)
    torch.testing.assert_close(packed[: len(idx), :2], m2[0, idx], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(
        packed[: len(idx), 2:5], torch.stack([-a / 2, -b, -c / 2], -1), rtol=1e-9, atol=1e-9
    )


def test_spherical_harmonics_match_gsplat():
    gen = torch.Generator().manual_seed(2)
    dirs = torch.randn(3000, 3, generator=gen, dtype=torch.float64) * 5.0  # any length
    coeffs = torch.randn(3000, 16, 3, generator=gen, dtype=torch.float64)
    for degree in range(4):
        torch.testing.assert_close(
            eval_sh(degree, coeffs, dirs),
            ref._spherical_harmonics(degree, dirs, coeffs),
            rtol=1e-12,
            atol=1e-12,
        )


def test_tile_binning_matches_gsplat_isect_tiles():
    """Which tiles each Gaussian touches, and each tile's Gaussians in depth order, as
    gsplat's isect_tiles / isect_offset_encode produce them (distinct depths, no ties)."""
    gen = torch.Generator().manual_seed(3)
    n, tile = 300, 16
    means2d = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    means2d = means2d * torch.tensor([W + 40.0, H + 40.0]) - 20.0  # some beyond the edges
    radii = torch.randint(0, 30, (n, 2), generator=gen).to(torch.float64)
    depths = torch.sort(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5).values

    plan = raster._make_plan(means2d, radii, W, H, tile)

    tiles_x, tiles_y = math.ceil(W / tile), math.ceil(H / tile)
    counts, isect_ids, flat = ref._isect_tiles(
        means2d[None].float(), radii[None].int(), depths[None].float(), tile, tiles_x, tiles_y
    )
    offsets = ref._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten()
    ends = torch.cat([offsets[1:], torch.tensor([len(flat)], dtype=offsets.dtype)])
    lo, hi = raster._tile_ranges(means2d, radii, W, H, tile)
    # gsplat drops a Gaussian whose box has a zero side; the compositor gets none of those
    ours_per_gauss = (hi - lo).prod(-1) * (radii > 0).all(-1)
    torch.testing.assert_close(ours_per_gauss, counts[0].long())
    for t in range(tiles_x * tiles_y):
        s, c = int(plan.tile_start[t]), int(plan.tile_count[t])
        ours = plan.gauss_ids[s : s + c]
        ours = ours[(radii[ours] > 0).all(-1)]
        assert ours.tolist() == flat[offsets[t] : ends[t]].tolist(), f"tile {t}"
