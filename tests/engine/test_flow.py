"""The weightless flow animator: exact static pixels, seamless loop, motion on the sphere."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.animate import FlowAnimator, FlowConfig, region_weights
from engine.animate.base import feathered
from engine.errors import InputError
from engine.io import Panorama, Region
from engine.metrics import loop_discontinuity, seam_discontinuity, static_max_error
from engine.sphere import EquirectSampler, equirect_dirs
from tests.conftest import textured_equirect

RIGID = dict(turbulence=0.0, wobble_deg=0.0)


def _pano(h=64, w=128, seed=0):
    return Panorama(textured_equirect(h, w, seed), None, "test")


def _band(h, w, rows, cols=None):
    m = np.zeros((h, w), bool)
    m[rows, cols if cols is not None else slice(None)] = True
    return m


def test_static_pixels_bit_identical_and_frame0_is_input():
    pano = _pano()
    mask = _band(64, 128, slice(10, 30), slice(40, 100))
    regions = [Region("r", mask, 30.0, 20.0, feather_px=4)]
    video = FlowAnimator(FlowConfig(frames=6, fps=4)).run(pano, regions)
    assert video.frames.shape == (6, 64, 128, 3) and video.frames.dtype == np.uint8
    assert static_max_error(video.frames, pano.rgb, video.weight) == 0
    assert np.array_equal(
        video.frames[:, ~mask], np.broadcast_to(pano.rgb[~mask], (6, *pano.rgb[~mask].shape))
    )
    assert np.array_equal(video.frames[0], pano.rgb)
    # and the region really moves
    assert np.abs(video.frames[2][mask].astype(int) - pano.rgb[mask]).mean() > 2


def test_feather_is_zero_outside_and_one_deep_inside():
    mask = _band(40, 80, slice(10, 30))
    f = feathered(mask, 5.0)
    assert (f[~mask] == 0).all()
    assert f[20].min() == pytest.approx(1.0)
    assert 0 < f[10, 5] < 1  # the edge row ramps
    # overlapping regions: later wins and weights never exceed 1
    a = Region("a", mask, 0, 1, feather_px=0)
    b = Region("b", _band(40, 80, slice(20, 40)), 0, 1, feather_px=0)
    w = region_weights([a, b])
    assert w.sum(0).max() <= 1 + 1e-6 and w[0, 25].max() == 0 and w[1, 25].min() == 1


def test_seamless_loop_and_seam():
    pano = _pano(96, 192)
    mask = _band(96, 192, slice(20, 60))  # a full ring: crosses the seam
    video = FlowAnimator(FlowConfig(frames=8, fps=8, **RIGID)).run(
        pano, [Region("ring", mask, 0.0, 12.0, 6)]
    )
    loop = loop_discontinuity(video.frames, video.weight)
    steps = [
        np.abs(video.frames[i + 1][mask].astype(float) - video.frames[i][mask]).mean()
        for i in range(7)
    ]
    assert loop["loop"] <= 1.05 * max(steps)  # last -> first is an ordinary step
    assert loop["ratio"] < 1.5
    assert seam_discontinuity(video.frames)["ratio"] < 1.5


@pytest.mark.parametrize("lat_deg,lon_deg", [(0, 0), (10, 179.5), (-30, -179), (80, 45), (89, 0)])
def test_eastward_motion_is_a_rotation_about_up(lat_deg, lon_deg):
    """Analytic case: a rigid eastward region (whole sphere, no turbulence) rotates every
    direction about +Y by omega * t, across the seam and next to the pole alike."""
    h, w = 90, 180
    anim = FlowAnimator(FlowConfig(**RIGID))
    regions = [Region("all", np.ones((h, w), bool), 0.0, 10.0, feather_px=0)]
    field = EquirectSampler(anim.velocity_field(regions, region_weights(regions)))
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    p = torch.tensor(
        [[math.cos(lat) * math.sin(lon), math.sin(lat), -math.cos(lat) * math.cos(lon)]]
    )
    q = anim.trace(p.float(), 2.0, field, steps=16)  # 2 s at 10 deg/s: 20 degrees
    # east (+longitude) by 20 degrees of rotation about +Y (speed is omega * cos(lat))
    lon2 = lon + math.radians(20)
    expect = torch.tensor(
        [[math.cos(lat) * math.sin(lon2), math.sin(lat), -math.cos(lat) * math.cos(lon2)]]
    )
    assert torch.allclose(q, expect, atol=2e-3)


def test_northward_field_is_smooth_at_the_pole():
    h, w = 64, 128
    anim = FlowAnimator(FlowConfig(**RIGID))
    regions = [Region("all", np.ones((h, w), bool), 90.0, 10.0, feather_px=0)]
    v = anim.velocity_field(regions, region_weights(regions))[0]  # [3, H, W]
    # magnitude omega * cos(lat): vanishes towards the poles, tangent everywhere
    d = equirect_dirs(h, w).float().permute(2, 0, 1)
    assert float((v * d).sum(0).abs().max()) < 1e-5
    mag = v.norm(dim=0)
    assert float(mag[0].max()) < float(mag[h // 2].min()) * 0.05
    # northward: the y component is positive everywhere off the poles
    assert float(v[1, 1:-1].min()) > 0


def test_trajectories_stay_inside_the_region():
    """The field falls to zero at the feathered edge: traced points never leave the region."""
    h, w = 64, 128
    mask = _band(h, w, slice(20, 40), slice(30, 90))
    regions = [Region("r", mask, 0.0, 40.0, feather_px=6)]
    anim = FlowAnimator(FlowConfig())
    weights = region_weights(regions)
    field = EquirectSampler(anim.velocity_field(regions, weights))
    rows, cols = np.nonzero(weights[0] > 0)
    from engine.sphere import dir_to_pixel, pixel_to_dir

    p = pixel_to_dir(torch.from_numpy(rows).double(), torch.from_numpy(cols).double(), h, w).float()
    q = anim.trace(p, -3.0, field, steps=24)
    r, c = dir_to_pixel(q, h, w)
    assert float(r.min()) >= 19 - 0.5 and float(r.max()) <= 40 + 0.5
    assert float(c.min()) >= 29 - 0.5 and float(c.max()) <= 90 + 0.5


def test_dark_panorama_and_zero_speed():
    dark = Panorama(np.zeros((32, 64, 3), np.uint8), None, "black")
    mask = _band(32, 64, slice(5, 20))
    v = FlowAnimator(FlowConfig(frames=4)).run(dark, [Region("r", mask, 0, 5)])
    assert (v.frames == 0).all()
    still = FlowAnimator(FlowConfig(frames=4)).run(_pano(32, 64), [Region("r", mask, 0, 0.0)])
    assert (still.frames == still.frames[0]).all()


def test_bad_config():
    with pytest.raises(InputError):
        FlowAnimator(FlowConfig(frames=1))
    with pytest.raises(InputError):
        FlowAnimator(FlowConfig(fps=0))


def _sharpness(img, mask):
    g = np.abs(np.diff(img.astype(np.float32), axis=1))
    return float(g[mask[:, 1:]].mean())


def test_sway_loops_exactly_without_double_images():
    """A swaying region oscillates (frame 0 = input, static pixels exact) and stays as sharp
    as the input, where a drifting (flow) region of the same speed is cross-faded."""
    pano = _pano(96, 192, seed=4)
    mask = _band(96, 192, slice(30, 70), slice(20, 170))
    cfg = FlowConfig(frames=8, fps=8)
    sway = FlowAnimator(cfg).run(pano, [Region("s", mask, 0.0, 20.0, 4, motion="sway")])
    flow = FlowAnimator(cfg).run(pano, [Region("f", mask, 0.0, 20.0, 4, motion="flow")])
    assert np.array_equal(sway.frames[0], pano.rgb)
    assert static_max_error(sway.frames, pano.rgb, sway.weight) == 0
    inner = _band(96, 192, slice(36, 64), slice(30, 160))
    assert np.abs(sway.frames[2][inner].astype(int) - pano.rgb[inner]).mean() > 3  # it moves
    s0 = _sharpness(pano.rgb, inner)
    assert _sharpness(sway.frames[4], inner) > 0.85 * s0
    assert _sharpness(flow.frames[4], inner) < _sharpness(sway.frames[4], inner)
    loop = loop_discontinuity(sway.frames, sway.weight)
    assert loop["ratio"] < 1.5


def test_sway_displacement_is_bounded_by_its_amplitude():
    """A longitude ramp encodes where each pixel samples from: the swing never exceeds the
    peak-to-peak amplitude omega * P / pi, and reaches a good part of it."""
    h, w = 90, 180
    lon = (np.arange(w) + 0.5) / w  # 0..1 across the image
    ramp = np.repeat(np.repeat((lon * 250)[None, :, None], h, 0), 3, 2).astype(np.uint8)
    pano = Panorama(ramp, None, "ramp")
    mask = _band(h, w, slice(30, 60), slice(40, 140))
    speed, frames, fps = 10.0, 8, 4.0
    video = FlowAnimator(FlowConfig(frames=frames, fps=fps, **RIGID)).run(
        pano, [Region("s", mask, 0.0, speed, 0, motion="sway")]
    )
    deep = _band(h, w, slice(35, 55), slice(60, 120))
    shift_deg = (video.frames[:, deep, 0].astype(float) - ramp[deep, 0]) / 250 * 360
    amplitude = speed * (frames / fps) / math.pi  # peak to peak, degrees at the equator
    assert np.abs(shift_deg).max() <= amplitude * 1.1 + 1.5
    assert np.abs(shift_deg).max() >= 0.4 * amplitude


def test_region_motion_kinds_validate():
    from engine.io import validate_regions

    with pytest.raises(InputError, match="motion"):
        validate_regions([Region("x", np.ones((4, 8), bool), 0, 1, motion="spin")], (4, 8))
