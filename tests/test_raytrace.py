"""The parallax benchmark's ground truth (benchmarks/raytrace.py) is what it claims."""

from __future__ import annotations

import numpy as np

from benchmarks import raytrace


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_rays_along_the_axes_hit_the_walls_at_the_rooms_distances():
    d = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    # a corner of the room where no sphere or box stands in the way
    o = np.broadcast_to(np.array([-3.0, 0.0, 3.0]), d.shape)
    t, _ = raytrace.trace(o, d)
    lo, hi = raytrace.ROOM_LO, raytrace.ROOM_HI
    expect = [hi[0] + 3, 3 + lo[0], hi[1], -lo[1], hi[2] - 3, 3 - lo[2]]
    np.testing.assert_allclose(t, np.abs(expect), rtol=1e-12)


def test_a_surface_point_has_one_colour_whichever_eye_sees_it():
    """The texture is solid: an off-centre eye looking at a point the centre sees gets the
    colour the centre got, on every wall and face (no parity flips from rounding)."""
    rng = np.random.default_rng(1)
    d = _unit(rng.normal(size=(200_000, 3)))
    t, colour = raytrace.trace(np.zeros_like(d), d)
    points = d * t[:, None]
    eye = np.array([0.13, -0.21, 0.08])
    to = points - eye
    dist = np.linalg.norm(to, axis=-1)
    t2, colour2 = raytrace.trace(np.broadcast_to(eye, d.shape), to / dist[:, None])
    same = np.abs(t2 - dist) < 1e-6 * dist  # the eye sees that very point
    assert same.mean() > 0.9
    np.testing.assert_allclose(colour2[same], colour[same], atol=1e-6)
