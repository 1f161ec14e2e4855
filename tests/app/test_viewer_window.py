"""The viewer window under Xvfb (real Qt, real GLX context on Mesa llvmpipe, no mocks):
its framebuffer against the pure-torch reference rasteriser, scrubbing, dragging, Space,
and a malformed scene shown as a one-line error."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from engine.camera import View  # noqa: E402
from engine.gaussians import Gaussians  # noqa: E402
from engine.lift.cells import finest_cells  # noqa: E402
from engine.lift.init import cell_values, init_gaussians, subset  # noqa: E402
from engine.lift.raster import render_view  # noqa: E402
from engine.scene import Scene4D, save_scene  # noqa: E402
from tests.conftest import ROOT, textured_equirect  # noqa: E402

pytestmark = pytest.mark.qt

# This process shares PyOpenGL's EGL platform with the EGL renderer tests, and once an EGL
# context has been used here Mesa cannot make a GLX context current: let Qt use EGL on X11
# too (set before the QApplication exists). The real app's GLX path runs in a subprocess.
os.environ.setdefault("QT_XCB_GL_INTEGRATION", "xcb_egl")

N_FRAMES = 3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def make_scene() -> Scene4D:
    """Static Gaussians on the +X half of the sphere, dynamic ones (3 frames, different
    colours) on the -X half: at yaw 0 the right of the image is static, the left animated."""
    pano = textured_equirect(128, 256, seed=3).astype(np.float32) / 255
    grid = finest_cells(72)
    rgb = cell_values(pano, grid)
    depth = 3.0 + 0.8 * torch.sin(3 * grid.lon) * torch.cos(grid.lat)
    g = init_gaussians(grid, rgb, depth)
    x = g.means[:, 0]
    static = subset(g, x >= 0)
    dyn = subset(g, x < 0)
    frames = []
    for t in range(N_FRAMES):
        d = Gaussians(**{k: v.clone() for k, v in dyn.tensors().items()})
        d.sh[:, 0, t % 3] += 0.8 * t  # a different tint per frame
        frames.append(d)
    return Scene4D(static=static, dynamic=frames, fps=10.0)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("viewer") / "scene"
    save_scene(make_scene(), folder, half=False)
    return folder


@pytest.fixture(scope="module")
def gui():
    """The app modules, imported so that this test process keeps PyOpenGL's EGL platform
    (the EGL renderer tests share the process; PyOpenGL's EGL platform drives Qt's GLX
    context on Mesa too). The GLX path of the real app runs in a subprocess test below."""
    import viewer  # noqa: F401  (PYOPENGL_PLATFORM=egl unless set)

    saved = os.environ.get("PYOPENGL_PLATFORM")
    import OpenGL.GL  # noqa: F401

    from app import viewer_window

    if saved is None:
        os.environ.pop("PYOPENGL_PLATFORM", None)
    else:
        os.environ["PYOPENGL_PLATFORM"] = saved
    from PySide6.QtGui import QSurfaceFormat

    QSurfaceFormat.setDefaultFormat(viewer_window.default_surface_format())
    return viewer_window


@pytest.fixture
def win(gui, qtbot, scene_dir):
    w = gui.ViewerWindow(gui.open_any(scene_dir), "test")
    qtbot.addWidget(w)
    w.resize(360, 300)
    w.show()
    qtbot.waitExposed(w)
    if w.playback.playing:
        w.toggle_play()
    assert w.view.gl_error is None, w.view.gl_error
    yield w
    w.close()


def reference(scene: Scene4D, t: int, view: View) -> np.ndarray:
    out = render_view(scene.frame(t), view, background=torch.zeros(3))
    return np.clip(out.rgb.numpy(), 0, 1)


def grab(w) -> tuple[np.ndarray, View]:
    """The widget's framebuffer in [0, 1] and the View it was drawn for."""
    w.view.wait_for_sort()
    img = w.view.grab_frame().astype(np.float32) / 255
    return img, w.view.camera.view(img.shape[0], img.shape[1])


def test_framebuffer_matches_reference(win):
    img, view = grab(win)
    assert img.shape[0] >= 100 and img.shape[1] >= 200
    assert img.std() > 0.05, "blank framebuffer"
    p = psnr(img, reference(win.view.scene, 0, view))
    print(f"widget vs torch reference: {p:.1f} dB")
    assert p >= 30.0


