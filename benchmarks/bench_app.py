"""The desktop app, measured with its real components: painting, undo / redo, fill and the
look-around view on :class:`app.main_window.MainWindow`; the event loop while a generate
runs; and how fast Cancel stops a run.

Run under Xvfb with Qt's EGL-on-X11 integration (what ``tests/app`` use), from the
repository root::

    QT_XCB_GL_INTEGRATION=xcb_egl xvfb-run -a -s "-screen 0 1600x1200x24" \\
        .venv/bin/python benchmarks/bench_app.py [--quick]

(without ``DISPLAY`` the script starts a private Xvfb itself). Nothing is mocked except the
dialog functions of :mod:`app.dialogs`, which print instead of blocking. What it measures:

1. Painting, on the bundled park sample upscaled to 4096x2048 (bicubic) and at its own
   2048x1024, in the window's default size with the panorama fitted: ~200 ``QTest``
   mouse-move segments of one brush stroke across the sky (brush W/40 panorama pixels).
   Per segment: the move event (the model's capsule, tile diff and labels, the canvas'
   update rectangles), the canvas ``paintEvent`` that follows, and move-to-painted (the
   move, then the event loop until the canvas has painted: Qt's update request, the
   overlay refresh, the paint and anything else that came due, such as the look-around
   view's throttled refresh). Then undo and redo of that stroke (Ctrl+Z / Ctrl+Shift+Z on
   the canvas, until painted), a flood fill of the sky (fill tool click, until painted)
   and the look-around view's re-render + repaint for new view directions, while dragging
   (coarse) and at rest (full size).
2. Event-loop stalls during a generate: the gaps between the ticks of a 10 ms
   ``Qt.PreciseTimer`` on the UI thread, idle (5 s, the machine's own noise) and over a
   whole ``preview`` run on the 2048x1024 sample with its bundled regions (sky + trees),
   started from the window; the run ends when the worker emits ``finished``. The result
   being shown afterwards (scene load, GL set-up) is reported on its own row.
3. Cancel latency: three ``standard`` runs of the same input, cancelled by clicking the
   progress panel's Cancel button during animate, during lift's static phase and during
   lift's dynamic frames; the latency is click -> the worker's ``cancelled`` signal
   (emitted in the worker thread) and click -> its delivery on the UI thread.

Prints progress to stderr and a markdown table (and the machine) to stdout. Benchmark on an
idle machine (see docs/BENCHMARKS.md: the 2 cores are easily disturbed).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine as base_machine  # noqa: E402  (benchmarks/ is on sys.path)

from app import xvfb  # noqa: E402  (after the path: run as a script)

SAMPLES = ROOT / "resources" / "samples"
SAMPLE = SAMPLES / "park_2048x1024.png"
REGIONS = SAMPLES / "park_regions.json"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_XCB_GL_INTEGRATION", "xcb_egl")  # as tests/app (before Qt starts)
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # PyOpenGL then matches Qt's EGL context

perf = time.perf_counter
PAINTS: dict[str, list[tuple[float, float]]] = {"canvas": [], "look": []}


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ set-up


def start_xvfb() -> subprocess.Popen | None:
    """A private Xvfb (1600x1200x24) when there is no DISPLAY, as tests/conftest.py does."""
    if os.environ.get("DISPLAY"):
        return None
    started = xvfb.start_xvfb("1600x1200x24")
    if started is None:
        raise SystemExit("no DISPLAY, and Xvfb is missing or did not start (apt-get install xvfb)")
    proc, os.environ["DISPLAY"] = started
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return proc


def import_app():
    """The app modules, with PyOpenGL on EGL like tests/app (Qt's context is EGL on X11)."""
    import OpenGL.GL  # noqa: F401  (before app.*: keeps PYOPENGL_PLATFORM=egl)
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QSurfaceFormat
    from PySide6.QtWidgets import QApplication

    from app import canvas, dialogs, lookaround, main_window
    from app.viewer_window import default_surface_format

    QSurfaceFormat.setDefaultFormat(default_surface_format())
    QApplication.setAttribute(Qt.AA_ShareOpenGLContexts)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    # dialogs print instead of blocking (the window never waits for a person)
    dialogs.error = lambda _p, title, msg, details="": log(f"[dialog] {title}: {msg}")
    dialogs.ask = lambda *_a, **_k: None
    dialogs.ask_save_changes = lambda *_a, **_k: "discard"
    # time every paint of the canvas and the look-around view (class-level, before any
    # instance exists)
    for cls, key in ((canvas.PaintCanvas, "canvas"), (lookaround.LookAroundView, "look")):
        orig = cls.paintEvent

        def timed(self, event, _orig=orig, _key=key):
            t0 = perf()
            _orig(self, event)
            PAINTS[_key].append((t0, perf()))

        cls.paintEvent = timed
    return app, main_window


def machine() -> str:
    import PySide6
    import torch

    gpu = "CUDA" if torch.cuda.is_available() else "no GPU"
    return (
        f"{base_machine()}, {gpu}; "
        f"PySide6 {PySide6.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); DISPLAY {os.environ.get('DISPLAY')} "
        f"(Xvfb), QT_XCB_GL_INTEGRATION={os.environ.get('QT_XCB_GL_INTEGRATION')}"
    )


# ------------------------------------------------------------------------------ helpers


def wait(ms: float) -> None:
    """Run the event loop for ``ms`` (QEventLoop.exec lets the worker thread take the GIL;
    PySide's QTest.qWait does not, and a generate then stands still)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def wait_until(cond, timeout_s: float, step_ms: int = 10) -> bool:
    end = perf() + timeout_s
    while not cond():
        if perf() > end:
            return False
        wait(step_ms)
    return True


def wait_painted(key: str, n_before: int, timeout_s: float = 1.0) -> None:
    """Run the event loop until the widget painted (its update request is posted or timed)."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    end = perf() + timeout_s
    while len(PAINTS[key]) <= n_before and perf() < end:
        QCoreApplication.processEvents(QEventLoop.AllEvents, 5)


def paint_ms(key: str, n_before: int) -> float:
    return sum(b - a for a, b in PAINTS[key][n_before:]) * 1000


def stats(values) -> dict:
    v = np.asarray(values, np.float64)
    return {
        "n": int(v.size),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
    }


class GapMeter:
    """A 10 ms precise QTimer on the UI thread; keeps (gap ms, stage, when)."""

    def __init__(self, panel) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.panel = panel
        self.gaps: list[tuple[float, str, float]] = []
        self.last = perf()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = perf()
        self.gaps.append(((now - self.last) * 1000, self.panel.stage, now))
        self.last = now

    def start(self) -> GapMeter:
        self.gaps.clear()
        self.last = perf()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.stop()


def upscaled(folder: Path, width: int) -> Path:
    import cv2

    from engine.io import load_panorama

    if width == 2048:
        return SAMPLE
    rgb = load_panorama(SAMPLE).rgb
    big = cv2.resize(rgb, (width, width // 2), interpolation=cv2.INTER_CUBIC)
    path = folder / f"park_{width}x{width // 2}.png"
    cv2.imwrite(str(path), np.ascontiguousarray(big[..., ::-1]))
    return path


def sky_point(h: int, w: int) -> tuple[float, float]:
    """A panorama point well inside the bundled sky mask (scaled to h x w)."""
    import cv2

    sky = cv2.imread(str(SAMPLES / "park_sky.png"), cv2.IMREAD_GRAYSCALE) > 127
    inner = cv2.erode(sky.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    ys, xs = np.nonzero(inner if inner.any() else sky)
    i = int(np.argmin(np.abs(xs - sky.shape[1] * 0.3) + np.abs(ys - sky.shape[0] * 0.12)))
    sy, sx = h / sky.shape[0], w / sky.shape[1]
    return (xs[i] + 0.5) * sx, (ys[i] + 0.5) * sy


# ------------------------------------------------------------------------------ 1. painting


def bench_painting(win, path: Path, segments: int, rows: list) -> None:
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    t0 = perf()
    assert win.open_panorama(path, ask=False), path
    wait(400)  # first paint, look-around, centroid timer
    h, w = win.model.size
    size = f"{w}×{h}"
    canvas, look = win.canvas, win.lookaround
    log(f"[paint {size}] opened in {perf() - t0:.2f} s; canvas {canvas.width()}×{canvas.height()}")
    rows.append(
        (f"open panorama (load, pyramid, overlay) {size}", size, stats([(perf() - t0) * 1000]))
    )
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_B)
    brush = w / 40
    canvas.set_brush_size(brush)
    # one stroke across the sky: left to right with a wiggle (unique widget points)
    pts: list[QPoint] = []
    for i in range(segments + 1):
        x = w * (0.05 + 0.9 * i / segments)
        y = h * (0.16 + 0.06 * np.sin(i / 6.0))
        p = canvas.image_to_widget(x, y).toPoint()
        if not pts or p != pts[-1]:
            pts.append(p)
    wait(300)
    seg, paint, total = [], [], []
    n0 = len(PAINTS["canvas"])
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, pts[0])
    wait_painted("canvas", n0)
    for p in pts[1:]:
        n0 = len(PAINTS["canvas"])
        t0 = perf()
        QTest.mouseMove(canvas, p)
        t1 = perf()
        wait_painted("canvas", n0)
        t2 = perf()
        seg.append((t1 - t0) * 1000)
        paint.append(paint_ms("canvas", n0))
        total.append((t2 - t0) * 1000)
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, pts[-1])
    wait(400)
    painted = float(win.model.layers[win.model.current].mask.mean())
    note = f"brush {brush:.0f} px, zoom {canvas.zoom:.3f}, {len(seg)} segments"
    rows.append((f"brush: move event (stroke segment) {size}", note, stats(seg)))
    rows.append((f"brush: canvas paintEvent {size}", "", stats(paint)))
    rows.append((f"brush: move → painted {size}", "", stats(total)))
    log(f"[paint {size}] stroke painted {100 * painted:.1f} % of the panorama")

    # undo / redo of that stroke (keys on the canvas, as a person presses them)
    und, red = [], []
    for _ in range(5):
        for keys, out in (
            ((Qt.Key_Z, Qt.ControlModifier), und),
            ((Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier), red),
        ):
            n0 = len(PAINTS["canvas"])
            t0 = perf()
            QTest.keyClick(canvas, *keys)
            wait_painted("canvas", n0)
            out.append((perf() - t0) * 1000)
            wait(350)  # the look-around view's refresh, outside the measurement
    assert abs(float(win.model.layers[win.model.current].mask.mean()) - painted) < 1e-9
    rows.append((f"undo one stroke (Ctrl+Z → painted) {size}", "5 times", stats(und)))
    rows.append((f"redo one stroke (Ctrl+Shift+Z → painted) {size}", "5 times", stats(red)))

    # fill of the sky (fill tool click), undone between repeats
    QTest.keyClick(canvas, Qt.Key_F)
    sx, sy = sky_point(h, w)
    at = canvas.image_to_widget(sx, sy).toPoint()
    fills, frac = [], 0.0
    for _ in range(3):
        before = win.model.layers[win.model.current].mask.copy()
        n0 = len(PAINTS["canvas"])
        t0 = perf()
        QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, at)
        wait_painted("canvas", n0)
        fills.append((perf() - t0) * 1000)
        frac = float((win.model.layers[win.model.current].mask & ~before).mean())
        wait(350)
        QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
        wait(350)
    rows.append(
        (
            f"fill the sky (click → painted) {size}",
            f"adds {100 * frac:.1f} % of pixels",
            stats(fills),
        )
    )

    # look-around: new directions while dragging (coarse) and at rest (full)
    wait(300)
    c = look.rect().center()
    drag, full = [], []
    QTest.mousePress(look, Qt.LeftButton, Qt.NoModifier, c)
    for i in range(1, 31):
        QTest.mouseMove(look, c + QPoint(6 * i, (i % 5) - 2))
        look._timer.stop()  # render now instead of at the throttle timer
        n0 = len(PAINTS["look"])
        t0 = perf()
        look._rerender()
        look.repaint()
        drag.append((perf() - t0) * 1000)
    coarse = look._render_size()
    QTest.mouseRelease(look, Qt.LeftButton, Qt.NoModifier, c + QPoint(180, 0))
    wait(200)
    for i in range(15):
        look.set_view(-150 + 20 * i, (-1) ** i * 20.0, 90.0)
        look._timer.stop()
        t0 = perf()
        look._rerender()
        look.repaint()
        full.append((perf() - t0) * 1000)
    fine = look._render_size()
    lw = f"widget {look.width()}×{look.height()}"
    rows.append(
        (
            f"look-around while dragging (render + repaint) {size}",
            f"{lw}, rendered {coarse[1]}×{coarse[0]}",
            stats(drag),
        )
    )
    rows.append(
        (
            f"look-around at rest (render + repaint) {size}",
            f"rendered {fine[1]}×{fine[0]}",
            stats(full),
        )
    )


