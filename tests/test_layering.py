"""DESIGN.md section 1: engine never imports Qt or OpenGL (machine-checked in a clean process
where importing either is made impossible)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'PySide6', 'PyQt5', 'PyQt6', 'OpenGL', 'xr', 'glfw'}:
            raise ImportError('engine must not import ' + name)
sys.meta_path.insert(0, Block())
"""


def test_engine_modules_import_without_qt_or_gl():
    names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    assert "engine.pipeline" in names and "engine.sphere" in names
    code = BLOCKER + "\n".join(f"import {n}" for n in names)
    code += "\nbad = [m for m in sys.modules if m.split('.')[0] in {'PySide6','OpenGL'}]\n"
    code += "assert not bad, bad\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_viewer_modules_import_without_qt():
    """viewer may use OpenGL but never PySide6 (the thin Qt widget lives in app/)."""
    import viewer

    names = [m.name for m in pkgutil.walk_packages(viewer.__path__, "viewer.")]
    assert "viewer.commands" in names
    blocker = BLOCKER.replace("'OpenGL', 'xr', 'glfw'", "'glfw'")
    code = blocker + "\n".join(f"import {n}" for n in names)
    code += "\nassert not [m for m in sys.modules if m.startswith('PySide6')]\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_blocker_really_blocks():
    """The check above can fail: importing a blocked module under the blocker raises."""
    code = BLOCKER + "import OpenGL\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "must not import OpenGL" in out.stderr
