"""Differentiable 3D Gaussian splatting, pure torch, with the semantics of gsplat 1.5.

:func:`rasterize` follows ``gsplat.rasterization(..., rasterize_mode="classic")`` step by
step, so that CPU lifting and CUDA lifting optimise the same image formation model:

1. Projection (EWA). Camera-space mean ``t = R m + t0``; Gaussians with ``t_z < near`` or
   ``t_z > far`` are culled. ``cov3d = R_q S S^T R_q^T`` (normalised wxyz quaternion,
   ``S = diag(exp(log_scales))``). The Jacobian uses ``t_x/t_z`` and ``t_y/t_z`` clamped to
   the image bounds plus 30 % of the half field of view (``lim_x_pos = (W - cx)/fx +
   0.3 tan_fovx``, ``lim_x_neg = cx/fx + 0.3 tan_fovx``, ``tan_fovx = 0.5 W / fx``; for a
   centred principal point that is ``±1.3 tan_fovx``). ``cov2d = J W cov W^T J^T + 0.3 I``.
2. Culling and footprint: opacity ``o = sigmoid(logit)``; culled if ``o < 1/255`` or
   ``det(cov2d) <= 0``. gsplat 1.5 uses an opacity-aware, axis-aligned bounding box:
   ``extend = min(3.33, sqrt(2 ln(255 o)))``, ``radius_x = ceil(extend sqrt(cov2d_xx))``
   (same for y); culled if the box lies entirely off-screen. Because every pixel with
   ``alpha >= 1/255`` lies inside that box, the result does not depend on the tiling.
3. Colour: SH evaluated along ``normalize(m - camera_centre)``, then ``max(0, . + 0.5)``.
4. Compositing per pixel centre ``(x + 0.5, y + 0.5)``, front to back by camera ``t_z``:
   ``alpha_i = min(0.999, o_i exp(-0.5 d^T cov2d^-1 d))``; skipped if ``alpha_i < 1/255``;
   the pixel stops *before* the first Gaussian whose ``T (1 - alpha_i) <= 1e-4``.
   ``rgb = sum w_i c_i + (1 - alpha) bg`` with ``w_i = alpha_i T_i``, ``alpha = sum w_i``.
   Note gsplat 1.5 clamps alpha at 0.999 (the original 3DGS code at 0.99).
5. Depth (``with_depth``): gsplat's "ED" (``sum w_i t_z,i / alpha``), converted from planar
   depth to distance along the pixel's ray (DESIGN.md section 2); 0 where alpha is 0.

The compositor bins (tile, Gaussian) pairs, sorts them by (tile, depth) and composites
chunks of tiles in blocks of ``K_BLOCK`` Gaussians, carrying the transmittance between
blocks and dropping tiles whose pixels are all saturated. Its backward pass is written by
hand (a :class:`torch.autograd.Function`) and recomputes alphas instead of storing them,
so memory stays bounded by one block; gradients flow through the 2D projection to
``means``, ``quats``, ``log_scales``, ``opacities`` and ``sh`` by autograd.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..camera import View
from ..gaussians import Gaussians
from .sh import eval_sh

ALPHA_MIN = 1.0 / 255.0  # gsplat ALPHA_THRESHOLD
ALPHA_MAX = 0.999  # gsplat 1.5 clamp
T_MIN = 1e-4  # transmittance at which a pixel stops
EPS2D = 0.3  # low-pass filter added to cov2d
EXTEND_MAX = 3.33  # sigma multiple of the footprint box
CLIP_FOV = 0.3  # Jacobian clamp: image bounds + 30 % of tan(half fov)

# Compositor working set: one [tiles, K_BLOCK, tile*tile] block holds <= BLOCK_ELEMS values
# (a backward block keeps ~25 such tensors alive: ~50 MB in float32).
K_BLOCK = 32
BLOCK_ELEMS = 1 << 19
TILE_CHOICES = (4, 8, 16)  # torch backend tile sizes when none is given
PAIR_COST = 16  # fixed cost of one (tile, Gaussian) pair, in pixel evaluations


@dataclass
class Render:
    rgb: Tensor  # [H, W, 3] or [C, H, W, 3]
    alpha: Tensor  # [H, W] or [C, H, W]
    depth: Tensor | None  # [H, W] or [C, H, W], distance along the ray; None unless asked


@functools.lru_cache(maxsize=1)
def has_gsplat() -> bool:
    """True iff CUDA is available and ``import gsplat`` works (its kernels are not built)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def rasterize(
    g: Gaussians,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    sh_degree: int | None = None,
    with_depth: bool = False,
    backend: str = "auto",
    near: float = 0.01,
    far: float = 1e4,
    tile: int | None = None,
    roi: Roi | None = None,
) -> Render:
    """Render Gaussians from one camera or a batch of cameras.

    viewmat: Tensor  # [4, 4] or [C, 4, 4] world-to-camera, OpenCV axes (x right, y down, z fwd)
    K: Tensor  # [3, 3] or [C, 3, 3] intrinsics
    background: Tensor | None  # [3] (or [C, 3]); composited as rgb + (1 - alpha) bg
    backend: "auto" (gsplat iff has_gsplat() and the Gaussians are on CUDA), "torch", "gsplat"
    tile: binning tile size in pixels; None = 16 for gsplat, chosen per view (4, 8 or 16) for
        the torch backend. The image does not depend on it.
    roi: (x0, y0, x1, y1): render only that pixel rectangle of the image (exactly the same
        pixels as the whole render; the torch backend composites only the tiles it touches).
    """
    degree = g.sh_degree if sh_degree is None else sh_degree
    if not 0 <= degree <= g.sh_degree:
        raise ValueError(f"sh_degree {degree} not in 0..{g.sh_degree} (the Gaussians' degree)")
    dev, dt = g.means.device, g.means.dtype
    viewmat = torch.as_tensor(viewmat, dtype=dt, device=dev)
    K = torch.as_tensor(K, dtype=dt, device=dev)
    batched = viewmat.ndim == 3
    viewmats, Ks = viewmat.reshape(-1, 4, 4), K.reshape(-1, 3, 3)
    if viewmats.shape[0] != Ks.shape[0]:
        raise ValueError(f"{viewmats.shape[0]} view matrices but {Ks.shape[0]} intrinsics")
    n_cams = viewmats.shape[0]
    bgs = None
    if background is not None:
        bgs = torch.as_tensor(background, dtype=dt, device=dev).expand(n_cams, 3)

    if _use_gsplat(backend, g):
        out = _rasterize_gsplat(
            g, viewmats, Ks, width, height, bgs, degree, with_depth, near, far, tile
        )
        if roi is not None:
            x0, y0, x1, y1 = roi
            depth = None if out.depth is None else out.depth[:, y0:y1, x0:x1]
            out = Render(out.rgb[:, y0:y1, x0:x1], out.alpha[:, y0:y1, x0:x1], depth)
    else:
        renders = [
            _rasterize_torch(
                g,
                viewmats[i],
                Ks[i],
                width,
                height,
                None if bgs is None else bgs[i],
                degree,
                with_depth,
                near,
                far,
                tile,
                roi,
            )
            for i in range(n_cams)
        ]
        out = Render(
            rgb=torch.stack([r.rgb for r in renders]),
            alpha=torch.stack([r.alpha for r in renders]),
            depth=torch.stack([r.depth for r in renders]) if with_depth else None,  # type: ignore[misc]
        )
    if batched:
        return out
    return Render(out.rgb[0], out.alpha[0], None if out.depth is None else out.depth[0])