# ------------------------------------------------------------------------------ 2. stalls


def set_up_generate(win, preset: str) -> None:
    panel = win.generate_panel
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findData(preset))
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("cpu"))
    panel.overrides = {}


def open_sample_with_regions(win) -> None:
    assert win.open_panorama(SAMPLE, ask=False)
    win.model.load(REGIONS)
    wait(500)


def bench_stalls(win, idle_s: float, rows: list, odd: list) -> None:
    from PySide6.QtCore import Qt

    open_sample_with_regions(win)
    set_up_generate(win, "preview")
    idle = GapMeter(win.progress_panel).start()
    wait(idle_s * 1000)
    idle.stop()
    idle_gaps = [g for g, _, _ in idle.gaps]
    rows.append(("event-loop gap, idle", f"10 ms timer, {idle_s:.0f} s", stats(idle_gaps)))

    meter = GapMeter(win.progress_panel).start()
    t0 = perf()
    assert win.start_generation()
    ended: list[float] = []
    win.worker.finished.connect(lambda _r: ended.append(perf()), Qt.DirectConnection)
    assert wait_until(lambda: win.worker.outcome is not None and bool(ended), 150)
    took = ended[0] - t0
    assert win.worker.outcome == "finished", win.worker.error
    # what follows the run on the UI thread: the result is opened and shown
    wait_until(lambda: win.viewer.view.scene is not None, 60)
    shown = perf()
    wait(1500)
    meter.stop()
    during = [(g, s) for g, s, t in meter.gaps if t <= ended[0]]
    after = [(g, t) for g, s, t in meter.gaps if t > ended[0]]
    values = [g for g, _ in during]
    st = stats(values)
    st["p99"] = float(np.percentile(values, 99))
    worst = sorted(during, reverse=True)[:5]
    rows.append(
        (
            "event-loop gap while generating (preview, 2048×1024)",
            f"run {took:.1f} s, worst: " + ", ".join(f"{g:.0f} ({s or 'start'})" for g, s in worst),
            st,
        )
    )
    if after:
        a = stats([g for g, _ in after])
        rows.append(
            (
                "event-loop gap while the result is shown (after the run)",
                f"scene shown {shown - ended[0]:.1f} s after the run ended",
                a,
            )
        )
    big = [g for g, _ in after if g > 100]
    if big:
        odd.append(
            f"{len(big)} of {len(after)} gaps over 100 ms (max {max(big):.0f}) while the "
            "result is shown after the run"
        )
    for g, s in during:
        if g > 100:
            odd.append(f"stall {g:.0f} ms during generate (stage {s or 'start'})")
    win.dirty = False


