"""The region painting canvas: the equirectangular panorama with the region layers of a
:class:`~app.regions_model.RegionsModel` drawn over it, and the tools that edit them.

Tools (keys): brush ``B``, eraser ``E``, fill ``F``, direction ``D``; ``[`` / ``]`` or
Ctrl+wheel change the brush size; Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo and redo; ``0`` fits
the panorama to the window.

Left-drag paints (right-drag erases with the brush; Shift+click with the fill tool removes the
clicked area); the wheel zooms at the cursor; middle-drag or Space+drag pans. Horizontal
panning never ends: the panorama repeats left and right (the neighbouring copies are dimmed and
the seam is marked), and a stroke that leaves one edge comes back in on the other, because the
model paints in unwrapped coordinates.

Drawing: the panorama is drawn from a pyramid of pre-scaled images (so zooming out is smooth
and cheap); the regions from one ARGB overlay at full resolution (semi-transparent fill, opaque
outline) that is only recomputed in the rectangles an edit touched, just before painting.

Direction: each region's arrow sits at its centroid (mean row, circular mean of the columns)
and points where the region's pixels actually move *in the image* there. Under the engine's
convention (:class:`engine.io.Region`: 0 = east, 90 = north; :mod:`engine.animate.flow`: the
east field is a rotation about +Y with angular rate omega at every latitude, the north field
moves latitude at omega cos(lat)), a direction theta moves pixels at latitude lat along the
image angle atan2(cos(lat) sin(theta), cos(theta)) (y up). Dragging with the direction tool
inverts that at the region's centroid: theta = atan2(-dy, dx cos(lat)) for a drag (dx, dy) in
image pixels (y down). On the horizon this is simply the drag's angle.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QWidget

from .regions_model import RegionsModel

__all__ = [
    "PaintCanvas",
    "TOOLS",
    "direction_from_drag",
    "flood_fill",
    "image_angle_deg",
    "region_centroid",
]

TOOLS = ("brush", "eraser", "fill", "direction")
TOOL_KEYS = {Qt.Key_B: "brush", Qt.Key_E: "eraser", Qt.Key_F: "fill", Qt.Key_D: "direction"}
FILL_ALPHA = 0.32  # region interior opacity
EDGE_ALPHA = 0.95  # region outline opacity
MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
MIN_BRUSH, MAX_BRUSH = 1.0, 1024.0
ARROW_PX = 64.0  # on-screen arrow length


# ------------------------------------------------------------------------------ pure helpers


def direction_from_drag(dx: float, dy: float, lat_rad: float) -> float:
    """Engine direction (degrees, [0, 360)) for a drag of (dx, dy) image pixels (y down) on a
    region centred at latitude ``lat_rad`` (module docs)."""
    return math.degrees(math.atan2(-dy, dx * math.cos(lat_rad))) % 360.0


def image_angle_deg(direction_deg: float, lat_rad: float) -> float:
    """Angle (degrees, y up) along which a region with ``direction_deg`` moves in the image at
    latitude ``lat_rad`` (the inverse of :func:`direction_from_drag`)."""
    t = math.radians(direction_deg)
    return math.degrees(math.atan2(math.cos(lat_rad) * math.sin(t), math.cos(t)))


def region_centroid(mask: np.ndarray) -> tuple[float, float, float] | None:
    """(x, y, R) of a [H, W] bool mask: mean row and circular mean of the columns (so a region
    across the seam is centred on the seam), in continuous image coordinates; R in [0, 1] is
    the mean resultant length of the columns (near 0: the region wraps all the way round).
    None if the mask is empty."""
    rows = mask.sum(axis=1, dtype=np.int64)
    total = int(rows.sum())
    if total == 0:
        return None
    h, w = mask.shape
    cols = mask.sum(axis=0, dtype=np.int64).astype(np.float64)
    ang = (np.arange(w) + 0.5) * (2 * math.pi / w)
    s, c = float(cols @ np.sin(ang)), float(cols @ np.cos(ang))
    x = (math.atan2(s, c) % (2 * math.pi)) * w / (2 * math.pi)
    y = float(rows @ (np.arange(h) + 0.5)) / total
    return x, y, math.hypot(s, c) / total


def flood_fill(rgb: np.ndarray, x: int, y: int, tolerance: float) -> np.ndarray:
    """[H, W] bool: the 4-connected area around pixel (x, y) whose colour differs from the
    clicked pixel by at most ``tolerance`` in every channel; connectivity wraps across the
    left/right seam."""
    import cv2

    h, w = rgb.shape[:2]
    tol = int(math.floor(tolerance))
    seed = rgb[y, x].astype(np.int16)
    lo = np.clip(seed - tol, 0, 255).astype(np.uint8)
    hi = np.clip(seed + tol, 0, 255).astype(np.uint8)
    similar = cv2.inRange(np.ascontiguousarray(rgb), lo, hi)  # 255 where every channel fits
    n, labels = cv2.connectedComponents(similar, connectivity=4)
    # merge the components that touch across the seam (union-find over those labels only)
    left, right = labels[:, 0], labels[:, w - 1]
    both = (left > 0) & (right > 0)
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in set(zip(left[both].tolist(), right[both].tolist())):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    seed_label = int(labels[y, x])
    root = find(seed_label)
    keep = np.zeros(n, bool)
    keep[seed_label] = True
    keep[[a for a in list(parent) if find(a) == root]] = True
    return keep[labels]


def _premul(color: tuple[int, int, int], alpha: float) -> int:
    a = round(255 * alpha)
    r, g, b = (round(c * alpha) for c in color)
    return (a << 24) | (r << 16) | (g << 8) | b


# ------------------------------------------------------------------------------ the canvas


class PaintCanvas(QWidget):
    """The painting canvas (module docs)."""

    toolChanged = Signal(str)
    brushSizeChanged = Signal(float)

    def __init__(self, model: RegionsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.tool = "brush"
        self.brush_size = 40.0
        self.fill_tolerance = 24.0
        self.zoom = 1.0
        self._ox = self._oy = 0.0  # widget position of the panorama's top-left corner
        self._fitted = True
        self._rgb: np.ndarray | None = None
        self._levels: list[QImage] = []
        self._overlay = np.zeros((0, 0), np.uint32)
        self._overlay_image: QImage | None = None
        self._lut_fill = self._lut_edge = np.zeros(1, np.uint32)
        self._dirty: list[tuple[int, int, int, int]] = []
        self._overlay_stale = True  # the whole overlay must be recomputed
        self._centroids: dict[int, tuple[float, float, float] | None] = {}
        self._mouse: QPointF | None = None
        self._last_img: tuple[float, float] | None = None
        self._drag: str | None = None  # "paint" | "erase" | "pan" | "direction"
        self._drag_start = QPointF()
        self._drag_button = Qt.NoButton
        self._pan_anchor = (0.0, 0.0)
        self._dir_first = True
        self._space = False
        self._motion: list[QImage] = []  # a motion preview's frames, shown instead
        self._motion_i = 0
        self._motion_note = ""
        self._motion_timer = QTimer(self)
        self._motion_timer.timeout.connect(self._next_motion_frame)
        self._centroid_timer = QTimer(self)
        self._centroid_timer.setSingleShot(True)
        self._centroid_timer.setInterval(120)
        self._centroid_timer.timeout.connect(self._update_centroids)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 120)
        self.setToolTip("")
        model.pixelsChanged.connect(self._on_pixels)
        model.layersChanged.connect(self._on_layers)
        model.changed.connect(self._on_changed)
        model.currentChanged.connect(lambda _i: self._on_changed())  # bolder current arrow
        self._apply_cursor()

    # -- public API ----------------------------------------------------------------------

    def set_panorama(self, rgb: np.ndarray) -> None:
        """Show a uint8 [H, W, 3] panorama (the model is reset if its size differs) and fit."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"panorama must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        if self.model.size != (h, w):
            self.model.reset(h, w)
        self._rgb = rgb
        self._motion, self._motion_i = [], 0  # the previous panorama's preview
        self._motion_timer.stop()
        base = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).convertToFormat(
            QImage.Format_RGB32
        )  # a copy: Qt owns its pixels
        self._levels = [base]
        while self._levels[-1].width() > 512:
            img = self._levels[-1]
            self._levels.append(
                img.scaled(img.width() // 2, img.height() // 2, mode=Qt.SmoothTransformation)
            )
        self._overlay = np.zeros((h, w), np.uint32)
        self._overlay_image = QImage(
            self._overlay.data, w, h, 4 * w, QImage.Format_ARGB32_Premultiplied
        )
        self._overlay_stale = True
        self._on_layers()
        self.fit()

    def set_motion_preview(
        self, frames: np.ndarray | None, fps: float = 8.0, note: str = ""
    ) -> None:
        """Loop ``frames`` [T, h, w, 3] uint8 (a low-resolution animation of the whole
        panorama) in place of the panorama at ``fps``, without the region overlay, with
        ``note`` in a corner; None: the panorama again."""
        self._motion = []
        for f in [] if frames is None else frames:
            f = np.ascontiguousarray(f)
            h, w = f.shape[:2]
            img = QImage(f.data, w, h, 3 * w, QImage.Format_RGB888)
            self._motion.append(img.convertToFormat(QImage.Format_RGB32))  # a copy
        self._motion_i = 0
        self._motion_note = note
        if self._motion:
            self._motion_timer.start(max(15, round(1000 / fps)))
        else:
            self._motion_timer.stop()
        self.update()

    @property
    def motion_frames(self) -> int:
        """How many motion preview frames are playing (0: the panorama is shown)."""
        return len(self._motion)

    def _next_motion_frame(self) -> None:
        if self._motion:
            self._motion_i = (self._motion_i + 1) % len(self._motion)
            self.update()

    @property
    def panorama(self) -> np.ndarray | None:
        return self._rgb

    def set_tool(self, name: str) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; expected one of {', '.join(TOOLS)}")
        if name != self.tool:
            self.tool = name
            self._apply_cursor()
            self.toolChanged.emit(name)
            self.update()

    def set_brush_size(self, px: float) -> None:
        """Brush diameter in panorama pixels."""
        px = float(min(max(px, MIN_BRUSH), MAX_BRUSH))
        if px != self.brush_size:
            self.brush_size = px
            self.brushSizeChanged.emit(px)
            self.update()

    def fit(self) -> None:
        """Zoom so the whole panorama fits the widget, centred."""
        if self._rgb is None:
            return
        h, w = self._rgb.shape[:2]
        z = min(self.width() / w, self.height() / h)
        self._set_zoom(z)
        self._ox = (self.width() - w * z) / 2
        self._oy = (self.height() - h * z) / 2
        self._fitted = True
        self.update()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the panorama point under ``anchor`` (default: the centre) in place."""
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        x, y = self.widget_to_image(anchor)
        self._set_zoom(zoom)
        self._ox = anchor.x() - x * self.zoom
        self._oy = anchor.y() - y * self.zoom
        self._fitted = False
        self._normalise_pan()
        self.update()

    def center_on(self, x: float, y: float) -> None:
        """Pan so that panorama point (x, y) is at the widget centre (zoom unchanged)."""
        self._ox = self.width() / 2 - x * self.zoom
        self._oy = self.height() / 2 - y * self.zoom
        self._fitted = False
        self._normalise_pan()
        self.update()

    def image_to_widget(self, x: float, y: float) -> QPointF:
        """Panorama pixel coordinates (continuous; pixel (c, r) covers [c, c+1) x [r, r+1))
        -> widget pixels, on the undimmed copy of the panorama."""
        return QPointF(self._ox + x * self.zoom, self._oy + y * self.zoom)

    def widget_to_image(self, p: QPointF) -> tuple[float, float]:
        """Widget pixels -> panorama coordinates; x is unwrapped (may be < 0 or >= W)."""
        return (p.x() - self._ox) / self.zoom, (p.y() - self._oy) / self.zoom

    # -- view state ----------------------------------------------------------------------

    def _set_zoom(self, z: float) -> None:
        z = float(min(max(z, MIN_ZOOM), MAX_ZOOM))
        self.zoom = z

    def _normalise_pan(self) -> None:
        """Keep the undimmed copy under the widget centre (endless horizontal pan) and some of
        the panorama on screen vertically."""
        if self._rgb is None:
            return
        h, w = self._rgb.shape[:2]
        span = w * self.zoom
        cx = self.width() / 2
        if span >= self.width():
            while self._ox > cx:
                self._ox -= span
            while self._ox + span < cx:
                self._ox += span
        hz = h * self.zoom
        margin = min(self.height() / 2, hz / 2)
        self._oy = min(max(self._oy, margin - hz), self.height() - margin)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._fitted:
            self.fit()
        super().resizeEvent(event)

    # -- overlay -------------------------------------------------------------------------

    def _on_layers(self) -> None:
        layers = self.model.layers
        fill = np.array([0] + [_premul(x.color, FILL_ALPHA) for x in layers], np.uint32)
        edge = np.array([0] + [_premul(x.color, EDGE_ALPHA) for x in layers], np.uint32)
        n = min(len(fill), len(self._lut_fill))
        recolored = not np.array_equal(fill[:n], self._lut_fill[:n])
        self._lut_fill, self._lut_edge = fill, edge
        if recolored or self._overlay_stale:  # labels that moved come via pixelsChanged
            h, w = self.model.size
            self._dirty = [(0, 0, w, h)]
            self._overlay_stale = False
        self._centroids = {}
        self._centroid_timer.start()
        self.update()

    def _on_changed(self) -> None:
        if not self.model.stroking:  # during a stroke only the touched rectangles repaint
            self.update()

    def _on_pixels(self, x: int, y: int, w: int, h: int) -> None:
        self._dirty.append((x, y, w, h))
        self._centroid_timer.start()
        a = self.image_to_widget(x - 1, y - 1)
        b = self.image_to_widget(x + w + 1, y + h + 1)
        span = self.model.size[1] * self.zoom
        for k in (-1, 0, 1):
            self.update(
                QRectF(a.x() + k * span, a.y(), b.x() - a.x(), b.y() - a.y())
                .toAlignedRect()
                .adjusted(-2, -2, 2, 2)
            )

    def overlay_array(self) -> np.ndarray:
        """The up-to-date overlay: [H, W] uint32 premultiplied ARGB (read-only use)."""
        self._flush_overlay()
        return self._overlay

    def _flush_overlay(self) -> None:
        if self._overlay.shape != self.model.size or not self._dirty:
            self._dirty = []
            return
        dirty, self._dirty = self._dirty, []
        for rect in dirty:
            self._refresh_overlay(rect)

    def _refresh_overlay(self, rect: tuple[int, int, int, int]) -> None:
        """Recompute overlay pixels of rect (x, y, w, h) and its one-pixel border (whose
        outline may have changed; across the seam too) from the model's labels."""
        h, w = self.model.labels.shape
        x, y, rw, rh = rect
        y0, y1 = max(0, y - 1), min(h, y + rh + 1)
        if rw + 2 >= w:
            self._compute_overlay(0, w, y0, y1)
            return
        self._compute_overlay(max(0, x - 1), min(w, x + rw + 1), y0, y1)
        if x == 0:
            self._compute_overlay(w - 1, w, y0, y1)
        if x + rw >= w:
            self._compute_overlay(0, 1, y0, y1)

    def _compute_overlay(self, x0: int, x1: int, y0: int, y1: int) -> None:
        """Overlay of columns [x0, x1) and rows [y0, y1): the layer's fill colour inside a
        region, its outline colour where a 4-neighbour (wrapping in x) has another label."""
        labels = self.model.labels
        h, w = labels.shape
        out = self._overlay[y0:y1, x0:x1]
        # the block plus a one-pixel halo: columns wrap, rows repeat at the poles
        rows = labels[max(0, y0 - 1) : min(h, y1 + 1)]
        if y0 == 0:
            rows = np.concatenate([rows[:1], rows])
        if y1 == h:
            rows = np.concatenate([rows, rows[-1:]])
        left = rows[:, w - 1 : w] if x0 == 0 else rows[:, x0 - 1 : x0]
        right = rows[:, 0:1] if x1 == w else rows[:, x1 : x1 + 1]
        sub = np.concatenate([left, rows[:, x0:x1], right], axis=1)
        core = sub[1:-1, 1:-1]
        if core.max(initial=-1) < 0:
            out.fill(0)
            return
        edge = (core != sub[1:-1, :-2]) | (core != sub[1:-1, 2:])
        edge |= (core != sub[:-2, 1:-1]) | (core != sub[2:, 1:-1])
        idx = core.astype(np.intp) + 1
        out[...] = self._lut_fill[idx]
        out[edge] = self._lut_edge[idx[edge]]

    def _update_centroids(self) -> None:
        if self.model.stroking or self._drag == "direction":
            self._centroid_timer.start()
            return
        self._centroids = {id(x): region_centroid(x.mask) for x in self.model.layers}
        self.update()

    def centroid(self, i: int) -> tuple[float, float] | None:
        """Where layer i's arrow is drawn (panorama coordinates), None for an empty layer."""
        layer = self.model.layers[i]
        if id(layer) not in self._centroids:
            self._centroids[id(layer)] = region_centroid(layer.mask)
        c = self._centroids[id(layer)]
        if c is None:
            return None
        x, y, resultant = c
        if resultant < 0.05:  # wraps all the way round: put the arrow where the user looks
            x = self.widget_to_image(QPointF(self.width() / 2, 0))[0] % self.model.size[1]
        return x, y

    # -- painting ------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(event.rect(), QColor(38, 38, 42))
        if self._rgb is None:
            p.setPen(QColor(170, 170, 170))
            p.drawText(self.rect(), Qt.AlignCenter, "Open a panorama to paint regions")
            return
        self._flush_overlay()
        h, w = self._rgb.shape[:2]
        z = self.zoom
        level = 0
        while level + 1 < len(self._levels) and self._levels[level + 1].width() >= w * z:
            level += 1
        src = self._motion[self._motion_i] if self._motion else self._levels[level]
        p.setRenderHint(QPainter.SmoothPixmapTransform, z < 1.0 or bool(self._motion))
        for k in (-1, 0, 1):
            target = QRectF(self._ox + k * w * z, self._oy, w * z, h * z)
            if not target.intersects(QRectF(event.rect())):
                continue
            p.drawImage(target, src, QRectF(src.rect()))
            if not self._motion:
                p.drawImage(target, self._overlay_image, QRectF(0, 0, w, h))
            if k != 0:
                p.fillRect(target, QColor(0, 0, 0, 110))
        pen = QPen(QColor(255, 255, 255, 120), 1, Qt.DashLine)
        p.setPen(pen)
        for k in (0, 1):
            x = self._ox + k * w * z
            p.drawLine(QPointF(x, self._oy), QPointF(x, self._oy + h * z))
        p.setRenderHint(QPainter.Antialiasing, True)
        self._draw_arrows(p)
        self._draw_cursor(p)
        if self._motion and self._motion_note:
            box = p.fontMetrics().boundingRect(self._motion_note).adjusted(-6, -4, 6, 4)
            box.moveTopLeft(QPoint(8, 8))
            p.fillRect(box, QColor(0, 0, 0, 160))
            p.setPen(QColor(255, 255, 255))
            p.drawText(box, Qt.AlignCenter, self._motion_note)
        p.end()

    def _draw_arrows(self, p: QPainter) -> None:
        h, w = self.model.size
        for i, layer in enumerate(self.model.layers):
            c = self.centroid(i)
            if c is None:
                continue
            lat = (0.5 - c[1] / h) * math.pi
            angle = image_angle_deg(layer.direction_deg, lat)
            base = self.image_to_widget(*c)
            for k in (-1, 0, 1):
                b = QPointF(base.x() + k * w * self.zoom, base.y())
                if self.rect().adjusted(-80, -80, 80, 80).contains(b.toPoint()):
                    label = f"{layer.name}  {layer.speed_deg_s:g}°/s"
                    current = i == self.model.current
                    sway = layer.motion == "sway"
                    self._arrow(p, b, angle, layer.color, current, label, sway)

    @staticmethod
    def _arrow(
        p, base: QPointF, angle_deg, color, current: bool, label: str, sway: bool = False
    ) -> None:
        """An outlined arrow from ``base`` (flow), or a double-headed one centred on it
        (sway: back and forth along the direction)."""
        a = math.radians(angle_deg)
        length = ARROW_PX * (1.15 if current else 1.0)
        d = QPointF(math.cos(a), -math.sin(a))
        n = QPointF(-d.y(), d.x())
        tail = base - d * (length / 2) if sway else base
        tip = tail + d * length
        heads = [QPolygonF([tip, tip - d * 16 + n * 9, tip - d * 16 - n * 9])]
        if sway:
            heads.append(QPolygonF([tail, tail + d * 16 + n * 9, tail + d * 16 - n * 9]))
        shaft = QPainterPath(tail + d * (16 if sway else 0))
        shaft.lineTo(tip - d * 16)
        for width, col in (
            (8 if current else 6, QColor(0, 0, 0, 170)),
            (4 if current else 3, QColor(*color)),
        ):
            p.setPen(QPen(col, width, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin))
            p.setBrush(QBrush(col))
            p.drawPath(shaft)
            for head in heads:
                p.drawPolygon(head)
        p.setPen(QPen(QColor(0, 0, 0, 200), 2))
        p.setBrush(QBrush(QColor(*color)))
        p.drawEllipse(base, 5, 5)
        if label:
            r = QRectF(base.x() - 80, base.y() + 8, 160, 18)
            p.setPen(QColor(0, 0, 0, 220))
            p.drawText(r.translated(1, 1), Qt.AlignHCenter | Qt.AlignTop, label)
            p.setPen(QColor(255, 255, 255))
            p.drawText(r, Qt.AlignHCenter | Qt.AlignTop, label)

    def _draw_cursor(self, p: QPainter) -> None:
        if self._drag == "direction":
            c = self._current_centroid_widget() or self._drag_start
            if self._mouse is not None:
                d = self._mouse - self._drag_start
                if math.hypot(d.x(), d.y()) > 1 and self._current_layer() is not None:
                    angle = math.degrees(math.atan2(-d.y(), d.x()))
                    layer = self._current_layer()
                    self._arrow(p, c, angle, layer.color, True, "", layer.motion == "sway")
            return
        if self._mouse is None or self.tool not in ("brush", "eraser") or self._drag == "pan":
            return
        r = self.brush_size / 2 * self.zoom
        m = self._mouse
        p.setBrush(Qt.NoBrush)
        p.setPen(QPen(QColor(0, 0, 0, 200), 3))
        p.drawEllipse(m, r, r)
        p.setPen(
            QPen(
                QColor(255, 255, 255, 230),
                1.2,
                Qt.DashLine if self.tool == "eraser" else Qt.SolidLine,
            )
        )
        p.drawEllipse(m, r, r)
        p.setPen(QPen(QColor(255, 255, 255, 200), 1))
        p.drawLine(m + QPointF(-4, 0), m + QPointF(4, 0))
        p.drawLine(m + QPointF(0, -4), m + QPointF(0, 4))

    def _current_layer(self):
        """The current layer, None when there is none (an undo can remove it mid-gesture)."""
        i = self.model.current
        return self.model.layers[i] if 0 <= i < len(self.model.layers) else None

    def _current_centroid_widget(self) -> QPointF | None:
        if self._current_layer() is None:
            return None
        c = self.centroid(self.model.current)
        return None if c is None else self.image_to_widget(*c)

    def _apply_cursor(self) -> None:
        shapes = {"brush": Qt.BlankCursor, "eraser": Qt.BlankCursor, "fill": Qt.PointingHandCursor}
        self.setCursor(shapes.get(self.tool, Qt.CrossCursor))

    # -- mouse ---------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        self._mouse = pos
        if self._rgb is None or self._drag is not None:  # one gesture at a time
            return
        button = event.button()
        self._drag_button = button
        if button == Qt.MiddleButton or (button == Qt.LeftButton and self._space):
            self._drag = "pan"
            self._drag_start = pos
            self._pan_anchor = (self._ox, self._oy)
            self.setCursor(Qt.ClosedHandCursor)
        elif button in (Qt.LeftButton, Qt.RightButton) and self.tool in ("brush", "eraser"):
            erase = self.tool == "eraser" or button == Qt.RightButton
            self._begin_stroke(pos, erase)
        elif button == Qt.LeftButton and self.tool == "fill":
            erase = bool(event.modifiers() & Qt.ShiftModifier)
            self.fill_at(*self.widget_to_image(pos), erase=erase)
        elif button == Qt.LeftButton and self.tool == "direction" and self._ensure_layer():
            self._drag = "direction"
            self._drag_start = self._current_centroid_widget() or pos
            self._dir_first = True
            self.update()
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        pos = event.position()
        old = self._mouse
        self._mouse = pos
        if self._drag == "pan":
            self._ox = self._pan_anchor[0] + pos.x() - self._drag_start.x()
            self._oy = self._pan_anchor[1] + pos.y() - self._drag_start.y()
            self._fitted = False
            self._normalise_pan()
            self.update()
        elif self._drag in ("paint", "erase"):
            self._continue_stroke(pos)
        elif self._drag == "direction":
            self._direction_to(pos)
        elif self.tool in ("brush", "eraser"):
            self._update_cursor_area(old, pos)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() != self._drag_button:
            return
        drag, self._drag = self._drag, None
        if drag in ("paint", "erase"):
            self._continue_stroke(event.position())
            self.model.end_stroke()
        elif drag == "direction":
            self._direction_to(event.position())
        elif drag == "pan":
            self._apply_cursor()
        self.update()

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag is None:
            self._mouse = None
            self.update()
        super().leaveEvent(event)

    def _update_cursor_area(self, old: QPointF | None, new: QPointF) -> None:
        r = int(self.brush_size / 2 * self.zoom) + 6
        for q in (old, new):
            if q is not None:
                self.update(QRect(int(q.x()) - r, int(q.y()) - r, 2 * r, 2 * r))

    def _ensure_layer(self) -> bool:
        """Painting with no region selected starts a new one."""
        if self.model.current < 0:
            if self.model.size[0] <= 0:
                return False
            self.model.add_layer()
        return True

    def _begin_stroke(self, pos: QPointF, erase: bool) -> None:
        if not self._ensure_layer():
            return
        self._drag = "erase" if erase else "paint"
        self.model.begin_stroke(self.model.current, erase=erase)
        x, y = self.widget_to_image(pos)
        self._last_img = (x, y)
        self.model.stroke_segment(x, y, x, y, self.brush_size)

    def _continue_stroke(self, pos: QPointF) -> None:
        """Paint the capsule from the last mouse position: strokes stay continuous however fast
        the mouse moves."""
        if self._last_img is None or not self.model.stroking:
            return
        x, y = self.widget_to_image(pos)
        x0, y0 = self._last_img
        if (x, y) != (x0, y0):
            self.model.stroke_segment(x0, y0, x, y, self.brush_size)
            self._last_img = (x, y)
        self._update_cursor_area(None, pos)

    def _direction_to(self, pos: QPointF) -> None:
        d = pos - self._drag_start
        if math.hypot(d.x(), d.y()) < 4 or self._current_layer() is None:
            return
        c = self.centroid(self.model.current)
        y = c[1] if c is not None else self.widget_to_image(self._drag_start)[1]
        lat = (0.5 - y / self.model.size[0]) * math.pi
        deg = direction_from_drag(d.x(), d.y(), lat)
        self.model.set_params(self.model.current, direction_deg=deg, merge=not self._dir_first)
        self._dir_first = False
        self.update()

    def fill_at(self, x: float, y: float, erase: bool = False) -> None:
        """Flood-fill the similar-coloured area around panorama point (x, y) into the current
        layer, or with ``erase`` (Shift+click) out of it (one undo step)."""
        if self._rgb is None or not self._ensure_layer():
            return
        h, w = self._rgb.shape[:2]
        if not 0 <= y < h:
            return
        col, row = int(math.floor(x)) % w, int(math.floor(y))
        mask = flood_fill(self._rgb, col, row, self.fill_tolerance)
        self.model.paint_mask(self.model.current, mask, erase=erase)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if not steps or self._rgb is None:
            return
        if event.modifiers() & Qt.ControlModifier:
            self.set_brush_size(self.brush_size * 1.15**steps)
            self.update()
        else:
            self.set_zoom(self.zoom * 1.25**steps, event.position())
        event.accept()

    # -- keyboard ------------------------------------------------------------------------

    def _key_action(self, event):
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.ControlModifier)
        if event.matches(QKeySequence.Undo) or (
            ctrl and key == Qt.Key_Z and not mods & Qt.ShiftModifier
        ):
            return self.model.undo_stack.undo
        if event.matches(QKeySequence.Redo) or (ctrl and key in (Qt.Key_Y, Qt.Key_Z)):
            return self.model.undo_stack.redo
        if mods & ~Qt.KeypadModifier:
            return None
        if key in TOOL_KEYS:
            return lambda: self.set_tool(TOOL_KEYS[key])
        if key == Qt.Key_BracketLeft:
            return lambda: self.set_brush_size(self.brush_size / 1.25)
        if key == Qt.Key_BracketRight:
            return lambda: self.set_brush_size(self.brush_size * 1.25)
        if key == Qt.Key_0:
            return self.fit
        return None

    def event(self, event) -> bool:
        # take our shortcuts before window-level actions with the same keys
        if event.type() == QEvent.ShortcutOverride and self._key_action(event) is not None:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.OpenHandCursor)
            return
        if not self.handle_key(event):
            super().keyPressEvent(event)

    def handle_key(self, event, *, tools_only: bool = False) -> bool:
        """Run the action of key ``event`` (tool, brush size, fit, undo/redo; ``tools_only``:
        not undo/redo). False when the key has none here."""
        action = self._key_action(event)
        if action is None or (tools_only and event.modifiers() & ~Qt.KeypadModifier):
            return False
        self._end_drag()  # an undo may remove the layer a drag is editing
        action()
        self.update()
        return True

    def _end_drag(self) -> None:
        """Finish the gesture in progress (a stroke is committed as it is); the button's
        release then does nothing."""
        drag, self._drag = self._drag, None
        if drag in ("paint", "erase"):
            self.model.end_stroke()
        elif drag == "pan":
            self._apply_cursor()

    def keyReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._apply_cursor()
            return
        super().keyReleaseEvent(event)


