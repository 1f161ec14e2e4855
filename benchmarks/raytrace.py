"""A small ray tracer for scenes of known geometry: ground truth for lifting benchmarks.

The scene is a textured room (8 x 4 x 9 m, the viewer 1.6 m above the floor) with two
spheres and a box standing in it, so that an eye off the centre sees parallax, depth edges
and what the foreground hides. Every surface carries a solid (3D) procedural texture with
detail from 25 cm down to 2 cm, so blur at the panorama's resolution shows.

- :func:`panorama` ray-traces the equirect image (DESIGN.md section 2 conventions) with
  ``ss x ss`` samples per pixel, and its depth (distance along the pixel-centre ray).
- :func:`view` ray-traces a perspective :class:`engine.camera.View` from any eye position,
  and tells which of its pixels show a surface point that the centre also sees.

Everything is numpy, in chunks of rays; nothing here comes from Pano4D's renderers.
"""

from __future__ import annotations

import math

import numpy as np

from engine.camera import View

ROOM_LO = np.array([-4.0, -1.6, -5.0])
ROOM_HI = np.array([4.0, 2.4, 4.0])
SPHERES = [  # centre, radius, base colour
    (np.array([-1.2, -0.4, -2.2]), 0.55, (0.85, 0.35, 0.25)),
    (np.array([0.6, 0.5, -3.4]), 0.35, (0.25, 0.55, 0.85)),
]
BOX = (np.array([1.0, -1.6, -2.3]), np.array([1.8, 0.2, -1.5]), (0.9, 0.8, 0.3))
# walls by (axis, side): -x, +x, floor, ceiling, far (-z), near (+z)
WALL_COLOURS = [
    (0.7, 0.7, 0.65),
    (0.6, 0.65, 0.7),
    (0.45, 0.4, 0.35),
    (0.8, 0.8, 0.8),
    (0.65, 0.6, 0.55),
    (0.55, 0.6, 0.5),
]
CHUNK = 1 << 20


def _texture(p: np.ndarray, base: np.ndarray, seed: int) -> np.ndarray:
    """[N, 3] colour of a solid texture at points p [N, 3] (metres)."""
    rng = np.random.default_rng(seed)
    shade = np.zeros(len(p))
    for freq, amp in ((4.0, 0.35), (11.0, 0.25), (27.0, 0.2), (53.0, 0.12)):
        k = rng.normal(size=3)
        k *= freq * 2 * math.pi / np.linalg.norm(k)
        shade += amp * np.sin(p @ k + rng.uniform(0, 2 * math.pi))
    # 50 cm checker, phase-shifted a quarter cell: the room's walls (x = +-4, z = -5, 4) and
    # two box faces lie on multiples of 0.5 m, where o + t d lands a rounding error either
    # side of a cell boundary and the parity would flip from ray to ray
    checker = (np.floor(p / 0.5 + 0.25).sum(-1) % 2) * 0.2 - 0.1
    return np.clip(base[None, :] * (0.8 + 0.5 * shade[:, None] + checker[:, None]), 0, 1)


