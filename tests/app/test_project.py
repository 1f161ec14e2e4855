"""Projects: a folder round trip checked with the engine's own readers, crash-safe saves
(a failure mid-save leaves the previous project intact), clear errors for broken projects,
autosave from the window, and reopening a project whose generation was interrupted offers to
resume it — and the resumed run really continues from the checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from engine.config import Inputs  # noqa: E402
from engine.errors import Cancelled, InputError  # noqa: E402
from engine.io import Region, load_regions  # noqa: E402
from engine.pipeline import run  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from tests.app import test_main_window as main_window_tests  # noqa: E402
from tests.app.test_worker import tiny_config, tiny_panorama  # noqa: E402

pytestmark = pytest.mark.qt

gui = main_window_tests.gui  # fixtures shared with the main window tests
dialogs = main_window_tests.dialogs
make_window = main_window_tests.make_window

H, W = 256, 512


def two_regions() -> list[Region]:
    sky = np.zeros((H, W), bool)
    sky[:50] = True
    pond = np.zeros((H, W), bool)
    pond[200:230, 100:180] = True
    return [
        Region("sky", sky, 30.0, 4.0, color=(80, 160, 255)),
        Region("pond", pond, 180.0, 1.5, feather_px=3.0, color=(90, 210, 110), motion="sway"),
    ]


def assert_same_regions(got: list[Region], want: list[Region]) -> None:
    assert [r.name for r in got] == [r.name for r in want]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (a.direction_deg, a.speed_deg_s, a.motion) == (
            b.direction_deg,
            b.speed_deg_s,
            b.motion,
        )
        assert (a.feather_px, tuple(a.color)) == (b.feather_px, tuple(b.color))


def test_round_trip_reference_and_copy(tmp_path):
    from app.project import load_project, save_project

    pano = tiny_panorama(tmp_path)
    settings = tiny_config(frames=5)
    data = save_project(tmp_path / "p", panorama=pano, regions=two_regions(), settings=settings)
    assert data.folder == tmp_path / "p.pano4dproj" and data.panorama == pano.absolute()
    doc = json.loads((data.folder / "project.json").read_text())
    assert doc["format"] == "pano4d-project" and doc["regions"].startswith("regions-")
    again = load_project(data.folder)
    assert again.settings == settings and not again.copied
    assert_same_regions(load_regions(again.regions_file, (H, W)), two_regions())

    copied = save_project(
        data.folder, panorama=pano, regions=two_regions()[:1], settings=settings, copy_panorama=True
    )
    assert copied.copied and copied.panorama.name.startswith("panorama-")
    assert copied.panorama.read_bytes() == pano.read_bytes()
    # re-saving from the copy keeps where the panorama came from
    resaved = save_project(
        data.folder, panorama=copied.panorama, regions=[], settings=settings, copy_panorama=True
    )
    assert resaved.panorama_original == pano.absolute() and resaved.regions_file is None
    moved = shutil.move(str(data.folder), str(tmp_path / "elsewhere.pano4dproj"))
    assert load_project(moved).panorama == Path(moved) / copied.panorama.name  # relative
    assert sorted(p.name for p in Path(moved).iterdir()) == [copied.panorama.name, "project.json"]


def test_a_failed_save_leaves_the_previous_project(tmp_path, monkeypatch):
    import app.project as project

    pano = tiny_panorama(tmp_path)
    first = project.save_project(
        tmp_path / "p", panorama=pano, regions=two_regions(), settings=tiny_config()
    )
    before = {p: p.read_bytes() for p in first.folder.rglob("*") if p.is_file()}
    real = project.save_regions

    def dies_after_one_mask(path, regions, mask_dir=None):
        real(path, regions[:1])  # writes a mask and a JSON into the temporary folder ...
        raise OSError("disk full")  # ... then the "crash"

    monkeypatch.setattr(project, "save_regions", dies_after_one_mask)
    changed = two_regions()[::-1]
    with pytest.raises(OSError, match="disk full"):
        project.save_project(first.folder, panorama=pano, regions=changed, settings=tiny_config(9))
    monkeypatch.setattr(project, "save_regions", real)
    monkeypatch.setattr(project, "atomic_write_json", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        project.save_project(first.folder, panorama=pano, regions=[], settings=tiny_config(9))
    after = {p: p.read_bytes() for p in first.folder.rglob("*") if p.is_file()}
    assert after == before  # byte for byte, and no temporary leftovers
    reopened = project.load_project(first.folder)
    assert reopened.settings == tiny_config()
    assert_same_regions(load_regions(reopened.regions_file, (H, W)), two_regions())


def test_broken_projects_give_one_line(tmp_path):
    from app.project import load_project, save_project

    with pytest.raises(InputError, match="not a Pano4D project"):
        load_project(tmp_path / "none")
    pano = tiny_panorama(tmp_path)
    data = save_project(tmp_path / "p", panorama=pano, regions=[], settings=tiny_config())
    doc_path = data.folder / "project.json"
    doc = json.loads(doc_path.read_text())
    doc_path.write_text(json.dumps({**doc, "version": 7}))
    with pytest.raises(InputError, match="project version 7"):
        load_project(data.folder)
    doc_path.write_text(json.dumps(doc))
    pano.unlink()
    with pytest.raises(InputError) as e:
        load_project(data.folder)
    assert "panorama" in str(e.value) and "missing" in str(e.value) and "\n" not in str(e.value)
    doc_path.write_text("{ truncated")
    with pytest.raises(InputError, match="unreadable"):
        load_project(data.folder)


def test_a_project_whose_panorama_moved_opens_once_it_is_located(gui, qtbot, tmp_path, dialogs):
    """One question (Locate… / Cancel); located, the project opens with its regions and,
    saved, refers to the panorama's new place. Cancelled, nothing opens."""
    from app.project import load_project

    win = make_window(gui, qtbot, tmp_path)
    (tmp_path / "a").mkdir()
    pano = tiny_panorama(tmp_path / "a")
    win.open_panorama(pano)
    win.model.set_regions(two_regions())
    dialogs.paths.append(str(tmp_path / "mine"))
    assert win.save_as()
    folder = tmp_path / "mine.pano4dproj"
    win.close()
    moved = tmp_path / "b" / pano.name
    moved.parent.mkdir()
    pano.rename(moved)

    other = make_window(gui, qtbot, tmp_path)
    dialogs.answers.append("Cancel")
    assert not other.open_project(folder) and other.pano is None and not dialogs.errors
    dialogs.answers.append("Locate…")
    dialogs.paths.append(str(moved))
    assert other.open_project(folder)
    assert [t for t, _ in dialogs.asked] == ["Panorama not found"] * 2
    assert Path(other.pano.path) == moved and other.dirty
    assert_same_regions(other.model.to_regions(), two_regions())
    assert other.save_project_to(folder)
    assert load_project(folder).panorama == moved
    other.close()


