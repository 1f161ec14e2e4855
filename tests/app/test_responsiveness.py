"""While the app generates, its event loop keeps running: a 10 ms QTimer records the gaps
between its ticks over a whole generate run started from the window (the worker thread
shares the GIL with the UI). No gap may exceed 100 ms beyond the noise the same timer shows
on the idle machine just before (on a quiet machine that noise is ~15 ms; on a machine
shared with other jobs the X server and the scheduler add their own delays), and 99 % of
the ticks come within 100 ms."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from engine.io import Region  # noqa: E402
from tests.app import test_main_window as main_window_tests  # noqa: E402
from tests.app.test_worker import TINY, tiny_panorama  # noqa: E402

pytestmark = [pytest.mark.qt, pytest.mark.slow]

gui = main_window_tests.gui
dialogs = main_window_tests.dialogs
MAX_GAP_MS = 100.0


class GapMeter:
    """Ticks every 10 ms on the UI thread; keeps (gap, stage at that moment)."""

    def __init__(self, progress_panel) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.panel = progress_panel
        self.gaps: list[tuple[float, str, float]] = []  # (gap ms, stage, when)
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(((now - self.last) * 1000, self.panel.stage, now))
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()


def test_event_loop_never_stalls_while_generating(gui, qtbot, tmp_path, dialogs):
    from PySide6.QtCore import QSettings, Qt

    # as a person gets it: the window probes (and warms up lazy imports) at start-up, off
    # the UI thread, and is ready before anyone presses Generate
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    win = gui.MainWindow(settings, probe=True, runs_dir=tmp_path / "runs")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.caps_label.text().startswith("CUDA"), timeout=60000)
    assert win.open_panorama(tiny_panorama(tmp_path, width=1024))
    h, w = win.model.size
    sky = np.zeros((h, w), bool)
    sky[: h // 3] = True
    win.model.set_regions([Region("sky", sky, 180.0, 10.0)])
    panel = win.generate_panel
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData("preview"))
    panel.frames_spin.setValue(5)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    over = {k: dict(v) for k, v in TINY.items()}
    over["lift"].update(scale=0.5, refine={"passes": 4})
    panel.overrides = over
    # the machine's own noise first: the same timer with nothing running (other processes,
    # the X server and the scheduler can delay a wake-up on a busy machine)
    idle = GapMeter(win.progress_panel)
    idle.start()
    qtbot.wait(3000)
    idle.timer.stop()
    noise = max(g for g, _, _ in idle.gaps)

    meter = GapMeter(win.progress_panel)
    meter.start()
    t0 = time.perf_counter()
    assert win.start_generation()
    ended: list[float] = []
    # recorded in the worker thread the moment the run ends: afterwards the UI thread shows
    # the result (GL context, shaders, upload), which is not "while generating"
    win.worker.finished.connect(lambda _r: ended.append(time.perf_counter()), Qt.DirectConnection)
    qtbot.waitUntil(lambda: win.worker.outcome is not None and bool(ended), timeout=120000)
    meter.timer.stop()
    took = ended[0] - t0
    assert win.worker.outcome == "finished", win.worker.error
    gaps = sorted(((g, s) for g, s, t in meter.gaps if t <= ended[0]), reverse=True)
    values = np.array([g for g, _ in gaps])
    p99 = float(np.percentile(values, 99))
    print(
        f"idle: worst gap {noise:.0f} ms; generating {took:.1f} s: {len(gaps)} ticks, "
        f"median {np.median(values):.1f} ms, p99 {p99:.0f} ms, worst (ms, stage): "
        + ", ".join(f"{g:.0f} {s or 'start'}" for g, s in gaps[:5])
    )
    assert took > 1.0 and len(gaps) > 20 * took  # it really ran, and the timer kept ticking
    assert p99 < MAX_GAP_MS
    # never a stall beyond the limit, on top of what the idle machine itself showed
    assert gaps[0][0] < MAX_GAP_MS + max(0.0, noise - 20.0), gaps[:5]
    win.dirty = False
    win.close()
