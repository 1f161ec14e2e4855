"""Where the viewer starts: at the capture point for a panorama scene, outside the object for
an object capture (a guitar, a statue), framed on its bounds.

Heuristic (:func:`is_object_capture`): a scene made by Pano4D is a panorama. Otherwise a
panorama is seen from its capture point, the origin: the splats surround it (seen from the
origin they fill most of the sphere of directions) and the origin is in free space (almost
nothing within a fifth of the median distance: the park sample has none). An object capture
fails one of the two: it sits to one side of the origin (few directions), or the origin is
inside it (the COLMAP habit of centring the object): at least ``dense`` (0.5 %) of its
splats lie that close.

:func:`object_home` places the camera on the +Z side of the object's centre c (the median of
the means), a little above, far enough for a sphere of radius R90 (the 90th percentile
distance from c) to fill the vertical field of view, looking at c; moves are then allowed
within that distance of the home position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Home:
    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    fov_deg: float
    radius: float  # how far the camera may move from ``position``
    move_speed: float  # units per second


def is_object_capture(means: np.ndarray, meta: dict | None = None, dense: float = 0.005) -> bool:
    """means [N, 3] (a sample is enough); ``meta``: the scene's provenance."""
    meta = meta or {}
    if str(meta.get("generator", "")).startswith("Pano4D"):
        return False
    if len(means) < 16:
        return False
    d = np.linalg.norm(means, axis=1)
    r = float(np.median(d))
    if not r > 0:
        return False
    if float(np.mean(d < 0.2 * r)) >= dense:
        return True  # the origin is inside the splats
    return _coverage(means[d > 0] / d[d > 0, None]) < 0.5


def _coverage(dirs: np.ndarray, bins: int = 64) -> float:
    """Share of ``bins`` Fibonacci directions whose cone holds at least 0.1 % of ``dirs``."""
    i = np.arange(bins) + 0.5
    z = 1 - 2 * i / bins
    phi = math.pi * (1 + 5**0.5) * i
    rho = np.sqrt(1 - z * z)
    centres = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], 1)
    nearest = np.argmax(dirs @ centres.T, axis=1)
    counts = np.bincount(nearest, minlength=bins)
    return float(np.mean(counts >= 0.001 * len(dirs)))


def object_home(means: np.ndarray, fov_deg: float = 50.0, elevation_deg: float = 15.0) -> Home:
    """The framing camera for an object capture (module docstring)."""
    c = np.median(means, axis=0)
    r90 = float(np.quantile(np.linalg.norm(means - c, axis=1), 0.9)) or 1.0
    dist = r90 / math.sin(math.radians(fov_deg) / 2)
    e = math.radians(elevation_deg)
    pos = c + dist * np.array([0.0, math.sin(e), math.cos(e)])
    return Home(tuple(float(v) for v in pos), 0.0, -elevation_deg, fov_deg, dist, dist)


def sample_means(means, limit: int = 200_000) -> np.ndarray:
    """A fixed subset of [N, 3] means (every k-th) as float64 numpy."""
    m = np.asarray(means.detach().cpu().numpy() if hasattr(means, "detach") else means)
    step = max(1, len(m) // limit)
    return m[::step].astype(np.float64)