def test_window_saves_autosaves_and_reopens(gui, qtbot, tmp_path, dialogs):
    from app.project import load_project

    win = make_window(gui, qtbot, tmp_path)
    pano = tiny_panorama(tmp_path)
    win.open_panorama(pano)
    win.model.set_regions(two_regions())
    dialogs.paths.append(str(tmp_path / "mine"))
    assert win.save_as() and not win.dirty
    folder = tmp_path / "mine.pano4dproj"
    assert win.project.folder == folder and win.windowTitle() == "Pano4D — mine.pano4dproj"
    assert win.autosave_timer.isActive() and win.autosave_timer.interval() == 60_000
    win.model.clear(1)  # an edit: the next autosave writes it
    assert win.dirty
    win.autosave()
    assert not win.dirty
    assert_same_regions(load_regions(load_project(folder).regions_file, (H, W)), two_regions()[:1])
    win.close()

    other = make_window(gui, qtbot, tmp_path)
    assert other.open_project(folder)
    assert_same_regions(other.model.to_regions(), two_regions()[:1])
    assert other.generate_panel.settings() == win.generate_panel.settings()
    assert not other.dirty and not dialogs.asked  # nothing to resume
    other.close()


def test_reopening_an_interrupted_project_offers_resume(gui, qtbot, tmp_path, dialogs, monkeypatch):
    import app.main_window as mw
    from app.project import save_project

    pano = tiny_panorama(tmp_path)
    folder = tmp_path / "crashed.pano4dproj"
    settings = tiny_config(frames=3)
    generation = interrupted_run(folder, pano, settings)
    generation["status"] = "running"  # the app died: nobody recorded the end
    out = folder / "result"
    save_project(
        folder, panorama=pano, regions=two_regions(), settings=settings, generation=generation
    )

    seen: list[tuple[str, float, str]] = []

    class Recording(mw.GenerateWorker):
        def __init__(self, job, parent=None):
            super().__init__(job, parent)
            self.progress.connect(lambda s, f, m: seen.append((s, f, m)))

    monkeypatch.setattr(mw, "GenerateWorker", Recording)
    win = make_window(gui, qtbot, tmp_path)
    dialogs.answers.append("Resume")
    assert win.open_project(folder)
    assert dialogs.asked[0][0] == "Resume generation?"
    assert win.worker is not None and win.worker.job.resume
    qtbot.waitUntil(
        lambda: win.worker.outcome is not None and not win.progress_panel.running, timeout=60000
    )
    assert win.worker.outcome == "finished", win.worker.error
    assert any(s == "animate" and m == "resumed from checkpoint" for s, _, m in seen)
    assert any(s == "depth" and m == "resumed from checkpoint" for s, _, m in seen)
    assert (out / "report.json").is_file() and not (out / ".pano4d").exists()
    assert win.viewer.view.scene is not None and win.viewer.view.scene.n_frames == 3
    doc = json.loads((folder / "project.json").read_text())
    assert doc["generation"]["status"] == "done" and doc["result"] == "result"
    win.close()


