"""Adaptive cells on the sphere at the input's own resolution: one Gaussian per cell.

The equirect image (H rows) is cut into bands of ``B = 2**levels`` rows. A band whose
latitudes reach ``lat`` (the one closest to the equator) uses cells ``k`` pixels wide,
``k = 2**floor(log2(1 / cos lat))``, so a finest cell spans about as much longitude as
latitude everywhere (the poles are not oversampled; about 0.78 cells per pixel). Within a
band the cells form quadtrees: a cell of level ``l`` is ``2**l`` finest cells on a side.

A cell is split while it holds detail its coarser parent cannot show:

- colour: the mean over the cell of ``max_channel |I - up(down_l(I))|`` (the error of
  rebuilding the cell from its level's area average, bilinear upsampled) above ``tau``;
- depth: a relative depth range ``(max - min) / min`` above ``depth_split`` inside the
  cell (a depth edge): split down to the finest cells;
- animation: a cell holding both static and animated pixels is split down to the finest
  cells, so every cell is wholly static or animated.

``tau`` is found by bisection so that the number of cells matches the target density
(cells per input pixel), bounded below by what the forced splits need and above by the
finest layout. Flat areas (sky, walls) end up in large cells, texture and edges in small
ones: detail goes where the image has it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class CellConfig:
    levels: int = 3  # coarsest cells: 2**levels finest cells on a side
    density: float = 0.6  # target cells (Gaussians) per input pixel
    depth_split: float = 0.03  # relative depth range inside a cell that forces a split


@dataclass
class Cells:
    """Cells as angular rectangles (radians): centres, sizes and their level.

    Every field is [N]; ``lon``/``lat`` are cell centres, ``d_lon``/``d_lat`` the spans.
    ``animated`` marks cells holding animated pixels (all of their pixels are then
    animated, except at the finest level where a cell may mix both).
    """

    lon: Tensor  # [N] float64
    lat: Tensor  # [N] float64
    d_lon: Tensor  # [N] float64
    d_lat: Tensor  # [N] float64
    level: Tensor  # [N] int64
    animated: Tensor  # [N] bool

    def __len__(self) -> int:
        return int(self.lon.shape[0])

    def subset(self, keep: Tensor) -> Cells:
        return Cells(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    @staticmethod
    def cat(parts: list[Cells]) -> Cells:
        return Cells(
            *(torch.cat([getattr(p, f) for p in parts]) for f in Cells.__dataclass_fields__)
        )

    def pixel_coords(self, height: int, width: int) -> tuple[Tensor, Tensor]:
        """Continuous (row, col) of the cell centres in an equirect image of that size."""
        col = (self.lon / (2 * math.pi) + 0.5) * width - 0.5
        row = (0.5 - self.lat / math.pi) * height - 0.5
        return row, col


@dataclass(frozen=True)
class _Zone:
    """Consecutive bands of the same cell width: rows [row0, row0 + rows) of the cell grid."""

    row0: int
    rows: int  # a multiple of the band height
    cols: int  # finest cells across the zone


def _zones(height: int, width: int, b: int) -> tuple[int, list[_Zone]]:
    """Rows of the cell grid (a multiple of ``b``) and its zones, top to bottom."""
    rows = b * max(1, math.ceil(height / b))
    zones: list[_Zone] = []
    for r0 in range(0, rows, b):
        if r0 < rows / 2 < r0 + b:
            lat_eq = 0.0  # the band holds the equator
        else:
            lat_eq = min(abs(0.5 - r0 / rows), abs(0.5 - (r0 + b) / rows)) * math.pi
        k = 2 ** math.floor(math.log2(1.0 / max(math.cos(lat_eq), 1e-9)))
        cols = b * max(1, round(width / (k * b)))
        if zones and zones[-1].cols == cols:
            last = zones[-1]
            zones[-1] = _Zone(last.row0, last.rows + b, cols)
        else:
            zones.append(_Zone(r0, b, cols))
    return rows, zones


def _zone_image(image: np.ndarray, rows: int, zone: _Zone) -> np.ndarray:
    """The zone's pixels resampled to [zone.rows, zone.cols, C] (area filter), float32."""
    h = image.shape[0]
    lo, hi = zone.row0 * h / rows, (zone.row0 + zone.rows) * h / rows
    r0 = int(math.floor(lo))
    r1 = max(int(math.ceil(hi)), r0 + 1)
    strip = np.asarray(image[r0:r1], dtype=np.float32)
    out = cv2.resize(strip, (zone.cols, zone.rows), interpolation=cv2.INTER_AREA)
    return out.reshape(zone.rows, zone.cols, -1)


