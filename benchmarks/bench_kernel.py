"""What one flat layer of splats can reproduce of a sharp photograph, and what limits it.

A lift from the centre is, locally, a layer of splats facing the eye, one per texel of the
input where the image has detail. This benchmark builds that with the engine's own
pieces, on square crops of a real panorama's textured areas (rock, grass):

- Gaussians on a plane at distance 1, one per texel (or ``--spacing`` texels apart), flat
  discs with tangential sigma ``footprint`` x spacing, opacity ``opacity``, pushed back by
  the 2x2 compositing-order pattern of :mod:`engine.lift.init`;
- their colours fitted by :func:`engine.lift.solve.solve_colours` (the default SolveConfig's
  damping and iterations unless a setting says otherwise) to a training view at
  ``resolution`` times the texel rate, rendered by the engine's rasteriser
  (:func:`engine.lift.raster.pixel_weights`);
- scored with :func:`engine.lift.raster.rasterize` in other views (rolled 0.4 rad about the
  view axis and shifted by another sub-pixel phase; the plane stays square to the view, so
  this does not test view-dependent compositing order) at the texel rate (native) and
  magnified 1.6x (a headset's view of a 4096-wide panorama), against the photograph's own
  bilinear samples at each pixel.

Beside it, the same fit with the splats summed instead of composited: each pixel the sum of
the kernels (their variance including the 0.3 px^2 low-pass, each normalised so a flat field
sums to 1; opacity plays no part), fitted by the same damped, clamped solve. It shows what
the kernel allows without the compositing under that solve, not an unconstrained optimum.

    python benchmarks/bench_kernel.py            # the table in docs/BENCHMARKS.md
    python benchmarks/bench_kernel.py --quick    # one crop, two settings
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import scipy.sparse
import scipy.spatial
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402

from engine.gaussians import Gaussians, rgb_to_sh0, sh0_to_rgb  # noqa: E402
from engine.lift.init import ORDER_PATTERN  # noqa: E402
from engine.lift.raster import EPS2D, pixel_weights, rasterize  # noqa: E402
from engine.lift.solve import Csr, Problem, SolveConfig  # noqa: E402

PANNELLUM = ROOT.parent / "shared" / "data" / "pannellum_examplepano_4096x2048.jpg"
CROPS = ((1500, 1000), (1300, 3300), (1650, 2300))  # (row, col): rock, grass, rock + grass
SIZE = 112  # scored texels on a side
MARGIN = 16  # texels of splats around the scored square
F = 1000.0  # focal length (px) at the texel rate: one texel = 1 / F on the plane


def layer(tex: np.ndarray, spacing: float, footprint: float, opacity: float) -> Gaussians:
    """Splats on the plane z = 1 over the texture ``tex`` [n, n, 3] (texel centres at
    (j - n/2 + 0.5) / F), ``spacing`` texels apart, colours sampled bilinearly."""
    n = tex.shape[0]
    ticks = np.arange(0.5, n, spacing)
    row, col = np.meshgrid(ticks, ticks, indexing="ij")
    parity = np.arange(len(ticks)) % 2
    rank = np.array(ORDER_PATTERN)[parity[:, None] * 2 + parity[None, :]]
    x, y = (col - n / 2) / F, (row - n / 2) / F
    z = 1.0 + 2.0 * rank * spacing / F  # the lift's order offsets (order_step 2)
    means = np.stack([x * z, y * z, z], -1).reshape(-1, 3)
    n_g = means.shape[0]
    sigma = (footprint * spacing / F) * z.reshape(-1, 1)  # at the pushed-back depth, as the lift
    log_scales = np.log(sigma * np.array([1.0, 1.0, 0.3]))
    colours = bilinear(tex, row.ravel() - 0.5, col.ravel() - 0.5)
    logit = math.log(opacity / (1 - opacity))
    return Gaussians(
        means=torch.tensor(means, dtype=torch.float32),
        quats=torch.tensor([[1.0, 0, 0, 0]]).expand(n_g, 4).contiguous(),
        log_scales=torch.tensor(log_scales, dtype=torch.float32),
        opacities=torch.full((n_g,), logit),
        sh=rgb_to_sh0(torch.tensor(colours, dtype=torch.float32).clamp(0, 1))[:, None, :],
    )


def bilinear(tex: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """[k, 3] samples of ``tex`` at continuous pixel coordinates (pixel centres at
    integers; clamped to the edge)."""
    n = tex.shape[0]
    row, col = np.clip(row, 0, n - 1), np.clip(col, 0, n - 1)
    r0, c0 = np.minimum(row.astype(int), n - 2), np.minimum(col.astype(int), n - 2)
    fr, fc = (row - r0)[:, None], (col - c0)[:, None]
    top = tex[r0, c0] * (1 - fc) + tex[r0, c0 + 1] * fc
    bottom = tex[r0 + 1, c0] * (1 - fc) + tex[r0 + 1, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def camera(n: int, scale: float, angle: float, phase: float):
    """A view of the scored square at ``scale`` px per texel, turned ``angle`` about its
    axis and shifted by ``phase`` texels; returns (viewmat, K, size) and the texture
    coordinates (row, col) [size * size] each pixel centre sees on the plane:
    (viewmat [4, 4], K [3, 3], size, row, col)."""
    size = int(SIZE * scale)
    c, s = math.cos(angle), math.sin(angle)
    vm = torch.eye(4)
    vm[:2, :2] = torch.tensor([[c, -s], [s, c]])
    vm[:2, 3] = torch.tensor([phase / F, 0.7 * phase / F])
    f = F * scale
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    xc, yc = (u.ravel() - size / 2) / f - phase / F, (v.ravel() - size / 2) / f - 0.7 * phase / F
    xw, yw = c * xc + s * yc, -s * xc + c * yc  # camera -> plane (the inverse turn)
    return vm, K, size, yw * F + n / 2 - 0.5, xw * F + n / 2 - 0.5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB, peak 1) of [k, 3] samples against [k, 3] references."""
    return float(-10 * np.log10(max(np.mean((a - b) ** 2), 1e-12)))


