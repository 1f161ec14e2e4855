"""The weightless depth stage: layout prior against its analytic form, user depth filling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.depth import DepthConfig, DepthStage, layout_prior
from engine.depth.prior import fill_user_depth
from engine.errors import InputError


def test_layout_prior_ground_plane_and_far_shell():
    cfg = DepthConfig(camera_height=1.6, far=100.0)
    h, w = 180, 360
    d = layout_prior(h, w, cfg)
    assert d.shape == (h, w) and d.dtype == np.float32
    lat = (0.5 - (np.arange(h) + 0.5) / h) * 180
    # the upper hemisphere is the far shell
    assert np.allclose(d[lat > 0], 100.0)
    # well below the horizon it is the ground plane: distance h / sin(-lat), so the point
    # it describes lies 1.6 below the viewer
    for row in np.nonzero(lat < -20)[0]:
        expect = 1.6 / math.sin(math.radians(-lat[row]))
        assert d[row, 0] == pytest.approx(expect, rel=1e-3)
        assert d[row, 0] * math.sin(math.radians(-lat[row])) == pytest.approx(1.6, rel=1e-3)
    # rows are constant; the horizon blend is monotonic and continuous
    assert (d == d[:, :1]).all()
    col = d[:, 0]
    below = col[lat < 0]
    assert (np.diff(below) <= 1e-4).all()
    # continuous with the sky at the horizon: the first row below it is within 5% of far
    first_below = col[lat < 0][0]
    assert 0.95 * 100.0 <= first_below <= 100.0


def test_user_depth_invalid_pixels_go_to_far_shell():
    cfg = DepthConfig(near=0.5, far=50.0)
    d = np.array([[np.nan, 0.1, 3.0, 1e9]], np.float32)
    out = fill_user_depth(d, cfg)
    assert out.tolist() == [[50.0, 0.5, 3.0, 50.0]]


def test_stage_resamples_user_depth_and_broadcasts_frames():
    user = np.full((64, 128), 7.0, np.float32)
    pd = DepthStage().run(5, (32, 64), user)
    assert pd.depth.shape == (5, 32, 64) and np.allclose(pd.depth, 7.0)
    assert "user" in pd.source
    assert DepthStage().run(2, (32, 64)).source.startswith("layout")


def test_bad_depth_settings():
    with pytest.raises(InputError):
        DepthStage(DepthConfig(near=10, far=5))