def _pool(x: np.ndarray, f: int, op: str = "mean") -> np.ndarray:
    """[h, w, ...] -> [h / f, w / f, ...] block mean / max / min."""
    h, w = x.shape[:2]
    blocks = x.reshape(h // f, f, w // f, f, *x.shape[2:])
    return getattr(blocks, op)(axis=(1, 3))


def _zone_scores(
    rgb: np.ndarray, depth: np.ndarray, anim: np.ndarray, levels: int, depth_split: float
) -> list[np.ndarray]:
    """Per level l = 0..levels: [rows / 2^l, cols / 2^l] split scores (inf = must split).

    A parent's score is at least its children's, so leaves form proper quadtrees.
    """
    scores = [np.zeros(rgb.shape[:2], np.float32)]
    for lvl in range(1, levels + 1):
        f = 2**lvl
        down = _pool(rgb, f)
        up = cv2.resize(down, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        err = np.abs(rgb - up.reshape(rgb.shape)).max(axis=-1)
        s = _pool(err, f)
        dmax, dmin = _pool(depth, f, "max"), _pool(depth, f, "min")
        forced = (dmax - dmin) > depth_split * np.maximum(dmin, 1e-6)
        forced |= _pool(anim, f, "max") != _pool(anim, f, "min")
        s = np.where(forced, np.inf, s)
        s = np.maximum(s, _pool(scores[-1][..., None], 2, "max")[..., 0])
        scores.append(s.astype(np.float32))
    return scores


class _Tree:
    """The scores of every zone flattened per level, with each cell's parent index."""

    def __init__(self, per_zone: list[list[np.ndarray]]) -> None:
        levels = len(per_zone[0])
        self.scores = [np.concatenate([z[l].ravel() for z in per_zone]) for l in range(levels)]
        self.parent: list[np.ndarray] = []
        for lvl in range(levels - 1):
            parts, offset = [], 0
            for z in per_zone:
                h, w = z[lvl].shape
                r, c = np.divmod(np.arange(h * w), w)
                parts.append(offset + (r // 2) * (w // 2) + c // 2)
                offset += z[lvl + 1].size
            self.parent.append(np.concatenate(parts))

    def leaves(self, tau: float) -> list[np.ndarray]:
        """Per level, the flat mask of cells that are leaves at threshold ``tau``."""
        top = len(self.scores) - 1
        out = []
        for lvl, s in enumerate(self.scores):
            stays = s <= tau if lvl > 0 else np.ones(s.shape, bool)
            if lvl < top:
                stays &= self.scores[lvl + 1][self.parent[lvl]] > tau
            out.append(stays)
        return out

    def count(self, tau: float) -> int:
        return sum(int(m.sum()) for m in self.leaves(tau))


def build_cells(
    rgb: np.ndarray,
    depth: np.ndarray,
    animated: np.ndarray,
    cfg: CellConfig = CellConfig(),
) -> Cells:
    """Adaptive cells of a panorama (see the module docstring).

    rgb: np.ndarray  # [H, W, 3] uint8 (scores are in 8-bit units)
    depth: np.ndarray  # [h, w] ray distance (any resolution; resampled to the zones)
    animated: np.ndarray  # [H, W] bool, True where pixels move
    """
    height, width = rgb.shape[:2]
    rows, zones = _zones(height, width, 2**cfg.levels)
    per_zone = []
    for zone in zones:
        img = _zone_image(rgb, rows, zone)
        dep = _zone_image(np.asarray(depth, np.float32), rows, zone)[..., 0]
        anim = _zone_image(animated.astype(np.float32), rows, zone)[..., 0] > 0
        per_zone.append(_zone_scores(img, dep, anim, cfg.levels, cfg.depth_split))
    tree = _Tree(per_zone)
    tau = _threshold(tree, cfg.density * height * width)
    masks = tree.leaves(tau)
    parts, offsets = [], [0] * len(masks)
    for zone, scores in zip(zones, per_zone):
        for lvl, s in enumerate(scores):
            m = masks[lvl][offsets[lvl] : offsets[lvl] + s.size].reshape(s.shape)
            offsets[lvl] += s.size
            parts.append(_zone_cells(zone, rows, lvl, m))
    cells = Cells.cat(parts)
    cells.animated = footprint_any(animated, cells)
    return cells


def _threshold(tree: _Tree, target: float) -> float:
    """The colour threshold whose leaf count is closest above ``target`` (bisection)."""
    lo, hi = 0.0, 256.0  # 8-bit colour error
    if tree.count(hi) >= target:
        return hi
    if tree.count(lo) <= target:
        return lo
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tree.count(mid) > target else (lo, mid)
    return lo


def _zone_cells(zone: _Zone, rows: int, lvl: int, mask: np.ndarray) -> Cells:
    """The leaf cells of one zone and level as angular rectangles."""
    r, c = np.nonzero(mask)
    f, n = 2**lvl, len(r)
    lat = torch.from_numpy((0.5 - (zone.row0 + (r + 0.5) * f) / rows) * math.pi)
    lon = torch.from_numpy(((c + 0.5) * f / zone.cols - 0.5) * 2 * math.pi)
    return Cells(
        lon,
        lat,
        torch.full((n,), 2 * math.pi * f / zone.cols, dtype=torch.float64),
        torch.full((n,), math.pi * f / rows, dtype=torch.float64),
        torch.full((n,), lvl, dtype=torch.int64),
        torch.zeros(n, dtype=torch.bool),
    )


def footprint_any(mask: np.ndarray, cells: Cells) -> Tensor:
    """[N] bool: does any pixel of ``mask`` [H, W] fall in each cell's angular rectangle?

    Uses a 2D prefix sum of the mask tiled three times across the seam (cells that cross
    the seam wrap).
    """
    h, w = mask.shape
    tiled = np.tile(mask.astype(np.int32), (1, 3))
    sat = np.zeros((h + 1, 3 * w + 1), np.int64)
    sat[1:, 1:] = tiled.cumsum(0).cumsum(1)
    c = torch.from_numpy(sat)
    top = ((0.5 - (cells.lat + cells.d_lat / 2) / math.pi) * h).clamp(0, h)
    bot = ((0.5 - (cells.lat - cells.d_lat / 2) / math.pi) * h).clamp(0, h)
    left = ((cells.lon - cells.d_lon / 2) / (2 * math.pi) + 0.5) * w
    right = ((cells.lon + cells.d_lon / 2) / (2 * math.pi) + 0.5) * w
    r0 = torch.floor(top + 1e-9).long()
    r1 = torch.maximum(torch.ceil(bot - 1e-9).long(), r0 + 1).clamp(max=h)
    c0 = torch.floor(left + 1e-9).long() + w
    c1 = torch.maximum(torch.ceil(right - 1e-9).long() + w, c0 + 1)
    total = c[r1, c1] - c[r0, c1] - c[r1, c0] + c[r0, c0]
    return total > 0


def finest_cells(height: int) -> Cells:
    """Every finest cell of an equirect ``height`` rows tall (about 1.57 height^2 cells, the
    same angular spacing everywhere): a uniform layout for tests and benchmarks."""
    width = 2 * height
    blank = np.zeros((height, width, 3), np.uint8)
    flat, still = np.ones((height, width), np.float32), np.zeros((height, width), bool)
    return build_cells(blank, flat, still, CellConfig(levels=0, density=1.0))