def fit(tex, g, resolution, cfg: SolveConfig) -> torch.Tensor:
    """Colours [N, 3] of ``g`` fitted to one training view at ``resolution`` of the texture
    ``tex`` [n, n, 3]."""
    vm, K, size, row, col = camera(tex.shape[0], resolution, 0.0, 0.0)
    pw = pixel_weights(g, vm, K, size, size, min_weight=cfg.min_weight)
    order = torch.argsort(pw.pix, stable=True)
    entries = (pw.pix[order], pw.gauss[order], pw.w[order])
    return solve(entries, size * size, len(g), bilinear(tex, row, col), sh0_to_rgb(g.sh[:, 0]), cfg)


def solve(entries, n_rows: int, n_cols: int, y: np.ndarray, init, cfg) -> torch.Tensor:
    """The engine's damped colour solve for the (row, col, weight) entries sorted by row;
    y [n_rows, 3] targets, init [n_cols, 3] initial colours."""
    row, col, w = (torch.as_tensor(e) for e in entries)
    a = Csr.from_blocks([(row.int(), col.int(), w.float(), n_rows)], n_cols)
    problem = Problem(a, a.transpose(), torch.ones(n_rows), None)
    return problem.solve(torch.tensor(y, dtype=torch.float32), init.float(), cfg)


def score(tex, g, colours, scale) -> float:
    vm, K, size, row, col = camera(tex.shape[0], scale, 0.4, 0.37)
    lit = Gaussians(**{**g.tensors(), "sh": rgb_to_sh0(colours)[:, None, :]})
    rgb = rasterize(lit, vm, K, size, size, backend="torch").rgb.numpy().reshape(-1, 3)
    inside = scored(tex.shape[0], row, col)
    return psnr(rgb[inside], bilinear(tex, row, col)[inside])