def test_unticking_copy_records_the_original_and_never_loses_the_only_copy(
    gui, qtbot, tmp_path, dialogs
):
    from app.project import load_project

    win = make_window(gui, qtbot, tmp_path)
    pano = tiny_panorama(tmp_path).absolute()
    win.open_panorama(pano)
    win.model.set_regions(two_regions())
    folder = tmp_path / "p.pano4dproj"
    win.copy_action.trigger()  # ticked
    assert win.save_project_to(folder)
    copy = load_project(folder).panorama
    assert copy.parent == folder and Path(win.pano.path) == copy
    win.copy_action.trigger()  # unticked: the copy goes, the project names the original
    assert win.save_project_to(folder) and not copy.exists()
    assert Path(win.pano.path) == pano
    assert win.save_project_to(folder)  # and again
    assert load_project(folder).panorama == pano and not load_project(folder).copied

    win.copy_action.trigger()
    assert win.save_project_to(folder)
    copy = load_project(folder).panorama
    pano.unlink()  # the copy is now the only one
    win.copy_action.trigger()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert not win.save_project_to(folder)
    title, message, _ = dialogs.errors[-1]
    assert title == "Cannot save project" and "missing" in message and "\n" not in message
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert load_project(folder).panorama == copy and win.dirty
    win.dirty = False
    win.close()