# ------------------------------------------------------------------------------ try it


def main(argv: list[str] | None = None) -> int:
    """``python -m app.canvas PANO [REGIONS.json]``: canvas, region panel and look-around."""
    from PySide6.QtWidgets import QApplication, QMainWindow, QMessageBox, QSplitter

    from engine.errors import InputError
    from engine.io import load_panorama

    from .lookaround import LookAroundView
    from .region_panel import RegionPanel

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m app.canvas PANORAMA [REGIONS.json]", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        pano = load_panorama(argv[0])
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = RegionsModel()
    win = QMainWindow()
    win.setWindowTitle(f"Pano4D regions - {argv[0]}")
    canvas = PaintCanvas(model)
    look = LookAroundView(model)
    panel = RegionPanel(model, canvas)
    split = QSplitter(Qt.Horizontal)
    right = QSplitter(Qt.Vertical)
    right.addWidget(panel)
    right.addWidget(look)
    split.addWidget(canvas)
    split.addWidget(right)
    split.setStretchFactor(0, 3)
    win.setCentralWidget(split)
    canvas.set_panorama(pano.rgb)
    look.set_panorama(pano.rgb)
    if len(argv) > 1:
        try:
            model.load(argv[1])
        except InputError as exc:
            QMessageBox.warning(win, "Regions", str(exc))
    win.resize(1400, 800)
    win.show()
    canvas.setFocus()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
