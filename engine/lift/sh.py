"""Real spherical harmonics, degrees 0..3, in the 3DGS / gsplat convention.

The basis order and signs are those of the reference 3DGS ``eval_sh`` (and of gsplat's
``spherical_harmonics``): coefficient k = l^2 + l + m for m = -l..l, with

    Y_0 = C0
    Y_1, Y_2, Y_3 = -C1 y, C1 z, -C1 x
    ...

Colour is ``0.5 + sum_k Y_k(dir) * sh[k]``; the rasteriser then clamps it at 0 as gsplat does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Evaluate the (degree+1)^2 real SH basis functions.

    dirs: Tensor  # [..., 3] unit directions (not normalised here)
    returns: Tensor  # [..., (degree+1)^2]
    """
    n = num_sh_bases(degree)
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [
            C2[0] * xy,
            C2[1] * yz,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * xz,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            C3[0] * y * (3.0 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4.0 * zz - xx - yy),
            C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            C3[4] * x * (4.0 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3.0 * yy),
        ]
    basis = torch.stack(out, dim=-1)
    assert basis.shape[-1] == n
    return basis


def eval_sh(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate SH colour offsets (without the +0.5) along ``dirs``.

    degree: int  # 0..3; only the first (degree+1)^2 coefficients of ``sh`` are used
    sh: Tensor  # [..., K, C] with K >= (degree+1)^2
    dirs: Tensor  # [..., 3] view directions, any length (normalised here, as gsplat does)
    returns: Tensor  # [..., C]
    """
    n = num_sh_bases(degree)
    if sh.shape[-2] < n:
        raise ValueError(f"degree {degree} needs {n} SH coefficients, got {sh.shape[-2]}")
    if degree == 0:
        return C0 * sh[..., 0, :]
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))  # [..., n]
    return (basis.unsqueeze(-1) * sh[..., :n, :]).sum(dim=-2)