def test_a_failed_run_save_keeps_the_edits_unsaved(gui, qtbot, tmp_path, dialogs, monkeypatch):
    import app.main_window as mw
    import app.window_project as window_project

    win = make_window(gui, qtbot, tmp_path)
    win.open_panorama(tiny_panorama(tmp_path))
    win.generate_panel.set_settings(tiny_config())
    win.model.set_regions(two_regions()[:1])
    dialogs.paths.append(str(tmp_path / "mine"))
    assert win.save_as()
    win.model.set_regions(two_regions())  # an edit the run's snapshot is to save

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    for module in (mw, window_project):  # the run's save and the window's own saves
        monkeypatch.setattr(module, "save_project", disk_full)
    assert win.start_generation()
    qtbot.waitUntil(lambda: not win._running() and not win.progress_panel.running, timeout=60000)
    assert dialogs.errors[-1][0] == "Generation failed" and "disk full" in dialogs.errors[-1][1]
    assert win.dirty and win.windowTitle().endswith("*")  # closing still asks
    win.dirty = False
    win.close()


def test_a_save_while_the_run_prepares_is_not_replaced_by_its_snapshot(
    gui, qtbot, tmp_path, dialogs, monkeypatch
):
    import threading

    import app.main_window as mw
    from app.project import load_project

    win = make_window(gui, qtbot, tmp_path)
    win.open_panorama(tiny_panorama(tmp_path))
    win.generate_panel.set_settings(tiny_config())
    win.model.set_regions(two_regions()[:1])
    dialogs.paths.append(str(tmp_path / "mine"))
    assert win.save_as()
    folder = win.project.folder
    gate, worker_saved = threading.Event(), threading.Event()
    real_inputs, real_save = mw.write_run_inputs, mw.save_project

    def slow_inputs(*args):
        assert gate.wait(30)
        return real_inputs(*args)

    def save(*args, **kwargs):
        try:
            return real_save(*args, **kwargs)
        finally:
            if threading.current_thread() is not threading.main_thread():
                worker_saved.set()

    monkeypatch.setattr(mw, "write_run_inputs", slow_inputs)
    monkeypatch.setattr(mw, "save_project", save)
    assert win.start_generation()  # its snapshot: one region
    try:
        win.model.set_regions(two_regions())
        assert win.save_project_to(folder)  # the user saves while the run writes its inputs
        saved = (folder / "project.json").read_bytes()
        gate.set()
        assert worker_saved.wait(30)  # (no Qt events meanwhile: the run's end cannot save)
        assert (folder / "project.json").read_bytes() == saved
        regions = load_regions(load_project(folder).regions_file, (H, W))
        assert_same_regions(regions, two_regions())
    finally:
        gate.set()
        win.worker.cancel()
        qtbot.waitUntil(lambda: not win._running() and not win.progress_panel.running)
        win.dirty = False
        win.close()


def test_hand_edited_projects_give_one_line_and_change_nothing(gui, qtbot, tmp_path, dialogs):
    from app.project import load_project, save_project

    pano = tiny_panorama(tmp_path)
    data = save_project(
        tmp_path / "p", panorama=pano, regions=two_regions(), settings=tiny_config()
    )
    doc_path = data.folder / "project.json"
    doc = json.loads(doc_path.read_text())
    gen = {
        "status": "done",
        "out": "result",
        "panorama": str(pano),
        "regions": "run/regions.json",
        "settings": doc["settings"],
    }
    cases = [
        ({"generation": {"status": "running"}}, "generation 'out' must be a path string"),
        ({"generation": {**gen, "status": "paused"}}, "generation 'status' must be one of"),
        ({"generation": [1]}, "'generation' must be an object or null"),
        ({"generation": {**gen, "settings": None}}, "generation project settings"),
        ({"settings": {**doc["settings"], "svd_model": None}}, "'svd_model' must be a string"),
        ({"settings": {**doc["settings"], "device": 3}}, "'device' must be a string"),
        ({"settings": {**doc["settings"], "frames": True}}, "'frames' must be an integer"),
        ({"settings": {**doc["settings"], "overrides": {"lift": 3}}}, "'overrides' must be"),
        ({"regions": 5}, "'regions' must be a path string or null"),
        ({"result": ["x"]}, "'result' must be a path string or null"),
        ({"panorama": {"path": None}}, "'panorama' must be an object with a 'path' string"),
    ]
    for change, words in cases:
        doc_path.write_text(json.dumps({**doc, **change}))
        with pytest.raises(InputError) as e:
            load_project(data.folder)
        assert words in str(e.value) and "\n" not in str(e.value), (change, str(e.value))

    win = make_window(gui, qtbot, tmp_path)
    assert win.open_panorama(pano)
    win.model.set_regions(two_regions()[:1])
    regions_path = data.folder / doc["regions"]
    for text, regions_text in (
        (json.dumps({**doc, "generation": {"status": "running"}}), None),
        (json.dumps({**doc, "settings": {**doc["settings"], "svd_model": None}}), None),
        (json.dumps(doc), "{ not json"),  # a broken region file
    ):
        doc_path.write_text(text)
        if regions_text is not None:
            regions_path.write_text(regions_text)
        assert not win.open_project(data.folder, ask=False)
        title, message, _ = dialogs.errors[-1]
        assert title == "Cannot open project" and "\n" not in message
        assert win.project is None and win.generation is None  # nothing swapped in
        assert_same_regions(win.model.to_regions(), two_regions()[:1])
    win.model.paint_mask(0, np.ones((H, W), bool))  # edits still work (no KeyError)
    assert len(dialogs.errors) == 3
    win.dirty = False
    win.close()


