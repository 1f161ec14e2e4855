"""`main.py render` end to end: the OpenGL backend (offscreen EGL) writes the same video as
the pure-torch reference backend, and `auto` picks OpenGL when a context can be made."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from engine import cli, config, pipeline
from engine.video import read_mp4
from tests.conftest import textured_equirect
from viewer.commands import choose_backend, register
from viewer.gl.context import has_gl

GL_OK, GL_REASON = has_gl()
pytestmark = [
    pytest.mark.gl,
    pytest.mark.skipif(not GL_OK, reason=f"no OpenGL context: {GL_REASON}"),
]


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    Image.fromarray(textured_equirect(128, 256, seed=7)).save(d / "pano.png")
    mask = np.zeros((128, 256), np.uint8)
    mask[20:50, 40:200] = 255
    Image.fromarray(mask).save(d / "mask.png")
    inputs = config.Inputs(d / "pano.png", mask=d / "mask.png", motion="sway", speed_deg_s=20)
    pipeline.run(inputs, config.build_config("preview", frames=3), d / "run")
    return d / "run"


def _psnr(a, b):
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def test_gl_and_torch_backends_write_the_same_video(scene_dir, tmp_path, capsys):
    common = ["render", str(scene_dir), "--size", "128x96", "--frames", "6", "--tour", "orbit"]
    assert (
        cli.main([*common, "--out", str(tmp_path / "gl.mp4"), "--backend", "gl"], [register]) == 0
    )
    assert (
        cli.main([*common, "--out", str(tmp_path / "t.mp4"), "--backend", "torch"], [register]) == 0
    )
    assert "gl renderer" in capsys.readouterr().out
    gl, torch_ = read_mp4(tmp_path / "gl.mp4"), read_mp4(tmp_path / "t.mp4")
    assert gl.shape == torch_.shape == (6, 96, 128, 3)
    assert gl.mean() > 20  # a real picture, not a black frame
    assert min(_psnr(a, b) for a, b in zip(gl, torch_)) >= 35.0


def test_auto_prefers_gl_here():
    assert choose_backend("auto") == "gl"
    assert choose_backend("torch") == "torch"
