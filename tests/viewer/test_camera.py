"""ViewerCamera: conventions against engine.camera.View, limits, moves, reset."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from engine.camera import View
from viewer.camera import PITCH_LIMIT_DEG, CameraState, ViewerCamera, forward_vector


def project(view: View, p: np.ndarray) -> tuple[float, float]:
    """Pixel (x right, y down) of world point p in view."""
    c = view.world_to_camera_gl() @ np.append(p, 1.0)
    f = view.focal
    return view.width / 2 + f * c[0] / -c[2], view.height / 2 - f * c[1] / -c[2]


def test_default_looks_forward_minus_z():
    v = ViewerCamera().view(480, 640)
    np.testing.assert_allclose(v.forward(), [0, 0, -1], atol=1e-12)


@pytest.mark.parametrize(
    ("dyaw", "dpitch", "expected"),
    [(90, 0, [1, 0, 0]), (-90, 0, [-1, 0, 0]), (180, 0, [0, 0, 1]), (0, 60, None), (30, -45, None)],
)
def test_rotate_matches_engine_view(dyaw, dpitch, expected):
    cam = ViewerCamera()
    cam.rotate(dyaw, dpitch)
    v = cam.view(300, 400)
    ref = View(yaw_deg=dyaw, pitch_deg=dpitch).forward()
    np.testing.assert_allclose(v.forward(), ref, atol=1e-9)
    np.testing.assert_allclose(cam.forward(), ref, atol=1e-9)
    if expected is not None:
        np.testing.assert_allclose(v.forward(), expected, atol=1e-9)
    if dpitch > 0:
        assert v.forward()[1] > 0  # pitch up looks up (+Y)


def test_forward_vector_matches_view_random():
    rng = np.random.default_rng(1)
    for yaw, pitch in rng.uniform([-180, -89], [180, 89], size=(20, 2)):
        np.testing.assert_allclose(
            forward_vector(yaw, pitch), View(yaw_deg=yaw, pitch_deg=pitch).forward(), atol=1e-12
        )


def test_view_vertical_fov_and_size():
    cam = ViewerCamera(fov_deg=60)
    for h, w in [(480, 640), (1080, 1920), (600, 300)]:
        v = cam.view(h, w)
        assert (v.height, v.width, v.roll_deg) == (h, w, 0.0)
        assert v.vfov_deg == pytest.approx(60, abs=1e-9)
    assert cam.view(100, 100).fov_deg == pytest.approx(60)


@pytest.mark.parametrize("pitch", [0.0, 10.0])
def test_drag_grabs_the_world(pitch):
    cam = ViewerCamera(fov_deg=70, yaw_deg=20, pitch_deg=pitch)
    h, w = 600, 800
    v0 = cam.view(h, w)
    p = np.asarray(v0.position) + 5 * v0.forward()  # world point under the centre pixel
    cam.drag(12, -7, h)  # cursor moves right and up
    assert cam.yaw_deg < 20  # dragging right turns left
    assert cam.pitch_deg < pitch  # dragging up looks down
    x, y = project(cam.view(h, w), p)
    # yaw turns about world up, so away from the horizon the sideways follow is cos(pitch)
    assert x == pytest.approx(w / 2 + 12 * math.cos(math.radians(pitch)), abs=0.1)
    assert y == pytest.approx(h / 2 - 7, abs=0.1)


def test_drag_down_looks_up_and_turn_head_option():
    cam = ViewerCamera()
    cam.drag(0, 50, 500)
    assert cam.pitch_deg > 0
    head = ViewerCamera(drag_sign=-1)
    head.drag(50, 0, 500)
    assert head.yaw_deg > 0


def test_pitch_clamped_and_yaw_wrapped():
    cam = ViewerCamera()
    cam.rotate(0, 500)
    assert cam.pitch_deg == PITCH_LIMIT_DEG
    cam.rotate(0, -1000)
    assert cam.pitch_deg == -PITCH_LIMIT_DEG
    cam.drag(0, -1e6, 500)
    assert cam.pitch_deg == -PITCH_LIMIT_DEG
    cam.rotate(370, 0)
    assert cam.yaw_deg == pytest.approx(10)
    cam.rotate(-200, 0)
    assert cam.yaw_deg == pytest.approx(170)
    assert -180 <= cam.yaw_deg < 180


def test_zoom_direction_and_clamp():
    cam = ViewerCamera(fov_deg=75)
    cam.zoom(1)
    assert cam.fov_deg == pytest.approx(75 / 1.1)
    cam.zoom(-2)
    assert cam.fov_deg == pytest.approx(75 * 1.1)
    cam.zoom(100)
    assert cam.fov_deg == 20
    cam.zoom(-100)
    assert cam.fov_deg == 120
    assert ViewerCamera(fov_deg=5).fov_deg == 20


def test_move_relative_to_yaw_and_horizontal():
    cam = ViewerCamera(move_speed=0.5, radius=10)
    cam.move(1, 0, 0, 0.2)
    np.testing.assert_allclose(cam.position, [0, 0, -0.1], atol=1e-12)
    cam = ViewerCamera(yaw_deg=90, pitch_deg=-60, move_speed=1.0, radius=10)
    cam.move(1, 0, 0, 0.5)  # looking down-right: forward stays horizontal, towards +X
    np.testing.assert_allclose(cam.position, [0.5, 0, 0], atol=1e-12)
    cam = ViewerCamera(move_speed=1.0, radius=10)
    cam.move(0, 1, 0, 0.25)
    np.testing.assert_allclose(cam.position, [0.25, 0, 0], atol=1e-12)  # right = +X
    cam.move(0, 0, 1, 0.25)
    np.testing.assert_allclose(cam.position, [0.25, 0.25, 0], atol=1e-12)  # up = +Y
    cam = ViewerCamera(yaw_deg=90, move_speed=1.0, radius=10)
    cam.move(0, 1, 0, 1.0)
    np.testing.assert_allclose(cam.position, [0, 0, 1], atol=1e-12)  # facing +X, right is +Z


def test_move_diagonal_not_faster_and_dt_zero():
    cam = ViewerCamera(move_speed=1.0, radius=10)
    cam.move(1, 1, 0, 1.0)
    assert np.linalg.norm(cam.position) == pytest.approx(1.0)
    cam.move(1, 0, 0, 0.0)
    assert np.linalg.norm(cam.position) == pytest.approx(1.0)


def test_radius_limit_clamps_to_surface():
    cam = ViewerCamera(radius=0.5, move_speed=1.0, yaw_deg=90)
    for _ in range(100):
        cam.move(1, 0, 0.5, 0.1)
        assert np.linalg.norm(cam.position) <= 0.5 + 1e-12
    assert np.linalg.norm(cam.position) == pytest.approx(0.5)
    # sliding along the surface: pushing sideways still moves
    before = np.array(cam.position)
    cam.move(0, 1, 0, 0.1)
    assert np.linalg.norm(np.array(cam.position) - before) > 0.01
    assert np.linalg.norm(cam.position) == pytest.approx(0.5)
    far = ViewerCamera(position=(3.0, 0.0, 4.0), radius=0.5)
    np.testing.assert_allclose(far.position, [0.3, 0, 0.4], atol=1e-12)


def test_reset_and_state_snapshot():
    cam = ViewerCamera(yaw_deg=15, fov_deg=80)
    home = cam.state
    cam.rotate(40, 20)
    cam.zoom(3)
    cam.move(1, 1, 1, 0.3)
    snap = cam.state
    assert snap != home
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.yaw_deg = 0.0  # type: ignore[misc]
    cam.reset()
    assert cam.state == home
    cam.set_state(snap)
    assert cam.state == snap
    cam.set_home()
    cam.rotate(10, 0)
    cam.reset()
    assert cam.state == snap


def test_moved_since_thresholds():
    cam = ViewerCamera(radius=1.0, move_speed=1.0)
    s0 = cam.state
    cam.rotate(0.5, 0.0)
    assert not cam.moved_since(s0, angle_deg=1.0, distance=0.01)
    cam.rotate(0.7, 0.0)
    assert cam.moved_since(s0, angle_deg=1.0, distance=0.01)
    cam.reset()
    cam.move(1, 0, 0, 0.005)
    assert not cam.moved_since(s0, 1.0, 0.01)
    cam.move(1, 0, 0, 0.01)
    assert cam.moved_since(s0, 1.0, 0.01)
    cam.reset()
    cam.zoom(5)  # FOV does not change depth order
    assert not cam.moved_since(s0)
    a = CameraState(yaw_deg=0, pitch_deg=0)
    b = CameraState(yaw_deg=90, pitch_deg=0)
    assert a.angle_to(b) == pytest.approx(90)
    assert math.isclose(
        CameraState(position=(0, 0, 0)).distance_to(CameraState(position=(0, 3, 4))), 5
    )
