"""Latents on the sphere: projection to a view set, eq. 3 fusion back, and view-consistent noise.

:class:`SphereViews` is built once per (view set, equirect latent size) and then used at every
denoising step of the Panoramic Denoiser (:mod:`engine.animate.denoiser`):

- :meth:`SphereViews.project` is gamma(S, d_k) of 4K4DGen: one ``grid_sample`` of the
  seam-wrapped, pole-continued equirect latent at every view's pixel rays (all views at once).
- :meth:`SphereViews.fuse` is the closed form of eq. 3: the equirect latent minimising the
  feathered-weighted squared distance to all back-projected views is their per-pixel weighted
  average. The sampling positions and weights of every (view, equirect pixel) pair are
  precomputed (the *plan*), so a step costs one ``grid_sample`` and one ``index_add_`` per
  chunk of views. Seams wrap: the plan is built from directions, never from equirect columns.
- :meth:`SphereViews.white_noise` draws noise that is exactly unit-variance white Gaussian in
  every view *and* on the equirect grid and consistent between them: both are integrals of
  one fine white-noise field over each pixel's footprint (sum / sqrt(count), "How I Warped
  Your Noise", Chang et al. 2024). Bilinear resampling of noise would shrink its variance and
  correlate neighbouring pixels.

Memory (the bound). With B*C channels (frames x latent channels), an H x W equirect latent,
V views and views fused ``view_chunk`` at a time, let F be the largest view footprint in
equirect pixels (F < 0.3 H W for 90 degree views, the pole views being the widest). The plan
holds 24 bytes per (view, footprint slot): V x F x 24 bytes. One fusion allocates its output
(B*C x H x W) and one temporary of B*C x view_chunk x F values (the sampled views). Nothing
else grows with the panorama, the frame count or the number of
steps. At the 4K latent size (256 x 512, 14 frames x 4 channels, fp32) that is a 29 MB
output, a 17 MB plan for the 20-view set (23 MB for the 54-view refinement set) and a
31 MB temporary with 4-view chunks (docs/BENCHMARKS.md). The released 4K4DGen code
instead fuses with a KNN over ~56 M sphere points (~100 GB of host RAM), for 5 of 25 steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..camera import View
from ..sphere import (
    EquirectSampler,
    equirect_dirs,
    feather_weight,
    project_to_view,
    row_bands,
    view_sample_coords,
)


class SphereViews:
    """Projection to ``views`` and eq. 3 fusion back, for one H x W equirect grid.

    All views must share one size h x w (in the grid's pixel units, e.g. latent pixels).
    """

    def __init__(
        self,
        views: list[View],
        height: int,
        width: int,
        *,
        feather: float = 0.15,
        device: torch.device | str = "cpu",
        view_chunk: int = 4,
        band_pixels: int = 1 << 18,
    ) -> None:
        sizes = {(v.height, v.width) for v in views}
        if len(sizes) != 1:
            raise ValueError(f"all views must share one size, got {sorted(sizes)}")
        self.views = list(views)
        self.height, self.width = height, width
        self.h, self.w = sizes.pop()
        self.feather = feather
        self.device = torch.device(device)
        self.view_chunk = max(1, view_chunk)
        self.band_pixels = band_pixels
        rows, cols = zip(*(view_sample_coords(v, height, width) for v in self.views))
        self._rows = torch.stack(rows).to(self.device)  # [V, h, w] float64
        self._cols = torch.stack(cols).to(self.device)
        self._build_plan()

    # -- the fusion plan -----------------------------------------------------------------

    def _build_plan(self) -> None:
        """Per view: flat equirect indices it covers, its sampling grid and feathered weight,
        padded to the largest footprint (padding has weight 0)."""
        idx: list[list[Tensor]] = [[] for _ in self.views]
        xy: list[list[Tensor]] = [[] for _ in self.views]
        wt: list[list[Tensor]] = [[] for _ in self.views]
        den = torch.zeros(self.height * self.width, dtype=torch.float64)
        for band in row_bands(self.height, self.width, self.band_pixels):
            dirs = equirect_dirs(self.height, self.width, band).reshape(-1, 3)
            offset = band.start * self.width
            for k, view in enumerate(self.views):
                x, y, front = project_to_view(dirs, view)
                wgt = feather_weight(x, y, self.w, self.h, self.feather) * front
                sel = torch.nonzero(wgt > 0).squeeze(1)
                if sel.numel() == 0:
                    continue
                idx[k].append(sel + offset)
                # grid_sample, align_corners=False: -1 / +1 are the outer pixel edges
                xy[k].append(torch.stack([2 * x[sel] / self.w - 1, 2 * y[sel] / self.h - 1], -1))
                wt[k].append(wgt[sel])
                den[sel + offset] += wgt[sel]
        counts = [sum(t.numel() for t in i) for i in idx]
        n = max(1, max(counts))
        nv = len(self.views)
        self.plan_idx = torch.zeros(nv, n, dtype=torch.long)
        self.plan_grid = torch.zeros(nv, n, 2, dtype=torch.float32)
        self.plan_weight = torch.zeros(nv, n, dtype=torch.float64)
        for k in range(nv):
            if counts[k]:
                self.plan_idx[k, : counts[k]] = torch.cat(idx[k])
                self.plan_grid[k, : counts[k]] = torch.cat(xy[k]).float()
                self.plan_weight[k, : counts[k]] = torch.cat(wt[k])
        self.weight = den.reshape(self.height, self.width)  # [H, W] sum of view weights
        norm = torch.where(den > 0, 1.0 / den.clamp_min(1e-300), torch.zeros_like(den))
        # fold 1 / sum(weights) into the per-view weights: fusion is then a plain scatter-add
        self.plan_weight *= norm[self.plan_idx]
        self.plan_idx = self.plan_idx.to(self.device)
        self.plan_grid = self.plan_grid.to(self.device)
        self.plan_weight = self.plan_weight.to(self.device)
        self.covered = (den > 0).reshape(self.height, self.width).to(self.device)
        self.all_covered = bool(self.covered.all())

    @property
    def plan_bytes(self) -> int:
        return sum(
            t.numel() * t.element_size() for t in (self.plan_idx, self.plan_grid, self.plan_weight)
        )

    # -- projection and fusion -----------------------------------------------------------

    def project(self, image: Tensor) -> Tensor:
        """gamma(S, d_k) for every view: bilinear, seam-wrapping, pole-continued.

        image: Tensor  # [B, C, H, W]
        returns: Tensor  # [V, B, C, h, w]
        """
        b, c = image.shape[:2]
        nv = len(self.views)
        out = EquirectSampler(image)(self._rows, self._cols)  # [B, C, V, h, w]
        return out.permute(2, 0, 1, 3, 4).reshape(nv, b, c, self.h, self.w)

    def fuse(self, images: Tensor, fill: Tensor | None = None) -> Tensor:
        """Eq. 3: the feathered weighted average of the back-projected views.

        images: Tensor  # [V, B, C, h, w]
        fill: Tensor | None  # [B, C, H, W], used where no view has weight (else 0)
        returns: Tensor  # [B, C, H, W] in images' dtype
        """
        nv, b, c, h, w = images.shape
        if nv != len(self.views) or (h, w) != (self.h, self.w):
            raise ValueError(f"expected [{len(self.views)}, B, C, {self.h}, {self.w}] views")
        num = torch.zeros(b * c, self.height * self.width, dtype=images.dtype, device=self.device)
        for s in range(0, nv, self.view_chunk):
            e = min(nv, s + self.view_chunk)
            src = images[s:e].reshape(e - s, b * c, h, w)
            grid = self.plan_grid[s:e, None].to(images.dtype)  # [v, 1, n, 2]
            vals = torch.nn.functional.grid_sample(
                src, grid, mode="bilinear", padding_mode="border", align_corners=False
            )[:, :, 0]  # [v, BC, n]: the only temporary of the fusion
            vals.mul_(self.plan_weight[s:e, None].to(images.dtype))
            for k in range(e - s):
                num.index_add_(1, self.plan_idx[s + k], vals[k])
        out = num.reshape(b, c, self.height, self.width)
        if fill is not None and not self.all_covered:
            out[:, :, ~self.covered] = fill[:, :, ~self.covered].to(out.dtype)
        return out

    # -- noise ---------------------------------------------------------------------------

    def oversample_for_views(self) -> int:
        """Fine-grid factor so that every view pixel (down to the corners, which subtend
        about a third of a central pixel's angle at 90 degrees) receives fine samples."""
        focal = self.views[0].focal
        ratio = 2 * math.pi * focal / self.width  # view pixels per equirect pixel, centre
        half = math.radians(max(v.fov_deg for v in self.views)) / 2
        corner = 1 + 2 * math.tan(half) ** 2  # 1 / cos^2 of the corner ray
        return int(min(16, max(2, math.ceil(1.25 * ratio * corner))))

    def white_noise(
        self, channels: int, generator: torch.Generator, oversample: int = 0
    ) -> tuple[Tensor, Tensor, float]:
        """Unit-variance white Gaussian noise, consistent between the sphere and the views.

        A fine equirect grid (``oversample`` x finer per axis; 0 = automatic) of iid N(0, 1)
        samples is drawn band by band; each equirect pixel and each view pixel gets the sum
        of the fine samples whose centres fall inside it divided by sqrt(their count). Pixels
        that receive no sample (only possible if ``oversample`` is too small) get fresh
        N(0, 1) noise; the returned fraction says how many.

        returns: (equirect [channels, H, W], views [V, channels, h, w], unfilled fraction)
        """
        f = oversample or self.oversample_for_views()
        dev = generator.device
        hh, ww = self.height * f, self.width * f
        nv, vp = len(self.views), self.h * self.w
        eq = torch.zeros(channels, self.height, self.width, device=dev)
        acc = torch.zeros(channels, nv * vp, device=dev)
        cnt = torch.zeros(nv * vp, device=dev)
        rows_per_band = max(1, self.band_pixels // ww // f) * f
        for r0 in range(0, hh, rows_per_band):
            band = slice(r0, min(hh, r0 + rows_per_band))
            nrows = band.stop - band.start
            noise = torch.randn(channels, nrows, ww, generator=generator, device=dev)
            coarse = noise.reshape(channels, nrows // f, f, self.width, f).sum((2, 4)) / f
            eq[:, band.start // f : band.stop // f] = coarse
            dirs = equirect_dirs(hh, ww, band).reshape(-1, 3).to(dev)
            flat = noise.reshape(channels, -1)
            for k, view in enumerate(self.views):
                x, y, front = project_to_view(dirs, view)
                ix, iy = torch.floor(x).long(), torch.floor(y).long()
                ok = front & (ix >= 0) & (ix < self.w) & (iy >= 0) & (iy < self.h)
                if not bool(ok.any()):
                    continue
                lin = k * vp + iy[ok] * self.w + ix[ok]
                acc.index_add_(1, lin, flat[:, ok])
                cnt.index_add_(0, lin, torch.ones_like(lin, dtype=cnt.dtype))
        empty = cnt == 0
        views = acc / cnt.clamp_min(1).sqrt()
        if bool(empty.any()):
            fresh = torch.randn(channels, int(empty.sum()), generator=generator, device=dev)
            views[:, empty] = fresh
        views = views.reshape(channels, nv, self.h, self.w).permute(1, 0, 2, 3)
        return eq, views.contiguous(), float(empty.float().mean())


def ring_views(fov_deg: float, size: int, overlap: float = 0.25) -> list[View]:
    """Gravity-aligned rings of square ``fov_deg`` views plus both poles, spaced so that
    neighbours overlap by about ``overlap`` of a view (the dense set of the high-resolution
    refinement pass; checked with :func:`engine.sphere.coverage`)."""
    step = fov_deg * (1 - overlap)
    pitches = [0.0]
    j = 1
    while j * step < 90 - fov_deg / 2 * (1 - overlap):
        pitches += [j * step, -j * step]
        j += 1
    views = []
    for p in pitches:
        near = math.radians(max(0.0, abs(p) - fov_deg / 2))
        count = max(3, math.ceil(360 * math.cos(near) / step))
        offset = 0.0 if p >= 0 else 180.0 / count
        for i in range(count):
            yaw = (offset + 360.0 * i / count + 180.0) % 360.0 - 180.0
            views.append(View(yaw, p, fov_deg, size, size))
    views.append(View(0.0, 90.0, fov_deg, size, size))
    views.append(View(0.0, -90.0, fov_deg, size, size))
    return views


__all__ = ["SphereViews", "ring_views"]


def resize_wrapped(x: Tensor, size: tuple[int, int], mode: str = "bicubic") -> Tensor:
    """Bicubic (or ``mode="bilinear"``) resize of equirect images that wraps across the
    left/right seam (rows are clamped at the poles), so a resized panorama has no seam step.

    x: Tensor  # [..., C, h, w]
    size: (H, W) of the output
    returns: Tensor  # [..., C, H, W]; the same samples as resizing three side-by-side
        copies of ``x`` and keeping the middle one
    """
    import torch.nn.functional as F

    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    out_h, out_w = size
    pad = 2  # bicubic taps reach two pixels
    x4 = x.reshape(-1, c, h, w)
    xp = torch.cat([x4[..., -pad:], x4, x4[..., :pad]], dim=-1)
    dev = x.device
    sx = (torch.arange(out_w, device=dev, dtype=torch.float64) + 0.5) * w / out_w + pad
    sy = (torch.arange(out_h, device=dev, dtype=torch.float64) + 0.5) * h / out_h
    gx = (sx / (w + 2 * pad) * 2 - 1).to(torch.float32)  # align_corners=False normalisation
    gy = (sy / h * 2 - 1).to(torch.float32)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # [H, W, 2] as (x, y)
    grid = grid.expand(len(xp), out_h, out_w, 2).to(x.dtype)
    out = F.grid_sample(xp, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.reshape(*lead, c, out_h, out_w)
