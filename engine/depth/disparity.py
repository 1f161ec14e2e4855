"""Per-view affine alignment of relative (disparity) depth, before eq. 4.

DPT and Depth Anything predict disparity up to an unknown scale *and shift* per image:
``d_i = s_i / z + t_i`` for planar depth z. Normalising each view by one number (its near
quantile) leaves the shift in, and a shifted disparity bends the whole view's geometry
(near things flatten, the sky comes close), which eq. 4's per-view depth scale and smooth
depth shift cannot undo. So the views of a frame are first made to agree in disparity
space, where the ambiguity is exactly affine.

Along each pixel's ray the inverse distance is ``q = 1 / r = 1 / (z f)`` (f: the view's
planar-to-ray factor, DESIGN.md section 2), so a corrected view is

    q_i = alpha_i d_i / f_i + beta_i / f_i        (linear in alpha_i, beta_i)

and the views must agree where they overlap. For every ordered pair of overlapping views
(i, j) and every pixel p of view i that view j also sees (at p'), the residual
``q_i(p) - q_j(p')`` is linear in the 4 unknowns of the pair, so the whole fit is one
homogeneous least-squares problem in the 2V unknowns (alpha, beta), solved in closed form:
minimise theta^T M theta with theta's overall scale fixed (the one thing overlaps cannot
see). Each pixel pair is weighted by both views' feather weights. A view that sees a
constant disparity (only sky) cannot tell scale from shift, so a small ridge on the shifts
(``ridge``) picks the scale-only solution there; elsewhere the overlaps decide. Finally the
scale is set so that the ``near_quantile`` of every view's q is 1 (the near part at
distance ~1, as :func:`engine.depth.models.to_ray_depth` does for one view).

Pixels whose corrected inverse distance is at most 1 / far (sky, or negative after the
shift) go to the far shell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import View
from ..sphere import feather_weight, project_to_view


@dataclass(frozen=True)
class DisparityAlignConfig:
    pixel_step: int = 2  # every n-th pixel of each view (rows and columns) enters the fit
    feather: float = 0.15  # view border ramp (fraction of the view size)
    near_quantile: float = 0.98  # this quantile of the views' q maps to inverse distance 1
    ridge: float = 1e-3  # shift regulariser, relative to its own diagonal
    far: float = 100.0  # the far shell, in the same units


def fit_disparity_affine(
    disp: Tensor, views: list[View], cfg: DisparityAlignConfig = DisparityAlignConfig()
) -> tuple[Tensor, Tensor]:
    """The per-view affine correction of relative disparities.

    disp: Tensor  # [V, h, w] model disparity per view (any scale and shift)
    returns: (alpha [V], beta [V]) float64 with q_i = (alpha_i d_i + beta_i) / f_i
    """
    raw, u, wt = _terms(disp, views, cfg)
    norm = 1.0 / _quantile(disp, cfg.near_quantile)  # each view's scale-only normalisation
    x = raw * norm[:, None, None]
    n = len(views)
    mat = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    step = cfg.pixel_step
    xs, us, ws = x[:, ::step, ::step], u[:, ::step, ::step], wt[:, ::step, ::step]
    for i, vi in enumerate(views):
        dirs = torch.from_numpy(vi.pixel_rays()[::step, ::step]).to(torch.float64)
        for j, vj in enumerate(views):
            if j == i:
                continue
            px, py, front = project_to_view(dirs, vj)
            inside = front & (px > 0) & (px < vj.width) & (py > 0) & (py < vj.height)
            if not bool(inside.any()):
                continue
            xj, uj, wj = _sample(torch.stack([x[j], u[j], wt[j]]), px, py)
            w = (ws[i] * wj * inside).reshape(-1, 1)
            rows = torch.stack([xs[i], us[i], -xj, -uj], -1).reshape(-1, 4)  # r = rows @ th
            block = (rows * w).T @ rows  # [4, 4]
            idx = torch.tensor([2 * i, 2 * i + 1, 2 * j, 2 * j + 1])
            mat[idx[:, None], idx[None, :]] += block
    diag = torch.diagonal(mat)
    ridge = torch.zeros(2 * n, dtype=torch.float64)
    ridge[1::2] = cfg.ridge * diag[1::2].clamp_min(1e-12)
    mat = mat + torch.diag(ridge + 1e-9 * diag.mean())
    target = torch.zeros(2 * n, dtype=torch.float64)
    target[0::2] = (wt * x).sum((1, 2))  # fixes the scale: the views' total q
    theta = torch.linalg.solve(mat, target)
    alpha, beta = theta[0::2] * norm, theta[1::2]
    q = alpha[:, None, None] * raw + beta[:, None, None] * u
    k = _quantile(q.reshape(1, -1), cfg.near_quantile)[0]
    return alpha / k, beta / k


def _sample(maps: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Bilinear samples of [C, h, w] maps at continuous pixel coordinates (centres at
    +0.5): [C, *px.shape]; outside the view they are 0."""
    h, w = maps.shape[-2:]
    grid = torch.stack([2 * px / w - 1, 2 * py / h - 1], -1)[None].to(maps)
    out = F.grid_sample(maps[None], grid, mode="bilinear", align_corners=False)
    return out[0]


