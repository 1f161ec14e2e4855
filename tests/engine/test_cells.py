"""Adaptive cells: they tile the sphere, follow the detail and split at edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.lift.cells import CellConfig, build_cells, footprint_any
from tests.conftest import textured_equirect


def _flat(h: int = 64) -> np.ndarray:
    return np.full((h, 2 * h, 3), 128, np.uint8)


def _solid_angle(cells) -> torch.Tensor:
    """Exact solid angle of each cell's latitude-longitude rectangle."""
    top, bottom = cells.lat + cells.d_lat / 2, cells.lat - cells.d_lat / 2
    return cells.d_lon * (torch.sin(top) - torch.sin(bottom))


def _owner_counts(cells, h: int, w: int) -> np.ndarray:
    """How many cells contain each equirect pixel centre (brute force)."""
    rows, cols = np.mgrid[0:h, 0:w]
    lat = (0.5 - (rows + 0.5) / h) * math.pi
    lon = ((cols + 0.5) / w - 0.5) * 2 * math.pi
    count = np.zeros((h, w), np.int64)
    for lo, la, dlo, dla in zip(
        cells.lon.numpy(), cells.lat.numpy(), cells.d_lon.numpy(), cells.d_lat.numpy()
    ):
        in_lat = np.abs(lat - la) < dla / 2
        dl = np.abs((lon - lo + math.pi) % (2 * math.pi) - math.pi)  # wraps the seam
        count += in_lat & (dl < dlo / 2)
    return count


@pytest.mark.parametrize("density", [0.2, 0.6, 1.0])
def test_cells_tile_the_sphere_exactly_once(density):
    pano = textured_equirect(32, 64, seed=3)
    cells = build_cells(
        pano, np.full((32, 64), 5.0), np.zeros((32, 64), bool), CellConfig(density=density)
    )
    assert float(_solid_angle(cells).sum()) == pytest.approx(4 * math.pi, rel=1e-9)
    assert (_owner_counts(cells, 32, 64) == 1).all()


def test_density_is_met_and_finest_cells_match_the_pixels_at_the_equator():
    pano = textured_equirect(128, 256, seed=1)
    depth, still = np.full((128, 256), 5.0), np.zeros((128, 256), bool)
    for density in (0.3, 0.6):
        cells = build_cells(pano, depth, still, CellConfig(density=density))
        assert len(cells) == pytest.approx(density * 128 * 256, rel=0.02)
    finest = build_cells(pano, depth, still, CellConfig(density=1.0))
    assert bool((finest.level == 0).all())
    eq = finest.lat.abs() < math.radians(30)
    assert torch.allclose(finest.d_lon[eq], torch.tensor(2 * math.pi / 256, dtype=torch.float64))
    assert torch.allclose(finest.d_lat, torch.tensor(math.pi / 128, dtype=torch.float64))
    # towards the poles cells widen so they stay about as wide as they are tall (the cell
    # width is set per band of 2**levels rows, so the rows nearest a pole are finer)
    aspect = finest.d_lon * torch.cos(finest.lat) / finest.d_lat
    inner = finest.lat.abs() < math.radians(90 - 180 * 8 / 128)
    assert float(aspect[inner].min()) > 0.3 and float(aspect.max()) <= 1.0 + 1e-9


def test_detail_gets_small_cells_and_flat_areas_large_ones():
    pano = _flat(128)
    pano[:, 128:] = textured_equirect(128, 256, seed=2)[:, 128:]  # texture on the right half
    cells = build_cells(
        pano, np.full((128, 256), 5.0), np.zeros((128, 256), bool), CellConfig(density=0.5)
    )
    right = cells.lon > 0.05
    left = cells.lon < -0.05
    assert float(cells.level[right].float().mean()) < 0.2
    assert float(cells.level[left].float().mean()) > 2.0
    # per unit solid angle the textured half holds many times more Gaussians
    area = _solid_angle(cells)
    assert (right.sum() / area[right].sum()) > 8 * (left.sum() / area[left].sum())


def test_no_cell_straddles_a_depth_edge_or_a_region_border():
    h, w = 64, 128
    depth = np.full((h, w), 10.0)
    depth[21:40, 31:61] = 2.0  # a foreground box, off the cell grid's even lines
    anim = np.zeros((h, w), bool)
    anim[:, 91:110] = True

    def straddling(cfg):
        cells = build_cells(_flat(h), depth, anim, cfg)
        coarse = cells.level > 0  # a finest cell cannot split further
        both_depths = footprint_any(depth < 5, cells) & footprint_any(depth > 5, cells)
        both_motions = footprint_any(anim, cells) & footprint_any(~anim, cells)
        return cells, int((both_depths & coarse).sum()), int((both_motions & coarse).sum())

    cells, n_depth, n_motion = straddling(CellConfig(density=0.05))
    assert int((cells.level == 3).sum()) > 0  # flat areas merge to the coarsest cells
    assert n_depth == 0 and n_motion == 0
    assert torch.equal(cells.animated, footprint_any(anim, cells))
    # without the depth rule coarse cells would mix the box with the wall behind it
    assert straddling(CellConfig(density=0.05, depth_split=1e9))[1] > 5
    assert int((cells.level == 0).sum()) > 100  # the edges are lined with finest cells


def _footprint_brute(mask, cells):
    h, w = mask.shape
    out = []
    for lo, la, dlo, dla in zip(
        cells.lon.tolist(), cells.lat.tolist(), cells.d_lon.tolist(), cells.d_lat.tolist()
    ):
        hit = False
        for r in range(h):
            r_top = (0.5 - r / h) * math.pi
            r_bot = (0.5 - (r + 1) / h) * math.pi
            if not (r_bot < la + dla / 2 - 1e-12 and r_top > la - dla / 2 + 1e-12):
                continue
            for c in range(w):
                c_lo = (c / w - 0.5) * 2 * math.pi
                c_hi = ((c + 1) / w - 0.5) * 2 * math.pi
                for shift in (-2 * math.pi, 0.0, 2 * math.pi):  # wrap across the seam
                    if (
                        mask[r, c]
                        and c_lo + shift < lo + dlo / 2 - 1e-12
                        and c_hi + shift > lo - dlo / 2 + 1e-12
                    ):
                        hit = True
        out.append(hit)
    return torch.tensor(out)


def test_footprint_any_matches_brute_force_at_the_pole_and_the_seam():
    h, w = 16, 32
    cells = build_cells(
        textured_equirect(h, w, seed=4),
        np.full((h, w), 5.0),
        np.zeros((h, w), bool),
        CellConfig(density=0.3, levels=2),
    )
    mask = np.zeros((h, w), bool)
    mask[0, 7] = True  # next to the pole, where cells span many columns
    mask[8, 0] = True  # on the seam
    mask[12, 20:22] = True
    got = footprint_any(mask, cells)
    assert torch.equal(got, _footprint_brute(mask, cells))
    assert int(got.sum()) >= 3