def interrupted_run(folder: Path, pano: Path, settings) -> dict:
    """A run in ``folder`` stopped in its lift (checkpoints of animate and depth kept); its
    generation record."""
    from app.project import write_run_inputs

    regions_file = write_run_inputs(folder / "run", pano, two_regions())
    out = folder / "result"
    token = CancelToken()

    def stop_in_lift(stage, fraction, message):
        if stage == "lift":
            token.cancel()

    with pytest.raises(Cancelled):
        run(
            Inputs(pano, regions=regions_file),
            settings.to_config(),
            out,
            callback=stop_in_lift,
            cancel=token,
        )
    assert json.loads((out / ".pano4d" / "state.json").read_text())["done"] == ["animate", "depth"]
    return {
        "status": "cancelled",
        "out": str(out),
        "panorama": str(pano),
        "regions": str(regions_file),
        "settings": settings.to_json(),
    }


def test_a_project_saved_elsewhere_and_moved_keeps_its_result_and_its_unfinished_run(
    gui, qtbot, tmp_path, dialogs, monkeypatch
):
    """A run the app made in its data folder, saved elsewhere (Save As) and then moved,
    resumes from its checkpoints there; its finished result moves with it; a result that
    is gone is said so."""
    import app.main_window as mw
    from app.project import save_project

    pano = tiny_panorama(tmp_path)
    settings = tiny_config(frames=3)
    auto = tmp_path / "runs" / "park-20261203-101500.pano4dproj"
    generation = interrupted_run(auto, pano, settings)
    save_project(
        auto, panorama=pano, regions=two_regions(), settings=settings, generation=generation
    )

    win = make_window(gui, qtbot, tmp_path)
    dialogs.answers.append("Not now")
    assert win.open_project(auto) and win.auto_project
    dialogs.paths.append(str(tmp_path / "mine.pano4dproj"))
    assert win.save_as() and not dialogs.errors
    mine = tmp_path / "mine.pano4dproj"
    assert not auto.exists() and str(auto) not in win.recent_files()  # moved, not copied
    doc = json.loads((mine / "project.json").read_text())
    assert (
        doc["generation"]["out"] == "result" and doc["generation"]["regions"] == "run/regions.json"
    )
    assert (mine / "result" / ".pano4d" / "state.json").is_file()
    win.close()

    moved = Path(shutil.move(str(mine), str(tmp_path / "usb" / "mine.pano4dproj")))
    seen: list[tuple[str, str]] = []

    class Recording(mw.GenerateWorker):
        def __init__(self, job, parent=None):
            super().__init__(job, parent)
            self.progress.connect(lambda s, f, m: seen.append((s, m)))

    monkeypatch.setattr(mw, "GenerateWorker", Recording)
    win = make_window(gui, qtbot, tmp_path)
    dialogs.answers.append("Resume")
    assert win.open_project(moved) and win.worker is not None and win.worker.job.resume
    qtbot.waitUntil(
        lambda: win.worker.outcome is not None and not win.progress_panel.running, timeout=60000
    )
    assert win.worker.outcome == "finished", win.worker.error
    assert ("depth", "resumed from checkpoint") in seen
    assert win.result_dir == moved / "result" and (moved / "result" / "report.json").is_file()
    win.close()

    again = Path(shutil.move(str(moved), str(tmp_path / "again.pano4dproj")))
    win = make_window(gui, qtbot, tmp_path)
    assert win.open_project(again) and win.result_dir == again / "result"
    assert win.viewer.view.scene is not None and win.viewer.view.scene.n_frames == 3
    shutil.rmtree(again / "result")
    assert win.open_project(again) and win.viewer.empty
    assert "is missing" in win.viewer.empty_label.text() and not dialogs.errors
    win.close()


