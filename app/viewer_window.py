"""The viewer window: the scene view plus a playback bar (play/pause, time slider, speed,
loop mode, frame-time readout), File > Open, and :func:`run_viewer` for ``main.py view``.

Keys: Space play/pause, Ctrl+O open, Ctrl+Q quit; the view's own keys (drag, wheel, arrows,
WASD/QE, R) are in :mod:`app.gl_widget`.
"""

from __future__ import annotations

import os
import sys

if "OpenGL" not in sys.modules:  # before viewer/OpenGL: Qt's context is GLX (app.gl_widget)
    os.environ["PYOPENGL_PLATFORM"] = "glx"

import time  # noqa: E402
from pathlib import Path  # noqa: E402

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtGui import QAction, QKeySequence, QSurfaceFormat  # noqa: E402
from PySide6.QtWidgets import (  # noqa: E402
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSlider,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from engine.errors import InputError  # noqa: E402
from engine.scene import Scene4D, open_scene  # noqa: E402
from viewer.playback import Playback  # noqa: E402

from .gl_widget import SceneGLWidget  # noqa: E402

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0)
MODES = (("Loop", "loop"), ("Ping-pong", "pingpong"), ("Once", "once"))
TICK_MS = 16

__all__ = ["ViewerWindow", "default_surface_format", "open_any", "run_viewer"]


def open_any(path: str | os.PathLike[str]) -> Scene4D:
    """A scene from a native/generate folder, a 3DGS .ply or a folder of frame PLYs.

    Raises InputError / FormatError (one line) for anything unusable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    return open_scene(p)


class ViewerWindow(QMainWindow):
    """The scene view with a playback bar. ``scene`` may be None (File > Open later)."""

    def __init__(self, scene: Scene4D | None = None, title: str = "", parent=None) -> None:
        super().__init__(parent)
        self.resize(1024, 640)
        self.view = SceneGLWidget(None, self)
        self.playback = Playback(1, 8.0, "loop", playing=False)
        self._ms_avg: float | None = None

        # ---- bottom bar
        bar = QWidget(self)
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
        for w in (self.play_button, self.slider, self.frame_label):
            lay.addWidget(w, 1 if w is self.slider else 0)
        for w in (self.speed_combo, self.mode_combo, self.ms_label):
            lay.addWidget(w)

        central = QWidget(self)
        v = QVBoxLayout(central)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        v.addWidget(self.view, 1)
        v.addWidget(bar)
        self.setCentralWidget(central)

        # ---- menu and shortcuts
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open…", self)
        self.open_action.setShortcut(QKeySequence.Open)
        self.open_action.triggered.connect(self.open_dialog)
        file_menu.addAction(self.open_action)
        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)
        self.play_action = QAction("Play/Pause", self)
        self.play_action.setShortcut(QKeySequence(Qt.Key_Space))
        self.play_action.setShortcutContext(Qt.WindowShortcut)
        self.play_action.triggered.connect(self.toggle_play)
        self.addAction(self.play_action)

        self.view.frameTimeMeasured.connect(self._on_frame_time)
        self.view.playToggleRequested.connect(self.toggle_play)
        self.view.glFailed.connect(lambda msg: self.show_error("OpenGL", msg))

        self._last = time.perf_counter()
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

        self.set_scene(scene, title)

    # ------------------------------------------------------------------ scene

    def set_scene(self, scene: Scene4D | None, title: str = "") -> None:
        n = scene.n_frames if scene is not None else 1
        fps = scene.fps if scene is not None else 8.0
        old = self.playback
        self.playback = Playback(n, fps, old.mode, speed=old.speed, playing=n > 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.setValue(0)
        self.slider.setEnabled(n > 1)
        self.slider.blockSignals(False)
        self.view.set_scene(scene)
        self._show_frame(0)
        self._update_play_button()
        name = f" — {title}" if title else ""
        self.setWindowTitle(f"Pano4D viewer{name}")

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Load a scene and show it; errors go to a message box (one line). Returns success."""
        try:
            scene = open_any(path)
        except InputError as e:  # FormatError is an InputError
            self.show_error("Cannot open scene", str(e))
            return False
        except Exception as e:  # never a traceback in the UI
            self.show_error("Cannot open scene", f"{Path(path).name}: {type(e).__name__}: {e}")
            return False
        self.set_scene(scene, Path(path).name)
        return True

    def open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open scene folder")
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open Gaussian PLY", "", "Gaussian splats (*.ply);;All files (*)"
            )
        if path:
            self.open_path(path)

    def show_error(self, title: str, message: str) -> None:
        QMessageBox.critical(self, title, message)

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

    def closeEvent(self, e) -> None:
        self.timer.stop()
        self.view.shutdown()
        super().closeEvent(e)


def default_surface_format() -> QSurfaceFormat:
    """OpenGL 4.5 core (4.3 is enough for the renderer; Qt falls back to what exists)."""
    fmt = QSurfaceFormat()
    fmt.setRenderableType(QSurfaceFormat.OpenGL)
    fmt.setVersion(4, 5)
    fmt.setProfile(QSurfaceFormat.CoreProfile)
    fmt.setDepthBufferSize(0)
    fmt.setSwapInterval(1)
    return fmt


def _check_display() -> None:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal")):
        raise InputError(
            f"QT_QPA_PLATFORM={platform} cannot create an OpenGL window: unset it and set "
            "DISPLAY, or run under Xvfb"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise InputError(
            "no display: set DISPLAY or run under Xvfb (e.g. xvfb-run -a python main.py view SCENE)"
        )


def _check_gl() -> None:
    """Raise InputError unless Qt can create an OpenGL 4.3+ context (QApplication exists)."""
    from PySide6.QtGui import QOffscreenSurface, QOpenGLContext

    ctx = QOpenGLContext()
    ctx.setFormat(QSurfaceFormat.defaultFormat())
    if not ctx.create():
        raise InputError("no OpenGL context: install Mesa (libgl1-mesa-dri) or a GPU driver")
    fmt = ctx.format()
    version = (fmt.majorVersion(), fmt.minorVersion())
    surface = QOffscreenSurface()
    surface.create()
    ok = ctx.makeCurrent(surface)
    if ok:
        ctx.doneCurrent()
    surface.destroy()
    if not ok:
        raise InputError("an OpenGL context was created but cannot be made current")
    if version < (4, 3):
        raise InputError(f"OpenGL {version[0]}.{version[1]} only; the viewer needs 4.3+ core")


def run_viewer(path: str | os.PathLike[str] | None) -> int:
    """Open the viewer window on ``path`` (None: empty window) and run Qt's event loop."""
    scene = open_any(path) if path is not None else None  # bad input: one line, exit 2
    _check_display()
    QSurfaceFormat.setDefaultFormat(default_surface_format())  # before the QApplication
    app = QApplication.instance()
    if app is None:
        QApplication.setAttribute(Qt.AA_ShareOpenGLContexts)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Pano4D")
    _check_gl()
    win = ViewerWindow(scene, Path(path).name if path is not None else "")
    win.show()
    return int(app.exec())
