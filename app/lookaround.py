"""Look-around preview: a perspective view of the panorama with the painted regions overlaid,
so people can check what they painted near the poles (where the equirect canvas stretches).

Both the panorama and the regions are sampled through the same projection as the engine's
:func:`engine.sphere.perspective`: the sample positions come from
:func:`engine.sphere.view_sample_coords`, and the bilinear lookup wraps columns across the seam
and continues rows beyond a pole on the far side (the row mirrored, the longitude turned by
half a revolution), exactly like :class:`engine.sphere.EquirectSampler` -- but it gathers only
the four taps each output pixel needs straight from the uint8 panorama and the model's label
map, so a view costs a few milliseconds at any panorama size and nothing is copied per edit.

Drag to look around (grab the world: dragging right turns left), wheel changes the field of
view, double-click resets. Redraws are throttled: edits and drags only schedule one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PySide6.QtCore import QPointF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.camera import View
from engine.sphere import view_sample_coords

from .regions_model import RegionsModel

__all__ = ["LookAroundView", "OVERLAY_ALPHA", "bilinear_taps"]

OVERLAY_ALPHA = 0.35
MAX_RENDER_PIXELS = 420_000  # larger widgets are rendered at this size and scaled up
DRAG_RENDER_PIXELS = 60_000  # while dragging: coarser, so the view keeps up with the mouse
THROTTLE_MS = 30
STROKE_THROTTLE_MS = 250


def bilinear_taps(
    row: np.ndarray, col: np.ndarray, height: int, width: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flat indices and weights of the four bilinear taps of continuous equirect (row, col)
    (pixel centres at integers): columns wrap, rows beyond a pole continue on the far side.

    row, col: np.ndarray  # [N] float64 (any col; row in [-1, H])
    returns: four index arrays [N] (int64 into an [H * W] image) and four weights [N]
    """
    col = np.remainder(col + 0.5, width) - 0.5
    row = np.clip(row, -1.0, float(height))
    r0 = np.floor(row)
    c0 = np.floor(col)
    fr = row - r0
    fc = col - c0
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    idx, wts = [], []
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        r = r0 + dr
        beyond = (r < 0) | (r >= height)
        rr = np.where(r < 0, -r - 1, np.where(r >= height, 2 * height - 1 - r, r))
        shift = np.where(beyond, -(width // 2), 0)
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            c = np.remainder(c0 + dc + shift, width)
            idx.append(rr * width + c)
            wts.append(wr * wc)
    return idx, wts


class LookAroundView(QWidget):
    """Perspective preview of the panorama and the model's regions (module docs)."""

    def __init__(self, model: RegionsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.yaw_deg, self.pitch_deg, self.fov_deg = 0.0, 0.0, 90.0
        self._rgb: np.ndarray | None = None
        self._image: QImage | None = None
        self._coords_key = None
        self._coords: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        self._pano_view: np.ndarray | None = None  # [h * w, 3] uint8 for _coords_key
        self._drag: QPointF | None = None
        self.last_render_ms = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(THROTTLE_MS)
        self._timer.timeout.connect(self._rerender)
        model.changed.connect(self.schedule)
        model.layersChanged.connect(self.schedule)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setToolTip("Drag to look around, wheel to zoom, double-click to reset")

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(360, 270)

    # -- public API ----------------------------------------------------------------------

    def set_panorama(self, rgb: np.ndarray) -> None:
        """Show a uint8 [H, W, 3] panorama (same size as the model's)."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"panorama must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
        self._rgb = rgb
        self._coords_key = None
        self._pano_view = None
        self.schedule()

    def set_view(self, yaw_deg: float, pitch_deg: float, fov_deg: float) -> None:
        """Look along yaw (positive turns right) and pitch (positive up, clamped to +-90) with
        a horizontal field of view (clamped to 20..150 degrees)."""
        yaw = (float(yaw_deg) + 180.0) % 360.0 - 180.0
        pitch = min(max(float(pitch_deg), -90.0), 90.0)
        fov = min(max(float(fov_deg), 20.0), 150.0)
        if (yaw, pitch, fov) != (self.yaw_deg, self.pitch_deg, self.fov_deg):
            self.yaw_deg, self.pitch_deg, self.fov_deg = yaw, pitch, fov
            self.schedule()

    def schedule(self) -> None:
        """Ask for one redraw soon (calls within the throttle interval coalesce; while a brush
        stroke is under way, at most a few per second, so painting stays fluid)."""
        if not self._timer.isActive():
            self._timer.start(STROKE_THROTTLE_MS if self.model.stroking else THROTTLE_MS)

    def render(self, height: int, width: int) -> np.ndarray:  # noqa: A003 - not QWidget.render
        """The current view as uint8 [height, width, 3]: panorama with regions blended in."""
        pano, overlay = self.sample(height, width)
        a = overlay[..., 3:4]
        out = pano.astype(np.float32) * (1.0 - a) + overlay[..., :3]
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def sample(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(panorama view uint8 [h, w, 3], regions overlay float32 [h, w, 4] premultiplied RGBA
        with alpha = OVERLAY_ALPHA x bilinear coverage) for the current view."""
        if self._rgb is None:
            raise RuntimeError("set_panorama() first")
        idx, wts = self._taps(height, width)
        if self._pano_view is None:  # the panorama part only changes with the view
            flat = self._rgb.reshape(-1, 3)
            acc = np.zeros((idx[0].size, 3), np.float32)
            for i, w in zip(idx, wts):
                acc += flat[i] * w[:, None].astype(np.float32)
            self._pano_view = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
        pano = self._pano_view.reshape(height, width, 3)
        overlay = np.zeros((idx[0].size, 4), np.float32)
        labels = self.model.labels
        layers = self.model.layers
        if labels.shape == self._rgb.shape[:2] and layers:
            lut = np.zeros((len(layers) + 1, 4), np.float32)
            for k, layer in enumerate(layers, start=1):
                lut[k, :3] = np.asarray(layer.color, np.float32) * OVERLAY_ALPHA
                lut[k, 3] = OVERLAY_ALPHA
            flat_labels = labels.reshape(-1)
            for i, w in zip(idx, wts):
                overlay += lut[flat_labels[i].astype(np.int64) + 1] * w[:, None].astype(np.float32)
        return pano, overlay.reshape(height, width, 4)

    # -- internals -----------------------------------------------------------------------

    def _taps(self, height: int, width: int):
        h, w = self._rgb.shape[:2]
        key = (self.yaw_deg, self.pitch_deg, self.fov_deg, height, width, h, w)
        if key != self._coords_key:
            view = View(self.yaw_deg, self.pitch_deg, self.fov_deg, height, width)
            with torch.no_grad():
                row, col = view_sample_coords(view, h, w)
            self._coords = bilinear_taps(row.reshape(-1).numpy(), col.reshape(-1).numpy(), h, w)
            self._coords_key = key
            self._pano_view = None
        return self._coords

    def _render_size(self) -> tuple[int, int]:
        w, h = max(self.width(), 16), max(self.height(), 16)
        coarse = self._drag is not None or self.model.stroking
        budget = DRAG_RENDER_PIXELS if coarse else MAX_RENDER_PIXELS
        s = min(1.0, math.sqrt(budget / (w * h)))
        return max(8, round(h * s)), max(8, round(w * s))

    def _rerender(self) -> None:
        import time

        if self._rgb is None or not self.isVisible():
            return
        t0 = time.perf_counter()
        h, w = self._render_size()
        img = self.render(h, w)
        self._buffer = np.ascontiguousarray(img)
        self._image = QImage(self._buffer.data, w, h, 3 * w, QImage.Format_RGB888)
        self.last_render_ms = (time.perf_counter() - t0) * 1000
        self.update()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.schedule()
        super().showEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.schedule()
        super().resizeEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 34))
        if self._image is None:
            p.setPen(QColor(160, 160, 160))
            p.drawText(self.rect(), Qt.AlignCenter, "Look-around preview")
            return
        p.setRenderHint(QPainter.SmoothPixmapTransform, True)
        p.drawImage(self.rect(), self._image)
        text = f"yaw {self.yaw_deg:.0f}°  pitch {self.pitch_deg:.0f}°  fov {self.fov_deg:.0f}°"
        p.setPen(QColor(0, 0, 0, 200))
        p.drawText(self.rect().adjusted(7, 5, 0, 0), Qt.AlignLeft | Qt.AlignTop, text)
        p.setPen(QColor(235, 235, 235))
        p.drawText(self.rect().adjusted(6, 4, 0, 0), Qt.AlignLeft | Qt.AlignTop, text)
        p.end()

    # -- mouse ---------------------------------------------------------------------------

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.LeftButton:
            self._drag = event.position()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag is None:
            return
        pos = event.position()
        d = pos - self._drag
        self._drag = pos
        deg_per_px = self.fov_deg / max(self.width(), 1)
        self.set_view(
            self.yaw_deg - d.x() * deg_per_px, self.pitch_deg + d.y() * deg_per_px, self.fov_deg
        )

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag is not None:
            self._drag = None
            self.schedule()  # full resolution again

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.set_view(0.0, 0.0, 90.0)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_view(self.yaw_deg, self.pitch_deg, self.fov_deg * 1.1 ** (-steps))
