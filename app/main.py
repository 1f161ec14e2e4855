"""``python main.py`` with no arguments: the Pano4D application.

:func:`run_app` checks for a display (one clear line and exit code 2 without one, like
``main.py view``), sets the default OpenGL surface format before the ``QApplication`` exists,
checks that an OpenGL 4.3+ context can be made, installs a global exception hook (an
unexpected error becomes a dialog, never a crash) and opens :class:`app.main_window.
MainWindow`, optionally on a panorama, project or scene given on the command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["run_app"]


def run_app(path: str | os.PathLike[str] | None = None) -> int:
    """Run the app's event loop; returns the exit code (InputError: no display / no GL)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from . import dialogs
    from .viewer_window import _check_display, _check_gl, default_surface_format

    _check_display()
    QSurfaceFormat.setDefaultFormat(default_surface_format())
    app = QApplication.instance()
    if app is None:
        QApplication.setAttribute(Qt.AA_ShareOpenGLContexts)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Pano4D")  # data: ~/.local/share/Pano4D on Linux
    _check_gl()
    from .main_window import MainWindow

    win = MainWindow()
    dialogs.install_excepthook(lambda: win)
    win.show()
    if path is not None:
        win.open_any_path(Path(path))
    return int(app.exec())


if __name__ == "__main__":
    from engine.errors import InputError

    try:
        sys.exit(run_app(sys.argv[1] if len(sys.argv) > 1 else None))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
