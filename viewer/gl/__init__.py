"""OpenGL plumbing: EGL contexts (:mod:`viewer.gl.context`) and GLSL loading from the
repository's ``shaders/`` folder (:mod:`viewer.gl.shaders`).

``PYOPENGL_PLATFORM=egl`` is set by importing the parent package :mod:`viewer` (before any
``viewer`` module imports OpenGL); see its docstring.
"""
