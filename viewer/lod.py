"""What a frame of the viewer draws: a culled order and, while moving, a coarser subset.

The screen view sorts only what its (widened) frustum can see (:func:`frustum_for`, handed
to :class:`viewer.sort.BackgroundSorter`). On a software rasteriser (Mesa llvmpipe and the
like) drawing millions of splats takes seconds, so while the camera moves
:func:`coarse_order` keeps every k-th splat of a fixed random subset of that order (at most
``budget``) and the renderer draws each with k times its covariance (the same coverage);
once the camera has been still for ``settle_s`` the full order is drawn again.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from engine.camera import View

from .sort import Frustum

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swiftshader", "software", "swrast")


def is_software(renderer_name: str) -> bool:
    """Is this GL_RENDERER string a CPU rasteriser?"""
    name = renderer_name.lower()
    return any(s in name for s in SOFTWARE_RENDERERS)


def frustum_for(view: View, radii: np.ndarray, near: float, margin: float = 1.2) -> Frustum:
    """The culling frustum of a perspective view (half-FOV tangents from its focal)."""
    tan_x = 0.5 * view.width / view.focal
    tan_y = 0.5 * view.height / view.focal
    return Frustum(tan_x, tan_y, near, radii, margin)


def slack_deg(view: View, margin: float = 1.2) -> float:
    """How far (degrees) the camera may turn before an order culled for ``view`` with
    ``margin`` misses part of the new view."""
    out = math.inf
    for half in (0.5 * view.width / view.focal, 0.5 * view.height / view.focal):
        out = min(out, math.degrees(math.atan(margin * half) - math.atan(half)))
    return out


@dataclass
class LodPolicy:
    """Level of detail while moving (module docstring)."""

    software: bool
    budget: int = 100_000  # splats drawn per frame while moving: ~0.45 s on llvmpipe (BENCHMARKS)
    settle_s: float = 0.25  # still this long: full detail again
    last_motion: float = -math.inf

    def moved(self, now: float) -> None:
        self.last_motion = now

    def coarse(self, now: float) -> bool:
        return self.software and now - self.last_motion < self.settle_s


@functools.lru_cache(maxsize=4)
def _subset(count: int, k: int, seed: int) -> np.ndarray:
    keep = np.random.default_rng(seed).integers(0, k, count, dtype=np.int64) == 0
    keep.flags.writeable = False
    return keep


def coarse_order(
    order: np.ndarray, count: int, budget: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """(subset of ``order`` keeping its sequence, k): splats whose index falls in a fixed
    random 1/k of ``range(count)``, k the smallest giving at most ``budget`` of them; draw it
    with ``lod_scale=k``."""
    k = max(1, math.ceil(len(order) / max(budget, 1)))
    if k == 1:
        return order, 1
    return order[_subset(count, k, seed)[order]], k
