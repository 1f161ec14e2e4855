"""The painting side of the app under Xvfb (real widgets, simulated mouse and keys): canvas
strokes against a brute-force disc rasterisation, the seam, undo/redo keys, fill against a
breadth-first reference, the direction tool against the engine's flow field, the overlay,
the look-around view against engine.sphere.perspective (also at a pole) and the region panel."""

from __future__ import annotations

import math
import os
import shutil
from collections import deque

import numpy as np
import pytest

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402

from app.canvas import (  # noqa: E402
    EDGE_ALPHA,
    FILL_ALPHA,
    PaintCanvas,
    direction_from_drag,
    flood_fill,
    image_angle_deg,
)
from app.lookaround import OVERLAY_ALPHA, LookAroundView  # noqa: E402
from app.region_panel import RegionPanel  # noqa: E402
from app.regions_model import RegionsModel  # noqa: E402
from engine.animate.base import region_weights  # noqa: E402
from engine.animate.flow import FlowAnimator, FlowConfig  # noqa: E402
from engine.io import load_regions  # noqa: E402
from engine.sphere import perspective  # noqa: E402
from tests.app.test_regions_model import brute_force_stroke  # noqa: E402
from tests.conftest import textured_equirect  # noqa: E402

pytestmark = pytest.mark.qt

H, W = 64, 128


@pytest.fixture
def pano():
    return textured_equirect(H, W, seed=2)


@pytest.fixture
def setup(qtbot, pano):
    model = RegionsModel()
    canvas = PaintCanvas(model)
    panel = RegionPanel(model, canvas)
    qtbot.addWidget(canvas)
    qtbot.addWidget(panel)
    canvas.resize(520, 300)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_panorama(pano)
    return model, canvas, panel


def drag(qtbot, widget, points, button=Qt.LeftButton):
    """Press at the first point, move through the others, release at the last."""
    pts = [QPoint(round(p.x()), round(p.y())) for p in points]
    qtbot.mousePress(widget, button, pos=pts[0])
    for p in pts[1:]:
        qtbot.mouseMove(widget, p)
    qtbot.mouseRelease(widget, button, pos=pts[-1])
    return [widget.widget_to_image(QPointF(p)) for p in pts]


def test_mouse_stroke_matches_brute_force(setup, qtbot):
    model, canvas, _ = setup
    assert model.size == (H, W) and model.current == -1
    canvas.set_brush_size(6)
    pts = [canvas.image_to_widget(x, y) for x, y in ((20, 20), (45, 28), (70, 22), (71, 50))]
    img_pts = drag(qtbot, canvas, pts)
    assert len(model.layers) == 1 and model.current == 0  # painting created a region
    np.testing.assert_array_equal(model.layers[0].mask, brute_force_stroke(img_pts, 6))
    assert model.undo_stack.count() == 2  # add region + one stroke


def test_stroke_across_the_seam_continues_on_the_other_side(setup, qtbot):
    model, canvas, _ = setup
    canvas.set_zoom(4.0)
    canvas.center_on(W, 32)  # the right edge of the panorama in the middle of the widget
    canvas.set_brush_size(3)
    c = QPointF(canvas.width() / 2, canvas.height() / 2)
    img_pts = drag(qtbot, canvas, [c - QPointF(40, 0), c, c + QPointF(40, 0)])
    xs = [x for x, _ in img_pts]
    assert min(xs) % W > W - 15 and max(xs) % W < 15  # the drag really crossed the seam
    mask = model.layers[0].mask
    assert mask[32, :5].all() and mask[32, -5:].all()
    assert not mask[32, 20 : W - 20].any()
    np.testing.assert_array_equal(mask, brute_force_stroke(img_pts, 3))


