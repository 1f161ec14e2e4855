"""Quality of a lifted scene, measured where a viewer at the capture point looks.

- ``psnr_native``: the scene rendered from the centre in views at the input's own angular
  resolution (60-degree views of W / 6 pixels: on average one equirect pixel per view
  pixel, as the issue that set the target measured), in directions spread over the whole
  sphere that no training view shares, against the input panorama's own perspective crops;
  over static pixels only (pixels whose crop sample touches an animated pixel are left out).
  One PSNR over all those pixels.
- ``psnr_headset``: the same from the centre at a VR headset's angular resolution (1832 px
  per eye over about 100 degrees, 18.3 px/deg: 40-degree views of 733 px), where a 4096-wide
  panorama is seen magnified 1.6x and a 2048-wide one 3.2x, against the input's (bilinear)
  crops over static pixels: what a viewer in a headset or a full-screen window sees; splat
  structure between input pixels (gaps, blobs) costs here, not at the native resolution.
  Inputs under 1832 px wide are magnified at most ``MAX_ZOOM`` times (tiny test inputs).
- ``psnr_train``: the same at the first cube map of training views, frame 0, all pixels.
- ``static_flicker``: mean |render(t+1) - render(t)| (0..255) over the static pixels of the
  native views that also see animated regions, for the first frames.

Each figure's resolution is reported next to it (``*_resolution``). A static-pixel figure
is None (null in report.json) when its views see no static pixel: everything animated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..camera import View
from ..gaussians import Gaussians
from ..progress import Progress
from ..sphere import perspective_view
from .init import to_bchw
from .raster import render_view

NATIVE_FOV = 60.0
NATIVE_VIEWS = 14  # directions on a Fibonacci sphere
HEADSET_PX_PER_DEG = 1832 / 100.0  # the VR target's eye buffer over its horizontal FOV
HEADSET_FOV = 40.0
HEADSET_VIEWS = 8
MAX_ZOOM = 4.0


def native_views(width: int, n: int = NATIVE_VIEWS, fov_deg: float = NATIVE_FOV) -> list[View]:
    """``n`` views spread evenly over the sphere (a Fibonacci lattice, turned off the
    cube-face axes), each at the angular resolution of an equirect ``width`` pixels wide
    (``fov_deg`` / size = 360 / width degrees per pixel)."""
    size = max(8, round(width * fov_deg / 360.0))
    views = []
    golden = math.pi * (3.0 - math.sqrt(5.0))
    for i in range(n):
        y = 1.0 - 2.0 * (i + 0.5) / n
        yaw = math.degrees(golden * i) + 11.0
        pitch = math.degrees(math.asin(y))
        views.append(View((yaw + 180.0) % 360.0 - 180.0, pitch, fov_deg, size, size))
    return views


def headset_views(width: int, n: int = HEADSET_VIEWS, fov_deg: float = HEADSET_FOV) -> list[View]:
    """``n`` views in the native views' directions at the headset's angular resolution (at
    most ``MAX_ZOOM`` times that of an equirect ``width`` pixels wide)."""
    px_per_deg = min(HEADSET_PX_PER_DEG, MAX_ZOOM * width / 360.0)
    size = max(8, round(fov_deg * px_per_deg))
    return [View(v.yaw_deg, v.pitch_deg, fov_deg, size, size) for v in native_views(360, n)]


def _static_pixels(animated: np.ndarray, view: View) -> Tensor:
    """[h, w] bool: pixels of ``view`` whose bilinear sample touches no animated pixel."""
    a = torch.from_numpy(animated.astype(np.float32))[None, None]
    return perspective_view(a, view)[0, 0] == 0


def psnr_over(pairs: list[tuple[Tensor, Tensor, Tensor | None]]) -> float | None:
    """One PSNR (dB, peak 1) over the pixels of (render, target, mask) image pairs; None
    when the masks leave no pixel."""
    se, count = 0.0, 0
    for got, ref, mask in pairs:
        d = (got.clamp(0, 1) - ref) ** 2
        if mask is not None:
            d = d[mask]
        se += float(d.sum())
        count += d.numel()
    if count == 0:
        return None
    mse = se / count
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@torch.no_grad()
def evaluate(
    static: Gaussians,
    dynamic: list[Gaussians],
    frames: np.ndarray,
    animated: np.ndarray,
    train_views: list[View],
    progress: Progress | None = None,
) -> dict:
    """The figures of the module docstring for a lifted scene.

    frames: [T, H, W, 3] uint8 (frame 0 is the input outside the regions); animated [H, W].
    """
    progress = progress or Progress("lift")
    width = frames.shape[2]
    views = native_views(width)
    dev = static.means.device
    img = (to_bchw(frames[0]) / 255).to(dev)
    bg = torch.zeros(3, device=dev)
    g0 = Gaussians.cat([static, dynamic[0]])
    headset = headset_views(width)
    native, flicker_views = [], []
    n_steps = len(views) + len(headset) + len(train_views) + 1

    def pair(view: View, mask: Tensor | None):
        got = render_view(g0, view, background=bg).rgb
        return got, perspective_view(img, view)[0].permute(1, 2, 0), mask

    for i, view in enumerate(views):
        mask = _static_pixels(animated, view).to(dev)
        native.append(pair(view, mask))
        if animated.any() and bool(mask.any()) and not bool(mask.all()):
            flicker_views.append((view, mask, native[-1][0]))
        progress.update((i + 1) / n_steps, f"measuring: native view {i + 1}/{len(views)}")
    magnified = []
    for i, view in enumerate(headset):
        magnified.append(pair(view, _static_pixels(animated, view).to(dev)))
        progress.update((len(views) + i + 1) / n_steps, "measuring: headset views")
    train = []
    for i, view in enumerate(train_views):
        train.append(pair(view, None))
        progress.update((len(views) + len(headset) + i + 1) / n_steps, "measuring: training views")
    size, train_size = views[0].width, train_views[0].width if train_views else 0
    px_deg = 360.0 / width
    hs_size = headset[0].width
    hs_px_deg = hs_size / HEADSET_FOV
    return {
        "psnr_native": psnr_over(native),
        "psnr_native_resolution": (
            f"{len(views)} views of {NATIVE_FOV:.0f} deg at {size}x{size} px from the centre "
            f"(the input's {px_deg:.4f} deg/px), static pixels, against the input's crops"
        ),
        "psnr_headset": psnr_over(magnified),
        "psnr_headset_resolution": (
            f"{len(headset)} views of {HEADSET_FOV:.0f} deg at {hs_size}x{hs_size} px from the "
            f"centre ({hs_px_deg:.1f} px/deg, the input magnified {hs_px_deg * px_deg:.1f}x), "
            "static pixels, against the input's crops"
        ),
        "psnr_train": psnr_over(train),
        "psnr_train_resolution": (
            f"{len(train_views)} training views of 90 deg at {train_size}x{train_size} px, "
            "frame 0, all pixels"
        ),
        "static_flicker": _flicker(static, dynamic, flicker_views[:4], progress),
    }


def _flicker(static, dynamic, views, progress: Progress) -> float:
    """Mean |render(t+1) - render(t)| (0..255) over static pixels, frames 0..3."""
    if len(dynamic) < 2 or not views:
        return 0.0
    diffs = []
    bg = torch.zeros(3, device=static.means.device)
    for view, mask, prev in views:
        for t in range(1, min(len(dynamic), 3)):
            cur = render_view(Gaussians.cat([static, dynamic[t]]), view, background=bg).rgb
            diffs.append(float((cur - prev).abs()[mask].mean()) * 255)
            prev = cur
        progress.update(1.0, "measuring flicker in static areas")
    return float(np.mean(diffs))
