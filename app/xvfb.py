"""A private X server for running the Qt app without a display: the qt tests, the app
benchmark and the screenshot script. Imports neither Qt nor OpenGL."""

from __future__ import annotations

import os
import shutil
import subprocess


def start_xvfb(screen: str = "1280x1024x24") -> tuple[subprocess.Popen, str] | None:
    """Start Xvfb on a free display number that Xvfb picks itself (``-displayfd``; it writes
    the number once the server accepts connections). Returns ``(process, ":N")``, or None
    when Xvfb is not installed or did not start. The caller points DISPLAY at it and stops
    the process (:func:`stop_xvfb`)."""
    exe = shutil.which("Xvfb")
    if exe is None:
        return None
    r, w = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    if not number:
        stop_xvfb(proc)
        return None
    return proc, f":{number}"


def stop_xvfb(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
