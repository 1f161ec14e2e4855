"""Gaussians initialised from a panorama and its depth.

One Gaussian per sample of an equal-area grid at the working resolution (``work_h`` rows;
row r holds round(2 * work_h * cos(lat_r)) samples, so the poles are not oversampled —
about 2/pi of the Gaussians of a full equirect grid, with the same angular spacing
everywhere). Each Gaussian sits on its ray at the panoramic depth, is a flat disc facing the
viewer whose tangential size follows the angular footprint times the distance, and takes
its colour from the (area-filtered) frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..gaussians import Gaussians, rgb_to_sh0
from ..sphere import lonlat_to_dir, sample_equirect


@dataclass(frozen=True)
class SampleGrid:
    """Equal-area sample positions (float64 radians) and their angular spacing."""

    lon: Tensor  # [N]
    lat: Tensor  # [N]
    d_lon: Tensor  # [N] spacing along the row (radians of longitude)
    d_lat: float  # spacing between rows (radians)

    def __len__(self) -> int:
        return self.lon.shape[0]

    def pixel_coords(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Continuous (row, col) of the samples in an equirect image of that size."""
        col = (self.lon / (2 * math.pi) + 0.5) * width - 0.5
        row = (0.5 - self.lat / math.pi) * height - 0.5
        return row, col


def equal_area_grid(work_h: int) -> SampleGrid:
    lats, lons, dls = [], [], []
    for r in range(work_h):
        lat = (0.5 - (r + 0.5) / work_h) * math.pi
        n = max(4, round(2 * work_h * math.cos(lat)))
        lon = ((torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5) * 2 * math.pi
        lons.append(lon)
        lats.append(torch.full((n,), lat, dtype=torch.float64))
        dls.append(torch.full((n,), 2 * math.pi / n, dtype=torch.float64))
    return SampleGrid(torch.cat(lons), torch.cat(lats), torch.cat(dls), math.pi / work_h)


def area_resize(image: np.ndarray, height: int) -> np.ndarray:
    """Area-filtered resize of an equirect image (any channels) to ``height`` x 2*height."""
    if image.shape[0] == height:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
    return cv2.resize(image, (2 * height, height), interpolation=interp)


def to_bchw(image: np.ndarray) -> Tensor:
    """[H, W] or [H, W, C] array (any dtype) -> [1, C, H, W] float32 tensor (a new array,
    so read-only memmaps are fine)."""
    arr = image if image.ndim == 3 else image[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]


def sample_at_grid(image: np.ndarray, grid: SampleGrid, nearest: bool = False) -> Tensor:
    """Sample an equirect image [H, W(, C)] at the grid -> [N, C] float32."""
    t = to_bchw(image)
    row, col = grid.pixel_coords(t.shape[-2], t.shape[-1])
    if nearest:
        row, col = torch.round(row), torch.round(col)
    return sample_equirect(t, row, col)[0].T.contiguous()


def footprint_any(mask: np.ndarray, grid: SampleGrid) -> Tensor:
    """[N] bool: does any pixel of ``mask`` fall in each grid sample's footprint?

    mask: np.ndarray  # [h, 2h] bool at the grid's own resolution (h = grid rows)
    A sample covers its row and the longitude span [lon - d_lon/2, lon + d_lon/2], which
    spans several mask columns away from the equator; the test uses a row-wise prefix sum
    (tiled three times, so spans that cross the seam wrap).
    """
    h, w = mask.shape
    counts = np.concatenate([np.zeros((h, 1)), np.cumsum(np.tile(mask, (1, 3)), axis=1)], 1)
    rows = torch.round((0.5 - grid.lat / math.pi) * h - 0.5).long().clamp(0, h - 1)
    lo = ((grid.lon - grid.d_lon / 2) / (2 * math.pi) + 0.5) * w
    hi = ((grid.lon + grid.d_lon / 2) / (2 * math.pi) + 0.5) * w
    first = torch.floor(lo + 1e-9).long() + w  # first column touched (shifted into copy 2)
    last = torch.ceil(hi - 1e-9).long() + w  # one past the last column touched
    c = torch.from_numpy(counts)
    return (c[rows, last] - c[rows, first]) > 0


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
    footprint: float = 0.6  # tangential sigma as a fraction of the sample spacing
    thickness: float = 0.3  # radial sigma as a fraction of the smaller tangential sigma
    opacity: float = 0.95


def init_gaussians(
    grid: SampleGrid,
    colors: Tensor,
    depth: Tensor,
    cfg: InitConfig = InitConfig(),
) -> Gaussians:
    """Gaussians on the rays of ``grid``.

    colors: Tensor  # [N, 3] in [0, 1]
    depth: Tensor  # [N] distance along the ray
    """
    d = depth.to(torch.float64)
    radial = lonlat_to_dir(grid.lon, grid.lat)
    means = radial * d[:, None]
    s_lon = cfg.footprint * grid.d_lon * torch.cos(grid.lat) * d
    s_lat = cfg.footprint * grid.d_lat * d
    s_rad = cfg.thickness * torch.minimum(s_lon, s_lat)
    scales = torch.stack([s_lon, s_lat, s_rad], -1).clamp_min(1e-6)
    quats = matrix_to_quat(tangent_frames(grid.lon, grid.lat))
    n = len(grid)
    logit = math.log(cfg.opacity / (1 - cfg.opacity))
    return Gaussians(
        means=means.float(),
        quats=quats.float(),
        log_scales=torch.log(scales).float(),
        opacities=torch.full((n,), logit, dtype=torch.float32),
        sh=rgb_to_sh0(colors.float().clamp(0, 1))[:, None, :].contiguous(),
    )


def subset(g: Gaussians, keep: Tensor) -> Gaussians:
    """The Gaussians selected by a bool mask or index tensor."""
    return Gaussians(**{k: v[keep] for k, v in g.tensors().items()})
