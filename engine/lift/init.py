"""Gaussians on the cells of a panorama (:mod:`engine.lift.cells`) and its depth.

Each cell holds one Gaussian on the ray through its centre, at the depth there: a flat disc
facing the viewer whose tangential standard deviations are ``footprint`` times the cell's
angular size times the distance (so it covers the cell as seen from the centre, at any
depth), with ``opacity``; the finest cells may use a narrower ``fine_footprint`` (sharper
where the texture is, while merged cells keep the overlap that closes the gaps between
them; ``benchmarks/bench_kernel.py``). Colour starts as the cell's mean colour; the
linear colour solve (:mod:`engine.lift.solve`) sets it.

Compositing order. Renderers sort Gaussians by camera-space z, not ray distance, so two
overlapping neighbours at the same distance swap order as the camera turns, and the blend
at a pixel changes with the view direction. A fit made in one set of views then fails in
others. Each Gaussian is therefore pushed back along its ray by ``order_step * k * a``
(relative to its depth), with ``a`` the angular height of a finest cell there and the rank
``k = p + 4 * level``: ``p`` in 0..3 from a 2x2 pattern of the cell grid, so finest cells
sit in front of merged ones. Neighbours in the pattern then differ by at least one rank.
The camera-z ratio of two Gaussians ``delta`` radians apart changes by at most
``tan(theta) * delta`` for a view ray ``theta`` off the view axis, and neighbours are at
most ``sqrt(2) * a`` apart, so every view from the centre composites them in the same order
within ``theta = atan(order_step / sqrt(2))`` of its axis (54.7 degrees for the default 2:
the corners of a 90-degree view). Where the pattern cannot hold (the few rows where the
cell width changes) neighbours may share a rank. The offsets stay under 3 % of the depth at
2048x1024 for the finest and once-merged cells, and halve with each doubling of the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..gaussians import Gaussians, rgb_to_sh0
from ..sphere import lonlat_to_dir, sample_equirect
from .cells import Cells


def to_bchw(image: np.ndarray) -> Tensor:
    """[H, W] or [H, W, C] array (any dtype) -> [1, C, H, W] float32 tensor (a new array,
    so read-only memmaps are fine)."""
    arr = image if image.ndim == 3 else image[..., None]
    return torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1)[None]


def tangent_frames(lon: Tensor, lat: Tensor) -> Tensor:
    """[N, 3, 3] rotation matrices whose columns are (east, north, inward normal): the
    right-handed local frame of a disc facing the viewer at the origin."""
    sl, cl = torch.sin(lon), torch.cos(lon)
    sa, ca = torch.sin(lat), torch.cos(lat)
    east = torch.stack([cl, torch.zeros_like(cl), sl], -1)
    north = torch.stack([-sa * sl, ca, sa * cl], -1)
    inward = -lonlat_to_dir(lon, lat)
    return torch.stack([east, north, inward], dim=-1)


def matrix_to_quat(m: Tensor) -> Tensor:
    """[N, 3, 3] rotation matrices -> [N, 4] unit quaternions (wxyz), numerically robust."""
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    trace = m00 + m11 + m22
    cands = torch.stack(
        [
            torch.stack(
                [
                    1 + trace,
                    m[:, 2, 1] - m[:, 1, 2],
                    m[:, 0, 2] - m[:, 2, 0],
                    m[:, 1, 0] - m[:, 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[:, 2, 1] - m[:, 1, 2],
                    1 + m00 - m11 - m22,
                    m[:, 0, 1] + m[:, 1, 0],
                    m[:, 0, 2] + m[:, 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[:, 0, 2] - m[:, 2, 0],
                    m[:, 0, 1] + m[:, 1, 0],
                    1 - m00 + m11 - m22,
                    m[:, 1, 2] + m[:, 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[:, 1, 0] - m[:, 0, 1],
                    m[:, 0, 2] + m[:, 2, 0],
                    m[:, 1, 2] + m[:, 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        dim=1,
    )  # [N, 4 candidates, 4]
    best = torch.stack([trace, m00, m11, m22], -1).argmax(-1)
    q = cands[torch.arange(m.shape[0]), best]
    q = q / q.norm(dim=-1, keepdim=True)
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0)


@dataclass(frozen=True)
class InitConfig:
    footprint: float = 0.6  # tangential sigma as a fraction of the cell's angular size
    fine_footprint: float | None = None  # the same for the finest cells (None: footprint)
    thickness: float = 0.3  # radial sigma as a fraction of the smaller tangential sigma
    opacity: float = 0.97
    order_step: float = 2.0  # compositing-order offsets, in cell angles (module docstring)


ORDER_PATTERN = (0, 2, 3, 1)  # order rank of the 2x2 cell classes (row parity, col parity)


def order_rank(cells: Cells) -> Tensor:
    """[N] int64: each cell's compositing rank (module docstring): 0..3 from the 2x2 pattern
    plus 4 per merge level."""
    row = torch.round((0.5 - cells.lat / math.pi) * math.pi / cells.d_lat - 0.5).long()
    col = torch.round((cells.lon / (2 * math.pi) + 0.5) * 2 * math.pi / cells.d_lon - 0.5).long()
    pattern = torch.tensor(ORDER_PATTERN)[(row % 2) * 2 + col % 2]
    return pattern + 4 * cells.level.clamp_min(0)


def order_offsets(cells: Cells, step: float) -> Tensor:
    """[N] float64 relative depth offsets ``step * rank * a`` (module docstring)."""
    finest = cells.d_lat / 2.0 ** cells.level.clamp_min(0).double()
    return step * finest * order_rank(cells).double()


def cell_values(image: np.ndarray, cells: Cells, nearest: bool = False) -> Tensor:
    """Sample an equirect image [H, W(, C)] at the cell centres -> [N, C] float32 (bilinear,
    seam-wrapping; ``nearest`` takes the pixel the centre falls in)."""
    t = to_bchw(image)
    row, col = cells.pixel_coords(t.shape[-2], t.shape[-1])
    if nearest:
        row, col = torch.round(row), torch.round(col)
    return sample_equirect(t, row, col)[0].T.contiguous()


def cell_depths(depth: np.ndarray, cells: Cells) -> Tensor:
    """[N] float64 depth at the cell centres: the pixel's own value for the finest cells
    (never a blend across a depth edge), bilinear for coarser ones (smooth by construction)."""
    near = cell_values(depth, cells, nearest=True)[:, 0]
    smooth = cell_values(depth, cells)[:, 0]
    return torch.where(cells.level == 0, near, smooth).double()


def init_gaussians(
    cells: Cells, colors: Tensor, depth: Tensor, cfg: InitConfig = InitConfig()
) -> Gaussians:
    """Gaussians on the rays of ``cells`` (see the module docstring).

    colors: Tensor  # [N, 3] in [0, 1]
    depth: Tensor  # [N] distance along the ray
    """
    d = depth.to(torch.float64)
    d = d * (1.0 + order_offsets(cells, cfg.order_step))
    means = lonlat_to_dir(cells.lon, cells.lat) * d[:, None]
    scales = footprint_scales(cells, d, cfg)
    quats = matrix_to_quat(tangent_frames(cells.lon, cells.lat))
    logit = math.log(cfg.opacity / (1 - cfg.opacity))
    return Gaussians(
        means=means.float(),
        quats=quats.float(),
        log_scales=torch.log(scales).float(),
        opacities=torch.full((len(cells),), logit, dtype=torch.float32),
        sh=rgb_to_sh0(colors.float().clamp(0, 1))[:, None, :].contiguous(),
    )


def footprint_scales(cells: Cells, depth: Tensor, cfg: InitConfig = InitConfig()) -> Tensor:
    """[N, 3] standard deviations (east, north, radial) covering each cell at ``depth``."""
    fp = torch.full_like(depth, cfg.footprint)
    if cfg.fine_footprint is not None:
        fp = torch.where(cells.level == 0, cfg.fine_footprint, fp)  # not layers (-1)
    s_lon = fp * cells.d_lon * torch.cos(cells.lat) * depth
    s_lat = fp * cells.d_lat * depth
    s_rad = cfg.thickness * torch.minimum(s_lon, s_lat)
    return torch.stack([s_lon, s_lat, s_rad], -1).clamp_min(1e-6)


def subset(g: Gaussians, keep: Tensor) -> Gaussians:
    """The Gaussians selected by a bool mask or index tensor."""
    return Gaussians(**{k: v[keep] for k, v in g.tensors().items()})
