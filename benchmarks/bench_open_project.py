"""Opening a project with a result in the app: File > Open Project on a standard-preset
project (the park sample, 16 frames, ~1.26 M Gaussians per frame), timed from the call to
the event loop being free again, the first time in the process and again. The result is
made by ``main.py demo`` into ``demo_out/`` first when missing.

    QT_XCB_GL_INTEGRATION=xcb_egl xvfb-run -a -s "-screen 0 1600x1200x24" \\
        .venv/bin/python benchmarks/bench_open_project.py [--result demo_out]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--result", type=Path, default=ROOT / "demo_out")
    args = ap.parse_args()
    if not (args.result / "scene" / "manifest.json").is_file():
        subprocess.run([sys.executable, "main.py", "demo", "--out", str(args.result)], check=True)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from app.generate_panel import GenerateSettings
    from app.main_window import SAMPLE, MainWindow
    from app.project import save_project

    tmp = Path(tempfile.mkdtemp(prefix="pano4d-bench-open-"))
    project = save_project(
        tmp / "park", panorama=SAMPLE, regions=[], settings=GenerateSettings(), result=args.result
    )
    settings = QSettings(str(tmp / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(settings, probe=False, runs_dir=tmp / "runs")
    win.show()
    app.processEvents()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        assert win.open_project(project.folder)
        app.processEvents()
        times.append(time.perf_counter() - t0)
        win.tabs.setCurrentIndex(1)  # the Result tab, as a user looks at it
        app.processEvents()
    win.dirty = False
    win.close()
    print(json.dumps({"machine": machine(), "first_s": round(times[0], 2),
                      "again_s": round(times[1], 2)}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
