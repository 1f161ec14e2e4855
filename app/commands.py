"""The app's commands for the command line (``main.py`` passes :func:`register` as a plugin).

Importing this module loads neither Qt nor OpenGL: ``view`` imports the window on use.
"""

from __future__ import annotations

import argparse


def cmd_view(args: argparse.Namespace) -> int:
    from engine.errors import InputError

    try:
        from .viewer_window import run_viewer
    except ImportError as e:  # PySide6 or its system libraries missing
        raise InputError(
            f"the viewer needs PySide6 and Qt's xcb libraries ({e}); run scripts/setup.sh"
        ) from None
    return run_viewer(args.scene, args.axes)


def register(sub) -> None:
    """Add ``view SCENE`` to the CLI's subparsers."""
    v = sub.add_parser("view", help="open the real-time viewer window with a time slider")
    v.add_argument(
        "scene",
        help="a scene folder, a generate output folder, a splat file (.ply, .compressed.ply, "
        ".spz, .splat, .glb) or a PLY sequence",
    )
    from engine.cli import add_axes_option

    add_axes_option(v)
    v.set_defaults(func=cmd_view)
