"""Weightless Eulerian flow animator (the default; CPU, any resolution, bounded memory).

Each region moves along a smooth tangent vector field on the sphere. For a region with
direction theta (0 = east/right in the image, 90 = north/up) and angular speed omega:

    v(p) = omega * s(p) * [cos(theta') * (p x Y) + sin(theta') * (Y - (Y.p) p)]
    theta' = theta + wobble * n2(p),   s(p) = 1 + turbulence * n1(p)

``p x Y`` is the eastward field (a rotation about the vertical axis) and ``Y - (Y.p) p`` the
northward one; both have magnitude cos(lat) and are smooth everywhere, including at the
poles and across the seam (the field is defined on directions, not on equirect rows).
n1, n2 are smooth random fields on the sphere (sums of plane waves in 3D restricted to the
unit sphere), so water and clouds shear and swirl instead of sliding rigidly.

The field of each region is multiplied by its feathered mask, so it falls to zero at the
region's edge and trajectories never leave the region. Frames are made by tracing every
animated pixel backwards (RK2 on the sphere) and sampling the panorama there; to loop, the
backward trace over t frames is cross-faded with the forward trace over T - t frames
(Holynski et al. 2021, "Animating Pictures with Eulerian Motion Fields"):

    frame_t(x) = (1 - t/T) I(phi_{-t}(x)) + (t/T) I(phi_{T-t}(x))

so frame 0 is the input and frame T would be the input again: the step from the last
frame to the first is an ordinary step. Pixels outside every region are copied, never
resampled, so they stay bit-identical to the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..io import Panorama, Region
from ..progress import Progress
from ..sphere import EquirectSampler, equirect_dirs, pixel_to_dir, row_bands
from .base import PanoVideo, region_weights

_Y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


@dataclass(frozen=True)
class FlowConfig:
    frames: int = 16
    fps: float = 8.0
    turbulence: float = 0.35  # relative variation of speed across the region
    wobble_deg: float = 25.0  # variation of direction across the region
    noise_scale_deg: float = 20.0  # size of the speed / direction variations
    chunk_pixels: int = 1 << 18  # animated pixels processed at once (bounds memory)
    seed: int = 0


class SmoothNoise:
    """A smooth random scalar field on the unit sphere, roughly in [-1, 1]."""

    def __init__(self, scale_deg: float, seed: int, waves: int = 8) -> None:
        g = torch.Generator().manual_seed(seed)
        k = torch.randn(waves, 3, generator=g, dtype=torch.float64)
        k = k / k.norm(dim=1, keepdim=True) / math.radians(scale_deg)
        self.k = k
        self.phase = torch.rand(waves, generator=g, dtype=torch.float64) * 2 * math.pi
        self.norm = math.sqrt(waves / 2)

    def __call__(self, p: Tensor) -> Tensor:
        """p [N, 3] -> [N]"""
        return torch.tanh(torch.cos(p @ self.k.T + self.phase).sum(-1) / self.norm)


class FlowAnimator:
    """``run(pano, regions, progress)`` -> :class:`PanoVideo` (see the module docstring)."""

    name = "flow"

    def __init__(self, cfg: FlowConfig = FlowConfig()) -> None:
        if cfg.frames < 2:
            raise InputError(f"the flow animator needs at least 2 frames, got {cfg.frames}")
        if not cfg.fps > 0:
            raise InputError(f"fps must be positive, got {cfg.fps}")
        self.cfg = cfg

    # -- the velocity field ------------------------------------------------------------

    def velocity_field(self, regions: list[Region], weights: np.ndarray) -> Tensor:
        """[1, 3, H, W] float32 tangent velocity (rad/s) on the equirect grid: the sum over
        regions of feathered weight x that region's field. Sampled bilinearly during
        advection (its Cartesian components are smooth across the seam and the poles)."""
        cfg = self.cfg
        h, w = weights.shape[1:]
        field = torch.zeros(3, h, w)
        for band in row_bands(h, w, 1 << 19):
            p = equirect_dirs(h, w, band).reshape(-1, 3)
            east = torch.linalg.cross(p, _Y.expand_as(p), dim=-1)
            north = _Y - p[:, 1:2] * p
            v = torch.zeros_like(p)
            for i, r in enumerate(regions):
                wr = torch.from_numpy(weights[i, band]).reshape(-1).double()
                if r.speed_deg_s == 0 or not bool((wr > 0).any()):
                    continue
                seed = cfg.seed * 1000 + 2 * i
                speed = math.radians(r.speed_deg_s) * (
                    1 + cfg.turbulence * SmoothNoise(cfg.noise_scale_deg, seed)(p)
                )
                theta = math.radians(r.direction_deg) + math.radians(cfg.wobble_deg) * SmoothNoise(
                    cfg.noise_scale_deg, seed + 1
                )(p)
                dir_ = torch.cos(theta)[:, None] * east + torch.sin(theta)[:, None] * north
                v += (wr * speed)[:, None] * dir_
            field[:, band] = v.T.reshape(3, band.stop - band.start, w).float()
        return field[None]

    def trace(self, p: Tensor, seconds: float, field: EquirectSampler, steps: int) -> Tensor:
        """Follow the field from directions p [N, 3] for ``seconds`` (negative = backwards)."""
        for _ in range(steps):
            p = self._step(p, seconds / steps, field)
        return p

    @staticmethod
    def _step(p: Tensor, h: float, field: EquirectSampler) -> Tensor:
        """One RK2 (midpoint) step of length h seconds along the field, on the sphere."""
        mid = p + 0.5 * h * field.at_dirs(p)[0].T
        mid = mid / mid.norm(dim=-1, keepdim=True)
        q = p + h * field.at_dirs(mid)[0].T
        return q / q.norm(dim=-1, keepdim=True)

    # -- synthesis ---------------------------------------------------------------------

    def run(
        self,
        pano: Panorama,
        regions: list[Region],
        progress: Progress | None = None,
        out: np.ndarray | None = None,
    ) -> PanoVideo:
        """Animate ``pano``. ``out`` may be a preallocated [T, H, W, 3] uint8 array (e.g. a
        memmap checkpoint); otherwise one is allocated."""
        progress = progress or Progress("animate")
        cfg = self.cfg
        t_count = cfg.frames
        h, w = pano.height, pano.width
        weights_np = region_weights(regions)  # [R, H, W]
        union = weights_np.sum(axis=0).clip(0, 1) if len(regions) else np.zeros((h, w), np.float32)
        if out is None:
            out = np.empty((t_count, h, w, 3), np.uint8)
        out[:] = pano.rgb[None]
        idx = np.flatnonzero(union.reshape(-1) > 0)
        if idx.size == 0 or all(r.speed_deg_s == 0 for r in regions):
            progress.update(1.0, "nothing to animate")
            return PanoVideo(out, cfg.fps, union.astype(np.float32))

        image = torch.tensor(pano.rgb, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()
        sampler = EquirectSampler(image, mode="bicubic")
        field = EquirectSampler(self.velocity_field(regions, weights_np))
        progress.update(0.02, "motion field ready")
        flat_out = out.reshape(t_count, h * w, 3)
        chunks = range(0, idx.size, cfg.chunk_pixels)
        for ci, start in enumerate(chunks):
            sel = idx[start : start + cfg.chunk_pixels]
            sub = progress.sub(ci / len(chunks), (ci + 1) / len(chunks))
            vals = self._animate_pixels(sel, h, w, sampler, field, sub)
            base = image.reshape(3, -1)[:, torch.from_numpy(sel)].T  # [n, 3]
            m = torch.from_numpy(union.reshape(-1)[sel])[None, :, None]
            blended = base[None] + m * (vals - base[None])
            flat_out[:, sel] = blended.round().clamp(0, 255).to(torch.uint8).numpy()
        progress.update(1.0, f"{t_count} frames animated")
        return PanoVideo(out, cfg.fps, union.astype(np.float32))

    def _animate_pixels(
        self,
        sel: np.ndarray,
        h: int,
        w: int,
        image: EquirectSampler,
        field: EquirectSampler,
        progress: Progress,
    ) -> Tensor:
        """Flat pixel indices [n] -> [T, n, 3] float colours of the looping cross-fade."""
        t_count = self.cfg.frames
        dt = 1.0 / self.cfg.fps
        rows = torch.from_numpy(sel // w)
        cols = torch.from_numpy(sel % w)
        p0 = pixel_to_dir(rows.double(), cols.double(), h, w).float()
        acc = torch.zeros(t_count, len(sel), 3)
        acc[0] = image.at_dirs(p0)[0].T
        for sign, phase in ((-1.0, 0), (1.0, 1)):
            p = p0
            for s in range(1, t_count):
                p = self._step(p, sign * dt, field)
                t = s if sign < 0 else t_count - s
                alpha = t / t_count
                wgt = (1 - alpha) if sign < 0 else alpha
                acc[t] += wgt * image.at_dirs(p)[0].T
                progress.update((phase * (t_count - 1) + s) / (2 * (t_count - 1)), "advecting")
        return acc


__all__ = ["FlowAnimator", "FlowConfig", "SmoothNoise"]
