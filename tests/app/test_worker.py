"""The generate worker: the real pipeline in a QThread on a tiny panorama (a 512x256 resize of
the bundled sample), its signals, cancelling within a second, resuming from the checkpoints
the cancel left, and errors as (one line, details)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from engine.config import Inputs  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.io import Region, load_panorama, save_regions  # noqa: E402
from engine.pipeline import STAGES  # noqa: E402
from engine.scene import load_scene  # noqa: E402
from tests.conftest import SAMPLES  # noqa: E402

pytestmark = pytest.mark.qt

# A tiny run: what the app's Generate panel passes as settings overrides in the e2e test.
TINY = {
    "lift": {
        "scale": 0.25,
        "solve": {"view_sets": 1, "iters": 8},
        "refine": {"passes": 1},
    },
    "output": {"preview_size": [64, 128], "preview_frames": 4, "equirect_loops": 1},
}


def tiny_panorama(folder: Path, width: int = 512) -> Path:
    """The bundled sample resized to width x width/2 (area filter), as PNG."""
    import cv2

    rgb = load_panorama(SAMPLES / "park_2048x1024.png").rgb
    small = cv2.resize(rgb, (width, width // 2), interpolation=cv2.INTER_AREA)
    path = folder / "park_small.png"
    cv2.imwrite(str(path), np.ascontiguousarray(small[..., ::-1]))
    return path


def sky_regions(folder: Path, size: tuple[int, int]) -> Path:
    h, w = size
    mask = np.zeros((h, w), bool)
    mask[: h // 4] = True
    path = folder / "regions.json"
    save_regions(path, [Region("sky", mask, 30.0, 6.0)])
    return path


def tiny_config(frames: int = 3, passes: int = 1):
    from app.generate_panel import GenerateSettings

    over = {k: dict(v) for k, v in TINY.items()}
    over["lift"]["refine"] = {"passes": passes}
    return GenerateSettings(preset="preview", frames=frames, device="cpu", overrides=over)


@pytest.fixture
def inputs(tmp_path) -> Inputs:
    pano = tiny_panorama(tmp_path)
    return Inputs(panorama=pano, regions=sky_regions(tmp_path, (256, 512)))


class Recorder:
    def __init__(self, worker) -> None:
        self.progress: list[tuple[str, float, str, float]] = []
        self.ends: list[tuple] = []
        worker.progress.connect(lambda s, f, m: self.progress.append((s, f, m, time.monotonic())))
        worker.finished.connect(lambda r: self.ends.append(("finished", r, time.monotonic())))
        worker.failed.connect(lambda m, d: self.ends.append(("failed", m, d)))
        worker.cancelled.connect(lambda: self.ends.append(("cancelled", time.monotonic())))


def run_to_end(qtbot, worker, timeout_ms: int = 60000) -> Recorder:
    rec = Recorder(worker)
    worker.start()
    qtbot.waitUntil(lambda: bool(rec.ends), timeout=timeout_ms)
    assert worker.wait(5000)
    return rec


def test_generate_worker_runs_the_pipeline(qtbot, inputs, tmp_path):
    from app.worker import GenerateJob, GenerateWorker

    out = tmp_path / "out"
    cfg = tiny_config(frames=3).to_config()
    assert cfg.lift.refine.passes == 1 and cfg.lift.solve.view_sets == 1
    assert cfg.animate.frames == 3 and cfg.lift.device == "cpu"
    worker = GenerateWorker(GenerateJob(inputs, cfg, out))
    rec = run_to_end(qtbot, worker)
    assert [e[0] for e in rec.ends] == ["finished"], rec.ends
    report = rec.ends[0][1]
    assert report == json.loads((out / "report.json").read_text())
    assert report["frames"] == 3 and report["static_max_error"] == 0
    scene = load_scene(out / "scene")
    assert scene.n_frames == 3 and len(scene.static) == report["gaussians_static"]
    fractions = [p[1] for p in rec.progress]
    assert fractions == sorted(fractions) and fractions[0] >= 0 and fractions[-1] == 1.0
    seen = list(dict.fromkeys(p[0] for p in rec.progress))
    assert seen == [s for s in STAGES if s in seen] and {"animate", "lift", "save"} <= set(seen)
    assert not (out / ".pano4d").exists()  # checkpoints removed after success


def test_cancel_stops_within_a_second_and_resume_uses_the_checkpoints(qtbot, inputs, tmp_path):
    from app.worker import GenerateJob, GenerateWorker

    out = tmp_path / "out"
    # long enough to cancel in the middle of lifting
    cfg = tiny_config(frames=3, passes=200).to_config()
    worker = GenerateWorker(GenerateJob(inputs, cfg, out))
    rec = Recorder(worker)
    worker.start()
    qtbot.waitUntil(
        lambda: any(p[0] == "lift" and "static" in p[2] for p in rec.progress), timeout=60000
    )
    t_cancel = time.monotonic()
    worker.cancel()
    qtbot.waitUntil(lambda: bool(rec.ends), timeout=10000)
    assert rec.ends[0][0] == "cancelled", rec.ends
    latency = rec.ends[0][1] - t_cancel
    print(f"cancel latency: {latency * 1000:.0f} ms")
    assert latency < 1.0
    assert worker.wait(5000) and worker.outcome == "cancelled"
    assert not (out / "report.json").exists()
    state = json.loads((out / ".pano4d" / "state.json").read_text())
    assert "animate" in state["done"]

    again = GenerateWorker(GenerateJob(inputs, tiny_config(frames=3).to_config(), out, True))
    rec2 = run_to_end(qtbot, again)
    # other settings: the engine refuses to mix checkpoints (one line, as the app shows it)
    assert rec2.ends[0][0] == "failed" and "other inputs or settings" in rec2.ends[0][1]
    resumed = GenerateWorker(GenerateJob(inputs, cfg, out, resume=True))  # the same settings
    rec3 = Recorder(resumed)
    resumed.start()
    qtbot.waitUntil(lambda: any(p[0] == "lift" for p in rec3.progress), timeout=60000)
    resumed.cancel()  # (do not wait for 400 iterations) - but animate came from the checkpoint
    qtbot.waitUntil(lambda: bool(rec3.ends), timeout=10000)
    assert resumed.wait(5000)  # the thread has ended before the worker can be destroyed
    assert any(p[0] == "animate" and "resumed" in p[2] for p in rec3.progress)


def test_bad_panorama_fails_with_the_engine_message(qtbot, tmp_path):
    from app.worker import GenerateJob, GenerateWorker

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(InputError) as ref:
        load_panorama(bad)
    inputs = Inputs(panorama=bad, regions=tmp_path / "r.json")
    worker = GenerateWorker(GenerateJob(inputs, tiny_config().to_config(), tmp_path / "o"))
    rec = run_to_end(qtbot, worker)
    kind, message, details = rec.ends[0]
    assert kind == "failed" and message == str(ref.value) and "\n" not in message
    assert "InputError" in details
    assert not (tmp_path / "o").exists()  # nothing written for a bad input


def test_unexpected_error_carries_the_traceback(qtbot):
    from app.worker import TaskWorker

    def boom(cb, cancel):
        cb("export", 0.5, "half")
        return 1 / 0

    rec = run_to_end(qtbot, TaskWorker(boom))
    kind, message, details = rec.ends[0]
    assert kind == "failed" and message == "ZeroDivisionError: division by zero"
    assert "Traceback" in details and "boom" in details


def test_progress_is_throttled_but_keeps_stage_changes_and_the_end(qtbot):
    from app.worker import TaskWorker

    def chatty(cb, cancel):
        for stage in ("a", "b"):
            for i in range(20001):
                cb(stage, i / 20000, f"{i}")
        return "ok"

    rec = run_to_end(qtbot, TaskWorker(chatty))
    assert rec.ends[0][:2] == ("finished", "ok")
    assert len(rec.progress) < 200  # 40k reports, a few per 50 ms reach the UI
    assert [p[0] for p in rec.progress].count("b") >= 1
    assert rec.progress[-1][:2] == ("b", 1.0)
    first_b = next(p for p in rec.progress if p[0] == "b")
    assert first_b[1] == 0.0  # the stage change itself was delivered


def test_progress_panel_says_it_is_estimating_before_it_can(qtbot):
    from app.progress_panel import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.start("Generating")
    panel.update_progress("animate", 0.0, "advecting")
    assert panel.eta_label.text() == "Estimating time left…"
    assert "—" not in panel.eta_label.text()


def test_progress_panel_shows_the_stage_estimate(qtbot):
    """With a run's stage times, the bar measures time (the lift's end is 80 % of the run
    here, not its 85 % share of the reports) and the time left is in seconds from the start."""
    from app.progress_panel import ProgressPanel
    from engine.pipeline import stage_spans
    from engine.progress import StageEstimate

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    expected = {"load": 0.0, "animate": 10.0, "depth": 0.0, "lift": 70.0, "save": 20.0}
    panel.start("Generating", estimate=StageEstimate(stage_spans(), expected))
    panel.update_progress("load", 0.0, "reading")
    assert panel.eta_label.text() == "About 1:40 left"
    panel.update_progress("lift", stage_spans()["lift"][1], "done")
    assert panel.bar.value() == 800
    assert panel.stage_label.text() == "Lifting to Gaussians — 80%"
