"""Image losses of the lifting stage (DESIGN.md section 4, paper eq. 5).

Images are float tensors shaped [H, W, 3] or [B, H, W, 3] (channels last, values ~[0, 1]).
SSIM is the 3DGS one: an 11x11 Gaussian window with sigma 1.5, zero padding ("same"
output size), C1 = 0.01^2, C2 = 0.03^2, averaged over pixels, channels and the batch.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error (scalar)."""
    return (pred - target).abs().mean()


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity (scalar) of [H, W, C] or [B, H, W, C] images."""
    return ssim_map(pred, target, window, sigma).mean()


def ssim_map(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM [B, C, H, W] of [H, W, C] or [B, H, W, C] images."""
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    x, y = _to_nchw(pred), _to_nchw(target)
    c = x.shape[1]
    # blur x, y, x^2, y^2, xy in one separable convolution over 5C channels
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), window, sigma)
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(c, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = e_xx - mu_xx, e_yy - mu_yy, e_xy - mu_xy
    num = (2 * mu_xy + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_xx + mu_yy + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return num / den


def rgb_loss(pred: Tensor, target: Tensor, lambda_ssim: float = 0.2) -> Tensor:
    """L_rgb = (1 - lambda) L1 + lambda (1 - SSIM), with lambda = 0.2 as in 3DGS / 4K4DGen."""
    return (1.0 - lambda_ssim) * l1(pred, target) + lambda_ssim * (1.0 - ssim(pred, target))


def _to_nchw(img: Tensor) -> Tensor:
    if img.ndim == 3:
        img = img.unsqueeze(0)
    if img.ndim != 4:
        raise ValueError(f"expected [H, W, C] or [B, H, W, C], got {tuple(img.shape)}")
    return img.permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=8)
def _kernel_1d(window: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(window, dtype=torch.float64) - window // 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(dtype=dtype, device=device)


def _blur(x: Tensor, window: int, sigma: float) -> Tensor:
    """Zero-padded 'same' Gaussian blur, separable (equal to the 3DGS 2D window)."""
    c = x.shape[1]
    k = _kernel_1d(window, sigma, x.dtype, x.device)
    pad = window // 2
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, window), padding=(0, pad), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, window, 1), padding=(pad, 0), groups=c)
