"""Frustum culling and the moving-camera level of detail of the viewer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.camera import View
from viewer.lod import LodPolicy, coarse_order, frustum_for, is_software, slack_deg
from viewer.sort import Frustum, frustum_cull


def _cloud(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return (d * rng.uniform(2, 6, (n, 1))).astype(np.float32), rng.uniform(0.01, 0.3, n).astype(
        np.float32
    )


def _inside_brute(means, radii, view: View, margin: float) -> np.ndarray:
    """Sphere vs widened frustum, from the view's own pixel rays (independent maths)."""
    rot = view.rotation()
    cam = (means - np.asarray(view.position)) @ rot  # world -> GL camera
    z = -cam[:, 2]
    half = [margin * 0.5 * view.width / view.focal, margin * 0.5 * view.height / view.focal]
    ok = z + radii > 0.01
    for axis, t in ((0, half[0]), (1, half[1])):
        # signed distance to the plane through the eye with slope t, normal (1, -t)/|..|
        ok &= (np.abs(cam[:, axis]) - t * z) / math.hypot(1, t) <= radii
    return ok


@pytest.mark.parametrize(
    "view", [View(0, 0, 90, 64, 96), View(130, 40, 60, 80, 80, position=(0.2, 0, -0.1))]
)
def test_frustum_cull_keeps_what_the_view_can_see(view):
    means, radii = _cloud()
    f = frustum_for(view, radii, 0.01)
    keep = frustum_cull(means, view.world_to_camera_gl(), f)
    want = np.flatnonzero(_inside_brute(means, radii, view, f.margin))
    assert np.array_equal(keep, want)
    assert 0.05 < len(keep) / len(means) < 0.6
    # every splat whose centre projects into the image is kept
    rot = view.rotation()
    cam = (means - np.asarray(view.position)) @ rot
    z = -cam[:, 2]
    x = view.focal * cam[:, 0] / np.maximum(z, 1e-9) + view.width / 2
    y = -view.focal * cam[:, 1] / np.maximum(z, 1e-9) + view.height / 2
    on_screen = (z > 0.01) & (x >= 0) & (x < view.width) & (y >= 0) & (y < view.height)
    assert set(np.flatnonzero(on_screen)) <= set(keep)


def test_slack_is_the_turn_the_margin_covers():
    view = View(0, 0, 90, 100, 100)
    s = slack_deg(view, 1.2)
    assert s == pytest.approx(math.degrees(math.atan(1.2)) - 45.0)
    means, radii = _cloud(50000)
    radii[:] = 0.0
    f = frustum_for(view, radii, 0.01)
    kept = set(frustum_cull(means, view.world_to_camera_gl(), f))
    for yaw in (0.9 * s, -0.9 * s):  # turned by less than the slack: still covered
        turned = View(yaw, 0, 90, 100, 100)
        visible = set(
            frustum_cull(means, turned.world_to_camera_gl(), Frustum(1.0, 1.0, 0.01, radii, 1.0))
        )
        assert visible <= kept
    turned = View(1.5 * s, 0, 90, 100, 100)
    visible = set(
        frustum_cull(means, turned.world_to_camera_gl(), Frustum(1.0, 1.0, 0.01, radii, 1.0))
    )
    assert not visible <= kept


def test_coarse_order_keeps_the_sequence_within_the_budget():
    order = np.random.default_rng(1).permutation(100_000).astype(np.uint32)
    same, k = coarse_order(order, 100_000, 200_000)
    assert k == 1 and same is order
    sub, k = coarse_order(order, 100_000, 10_000)
    assert k == 10
    assert 8_000 < len(sub) < 12_000
    # a subsequence of the order (back to front preserved) and the same subset every time
    pos = np.argsort(order)[sub]
    assert np.all(np.diff(pos) > 0)
    again, _ = coarse_order(order[::-1], 100_000, 10_000)
    assert set(again) == set(sub)


def test_lod_policy_is_for_software_renderers_while_moving():
    assert is_software("llvmpipe (LLVM 15.0.6, 256 bits)") and not is_software("NVIDIA H200/PCIe")
    p = LodPolicy(software=True, settle_s=0.25)
    assert not p.coarse(10.0)
    p.moved(10.0)
    assert p.coarse(10.1) and not p.coarse(10.3)
    hw = LodPolicy(software=False)
    hw.moved(10.0)
    assert not hw.coarse(10.1)
