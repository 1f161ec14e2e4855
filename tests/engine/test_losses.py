"""L1 / SSIM / L_rgb against a brute-force float64 SSIM and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.lift.losses import l1, rgb_loss, ssim, ssim_map


def reference_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3DGS SSIM written out: 2D 11x11 Gaussian window (sigma 1.5), zero padding. [H, W, C]."""
    h, w, c = a.shape
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    win = np.outer(g, g) / g.sum() ** 2
    pa, pb = (np.pad(x, ((5, 5), (5, 5), (0, 0))) for x in (a, b))
    out = np.zeros((h, w, c))
    for i in range(h):
        for j in range(w):
            wa, wb = pa[i : i + 11, j : j + 11], pb[i : i + 11, j : j + 11]
            mu_a = np.einsum("ij,ijc->c", win, wa)
            mu_b = np.einsum("ij,ijc->c", win, wb)
            var_a = np.einsum("ij,ijc->c", win, wa * wa) - mu_a**2
            var_b = np.einsum("ij,ijc->c", win, wb * wb) - mu_b**2
            cov = np.einsum("ij,ijc->c", win, wa * wb) - mu_a * mu_b
            c1, c2 = 0.01**2, 0.03**2
            out[i, j] = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
                (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
            )
    return out


def _pair(seed: int = 0, shape=(17, 23, 3), noise: float = 0.1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    a = 0.5 + 0.3 * np.sin(xx[..., None] * [0.3, 0.5, 0.7] + yy[..., None] * [0.2, 0.1, 0.4])
    b = np.clip(a + rng.normal(0, noise, shape), 0, 1)
    return a, b


def test_ssim_matches_brute_force():
    a, b = _pair()
    ref = reference_ssim_map(a, b)
    got = ssim_map(torch.tensor(a), torch.tensor(b))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_allclose(
        ssim(torch.tensor(a), torch.tensor(b)).item(), ref.mean(), atol=1e-10
    )
    got32 = ssim(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert abs(got32.item() - ref.mean()) < 1e-5


def test_ssim_identity_symmetry_and_monotonic_in_noise():
    a, _ = _pair()
    ta = torch.tensor(a, dtype=torch.float32)
    assert ssim(ta, ta).item() == pytest.approx(1.0, abs=1e-6)
    values = []
    for noise in (0.02, 0.05, 0.1, 0.3):
        _, b = _pair(1, noise=noise)
        tb = torch.tensor(b, dtype=torch.float32)
        assert ssim(ta, tb).item() == pytest.approx(ssim(tb, ta).item(), abs=1e-6)
        values.append(ssim(ta, tb).item())
    assert values == sorted(values, reverse=True) and values[-1] < 0.6


def test_l1_and_rgb_loss_formula():
    a, b = (torch.tensor(x, dtype=torch.float32) for x in _pair(2))
    assert l1(a, b).item() == pytest.approx(np.abs(a.numpy() - b.numpy()).mean(), rel=1e-5)
    expect = 0.8 * l1(a, b) + 0.2 * (1 - ssim(a, b))
    torch.testing.assert_close(rgb_loss(a, b), expect)
    assert rgb_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    c = torch.full_like(a, 0.5)
    assert l1(c, c + 0.25).item() == pytest.approx(0.25)


def test_batched_images_average_per_image_losses():
    pairs = [_pair(s) for s in range(3)]
    a = torch.tensor(np.stack([p[0] for p in pairs]))
    b = torch.tensor(np.stack([p[1] for p in pairs]))
    per = [ssim(a[i], b[i]) for i in range(3)]
    torch.testing.assert_close(ssim(a, b), torch.stack(per).mean())
    torch.testing.assert_close(
        rgb_loss(a, b), torch.stack([rgb_loss(a[i], b[i]) for i in range(3)]).mean()
    )
    with pytest.raises(ValueError):
        ssim(a, b[0])


def test_rgb_loss_gradient():
    a, b = _pair(3, shape=(7, 9, 3))
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b)
    assert torch.autograd.gradcheck(lambda x: rgb_loss(x, tb), (ta,), eps=1e-6, atol=1e-7)
    # gradient descent on the loss pulls an image towards the target
    x = torch.tensor(b, dtype=torch.float32).clone().requires_grad_()
    target = torch.tensor(a, dtype=torch.float32)
    opt = torch.optim.Adam([x], lr=0.02)
    first = rgb_loss(x, target).item()
    for _ in range(40):
        opt.zero_grad()
        loss = rgb_loss(x, target)
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    assert math.isfinite(loss.item())
