"""Real-time rendering of Pano4D scenes: the OpenGL Gaussian-splat renderer, sorting,
cameras, playback, OpenXR and offscreen (EGL) rendering.

Dependency direction (DESIGN.md section 1): ``viewer`` uses ``engine`` and OpenGL but never
imports PySide6 — except one thin widget module, which lives in ``app/``.

PyOpenGL picks its platform (GLX, EGL, ...) once, when ``OpenGL`` is first imported, from
``PYOPENGL_PLATFORM``. Importing ``viewer`` (which imports neither OpenGL nor Qt itself)
sets ``PYOPENGL_PLATFORM=egl`` unless the variable is already set or ``OpenGL`` was already
imported, so that every ``viewer`` module sees the EGL platform used for headless rendering.
A process that needs another platform sets the variable before importing ``viewer``.
"""

from __future__ import annotations

import os as _os
import sys as _sys

if "OpenGL" not in _sys.modules:
    _os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