def test_eraser_undo_redo_keys_and_tool_shortcuts(setup, qtbot):
    model, canvas, panel = setup
    canvas.setFocus()
    canvas.set_brush_size(10)
    drag(qtbot, canvas, [canvas.image_to_widget(10, 30), canvas.image_to_widget(110, 30)])
    painted = model.layers[0].mask.copy()
    qtbot.keyClick(canvas, Qt.Key_E)
    assert canvas.tool == "eraser" and panel.tool_buttons["eraser"].isChecked()
    qtbot.keyClick(canvas, Qt.Key_BracketLeft)
    assert canvas.brush_size == pytest.approx(8.0) and panel.brush_spin.value() == 8
    drag(qtbot, canvas, [canvas.image_to_widget(60, 10), canvas.image_to_widget(60, 50)])
    erased = model.layers[0].mask.copy()
    assert 0 < erased.sum() < painted.sum() and not erased[30, 58:62].any()
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    np.testing.assert_array_equal(model.layers[0].mask, painted)
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    np.testing.assert_array_equal(model.layers[0].mask, erased)
    for key, tool in ((Qt.Key_F, "fill"), (Qt.Key_D, "direction"), (Qt.Key_B, "brush")):
        qtbot.keyClick(canvas, key)
        assert canvas.tool == tool
    qtbot.keyClick(canvas, Qt.Key_BracketRight)
    assert canvas.brush_size == pytest.approx(10.0)
    # with the brush, a right-drag erases
    pts = drag(
        qtbot,
        canvas,
        [canvas.image_to_widget(20, 20), canvas.image_to_widget(20, 40)],
        Qt.RightButton,
    )
    np.testing.assert_array_equal(model.layers[0].mask, erased & ~brute_force_stroke(pts, 10))


def bfs_fill(rgb, x, y, tol):
    h, w = rgb.shape[:2]
    seed = rgb[y, x].astype(int)
    ok = np.abs(rgb.astype(int) - seed).max(axis=2) <= tol
    out = np.zeros((h, w), bool)
    out[y, x] = True
    todo = deque([(y, x)])
    while todo:
        r, c = todo.popleft()
        for rr, cc in ((r - 1, c), (r + 1, c), (r, (c - 1) % w), (r, (c + 1) % w)):
            if 0 <= rr < h and ok[rr, cc] and not out[rr, cc]:
                out[rr, cc] = True
                todo.append((rr, cc))
    return out


def test_fill_wraps_across_the_seam_and_matches_bfs(setup, qtbot, pano):
    model, canvas, _ = setup
    rgb = pano.copy()
    rgb[20:40, :12] = (200, 30, 30)  # a band cut by the seam ...
    rgb[24:30, W - 16 :] = (205, 28, 33)  # ... continuing on the other side
    rgb[50:55, 60:70] = (200, 30, 30)  # same colour, not connected
    canvas.set_panorama(rgb)
    canvas.set_tool("fill")
    p = canvas.image_to_widget(5.5, 30.5)
    qtbot.mouseClick(canvas, Qt.LeftButton, pos=QPoint(round(p.x()), round(p.y())))
    x, y = (int(v) for v in canvas.widget_to_image(QPointF(round(p.x()), round(p.y()))))
    ref = bfs_fill(rgb, x % W, y, canvas.fill_tolerance)
    mask = model.layers[0].mask
    np.testing.assert_array_equal(mask, ref)
    assert mask[26, W - 1] and mask[26, 0] and not mask[52, 65]
    pos = QPoint(round(p.x()), round(p.y()))
    qtbot.mouseClick(canvas, Qt.LeftButton, Qt.ShiftModifier, pos=pos)  # Shift removes it
    assert model.is_empty() and model.undo_stack.count() == 3
    for seed in ((3, 3), (100, 60)):  # the function alone, on the textured panorama
        np.testing.assert_array_equal(flood_fill(pano, *seed, 20), bfs_fill(pano, *seed, 20))


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def flow_image_angle(model, i) -> float:
    """Image-plane angle (degrees, y up) in which the engine's flow field moves the pixel at
    the region's centroid: the field from FlowAnimator.velocity_field, without noise."""
    regions = model.to_regions()
    anim = FlowAnimator(FlowConfig(turbulence=0.0, wobble_deg=0.0))
    v = anim.velocity_field(regions, region_weights(regions))[0].double()  # [3, H, W]
    mask = model.layers[i].mask
    rows, cols = np.nonzero(mask)
    r = int(round(rows.mean() - 0.5))
    c = int(cols[np.argmin(np.abs(cols - cols.mean()))])
    lat = (0.5 - (r + 0.5) / H) * math.pi
    lon = ((c + 0.5) / W - 0.5) * 2 * math.pi
    vv = v[:, r, c].numpy()
    east = np.array([math.cos(lon), 0.0, math.sin(lon)])
    north = np.array([-math.sin(lat) * math.sin(lon), math.cos(lat), math.sin(lat) * math.cos(lon)])
    dlon = vv @ east / math.cos(lat)
    dlat = vv @ north
    return math.degrees(math.atan2(dlat * H / math.pi, dlon * W / (2 * math.pi)))