result_dir = main_window_tests.result_dir


def test_saving_in_place_never_replaces_the_projects_own_run(
    gui, qtbot, tmp_path, dialogs, result_dir
):
    """A project with an interrupted run in its result/ folder, then another scene opened
    for a look: saving the project where it is keeps its own run and checkpoints (only
    saving it elsewhere brings outputs along)."""
    from app.project import load_project, save_project

    pano = tiny_panorama(tmp_path)
    settings = tiny_config(frames=3)
    folder = tmp_path / "mine.pano4dproj"
    generation = interrupted_run(folder, pano, settings)
    save_project(
        folder, panorama=pano, regions=two_regions(), settings=settings, generation=generation
    )
    win = make_window(gui, qtbot, tmp_path)
    dialogs.answers.append("Not now")
    assert win.open_project(folder)
    assert win.open_scene_path(result_dir / "out")  # someone else's scene, for a look
    assert win.save_project_to(folder) and not dialogs.errors
    assert (folder / "result" / ".pano4d" / "state.json").is_file()
    assert load_project(folder).resumable()
    win.close()


def test_save_as_while_generating_brings_the_result_when_the_run_ends(
    gui, qtbot, tmp_path, dialogs
):
    """Save As during a run (its output still in the app's scratch project) saves at once;
    when the run ends, its result joins the saved project and the scratch project goes."""
    from tests.app.test_worker import TINY

    win = make_window(gui, qtbot, tmp_path)
    win.open_panorama(tiny_panorama(tmp_path))
    win.model.add_layer("sky")
    win.model.paint_mask(0, np.eye(H, W, dtype=bool))
    slow = {k: dict(v) for k, v in TINY.items()}
    slow["lift"]["refine"] = {"passes": 3}
    win.generate_panel.overrides = slow
    win.generate_panel.frames_spin.setValue(3)
    assert win.start_generation()
    scratch = win.project.folder
    qtbot.waitUntil(lambda: win.progress_panel.stage == "lift", timeout=60000)
    dialogs.paths.append(str(tmp_path / "mine.pano4dproj"))
    assert win.save_as() and not dialogs.errors and win._running()
    mine = tmp_path / "mine.pano4dproj"
    assert (mine / "project.json").is_file() and scratch.is_dir()
    qtbot.waitUntil(lambda: not win._running() and not win.progress_panel.running, timeout=90000)
    assert win.worker is None or win.worker.outcome == "finished"
    assert (mine / "result" / "scene" / "manifest.json").is_file()
    assert json.loads((mine / "project.json").read_text())["result"] == "result"
    assert not scratch.exists() and win.result_dir == mine / "result"
    win.close()
