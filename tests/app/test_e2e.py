"""End to end, the way a person uses the app: open the bundled sample (a 512x256 resize of
it), paint the sky with simulated mouse strokes on the canvas (one crossing the seam), point
its arrow with the direction tool, pick a tiny preset in the Generate panel, press Generate,
cancel, press Ctrl+G again, wait for the scene, scrub the time slider and check that the
viewer's framebuffer changes between frames (and comes back exactly)."""

from __future__ import annotations

import json
import math
import os
import shutil
import time

import numpy as np
import pytest

from engine.pipeline import stage_spans

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from tests.app import test_main_window as main_window_tests  # noqa: E402
from tests.app.test_worker import TINY, tiny_panorama  # noqa: E402

pytestmark = [pytest.mark.qt, pytest.mark.slow]

gui = main_window_tests.gui
dialogs = main_window_tests.dialogs
BRUSH = 40.0


def segment_distance(h: int, w: int, p0, p1) -> np.ndarray:
    """[H, W] distance of every pixel centre to the segment p0-p1 (image coordinates, x may
    run past the right edge: the pixel grid is tested at x and x + W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    best = np.full((h, w), np.inf)
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    for shift in (-w, 0, w):
        px, py = xx + shift - x0, yy - y0
        t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(px - t * dx, py - t * dy))
    return best


def stroke(qtbot, canvas, points_img) -> list[tuple[float, float]]:
    """Drag the left button through image points; returns the image points the canvas saw."""
    from PySide6.QtCore import Qt

    pos = [canvas.image_to_widget(x, y).toPoint() for x, y in points_img]
    qtbot.mousePress(canvas, Qt.LeftButton, pos=pos[0])
    for p in pos[1:]:
        qtbot.mouseMove(canvas, p)
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=pos[-1])
    return [canvas.widget_to_image(p.toPointF()) for p in pos]


def grab(view) -> np.ndarray:
    view.wait_for_sort()
    return view.grab_frame().astype(np.float32) / 255


def test_paint_generate_cancel_restart_and_scrub(gui, qtbot, tmp_path, dialogs, monkeypatch):
    import threading

    from PySide6.QtCore import Qt

    from app.worker import TaskWorker

    reports = []  # (thread, cancelled already?) of every progress report the engine made
    original = TaskWorker._report

    def recording(self, stage, fraction, message):
        reports.append((threading.get_ident(), self.cancel_token.cancelled))
        original(self, stage, fraction, message)

    monkeypatch.setattr(TaskWorker, "_report", recording)
    win = main_window_tests.make_window(gui, qtbot, tmp_path)
    assert win.open_panorama(tiny_panorama(tmp_path))
    canvas, model, panel = win.canvas, win.model, win.generate_panel
    assert win.tabs.currentWidget() is canvas
    h, w = model.size

    # ---- paint the sky: two strokes, the second continues across the right edge
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key_B)
    canvas.set_brush_size(BRUSH)
    assert canvas.tool == "brush"
    seen = stroke(qtbot, canvas, [(20 + 60 * i, 22) for i in range(9)])
    seen += stroke(qtbot, canvas, [(300, 50), (400, 52), (500, 50), (530, 50), (560, 50)])
    seen += stroke(qtbot, canvas, [(-30, 80), (0, 80), (60, 82), (120, 80), (180, 80)])
    assert len(model.layers) == 1 and not model.is_empty()
    dist = np.full((h, w), np.inf)
    for a, b in zip(seen[:8], seen[1:9]):
        dist = np.minimum(dist, segment_distance(h, w, a, b))
    for a, b in zip(seen[9:13], seen[10:14]):
        dist = np.minimum(dist, segment_distance(h, w, a, b))
    for a, b in zip(seen[14:-1], seen[15:]):
        dist = np.minimum(dist, segment_distance(h, w, a, b))
    mask = model.layers[0].mask
    r = BRUSH / 2
    assert mask[dist <= r - 0.75].all() and not mask[dist > r + 0.75].any()
    assert mask[50, :20].all()  # the stroke that ran past x = W went on at the left edge

    # ---- point the arrow: drag left from the region's centre (west = 180 degrees)
    qtbot.keyClick(canvas, Qt.Key_D)
    assert canvas.tool == "direction"
    cx, cy = canvas.centroid(0)
    c = canvas.image_to_widget(cx, cy).toPoint()
    qtbot.mousePress(canvas, Qt.LeftButton, pos=c)
    qtbot.mouseMove(canvas, c - type(c)(40, 0))
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=c - type(c)(80, 0))
    # (the arrow starts at the exact centroid, the mouse at whole pixels: within a degree)
    assert model.layers[0].direction_deg == pytest.approx(180.0, abs=1.5)
    win.region_panel.speed_spin.setValue(30.0)  # fast clouds: visible in 3 frames
    assert model.layers[0].speed_deg_s == 30.0

    # ---- a tiny preset through the panel, then Generate and Cancel
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("preview"))
    panel.frames_spin.setValue(3)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    slow = {k: dict(v) for k, v in TINY.items()}
    slow["lift"]["refine"] = {"passes": 200}  # long enough to cancel while lifting
    panel.overrides = slow
    qtbot.mouseClick(panel.generate_button, Qt.LeftButton)
    assert win._running() and not panel.generate_button.isEnabled()
    progress = win.progress_panel
    qtbot.waitUntil(lambda: progress.stage == "lift", timeout=60000)
    lift_start = stage_spans()["lift"][0]  # the stages before it are done: the bar moved
    assert progress.fraction >= lift_start > 0.04
    assert progress.elapsed_label.text().startswith("Elapsed")
    t0 = time.monotonic()
    qtbot.mouseClick(progress.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: win.worker.outcome == "cancelled", timeout=60000)
    print(f"cancel latency: {1000 * (time.monotonic() - t0):.0f} ms")
    # the engine ran off the UI thread, and stopped at its next check: no report after the
    # cancel (every report checks the token first)
    assert reports and threading.get_ident() not in {t for t, _ in reports}
    assert sum(after for _, after in reports) <= 1  # one may race the click, no more
    qtbot.waitUntil(lambda: not progress.running, timeout=5000)
    assert progress.stage_label.text() == "Cancelled" and panel.generate_button.isEnabled()
    assert win.resume_action.isEnabled()  # its checkpoints are there to continue from
    assert win.viewer.view.scene is None and not dialogs.errors

    # ---- restart with the tiny settings (Ctrl+G) and wait for the scene
    panel.overrides = TINY
    with qtbot.waitActive(win):
        win.activateWindow()
    qtbot.keyClick(win.tabs, Qt.Key_G, Qt.ControlModifier)
    assert win._running()
    qtbot.waitUntil(lambda: win.worker.outcome is not None, timeout=90000)
    assert win.worker.outcome == "finished", win.worker.error
    qtbot.waitUntil(lambda: not progress.running, timeout=5000)
    assert progress.stage_label.text().startswith("Finished in")
    assert win.tabs.currentWidget() is win.viewer and not dialogs.errors
    assert not win.resume_action.isEnabled()  # a finished run leaves no checkpoints
    # never saved, so the run got a project in the app's data folder: after a crash it is
    # under Open Recent, and reopening it offers to resume
    assert win.auto_project and win.project.folder.parent == tmp_path / "runs"
    assert str(win.project.folder.absolute()) == win.recent_files()[0]
    doc = json.loads((win.project.folder / "project.json").read_text())
    assert doc["generation"]["status"] == "done" and doc["result"] == "result"
    report = win.last_report
    assert report["frames"] == 3 and report["static_max_error"] == 0
    # its stage times are kept: the next run of this preset at this size estimates from them
    assert win._stage_seconds("preview") == pytest.approx(report["timings_s"])
    assert report["animated_fraction"] == pytest.approx(mask.mean(), abs=0.08)

    # ---- scrub: look up at the painted sky; frames differ there, and come back exactly
    viewer = win.viewer
    if viewer.playback.playing:
        viewer.toggle_play()
    viewer.view.camera.rotate(-165.0, 25.0)  # the clouds near the seam
    viewer.view.update()
    viewer.slider.setValue(0)
    qtbot.wait(50)
    img0 = grab(viewer.view)
    assert img0.std() > 0.03, "blank framebuffer"
    viewer.slider.setValue(2)
    assert viewer.view.frame == 2 and viewer.frame_label.text() == "frame 2 / 3"
    img2 = grab(viewer.view)
    rows = img0.shape[0]
    sky, ground = slice(0, int(0.4 * rows)), slice(int(0.85 * rows), rows)
    diff = np.abs(img2[sky] - img0[sky])
    print(f"frame 2 vs 0 in the sky: mean {diff.mean():.4f}, max {diff.max():.3f}")
    assert diff.mean() > 0.004 and diff.max() > 0.08  # the clouds moved
    np.testing.assert_array_equal(img2[ground], img0[ground])  # the ground did not
    viewer.slider.setValue(0)
    np.testing.assert_array_equal(grab(viewer.view), img0)
    assert math.isfinite(report["psnr_native"])
    win.dirty = False
    win.close()
