"""The scene view with its playback bar, as one widget: used by :class:`app.viewer_window.
ViewerWindow` (``main.py view``) and by the main window's Result tab.

The bar: play/pause, time slider, frame readout, a Before/After toggle (shown once an input
panorama is set: "Before" shows the static input photo through the same camera, "After" the
animated 4D scene), speed, loop mode and the frame-time readout.

:class:`BeforeView` draws the input panorama as a perspective view
(:func:`engine.sphere.perspective_view`) for the *same* :class:`viewer.camera.ViewerCamera`
object as the GL view, so toggling keeps the viewpoint and dragging either view turns both.
"""

from __future__ import annotations

import dataclasses
import os
import sys

if "OpenGL" not in sys.modules:  # before viewer/OpenGL: Qt's context is GLX (app.gl_widget)
    os.environ["PYOPENGL_PLATFORM"] = "glx"

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QPointF, Qt, QTimer, Signal  # noqa: E402
from PySide6.QtGui import QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStackedLayout,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from engine.scene import Scene4D  # noqa: E402
from engine.sphere import perspective_view  # noqa: E402
from viewer.camera import ViewerCamera  # noqa: E402
from viewer.playback import Playback  # noqa: E402

from .gl_widget import SceneGLWidget  # noqa: E402

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0)
MODES = (("Loop", "loop"), ("Ping-pong", "pingpong"), ("Once", "once"))
TICK_MS = 16
BEFORE_MAX_WIDTH = 640  # the before view renders at most this wide, then scales up
BEFORE_MAX_SOURCE = 4096  # panoramas wider than this are shrunk for the before view
EMPTY_TEXT = "No scene open.\n\nFile > Open… (Ctrl+O) opens a scene folder or a splat file."

__all__ = ["BeforeView", "ViewerPanel"]


