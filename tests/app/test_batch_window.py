"""The Batch window under Xvfb with real worker processes (no mocks except the dialog
functions): a job file's jobs run with moving progress, a bad job fails alone with its one
line, a done job opens in the main window's Result tab, Stop keeps checkpoints and Resume
finishes the rest, an earlier batch in the output folder is shown and offered for resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.app.test_main_window import Dialogs, gui, make_window  # noqa: F401  (fixtures)
from tests.conftest import textured_equirect

pytestmark = pytest.mark.qt

COLUMN = {name: i for i, name in enumerate(("Job", "Status", "Attempts", "Stage", "Progress",
                                            "Time", "Details"))}  # fmt: skip


@pytest.fixture
def dialogs(monkeypatch):
    return Dialogs(monkeypatch)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_inputs")
    Image.fromarray(textured_equirect(128, 256, seed=3)).save(d / "pano.png")
    m = np.zeros((128, 256), np.uint8)
    m[12:64, 25:230] = 255
    Image.fromarray(m).save(d / "mask.png")
    (d / "broken.png").write_bytes(b"\x89PNG not really")
    return d


def job_file(folder, jobs, name="jobs.json", frames=3):
    path = folder / name
    doc = {"format": "pano4d-batch", "version": 1,
           "defaults": {"preset": "preview", "frames": frames}, "jobs": jobs}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def cell(w, row: int, column: str) -> str:
    return w.table.item(row, COLUMN[column]).text()


def run_to_end(qtbot, w, timeout_s=240):
    snaps = []
    w.worker.changed.connect(snaps.append)
    qtbot.waitUntil(lambda: w.worker is None, timeout=timeout_s * 1000)
    return snaps


@pytest.fixture
def window(gui, qtbot, tmp_path, dialogs):  # noqa: F811
    main = make_window(gui, qtbot, tmp_path)
    w = main.open_batch_window()
    qtbot.waitExposed(w)
    yield main, w
    if w.worker is not None:
        w.worker.cancel()
        w.worker.wait(120000)
    main.dirty = False
    main.close()


def test_a_job_file_runs_its_jobs_and_a_done_job_opens_in_result(window, qtbot, inputs, dialogs):
    main, w = window
    jobs = [{"name": "a", "panorama": "pano.png", "mask": "mask.png"},
            {"name": "bad", "panorama": "broken.png", "mask": "mask.png"}]  # fmt: skip
    path = job_file(inputs, jobs, "two.json")
    dialogs.paths.append(str(path))
    w.jobs_button.click()
    assert w.jobs_file == path and w.out == inputs / "two_out"
    assert [cell(w, r, "Status") for r in (0, 1)] == ["Waiting", "Waiting"]
    assert w.summary_label.text() == "2 job(s), none run yet" and w.start_button.isEnabled()
    out = inputs / "two_run"
    dialogs.paths.append(str(out))
    w.out_button.click()
    assert w.out == out and w.out_edit.text() == str(out)

    w.start_button.click()
    assert w.running() and not w.start_button.isEnabled() and w.stop_button.isEnabled()
    assert not w.jobs_button.isEnabled()
    snaps = run_to_end(qtbot, w)
    assert not dialogs.errors
    running = [j for s in snaps for j in s.jobs if j["status"] == "running"]
    assert {j["stage"] for j in running} >= {"animate", "lift"}  # the table followed the job
    assert any(0 < j["fraction"] < 1 for j in running)
    assert [cell(w, r, "Status") for r in (0, 1)] == ["Done", "Failed"]
    assert "not a valid PNG" in cell(w, 1, "Details")
    assert "psnr_native" in cell(w, 0, "Details") and "views of 60 deg" in cell(w, 0, "Details")
    assert w.table.item(0, COLUMN["Progress"]).data(0x0100) == 1.0  # Qt.UserRole
    assert cell(w, 0, "Attempts") == "1" and ":" in cell(w, 0, "Time")
    assert w.summary_label.text().startswith("Batch finished: 1/2 done, 1 failed")
    assert w.bar.value() == 1000
    doc = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in doc["jobs"]] == ["done", "failed"]

    w.table.selectRow(1)
    assert not w.open_button.isEnabled() and w.log_button.isEnabled()
    w.table.selectRow(0)
    assert w.open_button.isEnabled()
    w.open_button.click()
    assert main.tabs.currentIndex() == 1 and main.result_dir == out / "a"
    assert main.viewer.playback.n_frames == 3 and not dialogs.errors

    # the same folder again: the earlier batch is shown, and resuming is offered
    w.set_out(out)
    assert [cell(w, r, "Status") for r in (0, 1)] == ["Done", "Failed"]
    assert w.resume_check.isChecked()
    assert w.summary_label.text().startswith("Earlier batch (finished): 1/2 done, 1 failed")
    w.resume_check.setChecked(False)
    dialogs.answers.append("Cancel")
    assert not w.start()
    assert dialogs.asked[-1][0] == "Earlier batch in this folder" and w.worker is None


def test_stop_keeps_checkpoints_and_resume_finishes(window, qtbot, inputs, tmp_path, dialogs):
    _main, w = window
    path = job_file(inputs, [{"name": "long", "panorama": "pano.png", "mask": "mask.png"}],
                    "one.json", frames=6)  # fmt: skip
    assert w.open_jobs(path) and w.set_out(tmp_path / "out")
    assert w.start()
    lifting = []
    w.worker.changed.connect(
        lambda s: lifting.append(1) if s.jobs[0].get("stage") in ("depth", "lift") else None
    )
    qtbot.waitUntil(lambda: bool(lifting), timeout=240000)
    w.stop_button.click()
    assert w.summary_label.text().startswith("Stopping") and not w.stop_button.isEnabled()
    qtbot.waitUntil(lambda: w.worker is None, timeout=240000)
    assert cell(w, 0, "Status") == "Stopped" and "checkpoints" in cell(w, 0, "Details")
    assert w.summary_label.text().startswith("Batch stopped")
    assert (tmp_path / "out" / "long" / ".pano4d" / "state.json").is_file()

    w.set_out(tmp_path / "out")
    assert w.resume_check.isChecked()
    assert w.start()
    run_to_end(qtbot, w)
    assert cell(w, 0, "Status") == "Done" and not dialogs.errors
    log = (tmp_path / "out" / "long" / "job.log").read_text()
    assert "cancelled; checkpoints kept" in log and "resuming from checkpoints" in log


def test_a_bad_job_file_is_one_line_and_changes_nothing(window, inputs, dialogs):
    _main, w = window
    path = job_file(inputs, [{"panorama": "pano.png", "frames": "8"}], "bad.json")
    assert not w.open_jobs(path)
    (title, message, _details) = dialogs.errors[-1]
    assert title == "Cannot open job file"
    assert message == "job 0 (pano.png): 'frames' must be a whole number, got \"8\""
    assert w.jobs == [] and not w.start_button.isEnabled() and w.table.rowCount() == 0
    assert not w.set_out(path)  # a file, not a folder
    assert dialogs.errors[-1][1].endswith("is not a folder")


def test_closing_during_a_batch_asks_and_stop_leaves_it_resumable(
    window, inputs, tmp_path, dialogs
):
    main, w = window
    path = job_file(inputs, [{"name": "x", "panorama": "pano.png", "mask": "mask.png"}], "x.json")
    assert w.open_jobs(path) and w.set_out(tmp_path / "out") and w.start()
    dialogs.answers.append("Keep Running")
    assert not main.close() and w.running()  # the main window asks through the batch's
    assert dialogs.asked[-1][0] == "Batch running"
    dialogs.answers.append("Stop and Close")
    assert w.close() and w.worker is None or not w.worker.is_running()
    doc = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert doc["finished"] is not None and doc["jobs"][0]["status"] in (
        "pending",
        "cancelled",
        "done",
    )