def align_disparities(
    disp: Tensor, views: list[View], cfg: DisparityAlignConfig = DisparityAlignConfig()
) -> Tensor:
    """Relative disparity per view -> distance along the ray, the views agreeing.

    disp: Tensor  # [V, h, w]; returns: Tensor  # [V, h, w] float32 in (0, far]
    """
    alpha, beta = fit_disparity_affine(disp, views, cfg)
    x, u, _ = _terms(disp, views, cfg)
    q = alpha[:, None, None] * x + beta[:, None, None] * u
    ok = torch.isfinite(q) & (q > 1.0 / cfg.far)
    return torch.where(ok, 1.0 / torch.where(ok, q, torch.ones_like(q)), cfg.far).float()


def _terms(disp: Tensor, views: list[View], cfg: DisparityAlignConfig):
    """(d / f, 1 / f, weight): [V, h, w] each; weight = the view's feather, 0 where d is
    not finite."""
    disp = disp.to(torch.float64)
    fac = torch.stack([torch.from_numpy(v.planar_to_ray()) for v in views]).to(disp)
    v, h, w = disp.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    feather = feather_weight(xs.double(), ys.double(), w, h, cfg.feather)
    finite = torch.isfinite(disp)
    wt = feather[None] * finite
    d = torch.where(finite, disp, torch.zeros_like(disp))
    return d / fac, 1.0 / fac, wt


def _least_squares(x: Tensor, u: Tensor, g: Tensor, wt: Tensor, ridge: float):
    """Per view: argmin_(a, b) sum wt (a x + b u - g)^2 + ridge * sum(wt) * b^2."""
    sxx, sxu, suu = (wt * x * x).sum((1, 2)), (wt * x * u).sum((1, 2)), (wt * u * u).sum((1, 2))
    sxg, sug = (wt * x * g).sum((1, 2)), (wt * u * g).sum((1, 2))
    suu = suu + ridge * wt.sum((1, 2))
    det = (sxx * suu - sxu * sxu).clamp_min(1e-30)
    return (suu * sxg - sxu * sug) / det, (sxx * sug - sxu * sxg) / det


def _quantile(values: Tensor, q: float) -> Tensor:
    """Per row of [V, ...]: the q-quantile of its finite positive values (1 if none)."""
    flat = values.reshape(values.shape[0], -1).to(torch.float64)
    flat = torch.where(torch.isfinite(flat) & (flat > 0), flat, torch.nan)
    out = torch.nanquantile(flat, q, dim=1)
    return torch.where(torch.isfinite(out), out, torch.ones_like(out)).clamp_min(1e-12)


__all__ = ["DisparityAlignConfig", "align_disparities", "fit_disparity_affine"]
