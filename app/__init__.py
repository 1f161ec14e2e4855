"""The desktop app: PySide6 windows and widgets. ``app/`` is the only Qt layer (DESIGN.md
section 1): ``engine`` and ``viewer`` never import PySide6; ``app`` uses both.

Importing ``app`` itself (or :mod:`app.commands`, which ``main.py`` always imports) loads
neither Qt nor OpenGL. The two modules that import ``viewer``/``OpenGL`` for drawing inside
Qt (:mod:`app.gl_widget`, :mod:`app.viewer_panel`; every other window reaches OpenGL only
through them) switch PyOpenGL to its GLX platform — Qt's context under X11 — when
``OpenGL`` has not been imported yet (PyOpenGL picks its platform once).
"""
