"""The main window's VR: ``main.py xr SCENE`` launched as its own process (the window stays
usable), and the OpenXR runtime asked for again each time the VR menu opens.

A part of :class:`app.main_window.MainWindow`, which it expects to provide ``scene_path``,
``capabilities`` / ``set_capabilities``, ``vr_process``, ``_xr``, ``_xr_probe`` and
``_update_actions``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment

from . import dialogs

__all__ = ["VrActions"]

ROOT = Path(__file__).resolve().parent.parent


class VrActions:
    """Enter VR (a mixin of the main window)."""

    def vr_command(self) -> list[str]:
        return [sys.executable, str(ROOT / "main.py"), "xr", str(self.scene_path)]

    def _vr_text(self, has_scene: bool) -> str:
        """The menu item says why it is greyed out (menus show no tooltips)."""
        if self._xr_probe is not None and self._xr_probe.running():
            return "Enter VR (looking for an OpenXR runtime…)"
        if not self.capabilities.xr:
            reason = " ".join(self.capabilities.xr_reason.split())
            return f"Enter VR — {reason[:90]}" if reason else "Enter VR — no OpenXR runtime"
        return "Enter &VR" if has_scene else "Enter VR — open or generate a scene first"

    def reprobe_xr(self) -> None:
        """Ask for an OpenXR runtime again each time the VR menu opens: one started after the
        app (SteamVR, Monado) is found without a restart."""
        from .capabilities import XrProbe

        if self._xr_probe is not None and self._xr_probe.running():
            return
        probe = XrProbe(self)
        probe.ready.connect(self._xr_reprobed)
        self._xr_probe = probe
        probe.start()
        self._update_actions()

    def _xr_reprobed(self, ok: bool, reason: str) -> None:
        self._xr = (ok, reason)
        was = self.capabilities.xr
        self.set_capabilities(dataclasses.replace(self.capabilities, xr=ok, xr_reason=reason))
        if ok != was:
            self.statusBar().showMessage(
                "OpenXR runtime found: VR > Enter VR" if ok else f"XR: {reason}", 8000
            )

    def vr_environment(self) -> QProcessEnvironment:
        """The XR process's environment: the app's, without the GLX PyOpenGL platform its Qt
        views set (``main.py xr`` makes an EGL context; GLX there fails at once)."""
        env = QProcessEnvironment.systemEnvironment()
        if env.value("PYOPENGL_PLATFORM") == "glx":
            env.remove("PYOPENGL_PLATFORM")
        return env

    def enter_vr(self) -> bool:
        """Launch ``main.py xr SCENE`` as a separate process; the window stays usable."""
        if self.scene_path is None:
            return False
        if self.vr_process is not None and self.vr_process.state() != QProcess.NotRunning:
            self.statusBar().showMessage("VR is already running", 5000)
            return False
        proc = QProcess(self)
        cmd = self.vr_command()
        proc.setProgram(cmd[0])
        proc.setArguments(cmd[1:])
        proc.setWorkingDirectory(str(ROOT))
        proc.setProcessEnvironment(self.vr_environment())
        proc.finished.connect(lambda code, _status: self._vr_finished(proc, code))
        proc.start()
        self.vr_process = proc
        self.statusBar().showMessage("VR session started (close it in the headset)", 5000)
        return True

    def _vr_finished(self, proc: QProcess, code: int) -> None:
        err = bytes(proc.readAllStandardError()).decode("utf-8", "replace").strip()
        if code != 0:
            line = err.splitlines()[-1] if err else f"exit code {code}"
            dialogs.error(self, "VR session failed", line, err)
        else:
            self.statusBar().showMessage("VR session ended", 5000)
