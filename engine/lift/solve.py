"""The linear colour solve: colours that make the Gaussians render the input back.

Once positions, shapes and opacities are fixed, a render is linear in the colours: pixel
``p`` of a view is ``sum_i w_pi c_i`` with the compositing weights ``w_pi = alpha_i T_i``
(:func:`engine.lift.raster.pixel_weights`, black background, SH degree 0). Stacking the
pixels of the training views gives a sparse matrix ``A`` [P, N], and the colours are the
solution of the damped, weighted least-squares problem

    min_c  sum_p omega_p |(A c)_p - y_p|^2  +  mu sum_i |c_i - c0_i|^2

with ``y`` the views' targets (perspective crops of the frame), ``omega_p`` the solid
angle of each pixel divided by the number of view sets (so the sphere counts evenly) and
``c0`` the initial colours (the image at each cell centre). ``mu`` (``damping`` times the
mean diagonal of ``A^T Omega A``) keeps Gaussians no view sees (background layers behind
depth edges) at their initial colour, and regularises the rest: the exact fit to the
training views' pixels would deconvolve the splats' blur with overshooting colours that
hold at those pixels only (measured: at 4096x2048, damping 1e-3 fits the training views to
38.6 dB but renders other views 0.7 dB worse than damping 0.03). The normal equations
``(A^T Omega A + mu I) c = A^T Omega y + mu c0`` are solved by conjugate gradients with a
Jacobi preconditioner, all three channels at once, and the result is clamped to [0, 1].
Gaussians may be held at their initial colour (the background layers behind depth edges,
:mod:`.layers`): the solve then fits the others with the held ones' contribution fixed.

Training views are cube maps at ``resolution`` times the input's angular resolution: the
first axis-aligned, the others turned by fixed rotations, so the fit sees each direction at
several sub-pixel phases and holds between them. The renderer's low-pass (0.3 px^2 in
screen pixels) makes a splat scene's look depend on the scale it is seen at, so the scale
fitted is the scale that looks best: the presets fit at 1.25x, between the input's own and a
headset's (which magnifies a 4096-wide panorama 1.6x, a 2048-wide one 3.2x). Measured at
4096x2048 (one frame, no refinement): 1.0x -> 30.5 dB at the input's resolution and 31.4 dB
magnified 1.6x; 1.25x -> 30.5 dB and 32.7 dB; 1.5x (finest cells) -> 28.8 dB and 33.1 dB
(``benchmarks/bench_scale.py``). The later frames of the dynamic set may use another
resolution (``frame_resolution``): they are most of the cost of an animated scene.

``A`` is stored twice as CSR with int32 indices (pixel-major for ``A c``, Gaussian-major
for ``A^T r``): 16 bytes per (pixel, Gaussian) pair.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..camera import View
from ..gaussians import Gaussians
from ..progress import Progress
from ..sphere import matched_view_size, perspective_view
from .init import to_bchw
from .raster import Roi, footprint_radii, pixel_weights, project, view_camera

# (yaw, pitch, roll) of the extra cube maps: generic turns, so no face edge of one set lies
# on a face edge of another
SET_ROTATIONS = ((0.0, 0.0, 0.0), (37.0, 21.0, 29.0), (-61.0, -13.0, 47.0), (17.0, -33.0, -23.0))


@dataclass(frozen=True)
class SolveConfig:
    view_sets: int = 2  # cube maps of training views (1..4)
    resolution: float = 1.0  # training view resolution relative to the input's angular one
    frame_resolution: float | None = None  # the same for the later frames (None: resolution)
    iters: int = 40  # conjugate-gradient iterations at most
    tol: float = 1e-3  # stop once the residual norm falls below tol * the initial one
    damping: float = 0.03  # mu as a fraction of the mean diagonal of A^T Omega A
    min_weight: float = 1e-3  # compositing weights below this are dropped from A


def training_views(width: int, cfg: SolveConfig = SolveConfig()) -> list[View]:
    """Cube faces (90 degrees, square) at ``cfg.resolution`` times the angular resolution of
    an equirect of ``width`` pixels, ``cfg.view_sets`` cube maps in all."""
    if not 1 <= cfg.view_sets <= len(SET_ROTATIONS):
        raise ValueError(f"view_sets must be 1..{len(SET_ROTATIONS)}, got {cfg.view_sets}")
    size = max(8, round(matched_view_size(width, 90.0) * cfg.resolution))
    faces = [(0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (-90.0, 0.0), (0.0, 90.0), (0.0, -90.0)]
    views = []
    for yaw0, pitch0, roll in SET_ROTATIONS[: cfg.view_sets]:
        rot = View(yaw0, pitch0, roll_deg=roll).rotation()
        for yaw, pitch in faces:
            r = rot @ View(yaw, pitch).rotation()
            views.append(_view_from_rotation(r, size))
    return views


def frame_training_views(width: int, cfg: SolveConfig = SolveConfig()) -> list[View]:
    """The training views of the dynamic set's later frames (``cfg.frame_resolution``)."""
    if cfg.frame_resolution is None:
        return training_views(width, cfg)
    return training_views(width, dataclasses.replace(cfg, resolution=cfg.frame_resolution))