Roi = tuple[int, int, int, int]  # (x0, y0, x1, y1): a pixel rectangle of a view


def view_camera(view: View, device=None) -> tuple[Tensor, Tensor, int, int]:
    """(viewmat [4, 4] OpenCV world-to-camera, K [3, 3], width, height) of ``view``."""
    viewmat = torch.tensor(view.world_to_camera_cv(), dtype=torch.float32, device=device)
    K = torch.tensor(view.intrinsics(), dtype=torch.float32, device=device)
    return viewmat, K, view.width, view.height


def render_view(g: Gaussians, view: View, roi: Roi | None = None, **kw) -> Render:
    """Render one :class:`engine.camera.View`, or the rectangle ``roi`` of it (keyword
    arguments as for :func:`rasterize`)."""
    viewmat, K, width, height = view_camera(view, g.means.device)
    return rasterize(g, viewmat, K, width, height, roi=roi, **kw)


def supersampling(view: View, native_width: int | None, max_factor: int = 3) -> int:
    """Samples per pixel side for ``view`` of a scene lifted from a ``native_width``-pixel
    panorama: 1 when the view's pixels are no larger than the input's (at the view's
    centre), else the ceiling of how many input pixels one view pixel spans, at most
    ``max_factor``. None (unknown source): 1."""
    if not native_width:
        return 1
    span = native_width / (2.0 * math.pi * view.focal)  # input pixels per view pixel
    return 1 if span <= 1.25 else min(max_factor, math.ceil(span - 0.05))


