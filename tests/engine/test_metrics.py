"""engine.metrics on analytic cases: each figure is 1 (or 0) where it should be, and large
where the defect it measures is present."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.metrics import (
    loop_discontinuity,
    psnr,
    seam_discontinuity,
    static_max_error,
)
from tests.conftest import textured_equirect


def _rolling(t_count=8, shift=3):
    """A pattern sliding right by `shift` px per frame, wrapping: a perfect loop when
    t_count * shift is a multiple of the width."""
    base = textured_equirect(32, 64)
    return np.stack([np.roll(base, t * shift, axis=1) for t in range(t_count)])


def test_seam_of_a_continuous_panorama_is_ordinary():
    r = seam_discontinuity(textured_equirect(64, 128))
    assert 0.5 < r["ratio"] < 1.5


def test_seam_break_is_detected():
    img = textured_equirect(64, 128).copy()
    img[:, 64:] = 255 - img[:, 64:]  # a hard edge at the middle and at the seam
    assert seam_discontinuity(img)["ratio"] > 3


def test_perfect_loop_has_ratio_one():
    frames = _rolling(t_count=8, shift=8)  # 8 x 8 = 64 = width: frame 8 == frame 0
    r = loop_discontinuity(frames)
    assert r["ratio"] == pytest.approx(1.0, rel=1e-6)


def test_broken_loop_is_detected():
    frames = _rolling(t_count=8, shift=2)  # the loop jumps back 14 px after 2 px steps
    assert loop_discontinuity(frames)["ratio"] > 1.5


def test_loop_only_counts_animated_pixels():
    frames = _rolling(t_count=8, shift=8)
    weight = np.zeros(frames.shape[1:3], np.float32)
    weight[:, :10] = 1
    frames[:, :, 10:] = frames[0, :, 10:]  # the rest is static
    # the static part does not dilute the figure: same as measuring the animated columns alone
    alone = loop_discontinuity(np.ascontiguousarray(frames[:, :, :10]))
    assert loop_discontinuity(frames, weight)["ratio"] == pytest.approx(alone["ratio"], rel=1e-6)
    assert loop_discontinuity(frames, weight)["loop"] == pytest.approx(alone["loop"], rel=1e-6)
    assert loop_discontinuity(frames)["loop"] < 0.5 * alone["loop"]  # diluted without weight
    assert loop_discontinuity(frames, np.zeros_like(weight))["ratio"] == 0.0


def test_static_max_error_is_exact():
    src = textured_equirect(16, 32)
    frames = np.stack([src, src, src]).copy()
    weight = np.zeros((16, 32), np.float32)
    weight[:4] = 0.5
    frames[1, :4] = 0  # changes inside the region do not count
    assert static_max_error(frames, src, weight) == 0
    frames[2, 10, 10, 1] = np.uint8((int(src[10, 10, 1]) + 7) % 256)
    expected = abs(int(frames[2, 10, 10, 1]) - int(src[10, 10, 1]))
    assert static_max_error(frames, src, weight) == expected


def test_psnr_analytic():
    a = np.zeros((10, 10))
    b = np.full((10, 10), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    mask = np.zeros((10, 10), bool)
    mask[0, 0] = True
    b[0, 0] = 0.0
    assert psnr(a, b, mask=mask) == math.inf


def test_peak_rss_matches_the_kernels_high_water_mark_and_grows_with_memory():
    """In a fresh process: peak_rss_mb() against the kernel's own VmHWM (/proc), before and
    after touching 300 MB."""
    import subprocess
    import sys

    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    code = (
        "import numpy as np\n"
        "from engine.metrics import peak_rss_mb\n"
        "def hwm():\n"
        "    line = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0]\n"
        "    return int(line.split()[1]) * 1024 / 1e6\n"
        "a, ha = peak_rss_mb(), hwm()\n"
        "block = np.ones(300_000_000, np.uint8)\n"
        "b, hb = peak_rss_mb(), hwm()\n"
        "print(a, ha, b, hb, int(block[::4096].sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    a, ha, b, hb, _ = (float(x) for x in out.stdout.split())
    assert a == pytest.approx(ha, rel=0.02) and b == pytest.approx(hb, rel=0.02)
    assert 290 < b - a < 330


def test_loop_needs_three_frames():
    frames = _rolling(t_count=2, shift=8)
    assert loop_discontinuity(frames)["ratio"] is None


def test_psnr_text_says_n_a_where_nothing_was_compared():
    from engine.batch.display import psnr_text
    from engine.metrics import db_text

    assert db_text(40.714) == "40.71 dB" and db_text(40.714, 1) == "40.7 dB"
    assert db_text(None) == "n/a" and db_text(float("nan")) == "n/a"
    assert psnr_text({"psnr_native": None}) == "psnr_native n/a"
    assert psnr_text({"psnr_native": 33.0412, "psnr_native_resolution": "14 views from x"}) == (
        "psnr_native 33.04 dB (14 views)"
    )