def _view_from_rotation(r: np.ndarray, size: int) -> View:
    """The square 90-degree View whose camera-to-world rotation is ``r``.

    View's rotation is ``B Rz(-roll)`` with ``B = Ry(-yaw) Rx(pitch)``; yaw and pitch follow
    from the forward axis, and ``B^T r`` is then a turn about the view axis (at the poles
    too, with yaw 0), whose angle is the roll.
    """
    fwd = -r[:, 2]
    yaw = math.degrees(math.atan2(fwd[0], -fwd[2])) if abs(fwd[1]) < 1 - 1e-12 else 0.0
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, fwd[1]))))
    local = View(yaw, pitch).rotation().T @ r
    roll = -math.degrees(math.atan2(local[1, 0], local[0, 0]))
    return View(yaw, pitch, 90.0, size, size, roll)


def _pixel_weights(view: View) -> Tensor:
    """[h * w] solid angle of each pixel of ``view`` (steradians)."""
    f = view.focal
    x = (torch.arange(view.width, dtype=torch.float64) + 0.5 - view.width / 2) / f
    y = (torch.arange(view.height, dtype=torch.float64) + 0.5 - view.height / 2) / f
    return (1.0 / (f * f * (1 + x[None, :] ** 2 + y[:, None] ** 2) ** 1.5)).reshape(-1).float()


def _csr(crow: Tensor, col: Tensor, val: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we need
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, shape)


class Csr:
    """A sparse [rows, cols] matrix in CSR form with int32 indices (torch)."""

    CHUNK = 1 << 23  # entries handled at a time when transposing

    def __init__(self, crow: Tensor, col: Tensor, val: Tensor, shape: tuple[int, int]) -> None:
        if col.shape[0] >= 2**31:
            raise MemoryError("colour solve: more than 2^31 weights; use fewer view sets")
        self.crow, self.col, self.val, self.shape = crow, col, val, shape
        self.m = _csr(crow, col, val, shape)

    @staticmethod
    def from_blocks(blocks: list[tuple[Tensor, Tensor, Tensor, int]], n_cols: int) -> Csr:
        """Stack row blocks ``(local_row, col, val, n_rows)``, each sorted by local row.

        The blocks are consumed (the list is emptied as they are copied, bounding memory)."""
        nnz = sum(int(b[0].shape[0]) for b in blocks)
        n_rows = sum(b[3] for b in blocks)
        dev = blocks[0][0].device if blocks else torch.device("cpu")
        crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=dev)
        col = torch.empty(nnz, dtype=torch.int32, device=dev)
        val = torch.empty(nnz, dtype=torch.float32, device=dev)
        e, r = 0, 0
        while blocks:
            row, c, v, rows = blocks.pop(0)
            n = int(row.shape[0])
            counts = torch.bincount(row, minlength=rows)
            crow[r + 1 : r + rows + 1] = e + torch.cumsum(counts, 0)
            col[e : e + n], val[e : e + n] = c, v
            e, r = e + n, r + rows
        return Csr(crow.int(), col, val, (n_rows, n_cols))

    def entry_rows(self, lo: int = 0, hi: int | None = None) -> Tensor:
        """[e] int32 row of the stored entries of rows lo..hi."""
        hi = self.shape[0] if hi is None else hi
        counts = (self.crow[lo + 1 : hi + 1] - self.crow[lo:hi]).long()
        rows = torch.arange(lo, hi, dtype=torch.int32, device=self.crow.device)
        return torch.repeat_interleave(rows, counts)

    def transpose(self) -> Csr:
        """The [cols, rows] transpose, by a counting sort over chunks of rows (memory: the
        result plus one chunk)."""
        n_rows, n_cols = self.shape
        dev = self.col.device
        counts = torch.bincount(self.col, minlength=n_cols)
        crow = torch.zeros(n_cols + 1, dtype=torch.int64, device=dev)
        torch.cumsum(counts, 0, out=crow[1:])
        cursor = crow[:-1].clone()
        out_col = torch.empty(self.nnz, dtype=torch.int32, device=dev)
        out_val = torch.empty(self.nnz, dtype=self.val.dtype, device=dev)
        lo = 0
        while lo < n_rows:
            e0 = int(self.crow[lo])
            hi = int(torch.searchsorted(self.crow, e0 + self.CHUNK, right=True)) - 1
            hi = min(max(hi, lo + 1), n_rows)
            e1 = int(self.crow[hi])
            order = torch.argsort(self.col[e0:e1], stable=True)
            cs = self.col[e0:e1][order]
            uniq, cnt = torch.unique_consecutive(cs, return_counts=True)
            first = torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
            pos = cursor[cs.long()] + torch.arange(e1 - e0, device=dev) - first
            out_col[pos] = self.entry_rows(lo, hi)[order]
            out_val[pos] = self.val[e0:e1][order]
            cursor[uniq.long()] += cnt
            lo = hi
        return Csr(crow.int(), out_col, out_val, (n_cols, n_rows))

    def __matmul__(self, x: Tensor) -> Tensor:
        return self.m @ x

    @property
    def nnz(self) -> int:
        return int(self.col.shape[0])