@pytest.mark.parametrize(
    "row, drag_vec, expected",
    [
        (32, (60, 0), 0.0),  # on the horizon: right = east = 0
        (32, (0, -60), 90.0),  # up = north
        (32, (-50, 0), 180.0),
        (32, (-40, -40), 135.0),
        (32, (0, 50), 270.0),
        (12, (52, -30), None),  # high latitude: the image angle of the drag is kept
    ],
)
def test_direction_drag_follows_the_engine_convention(setup, qtbot, row, drag_vec, expected):
    model, canvas, _ = setup
    i = model.add_layer("water")
    disc = brute_force_stroke([(40.0, row + 0.5), (60.0, row + 0.5)], 6)
    model.paint_mask(i, disc)
    model.set_params(i, feather_px=1)
    canvas.set_tool("direction")
    start = canvas.image_to_widget(*canvas.centroid(i))
    end = start + QPointF(*drag_vec)
    drag(qtbot, canvas, [start, start + QPointF(*drag_vec) * 0.5, end])
    deg = model.layers[i].direction_deg
    if expected is not None:
        assert deg == pytest.approx(expected, abs=1.0)
    d = QPointF(round(end.x()), round(end.y())) - QPointF(round(start.x()), round(start.y()))
    drag_angle = math.degrees(math.atan2(-d.y(), d.x()))
    # the engine moves the region's pixels along the drag in the image, at its centroid
    assert angle_diff(flow_image_angle(model, i), drag_angle) < 2.0
    lat = (0.5 - canvas.centroid(i)[1] / H) * math.pi
    assert angle_diff(image_angle_deg(deg, lat), drag_angle) < 1.0
    assert model.undo_stack.undoText() == "Change direction of 'water'"  # one step for the drag
    model.undo_stack.undo()
    assert model.layers[i].direction_deg == 0.0


def test_direction_helpers_are_inverse():
    for lat in (-1.2, -0.3, 0.0, 0.7, 1.4):
        for deg in (0, 10, 80, 100, 190, 300):
            phi = image_angle_deg(deg, lat)
            back = direction_from_drag(
                math.cos(math.radians(phi)), -math.sin(math.radians(phi)), lat
            )
            assert back == pytest.approx(deg, abs=1e-9)


def reference_overlay(model) -> np.ndarray:
    """Premultiplied ARGB of every pixel, from scratch: the topmost layer's colour at
    FILL_ALPHA, or EDGE_ALPHA where a 4-neighbour (wrapping in x, not over the poles) has
    another label."""
    labels = np.full(model.size, -1)
    for i, layer in enumerate(model.layers):
        labels[layer.mask] = i
    edge = (labels != np.roll(labels, 1, axis=1)) | (labels != np.roll(labels, -1, axis=1))
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[:-1] != labels[1:]
    out = np.zeros(model.size, np.uint32)
    for i, layer in enumerate(model.layers):
        for sel, a in ((~edge, FILL_ALPHA), (edge, EDGE_ALPHA)):
            r, g, b = (round(c * a) for c in layer.color)
            out[(labels == i) & sel] = (round(255 * a) << 24) | (r << 16) | (g << 8) | b
    return out


