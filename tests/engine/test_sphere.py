"""engine.sphere against an independent implementation (py360convert) and analytic cases."""

from __future__ import annotations

import math

import numpy as np
import py360convert
import pytest
import torch

from engine.camera import View, gl_to_cv
from engine.sphere import (
    ViewSetConfig,
    coverage,
    dir_to_pixel,
    equirect_dirs,
    fuse_views,
    make_views,
    matched_view_size,
    perspective,
    perspective_view,
    pixel_solid_angle,
    pixel_to_dir,
    sample_equirect,
)
from tests.conftest import smooth_equirect, textured_equirect


def _psnr(a, b, peak=1.0):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(peak * peak / mse)


def test_design_conventions():
    """DESIGN.md section 2: image centre looks along -Z, u = 0.75 along +X, top is +Y."""
    h, w = 64, 128
    d = equirect_dirs(h, w)
    centre = pixel_to_dir(
        torch.tensor(h / 2 - 0.5, dtype=torch.float64),
        torch.tensor(w / 2 - 0.5, dtype=torch.float64),
        h,
        w,
    )
    assert torch.allclose(centre, torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-12)
    right = pixel_to_dir(
        torch.tensor(h / 2 - 0.5, dtype=torch.float64),
        torch.tensor(0.75 * w - 0.5, dtype=torch.float64),
        h,
        w,
    )
    assert torch.allclose(right, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert d[0, :, 1].min() > 0.99  # first row is near the zenith (+Y)
    assert torch.allclose(d.norm(dim=-1), torch.ones(h, w, dtype=torch.float64))


def test_pixel_dir_roundtrip():
    rng = np.random.default_rng(0)
    row = torch.from_numpy(rng.uniform(0, 99, 500))
    col = torch.from_numpy(rng.uniform(-0.49, 199.49, 500))
    r2, c2 = dir_to_pixel(pixel_to_dir(row, col, 100, 200), 100, 200)
    assert torch.allclose(r2, row, atol=1e-9)
    assert torch.allclose(
        torch.remainder(c2 + 0.5, 200), torch.remainder(col + 0.5, 200), atol=1e-9
    )


def test_solid_angles_sum_to_sphere():
    assert float(pixel_solid_angle(90, 180).sum() * 180) == pytest.approx(4 * math.pi, rel=1e-12)


@pytest.mark.parametrize(
    "yaw,pitch,fov,roll",
    [
        (0, 0, 90, 0),
        (35, 20, 75, 0),
        (170, -10, 90, 0),
        (-100, 60, 100, 0),
        (0, 85, 90, 0),
        (179, 0, 60, 0),
        (-45, -88, 90, 0),
        (20, 10, 90, 15),
    ],
)
def test_perspective_matches_py360convert(yaw, pitch, fov, roll):
    """Independent reference: py360convert.e2p, on a smooth image, >= 40 dB."""
    img = smooth_equirect(512, 1024)
    out_hw = (120, 160)
    ours = perspective(img, yaw, pitch, fov, out_hw, roll_deg=roll)
    vfov = View(yaw, pitch, fov, *out_hw).vfov_deg
    ref = py360convert.e2p(img, (fov, vfov), yaw, pitch, out_hw, in_rot_deg=roll, mode="bilinear")
    assert ours.shape == ref.shape and ours.dtype == np.float32
    assert _psnr(ours, ref) >= 40.0


def test_perspective_dtypes_and_torch_batch():
    img8 = textured_equirect(128, 256)
    a = perspective(img8, 30, 10, 90, (32, 48))
    assert a.dtype == np.uint8 and a.shape == (32, 48, 3)
    gray = perspective(img8[..., 0], 30, 10, 90, (32, 48))
    assert gray.shape == (32, 48) and np.array_equal(gray, a[..., 0])
    img16 = img8.astype(np.uint16) * 257
    b = perspective(img16, 30, 10, 90, (32, 48))
    assert b.dtype == np.uint16 and np.abs(b.astype(int) // 257 - a.astype(int)).max() <= 1
    lat = torch.randn(2, 4, 128, 256)
    t = perspective(lat, 30, 10, 90, (32, 48))
    assert t.shape == (2, 4, 32, 48)
    np.testing.assert_allclose(
        t[1, 2].numpy(), perspective(lat[1, 2].numpy(), 30, 10, 90, (32, 48)), atol=1e-5
    )


def test_view_direction_signs():
    """Yaw positive turns right (+X), pitch positive looks up (+Y)."""
    assert np.allclose(View(90, 0).forward(), [1, 0, 0], atol=1e-12)
    assert np.allclose(View(0, 90).forward(), [0, 1, 0], atol=1e-12)
    assert np.allclose(View(180, 0).forward(), [0, 0, 1], atol=1e-12)
    # a marker at u = 0.75 (+X) is at the centre of the yaw = 90 view
    img = np.zeros((64, 128), np.float32)
    img[31:33, 95:97] = 1
    p = perspective(img, 90, 0, 60, (33, 33))
    assert np.unravel_index(np.argmax(p), p.shape) == (16, 16)


def test_seam_wraps_and_pole_continuous():
    """A view across the seam samples both edges; a view of the pole has no discontinuity."""
    img = smooth_equirect(256, 512)
    seam = perspective(img, 180, 0, 90, (64, 64))
    # the smooth field is continuous, so neighbouring output pixels differ only a little
    assert np.abs(np.diff(seam, axis=1)).max() < 0.05
    pole = perspective(img, 0, 90, 90, (64, 64))
    assert np.abs(np.diff(pole, axis=0)).max() < 0.05 and np.abs(np.diff(pole, axis=1)).max() < 0.05


def test_sample_beyond_pole_uses_other_side():
    img = torch.arange(4 * 8, dtype=torch.float32).reshape(1, 1, 4, 8)
    # row -1, col 1 is row 0, col 1 + W/2
    v = sample_equirect(img, torch.tensor([-1.0]), torch.tensor([1.0]))
    assert float(v) == float(img[0, 0, 0, 5])
    v = sample_equirect(img, torch.tensor([4.0]), torch.tensor([7.0]))
    assert float(v) == float(img[0, 0, 3, 3])
    v = sample_equirect(img, torch.tensor([2.0]), torch.tensor([-1.0]))  # wraps in longitude
    assert float(v) == float(img[0, 0, 2, 7])


def test_default_view_set_covers_sphere():
    views = make_views()
    assert len(views) == 20
    cov = coverage(views)
    assert cov.covered == pytest.approx(1.0)
    assert cov.overlap > 0.95
    # the equator ring alone leaves the caps uncovered: the coverage figure can fail
    ring = coverage(views[:8])
    assert 0.5 < ring.covered < 0.9


def test_fuse_inverts_projection():
    """Fusing exact perspective views of an image gives the image back (eq. 3)."""
    img = smooth_equirect(128, 256)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    views = make_views(ViewSetConfig(size=96))
    per_view = torch.stack([perspective_view(t, v) for v in views])
    fused, weight = fuse_views(per_view, views, 128, 256, band_pixels=4096)
    assert weight.min() > 0
    assert float((fused - t).abs().max()) < 2e-3


def test_fuse_is_weighted_average():
    """Two views with constant images: the fused value is their feather-weighted average,
    with weights computed here independently (tan projection, smoothstep ramps)."""
    views = [View(0, 0, 90, 32, 32), View(30, 0, 90, 32, 32)]
    imgs = torch.stack([torch.full((1, 1, 32, 32), 1.0), torch.full((1, 1, 32, 32), 3.0)])
    fused, weight = fuse_views(imgs, views, 64, 128, feather=0.15)
    covered = weight > 0
    vals = fused[0, 0][covered]
    assert float(vals.min()) >= 1.0 - 1e-6 and float(vals.max()) <= 3.0 + 1e-6

    def ramp(t):
        t = min(max(t / 0.15, 0.0), 1.0)
        return t * t * (3 - 2 * t)

    def w(lon_deg, lat_deg, yaw_deg):
        # a point at (lon, lat) seen by a level camera at yaw: x = f tan(dlon) (lat ~ 0 row)
        dl = math.radians(lon_deg - yaw_deg)
        x = 16 + 16 * math.tan(dl)
        y = 16 - 16 * math.tan(math.radians(lat_deg)) / math.cos(dl)
        return ramp(min(x, 32 - x) / 32) * ramp(min(y, 32 - y) / 32)

    col = 60  # lon = -8.4375 degrees, 38.4 degrees left of view 1
    lon = ((col + 0.5) / 128 - 0.5) * 360
    lat = (0.5 - 31.5 / 64) * 180
    w0, w1 = w(lon, lat, 0), w(lon, lat, 30)
    assert 0 < w1 < 1 and w0 == pytest.approx(1.0)
    expect = (w0 * 1 + w1 * 3) / (w0 + w1)
    assert float(fused[0, 0, 31, col]) == pytest.approx(expect, abs=1e-4)
    # behind the viewer nothing is covered and the value is the fill (0)
    assert float(weight[32, 0]) == 0 and float(fused[0, 0, 32, 0]) == 0


def test_bilinear_resampling_shrinks_white_noise_variance():
    """Unit white noise bilinearly sampled into a view at matched resolution keeps only part
    of its variance: why the diffusion path never resamples noise (it draws it per view with
    ``SphereViews.white_noise``, whose unit variance test_denoiser checks)."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 256, 512, generator=g)
    view = View(20, 10, 90, matched_view_size(512, 90), matched_view_size(512, 90))
    sampled = perspective_view(noise, view)
    assert 0.2 < float(sampled.var()) < 0.8  # bilinear resampling shrinks variance


def test_camera_conventions_roundtrip():
    v = View(30, -20, 70, 40, 60, roll_deg=5, position=(0.1, 0.2, -0.3))
    w2c = v.world_to_camera_gl()
    # the camera centre maps to the origin, the forward direction to -Z (GL) / +Z (CV)
    c = np.array([*v.position, 1.0])
    assert np.allclose(w2c @ c, [0, 0, 0, 1])
    f = np.array([*(np.array(v.position) + v.forward()), 1.0])
    assert np.allclose((w2c @ f)[:3], [0, 0, -1])
    assert np.allclose((gl_to_cv(w2c) @ f)[:3], [0, 0, 1])
    assert np.allclose(gl_to_cv(gl_to_cv(w2c)), w2c)
    # pixel rays agree with the intrinsics: project a ray with K and the CV extrinsics
    rays = v.pixel_rays()
    k = v.intrinsics()
    cv = gl_to_cv(w2c)
    p = cv[:3, :3] @ (np.array(v.position) + rays[7, 11])
    p = k @ (p + cv[:3, 3])
    assert np.allclose(p[:2] / p[2], [11.5, 7.5])