def render_antialiased(
    g: Gaussians, view: View, native_width: int | None, max_factor: int = 3, **kw
) -> Render:
    """:func:`render_view`, supersampled ``s`` x ``s`` and box-averaged when the view is
    coarser than the scene (:func:`supersampling`): a splat smaller than a pixel covers a
    whole pixel or none, so a coarse view of a scene fitted at the input's resolution
    aliases; averaging the samples gives each pixel the mean of what it covers, as a
    ray tracer's supersampled reference does. Views at or above the input's resolution
    render exactly as :func:`render_view`."""
    if kw.get("roi") is not None:
        raise TypeError("render_antialiased renders whole views (no roi)")
    s = supersampling(view, native_width, max_factor)
    if s == 1:
        return render_view(g, view, **kw)
    big = dataclasses.replace(view, width=view.width * s, height=view.height * s)
    r = render_view(g, big, **kw)
    h, w = view.height, view.width

    def pool(x: Tensor) -> Tensor:
        return x.reshape(h, s, w, s, *x.shape[2:]).mean((1, 3))

    alpha = pool(r.alpha)
    depth = None  # the samples' depths weighted by their coverage, as each sample's is
    if r.depth is not None:
        depth = pool(r.depth * r.alpha) / alpha.clamp_min(1e-10)
    return Render(pool(r.rgb), alpha, depth)


def _use_gsplat(backend: str, g: Gaussians) -> bool:
    if backend == "torch":
        return False
    if backend == "gsplat":
        if not has_gsplat():
            raise RuntimeError("backend='gsplat' needs CUDA and the gsplat package")
        if not g.means.is_cuda:
            raise RuntimeError("backend='gsplat' needs the Gaussians on a CUDA device")
        return True
    if backend == "auto":
        return g.means.is_cuda and has_gsplat()
    raise ValueError(f"unknown backend {backend!r} (expected 'auto', 'torch' or 'gsplat')")


# ----------------------------------------------------------------------------- projection


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """quats: Tensor  # [N, 4] wxyz, any norm -> [N, 3, 3] rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*quats.shape[:-1], 3, 3)


def project(
    means: Tensor,
    quats: Tensor,
    log_scales: Tensor,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """EWA projection as gsplat's ``persp_proj`` (no culling here).

    means: Tensor  # [N, 3] world; quats [N, 4] wxyz; log_scales [N, 3]
    viewmat: Tensor  # [4, 4] OpenCV world-to-camera; K [3, 3]
    returns: means2d [N, 2] pixels, cov2d [N, 3] (xx, xy, yy) incl. the 0.3 blur, depth [N] (t_z)
    """
    R, t0 = viewmat[:3, :3], viewmat[:3, 3]
    mc = means @ R.T + t0
    rs = (R @ quat_to_rotmat(quats)) * torch.exp(log_scales).unsqueeze(-2)  # [N, 3, 3] = R Rq S
    cov_c = rs @ rs.transpose(-1, -2)
    x, y, z = mc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    rz = 1.0 / z
    tx = z * torch.clamp(
        x * rz, min=-(cx / fx + CLIP_FOV * tan_fovx), max=(width - cx) / fx + CLIP_FOV * tan_fovx
    )
    ty = z * torch.clamp(
        y * rz, min=-(cy / fy + CLIP_FOV * tan_fovy), max=(height - cy) / fy + CLIP_FOV * tan_fovy
    )
    zero = torch.zeros_like(z)
    J = torch.stack(
        [fx * rz, zero, -fx * tx * rz * rz, zero, fy * rz, -fy * ty * rz * rz], dim=-1
    ).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    cov2d = torch.stack([cov2d[:, 0, 0] + EPS2D, cov2d[:, 0, 1], cov2d[:, 1, 1] + EPS2D], dim=-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)
    return means2d, cov2d, z


def conic(cov2d: Tensor) -> Tensor:
    """cov2d: Tensor  # [N, 3] (xx, xy, yy) -> [N, 3] its inverse (xx, xy, yy), gsplat's conics."""
    det = cov2d[:, 0] * cov2d[:, 2] - cov2d[:, 1] ** 2
    return torch.stack([cov2d[:, 2], -cov2d[:, 1], cov2d[:, 0]], dim=-1) / det.unsqueeze(-1)


def footprint_radii(cov2d: Tensor, opacities: Tensor) -> Tensor:
    """gsplat 1.5's opacity-aware box half-sizes (pixels, whole numbers; NaN/0 = invalid).

    cov2d: Tensor  # [N, 3]; opacities [N] in (0, 1) -> [N, 2]
    """
    extend = torch.sqrt(2.0 * torch.log(opacities / ALPHA_MIN)).clamp(max=EXTEND_MAX)
    return torch.ceil(extend.unsqueeze(-1) * torch.sqrt(cov2d[:, [0, 2]]))


