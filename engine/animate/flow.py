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
frame to the first is an ordinary step. Regions with ``motion = "sway"`` (foliage, grass,
ripples) instead oscillate along their field once per loop with a smoothly varying phase
(:meth:`FlowAnimator._sway_pixels`): exactly periodic, no cross-fade, so no double images.
Pixels outside every region are copied, never resampled, so they stay bit-identical to the
input.
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
    chunk_pixels: int = 1 << 18  # animated pixels per chunk at 16 frames (scaled by 16/T)
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

    def velocity_field(
        self, regions: list[Region], weights: np.ndarray, only: list[int] | None = None
    ) -> Tensor:
        """[1, 3, H, W] float32 tangent velocity (rad/s) on the equirect grid: the sum over
        regions (all, or the indices in ``only``) of feathered weight x that region's field.
        Sampled bilinearly during advection (its Cartesian components are smooth across
        the seam and the poles)."""
        cfg = self.cfg
        h, w = weights.shape[1:]
        field = torch.zeros(3, h, w)
        moving = [
            i for i, r in enumerate(regions) if (only is None or i in only) and r.speed_deg_s != 0
        ]
        noises = {  # per region: speed variation, direction variation
            i: (
                SmoothNoise(cfg.noise_scale_deg, cfg.seed * 1000 + 2 * i),
                SmoothNoise(cfg.noise_scale_deg, cfg.seed * 1000 + 2 * i + 1),
            )
            for i in moving
        }
        for band in row_bands(h, w, 1 << 19):
            p = equirect_dirs(h, w, band).reshape(-1, 3)
            east = torch.linalg.cross(p, _Y.expand_as(p), dim=-1)
            north = _Y - p[:, 1:2] * p
            v = torch.zeros_like(p)
            for i in moving:
                r = regions[i]
                wr = torch.from_numpy(weights[i, band]).reshape(-1).double()
                if not bool((wr > 0).any()):
                    continue
                speed_noise, dir_noise = noises[i]
                speed = math.radians(r.speed_deg_s) * (1 + cfg.turbulence * speed_noise(p))
                theta = math.radians(r.direction_deg) + math.radians(cfg.wobble_deg) * dir_noise(p)
                dir_ = torch.cos(theta)[:, None] * east + torch.sin(theta)[:, None] * north
                v += (wr * speed)[:, None] * dir_
            field[:, band] = v.T.reshape(3, band.stop - band.start, w).float()
        return field[None]

    def trace(
        self, p: Tensor, seconds: float | Tensor, field: EquirectSampler, steps: int
    ) -> Tensor:
        """Follow the field from directions p [N, 3] for ``seconds`` (negative = backwards;
        a float, or a [N, 1] tensor of per-point times)."""
        for _ in range(steps):
            p = self._step(p, seconds / steps, field)
        return p

    @staticmethod
    def _step(p: Tensor, h: float | Tensor, field: EquirectSampler) -> Tensor:
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
        if not (union > 0).any() or all(r.speed_deg_s == 0 for r in regions):
            progress.update(1.0, "nothing to animate")
            return PanoVideo(out, cfg.fps, union.astype(np.float32))

        image = torch.tensor(pano.rgb, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()
        sampler = EquirectSampler(image, mode="bicubic")
        # each animated pixel follows the motion kind that dominates it (regions partition
        # the weights, and every field is zero where its regions end, so kinds meet at rest)
        by_kind = {k: [i for i, r in enumerate(regions) if r.motion == k] for k in ("flow", "sway")}
        kind_weight = {k: weights_np[ids].sum(axis=0) for k, ids in by_kind.items() if ids}
        sway = kind_weight.get("sway", np.zeros_like(union))
        flow = kind_weight.get("flow", np.zeros_like(union))
        plans = [
            (
                self._flow_pixels,
                by_kind["flow"],
                np.flatnonzero(((flow >= sway) & (union > 0)).ravel()),
            ),
            (
                self._sway_pixels,
                by_kind["sway"],
                np.flatnonzero(((sway > flow) & (union > 0)).ravel()),
            ),
        ]
        flat_out = out.reshape(t_count, h * w, 3)
        total = sum(len(idx) for _, _, idx in plans)
        done = 0
        for synth, ids, idx in plans:
            if idx.size == 0:
                continue
            field = EquirectSampler(self.velocity_field(regions, weights_np, ids))
            # the per-chunk buffers are [T, chunk, 3]: keep them the same size for any T
            chunk = max(4096, cfg.chunk_pixels * 16 // t_count)
            for start in range(0, idx.size, chunk):
                sel = idx[start : start + chunk]
                sub = progress.sub(done / total, (done + len(sel)) / total)
                vals = synth(pixel_dirs(sel, h, w), sampler, field, sub)
                base = image.reshape(3, -1)[:, torch.from_numpy(sel)].T  # [n, 3]
                m = torch.from_numpy(union.reshape(-1)[sel])[None, :, None]
                blended = base[None] + m * (vals - base[None])
                flat_out[:, sel] = blended.round().clamp(0, 255).to(torch.uint8).numpy()
                done += len(sel)
        progress.update(1.0, f"{t_count} frames animated")
        return PanoVideo(out, cfg.fps, union.astype(np.float32))

    def _flow_pixels(
        self, p0: Tensor, image: EquirectSampler, field: EquirectSampler, progress: Progress
    ) -> Tensor:
        """Directions [n, 3] -> [T, n, 3] colours: the looping cross-fade of the backward
        trace over t frames and the forward trace over T - t frames."""
        t_count = self.cfg.frames
        dt = 1.0 / self.cfg.fps
        acc = torch.zeros(t_count, len(p0), 3)
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

    def _sway_pixels(
        self, p0: Tensor, image: EquirectSampler, field: EquirectSampler, progress: Progress
    ) -> Tensor:
        """Directions [n, 3] -> [T, n, 3] colours of an oscillation along the field.

        Pixel x at frame t shows the point reached by following the field for
        tau(x, t) = (P / 2 pi) (sin(2 pi t / T + phi(x)) - sin(phi(x))) seconds (P = T / fps):
        the peak speed is the region's speed, frame 0 is the input, and the clip is exactly
        periodic. phi is a smooth random phase across the region, so a gust travels through
        foliage instead of everything swinging in step.
        """
        cfg = self.cfg
        t_count = cfg.frames
        period = t_count / cfg.fps
        phi = math.pi * SmoothNoise(cfg.noise_scale_deg, cfg.seed * 1000 + 999)(p0.double()).float()
        acc = torch.zeros(t_count, len(p0), 3)
        acc[0] = image.at_dirs(p0)[0].T
        for t in range(1, t_count):
            tau = (
                period
                / (2 * math.pi)
                * (torch.sin(2 * math.pi * t / t_count + phi) - torch.sin(phi))
            )
            p = self.trace(p0, -tau[:, None], field, steps=_SWAY_STEPS)
            acc[t] = image.at_dirs(p)[0].T
            progress.update(t / (t_count - 1), "swaying")
        return acc


_SWAY_STEPS = 2  # RK2 steps per sway displacement (amplitudes are a few pixels)


def pixel_dirs(flat: np.ndarray, h: int, w: int) -> Tensor:
    """Flat pixel indices [n] of an H x W equirect -> [n, 3] float32 unit directions."""
    rows = torch.from_numpy(flat // w).double()
    cols = torch.from_numpy(flat % w).double()
    return pixel_to_dir(rows, cols, h, w).float()


__all__ = ["FlowAnimator", "FlowConfig", "SmoothNoise"]
