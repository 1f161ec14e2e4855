"""Weightless depth: a geometric layout prior, or the user's depth panorama.

Layout prior: a ground plane ``camera_height`` below the viewer for the lower hemisphere
and a finite far shell of radius ``far`` for the sky and everything unbounded, joined by a
smooth minimum so the horizon has no crease:

    d_ground(lat) = h / sin(-lat)       (lat < 0; +inf above the horizon)
    d(lat) = (d_ground^-k + far^-k)^(-1/k)

All depths are distances along the ray (not planar z), clamped to [near, far].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..io import resize_depth
from ..progress import Progress


@dataclass(frozen=True)
class DepthConfig:
    camera_height: float = 1.6  # metres from the viewer down to the ground plane
    far: float = 100.0  # radius of the far shell (sky, anything unbounded)
    near: float = 0.3  # nothing closer than this
    softness: float = 4.0  # exponent of the smooth minimum at the horizon


@dataclass
class PanoDepth:
    """depth: np.ndarray  # [T, H, W] float32 distance along the ray (may be a broadcast view
    of one frame when the geometry does not change over time)."""

    depth: np.ndarray
    source: str

    @property
    def n_frames(self) -> int:
        return int(self.depth.shape[0])


def layout_prior(height: int, width: int, cfg: DepthConfig = DepthConfig()) -> np.ndarray:
    """[H, W] float32 depth of the ground-plane + far-shell layout."""
    lat = (0.5 - (np.arange(height) + 0.5) / height) * np.pi
    down = np.clip(-np.sin(lat), 0.0, None)
    with np.errstate(divide="ignore"):
        inv_ground = down / cfg.camera_height  # 1 / d_ground, 0 above the horizon
    k = cfg.softness
    d = (inv_ground**k + cfg.far ** (-k)) ** (-1.0 / k)
    d = np.clip(d, cfg.near, cfg.far).astype(np.float32)
    return np.repeat(d[:, None], width, axis=1)


def fill_user_depth(depth: np.ndarray, cfg: DepthConfig = DepthConfig()) -> np.ndarray:
    """User depth with NaN for invalid pixels -> finite depth: invalid pixels go to the far
    shell, everything is clamped to [near, far]."""
    d = np.where(np.isfinite(depth), depth, cfg.far)
    return np.clip(d, cfg.near, cfg.far).astype(np.float32)


class DepthStage:
    """Weightless depth stage: ``run(n_frames, size, user_depth)`` -> :class:`PanoDepth`."""

    name = "layout"

    def __init__(self, cfg: DepthConfig = DepthConfig()) -> None:
        if not (0 < cfg.near < cfg.far and cfg.camera_height > 0):
            raise InputError("depth settings need 0 < near < far and a positive camera height")
        self.cfg = cfg

    def run(
        self,
        n_frames: int,
        size: tuple[int, int],
        user_depth: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> PanoDepth:
        """size: (H, W) of the depth. user_depth: [H', W'] for every frame or [T, H', W'] per
        frame (NaN = invalid, any 2:1 size; resampled edge-preserving)."""
        progress = progress or Progress("depth")
        if user_depth is None:
            frame = layout_prior(*size, self.cfg)
            progress.update(1.0, "layout prior (ground plane + far shell)")
            return PanoDepth(
                np.broadcast_to(frame, (n_frames, *size)), "layout prior (ground plane + far shell)"
            )
        if user_depth.ndim == 2 or _constant_over_time(user_depth):
            one = user_depth if user_depth.ndim == 2 else user_depth[0]
            frame = fill_user_depth(resize_depth(one, size), self.cfg)
            progress.update(1.0, "user depth panorama")
            return PanoDepth(np.broadcast_to(frame, (n_frames, *size)), "user depth panorama")
        out = np.empty((n_frames, *size), np.float32)
        for t in range(n_frames):
            out[t] = fill_user_depth(resize_depth(user_depth[t], size), self.cfg)
            progress.update((t + 1) / n_frames, f"user depth, frame {t + 1}/{n_frames}")
        return PanoDepth(out, f"user depth per frame ({n_frames} frames)")


def _constant_over_time(depth: np.ndarray) -> bool:
    """True for a [T, H, W] broadcast of one frame (stride 0) or identical frames."""
    if depth.strides[0] == 0:
        return True
    return all(np.array_equal(depth[0], depth[t], equal_nan=True) for t in range(1, len(depth)))