def _candidates(
    g: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int, near: float, far: float
) -> Tensor:
    """Indices [M] of the Gaussians that may be in view: their centre within the depth range
    and within a bound of their footprint of the image, the bound taken from the largest
    scale (every footprint the full test of :func:`_visible` would keep passes; the rest
    need no projection)."""
    R, t0 = viewmat[:3, :3], viewmat[:3, 3]
    x, y, z = (g.means @ R.T + t0).unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    keep = (z >= near) & (z <= far)
    rz = 1.0 / z.clamp(min=near)
    s_max = torch.exp(g.log_scales.max(-1).values)
    # |J row| <= f / z * sqrt(1 + T^2), T the largest clamped tangent of project()
    tx = max(float(cx), width - float(cx)) / float(fx) * (1 + CLIP_FOV)
    ty = max(float(cy), height - float(cy)) / float(fy) * (1 + CLIP_FOV)
    pad = EXTEND_MAX * EPS2D**0.5 + 2.0  # the low-pass, the ceil and float slack
    rx = EXTEND_MAX * fx * rz * s_max * (1 + tx * tx) ** 0.5 + pad
    ry = EXTEND_MAX * fy * rz * s_max * (1 + ty * ty) ** 0.5 + pad
    u, v = fx * x * rz + cx, fy * y * rz + cy
    keep &= (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
    return torch.nonzero(keep).squeeze(-1)


def _visible(
    g: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int, near: float, far: float
) -> Tensor:
    """Indices of the Gaussians gsplat keeps for this camera, sorted by camera depth."""
    with torch.no_grad():
        cand = _candidates(g, viewmat, K, width, height, near, far)
        means, quats, log_scales = g.means[cand], g.quats[cand], g.log_scales[cand]
        means2d, cov2d, z = project(means, quats, log_scales, viewmat, K, width, height)
        opac = torch.sigmoid(g.opacities[cand])
        det = cov2d[:, 0] * cov2d[:, 2] - cov2d[:, 1] ** 2
        radii = footprint_radii(cov2d, opac)
        lo, hi = means2d - radii, means2d + radii
        keep = (z >= near) & (z <= far) & (det > 0) & (opac >= ALPHA_MIN)
        keep &= (radii > 0).all(-1)
        keep &= (hi[:, 0] > 0) & (lo[:, 0] < width) & (hi[:, 1] > 0) & (lo[:, 1] < height)
        idx = torch.nonzero(keep).squeeze(-1)
        return cand[idx[torch.argsort(z[idx], stable=True)]]


# -------------------------------------------------------------------------- torch backend


def _rasterize_torch(
    g: Gaussians,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    background: Tensor | None,
    degree: int,
    with_depth: bool,
    near: float,
    far: float,
    tile: int | None,
    roi: Roi | None = None,
) -> Render:
    idx = _visible(g, viewmat, K, width, height, near, far)
    means = g.means[idx]
    means2d, cov2d, z = project(means, g.quats[idx], g.log_scales[idx], viewmat, K, width, height)
    opac = torch.sigmoid(g.opacities[idx])
    conics = conic(cov2d)
    campos = -viewmat[:3, :3].T @ viewmat[:3, 3]
    colors = torch.clamp_min(eval_sh(degree, g.sh[idx], means - campos) + 0.5, 0.0)
    feats = torch.cat([colors, z.unsqueeze(-1)], dim=-1) if with_depth else colors

    radii = footprint_radii(cov2d.detach(), opac.detach())
    tile = tile or _pick_tile(means2d.detach(), radii, width, height)
    plan = _make_plan(means2d.detach(), radii, width, height, tile, roi)
    acc, alpha = _Composite.apply(means2d, conics, opac, feats, plan)
    acc, alpha = plan.to_image(acc.transpose(1, 2)), plan.to_image(alpha)  # [H, W, C], [H, W]
    rays = _ray_factor(K, width, height) if with_depth else None
    if roi is not None:
        x0, y0, x1, y1 = roi
        acc, alpha = acc[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
        rays = None if rays is None else rays[y0:y1, x0:x1]

    rgb = acc[..., :3]
    if background is not None:
        rgb = rgb + (1.0 - alpha).unsqueeze(-1) * background
    depth = None
    if rays is not None:
        depth = acc[..., 3] / alpha.clamp_min(1e-10) * rays
    return Render(rgb=rgb, alpha=alpha, depth=depth)


def _ray_factor(K: Tensor, width: int, height: int) -> Tensor:
    """[H, W] ratio of ray distance to camera z through each pixel centre."""
    xs = (torch.arange(width, dtype=K.dtype, device=K.device) + 0.5 - K[0, 2]) / K[0, 0]
    ys = (torch.arange(height, dtype=K.dtype, device=K.device) + 0.5 - K[1, 2]) / K[1, 1]
    return torch.sqrt(1.0 + ys[:, None] ** 2 + xs[None, :] ** 2)


@dataclass
class _Plan:
    """Which Gaussians touch which tiles, in compositing order, and the work schedule."""

    tile: int
    tiles_x: int
    tiles_y: int
    width: int
    height: int
    gauss_ids: Tensor  # [M] int64 into the depth-sorted Gaussians, grouped by tile
    tile_start: Tensor  # [n_tiles] int64 offset of each tile's run in gauss_ids
    tile_count: Tensor  # [n_tiles] int64
    chunks: list[tuple[Tensor, int]]  # (tile ids, K block size); tiles of similar counts

    @property
    def n_tiles(self) -> int:
        return self.tiles_x * self.tiles_y

    def pixels(self, tiles: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """Pixel centres [T, P] (x, y) of the given tiles, and 1 / 0 for in / out of the image
        (the initial transmittance: pixels outside the image count as finished)."""
        ts = self.tile
        local = torch.arange(ts, device=tiles.device)
        ty, tx = tiles // self.tiles_x, tiles % self.tiles_x
        ix = (tx[:, None, None] * ts + local[None, None, :]).expand(-1, ts, ts).reshape(-1, ts * ts)
        iy = (ty[:, None, None] * ts + local[None, :, None]).expand(-1, ts, ts).reshape(-1, ts * ts)
        inside = (ix < self.width) & (iy < self.height)
        return ix.to(dtype) + 0.5, iy.to(dtype) + 0.5, inside.to(dtype)

    def to_image(self, x: Tensor) -> Tensor:
        """[n_tiles, P, ...] -> [H, W, ...]."""
        ts, rest = self.tile, x.shape[2:]
        x = x.reshape(self.tiles_y, self.tiles_x, ts, ts, *rest).transpose(1, 2)
        return x.reshape(self.tiles_y * ts, self.tiles_x * ts, *rest)[: self.height, : self.width]


def _tile_ranges(means2d: Tensor, radii: Tensor, width: int, height: int, tile: int):
    """Per-Gaussian tile rectangles [lo, hi) as in gsplat's ``isect_tiles``: [V, 2] each."""
    lim = torch.tensor([math.ceil(width / tile), math.ceil(height / tile)], device=means2d.device)
    lo = torch.floor(means2d / tile - radii / tile).long()
    hi = torch.ceil(means2d / tile + radii / tile).long()
    return torch.minimum(lo.clamp_min(0), lim), torch.minimum(hi.clamp_min(0), lim)


def _pick_tile(means2d: Tensor, radii: Tensor, width: int, height: int) -> int:
    """Tile size for the torch compositor (the image does not depend on it).

    Small tiles waste fewer pixel evaluations on small footprints; large Gaussians make
    many (tile, Gaussian) pairs, each with a fixed cost of about PAIR_COST pixels.
    """
    best, best_cost = TILE_CHOICES[0], math.inf
    for tile in TILE_CHOICES:
        lo, hi = _tile_ranges(means2d, radii, width, height, tile)
        pairs = ((hi - lo).prod(-1)).sum().item()
        cost = pairs * (tile * tile + PAIR_COST)
        if cost < best_cost:
            best, best_cost = tile, cost
    return best


def _make_plan(
    means2d: Tensor, radii: Tensor, width: int, height: int, tile: int, roi: Roi | None = None
) -> _Plan:
    """Bin depth-sorted Gaussians into tiles (gsplat's ``isect_tiles``), sort by (tile, depth).

    means2d: Tensor  # [V, 2] (detached), radii [V, 2] box half-sizes
    roi: only tiles touching this pixel rectangle are scheduled (the others stay empty).
    """
    dev = means2d.device
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    n_tiles = tiles_x * tiles_y
    lo, hi = _tile_ranges(means2d, radii, width, height, tile)
    span = hi - lo  # [V, 2]
    counts = span[:, 0] * span[:, 1]
    pair_g = torch.repeat_interleave(torch.arange(len(counts), device=dev), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(pair_g), device=dev) - first[pair_g]
    wx = span[pair_g, 0]
    tile_id = (lo[pair_g, 1] + local // wx) * tiles_x + lo[pair_g, 0] + local % wx
    order = torch.argsort(tile_id, stable=True)  # Gaussians are already in depth order
    tile_count = torch.bincount(tile_id, minlength=n_tiles)
    tile_start = torch.cumsum(tile_count, 0) - tile_count

    p = tile * tile
    work = tile_count
    if roi is not None:
        x0, y0, x1, y1 = roi
        tx = torch.arange(n_tiles, device=dev) % tiles_x
        ty = torch.arange(n_tiles, device=dev) // tiles_x
        inside = (tx >= x0 // tile) & (tx * tile < x1) & (ty >= y0 // tile) & (ty * tile < y1)
        work = torch.where(inside, tile_count, 0)
    by_count = torch.argsort(work, descending=True, stable=True)
    by_count = by_count[work[by_count] > 0]
    per_chunk = max(1, BLOCK_ELEMS // (K_BLOCK * p))
    chunks = [
        (tiles, min(K_BLOCK, int(tile_count[tiles[0]])))
        for tiles in torch.split(by_count, per_chunk)
        if len(tiles)
    ]
    return _Plan(
        tile, tiles_x, tiles_y, width, height, pair_g[order], tile_start, tile_count, chunks
    )


def _pack(means2d: Tensor, conics: Tensor, opac: Tensor, feats: Tensor) -> Tensor:
    """[V + 1, 6 + C] rows (mx, my, -a/2, -b, -c/2, opacity, feats...) for one gather per block.

    The last row is an inert Gaussian (opacity 0) that pads short tiles in a block.
    """
    rows = torch.cat(
        [
            means2d,
            conics * torch.tensor([-0.5, -1.0, -0.5], dtype=conics.dtype, device=conics.device),
            opac.unsqueeze(-1),
            feats,
        ],
        dim=-1,
    )
    return torch.cat([rows.detach(), rows.new_zeros(1, rows.shape[1])])


def _block_alpha(q: Tensor, px: Tensor, py: Tensor) -> tuple[Tensor, ...]:
    """Alphas of one block: packed Gaussians ``q`` [T, Kb, D] at pixel centres [T, P].

    returns dx, dy (mean - pixel), gauss = exp(-sigma), raw = opacity * gauss, the
    threshold mask (raw >= 1/255, as float) and alpha = min(raw, 0.999) * mask; all
    [T, Kb, P]. (Boolean tensors are avoided: they are several times slower on the CPU.)
    """
    dx = q[..., 0:1] - px.unsqueeze(1)
    dy = q[..., 1:2] - py.unsqueeze(1)
    gauss = torch.addcmul(q[..., 3:4] * dy, q[..., 2:3], dx).mul_(dx)  # -b dx dy - a/2 dx^2
    gauss.addcmul_(dy * dy, q[..., 4:5]).exp_()  # exp(-sigma)
    raw = gauss * q[..., 5:6]
    keep = torch.ge(raw, ALPHA_MIN, out=torch.empty_like(raw))
    alpha = raw.clamp_max(ALPHA_MAX).mul_(keep)
    return dx, dy, gauss, raw, keep, alpha


def _block_weights(alpha: Tensor, carry: Tensor) -> tuple[Tensor, ...]:
    """1 - alpha, transmittance after (incl) / before (excl) each Gaussian, live mask, weights.

    alpha: Tensor  # [T, Kb, P]; carry [T, P] = product of (1 - alpha) before this block.
    A pixel stops before the first Gaussian whose incl <= T_MIN (incl keeps falling after).
    """
    one_minus = torch.rsub(alpha, 1.0)
    incl = torch.cumprod(one_minus, dim=1).mul_(carry.unsqueeze(1))
    excl = torch.cat([carry.unsqueeze(1), incl[:, :-1]], dim=1)
    live = torch.gt(incl, T_MIN, out=torch.empty_like(incl))
    w = (alpha * excl).mul_(live)
    return one_minus, incl, excl, live, w


def _forward_blocks(plan: _Plan, packed: Tensor, n: int, dt: torch.dtype):
    """Front-to-back compositing of every chunk of tiles, one block of Gaussians at a time.

    Yields ``(chunk, tiles, sub, gid, w)`` per block: the chunk index, the chunk's tile ids,
    the positions ``sub`` (into ``tiles``) of the tiles still live in this block, their
    Gaussian ids ``gid`` [T, Kb] (``n`` = padding) and compositing weights ``w`` [T, Kb, P].
    The caller accumulates what it needs; the loop carries the transmittance.
    """
    for chunk, (tiles, kb) in enumerate(plan.chunks):
        px, py, trans = plan.pixels(tiles, dt)
        starts, counts = plan.tile_start[tiles], plan.tile_count[tiles]
        sub, k0 = torch.arange(len(tiles), device=tiles.device), 0
        while len(sub):
            gid = _block_ids(plan, starts[sub], counts[sub], k0, kb, n)
            alpha = _block_alpha(packed[gid], px[sub], py[sub])[-1]
            _, incl, _, _, w = _block_weights(alpha, trans[sub])
            yield chunk, tiles, sub, gid, w
            trans[sub] = incl[:, -1]
            k0 += kb
            sub = sub[(counts[sub] > k0) & (trans[sub] > T_MIN).any(-1)]


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of binned Gaussians; returns per-tile features and alpha.

    Inputs (V depth-sorted Gaussians): means2d [V, 2], conics [V, 3] (inverse cov2d as
    xx, xy, yy), opacities [V], feats [V, C]. Outputs: acc [n_tiles, C, P] = sum w_i f_i,
    alpha [n_tiles, P] = sum w_i.
    """

    @staticmethod
    def forward(ctx, means2d, conics, opac, feats, plan: _Plan):  # type: ignore[override]
        dt, dev = means2d.dtype, means2d.device
        packed = _pack(means2d, conics, opac, feats)
        n, n_ch, p = len(means2d), feats.shape[1], plan.tile * plan.tile
        out = torch.zeros(plan.n_tiles, n_ch, p, dtype=dt, device=dev)
        out_a = torch.zeros(plan.n_tiles, p, dtype=dt, device=dev)
        schedule: list[list[tuple[int, Tensor]]] = [[] for _ in plan.chunks]
        for chunk, tiles, sub, gid, w in _forward_blocks(plan, packed, n, dt):
            t_sub = tiles[sub]
            out[t_sub] += torch.bmm(packed[gid][..., 6:].transpose(1, 2), w)
            out_a[t_sub] += w.sum(1)
            k0 = len(schedule[chunk]) * plan.chunks[chunk][1]
            schedule[chunk].append((k0, sub))
        ctx.plan, ctx.schedule = plan, schedule
        ctx.save_for_backward(means2d, conics, opac, feats, out, out_a)
        return out, out_a

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_alpha):  # type: ignore[override]
        means2d, conics, opac, feats, out, out_a = ctx.saved_tensors
        plan: _Plan = ctx.plan
        n, dt = len(means2d), means2d.dtype
        packed = _pack(means2d, conics, opac, feats)
        grads = torch.zeros_like(packed)  # d loss / d packed rows
        g_out, g_alpha = g_out.contiguous(), g_alpha.contiguous()
        # d loss / d w_i at a pixel is v_i = g_out . f_i + g_alpha, and sum_i v_i w_i over
        # the Gaussians the pixel accepted is known from the forward outputs.
        v_total = (g_out * out).sum(1) + g_alpha * out_a  # [n_tiles, P]
        for (tiles, kb), steps in zip(plan.chunks, ctx.schedule):
            px, py, trans = plan.pixels(tiles, dt)
            v_acc = torch.zeros_like(trans)
            starts, counts = plan.tile_start[tiles], plan.tile_count[tiles]
            for k0, sub in steps:
                gid = _block_ids(plan, starts[sub], counts[sub], k0, kb, n)
                q, t_sub = packed[gid], tiles[sub]
                dx, dy, gauss, raw, keep, alpha = _block_alpha(q, px[sub], py[sub])
                one_minus, incl, excl, live, w = _block_weights(alpha, trans[sub])
                trans[sub] = incl[:, -1]
                g_o = g_out[t_sub]  # [T, C, P]
                g_feat = torch.bmm(g_o, w.transpose(1, 2)).transpose(1, 2)  # [T, Kb, C]
                v = torch.bmm(q[..., 6:], g_o).add_(g_alpha[t_sub].unsqueeze(1))
                v_incl = torch.cumsum(v * w, dim=1).add_(v_acc[sub].unsqueeze(1))
                v_acc[sub] = v_incl[:, -1]
                # d/d alpha_i = v_i T_i - (what alpha_i hides behind it) / (1 - alpha_i)
                g = v.mul_(excl).addcdiv_(v_incl.sub_(v_total[t_sub].unsqueeze(1)), one_minus)
                mask = live.mul_(keep).mul_(torch.le(raw, ALPHA_MAX, out=keep))
                g.mul_(mask)  # d loss / d raw: accepted, above threshold, not clamped
                g_opac = torch.linalg.vecdot(g, gauss)
                g.mul_(raw)  # d loss / d(-sigma)
                gx, gy = g * dx, g * dy
                s_x, s_y = gx.sum(-1), gy.sum(-1)
                s_xx, s_xy = torch.linalg.vecdot(gx, dx), torch.linalg.vecdot(gx, dy)
                s_yy = torch.linalg.vecdot(gy, dy)
                na, nb, nc = q[..., 2], q[..., 3], q[..., 4]
                rows = [2 * na * s_x + nb * s_y, nb * s_x + 2 * nc * s_y, s_xx, s_xy, s_yy]
                g_rows = torch.cat([torch.stack(rows + [g_opac], -1), g_feat], -1)
                grads.index_add_(0, gid.flatten(), g_rows.flatten(0, 1))
        grads = grads[:n]
        g_conics = grads[:, 2:5] * torch.tensor([-0.5, -1.0, -0.5], dtype=dt, device=grads.device)
        return grads[:, :2], g_conics, grads[:, 5], grads[:, 6:], None


@dataclass
class PixelWeights:
    """The compositing weights of one render as a sparse matrix: pixel ``pix[k]`` receives
    ``w[k]`` times the colour of Gaussian ``gauss[k]`` (weights below the threshold are
    dropped). Once geometry and opacity are fixed the render is linear in the colours:
    ``rgb[pix] = sum_k w[k] colour[gauss[k]]`` (black background)."""

    pix: Tensor  # [M] int64 flat pixel index (row * width + col)
    gauss: Tensor  # [M] int64 index into the rendered Gaussian set
    w: Tensor  # [M] float32
    alpha: Tensor  # [H, W] accumulated opacity of the render (all weights, none dropped)


@torch.no_grad()
def pixel_weights(
    g: Gaussians,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    *,
    min_weight: float = 1e-3,
    near: float = 0.01,
    far: float = 1e4,
    roi: Roi | None = None,
) -> PixelWeights:
    """The weights ``w_i = alpha_i T_i`` of every (pixel, Gaussian) pair of one render.

    Same image formation as :func:`rasterize` (torch backend, any device): a render of
    colours ``c`` equals ``sum w c`` per pixel up to the dropped weights (< ``min_weight``).
    viewmat: Tensor  # [4, 4] OpenCV world-to-camera; K [3, 3]
    roi: only that pixel rectangle; ``pix`` and ``alpha`` are then the rectangle's own.
    """
    dev, dt = g.means.device, g.means.dtype
    viewmat, K = viewmat.to(dev, dt), K.to(dev, dt)
    idx = _visible(g, viewmat, K, width, height, near, far)
    means2d, cov2d, _ = project(
        g.means[idx], g.quats[idx], g.log_scales[idx], viewmat, K, width, height
    )
    opac = torch.sigmoid(g.opacities[idx])
    conics = conic(cov2d)
    radii = footprint_radii(cov2d, opac)
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
    tile = _pick_tile(means2d, radii, width, height)
    plan = _make_plan(means2d, radii, width, height, tile, roi)
    n = len(idx)
    packed = _pack(means2d, conics, opac, means2d.new_zeros(n, 0))
    alpha = torch.zeros(plan.n_tiles, plan.tile * plan.tile, dtype=dt, device=dev)
    pix, gauss, ws = [], [], []
    for _, tiles, sub, gid, w in _forward_blocks(plan, packed, n, dt):
        t_sub = tiles[sub]
        alpha[t_sub] += w.sum(1)
        ix, iy, _ = plan.pixels(t_sub, dt)
        ix, iy = ix.long() - x0, iy.long() - y0
        inside = (ix >= 0) & (ix < x1 - x0) & (iy >= 0) & (iy < y1 - y0)
        flat = (iy * (x1 - x0) + ix).unsqueeze(1).expand_as(w)
        keep = (w > 0) & (w >= min_weight) & inside.unsqueeze(1)
        pix.append(flat[keep])
        gauss.append(gid.unsqueeze(-1).expand_as(w)[keep])
        ws.append(w[keep])
    cat = torch.cat if pix else (lambda _: torch.zeros(0, dtype=torch.long, device=dev))
    gauss_ids = cat(gauss)
    return PixelWeights(
        pix=cat(pix),
        gauss=idx[gauss_ids] if len(gauss_ids) else gauss_ids,
        w=torch.cat(ws).float() if ws else torch.zeros(0, device=dev),
        alpha=plan.to_image(alpha)[y0:y1, x0:x1],
    )


def _block_ids(plan: _Plan, starts: Tensor, counts: Tensor, k0: int, kb: int, pad: int) -> Tensor:
    """[T, kb] Gaussian ids at positions k0..k0+kb of each tile's list (``pad`` past the end)."""
    k = torch.arange(k0, k0 + kb, device=starts.device)
    pos = starts.unsqueeze(1) + k
    valid = k < counts.unsqueeze(1)
    ids = plan.gauss_ids[pos.clamp(max=max(len(plan.gauss_ids) - 1, 0))]
    return torch.where(valid, ids, pad)


# ------------------------------------------------------------------------- gsplat backend


def _rasterize_gsplat(
    g: Gaussians,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None,
    degree: int,
    with_depth: bool,
    near: float,
    far: float,
    tile: int | None,
) -> Render:
    from gsplat import rasterization

    colors, alphas, _ = rasterization(
        means=g.means,
        quats=g.quats,
        scales=torch.exp(g.log_scales),
        opacities=torch.sigmoid(g.opacities),
        colors=g.sh,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        near_plane=near,
        far_plane=far,
        eps2d=EPS2D,
        sh_degree=degree,
        backgrounds=backgrounds,
        render_mode="RGB+ED" if with_depth else "RGB",
        tile_size=tile or 16,
        rasterize_mode="classic",
    )
    depth = None
    if with_depth:
        rays = torch.stack([_ray_factor(k, width, height) for k in Ks])
        depth = colors[..., 3] * rays
    return Render(rgb=colors[..., :3], alpha=alphas[..., 0], depth=depth)
