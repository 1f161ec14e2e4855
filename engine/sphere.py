"""Sphere geometry: equirectangular mapping, perspective views, view sets and fusion.

Conventions (DESIGN.md section 2). An equirect image of width W and height H (W = 2H):

    u = (col + 0.5) / W,  v = (row + 0.5) / H
    lon = (u - 0.5) * 2 pi          (positive to the right)
    lat = (0.5 - v) * pi            (positive up)
    dir = (cos lat sin lon, sin lat, -cos lat cos lon)

so the image centre looks along -Z, u = 0.75 looks along +X and the seam is at lon = +-pi.

Sampling (:func:`sample_equirect`) is bilinear; columns wrap across the seam and rows
beyond a pole continue on the other side of the pole (the row is mirrored and the
longitude turned by 180 degrees), so nothing is ever clamped.

Fusion (:func:`fuse_views`) is the closed form of 4K4DGen eq. 3: the equirect image that
minimises the weighted squared distance to every back-projected view is the per-pixel
weighted average of the views, with weights that fall smoothly to 0 at each view's border.
It runs over row bands of the equirect grid, so memory stays bounded at 4096x2048 and beyond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .camera import View

# ----------------------------------------------------------------------------------------
# Equirect <-> direction


def lonlat_grid(height: int, width: int, rows: slice | None = None) -> tuple[Tensor, Tensor]:
    """Longitude and latitude (radians, float64) of pixel centres: two [h, W] tensors."""
    r = torch.arange(height, dtype=torch.float64)
    if rows is not None:
        r = r[rows]
    c = torch.arange(width, dtype=torch.float64)
    lat = (0.5 - (r + 0.5) / height) * math.pi
    lon = ((c + 0.5) / width - 0.5) * 2 * math.pi
    return lon[None, :].expand(len(r), width), lat[:, None].expand(len(r), width)


def lonlat_to_dir(lon: Tensor, lat: Tensor) -> Tensor:
    """[...] longitude, latitude -> [..., 3] unit directions."""
    cl = torch.cos(lat)
    return torch.stack([cl * torch.sin(lon), torch.sin(lat), -cl * torch.cos(lon)], dim=-1)


def dir_to_lonlat(d: Tensor) -> tuple[Tensor, Tensor]:
    """[..., 3] directions (any length > 0) -> longitude, latitude in radians."""
    x, y, z = d.unbind(-1)
    lon = torch.atan2(x, -z)
    lat = torch.atan2(y, torch.sqrt(x * x + z * z))
    return lon, lat


def equirect_dirs(height: int, width: int, rows: slice | None = None) -> Tensor:
    """[h, W, 3] float64 unit directions through the pixel centres (optionally a row band)."""
    lon, lat = lonlat_grid(height, width, rows)
    return lonlat_to_dir(lon, lat)


def dir_to_pixel(d: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """[..., 3] directions -> continuous (row, col) with pixel centres at integers."""
    lon, lat = dir_to_lonlat(d)
    col = (lon / (2 * math.pi) + 0.5) * width - 0.5
    row = (0.5 - lat / math.pi) * height - 0.5
    return row, col


def pixel_to_dir(row: Tensor, col: Tensor, height: int, width: int) -> Tensor:
    """Continuous (row, col) -> [..., 3] unit directions (inverse of :func:`dir_to_pixel`)."""
    lon = ((col + 0.5) / width - 0.5) * 2 * math.pi
    lat = (0.5 - (row + 0.5) / height) * math.pi
    return lonlat_to_dir(lon, lat)


def pixel_solid_angle(height: int, width: int) -> Tensor:
    """[H] solid angle of one pixel in each row (steradians); sums to 4 pi over the image."""
    edges = (0.5 - torch.arange(height + 1, dtype=torch.float64) / height) * math.pi
    band = torch.sin(edges[:-1]) - torch.sin(edges[1:])
    return band * (2 * math.pi / width)


# ----------------------------------------------------------------------------------------
# Sampling


class EquirectSampler:
    """Sampling of one equirect image at many points (build once, sample often).

    The image is padded once with wrapped columns on each side and rows continued beyond
    each pole (the rows next to the pole turned by half a revolution), after which sampling
    is a single ``grid_sample`` call: seam-wrapping and pole-correct, never clamped.
    ``mode`` is "bilinear" or "bicubic" (sharper; used for colour resampling).

    image: Tensor  # [B, C, H, W] float
    """

    PAD = 2

    def __init__(self, image: Tensor, mode: str = "bilinear") -> None:
        b, c, h, w = image.shape
        self.height, self.width, self.mode = h, w, mode
        k = min(self.PAD, h)
        top = torch.roll(image[:, :, :k].flip(2), w // 2, dims=-1)
        bottom = torch.roll(image[:, :, -k:].flip(2), w // 2, dims=-1)
        rows = torch.cat([top, image, bottom], dim=2)
        k = min(self.PAD, w)
        self.padded = torch.cat([rows[..., -k:], rows, rows[..., :k]], dim=3)
        self.pad = k

    def __call__(self, row: Tensor, col: Tensor) -> Tensor:
        """row, col: Tensor  # [...] continuous pixel coordinates (centres at integers);
        col may be anything, row in [-1, H]. Returns [B, C, ...]."""
        h, w, k = self.height, self.width, self.pad
        shape = row.shape
        col = torch.remainder(col.reshape(-1).to(torch.float64) + 0.5, w) - 0.5
        row = row.reshape(-1).to(torch.float64).clamp(-1.0, h)
        # padded pixel centres run 0 .. W + 2k - 1; align_corners=True maps them to [-1, 1]
        gx = (col + k) * (2.0 / (w + 2 * k - 1)) - 1
        gy = (row + k) * (2.0 / (h + 2 * k - 1)) - 1
        grid = torch.stack([gx, gy], dim=-1).to(self.padded.dtype)[None, None]
        b = self.padded.shape[0]
        out = torch.nn.functional.grid_sample(
            self.padded, grid.expand(b, -1, -1, -1), mode=self.mode, align_corners=True
        )
        return out[:, :, 0].reshape(b, self.padded.shape[1], *shape)

    def at_dirs(self, dirs: Tensor) -> Tensor:
        """dirs: Tensor  # [..., 3] **unit** directions -> [B, C, ...].

        The fast path of the flow animator: longitude and latitude map affinely to
        grid_sample's coordinates, and atan2 / asin already land inside the image, so no
        wrapping arithmetic is needed (computed in the image's dtype).
        """
        h, w, k = self.height, self.width, self.pad
        shape = dirs.shape[:-1]
        x, y, z = dirs.reshape(-1, 3).to(self.padded.dtype).T.contiguous()  # fast rows
        lon = torch.atan2(x, -z)
        lat = torch.asin(y.clamp_(-1.0, 1.0))
        # col = (lon / 2pi + 0.5) W - 0.5 ; gx = (col + k) * 2 / (W + 2k - 1) - 1
        sx = 2.0 / (w + 2 * k - 1)
        sy = 2.0 / (h + 2 * k - 1)
        gx = lon * (w / (2 * math.pi) * sx) + ((0.5 * w - 0.5 + k) * sx - 1)
        gy = lat * (-h / math.pi * sy) + ((0.5 * h - 0.5 + k) * sy - 1)
        grid = torch.stack([gx, gy], dim=-1)[None, None]
        b = self.padded.shape[0]
        out = torch.nn.functional.grid_sample(
            self.padded, grid.expand(b, -1, -1, -1), mode=self.mode, align_corners=True
        )
        return out[:, :, 0].reshape(b, self.padded.shape[1], *shape)


def sample_equirect(image: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Bilinear sample of an equirect image at continuous pixel coordinates.

    image: Tensor  # [B, C, H, W]
    row, col: Tensor  # [...] (pixel centres at integers; any range of col, row in
                      #        [-1, H]: beyond a pole continues on the far side)
    returns: Tensor  # [B, C, ...] in image's dtype (float types only)

    For many calls on the same image build an :class:`EquirectSampler` once.
    """
    return EquirectSampler(image)(row, col)


# ----------------------------------------------------------------------------------------
# numpy <-> torch helpers for images


def _to_bchw(image: np.ndarray) -> tuple[Tensor, np.dtype, bool]:
    """[H, W] or [H, W, C] numpy (uint8/uint16/float) -> float32 [1, C, H, W]."""
    squeeze = image.ndim == 2
    arr = image[..., None] if squeeze else image
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32).permute(2, 0, 1)[None]
    return t, image.dtype, squeeze


