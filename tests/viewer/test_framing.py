"""Where the viewer starts: panoramas at the capture point, object captures framed."""

from __future__ import annotations

import math

import numpy as np

from viewer.camera import ViewerCamera
from viewer.framing import is_object_capture, object_home


def _shell(n=20000, seed=0):
    """A room around the viewer: points 2-6 units away in every direction."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * rng.uniform(2, 6, (n, 1))


def _object(n=20000, seed=0, centre=(3.0, -1.0, 7.0)):
    """A solid blob (a guitar's body) away from the origin, in a sparse background."""
    rng = np.random.default_rng(seed)
    body = rng.normal(size=(n, 3)) * [0.4, 0.6, 0.2] + centre
    far = rng.normal(size=(n // 10, 3)) * 5 + centre
    return np.concatenate([body, far])


def test_panoramas_and_objects_are_told_apart():
    assert not is_object_capture(_shell())
    assert is_object_capture(_object())  # to one side of the origin
    assert is_object_capture(_object(centre=(0.0, 0.0, 0.0)))  # centred on it, COLMAP-style
    room = _shell()
    room[:2000, 1] = -1.6  # a floor 1.6 below the capture point: still a panorama
    assert not is_object_capture(room)
    assert not is_object_capture(_object(), {"generator": "Pano4D 0.1.0"})  # ours: a panorama


def test_object_home_frames_the_object_and_looks_at_it():
    m = _object()
    home = object_home(m)
    c = np.median(m, axis=0)
    cam = ViewerCamera()
    cam.frame(home)
    to_c = c - np.asarray(cam.position)
    to_c /= np.linalg.norm(to_c)
    assert float(cam.forward() @ to_c) > 0.999  # looking at the centre
    r90 = np.quantile(np.linalg.norm(m - c, axis=1), 0.9)
    dist = np.linalg.norm(np.asarray(cam.position) - c)
    assert dist * math.tan(math.radians(cam.fov_deg) / 2) >= r90 * 0.99  # it fits
    cam.move(1.0, 0.0, 0.0, dt=100.0)  # moves stay around the home position
    assert (
        np.linalg.norm(np.asarray(cam.position) - np.asarray(home.position)) <= home.radius + 1e-9
    )
    cam.reset()
    assert cam.position == home.position
    cam.frame(None)  # a panorama again: the capture point
    assert cam.position == (0.0, 0.0, 0.0) and cam.radius == 0.5
