"""The viewer window: the scene view plus a playback bar (play/pause, time slider, speed,
loop mode, frame-time readout), File > Open, and :func:`run_viewer` for ``main.py view``.

Keys: Space play/pause, Ctrl+O open, Ctrl+Q quit; the view's own keys (drag, wheel, arrows,
WASD/QE, R) are in :mod:`app.gl_widget`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QSurfaceFormat
from PySide6.QtWidgets import QApplication, QMainWindow

from engine.errors import InputError
from engine.scene import Scene4D, open_scene

from . import dialogs
from .viewer_panel import ViewerPanel

__all__ = ["ViewerWindow", "default_surface_format", "open_any", "run_viewer"]


def open_any(path: str | os.PathLike[str], axes: str = "auto") -> Scene4D:
    """A scene from a native/generate folder, a splat file (.ply, .compressed.ply, .spz,
    .splat, .glb) or a folder of frame PLYs (``axes``: see engine.splats).

    Raises InputError / FormatError (one line) for anything unusable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    return open_scene(p, axes=axes)


class ViewerWindow(QMainWindow):
    """The scene view with a playback bar. ``scene`` may be None (File > Open later).

    The view and its bar are an :class:`app.viewer_panel.ViewerPanel` (:attr:`panel`); its
    widgets and playback state are reachable here under the same names."""

    def __init__(self, scene: Scene4D | None = None, title: str = "", parent=None) -> None:
        super().__init__(parent)
        self.resize(1024, 640)
        self.panel = ViewerPanel(None, self)
        self.setCentralWidget(self.panel)

        # ---- menu and shortcuts
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open Scene Folder…", self)
        self.open_action.setShortcut(QKeySequence.Open)
        self.open_action.triggered.connect(self.open_dialog)
        file_menu.addAction(self.open_action)
        self.open_file_action = QAction("Open Splat &File…", self)
        self.open_file_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.open_file_action.triggered.connect(self.open_file_dialog)
        file_menu.addAction(self.open_file_action)
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
        self.panel.glFailed.connect(lambda msg: self.show_error("OpenGL", msg))
        self.set_scene(scene, title)

    # ------------------------------------------------------------------ the panel's parts

    view = property(lambda self: self.panel.view)
    playback = property(lambda self: self.panel.playback)
    slider = property(lambda self: self.panel.slider)
    frame_label = property(lambda self: self.panel.frame_label)
    play_button = property(lambda self: self.panel.play_button)
    speed_combo = property(lambda self: self.panel.speed_combo)
    mode_combo = property(lambda self: self.panel.mode_combo)
    ms_label = property(lambda self: self.panel.ms_label)
    flip_button = property(lambda self: self.panel.flip_button)

    def toggle_play(self) -> None:
        self.panel.toggle_play()

    # ------------------------------------------------------------------ scene

    def set_scene(self, scene: Scene4D | None, title: str = "") -> None:
        self.panel.set_scene(scene)
        name = f" — {title}" if title else ""
        self.setWindowTitle(f"Pano4D viewer{name}")

    def open_path(self, path: str | os.PathLike[str]) -> bool:
        """Load a scene and show it; errors go to a message box (one line). Returns success."""
        try:
            scene = open_any(path)
        except Exception as e:  # InputError / FormatError: one line; others summarised
            message, details = dialogs.describe(e)
            if not isinstance(e, InputError):
                message = f"{Path(path).name}: {message}"
            dialogs.error(self, "Cannot open scene", message, details)
            return False
        self.set_scene(scene, Path(path).name)
        return True

    def open_dialog(self) -> None:
        path = dialogs.pick_folder(self, "Open scene folder")
        if path:
            self.open_path(path)

    def open_file_dialog(self) -> None:
        path = dialogs.open_file(self, "Open splat file", dialogs.SPLAT_FILTER)
        if path:
            self.open_path(path)

    def show_error(self, title: str, message: str) -> None:
        dialogs.error(self, title, message)

    def closeEvent(self, e) -> None:
        self.panel.shutdown()
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


def run_viewer(path: str | os.PathLike[str] | None, axes: str = "auto") -> int:
    """Open the viewer window on ``path`` (None: empty window) and run Qt's event loop."""
    scene = open_any(path, axes) if path is not None else None  # bad input: one line, exit 2
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