def _from_bchw(t: Tensor, dtype: np.dtype, squeeze: bool) -> np.ndarray:
    arr = t[0].permute(1, 2, 0).numpy()
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(arr), info.min, info.max)
    arr = arr.astype(dtype)
    return arr[..., 0] if squeeze else arr


# ----------------------------------------------------------------------------------------
# Perspective views


def view_sample_coords(view: View, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Equirect (row, col) sampled by each pixel of ``view``: two [h, w] float64 tensors."""
    rays = torch.from_numpy(view.pixel_rays())
    return dir_to_pixel(rays, height, width)


def perspective(
    image: np.ndarray | Tensor,
    yaw_deg: float,
    pitch_deg: float,
    fov_deg: float,
    out_hw: tuple[int, int],
    roll_deg: float = 0.0,
) -> np.ndarray | Tensor:
    """A pinhole view of an equirect image (bilinear, seam-wrapping, pole-correct).

    image: numpy [H, W] or [H, W, C] (uint8, uint16 or float; the output has the same dtype,
           integers rounded), or a torch Tensor [B, C, H, W] (e.g. latents; float output).
    yaw positive turns right, pitch positive looks up, roll positive tilts clockwise;
    ``fov_deg`` is the horizontal field of view. Returns [h, w(, C)] or [B, C, h, w].
    """
    view = View(yaw_deg, pitch_deg, fov_deg, out_hw[0], out_hw[1], roll_deg)
    return perspective_view(image, view)


def perspective_view(image: np.ndarray | Tensor, view: View) -> np.ndarray | Tensor:
    """:func:`perspective` for a :class:`View`."""
    if isinstance(image, Tensor):
        row, col = view_sample_coords(view, image.shape[-2], image.shape[-1])
        return sample_equirect(image, row.to(image.device), col.to(image.device))
    t, dtype, squeeze = _to_bchw(image)
    row, col = view_sample_coords(view, t.shape[-2], t.shape[-1])
    return _from_bchw(sample_equirect(t, row, col), dtype, squeeze)


# ----------------------------------------------------------------------------------------
# View sets


@dataclass(frozen=True)
class ViewSetConfig:
    """Gravity-aligned rings of views plus the two poles.

    ``rings`` lists (pitch_deg, count, yaw_offset_deg). The default (8 + 5 + 5 + 2 = 20
    views, 90 degree FOV) covers the whole sphere with overlap; see :func:`coverage`.
    """

    rings: tuple[tuple[float, int, float], ...] = ((0.0, 8, 0.0), (50.0, 5, 0.0), (-50.0, 5, 36.0))
    poles: bool = True
    fov_deg: float = 90.0
    size: int = 512


def make_views(cfg: ViewSetConfig = ViewSetConfig()) -> list[View]:
    views = []
    for pitch, count, offset in cfg.rings:
        for i in range(count):
            yaw = (offset + 360.0 * i / count + 180.0) % 360.0 - 180.0
            views.append(View(yaw, pitch, cfg.fov_deg, cfg.size, cfg.size))
    if cfg.poles:
        views.append(View(0.0, 90.0, cfg.fov_deg, cfg.size, cfg.size))
        views.append(View(0.0, -90.0, cfg.fov_deg, cfg.size, cfg.size))
    return views


def matched_view_size(pano_width: int, fov_deg: float) -> int:
    """View size whose central pixels match the equirect's angular resolution."""
    return max(8, round(2 * math.tan(math.radians(fov_deg) / 2) * pano_width / (2 * math.pi)))


# ----------------------------------------------------------------------------------------
# Projection of equirect directions into a view, and the feathered weights


def project_to_view(dirs: Tensor, view: View) -> tuple[Tensor, Tensor, Tensor]:
    """[..., 3] world directions -> view pixel coordinates (x, y) and an in-front mask.

    (x, y) are continuous with pixel centres at +0.5 (x right, y down), like OpenCV.
    """
    rot = torch.from_numpy(view.rotation()).to(dirs)
    cam = dirs @ rot  # world -> GL camera is R^T d, i.e. d @ R
    depth = -cam[..., 2]
    front = depth > 1e-6
    safe = torch.where(front, depth, torch.ones_like(depth))
    f = view.focal
    x = f * cam[..., 0] / safe + view.width / 2
    y = -f * cam[..., 1] / safe + view.height / 2
    return x, y, front


def feather_weight(x: Tensor, y: Tensor, width: int, height: int, feather: float) -> Tensor:
    """Separable smoothstep weight: 1 inside, falling to 0 at the view border.

    ``feather`` is the ramp width as a fraction of the view size (0 < feather <= 0.5).
    """

    def ramp(t: Tensor) -> Tensor:
        t = (t / feather).clamp(0.0, 1.0)
        return t * t * (3 - 2 * t)

    a = x / width
    b = y / height
    return ramp(torch.minimum(a, 1 - a)) * ramp(torch.minimum(b, 1 - b))


def _view_cone_deg(view: View) -> float:
    """Half-angle of the cone that contains the whole view (its corners)."""
    half_diag = math.hypot(view.width, view.height) / 2
    return math.degrees(math.atan(half_diag / view.focal))


def _band_may_see(view: View, lat_lo: float, lat_hi: float) -> bool:
    """Could a row band with latitudes [lat_lo, lat_hi] (degrees) overlap the view?"""
    fwd = view.forward()
    center_lat = math.degrees(math.asin(max(-1.0, min(1.0, fwd[1]))))
    cone = _view_cone_deg(view)
    return center_lat - cone <= lat_hi and center_lat + cone >= lat_lo


def row_bands(height: int, width: int, max_pixels: int) -> list[slice]:
    rows = max(1, max_pixels // max(width, 1))
    return [slice(r, min(r + rows, height)) for r in range(0, height, rows)]


def fuse_views(
    images: Tensor,
    views: list[View],
    height: int,
    width: int,
    *,
    feather: float = 0.15,
    band_pixels: int = 1 << 19,
    fill: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Fuse per-view images back onto the equirect grid (closed form of 4K4DGen eq. 3).

    images: Tensor  # [V, B, C, h, w] one image (or latent) batch per view
    views: V views (their height/width must match h, w)
    fill: Tensor | None  # [B, C, H, W] used where no view has weight (else 0)
    returns: (fused [B, C, H, W], weight [H, W])

    Runs over row bands of at most ``band_pixels`` equirect pixels and skips views that
    cannot see a band, so peak extra memory is O(B * C * band_pixels), independent of H, W.
    """
    nv, b, c, h, w = images.shape
    if nv != len(views):
        raise ValueError(f"{nv} view images for {len(views)} views")
    out = torch.zeros(b, c, height, width, dtype=images.dtype, device=images.device)
    weight = torch.zeros(height, width, dtype=images.dtype, device=images.device)
    for band in row_bands(height, width, band_pixels):
        lat_hi = 90.0 - 180.0 * band.start / height
        lat_lo = 90.0 - 180.0 * band.stop / height
        dirs = equirect_dirs(height, width, band).to(images.device)
        num = torch.zeros(b, c, *dirs.shape[:2], dtype=images.dtype, device=images.device)
        den = torch.zeros(dirs.shape[:2], dtype=images.dtype, device=images.device)
        for i, view in enumerate(views):
            if (view.height, view.width) != (h, w):
                raise ValueError("all views must share the image size of `images`")
            if not _band_may_see(view, lat_lo, lat_hi):
                continue
            x, y, front = project_to_view(dirs, view)
            wgt = feather_weight(x, y, w, h, feather) * front
            sel = wgt > 0
            if not bool(sel.any()):
                continue
            vals = _sample_planar(images[i], x[sel] - 0.5, y[sel] - 0.5)
            ws = wgt[sel].to(images.dtype)
            num[:, :, sel] += vals * ws
            den[sel] += ws
        covered = den > 0
        band_out = num / den.clamp_min(1e-12)
        if fill is not None:
            band_out = torch.where(covered, band_out, fill[:, :, band])
        out[:, :, band] = band_out
        weight[band] = den
    return out, weight


def _sample_planar(image: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Bilinear sample of planar images at continuous (x, y), borders clamped.

    image: Tensor  # [B, C, h, w];  x, y: Tensor  # [N] (pixel centres at integers)
    returns: Tensor  # [B, C, N]
    """
    b, c, h, w = image.shape
    x = x.clamp(0, w - 1).to(torch.float64)
    y = y.clamp(0, h - 1).to(torch.float64)
    x0 = torch.floor(x).long().clamp(max=w - 2) if w > 1 else torch.zeros_like(x).long()
    y0 = torch.floor(y).long().clamp(max=h - 2) if h > 1 else torch.zeros_like(y).long()
    fx = (x - x0).to(image.dtype)
    fy = (y - y0).to(image.dtype)
    x1 = (x0 + 1).clamp(max=w - 1)
    y1 = (y0 + 1).clamp(max=h - 1)
    flat = image.reshape(b, c, h * w)

    def tap(yy: Tensor, xx: Tensor) -> Tensor:
        return flat[:, :, yy * w + xx]

    top = tap(y0, x0) * (1 - fx) + tap(y0, x1) * fx
    bot = tap(y1, x0) * (1 - fx) + tap(y1, x1) * fx
    return top * (1 - fy) + bot * fy


@dataclass(frozen=True)
class Coverage:
    """Area fractions of the sphere seen by at least one / at least two views."""

    covered: float
    overlap: float
    min_weight: float

    def __str__(self) -> str:
        return (
            f"{100 * self.covered:.2f}% of the sphere covered, "
            f"{100 * self.overlap:.1f}% seen by 2+ views"
        )


def coverage(views: list[View], height: int = 256, feather: float = 0.15) -> Coverage:
    """Measure how much of the sphere a view set covers (area-weighted, at ``height`` rows)."""
    width = 2 * height
    dirs = equirect_dirs(height, width)
    total = torch.zeros(height, width, dtype=torch.float64)
    count = torch.zeros(height, width, dtype=torch.float64)
    for view in views:
        x, y, front = project_to_view(dirs, view)
        wgt = feather_weight(x, y, view.width, view.height, feather) * front
        total += wgt
        count += (wgt > 0).double()
    area = pixel_solid_angle(height, width)[:, None].expand(height, width)
    covered = float((area * (total > 0)).sum() / area.sum())
    overlap = float((area * (count >= 2)).sum() / area.sum())
    return Coverage(covered, overlap, float(total.min()))