def test_overlay_fill_and_outline(setup, qtbot):
    model, canvas, _ = setup
    a = model.add_layer()
    b = model.add_layer()
    model.paint_mask(a, brute_force_stroke([(-3.0, 20.0), (30.0, 25.0)], 9))
    canvas.repaint()
    model.paint_mask(b, brute_force_stroke([(20.0, 24.0)], 7))  # on top of a
    edge_strip = np.zeros((H, W), bool)
    edge_strip[40:50, 0:3] = True  # touches column W - 1 of layer a across the seam
    model.paint_mask(a, brute_force_stroke([(W - 6.0, 45.0), (W - 1.0, 45.0)], 8))
    canvas.overlay_array()
    model.paint_mask(b, edge_strip)
    np.testing.assert_array_equal(canvas.overlay_array(), reference_overlay(model))
    assert canvas.overlay_array()[45, W - 1] >> 24 == round(255 * EDGE_ALPHA)
    model.undo_stack.undo()
    np.testing.assert_array_equal(canvas.overlay_array(), reference_overlay(model))
    model.set_params(a, color=(10, 200, 30))
    np.testing.assert_array_equal(canvas.overlay_array(), reference_overlay(model))
    model.remove_layer(b)
    np.testing.assert_array_equal(canvas.overlay_array(), reference_overlay(model))


def wheel(widget, pos: QPointF, steps: int, modifiers=Qt.NoModifier) -> None:
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    ev = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.NoButton,
        modifiers,
        Qt.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, ev)


def test_wheel_zoom_pan_and_brush_size(setup, qtbot):
    model, canvas, panel = setup
    p = QPointF(300, 140)
    before = canvas.widget_to_image(p)
    z0 = canvas.zoom
    wheel(canvas, p, 3)
    assert canvas.zoom == pytest.approx(z0 * 1.25**3)
    assert canvas.widget_to_image(p) == pytest.approx(before, abs=1e-6)  # zoom at the cursor
    wheel(canvas, p, 2, Qt.ControlModifier)
    assert canvas.brush_size == pytest.approx(40 * 1.15**2) and canvas.zoom == pytest.approx(
        z0 * 1.25**3
    )
    assert panel.brush_spin.value() == round(canvas.brush_size)
    # middle-drag pans by the mouse movement (no painting)
    a = canvas.widget_to_image(QPointF(200, 150))
    drag(qtbot, canvas, [QPointF(200, 150), QPointF(230, 160), QPointF(260, 170)], Qt.MiddleButton)
    b = canvas.widget_to_image(QPointF(260, 170))
    assert b[0] % W == pytest.approx(a[0] % W, abs=1e-6) and b[1] == pytest.approx(a[1])
    assert model.is_empty() and model.undo_stack.count() == 0
    # Space + left-drag pans too
    canvas.setFocus()
    qtbot.keyPress(canvas, Qt.Key_Space)
    a = canvas.widget_to_image(QPointF(250, 150))
    drag(qtbot, canvas, [QPointF(250, 150), QPointF(220, 140)])
    qtbot.keyRelease(canvas, Qt.Key_Space)
    assert canvas.widget_to_image(QPointF(220, 140))[0] % W == pytest.approx(a[0] % W, abs=1e-6)
    assert model.is_empty()
    canvas.fit()
    tl, br = canvas.image_to_widget(0, 0), canvas.image_to_widget(W, H)
    assert tl.x() >= -1e-6 and br.x() <= canvas.width() + 1e-6 and br.y() <= canvas.height() + 1e-6
    assert max(br.x() - tl.x() - canvas.width(), br.y() - tl.y() - canvas.height()) == (
        pytest.approx(0, abs=1e-6)
    )