def scored(n: int, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """[k] bool: the samples inside the central SIZE x SIZE texels."""
    lo, hi = (n - SIZE) / 2 - 0.5, (n + SIZE) / 2 - 0.5
    return (row >= lo) & (row <= hi) & (col >= lo) & (col <= hi)


def summed(tex, spacing, footprint, resolution, scale, cfg: SolveConfig) -> float:
    """PSNR at ``scale`` of summed (not composited) kernels fitted at ``resolution`` to the
    texture ``tex`` [n, n, 3] (module docstring)."""
    n = tex.shape[0]
    ticks = np.arange(0.5, n, spacing)
    gr, gc = (a.ravel() - 0.5 for a in np.meshgrid(ticks, ticks, indexing="ij"))

    tree = scipy.spatial.cKDTree(np.stack([gr, gc], 1))

    def matrix(r, c, s):
        var = (footprint * spacing) ** 2 + EPS2D / s**2
        near = tree.query_ball_point(np.stack([r, c], 1), 3.5 * math.sqrt(var))
        rows = np.repeat(np.arange(len(r)), [len(j) for j in near])
        cols = np.concatenate([np.asarray(j, dtype=np.int64) for j in near])
        d2 = (r[rows] - gr[cols]) ** 2 + (c[rows] - gc[cols]) ** 2
        w = np.exp(-d2 / (2 * var)) * spacing**2 / (2 * math.pi * var)
        return rows, cols, w

    _, _, _, r, c = camera(n, resolution, 0.0, 0.0)
    init = torch.tensor(bilinear(tex, gr, gc))
    colours = solve(matrix(r, c, resolution), len(r), len(gr), bilinear(tex, r, c), init, cfg)
    _, _, _, r, c = camera(n, scale, 0.4, 0.37)
    rows, cols, w = matrix(r, c, scale)
    a = scipy.sparse.csr_matrix((w, (rows, cols)), shape=(len(r), len(gr)))
    inside = scored(n, r, c)
    return psnr((a @ colours.numpy())[inside], bilinear(tex, r, c)[inside])


SETTINGS = (  # (label, spacing, footprint, opacity, training resolution, damping)
    ("one per texel, footprint 0.6, at 1.25x (standard)", 1.0, 0.6, 0.97, 1.25, 0.03),
    ("footprint 0.55, fitted at 1.25x (4k's finest cells)", 1.0, 0.55, 0.97, 1.25, 0.03),
    ("footprint 0.5, fitted at 1.25x", 1.0, 0.5, 0.97, 1.25, 0.03),
    ("footprint 0.5, fitted at 1x", 1.0, 0.5, 0.97, 1.0, 0.03),
    ("footprint 0.4, fitted at 1x", 1.0, 0.4, 0.97, 1.0, 0.03),
    ("footprint 0.6 at 1.25x, damping 0.003", 1.0, 0.6, 0.97, 1.25, 0.003),
    ("footprint 0.6 at 1.25x, damping 0.1", 1.0, 0.6, 0.97, 1.25, 0.1),
    ("footprint 0.6 at 1.25x, opacity 0.7", 1.0, 0.6, 0.7, 1.25, 0.03),
    ("footprint 0.6 at 1.25x, opacity 0.999", 1.0, 0.6, 0.999, 1.25, 0.03),
    ("two per texel (spacing 0.71), footprint 0.5, at 1.25x", 0.71, 0.5, 0.97, 1.25, 0.03),
    ("0.6 per texel (spacing 1.28), footprint 0.6, at 1.25x", 1.28, 0.6, 0.97, 1.25, 0.03),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one crop, two settings")
    args = ap.parse_args()
    pano = cv2.imread(str(PANNELLUM), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    crops, settings = (CROPS[:1], SETTINGS[:2]) if args.quick else (CROPS, SETTINGS)
    n = SIZE + 2 * MARGIN
    h = n // 2
    texs = [np.ascontiguousarray(pano[r - h : r + h, c - h : c + h]) for r, c in crops]
    print(f"machine: {machine()}")
    print(f"{len(texs)} crops of {n}x{n} texels of {PANNELLUM.name}; scored {SIZE}x{SIZE} texels")
    print("| layer | composited: native | magnified 1.6x | summed: native | magnified 1.6x |")
    print("|---|---|---|---|---|")
    for label, spacing, footprint, opacity, res, damping in settings:
        cfg = SolveConfig(damping=damping)
        comp, summ = [], []
        for tex in texs:
            g = layer(tex, spacing, footprint, opacity)
            colours = fit(tex, g, res, cfg)
            comp.append([score(tex, g, colours, s) for s in (1.0, 1.6)])
            if opacity == SETTINGS[0][3]:  # summed kernels have no opacity: the same rows
                summ.append([summed(tex, spacing, footprint, res, s, cfg) for s in (1.0, 1.6)])
        cols = " | ".join(f"{v:.2f} dB" for v in np.mean(comp, 0))
        cols += " | " + (" | ".join(f"{v:.2f} dB" for v in np.mean(summ, 0)) if summ else "— | —")
        print(f"| {label} | {cols} |", flush=True)


if __name__ == "__main__":
    main()
