"""Pano4D engine: panorama + painted regions -> 4D Gaussian scene.

No Qt and no OpenGL may be imported anywhere under this package (checked by
``tests/test_layering.py``). Conventions (axes, equirect mapping, Gaussian layout) are
those of DESIGN.md section 2 and live in :mod:`engine.sphere` and :mod:`engine.camera`.
"""

__version__ = "0.1.0"