# ------------------------------------------------------------------------------ 3. cancel

FRAME_RE = re.compile(r"frame (\d+): (\d+)/")
STATIC_RE = re.compile(r"static (\d+)/")


def _at_point(panel, point: str, seen: dict) -> bool:
    stage, msg = panel.stage, panel.message
    if point == "animate":
        if stage == "animate":
            seen.setdefault("animate", perf())
            return perf() - seen["animate"] >= 1.0
        return False
    if point == "lift static":
        m = STATIC_RE.match(msg) if stage == "lift" else None
        return bool(m and int(m.group(1)) >= 5)
    m = FRAME_RE.match(msg) if stage == "lift" else None
    return bool(m and int(m.group(1)) >= 3)  # standard: 2 iterations per frame


def cancel_once(win, point: str, odd: list) -> dict | None:
    """One standard run, cancelled with the Cancel button at ``point``."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    panel = win.progress_panel
    meter = GapMeter(panel).start()
    t_start = perf()
    assert win.start_generation()
    worker = win.worker
    emitted: list[float] = []
    delivered: list[float] = []
    reports: list[tuple[float, str]] = []  # (when emitted, stage) in the worker thread
    worker.cancelled.connect(lambda: emitted.append(perf()), Qt.DirectConnection)
    worker.cancelled.connect(lambda: delivered.append(perf()))
    worker.progress.connect(lambda s, _f, _m: reports.append((perf(), s)), Qt.DirectConnection)
    seen: dict = {}
    if not wait_until(lambda: _at_point(panel, point, seen) or worker.outcome, 400, 20):
        odd.append(f"the standard run never reached {point} (cancelled there)")
        worker.cancel()
    if worker.outcome is not None or worker.cancel_token.cancelled:
        odd.append(f"not measured: the standard run ended ({worker.outcome}) before {point}")
        wait_until(lambda: not panel.running, 60)
        meter.stop()
        return None
    where = f"{panel.stage}: {panel.message}"
    reached = perf() - t_start
    t0 = perf()
    QTest.mouseClick(panel.cancel_button, Qt.LeftButton)
    wait_until(lambda: bool(delivered) or worker.outcome in ("finished", "failed"), 60, 1)
    meter.stop()
    if not emitted:
        odd.append(f"no cancelled signal at {point}: outcome {worker.outcome}")
        return None
    lat, ui = (emitted[0] - t0) * 1000, (delivered[0] - t0) * 1000
    # how often the engine reported (and so checked the token) just before the click
    times = [t for t, _ in reports if t <= t0][-8:]
    every = float(np.median(np.diff(times))) * 1000 if len(times) > 2 else float("nan")
    worst = max((g for g, _, _ in meter.gaps), default=0.0)
    log(
        f"[cancel {point}] at {where!r} ({reached:.1f} s in): {lat:.0f} ms, UI {ui:.0f} ms, "
        f"reports every {every:.0f} ms"
    )
    if lat > 1000 or ui > 1000:
        odd.append(
            f"cancel {lat:.0f} ms (UI {ui:.0f} ms) at {point}: '{where}', the engine "
            f"reported every {every:.0f} ms there"
        )
    for g, s, _ in meter.gaps:
        if g > 100:
            odd.append(f"stall {g:.0f} ms in a standard run (cancelled at {point}), stage {s}")
    wait_until(lambda: not panel.running, 10)
    wait(500)
    return {"lat": lat, "ui": ui, "where": where, "every": every, "worst": worst}


def bench_cancel(win, repeats: int, rows: list, odd: list) -> None:
    set_up_generate(win, "standard")
    for point in ("animate", "lift static", "lift dynamic"):
        runs = [r for r in (cancel_once(win, point, odd) for _ in range(repeats)) if r]
        if not runs:
            continue
        note = (
            "at "
            + ", ".join(f"'{r['where']}'" for r in runs)
            + f"; engine reports every {np.median([r['every'] for r in runs]):.0f} ms there; "
            + "→ UI thread "
            + ", ".join(f"{r['ui']:.0f}" for r in runs)
            + f" ms; worst UI gap in these runs {max(r['worst'] for r in runs):.0f} ms"
        )
        rows.append(
            (
                f"cancel during {point} (standard, 2048×1024): click → cancelled",
                note,
                stats([r["lat"] for r in runs]),
            )
        )
    win.dirty = False


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 segments, 2048x1024 only")
    ap.add_argument("--segments", type=int, default=200, help="mouse-move segments per size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 2048], help="widths")
    ap.add_argument("--cancel-repeats", type=int, default=2, help="runs per cancel point")
    ap.add_argument("--skip", nargs="*", default=[], choices=["paint", "stall", "cancel"])
    args = ap.parse_args(argv)
    if args.quick:
        args.segments, args.sizes = 60, [2048]

    xvfb = start_xvfb()
    try:
        load = os.getloadavg()[0]
        app, main_window = import_app()
        from PySide6.QtCore import QSettings

        rows: list = []
        odd: list[str] = []
        t_all = perf()
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            settings = QSettings(str(tmp / "settings.ini"), QSettings.IniFormat)
            t0 = perf()
            win = main_window.MainWindow(settings, probe=True, runs_dir=tmp / "runs")
            win.show()
            # as a person gets it: the capability probe (and its lazy imports) off the UI
            # thread before anyone paints or presses Generate
            wait_until(lambda: win.caps_label.text().startswith("CUDA"), 120)
            ready = (perf() - t0) * 1000
            log(f"window ready in {ready / 1000:.1f} s: {win.caps_label.text()!r}")
            rows.append(("window start → capability probe done", "", stats([ready])))
            if "paint" not in args.skip:
                for width in args.sizes:
                    bench_painting(win, upscaled(tmp, width), args.segments, rows)
            if "stall" not in args.skip:
                bench_stalls(win, 3.0 if args.quick else 5.0, rows, odd)
            if "cancel" not in args.skip:
                open_sample_with_regions(win)
                bench_cancel(win, 1 if args.quick else args.cancel_repeats, rows, odd)
            win.dirty = False
            win.close()
            app.processEvents()
        log(f"total {perf() - t_all:.0f} s")
        print(f"\nMachine: {machine()}; load average at start {load:.2f}\n")
        print("| measurement | details | n | median ms | p95 ms | p99 ms | max ms |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for name, note, s in rows:
            p99 = f"{s['p99']:.1f}" if "p99" in s else ""
            p95 = f"{s['p95']:.1f}" if s["n"] > 1 else ""
            print(
                f"| {name} | {note} | {s['n']} | {s['median']:.1f} | {p95} | {p99} "
                f"| {s['max']:.1f} |"
            )
        if odd:
            print("\nOver the limits (stall > 100 ms, cancel > 1 s):")
            for line in odd:
                print(f"- {line}")
        return 0
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)


if __name__ == "__main__":
    sys.exit(main())