def test_lookaround_matches_engine_perspective_at_the_pole_and_seam(qtbot, pano):
    model = RegionsModel()
    model.reset(H, W)
    view = LookAroundView(model)
    qtbot.addWidget(view)
    view.set_panorama(pano)
    i = model.add_layer()
    cap = np.zeros((H, W), bool)
    cap[:9] = True  # a polar cap ...
    cap[9:14, 10:40] = True  # ... with a tongue
    model.paint_mask(i, cap)
    for yaw, pitch, fov in ((0.0, 90.0, 100.0), (175.0, 10.0, 70.0), (-60.0, -89.0, 120.0)):
        view.set_view(yaw, pitch, fov)
        pano_view, overlay = view.sample(48, 64)
        ref = perspective(pano, yaw, pitch, fov, (48, 64))
        assert np.abs(pano_view.astype(int) - ref.astype(int)).max() <= 1
        cover = perspective(cap.astype(np.float32), yaw, pitch, fov, (48, 64))
        np.testing.assert_allclose(overlay[..., 3] / OVERLAY_ALPHA, cover, atol=1e-5)
        color = np.asarray(model.layers[i].color, np.float32)
        np.testing.assert_allclose(overlay[..., :3], overlay[..., 3:] * color, atol=1e-3)
    view.set_view(0, 90, 30)  # a 25 degree cap fills a narrow view up at the zenith
    assert (view.sample(48, 64)[1][..., 3] > 0.99 * OVERLAY_ALPHA).all()  # cap fills the view
    out = view.render(48, 64)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_lookaround_drag_and_throttled_redraw(qtbot, pano):
    model = RegionsModel()
    model.reset(H, W)
    view = LookAroundView(model)
    qtbot.addWidget(view)
    view.resize(240, 180)
    view.show()
    qtbot.waitExposed(view)
    view.set_panorama(pano)
    qtbot.waitUntil(lambda: view._image is not None, timeout=3000)
    c = view.rect().center()
    qtbot.mousePress(view, Qt.LeftButton, pos=c)
    qtbot.mouseMove(view, c + QPoint(40, -30))
    qtbot.mouseRelease(view, Qt.LeftButton, pos=c + QPoint(40, -30))
    assert view.yaw_deg < -5 and view.pitch_deg < -5  # grab the world
    first = view._image
    i = model.add_layer()
    model.paint_mask(i, np.ones((H, W), bool))
    qtbot.waitUntil(lambda: view._image is not first, timeout=3000)
    assert view.last_render_ms > 0


def test_panel_edits_export_import_and_errors(setup, qtbot, tmp_path, monkeypatch):
    model, canvas, panel = setup
    import app.region_panel as rp

    shown = []
    monkeypatch.setattr(
        rp.dialogs, "error", lambda parent, title, text, details="": shown.append(text)
    )
    qtbot.mouseClick(panel.add_button, Qt.LeftButton)
    assert len(model.layers) == 1 and panel.region_list.count() == 1
    assert not panel.export_button.isEnabled()
    assert panel.export_regions(tmp_path / "none.json") is False and "nothing painted" in shown[-1]
    drag(qtbot, canvas, [canvas.image_to_widget(30, 30), canvas.image_to_widget(50, 35)])
    assert panel.export_button.isEnabled()
    panel.speed_spin.setValue(7.5)
    panel.feather_spin.setValue(20)
    panel.motion_combo.setCurrentIndex(1)
    panel.dial._edit(QPointF(panel.dial.width() / 2, 0), True)  # click the top of the dial
    panel.region_list.item(0).setText("clouds")  # edited in place in the list
    assert model.layers[0].name == "clouds"
    layer = model.layers[0]
    assert (layer.speed_deg_s, layer.feather_px, layer.motion, layer.name) == (
        7.5,
        20.0,
        "sway",
        "clouds",
    )
    assert layer.direction_deg == pytest.approx(90.0)
    assert panel.direction_spin.value() == pytest.approx(90.0)
    path = tmp_path / "my_regions.json"
    assert panel.export_regions(path)
    (r,) = load_regions(path, (H, W))
    np.testing.assert_array_equal(r.mask, layer.mask)
    assert (r.name, r.speed_deg_s, r.motion, r.direction_deg) == ("clouds", 7.5, "sway", 90.0)
    model.reset(H, W)
    assert panel.region_list.count() == 0
    assert panel.import_regions(path)
    assert panel.region_list.item(0).text() == "clouds" and model.current == 0
    np.testing.assert_array_equal(model.layers[0].mask, r.mask)
    assert panel.speed_spin.value() == 7.5
    (tmp_path / "bad.json").write_text('{"format": "pano4d-regions", "version": 9}')
    n = len(shown)
    assert panel.import_regions(tmp_path / "bad.json") is False
    assert len(shown) == n + 1 and "newer" in shown[-1] and "\n" not in shown[-1]
    assert model.layers[0].name == "clouds"  # unchanged
    panel.tool_buttons["fill"].click()
    assert canvas.tool == "fill"
    qtbot.mouseClick(panel.clear_button, Qt.LeftButton)
    assert model.is_empty()
    qtbot.mouseClick(panel.undo_button, Qt.LeftButton)
    assert not model.is_empty()


