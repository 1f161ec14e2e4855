"""Screenshots of the real app in its three main states, for the README and the guide:

    docs/images/app_painting.jpg    the bundled sample with its sky and trees regions painted
    docs/images/app_generating.jpg  a generate run in progress (stage, percent, elapsed, ETA)
    docs/images/app_viewing.jpg     the generated scene in the Result tab

Real widgets, a real generate run (the "standard" preset on the full 2048x1024 sample, a few
minutes on a CPU) and ``QWidget.grab()``. Needs an X display; without one it starts a private
Xvfb.

    python scripts/make_app_screenshots.py [--out docs/images] [--preset standard]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"
sys.path.insert(0, str(ROOT))

from app import xvfb  # noqa: E402  (after the path: run as a script)


def start_xvfb() -> subprocess.Popen | None:
    """A private Xvfb (1600x1000x24) when there is no DISPLAY, as tests/conftest.py does."""
    if os.environ.get("DISPLAY"):
        return None
    started = xvfb.start_xvfb("1600x1000x24")
    if started is None:
        sys.exit("error: no DISPLAY, and Xvfb is missing or did not start (apt-get install xvfb)")
    proc, os.environ["DISPLAY"] = started
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return proc


def pump(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(app, condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"error: timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.02)


def save(widget, path: Path) -> None:
    widget.grab().save(str(path), quality=90)  # JPEG: a tenth of the PNG, same look
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--preset", default="standard")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    xvfb = start_xvfb()
    if xvfb is not None:  # registered first, so it runs after Qt's own exit handler
        atexit.register(lambda: (xvfb.terminate(), xvfb.wait()))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # atexit runs on a kill too
    return shoot(out, args.preset)


def shoot(out: Path, preset: str) -> int:
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from app.viewer_window import default_surface_format

    QSurfaceFormat.setDefaultFormat(default_surface_format())
    QApplication.setAttribute(Qt.AA_ShareOpenGLContexts)
    app = QApplication(sys.argv[:1])
    from app.main_window import MainWindow

    work = Path(tempfile.mkdtemp(prefix="pano4d-shots-"))
    settings = QSettings(str(work / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(settings, runs_dir=work / "runs")
    win.resize(1440, 900)
    win.show()
    wait_for(app, lambda: win.caps_label.text().startswith("CUDA"), 120, "the capability probe")

    # ---- painting: the sample with its bundled regions (sky drifts, trees sway)
    assert win.open_panorama(SAMPLES / "park_2048x1024.png")
    win.region_panel.import_regions(SAMPLES / "park_regions.json")
    win.model.set_current(0)
    win.lookaround.set_view(-40.0, 25.0, 100.0)
    pump(app, 1.0)
    save(win, out / "app_painting.jpg")

    # ---- generating: a run in progress
    panel = win.generate_panel
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData(preset))
    assert win.start_generation()
    wait_for(app, lambda: win.progress_panel.fraction > 0.45, 900, "the run to reach 45 %")
    pump(app, 0.6)
    save(win, out / "app_generating.jpg")
    wait_for(app, lambda: win.worker.outcome is not None, 1800, "the run to finish")
    if win.worker.outcome != "finished":
        raise SystemExit(f"error: generate {win.worker.outcome}: {win.worker.error}")

    # ---- viewing: the scene in the Result tab
    pump(app, 1.0)
    viewer = win.viewer
    if viewer.playback.playing:
        viewer.toggle_play()
    viewer.slider.setValue(viewer.playback.n_frames // 2)
    viewer.view.camera.rotate(-40.0, 18.0)
    viewer.view.update()
    viewer.view.wait_for_sort()
    pump(app, 1.0)
    viewer.view.wait_for_sort()
    pump(app, 0.5)
    save(win, out / "app_viewing.jpg")
    win.dirty = False
    win.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
