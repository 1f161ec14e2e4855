"""The region panel (lives in the main window's dockable side panel): the list of regions
(add, remove, rename, recolour, reorder), the motion settings of the selected region (direction
dial, speed, motion kind, edge feather), the painting tools and brush size, clear, undo/redo,
and import/export of engine region files.

Every dialog goes through a small method that tests (and the main window) can call directly
with a path: :meth:`RegionPanel.import_regions`, :meth:`RegionPanel.export_regions`; errors are
shown by :meth:`RegionPanel.show_error` (:func:`app.dialogs.error`).
"""

from __future__ import annotations

import math
import os
import time

from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import InputError
from engine.io import MAX_FEATHER_PX, MAX_PROMPT_CHARS, MAX_SPEED_DEG_S
from engine.text.motion import parse_motion

from . import dialogs
from .canvas import PaintCanvas
from .regions_model import MOTIONS, RegionsModel

__all__ = ["DirectionDial", "RegionPanel"]

REGIONS_FILTER = "Pano4D regions (*.json);;All files (*)"
MERGE_SECONDS = 1.0  # consecutive edits of one field within this time are one undo step
TOOL_LABELS = (
    ("brush", "Brush", "B", "Paint the selected region (B). Right-drag erases."),
    ("eraser", "Eraser", "E", "Erase from the selected region (E)"),
    ("fill", "Fill", "F", "Fill the clicked area of similar colour (F)"),
    ("direction", "Direction", "D", "Drag on the canvas to point the region's motion (D)"),
)