def test_slider_scrubs_frames(win):
    img0, view = grab(win)
    w = img0.shape[1]
    left, right = slice(0, int(0.35 * w)), slice(int(0.65 * w), w)
    win.slider.setValue(1)
    assert win.view.frame == 1 and win.playback.frame == 1
    assert win.frame_label.text() == f"frame 1 / {N_FRAMES}"
    img1, _ = grab(win)
    assert np.abs(img1[:, left] - img0[:, left]).max() > 0.2  # the animated half changed
    np.testing.assert_array_equal(img1[:, right], img0[:, right])  # the static half did not
    win.slider.setValue(2)
    img2, view2 = grab(win)
    assert psnr(img2, reference(win.view.scene, 2, view2)) >= 30.0
    win.slider.setValue(0)
    np.testing.assert_array_equal(grab(win)[0], img0)  # scrubbing back is exact


def test_mouse_drag_turns_camera(win, qtbot):
    from PySide6.QtCore import QPoint, Qt

    img0, _ = grab(win)
    yaw0 = win.view.camera.yaw_deg
    c = win.view.rect().center()
    qtbot.mousePress(win.view, Qt.LeftButton, pos=c)
    qtbot.mouseMove(win.view, c + QPoint(30, 0))
    qtbot.mouseMove(win.view, c + QPoint(60, 10))
    qtbot.mouseRelease(win.view, Qt.LeftButton, pos=c + QPoint(60, 10))
    assert win.view.camera.yaw_deg < yaw0 - 5  # grab the world: dragging right turns left
    img1, view1 = grab(win)
    assert np.abs(img1 - img0).mean() > 0.02
    assert psnr(img1, reference(win.view.scene, 0, view1)) >= 30.0
    qtbot.keyClick(win.view, Qt.Key_R)
    assert win.view.camera.yaw_deg == yaw0


def test_space_toggles_play_and_playback_advances(win, qtbot):
    from PySide6.QtCore import Qt

    win.activateWindow()
    win.view.setFocus()
    assert not win.playback.playing
    qtbot.keyClick(win.view, Qt.Key_Space)
    assert win.playback.playing and win.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: win.view.frame != 0, timeout=5000)  # the timer advanced it
    assert win.slider.value() == win.view.frame
    qtbot.keyClick(win.view, Qt.Key_Space)
    assert not win.playback.playing and win.play_button.text() == "Play"
    assert win.ms_label.text().endswith(" ms") and win.view.last_frame_ms > 0


def test_malformed_scene_shows_one_line_error(win, gui, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{ not json")
    shown = []
    monkeypatch.setattr(
        gui.dialogs, "error", lambda parent, title, text, details="": shown.append(text)
    )
    scene = win.view.scene
    assert win.open_path(bad) is False
    assert win.open_path(tmp_path / "missing") is False
    assert len(shown) == 2
    for text in shown:
        assert "\n" not in text and "Traceback" not in text
    assert "manifest.json" in shown[0]
    assert win.view.scene is scene  # still showing the previous scene
    assert grab(win)[0].std() > 0.05


def test_app_process_uses_glx(scene_dir):
    """A fresh process as `main.py view` runs it: PyOpenGL on GLX inside Qt's context."""
    code = f"""
import sys
from app.viewer_window import ViewerWindow, default_surface_format, open_any
from OpenGL import platform
from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication
QSurfaceFormat.setDefaultFormat(default_surface_format())
app = QApplication([])
w = ViewerWindow(open_any({str(scene_dir)!r}))
w.resize(320, 240)
w.show()
app.processEvents()
img = w.view.grab_frame()
print(type(platform.PLATFORM).__name__, w.view.gl_error, round(float(img.std()), 1))
w.close()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYOPENGL_PLATFORM", None)
    env.pop("QT_XCB_GL_INTEGRATION", None)
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    name, err, std = r.stdout.split()[-3:]
    assert name == "GLXPlatform" and err == "None" and float(std) > 10


def test_view_command_without_display(scene_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run(
        [sys.executable, "main.py", "view", str(scene_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no display" in r.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps({"format": "nope"}))
    r = subprocess.run(
        [sys.executable, "main.py", "view", str(tmp_path / "bad")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


def test_flip_turns_the_shown_scene_upside_down_and_back(win, qtbot):
    from engine.splats.axes import flip

    before = win.view.scene
    win.slider.setValue(2)
    win.flip_button.click()
    flipped = win.view.scene
    torch.testing.assert_close(flipped.static.means, flip(before.static).means)
    assert win.view.frame == 2 and flipped.n_frames == before.n_frames
    img, view = grab(win)
    ref = reference(flipped, 2, view)
    assert float(np.abs(img[..., :3] - ref).mean()) < 0.02  # drawn as flipped
    win.flip_button.click()
    torch.testing.assert_close(win.view.scene.static.means, before.static.means)