def test_region_file_buttons_go_through_the_app_dialogs(setup, qtbot, tmp_path, monkeypatch):
    """Export / Import regions: the app's file dialogs, the next one starting where the last
    file was; a name without .json gets it; a refused file is one line in the error dialog."""
    model, canvas, panel = setup
    import app.region_panel as rp

    asked, shown = [], []
    answers = iter([str(tmp_path / "out" / "mine"), str(tmp_path / "out" / "mine.json")])

    def pick(parent, title, filters, start=""):
        asked.append((title, start))
        return next(answers)

    monkeypatch.setattr(rp.dialogs, "save_file", pick)
    monkeypatch.setattr(rp.dialogs, "open_file", pick)
    monkeypatch.setattr(rp.dialogs, "error", lambda parent, t, text, d="": shown.append(text))
    model.paint_mask(model.add_layer(), np.ones((H, W), bool))
    qtbot.mouseClick(panel.export_button, Qt.LeftButton)
    assert (tmp_path / "out" / "mine.json").is_file() and not shown
    model.reset(H, W)
    qtbot.mouseClick(panel.import_button, Qt.LeftButton)
    assert asked[1] == ("Import regions", str(tmp_path / "out")) and len(model.layers) == 1
    (tmp_path / "out" / "mine.json").write_text("{ not json")
    panel.import_regions(tmp_path / "out" / "mine.json")
    assert len(shown) == 1 and "\n" not in shown[0] and "mine.json" in shown[0]


def test_undo_during_a_direction_drag_ends_it_and_painting_survives(setup, qtbot):
    """Ctrl+Z while the direction drag that created the region is held removes that region:
    the drag ends first; and a drag whose region went away (an undo from elsewhere) draws
    nothing instead of failing inside paintEvent."""
    model, canvas, _ = setup
    canvas.setFocus()
    canvas.set_tool("direction")
    start = canvas.image_to_widget(60, 32).toPoint()
    qtbot.mousePress(canvas, Qt.LeftButton, pos=start)
    assert len(model.layers) == 1 and canvas._drag == "direction"  # the drag made a region
    qtbot.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    assert model.layers == [] and model.current == -1 and canvas._drag is None
    qtbot.mouseMove(canvas, start + QPoint(40, -20))
    canvas.repaint()
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=start + QPoint(40, -20))
    assert model.layers == [] and model.undo_stack.index() == 0

    qtbot.mousePress(canvas, Qt.LeftButton, pos=start)
    assert len(model.layers) == 1
    model.undo_stack.undo()  # not through the canvas: the drag is still held
    assert model.layers == [] and canvas._drag == "direction"
    qtbot.mouseMove(canvas, start + QPoint(40, -20))
    canvas.repaint()
    assert canvas.grab().width() == canvas.width()
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=start + QPoint(40, -20))
    assert model.layers == [] and canvas._drag is None


def test_selecting_a_region_is_not_an_edit_but_repaints(setup, qtbot):
    model, canvas, _ = setup
    model.add_layer("a")
    model.add_layer("b")
    edits, repaints = [], []
    model.changed.connect(lambda: edits.append(1))
    canvas.update = lambda *a: repaints.append(a)  # the instance's, as the slot calls it
    model.set_current(0)
    assert model.current == 0 and not edits and repaints