class DirectionDial(QWidget):
    """A compass for a motion direction in the engine convention: 0 = east (right), 90 = north
    (up), counter-clockwise. Click or drag to set it; ``angleEdited(deg, first)`` reports user
    edits (``first`` is True for the press that starts a drag)."""

    angleEdited = Signal(float, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.angle = 0.0
        self.color = QColor(80, 160, 255)
        self.setMinimumSize(72, 72)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.setToolTip("Motion direction: drag the arrow (0° = right/east, 90° = up/north)")
        self._pressed = False

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(84, 84)

    def set_angle(self, deg: float) -> None:
        self.angle = float(deg) % 360.0
        self.update()

    def angle_at(self, p: QPointF) -> float | None:
        c = QPointF(self.width() / 2, self.height() / 2)
        d = p - c
        if math.hypot(d.x(), d.y()) < 3:
            return None
        return math.degrees(math.atan2(-d.y(), d.x())) % 360.0

    def _edit(self, p: QPointF, first: bool) -> None:
        a = self.angle_at(p)
        if a is not None:
            self.set_angle(a)
            self.angleEdited.emit(self.angle, first)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.LeftButton and self.isEnabled():
            self._pressed = True
            self._edit(event.position(), True)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._pressed:
            self._edit(event.position(), False)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._pressed = False

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        s = min(self.width(), self.height()) - 6
        c = QPointF(self.width() / 2, self.height() / 2)
        enabled = self.isEnabled()
        p.setPen(QPen(QColor(120, 120, 120), 1.5))
        p.setBrush(QColor(45, 45, 50) if enabled else QColor(70, 70, 70))
        p.drawEllipse(c, s / 2, s / 2)
        p.setPen(QPen(QColor(150, 150, 150), 1))
        for k in range(4):  # ticks at E, N, W, S
            a = math.radians(90 * k)
            d = QPointF(math.cos(a), -math.sin(a))
            p.drawLine(c + d * (s / 2 - 6), c + d * (s / 2))
        if not enabled:
            return
        a = math.radians(self.angle)
        d = QPointF(math.cos(a), -math.sin(a))
        n = QPointF(-d.y(), d.x())
        tip = c + d * (s / 2 - 4)
        neck = c + d * (s / 2 - 16)
        p.setPen(QPen(self.color, 3, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(c - d * (s / 4), neck)
        p.setBrush(self.color)
        p.drawPolygon(QPolygonF([tip, neck + n * 7, neck - n * 7]))
        p.end()


def _swatch(color: tuple[int, int, int]) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(*color))
    return QIcon(pix)


def understood_text(prompt: str) -> str:
    """What the app read from a region's prompt (engine.text.motion.parse_motion)."""
    if not prompt.strip():
        return ""
    m = parse_motion(prompt)
    if not m.understood:
        return "No motion words: the motion above stays as set."
    return "Understood: " + "; ".join(m.understood)


class RegionPanel(QWidget):
    """Regions, motion settings and tools for a :class:`PaintCanvas` (module docs)."""

    def __init__(
        self, model: RegionsModel, canvas: PaintCanvas, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.model, self.canvas = model, canvas
        self._last_edit: tuple[str, int, float] | None = None
        self._syncing = False
        self._regions_dir = ""  # where the last region file was imported or exported
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self._build_tools())
        lay.addWidget(self._build_regions(), 1)
        lay.addWidget(self._build_motion())
        model.changed.connect(self.refresh)
        model.currentChanged.connect(lambda _i: self.refresh())
        model.layersChanged.connect(self.refresh)
        canvas.toolChanged.connect(self._on_tool)
        canvas.brushSizeChanged.connect(self._on_brush)
        self.refresh()

    # -- construction --------------------------------------------------------------------

    def _build_tools(self) -> QGroupBox:
        box = QGroupBox("Tools")
        grid = QGridLayout(box)
        self.tool_buttons: dict[str, QToolButton] = {}
        self._tool_group = QButtonGroup(self)
        self._tool_group.setExclusive(True)
        for k, (name, text, key, tip) in enumerate(TOOL_LABELS):
            b = QToolButton(box)
            b.setText(f"{text} ({key})")
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setChecked(name == self.canvas.tool)
            b.setToolButtonStyle(Qt.ToolButtonTextOnly)
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            b.clicked.connect(lambda _c=False, n=name: self.canvas.set_tool(n))
            self._tool_group.addButton(b)
            self.tool_buttons[name] = b
            grid.addWidget(b, k // 2, k % 2)
        form = QFormLayout()
        self.brush_spin = QDoubleSpinBox(box)
        self.brush_spin.setRange(1.0, 1024.0)
        self.brush_spin.setDecimals(0)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush diameter in panorama pixels ([ and ], Ctrl+wheel)")
        self.brush_spin.setValue(self.canvas.brush_size)
        self.brush_spin.valueChanged.connect(self.canvas.set_brush_size)
        form.addRow("Brush size", self.brush_spin)
        self.tolerance_spin = QDoubleSpinBox(box)
        self.tolerance_spin.setRange(0.0, 255.0)
        self.tolerance_spin.setDecimals(0)
        self.tolerance_spin.setValue(self.canvas.fill_tolerance)
        self.tolerance_spin.setToolTip("Fill: largest colour difference (0-255) still filled")
        self.tolerance_spin.valueChanged.connect(
            lambda v: setattr(self.canvas, "fill_tolerance", v)
        )
        form.addRow("Fill tolerance", self.tolerance_spin)
        grid.addLayout(form, 2, 0, 1, 2)
        row = QHBoxLayout()
        stack = self.model.undo_stack
        self.undo_button = QPushButton("Undo", box)
        self.undo_button.setToolTip("Undo (Ctrl+Z)")
        self.undo_button.clicked.connect(stack.undo)
        stack.canUndoChanged.connect(self.undo_button.setEnabled)
        self.redo_button = QPushButton("Redo", box)
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
        self.redo_button.clicked.connect(stack.redo)
        stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(stack.canUndo())
        self.redo_button.setEnabled(stack.canRedo())
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)
        grid.addLayout(row, 3, 0, 1, 2)
        return box

    def _build_regions(self) -> QGroupBox:
        box = QGroupBox("Regions")
        v = QVBoxLayout(box)
        self.region_list = QListWidget(box)
        self.region_list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.region_list.setToolTip("Double-click a name to rename it")
        self.region_list.currentRowChanged.connect(self._on_row)
        self.region_list.itemChanged.connect(self._on_item_edited)
        v.addWidget(self.region_list, 1)
        grid = QGridLayout()
        self.add_button = QPushButton("Add", box)
        self.add_button.setToolTip("Add a new region")
        self.add_button.clicked.connect(lambda: self.model.add_layer())
        self.remove_button = QPushButton("Remove", box)
        self.remove_button.clicked.connect(self._remove)
        self.color_button = QPushButton("Colour…", box)
        self.color_button.clicked.connect(self.pick_color)
        self.clear_button = QPushButton("Clear", box)
        self.clear_button.setToolTip("Erase every painted pixel of the selected region")
        self.clear_button.clicked.connect(self._clear)
        self.up_button = QPushButton("Up", box)
        self.up_button.setToolTip("Move up: later regions win where regions overlap")
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button = QPushButton("Down", box)
        self.down_button.clicked.connect(lambda: self._move(1))
        self.import_button = QPushButton("Import…", box)
        self.import_button.setToolTip("Load a Pano4D regions file (.json)")
        self.import_button.clicked.connect(self._import_dialog)
        self.export_button = QPushButton("Export…", box)
        self.export_button.setToolTip("Save the regions as a Pano4D regions file (.json + PNGs)")
        self.export_button.clicked.connect(self._export_dialog)
        buttons = (
            self.add_button,
            self.remove_button,
            self.color_button,
            self.clear_button,
            self.up_button,
            self.down_button,
            self.import_button,
            self.export_button,
        )
        for k, b in enumerate(buttons):
            grid.addWidget(b, k // 2, k % 2)
        v.addLayout(grid)
        return box

    def _build_motion(self) -> QGroupBox:
        box = QGroupBox("Motion of the selected region")
        self.motion_box = box
        outer = QVBoxLayout(box)
        h = QHBoxLayout()
        outer.addLayout(h)
        self.dial = DirectionDial(box)
        self.dial.angleEdited.connect(self._on_dial)
        h.addWidget(self.dial)
        form = QFormLayout()
        self.direction_spin = QDoubleSpinBox(box)
        self.direction_spin.setRange(0.0, 359.9)
        self.direction_spin.setWrapping(True)
        self.direction_spin.setDecimals(1)
        self.direction_spin.setSuffix("°")
        self.direction_spin.setToolTip("0° = right (east), 90° = up (north), 180° = left")
        self.direction_spin.valueChanged.connect(lambda v: self._edit("direction_deg", v))
        form.addRow("Direction", self.direction_spin)
        self.speed_spin = QDoubleSpinBox(box)
        self.speed_spin.setRange(0.0, MAX_SPEED_DEG_S)
        self.speed_spin.setSingleStep(0.5)
        self.speed_spin.setSuffix(" °/s")
        self.speed_spin.setToolTip("Angular speed on the horizon (degrees of arc per second)")
        self.speed_spin.valueChanged.connect(lambda v: self._edit("speed_deg_s", v))
        form.addRow("Speed", self.speed_spin)
        self.motion_combo = QComboBox(box)
        for m in MOTIONS:
            self.motion_combo.addItem({"flow": "Flow (drift)", "sway": "Sway (oscillate)"}[m], m)
        self.motion_combo.setToolTip(
            "Flow: drifts along the direction (clouds, water). "
            "Sway: oscillates back and forth (foliage, grass)."
        )
        self.motion_combo.currentIndexChanged.connect(
            lambda k: self._edit("motion", self.motion_combo.itemData(k))
        )
        form.addRow("Motion", self.motion_combo)
        self.feather_spin = QDoubleSpinBox(box)
        self.feather_spin.setRange(0.0, MAX_FEATHER_PX)
        self.feather_spin.setDecimals(0)
        self.feather_spin.setSuffix(" px")
        self.feather_spin.setToolTip("Soft edge width in panorama pixels")
        self.feather_spin.valueChanged.connect(lambda v: self._edit("feather_px", v))
        form.addRow("Edge feather", self.feather_spin)
        h.addLayout(form, 1)
        self.prompt_edit = QLineEdit(box)
        self.prompt_edit.setPlaceholderText("Prompt, e.g. clouds drifting slowly to the left")
        self.prompt_edit.setToolTip(
            "What the region is and how it moves. Its motion words (drift, sway, left, up, "
            "slowly, fast…) set the motion above when you press Enter; text-conditioned video "
            "models are also given the prompt."
        )
        self.prompt_edit.setMaxLength(MAX_PROMPT_CHARS)
        self.prompt_edit.editingFinished.connect(self._on_prompt)
        outer.addWidget(self.prompt_edit)
        self.understood_label = QLabel(box)
        self.understood_label.setWordWrap(True)
        self.understood_label.setStyleSheet("color: palette(mid);")
        outer.addWidget(self.understood_label)
        return box

    def _on_prompt(self) -> None:
        """The prompt's motion words set what they say (one undoable edit with the text)."""
        cur = self.model.current
        if self._syncing or cur < 0:
            return
        text = self.prompt_edit.text()
        if " ".join(text.split()) == self.model.layers[cur].prompt:
            return
        try:
            self.model.set_params(cur, prompt=text, **parse_motion(text).decided())
        except InputError as exc:
            self.show_error("Region", str(exc))
        self.refresh()

    # -- model -> widgets ----------------------------------------------------------------

    def refresh(self) -> None:
        """Bring every widget in line with the model."""
        self._syncing = True
        try:
            layers = self.model.layers
            items = [(x.name, tuple(x.color)) for x in layers]
            shown = [
                (self.region_list.item(k).text(), self.region_list.item(k).data(Qt.UserRole))
                for k in range(self.region_list.count())
            ]
            if items != shown:
                self.region_list.clear()
                for name, color in items:
                    item = QListWidgetItem(_swatch(color), name)
                    item.setData(Qt.UserRole, color)
                    item.setFlags(item.flags() | Qt.ItemIsEditable)
                    self.region_list.addItem(item)
            self.region_list.setCurrentRow(self.model.current)
            cur = self.model.current
            has = 0 <= cur < len(layers)
            for w in (
                self.remove_button,
                self.color_button,
                self.clear_button,
                self.motion_box,
            ):
                w.setEnabled(has)
            self.up_button.setEnabled(cur > 0)
            self.down_button.setEnabled(0 <= cur < len(layers) - 1)
            ready = self.model.size[0] > 0
            self.add_button.setEnabled(ready)
            self.import_button.setEnabled(ready)
            self.export_button.setEnabled(not self.model.is_empty())
            if has:
                layer = layers[cur]
                self.dial.color = QColor(*layer.color)
                self.dial.set_angle(layer.direction_deg)
                self.direction_spin.setValue(layer.direction_deg)
                self.speed_spin.setValue(layer.speed_deg_s)
                self.motion_combo.setCurrentIndex(MOTIONS.index(layer.motion))
                self.feather_spin.setValue(layer.feather_px)
                if not self.prompt_edit.hasFocus() or not self.prompt_edit.isModified():
                    self.prompt_edit.setText(layer.prompt)
                self.understood_label.setText(understood_text(layer.prompt))
            else:
                self.prompt_edit.clear()
                self.understood_label.clear()
            self.dial.update()
        finally:
            self._syncing = False

    def _on_tool(self, name: str) -> None:
        self.tool_buttons[name].setChecked(True)

    def _on_brush(self, px: float) -> None:
        if self.brush_spin.value() != px:
            self.brush_spin.blockSignals(True)
            self.brush_spin.setValue(px)
            self.brush_spin.blockSignals(False)

    # -- widgets -> model ----------------------------------------------------------------

    def _edit(self, key: str, value, first: bool | None = None) -> None:
        cur = self.model.current
        if self._syncing or cur < 0:
            return
        now = time.monotonic()
        last = self._last_edit
        if first is None:
            merge = last is not None and last[:2] == (key, cur) and now - last[2] < MERGE_SECONDS
        else:
            merge = not first
        self._last_edit = (key, cur, now)
        try:
            self.model.set_params(cur, merge=merge, **{key: value})
        except InputError as exc:
            self.show_error("Region", str(exc))
            self.refresh()

    def _on_dial(self, deg: float, first: bool) -> None:
        self._edit("direction_deg", round(deg, 1), first)

    def _on_row(self, row: int) -> None:
        if not self._syncing and row != self.model.current and -1 <= row < len(self.model.layers):
            self.model.set_current(row)

    def _on_item_edited(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        row = self.region_list.row(item)
        if 0 <= row < len(self.model.layers) and item.text() != self.model.layers[row].name:
            self.rename(row, item.text())

    def rename(self, i: int, name: str) -> None:
        try:
            self.model.set_params(i, name=name)
        except InputError as exc:
            self.show_error("Rename region", str(exc))
        self.refresh()

    def set_color(self, i: int, color: tuple[int, int, int]) -> None:
        self.model.set_params(i, color=color)

    def pick_color(self) -> None:
        cur = self.model.current
        if cur < 0:
            return
        c = QColorDialog.getColor(QColor(*self.model.layers[cur].color), self, "Region colour")
        if c.isValid():
            self.set_color(cur, (c.red(), c.green(), c.blue()))

    def _remove(self) -> None:
        if self.model.current >= 0:
            self.model.remove_layer(self.model.current)

    def _clear(self) -> None:
        if self.model.current >= 0:
            self.model.clear(self.model.current)

    def _move(self, delta: int) -> None:
        cur = self.model.current
        if 0 <= cur + delta < len(self.model.layers):
            self.model.move_layer(cur, cur + delta)

    # -- files ---------------------------------------------------------------------------

    def import_regions(self, path: str | os.PathLike) -> bool:
        """Replace the regions by an engine region file's (undoable). Errors -> dialog."""
        try:
            self.model.load(path)
        except InputError as exc:
            self.show_error("Import regions", str(exc))
            return False
        return True

    def export_regions(self, path: str | os.PathLike) -> bool:
        """Write the painted regions as an engine region file. Errors -> dialog."""
        try:
            self.model.save(path)
        except InputError as exc:
            self.show_error("Export regions", str(exc))
            return False
        return True

    def show_error(self, title: str, text: str) -> None:
        dialogs.error(self, title, dialogs.in_app_words(text))

    def _import_dialog(self) -> None:
        path = dialogs.open_file(self, "Import regions", REGIONS_FILTER, self._regions_dir)
        if path:
            self._regions_dir = os.path.dirname(path)
            self.import_regions(path)

    def _export_dialog(self) -> None:
        start = os.path.join(self._regions_dir, "regions.json")
        path = dialogs.save_file(self, "Export regions", "Pano4D regions (*.json)", start)
        if path:
            self._regions_dir = os.path.dirname(path)
            if not path.lower().endswith(".json"):
                path += ".json"
            self.export_regions(path)