class BeforeView(QWidget):
    """The static input panorama seen through ``camera`` (drag turns, wheel zooms)."""

    cameraChanged = Signal()

    def __init__(self, camera: ViewerCamera, parent=None) -> None:
        super().__init__(parent)
        self.camera = camera
        self._pano: torch.Tensor | None = None  # [1, 3, H, W] float32 in [0, 1]
        self._image: QImage | None = None
        self._key: tuple | None = None
        self._press: QPointF | None = None
        self.setMinimumSize(160, 120)
        self.setFocusPolicy(Qt.StrongFocus)

    def set_panorama(self, rgb: np.ndarray | None) -> None:
        """rgb: uint8 [H, W, 3] or None."""
        if rgb is None:
            self._pano = None
        else:
            if rgb.shape[1] > BEFORE_MAX_SOURCE:  # a screen-sized view never needs more
                import cv2

                size = (BEFORE_MAX_SOURCE, BEFORE_MAX_SOURCE // 2)
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
            self._pano = t.float().div_(255.0)
        self._key = None
        self.update()

    def render_image(self) -> np.ndarray | None:
        """uint8 [h, w, 3]: the panorama through the camera at this widget's aspect."""
        if self._pano is None:
            return None
        w = max(1, min(self.width(), BEFORE_MAX_WIDTH))
        h = max(1, round(w * self.height() / max(1, self.width())))
        view = self.camera.view(h, w)
        with torch.no_grad():
            out = perspective_view(self._pano, view)[0]  # [3, h, w]
        return (out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).contiguous().numpy()

    def paintEvent(self, e) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        key = (self.camera.state, self.width(), self.height())
        if self._pano is not None and key != self._key:
            rgb = self.render_image()
            h, w = rgb.shape[:2]
            self._image = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()
            self._key = key
        if self._pano is not None and self._image is not None:
            p.setRenderHint(QPainter.SmoothPixmapTransform)
            p.drawImage(self.rect(), self._image)
        p.end()

    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.LeftButton:
            self._press = e.position()

    def mouseMoveEvent(self, e) -> None:
        if self._press is not None and e.buttons() & Qt.LeftButton:
            pos = e.position()
            self.camera.drag(pos.x() - self._press.x(), pos.y() - self._press.y(), self.height())
            self._press = pos
            self.update()
            self.cameraChanged.emit()

    def mouseReleaseEvent(self, e) -> None:
        if e.button() == Qt.LeftButton:
            self._press = None

    def wheelEvent(self, e) -> None:
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.camera.zoom(steps)
            self.update()
            self.cameraChanged.emit()
        e.accept()


class ViewerPanel(QWidget):
    """A :class:`SceneGLWidget` plus the playback bar. ``scene`` may be None."""

    glFailed = Signal(str)

    def __init__(self, scene: Scene4D | None = None, parent=None) -> None:
        super().__init__(parent)
        self.view = SceneGLWidget(None, self)
        self.before_view = BeforeView(self.view.camera, self)
        self.before_view.cameraChanged.connect(self.view.update)
        self.playback = Playback(1, 8.0, "loop", playing=False)
        self._ms_avg: float | None = None
        self._build_bar()
        self.empty_label = QLabel(EMPTY_TEXT, self)
        self.empty_label.setAlignment(Qt.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setMargin(24)
        self._stack = QStackedLayout()
        self._stack.addWidget(self.view)
        self._stack.addWidget(self.before_view)
        self._stack.addWidget(self.empty_label)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addLayout(self._stack, 1)
        v.addWidget(self.bar)
        self.view.frameTimeMeasured.connect(self._on_frame_time)
        self.view.playToggleRequested.connect(self.toggle_play)
        self.view.glFailed.connect(self.glFailed)
        self._last = time.perf_counter()
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self.set_scene(scene)

    def _build_bar(self) -> None:
        bar = self.bar = QWidget(self)
        lay = QHBoxLayout(bar)
        lay.setContentsMargins(6, 2, 6, 4)
        self.play_button = QPushButton(bar)
        self.play_button.setFocusPolicy(Qt.NoFocus)
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Horizontal, bar)
        self.slider.setFocusPolicy(Qt.NoFocus)
        self.slider.setToolTip("Time: drag to scrub")
        self.slider.valueChanged.connect(self._on_slider)
        self.frame_label = QLabel("frame 0 / 0", bar)
        self.frame_label.setMinimumWidth(110)
        self.before_button = QPushButton("Before", bar)
        self.before_button.setCheckable(True)
        self.before_button.setFocusPolicy(Qt.NoFocus)
        self.before_button.setToolTip(
            "Before/after: the static input panorama vs the animated scene (B)"
        )
        self.before_button.toggled.connect(self.set_before)
        self.before_button.setVisible(False)
        self.flip_button = QPushButton("Flip", bar)
        self.flip_button.setFocusPolicy(Qt.NoFocus)
        self.flip_button.setToolTip(
            "Turn the scene upside down (180° about the forward axis): for a splat file whose "
            "up axis was guessed wrong (open it with --axes to make it stick)"
        )
        self.flip_button.clicked.connect(self.flip_scene)
        self.speed_combo = QComboBox(bar)
        self.speed_combo.setFocusPolicy(Qt.NoFocus)
        self.speed_combo.setToolTip("Playback speed")
        for s in SPEEDS:
            self.speed_combo.addItem(f"{s:g}x", s)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.currentIndexChanged.connect(self._on_speed)
        self.mode_combo = QComboBox(bar)
        self.mode_combo.setFocusPolicy(Qt.NoFocus)
        self.mode_combo.setToolTip("What happens at the last frame")
        for text, mode in MODES:
            self.mode_combo.addItem(text, mode)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.ms_label = QLabel("-- ms", bar)
        self.ms_label.setToolTip("Time to draw one frame (CPU + GPU, glFinish)")
        self.ms_label.setMinimumWidth(70)
        self.ms_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        for w in (self.play_button, self.slider, self.frame_label, self.before_button,
                  self.flip_button):  # fmt: skip
            lay.addWidget(w, 1 if w is self.slider else 0)
        for w in (self.speed_combo, self.mode_combo, self.ms_label):
            lay.addWidget(w)

    # ------------------------------------------------------------------ scene

    def flip_scene(self) -> None:
        """The shown scene turned upside down (engine.splats.axes.flip), frame and playback
        kept; twice is the original."""
        from engine.splats.axes import flip

        scene = self.view.scene
        if scene is None:
            return
        flipped = dataclasses.replace(
            scene, static=flip(scene.static), dynamic=[flip(g) for g in scene.dynamic]
        )
        t, playing = self.playback.frame, self.playback.playing
        self.set_scene(flipped, play=playing)
        if t:
            self.slider.setValue(t)

    def set_scene(self, scene: Scene4D | None, *, play: bool | None = None) -> None:
        n = scene.n_frames if scene is not None else 1
        fps = scene.fps if scene is not None else 8.0
        old = self.playback
        playing = n > 1 if play is None else play and n > 1
        self.playback = Playback(n, fps, old.mode, speed=old.speed, playing=playing)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(0)
        self.slider.setEnabled(n > 1)
        self.slider.blockSignals(False)
        self.view.set_scene(scene)
        self._show_frame(0)
        self._update_play_button()
        for w in (self.play_button, self.flip_button, self.speed_combo, self.mode_combo):
            w.setEnabled(scene is not None)
        if scene is None:
            self._stack.setCurrentWidget(self.empty_label)
        elif self._stack.currentWidget() is self.empty_label:
            self._stack.setCurrentWidget(self.view)

    def set_empty_text(self, text: str) -> None:
        """What the panel says while it has no scene."""
        self.empty_label.setText(text)

    @property
    def empty(self) -> bool:
        return self.view.scene is None

    def set_before_image(self, rgb: np.ndarray | None) -> None:
        """The static input panorama for the Before view (uint8 [H, W, 3]); None hides it."""
        self.before_view.set_panorama(rgb)
        self.before_button.setVisible(rgb is not None)
        if rgb is None:
            self.before_button.setChecked(False)

    @property
    def showing_before(self) -> bool:
        return self._stack.currentWidget() is self.before_view

    def set_before(self, on: bool) -> None:
        """Show the static input panorama (True) or the animated scene (False)."""
        on = bool(on) and self.before_view._pano is not None
        if self.before_button.isChecked() != on:
            self.before_button.setChecked(on)  # re-enters with the same value
            return
        self._stack.setCurrentWidget(self.before_view if on else self.view)
        self.before_button.setText("After" if on else "Before")
        (self.before_view if on else self.view).update()

    # ------------------------------------------------------------------ playback

    def toggle_play(self) -> None:
        self.playback.toggle()
        self._last = time.perf_counter()
        self._update_play_button()

    def _update_play_button(self) -> None:
        playing = self.playback.playing
        icon = QStyle.SP_MediaPause if playing else QStyle.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if playing else "Play")

    def _on_slider(self, value: int) -> None:
        self.playback.seek(value)
        self._show_frame(value)

    def _on_speed(self, index: int) -> None:
        self.playback.speed = float(self.speed_combo.itemData(index))

    def _on_mode(self, index: int) -> None:
        self.playback.mode = str(self.mode_combo.itemData(index))

    def _show_frame(self, t: int) -> None:
        self.view.set_frame(t)
        if self.view.scene is None:
            self.frame_label.setText("no scene")
        else:
            self.frame_label.setText(f"frame {t} / {self.playback.n_frames}")

    def _tick(self) -> None:
        now = time.perf_counter()
        dt, self._last = min(now - self._last, 0.25), now
        if not self.playback.playing:
            return
        t = self.playback.advance(dt)
        if t != self.slider.value():
            self.slider.blockSignals(True)
            self.slider.setValue(t)
            self.slider.blockSignals(False)
            self._show_frame(t)
        if not self.playback.playing:  # "once" reached its end
            self._update_play_button()

    def _on_frame_time(self, ms: float) -> None:
        self._ms_avg = ms if self._ms_avg is None else 0.8 * self._ms_avg + 0.2 * ms
        self.ms_label.setText(f"{self._ms_avg:.1f} ms")

    def shutdown(self) -> None:
        """Stop the timers and the sorter thread (call before the window closes)."""
        self.timer.stop()
        self.view.shutdown()
