"""The pure-torch rasteriser against an independent float64 reference, formulas and gsplat."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine.camera import View
from engine.gaussians import Gaussians, rgb_to_sh0
from engine.lift import raster
from engine.lift.losses import rgb_loss
from engine.lift.raster import Render, has_gsplat, rasterize, render_view
from engine.lift.sh import eval_sh, sh_basis

# ------------------------------------------------------------------ float64 brute force


def _ref_sh(sh: np.ndarray, d: np.ndarray, degree: int) -> np.ndarray:
    """3DGS ``eval_sh`` typed out again: sh [K, 3], d unit [3] -> [3]."""
    x, y, z = d
    b = [0.28209479177387814]
    if degree >= 1:
        c1 = 0.4886025119029199
        b += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        b += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.31539156525252005 * (2 * z * z - x * x - y * y),
            -1.0925484305920792 * x * z,
            0.5462742152960396 * (x * x - y * y),
        ]
    if degree >= 3:
        b += [
            -0.5900435899266435 * y * (3 * x * x - y * y),
            2.890611442640554 * x * y * z,
            -0.4570457994644658 * y * (4 * z * z - x * x - y * y),
            0.3731763325901154 * z * (2 * z * z - 3 * x * x - 3 * y * y),
            -0.4570457994644658 * x * (4 * z * z - x * x - y * y),
            1.445305721320277 * z * (x * x - y * y),
            -0.5900435899266435 * x * (x * x - 3 * y * y),
        ]
    return np.asarray(b) @ sh[: len(b)]


def reference_render(
    g: Gaussians,
    viewmat,
    K,
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    background=None,
    near: float = 0.01,
    far: float = 1e4,
):
    """Project every Gaussian, sort by depth, composite every pixel (gsplat 1.5 rules).

    No tiles and no footprint boxes: a Gaussian reaches every pixel where its alpha passes
    the 1/255 threshold. Returns rgb [H, W, 3], alpha [H, W], ray depth [H, W] (float64).
    """
    t = {k: v.detach().double().cpu().numpy() for k, v in g.tensors().items()}
    vm, K = np.asarray(viewmat, np.float64), np.asarray(K, np.float64)
    degree = g.sh_degree if sh_degree is None else sh_degree
    R, t0 = vm[:3, :3], vm[:3, 3]
    campos = -R.T @ t0
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x = (cx / fx + 0.3 * 0.5 * width / fx, (width - cx) / fx + 0.3 * 0.5 * width / fx)
    lim_y = (cy / fy + 0.3 * 0.5 * height / fy, (height - cy) / fy + 0.3 * 0.5 * height / fy)
    splats = []
    for i in range(len(g)):
        x, y, z = R @ t["means"][i] + t0
        if not near <= z <= far:
            continue
        w, qx, qy, qz = t["quats"][i]
        rot = Rotation.from_quat([qx, qy, qz, w]).as_matrix()  # scipy is scalar-last
        cov = rot @ np.diag(np.exp(2 * t["log_scales"][i])) @ rot.T
        tx = z * np.clip(x / z, -lim_x[0], lim_x[1])
        ty = z * np.clip(y / z, -lim_y[0], lim_y[1])
        J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
        cov2 = J @ R @ cov @ R.T @ J.T + 0.3 * np.eye(2)
        opac = 1 / (1 + np.exp(-t["opacities"][i]))
        if opac < 1 / 255 or np.linalg.det(cov2) <= 0:
            continue
        d = t["means"][i] - campos
        colour = np.maximum(_ref_sh(t["sh"][i], d / np.linalg.norm(d), degree) + 0.5, 0)
        mean2 = np.array([fx * x / z + cx, fy * y / z + cy])
        splats.append((z, mean2, np.linalg.inv(cov2), opac, colour))
    splats.sort(key=lambda s: s[0])

    py, px = np.mgrid[0:height, 0:width] + 0.5
    rgb, depth = np.zeros((height, width, 3)), np.zeros((height, width))
    T, done = np.ones((height, width)), np.zeros((height, width), bool)
    for z, m, Q, opac, colour in splats:  # every pixel walks the same sorted list
        dx, dy = px - m[0], py - m[1]
        sigma = 0.5 * (Q[0, 0] * dx * dx + Q[1, 1] * dy * dy) + Q[0, 1] * dx * dy
        alpha = np.minimum(0.999, opac * np.exp(-sigma))
        use = (alpha >= 1 / 255) & ~done
        next_T = T * (1 - alpha)
        stop = use & (next_T <= 1e-4)
        done |= stop
        use &= ~stop
        wgt = np.where(use, alpha * T, 0.0)
        rgb += wgt[..., None] * colour
        depth += wgt * z
        T = np.where(use, next_T, T)
    alpha = 1 - T
    ray = np.sqrt(1 + ((px - cx) / fx) ** 2 + ((py - cy) / fy) ** 2)
    depth = np.where(alpha > 0, depth / np.maximum(alpha, 1e-10), 0.0) * ray
    if background is not None:
        rgb += (1 - alpha)[..., None] * np.asarray(background, np.float64)
    return rgb, alpha, depth


# ------------------------------------------------------------------------------- scenes


def random_cloud(
    n: int, degree: int = 3, seed: int = 0, dtype=torch.float32, opacity: float = 0.0
) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    means = r(n, 3) * torch.tensor([1.2, 1.0, 0.8]) + torch.tensor([0.0, 0.0, 4.0])
    g = Gaussians(
        means=means,
        quats=r(n, 4),
        log_scales=r(n, 3) * 0.4 - 2.3,
        opacities=r(n) * 1.5 + opacity,
        sh=r(n, (degree + 1) ** 2, 3) * 0.3,
    )
    return g.to(dtype)


def look_at_camera() -> tuple[torch.Tensor, torch.Tensor]:
    """An OpenCV world-to-camera matrix looking roughly along +z from a shifted, rotated pose."""
    rot = Rotation.from_euler("xyz", [4.0, -6.0, 3.0], degrees=True).as_matrix()
    vm = np.eye(4)
    vm[:3, :3] = rot
    vm[:3, 3] = [0.1, -0.05, 0.2]
    return torch.tensor(vm), torch.tensor([[42.0, 0, 21.0], [0, 45.0, 22.5], [0, 0, 1]])


def hand_scene() -> Gaussians:
    """Overlapping, rotated, elongated, opaque-stacked, culled and off-screen Gaussians."""
    c = lambda *rgb: rgb_to_sh0(torch.tensor(rgb, dtype=torch.float64))  # noqa: E731
    rows = [  # mean, quat (wxyz), log-scale, opacity logit, colour
        ((0.0, 0.0, 3.0), (1, 0, 0, 0), (-1.5, -1.5, -1.5), 0.5, c(1.0, 0.2, 0.2)),
        ((0.3, 0.1, 3.5), (0.9, 0.1, 0.3, 0.2), (-0.8, -2.5, -2.0), 1.0, c(0.2, 1.0, 0.2)),
        # three opaque discs stacked in depth (termination and the 0.999 clamp)
        ((-0.475, -0.275, 2.0), (1, 0, 0, 0), (-1.2, -1.2, -3.0), 9.0, c(0.1, 0.1, 0.9)),
        ((-0.5225, -0.3025, 2.2), (1, 0, 0, 0), (-1.2, -1.2, -3.0), 9.0, c(0.9, 0.9, 0.1)),
        ((-0.57, -0.33, 2.4), (1, 0, 0, 0), (-1.2, -1.2, -3.0), 9.0, c(1.0, 1.0, 1.0)),
        # behind the near plane and behind the camera: never drawn
        ((0.0, 0.0, 0.005), (1, 0, 0, 0), (-1.0, -1.0, -1.0), 3.0, c(1.0, 1.0, 1.0)),
        ((0.0, 0.0, -2.0), (1, 0, 0, 0), (0.0, 0.0, 0.0), 3.0, c(1.0, 1.0, 1.0)),
        # centre off-screen, footprint reaching in; and one far off-screen (clamped Jacobian)
        ((1.7, 0.2, 3.0), (0.8, 0.0, 0.0, 0.6), (-0.6, -1.5, -1.5), 0.0, c(0.5, 0.0, 1.0)),
        ((6.0, 0.0, 2.0), (1, 0, 0, 0), (-0.5, -0.5, -0.5), 2.0, c(0.0, 1.0, 1.0)),
        ((2.0, 0.1, 2.0), (0.9, 0.3, 0.0, 0.3), (-0.7, -0.9, -0.6), 1.0, c(0.9, 0.6, 0.3)),
        ((0.6, -1.8, 2.0), (1, 0, 0, 0), (-0.8, -0.8, -0.8), 1.0, c(0.3, 0.6, 0.9)),
        # faint (below the alpha threshold everywhere) and a barely visible one
        ((0.2, -0.4, 3.0), (1, 0, 0, 0), (-1.5, -1.5, -1.5), -6.0, c(1.0, 1.0, 1.0)),
        ((0.2, 0.4, 2.5), (1, 0, 0, 0), (-1.5, -1.5, -1.5), -4.5, c(1.0, 1.0, 1.0)),
    ]
    m, q, s, o, col = zip(*rows)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    sh = torch.stack(col)[:, None, :]
    return Gaussians(t(m), t(q), t(s), t(o), sh)


def _assert_matches_reference(g: Gaussians, vm, K, w: int, h: int, **kw) -> Render:
    out = rasterize(
        g.to(torch.float32), vm.float(), K.float(), w, h, with_depth=True, backend="torch", **kw
    )
    rgb, alpha, depth = reference_render(g, vm, K, w, h, **kw)
    np.testing.assert_allclose(out.rgb.numpy(), rgb, atol=1e-4, rtol=0)
    np.testing.assert_allclose(out.alpha.numpy(), alpha, atol=1e-4, rtol=0)
    solid = alpha > 0.02
    np.testing.assert_allclose(out.depth.numpy()[solid], depth[solid], atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(out.depth.numpy()[alpha == 0], 0.0)
    return out


# ------------------------------------------------------------------------ 1. reference


def test_hand_built_scene_matches_reference():
    K = torch.tensor([[40.0, 0, 24.0], [0, 40.0, 20.0], [0, 0, 1]], dtype=torch.float64)
    out = _assert_matches_reference(hand_scene(), torch.eye(4, dtype=torch.float64), K, 48, 40)
    # the opaque discs stacked on the ray through pixel (14, 14): the first one is clamped
    # at alpha 0.999, the second would take T to 1e-6 <= 1e-4, so the pixel stops there
    torch.testing.assert_close(out.alpha[14, 14].item(), 0.999)
    np.testing.assert_allclose(out.rgb[14, 14].numpy(), [0.0999, 0.0999, 0.8991], atol=1e-6)


@pytest.mark.parametrize("degree", [0, 3])
def test_random_cloud_matches_reference(degree):
    vm, K = look_at_camera()
    g = random_cloud(200, degree=3, seed=1, dtype=torch.float64)
    out = _assert_matches_reference(g, vm, K, 48, 40, sh_degree=degree, background=[0.2, 0.4, 0.6])
    assert 0.3 < out.alpha.mean() < 0.99  # a real, partly covered image


def test_dense_opaque_cloud_matches_reference(monkeypatch):
    """Most pixels saturate: the early-termination rule decides what is seen."""
    vm, K = look_at_camera()
    g = random_cloud(400, degree=1, seed=11, dtype=torch.float64, opacity=5.0)
    g.log_scales += 0.5
    out = _assert_matches_reference(g, vm, K, 48, 40)
    assert (out.alpha > 0.99).float().mean() > 0.5
    monkeypatch.setattr(raster, "T_MIN", 0.0)  # the rule matters in this scene
    no_stop = rasterize(g.to(torch.float32), vm.float(), K.float(), 48, 40)
    assert ((no_stop.rgb - out.rgb).abs().amax(-1) > 1e-3).sum() > 5


def test_random_cloud_with_small_blocks_and_tiles(monkeypatch):
    """Carrying transmittance across K blocks / chunks and other tile sizes changes nothing."""
    vm, K = look_at_camera()
    g = random_cloud(200, seed=2)
    base = rasterize(g, vm.float(), K.float(), 48, 40, with_depth=True)
    monkeypatch.setattr(raster, "K_BLOCK", 3)
    monkeypatch.setattr(raster, "BLOCK_ELEMS", 3 * 64 * 2)
    for tile in (8, 16, 5):
        out = rasterize(g, vm.float(), K.float(), 48, 40, with_depth=True, tile=tile)
        torch.testing.assert_close(out.rgb, base.rgb, atol=2e-6, rtol=0)
        torch.testing.assert_close(out.alpha, base.alpha, atol=2e-6, rtol=0)


# ------------------------------------------------------------------------- 2. analytic


def test_single_isotropic_gaussian_profile():
    f, z, s, logit = 30.0, 2.0, 0.1, 0.7
    K = torch.tensor([[f, 0, 20.5], [0, f, 15.5], [0, 0, 1]])
    g = Gaussians(
        torch.tensor([[0.0, 0.0, z]]),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.full((1, 3), math.log(s)),
        torch.tensor([logit]),
        rgb_to_sh0(torch.tensor([[[0.8, 0.5, 0.2]]])),
    )
    out = rasterize(g, torch.eye(4), K, 41, 31, with_depth=True)
    row, col = np.unravel_index(out.alpha.argmax().item(), out.alpha.shape)
    assert (row, col) == (15, 20)  # principal point (20.5, 15.5) is that pixel's centre
    var = (f * s / z) ** 2 + 0.3  # EWA footprint plus gsplat's 0.3 px^2 blur
    opac = 1 / (1 + math.exp(-logit))
    yy, xx = np.mgrid[0:31, 0:41] + 0.5
    expect = opac * np.exp(-0.5 * ((xx - 20.5) ** 2 + (yy - 15.5) ** 2) / var)
    expect[expect < 1 / 255] = 0
    np.testing.assert_allclose(out.alpha.numpy(), expect, atol=1e-6)
    np.testing.assert_allclose(out.rgb.numpy(), expect[..., None] * [0.8, 0.5, 0.2], atol=1e-6)
    ray = np.sqrt(1 + ((xx - 20.5) / f) ** 2 + ((yy - 15.5) / f) ** 2)
    np.testing.assert_allclose(out.depth.numpy()[expect > 0], (z * ray)[expect > 0], rtol=1e-6)
    # the footprint is a disc of radius sqrt(2 var ln(255 o)) and nothing outside
    assert (expect > 0).sum() == (out.alpha > 0).sum() > 50


# ------------------------------------------------------------------------ 3. gradients


def _tiny_scene(opaque: bool = False) -> Gaussians:
    gen = torch.Generator().manual_seed(3)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    means = r(4, 3) * 0.25 + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)
    opac = (r(4) * 0.3 + (7.5 if opaque else 0.3)).double()
    return Gaussians(means, r(4, 4), r(4, 3) * 0.2 - 1.6, opac, r(4, 4, 3) * 0.4)


@pytest.mark.parametrize("opaque", [False, True])
def test_gradcheck(monkeypatch, opaque):
    """Hand-written compositing backward + autograd projection against finite differences."""
    monkeypatch.setattr(raster, "K_BLOCK", 2)  # several K blocks, carries across them
    g = _tiny_scene(opaque)
    vm = torch.eye(4, dtype=torch.float64)
    vm[:3, 3] = torch.tensor([0.02, -0.03, 0.1])
    K = torch.tensor([[9.0, 0, 4.2], [0, 9.5, 3.9], [0, 0, 1]], dtype=torch.float64)
    bg = torch.tensor([0.3, 0.1, 0.7], dtype=torch.float64)

    def fn(means, quats, log_scales, opacities, sh):
        out = rasterize(
            Gaussians(means, quats, log_scales, opacities, sh),
            vm,
            K,
            8,
            8,
            background=bg,
            with_depth=True,
            tile=4,
        )
        return out.rgb, out.alpha, out.depth

    inputs = tuple(t.clone().requires_grad_() for t in g.tensors().values())
    rgb, alpha, _ = fn(*inputs)
    assert alpha.max() > (0.99 if opaque else 0.5) and alpha.min() < 0.3
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_reach_every_parameter():
    g = random_cloud(300, seed=4)
    for t in g.tensors().values():
        t.requires_grad_()
    vm, K = look_at_camera()
    out = rasterize(g, vm.float(), K.float(), 48, 40, with_depth=True)
    (out.rgb.sum() + out.depth.sum()).backward()
    for name, t in g.tensors().items():
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


# -------------------------------------------------- 4. batches, background, SH, culling


def test_batched_cameras_equal_single_calls():
    g = random_cloud(150, seed=5)
    vm, K = look_at_camera()
    vm2 = vm.clone()
    vm2[:3, 3] += torch.tensor([0.3, 0.0, -0.5], dtype=vm.dtype)
    K2 = K.clone()
    K2[0, 2] = 18.0
    bg = torch.tensor([0.1, 0.2, 0.3])
    batch = rasterize(
        g,
        torch.stack([vm, vm2]).float(),
        torch.stack([K, K2]).float(),
        48,
        40,
        with_depth=True,
        background=bg,
    )
    assert batch.rgb.shape == (2, 40, 48, 3) and batch.alpha.shape == (2, 40, 48)
    assert batch.depth.shape == (2, 40, 48)
    for i, (v, k) in enumerate([(vm, K), (vm2, K2)]):
        one = rasterize(g, v.float(), k.float(), 48, 40, with_depth=True, background=bg)
        torch.testing.assert_close(batch.rgb[i], one.rgb)
        torch.testing.assert_close(batch.alpha[i], one.alpha)
        torch.testing.assert_close(batch.depth[i], one.depth)
    assert not torch.allclose(batch.rgb[0], batch.rgb[1])


def test_background_compositing():
    g = random_cloud(100, seed=6)
    vm, K = look_at_camera()
    plain = rasterize(g, vm.float(), K.float(), 48, 40)
    bg = torch.tensor([0.9, 0.5, 0.1])
    over = rasterize(g, vm.float(), K.float(), 48, 40, background=bg)
    torch.testing.assert_close(over.rgb, plain.rgb + (1 - plain.alpha)[..., None] * bg)
    torch.testing.assert_close(over.alpha, plain.alpha)


def test_empty_scene_returns_background():
    bg = torch.tensor([0.25, 0.5, 0.75])
    out = rasterize(
        Gaussians.empty(2),
        torch.eye(4),
        torch.tensor([[10.0, 0, 8], [0, 10.0, 6], [0, 0, 1]]),
        16,
        12,
        background=bg,
        with_depth=True,
    )
    assert out.rgb.shape == (12, 16, 3)
    torch.testing.assert_close(out.rgb, bg.expand(12, 16, 3))
    assert out.alpha.abs().max() == 0 and out.depth.abs().max() == 0


def test_near_plane_culling_and_nothing_visible_backward():
    K = torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]])
    g = Gaussians(
        torch.tensor([[0.0, 0.0, 0.5]]),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.full((1, 3), -2.0),
        torch.tensor([3.0]),
        torch.zeros(1, 1, 3),
    )
    assert rasterize(g, torch.eye(4), K, 16, 16, near=0.4).alpha.max() > 0.9
    for t in g.tensors().values():
        t.requires_grad_()
    out = rasterize(g, torch.eye(4), K, 16, 16, near=0.6, background=torch.ones(3))
    assert out.alpha.abs().max() == 0
    torch.testing.assert_close(out.rgb, torch.ones(16, 16, 3))
    out.rgb.sum().backward()  # a view that sees nothing must not break a training step
    assert g.means.grad is not None and g.means.grad.abs().max() == 0


def test_sh_degree_argument_drops_higher_bands():
    g = random_cloud(100, degree=3, seed=7)
    vm, K = look_at_camera()
    low = Gaussians(g.means, g.quats, g.log_scales, g.opacities, g.sh[:, :4].clone())
    a = rasterize(g, vm.float(), K.float(), 48, 40, sh_degree=1)
    b = rasterize(low, vm.float(), K.float(), 48, 40)
    torch.testing.assert_close(a.rgb, b.rgb)
    assert not torch.allclose(a.rgb, rasterize(g, vm.float(), K.float(), 48, 40).rgb)
    with pytest.raises(ValueError):
        rasterize(low, vm.float(), K.float(), 48, 40, sh_degree=2)


def test_sh_basis_is_orthonormal_with_3dgs_signs():
    """Product quadrature (exact for these polynomial degrees) of the 16 basis functions."""
    u, wu = np.polynomial.legendre.leggauss(12)  # cos(theta)
    phi = np.arange(24) * 2 * np.pi / 24
    ct, ph = np.meshgrid(u, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = torch.tensor(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3))
    weights = torch.tensor(np.repeat(wu, 24) * (2 * np.pi / 24))
    basis = sh_basis(3, dirs)  # [Q, 16]
    gram = basis.T @ (basis * weights[:, None])
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=1e-10, rtol=0)
    # signs and ordering at +x, +y, +z (3DGS: Y1 = -C1 y, Y2 = C1 z, Y3 = -C1 x, ...)
    c1 = math.sqrt(3 / (4 * math.pi))
    ex = sh_basis(3, torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(
        ex[:, 1:4], torch.tensor([[0, 0, -c1], [-c1, 0, 0], [0, c1, 0.0]], dtype=torch.float64)
    )
    c20 = math.sqrt(5 / (16 * math.pi))  # Y_2^0 = c20 (3 z^2 - 1)
    torch.testing.assert_close(ex[2, 6].item(), 2 * c20)
    c30 = math.sqrt(7 / (16 * math.pi))  # Y_3^0 = c30 z (5 z^2 - 3)
    torch.testing.assert_close(ex[2, 12].item(), 2 * c30)
    # parity: Y_l(-d) = (-1)^l Y_l(d)
    d = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    parity = torch.tensor([1.0] + [-1.0] * 3 + [1.0] * 5 + [-1.0] * 7, dtype=torch.float64)
    torch.testing.assert_close(sh_basis(3, -d), sh_basis(3, d) * parity)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_eval_sh_matches_direct_formula(degree):
    gen = torch.Generator().manual_seed(degree)
    sh = torch.randn(30, 16, 3, generator=gen, dtype=torch.float64)
    dirs = torch.randn(30, 3, generator=gen, dtype=torch.float64) * 3  # not unit: normalised
    got = eval_sh(degree, sh, dirs).numpy()
    for i in range(30):
        d = dirs[i].numpy() / np.linalg.norm(dirs[i].numpy())
        np.testing.assert_allclose(got[i], _ref_sh(sh[i].numpy(), d, degree), atol=1e-12)


def test_render_view_puts_a_gaussian_on_the_forward_axis_at_the_centre():
    view = View(
        yaw_deg=35.0, pitch_deg=-20.0, fov_deg=70.0, height=33, width=45, position=(0.5, 0.2, -0.3)
    )
    centre = np.asarray(view.position) + 3.0 * view.forward()
    g = Gaussians(
        torch.tensor(centre[None], dtype=torch.float32),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.full((1, 3), -2.5),
        torch.tensor([4.0]),
        torch.zeros(1, 1, 3),
    )
    out = render_view(g, view, with_depth=True)
    assert out.rgb.dtype == torch.float32 and out.rgb.shape == (33, 45, 3)
    row, col = np.unravel_index(out.alpha.argmax().item(), out.alpha.shape)
    assert (row, col) == (16, 22)
    assert abs(out.depth[16, 22].item() - 3.0) < 1e-3


def test_backend_selection():
    g = random_cloud(5)
    with pytest.raises(ValueError):
        rasterize(g, torch.eye(4), torch.eye(3), 8, 8, backend="vulkan")
    if not has_gsplat():
        with pytest.raises(RuntimeError):
            rasterize(g, torch.eye(4), torch.eye(3), 8, 8, backend="gsplat")


# ------------------------------------------------------------------------- 5. gsplat


@pytest.mark.gpu
def test_matches_gsplat_on_cuda():
    if not has_gsplat():
        pytest.skip("needs CUDA and the gsplat package")
    vm, _ = look_at_camera()
    K = torch.tensor([[150.0, 0, 83.0], [0, 148.0, 61.0], [0, 0, 1]])  # off-centre
    g = random_cloud(5000, degree=3, seed=8).to("cuda")
    kw = dict(with_depth=True, background=torch.tensor([0.1, 0.2, 0.3], device="cuda"))
    vm, K = vm.float().cuda(), K.cuda()
    ours = rasterize(g, vm, K, 160, 128, backend="torch", **kw)
    ref = rasterize(g, vm, K, 160, 128, backend="gsplat", **kw)
    mse = (ours.rgb - ref.rgb).pow(2).mean().item()
    assert 10 * math.log10(1 / max(mse, 1e-20)) >= 40
    assert (ours.alpha - ref.alpha).abs().mean() < 1e-3
    solid = ref.alpha > 0.5
    assert ((ours.depth - ref.depth).abs()[solid] / ref.depth[solid]).mean() < 1e-3

    # gradients agree too
    grads = []
    for backend in ("torch", "gsplat"):
        p = {k: v.detach().clone().requires_grad_() for k, v in g.tensors().items()}
        out = rasterize(Gaussians(**p), vm, K, 160, 128, backend=backend, **kw)
        (out.rgb * torch.linspace(0, 1, 3, device="cuda")).sum().backward()
        grads.append(p)
    for name in ("means", "sh", "opacities"):
        a, b = grads[0][name].grad, grads[1][name].grad
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.99, (name, cos.item())


# ---------------------------------------------------------------------- 6. optimisation


def test_fitting_colours_reduces_loss():
    vm, K = look_at_camera()
    vm, K = vm.float(), K.float()
    target_g = random_cloud(200, degree=1, seed=9)
    with torch.no_grad():
        target = rasterize(target_g, vm, K, 48, 40, background=torch.zeros(3)).rgb
    sh = torch.zeros_like(target_g.sh, requires_grad=True)
    opt = torch.optim.Adam([sh], lr=0.05)
    losses = []
    for _ in range(50):
        g = Gaussians(target_g.means, target_g.quats, target_g.log_scales, target_g.opacities, sh)
        loss = rgb_loss(rasterize(g, vm, K, 48, 40).rgb, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


def test_a_coarse_view_is_supersampled_and_gets_the_mean_of_what_its_pixels_cover():
    """A wall of sub-pixel splats with random colours, three per pixel side of a coarse view
    (the benchmark's half-resolution eyes are 2.2): point-sampled, each pixel shows one
    splat; antialiased, it shows the mean colour of the splats whose centres fall in it
    (the independent reference, binned here)."""
    from engine.lift.raster import render_antialiased, supersampling

    size, per_px, fov = 32, 3, 60.0
    half = math.tan(math.radians(fov / 2))
    step = 2 * half / size / per_px  # splat spacing on the wall at 1 m
    n = size * per_px
    u = (torch.arange(n) + 0.5) * step - half
    yy, xx = torch.meshgrid(-u, u, indexing="ij")  # row 0 at the top
    means = torch.stack([xx, yy, torch.full_like(xx, -1.0)], -1).reshape(-1, 3)
    colours = torch.rand(n * n, 3, generator=torch.Generator().manual_seed(0))
    g = Gaussians(
        means=means,
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(n * n, 4).contiguous(),
        log_scales=torch.full((n * n, 3), math.log(0.4 * step)),
        opacities=torch.full((n * n,), 6.0),
        sh=rgb_to_sh0(colours)[:, None, :],
    )
    view = View(fov_deg=fov, height=size, width=size)
    native = round(2 * math.pi / step)  # the wall's splats at one per input pixel
    assert supersampling(view, native) == per_px
    fine = dataclasses.replace(view, width=size * per_px, height=size * per_px)
    assert supersampling(fine, native) == 1  # at the input's resolution: as render_view
    ref = colours.reshape(size, per_px, size, per_px, 3).mean((1, 3))
    with torch.no_grad():
        aa = render_antialiased(g, view, native).rgb
        plain = render_view(g, view).rgb
    err_aa = (aa - ref).square().mean().sqrt().item()
    err_plain = (plain - ref).square().mean().sqrt().item()
    print(f"rmse against the covered mean: antialiased {err_aa:.3f}, point-sampled {err_plain:.3f}")
    assert err_aa < 0.06 and err_plain > 2.2 * err_aa
    # depth: each coarse pixel's is the coverage-weighted one of its samples, so the border
    # pixels the wall half covers still lie on the wall
    cols = torch.arange(n * n) % n
    keep = cols < n // 2 + 1  # the wall's edge one third into a coarse pixel
    left = Gaussians(**{k: v[keep] for k, v in g.tensors().items()})
    left.log_scales.fill_(math.log(0.2 * step))  # small: the last sample there sees nothing
    with torch.no_grad():
        r = render_antialiased(left, view, native, with_depth=True)
    c = (torch.arange(size) + 0.5) * 2 * half / size - half
    truth = torch.sqrt(1 + c[None, :] ** 2 + c[:, None] ** 2)  # ray distance to the wall
    seen = r.alpha > 0.05
    assert (r.alpha[seen] < 0.9).any()  # some pixels are only partly covered
    assert ((r.depth - truth).abs() / truth)[seen].max() < 0.02


def _visible_brute_force(g: Gaussians, vm, K, w: int, h: int, near=0.01, far=1e4) -> torch.Tensor:
    """gsplat's keep test on every Gaussian, with no cheap pre-test: the reference."""
    means2d, cov2d, z = raster.project(g.means, g.quats, g.log_scales, vm, K, w, h)
    opac = torch.sigmoid(g.opacities)
    det = cov2d[:, 0] * cov2d[:, 2] - cov2d[:, 1] ** 2
    radii = raster.footprint_radii(cov2d, opac)
    lo, hi = means2d - radii, means2d + radii
    keep = (z >= near) & (z <= far) & (det > 0) & (opac >= raster.ALPHA_MIN)
    keep &= (radii > 0).all(-1)
    keep &= (hi[:, 0] > 0) & (lo[:, 0] < w) & (hi[:, 1] > 0) & (lo[:, 1] < h)
    idx = torch.nonzero(keep).squeeze(-1)
    return idx[torch.argsort(z[idx], stable=True)]


@pytest.mark.parametrize("fov, size", [(20.0, (64, 48)), (90.0, (80, 80)), (150.0, (40, 96))])
def test_the_cheap_pre_test_drops_only_gaussians_out_of_view(fov, size):
    """Gaussians all round the camera, many just outside the image with large anisotropic
    footprints, some right at the near plane: the culled set and its order are exactly
    those of the full projection of every Gaussian."""
    gen = torch.Generator().manual_seed(int(fov))
    n = 60_000
    d = torch.randn(n, 3, generator=gen)
    d /= d.norm(dim=-1, keepdim=True)
    dist = torch.exp(torch.empty(n).uniform_(math.log(0.005), math.log(60.0), generator=gen))
    g = Gaussians(
        means=d * dist[:, None],
        quats=torch.randn(n, 4, generator=gen),
        log_scales=torch.empty(n, 3).uniform_(-7.0, 0.5, generator=gen),
        opacities=torch.randn(n, generator=gen) * 3,
        sh=torch.zeros(n, 1, 3),
    )
    h, w = size
    view = View(17.0, -8.0, fov, h, w, 5.0, (0.05, -0.02, 0.1))
    vm, K, w, h = raster.view_camera(view)
    got = raster._visible(g, vm, K, w, h, 0.01, 1e4)
    want = _visible_brute_force(g, vm, K, w, h)
    assert 100 < len(want) < n - 5000  # something to keep, and something to drop
    assert torch.equal(got, want)