def _hit_room(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the room's walls from inside, and which wall (0..5)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = (ROOM_HI[None] - o) / d
        t_lo = (ROOM_LO[None] - o) / d
    t_axis = np.where(d > 0, t_hi, t_lo)
    t_axis = np.where(np.isfinite(t_axis) & (t_axis > 0), t_axis, np.inf)
    axis = np.argmin(t_axis, axis=1)
    t = t_axis[np.arange(len(o)), axis]
    side = d[np.arange(len(o)), axis] > 0
    return t, axis * 2 + side


def _hit_sphere(o, d, c, r) -> np.ndarray:
    oc = o - c[None]
    b = (oc * d).sum(-1)
    q = (oc * oc).sum(-1) - r * r
    disc = b * b - q
    sq = np.sqrt(np.maximum(disc, 0))
    t = -b - sq
    t = np.where(t > 1e-6, t, -b + sq)
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


def _hit_box(o, d, lo, hi) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (lo[None] - o) / d, (hi[None] - o) / d
    t0 = np.nanmax(np.minimum(a, b), axis=1)
    t1 = np.nanmin(np.maximum(a, b), axis=1)
    t = np.where(t0 > 1e-6, t0, t1)
    return np.where((t1 >= t0) & (t > 1e-6), t, np.inf)


def trace(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays from o [N, 3] along unit d [N, 3] -> (distance [N], colour [N, 3])."""
    t_room, wall = _hit_room(o, d)
    cands = [t_room]
    cands += [_hit_sphere(o, d, c, r) for c, r, _ in SPHERES]
    cands.append(_hit_box(o, d, BOX[0], BOX[1]))
    ts = np.stack(cands, 1)
    which = np.argmin(ts, axis=1)
    t = ts[np.arange(len(o)), which]
    p = o + d * t[:, None]
    colour = np.zeros((len(o), 3))
    for obj in range(ts.shape[1]):
        sel = which == obj
        if not sel.any():
            continue
        if obj == 0:
            for w in range(6):
                s = sel & (wall == w)
                if s.any():
                    colour[s] = _texture(p[s], np.array(WALL_COLOURS[w]), 10 + w)
        elif obj <= len(SPHERES):
            colour[sel] = _texture(p[sel], np.array(SPHERES[obj - 1][2]), 20 + obj)
        else:
            colour[sel] = _texture(p[sel], np.array(BOX[2]), 30)
    return t, colour


def _render(dirs_fn, n_pix: int, origin: np.ndarray, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Average ``ss x ss`` jittered samples per pixel; depth at the pixel centre."""
    rgb = np.zeros((n_pix, 3))
    offs = [((i + 0.5) / ss - 0.5, (j + 0.5) / ss - 0.5) for i in range(ss) for j in range(ss)]
    for dx, dy in offs:
        d = dirs_fn(dx, dy)
        for s in range(0, n_pix, CHUNK):
            o = np.broadcast_to(origin, (min(CHUNK, n_pix - s), 3))
            rgb[s : s + CHUNK] += trace(o, d[s : s + CHUNK])[1]
    d = dirs_fn(0.0, 0.0)
    depth = np.concatenate(
        [
            trace(np.broadcast_to(origin, (min(CHUNK, n_pix - s), 3)), d[s : s + CHUNK])[0]
            for s in range(0, n_pix, CHUNK)
        ]
    )
    return rgb / len(offs), depth


def panorama(height: int, ss: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Equirect (uint8 [H, 2H, 3], depth float32 [H, 2H]) seen from the origin."""
    width = 2 * height
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)

    def dirs(dx: float, dy: float) -> np.ndarray:
        lon = ((cols + 0.5 + dx) / width - 0.5) * 2 * math.pi
        lat = (0.5 - (rows + 0.5 + dy) / height) * math.pi
        v = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)], -1)
        return v.reshape(-1, 3)

    rgb, depth = _render(dirs, height * width, np.zeros(3), ss)
    img = (rgb.reshape(height, width, 3) * 255).round().astype(np.uint8)
    return img, depth.reshape(height, width).astype(np.float32)


def view(v: View, ss: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(float [h, w, 3] in [0, 1], bool [h, w]: the centre sees the same surface point)."""
    rot = v.rotation()
    f = v.focal
    ys, xs = np.mgrid[0 : v.height, 0 : v.width].astype(np.float64)
    origin = np.asarray(v.position, dtype=np.float64)

    def dirs(dx: float, dy: float) -> np.ndarray:
        x = (xs + 0.5 + dx - v.width / 2) / f
        y = -(ys + 0.5 + dy - v.height / 2) / f
        d = np.stack([x, y, -np.ones_like(x)], -1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return (d @ rot.T).reshape(-1, 3)

    rgb, depth = _render(dirs, v.height * v.width, origin, ss)
    point = origin + dirs(0.0, 0.0) * depth[:, None]
    dist = np.linalg.norm(point, axis=-1)
    t0 = trace(np.zeros_like(point), point / dist[:, None])[0]
    seen = t0 >= dist * (1 - 2e-3)
    return rgb.reshape(v.height, v.width, 3), seen.reshape(v.height, v.width)