@dataclass
class Problem:
    """The weighted least-squares colour problem of the module docstring.

    a: pixel-major ``A`` [P, N]; at: Gaussian-major ``A^T`` [N, P]; omega: [P] pixel
    weights; fixed: [P, 3] what Gaussians outside the problem add to each pixel (None when
    every Gaussian is free).
    """

    a: Csr
    at: Csr
    omega: Tensor  # [P]
    fixed: Tensor | None  # [P, 3]

    @property
    def n_gaussians(self) -> int:
        return self.a.shape[1]

    def diag(self) -> Tensor:
        """[N] diagonal of A^T Omega A."""
        at = self.at
        squares = _csr(at.crow, at.col, at.val * at.val, at.shape)
        return squares @ self.omega

    def normal(self, c: Tensor) -> Tensor:
        """A^T Omega A c for c [N, 3]."""
        return self.at @ (self.omega[:, None] * (self.a @ c))

    def rhs(self, y: Tensor) -> Tensor:
        """A^T Omega (y - fixed) for the targets y [P, 3] of the problem's pixels."""
        y = y if self.fixed is None else y - self.fixed
        return self.at @ (self.omega[:, None] * y)

    def render(self, c: Tensor) -> Tensor:
        """The problem's pixels [P, 3] for colours c [N, 3] (fixed part included)."""
        out = self.a @ c
        return out if self.fixed is None else out + self.fixed

    def solve(
        self,
        y: Tensor,
        init: Tensor,
        cfg: SolveConfig,
        progress: Progress | None = None,
        held: Tensor | None = None,
    ) -> Tensor:
        """The colours [N, 3] that best render ``y`` [P, 3] (module docstring), the
        ``held`` Gaussians [N] bool keeping ``init``."""
        return solve_colours(self.normal, self.rhs(y), init, self.diag(), cfg, progress, held)


@dataclass
class Weights(Problem):
    """The stacked compositing weights of the training views (or rectangles of them).

    rows: per view, the slice of ``a``'s rows it owns; rois: per view, its rectangle.
    """

    views: list[View]
    rois: list[Roi]
    rows: list[slice]

    def targets(self, frame: np.ndarray) -> Tensor:
        """[P, 3] float targets: the views' perspective crops of ``frame`` [H, W, 3] uint8."""
        dev = self.a.val.device
        img = (to_bchw(frame) / 255).to(dev)
        out = torch.empty(self.a.shape[0], 3, device=dev)
        for view, (x0, y0, x1, y1), rows in zip(self.views, self.rois, self.rows):
            crop = perspective_view(img, view)[0, :, y0:y1, x0:x1]
            out[rows] = crop.permute(1, 2, 0).reshape(-1, 3)
        return out

    def restrict(self, free: Tensor, colours: Tensor) -> Subproblem:
        """The problem of the ``free`` Gaussians [N] bool, the others fixed at ``colours``
        [N, 3], over the pixels the free ones touch."""
        row = self.a.entry_rows()
        col = self.a.col.long()
        on = free[col]
        fixed_all = self.a @ torch.where(free[:, None], 0.0, colours)
        touched = torch.unique(row[on].long())
        dev = touched.device
        remap_row = torch.full((self.a.shape[0],), -1, dtype=torch.int64, device=dev)
        remap_row[touched] = torch.arange(len(touched), device=dev)
        remap_col = torch.cumsum(free.long(), 0) - 1
        r, c, v = remap_row[row[on].long()], remap_col[col[on]], self.a.val[on]
        a = Csr.from_blocks([(r, c, v, len(touched))], int(free.sum()))  # rows stay sorted
        return Subproblem(
            a,
            a.transpose(),
            self.omega[touched],
            fixed_all[touched],
            touched,
        )


@dataclass
class Subproblem(Problem):
    """A :class:`Problem` over some pixels of a parent's (``rows`` [P'] into its rows)."""

    rows: Tensor


def dynamic_rois(g: Gaussians, views: list[View]) -> list[Roi | None]:
    """Per view, the pixel rectangle the Gaussians ``g`` can touch (None: not in view)."""
    out: list[Roi | None] = []
    for view in views:
        vm, k, w, h = view_camera(view, g.means.device)
        means2d, cov2d, z = project(g.means, g.quats, g.log_scales, vm, k, w, h)
        radii = footprint_radii(cov2d, torch.sigmoid(g.opacities))
        lo, hi = means2d - radii, means2d + radii
        ok = (z > 0.01) & (hi[:, 0] > 0) & (lo[:, 0] < w) & (hi[:, 1] > 0) & (lo[:, 1] < h)
        if not bool(ok.any()):
            out.append(None)
            continue
        x0, y0 = (int(v) for v in lo[ok].amin(0).floor().clamp_min(0))
        x1 = int(hi[ok, 0].amax().ceil().clamp(max=w))
        y1 = int(hi[ok, 1].amax().ceil().clamp(max=h))
        out.append((x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None)
    return out


def build_weights(
    g: Gaussians,
    views: list[View],
    cfg: SolveConfig,
    progress: Progress | None = None,
    rois: list[Roi | None] | None = None,
) -> Weights:
    """Render the weights of ``g`` in every view (or its ``rois`` rectangle; views whose
    rectangle is None are left out) and stack them, one view at a time."""
    progress = progress or Progress("lift")
    dev = g.means.device
    rois = rois if rois is not None else [(0, 0, v.width, v.height) for v in views]
    blocks, omegas, slices, kept, kept_rois, offset = [], [], [], [], [], 0
    for i, (view, roi) in enumerate(zip(views, rois)):
        progress.cancel.check()
        if roi is None:
            continue
        vm, k, _, _ = view_camera(view, dev)
        pw = pixel_weights(g, vm, k, view.width, view.height, min_weight=cfg.min_weight, roi=roi)
        x0, y0, x1, y1 = roi
        w, h = x1 - x0, y1 - y0
        order = torch.argsort(pw.pix, stable=True)
        blocks.append((pw.pix[order].int(), pw.gauss[order].int(), pw.w[order], w * h))
        del pw, order
        omega = _pixel_weights(view).reshape(view.height, view.width)[y0:y1, x0:x1]
        omegas.append(omega.reshape(-1).to(dev) / max(cfg.view_sets, 1))
        slices.append(slice(offset, offset + w * h))
        kept.append(view)
        kept_rois.append(roi)
        offset += w * h
        progress.update((i + 1) / (len(views) + 1), f"colour solve: weights {i + 1}/{len(views)}")
    a = Csr.from_blocks(blocks, len(g))
    del blocks
    at = a.transpose()
    progress.update(1.0, f"colour solve: {a.nnz / 1e6:.1f} M weights")
    omega = torch.cat(omegas) if omegas else torch.zeros(0, device=dev)
    return Weights(a, at, omega, None, kept, kept_rois, slices)


def solve_colours(
    normal,
    rhs: Tensor,
    init: Tensor,
    diag: Tensor,
    cfg: SolveConfig,
    progress: Progress | None = None,
    held: Tensor | None = None,
) -> Tensor:
    """Preconditioned conjugate gradients for ``(M + mu I) c = rhs + mu c0`` with ``M c =
    normal(c)`` symmetric positive semi-definite, ``mu = damping * mean(diag)``.

    The ``held`` entries [N] bool keep ``init``: CG runs on the other entries' equations
    with the held colours' contribution on the right-hand side (their residual is zeroed,
    so the search directions never touch them).

    rhs, init: Tensor  # [N, 3]; diag: Tensor  # [N] diagonal of M. Returns [N, 3] in [0, 1].
    """
    progress = progress or Progress("lift")
    if init.shape[0] == 0:
        return init.clone()
    mu = cfg.damping * float(diag.mean().clamp_min(1e-12))
    precond = 1.0 / (diag + mu)[:, None]
    keep = None if held is None else (~held.to(init.device))[:, None].to(init.dtype)
    b = rhs + mu * init
    x = init.clone()
    r = b - (normal(x) + mu * x)
    if keep is not None:
        r *= keep
    z = precond * r
    p = z.clone()
    rz = (r * z).sum(0)
    r0 = float(r.norm()) or 1.0
    for it in range(cfg.iters):
        progress.cancel.check()
        ap = normal(p) + mu * p
        alpha = rz / (p * ap).sum(0).clamp_min(1e-30)
        x += alpha * p
        r -= alpha * ap
        if keep is not None:
            r *= keep
        res = float(r.norm()) / r0
        progress.update((it + 1) / cfg.iters, f"colour solve: residual {res:.1e}")
        if res < cfg.tol:
            break
        z = precond * r
        rz_next = (r * z).sum(0)
        p = z + (rz_next / rz.clamp_min(1e-30)) * p
        rz = rz_next
    return x.clamp_(0.0, 1.0)
