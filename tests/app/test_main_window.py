"""The main window under Xvfb (real Qt, real widgets of both app engineers, no mocks except
the dialog functions, which record instead of blocking): opening panoramas (menu path, recent
files, drag and drop), bad files, capabilities greying out choices, shortcuts, the unsaved
changes prompt, exports against engine readers, the before/after view and Enter VR."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

if shutil.which("Xvfb") is None and not os.environ.get("DISPLAY"):
    pytest.skip("Xvfb not installed and no DISPLAY (apt-get install xvfb)", allow_module_level=True)
pytest.importorskip("PySide6", reason="PySide6 not installed (pip install PySide6-Essentials)")
pytest.importorskip("pytestqt", reason="pytest-qt not installed")

from engine.config import Inputs  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.io import load_panorama  # noqa: E402
from engine.pipeline import run  # noqa: E402
from engine.scene import load_scene, read_ply  # noqa: E402
from tests.app.test_worker import sky_regions, tiny_config, tiny_panorama  # noqa: E402
from tests.conftest import ROOT, SAMPLES  # noqa: E402

pytestmark = pytest.mark.qt

# Like tests/app/test_viewer_window.py: this process may share PyOpenGL's EGL platform with the
# EGL renderer tests; Qt then uses EGL on X11 too (set before the QApplication exists).
os.environ.setdefault("QT_XCB_GL_INTEGRATION", "xcb_egl")


@pytest.fixture(scope="session")
def gui():
    """The app modules, imported keeping PyOpenGL's platform as tests/app/test_viewer_window.py
    does (the real app's GLX path runs in a subprocess test there)."""
    import viewer  # noqa: F401

    saved = os.environ.get("PYOPENGL_PLATFORM")
    import OpenGL.GL  # noqa: F401

    from app import main_window

    if saved is None:
        os.environ.pop("PYOPENGL_PLATFORM", None)
    else:
        os.environ["PYOPENGL_PLATFORM"] = saved
    from PySide6.QtGui import QSurfaceFormat

    from app.viewer_window import default_surface_format

    QSurfaceFormat.setDefaultFormat(default_surface_format())
    return main_window


class Dialogs:
    """Replaces app.dialogs' functions: records calls, answers from queues."""

    def __init__(self, monkeypatch) -> None:
        from app import dialogs

        self.errors: list[tuple[str, str, str]] = []
        self.asked: list[tuple[str, str]] = []
        self.answers: list[str | None] = []
        self.save_answers: list[str] = []
        self.paths: list[str | None] = []
        monkeypatch.setattr(dialogs, "error", lambda p, t, m, d="": self.errors.append((t, m, d)))
        monkeypatch.setattr(dialogs, "ask", self._ask)
        monkeypatch.setattr(dialogs, "ask_save_changes", self._ask_save)
        self.infos: list[tuple[str, str]] = []
        monkeypatch.setattr(dialogs, "info", lambda p, t, text: self.infos.append((t, text)))
        for name in ("open_file", "save_file", "pick_folder"):
            monkeypatch.setattr(dialogs, name, lambda *a, **k: self.paths.pop(0))
        self.fill: list = []  # per modal dialog: fill(dialog) -> accepted?
        monkeypatch.setattr(
            dialogs, "run_dialog", lambda d: bool(self.fill and self.fill.pop(0)(d))
        )

    def _ask(self, parent, title, text, buttons):
        self.asked.append((title, text))
        return self.answers.pop(0) if self.answers else None

    def _ask_save(self, parent, what):
        self.asked.append(("Unsaved changes", what))
        return self.save_answers.pop(0) if self.save_answers else "cancel"


@pytest.fixture
def dialogs(monkeypatch):
    return Dialogs(monkeypatch)


def stop_jobs(w) -> None:
    """Teardown, also after a failed test: a job still running when its window is deleted
    would abort the whole test process (QThread destroyed while running)."""
    if w.worker is not None:
        w.worker.cancel()
        w.worker.wait(30000)
    w.motion_preview.shutdown()
    w.dirty = False


def make_window(gui, qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = gui.MainWindow(settings, probe=False, runs_dir=tmp_path / "runs")
    qtbot.addWidget(w, before_close_func=stop_jobs)
    w.resize(1100, 720)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def win(gui, qtbot, tmp_path, dialogs):
    w = make_window(gui, qtbot, tmp_path)
    yield w
    if w.worker is not None:
        w.worker.cancel()
        w.worker.wait(10000)
    w.dirty = False
    w.close()


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory) -> Path:
    """A real generate output (tiny settings), made once with the engine directly."""
    folder = tmp_path_factory.mktemp("result")
    pano = tiny_panorama(folder)
    inputs = Inputs(panorama=pano, regions=sky_regions(folder, (256, 512)))
    run(inputs, tiny_config(frames=3).to_config(), folder / "out")
    return folder


@pytest.fixture
def pano_path(tmp_path) -> Path:
    return tiny_panorama(tmp_path)


# --------------------------------------------------------------------------- opening


def test_open_panorama_status_recent_and_title(win, pano_path, dialogs):
    assert win.open_panorama(pano_path)
    ref = load_panorama(pano_path).rgb
    np.testing.assert_array_equal(win.canvas.panorama, ref)
    assert win.model.size == (256, 512)
    assert win.size_label.text() == "512 × 256 px"
    assert "park_small.png" in win.windowTitle()
    assert win.recent_files() == [str(pano_path.absolute())]
    win._fill_recent()
    acts = win.recent_menu.actions()
    assert len(acts) == 1 and "park_small.png" in acts[0].text()
    win.model.add_layer("sky")
    win.model.paint_mask(0, np.ones((256, 512), bool))
    assert win.dirty and win.windowTitle().endswith("*")
    dialogs.save_answers.append("discard")
    acts[0].trigger()  # the recent entry reopens it, after the unsaved-changes question
    assert dialogs.asked == [("Unsaved changes", "park_small.png")]
    assert not win.dirty and win.model.is_empty() and not dialogs.errors


def test_the_bundled_sample_is_one_menu_click_away(win):
    from tests.conftest import SAMPLES

    win.sample_action.trigger()
    assert win.model.size == (1024, 2048) and win.size_label.text() == "2048 × 1024 px"
    np.testing.assert_array_equal(
        win.canvas.panorama, load_panorama(SAMPLES / "park_2048x1024.png").rgb
    )


def test_bad_files_show_the_engine_message(win, pano_path, tmp_path, dialogs):
    assert win.open_panorama(pano_path)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    tall = tmp_path / "tall.png"
    import cv2

    cv2.imwrite(str(tall), np.zeros((512, 512, 3), np.uint8))
    for path in (bad, tall, tmp_path / "missing.png"):
        with pytest.raises(InputError) as ref:
            load_panorama(path)
        assert not win.open_panorama(path)
        title, message, _ = dialogs.errors[-1]
        assert title == "Cannot open panorama" and message == str(ref.value)
        assert "\n" not in message
    assert len(dialogs.errors) == 3
    assert win.pano is not None and Path(win.pano.path) == pano_path  # still the good one


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # QDragEnterEvent's constructor
def test_drop_opens_a_panorama(win, pano_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(pano_path))])
    enter = QDragEnterEvent(win.rect().center(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(100, 100), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.dropEvent(drop)
    assert win.pano is not None and win.model.size == (256, 512)


def test_splat_files_open_in_result_whichever_format(win, result_dir, tmp_path, dialogs):
    """A dropped or recent .spz / .splat / .glb / .compressed.ply opens as a scene (it used
    to be taken for a panorama), as File > Open Splat File does."""
    from engine.splats import write_splats

    scene = load_scene(result_dir / "out" / "scene")
    for fmt, name in (("spz", "s.spz"), ("splat", "s.splat"), ("glb", "s.glb"),
                      ("compressed-ply", "s.compressed.ply")):  # fmt: skip
        write_splats(scene, tmp_path / name, fmt)
        win.tabs.setCurrentIndex(0)
        assert win.open_any_path(tmp_path / name), (name, dialogs.errors)
        assert win.tabs.currentIndex() == 1 and win.viewer.play_button.isEnabled()
    assert not dialogs.errors


def test_engine_advice_is_shown_in_the_apps_words(gui):
    """The engine's own fallback texts, as it raises them, name no command-line option once
    the app shows them (they name the control to use instead)."""
    from app.dialogs import describe
    from engine.animate.svd import FALLBACK as VIDEO
    from engine.depth.models import FALLBACK as DEPTH
    from engine.lift.regularizers import SEM_FALLBACK

    for advice in (VIDEO, DEPTH, SEM_FALLBACK):
        shown = describe(InputError(f"no weights: /m has no config.json; {advice}"))[0]
        assert "--" not in shown, shown
    assert "Animator: Flow" in describe(InputError(f"x; {VIDEO}"))[0]
    assert "Depth: Layout prior" in describe(InputError(f"x; {DEPTH}"))[0]


def test_a_refused_write_names_the_folder_the_user_chose(gui, tmp_path):
    """Writes go through hidden temporary files (.NAME.tmp-XXXX); a refusal names the
    folder and the reason, not the temporary file."""
    import errno

    from app.dialogs import describe

    ro = OSError(errno.EROFS, "Read-only file system", "/media/ro/.a.ply.tmp-pyoouhr2")
    assert describe(ro)[0] == "Cannot write to /media/ro: it is on a read-only disk"
    gone = tmp_path / "no3" / ".a.mp4.tmp-x1.mp4"
    assert describe(FileNotFoundError(errno.ENOENT, "No such file", str(gone)))[0] == (
        f"{tmp_path / 'no3'} does not exist (moved or deleted?); choose another folder"
    )
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".scene.tmp-q"))
    assert describe(full)[0] == f"Cannot write scene in {tmp_path}: the disk is full"
    assert describe(ValueError("x"))[0] == "ValueError: x"


def test_generate_needs_a_panorama_and_a_region(win, pano_path, dialogs):
    assert not win.start_generation()
    assert dialogs.errors[-1][1].startswith("Open a panorama first")
    win.open_panorama(pano_path)
    win.model.add_layer("sky")  # a layer with nothing painted is not a region
    assert not win.start_generation()
    assert dialogs.errors[-1][0] == "Nothing to animate" and win.worker is None


# --------------------------------------------------------------------------- capabilities


def test_unavailable_choices_are_greyed_with_the_reason(win):
    from app.capabilities import Capabilities, Choice

    caps = Capabilities(
        cuda=False,
        cuda_reason="no CUDA device",
        animators=(
            Choice("flow", "Flow", True, "always"),
            Choice("svd", "Video diffusion", False, "no weights: not in the HF cache (/x)"),
        ),
        depth=(Choice("prior", "Layout prior", True), Choice("model", "Depth model", False, "x")),
        devices=(
            Choice("auto", "Auto", True),
            Choice("cpu", "CPU", True),
            Choice("cuda", "CUDA", False, "no CUDA device"),
        ),
        xr=False,
        xr_reason="no runtime",
    )
    win.set_capabilities(caps)
    panel = win.generate_panel
    combo = panel.animator_combo
    i = combo.findData("svd")
    assert not combo.model().item(i).isEnabled()
    assert combo.model().item(i).toolTip() == "no weights: not in the HF cache (/x)"
    assert not panel.is_available(panel.device_combo, "cuda")
    assert panel.is_available(panel.animator_combo, "flow")
    note = panel.unavailable_note
    assert note.text() == "Unavailable here: Video diffusion, Depth model, CUDA (hover for why)"
    tip = note.toolTip().splitlines()
    assert "Video diffusion: no weights: not in the HF cache (/x)" in tip
    assert "CUDA: no CUDA device" in tip
    from app.generate_panel import GenerateSettings

    panel.set_settings(GenerateSettings(preset="preview", animator="svd", device="cuda"))
    s = panel.settings()
    assert (s.animator, s.device, s.preset) == ("flow", "auto", "preview")  # fell back
    assert win.caps_label.text() == "CUDA: no · models: none · XR: no"
    assert not win.vr_action.isEnabled() and "no runtime" in win.vr_action.toolTip()


def test_the_text_video_model_is_offered_with_its_scene_prompt(win, tmp_path):
    """Wan appears as an animator, greyed with the reason until its weights are found (a
    tiny random WanImageToVideoPipeline folder built here); the scene prompt box is live only
    for it, and the prompt and the folder reach the engine's config."""
    from app.capabilities import Capabilities, probe_animators
    from tests.engine.test_wan import build_tiny_wan

    absent = {c.name: c for c in probe_animators(None)}["wan"]
    assert not absent.available and "Wan-AI/" in absent.reason
    folder = str(build_tiny_wan(tmp_path / "wan"))
    found = {c.name: c for c in probe_animators(folder)}
    assert found["wan"].available, found["wan"].reason
    assert not found["svd"].available  # the same folder is not an SVD pipeline
    win.set_capabilities(Capabilities(animators=probe_animators(folder)))
    panel = win.generate_panel
    panel.svd_edit.setText(folder)
    assert not panel.prompt_edit.isEnabled() and "Wan" in panel.prompt_edit.toolTip()
    panel.frames_spin.setValue(3)
    panel.animator_combo.setCurrentIndex(panel.animator_combo.findData("wan"))
    assert panel.prompt_edit.isEnabled()
    assert panel.frames_spin.value() == 5 and panel.frames_spin.singleStep() == 4  # 4k + 1
    panel.frames_spin.setValue(14)
    panel.frames_spin.editingFinished.emit()  # as when the user has typed 14
    assert panel.frames_spin.value() == 17 and "4k + 1" in panel.frames_spin.toolTip()
    panel.prompt_edit.setText("misty   alpine lake at dawn")
    settings = panel.settings()
    assert settings.prompt == "misty alpine lake at dawn"
    cfg = settings.to_config()
    assert (cfg.animator, cfg.wan.prompt, cfg.wan.model) == ("wan", settings.prompt, folder)


def test_real_probe_matches_this_build(qtbot):
    """The probe on this machine, against independent facts: torch.cuda and which engine
    modules exist."""
    import torch

    from app.capabilities import NOT_IN_BUILD, CapabilityProbe

    probe = CapabilityProbe(xr=False)
    with qtbot.waitSignal(probe.ready, timeout=60000) as got:
        probe.start()
    caps = got.args[0]
    assert caps.cuda == torch.cuda.is_available()
    svd = {c.name: c for c in caps.animators}["svd"]
    if importlib.util.find_spec("engine.animate.svd") is None:
        assert not svd.available and svd.reason == NOT_IN_BUILD
    else:
        from engine.animate import svd as svd_module

        ref = svd_module.probe()
        assert svd.available == ref.available and ref.reason in svd.reason
    depth = {c.name: c for c in caps.depth}["model"]
    if importlib.util.find_spec("engine.depth.models") is None:
        assert not depth.available and depth.reason == NOT_IN_BUILD
    assert {c.name: c.available for c in caps.devices}["cuda"] == caps.cuda
    assert probe.wait(5000)


def test_settings_overrides_reach_the_engine_config():
    from app.generate_panel import GenerateSettings, apply_overrides

    s = tiny_config(frames=5)
    cfg = s.to_config()
    assert cfg.preset == "preview" and cfg.animate.frames == 5 and cfg.lift.refine.passes == 1
    assert cfg.output.preview_size == (64, 128)
    assert GenerateSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(InputError, match="unknown lift setting"):
        apply_overrides(cfg, {"lift": {"nope": 1}})
    with pytest.raises(InputError, match="between 2 and 240"):
        GenerateSettings(frames=1).to_config()


def test_progress_panel_times_and_estimate(win, qtbot):
    from app.progress_panel import clock, estimate_remaining

    assert clock(0) == "0:00" and clock(75.4) == "1:15" and clock(3725) == "1:02:05"
    assert estimate_remaining(10.0, 0.25) == pytest.approx(30.0)  # same rate for the rest
    assert estimate_remaining(1.0, 0.5) is None and estimate_remaining(30.0, 0.01) is None
    panel = win.progress_panel
    panel.start("Job")
    panel.update_progress("lift", 0.25, "static 1/4")  # a new stage shows at once
    assert panel.bar.value() == 250 and panel.stage_label.text() == "Lifting to Gaussians — 25%"
    panel.update_progress("lift", 0.5, "static 2/4")  # the same stage: at the next refresh
    assert panel.bar.value() == 250
    qtbot.waitUntil(lambda: panel.bar.value() == 500, timeout=2000)
    assert panel.message_label.toolTip() == "static 2/4"
    panel.stop("Cancelled")
    assert panel.stage_label.text() == "Cancelled" and not panel.cancel_button.isEnabled()


# --------------------------------------------------------------------------- shortcuts, close


def test_every_frequent_action_has_a_unique_shortcut(win):
    actions = {
        "open": win.open_action,
        "open project": win.open_project_action,
        "save": win.save_action,
        "save as": win.save_as_action,
        "undo": win.undo_action,
        "redo": win.redo_action,
        "generate": win.generate_action,
        "cancel": win.cancel_action,
        "paint tab": win.paint_tab_action,
        "result tab": win.result_tab_action,
        "before/after": win.before_action,
        "play": win.play_action,
        "export ply": win.export_actions["ply"],
        "vr": win.vr_action,
        "quit": win.quit_action,
    }
    keys = {name: a.shortcut().toString() for name, a in actions.items()}
    assert all(keys.values()), [n for n, k in keys.items() if not k]
    assert len(set(keys.values())) == len(keys), keys
    assert keys["generate"] == "Ctrl+G" and keys["undo"] == "Ctrl+Z"


def test_shortcut_switches_tabs_and_undo_reverts_a_paint(win, qtbot, pano_path):
    from PySide6.QtCore import Qt

    win.open_panorama(pano_path)
    win.model.add_layer("sky")
    win.model.paint_mask(0, np.ones((256, 512), bool))
    assert not win.model.is_empty()
    with qtbot.waitActive(win):  # window shortcuts need the active window
        win.activateWindow()
    qtbot.keyClick(win.tabs, Qt.Key_Z, Qt.ControlModifier)  # the window's Undo action
    assert win.model.is_empty()
    qtbot.keyClick(win.tabs, Qt.Key_2, Qt.ControlModifier)
    assert win.tabs.currentIndex() == 1
    qtbot.keyClick(win.tabs, Qt.Key_1, Qt.ControlModifier)
    assert win.tabs.currentIndex() == 0
    qtbot.keyClick(win.tabs, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert not win.model.is_empty()  # redo


def test_keys_go_where_the_user_means_them(win, qtbot, pano_path):
    """Canvas tool keys work from the region list; Ctrl+Z in a spin box undoes the edit."""
    from PySide6.QtCore import Qt

    win.open_panorama(pano_path)
    win.model.add_layer("water")
    with qtbot.waitActive(win):
        win.activateWindow()
    panel = win.region_panel
    panel.region_list.setFocus()
    assert win.canvas.tool == "brush"
    qtbot.keyClick(panel.region_list, Qt.Key_F)
    assert win.canvas.tool == "fill"
    qtbot.keyClick(panel.region_list, Qt.Key_E)
    assert win.canvas.tool == "eraser"

    speed = win.model.layers[0].speed_deg_s
    panel.speed_spin.setFocus()
    panel.speed_spin.selectAll()
    qtbot.keyClicks(panel.speed_spin, "7")
    assert win.model.layers[0].speed_deg_s == 7.0
    qtbot.keyClick(panel.speed_spin, Qt.Key_B)  # typed into the box, not a tool
    assert win.canvas.tool == "eraser"
    qtbot.keyClick(panel.speed_spin, Qt.Key_Z, Qt.ControlModifier)
    assert win.model.layers[0].speed_deg_s == speed  # the edit, not the box's text
    assert panel.speed_spin.value() == speed


def test_motion_preview_plays_on_the_canvas_and_follows_the_edits(win, qtbot, pano_path):
    win.open_panorama(pano_path)
    assert win.preview_button.defaultAction() is win.preview_action  # in the Generate panel
    win.preview_action.setChecked(True)
    qtbot.waitUntil(lambda: bool(win.statusBar().currentMessage()), timeout=5000)
    assert "paint a region" in win.statusBar().currentMessage() and not win.canvas.motion_frames
    sky = np.zeros((256, 512), bool)
    sky[:60] = True
    win.model.add_layer("sky")
    win.model.paint_mask(0, sky)
    qtbot.waitUntil(lambda: win.motion_preview.count == 1, timeout=20000)
    frames = win.motion_preview.video.frames
    assert win.canvas.motion_frames == len(frames) == win.generate_panel.frames_spin.value()
    moved = np.abs(frames[len(frames) // 3].astype(int) - frames[0]).mean(-1)
    assert moved[:50].mean() > 0.2 and moved[80:].max() == 0  # the sky moves, nothing else
    win.model.paint_mask(0, np.eye(256, 512, dtype=bool))  # an edit: a new preview follows
    qtbot.waitUntil(lambda: win.motion_preview.count == 2, timeout=20000)
    win.preview_action.setChecked(False)
    assert win.canvas.motion_frames == 0 and win.motion_preview.video is None


def test_a_regions_prompt_sets_what_its_words_say_in_one_undoable_edit(win, qtbot, pano_path):
    from PySide6.QtCore import Qt

    win.open_panorama(pano_path)
    win.model.add_layer("clouds")
    win.model.set_params(0, speed_deg_s=3.0, direction_deg=45.0)
    panel = win.region_panel
    panel.prompt_edit.setFocus()
    qtbot.keyClicks(panel.prompt_edit, "leaves swaying")
    qtbot.keyClick(panel.prompt_edit, Qt.Key_Return)
    layer = win.model.layers[0]
    assert (layer.motion, layer.direction_deg, layer.speed_deg_s) == ("sway", 45.0, 3.0)
    assert panel.understood_label.text() == "Understood: 'swaying': sway"
    panel.prompt_edit.selectAll()
    qtbot.keyClicks(panel.prompt_edit, "clouds drifting slowly to the left")
    qtbot.keyClick(panel.prompt_edit, Qt.Key_Return)
    assert (layer.motion, layer.direction_deg, layer.speed_deg_s) == ("flow", 180.0, 1.0)
    assert panel.direction_spin.value() == 180.0 and panel.speed_spin.value() == 1.0
    win.model.undo_stack.undo()  # the text and what it set, together
    assert (layer.prompt, layer.motion, layer.speed_deg_s) == ("leaves swaying", "sway", 3.0)
    win.model.paint_mask(0, np.ones((256, 512), bool))
    assert win.model.to_regions()[0].prompt == "leaves swaying"  # to the engine and projects


def test_find_regions_from_text_is_greyed_without_weights_and_adds_undoable_layers(
    win, qtbot, pano_path, tmp_path, dialogs, monkeypatch
):
    """Without CLIPSeg weights Find is greyed with the reason; with a real checkpoint folder
    (a tiny random one; an analytic predictor stands in for its forward pass, as in the
    engine's tests) the named regions are found on the sphere and added as one edit."""
    from PIL import Image
    from PySide6.QtCore import Qt

    from engine.text import segment
    from tests.engine.test_text_regions import _blue_predictor, _sky_panorama
    from tests.tiny_models import build_tiny_clipseg

    box = win.find_box
    box.model_edit.setText(str(tmp_path / "nowhere"))
    box.probe()
    win.open_panorama(pano_path)
    box.text_edit.setText("sky: clouds drifting left")
    assert not box.find_button.isEnabled() and box.note.text().startswith("Unavailable:")
    assert "nowhere" in box.note.text()

    big = np.repeat(np.repeat(_sky_panorama(), 4, 0), 4, 1)  # 512 x 256
    Image.fromarray(big).save(tmp_path / "sky.png")
    win.open_panorama(tmp_path / "sky.png")
    box.model_edit.setText(str(build_tiny_clipseg(tmp_path / "seg")))
    box.probe()
    assert box.find_button.isEnabled(), box.note.text()
    monkeypatch.setattr(segment, "clipseg_predictor", lambda spec, **kw: _blue_predictor)
    box.text_edit.setText("sky: clouds drifting left; ground")
    qtbot.mouseClick(box.find_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not win._running() and len(win.model.layers) == 2, timeout=60000)
    sky, ground = win.model.layers
    truth = (big[..., 2] > 150) & (big[..., 1] < 130)
    assert (sky.mask & truth).sum() / (sky.mask | truth).sum() > 0.9
    assert (sky.name, sky.motion, sky.direction_deg) == ("sky", "flow", 180.0)
    assert ground.prompt == "ground" and not dialogs.errors
    win.model.undo_stack.undo()
    assert win.model.layers == []  # one edit


def test_new_scene_from_text_makes_the_panorama_to_paint_on(win, qtbot, tmp_path, dialogs):
    """File > New Scene from Text with a tiny random Stable Diffusion pipeline (built here,
    loaded with from_pretrained): Make is greyed with the reason while the model is absent;
    the panorama is made in a worker, saved with its prompt, and opened for painting."""
    from PIL import Image

    from app.text_scene import SIZES
    from tests.tiny_models import build_tiny_sd

    seen = {}

    def absent(d):
        d.prompt_edit.setPlainText("misty alpine lake at dawn")
        d.model_edit.setText(str(tmp_path / "nowhere"))
        d.probe()
        ok = d.buttons.button(d.buttons.StandardButton.Ok)
        seen["absent"] = (ok.isEnabled(), d.note.text())
        return False

    dialogs.fill.append(absent)
    assert not win.new_scene_from_text()
    assert seen["absent"][0] is False and seen["absent"][1].startswith("Unavailable:")
    tiny = build_tiny_sd(tmp_path / "sd")

    def present(d):
        d.prompt_edit.setPlainText("misty alpine lake at dawn")
        d.model_edit.setText(str(tiny))
        d.probe()
        d.size_combo.setCurrentIndex(SIZES.index((256, 512)))
        d.seed_spin.setValue(3)
        assert d.buttons.button(d.buttons.StandardButton.Ok).isEnabled(), d.note.text()
        return True

    dialogs.fill.append(present)
    assert win.new_scene_from_text()
    qtbot.waitUntil(lambda: not win._running() and win.pano is not None, timeout=240000)
    assert not dialogs.errors, dialogs.errors
    assert (win.pano.width, win.pano.height) == (512, 256) and win.pano.rgb.std() > 1
    saved = Image.open(win.pano.path)
    assert saved.text["pano4d:prompt"] == "misty alpine lake at dawn"
    assert Path(win.pano.path).parent == tmp_path / "runs"
    assert win.tabs.currentWidget() is win.canvas


def test_unsaved_changes_prompt_on_close(win, pano_path, dialogs, tmp_path):
    win.open_panorama(pano_path)
    win.model.add_layer("sky")
    win.model.paint_mask(0, np.eye(256, 512, dtype=bool))
    dialogs.save_answers.append("cancel")
    assert not win.close() and win.isVisible()
    dialogs.save_answers.append("save")
    dialogs.paths.append(str(tmp_path / "mine"))  # the Save As dialog's answer
    assert win.close()
    assert (tmp_path / "mine.pano4dproj" / "project.json").is_file()


def test_quit_while_generating_cancels_the_run_then_closes(win, qtbot, pano_path, dialogs):
    from tests.app.test_worker import TINY

    win.open_panorama(pano_path)
    win.model.add_layer("sky")
    win.model.paint_mask(0, np.eye(256, 512, dtype=bool))
    slow = {k: dict(v) for k, v in TINY.items()}
    slow["lift"]["refine"] = {"passes": 200}
    win.generate_panel.overrides = slow
    assert win.start_generation()
    qtbot.waitUntil(lambda: win.progress_panel.stage == "lift", timeout=60000)
    dialogs.answers.append("Keep working")
    assert not win.close() and win._running()  # asked, and nothing stopped
    dialogs.answers.append("Cancel job and quit")
    win.close()
    qtbot.waitUntil(lambda: win.closed, timeout=20000)
    assert [a[0] for a in dialogs.asked] == ["Quit Pano4D?", "Quit Pano4D?"]
    assert win.worker.outcome == "cancelled" and not win._running()
    doc = json.loads((win.project.folder / "project.json").read_text())
    assert doc["generation"]["status"] == "cancelled"  # resumable from its project


# --------------------------------------------------------------------------- result


def wait_job(qtbot, win, timeout=60000):
    qtbot.waitUntil(lambda: not win._running() and not win.progress_panel.running, timeout=timeout)


def test_exports_match_the_engine_readers(win, qtbot, result_dir, tmp_path, dialogs):
    out = result_dir / "out"
    assert win.open_scene_path(out) and win.tabs.currentIndex() == 1
    scene = load_scene(out / "scene")
    assert all(a.isEnabled() for a in win.export_actions.values())

    assert win.export_to("ply", tmp_path / "ply")
    wait_job(qtbot, win)
    files = sorted((tmp_path / "ply").glob("frame_*.ply"))
    assert len(files) == scene.n_frames
    from engine.splats.axes import flip

    for t, f in enumerate(files):
        g, ref = read_ply(f), flip(scene.frame(t))  # stored y-down, the 3DGS convention
        for name, tensor in ref.tensors().items():
            np.testing.assert_allclose(getattr(g, name).numpy(), tensor.float().numpy(), atol=1e-6)
    # a picked folder holding the user's own files: the sequence goes into a subfolder
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "letter.txt").write_text("mine")
    assert win.export_to("ply", docs)
    wait_job(qtbot, win)
    assert len(list((docs / f"{out.name} PLY").glob("frame_*.ply"))) == scene.n_frames
    assert sorted(p.name for p in docs.iterdir()) == sorted([f"{out.name} PLY", "letter.txt"])

    for kind, name in (("mp4", "panorama.mp4"), ("preview", "preview.mp4")):
        dest = tmp_path / "new" / f"{kind}.mp4"  # its folder is made
        assert win.export_to(kind, dest)
        wait_job(qtbot, win)
        assert dest.read_bytes() == (out / name).read_bytes()

    # a picked folder of the user's files gets the scene in a subfolder; the shown scene
    # itself cannot be the destination
    assert win.export_to("scene", docs)
    wait_job(qtbot, win)
    assert load_scene(docs / f"{out.name} scene").n_frames == scene.n_frames
    assert (docs / "letter.txt").read_text() == "mine"
    own = tmp_path / "own"  # a copy of the result, shown: its folders as destinations
    shutil.copytree(out, own)
    assert win.open_scene_path(own)
    for dest in (own / "scene", own / "scene" / "dynamic"):
        assert not win.export_to("scene", dest)
        message = dialogs.errors.pop()[1]
        assert message.endswith("is the scene shown, or inside it; choose another folder")
    assert win.export_to("scene", own)  # the run folder: the copy goes beside its files
    wait_job(qtbot, win)
    assert (own / "report.json").is_file() and load_scene(own / "own scene")
    assert win.open_scene_path(out)
    assert win.export_to("scene", tmp_path / "copy")
    wait_job(qtbot, win)
    copy = load_scene(tmp_path / "copy")
    assert copy.n_frames == scene.n_frames
    for t in range(scene.n_frames):
        for name, tensor in scene.frame(t).tensors().items():
            assert bool((copy.frame(t).tensors()[name] == tensor).all())
    assert not dialogs.errors
    assert win.progress_panel.stage_label.text().startswith("Exported to")


def test_no_scene_opens_while_a_job_runs_and_finished_workers_are_freed(
    win, qtbot, result_dir, tmp_path, dialogs
):
    import threading

    out = result_dir / "out"
    assert win.open_scene_path(out)
    gate = threading.Event()
    real_task = win._export_task

    def held(kind, scene, dest):  # the export waits until the test lets it go
        task = real_task(kind, scene, dest)
        return lambda cb, cancel: (gate.wait(30), task(cb, cancel))[1]

    win._export_task = held
    try:
        assert win.export_to("scene", tmp_path / "copy")
        assert not win.open_scene_path(out / "scene")
        assert dialogs.errors[-1][0] == "A job is running" and win.scene_path == out / "scene"
    finally:
        gate.set()
    wait_job(qtbot, win)
    assert load_scene(tmp_path / "copy").n_frames == load_scene(out / "scene").n_frames
    worker = win.worker
    assert worker.outcome == "finished" and worker.released and worker._fn is None
    assert not win._running() and worker.wait(0)
    qtbot.waitUntil(lambda: not shiboken_valid(worker))  # deleteLater ran


def test_cancel_stops_a_copying_export_and_leaves_nothing(win, qtbot, result_dir, tmp_path):
    import threading

    out = result_dir / "out"
    assert win.open_scene_path(out)
    gate = threading.Event()
    real_task = win._export_task

    def held(kind, scene, dest):  # the copy starts only after Cancel was pressed
        task = real_task(kind, scene, dest)
        return lambda cb, cancel: (gate.wait(30), task(cb, cancel))[1]

    win._export_task = held
    for kind, dest in (("scene", tmp_path / "copy"), ("mp4", tmp_path / "a.mp4")):
        assert win.export_to(kind, dest)
        win.cancel_job()
        gate.set()
        wait_job(qtbot, win)
        assert win.worker.outcome == "cancelled", kind
        assert not dest.exists() and not list(tmp_path.glob(".*tmp*")), kind
        gate.clear()


def shiboken_valid(obj) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)


def test_the_result_tab_says_what_to_do_until_there_is_a_scene(win, result_dir):
    viewer = win.viewer
    win.tabs.setCurrentIndex(1)
    assert viewer.empty and viewer.empty_label.isVisible() and not viewer.view.isVisible()
    assert viewer.empty_label.text().startswith("No result yet.")
    assert "Generate (Ctrl+G)" in viewer.empty_label.text()
    assert viewer.frame_label.text() == "no scene" and not viewer.play_button.isEnabled()
    assert win.open_scene_path(result_dir / "out")
    assert not viewer.empty and viewer.view.isVisible() and not viewer.empty_label.isVisible()
    assert viewer.frame_label.text() == "frame 0 / 3" and viewer.play_button.isEnabled()


def test_preview_export_renders_when_the_result_has_none(win, qtbot, result_dir, tmp_path):
    from engine.video import read_mp4

    win.open_scene_path(result_dir / "out" / "scene")  # a bare scene folder: no videos
    assert not win.export_actions["mp4"].isEnabled()
    dest = tmp_path / "p.mp4"
    assert win.export_to("preview", dest)
    wait_job(qtbot, win, 120000)
    frames = read_mp4(dest)
    assert frames.shape[0] == 32 and frames.std() > 5


def test_before_after_shows_the_input_through_the_same_camera(win, qtbot, result_dir):
    from viewer.camera import CameraState

    pano = load_panorama(result_dir / "park_small.png")
    win.pano = pano
    assert win.open_scene_path(result_dir / "out")
    viewer = win.viewer
    assert viewer.before_button.isVisible() and not viewer.showing_before
    win.before_action.trigger()
    assert viewer.showing_before and viewer.before_button.text() == "After"
    qtbot.wait(50)
    for yaw, col in ((0.0, 0.5), (90.0, 0.75), (-90.0, 0.25)):
        viewer.view.camera.set_state(CameraState(yaw, 0.0, 60.0))
        img = viewer.before_view.render_image()
        h, w = img.shape[:2]
        centre = img[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1].astype(float).mean((0, 1))
        r, c = pano.height // 2, int(col * pano.width)
        ref = pano.rgb[r - 1 : r + 1, c - 1 : c + 1].astype(float).mean((0, 1))
        assert np.abs(centre - ref).max() < 12, (yaw, centre, ref)
    grabbed = viewer.before_view.grab().toImage()
    assert grabbed.width() > 100
    win.before_action.trigger()
    assert not viewer.showing_before


def test_before_after_shortcut_works_from_the_paint_tab(win, qtbot, result_dir):
    from PySide6.QtCore import Qt

    win.pano = load_panorama(result_dir / "park_small.png")
    assert win.open_scene_path(result_dir / "out")
    win.tabs.setCurrentIndex(0)  # the Result tab's widgets are not visible from here
    with qtbot.waitActive(win):
        win.activateWindow()
    qtbot.keyClick(win.tabs, Qt.Key_B, Qt.ControlModifier)
    assert win.tabs.currentIndex() == 1 and win.viewer.showing_before
    qtbot.keyClick(win.tabs, Qt.Key_B, Qt.ControlModifier)
    assert not win.viewer.showing_before


def test_opening_another_project_forgets_the_previous_result(win, result_dir, pano_path, tmp_path):
    from app.project import save_project

    a = save_project(
        tmp_path / "a",
        panorama=pano_path,
        regions=[],
        settings=tiny_config(),
        result=result_dir / "out",
    )
    b = save_project(tmp_path / "b", panorama=pano_path, regions=[], settings=tiny_config())
    assert win.open_project(a.folder) and win.result_dir == result_dir / "out"
    assert win.viewer.view.scene is not None
    assert win.open_project(b.folder)
    assert win.result_dir is None and win.scene_path is None and win.viewer.view.scene is None
    assert not win.export_actions["mp4"].isEnabled()
    assert win.save_project_to(b.folder)
    assert json.loads((b.folder / "project.json").read_text())["result"] is None


def test_project_settings_survive_the_capability_probe(win, pano_path, tmp_path):
    """A project opened before the probe answered (its choices not listed yet) keeps them:
    a save in the meantime writes them, and the probe's answer selects them."""
    from app.capabilities import Capabilities, Choice
    from app.generate_panel import GenerateSettings
    from app.project import load_project, save_project

    wanted = GenerateSettings(
        preset="preview", animator="svd", depth="model", device="cuda", svd_model="/models/svd"
    )
    data = save_project(tmp_path / "p", panorama=pano_path, regions=[], settings=wanted)
    panel = win.generate_panel
    assert panel.animator_combo.findData("svd") < 0  # nothing probed yet
    assert win.open_project(data.folder)
    assert panel.settings() == wanted
    assert win.save_project_to(data.folder)
    assert load_project(data.folder).settings == wanted
    win.set_capabilities(
        Capabilities(
            cuda=True,
            animators=(Choice("flow", "Flow", True), Choice("svd", "Video diffusion", True)),
            depth=(Choice("prior", "Prior", True), Choice("model", "Depth model", True)),
            devices=(Choice("auto", "Auto", True), Choice("cuda", "CUDA", True)),
        )
    )
    shown = [c.currentData() for c in (panel.animator_combo, panel.depth_combo, panel.device_combo)]
    assert shown == ["svd", "model", "cuda"] and panel.settings() == wanted
    # a choice the probe lists as unavailable falls back; the user's own pick wins too
    panel.set_settings(wanted)
    win.set_capabilities(Capabilities())
    assert panel.settings().animator == "svd"  # not listed: still asked for
    panel.animator_combo.activated.emit(0)  # the user picks Flow
    win.set_capabilities(
        Capabilities(animators=(Choice("flow", "Flow", True), Choice("svd", "SVD", True)))
    )
    assert panel.settings().animator == "flow" and panel.settings().device == "cuda"


def test_enter_vr_runs_a_separate_process_and_reports_failure(win, qtbot, result_dir, dialogs):
    from app.capabilities import Capabilities

    win.open_scene_path(result_dir / "out")
    scene = result_dir / "out" / "scene"
    assert win.vr_command() == [sys.executable, str(ROOT / "main.py"), "xr", str(scene)]
    win.set_capabilities(Capabilities(xr=True, xr_reason="Monado"))
    assert win.vr_action.isEnabled()
    code = "import sys, time; time.sleep(0.3); sys.stderr.write('no headset\\n'); sys.exit(2)"
    win.vr_command = lambda: [sys.executable, "-c", code]
    assert win.enter_vr()
    win.viewer.slider.setValue(1)  # the window keeps working while VR runs
    assert win.viewer.view.frame == 1
    qtbot.waitUntil(lambda: bool(dialogs.errors), timeout=10000)
    assert dialogs.errors[-1][:2] == ("VR session failed", "no headset")


@pytest.mark.xr
def test_enter_vr_reaches_a_running_session_against_monado(win, qtbot, result_dir, monkeypatch):
    """The real path: VR > Enter VR starts ``main.py xr`` with the app's environment (its
    GLX PyOpenGL platform included, which once broke the XR process's EGL context) against
    Monado; the session runs its frames and ends cleanly, and the window says so."""
    from viewer.gl.context import has_gl
    from viewer.monado import monado_env, monado_manifest

    if monado_manifest() is None:
        pytest.skip("Monado is not built (scripts/build_monado.sh caches it)")
    ok, why = has_gl()
    if not ok:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {why}")
    from app.capabilities import Capabilities

    for key, value in monado_env(controllers=True).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYOPENGL_PLATFORM", "glx")  # what the app's Qt views set
    assert win.open_scene_path(result_dir / "out")
    win.set_capabilities(Capabilities(xr=True, xr_reason="Monado"))
    real = win.vr_command()
    win.vr_command = lambda: [*real, "--frames", "30"]  # a short session that ends itself
    assert win.vr_action.isEnabled()
    win.vr_action.trigger()
    proc = win.vr_process
    assert proc is not None
    qtbot.waitUntil(lambda: proc.state() == proc.ProcessState.NotRunning, timeout=120000)
    out = bytes(proc.readAllStandardOutput()).decode()
    assert proc.exitCode() == 0, bytes(proc.readAllStandardError()).decode()[-2000:]
    assert "30 frames rendered" in out and "STOPPING -> IDLE -> EXITING" in out
    assert win.statusBar().currentMessage() == "VR session ended"


# --------------------------------------------------------------------------- dialogs, entry


def test_error_dialog_keeps_details_expandable(gui, qtbot):
    from app import dialogs as real

    try:
        raise ValueError("bad value\nsecond line")
    except ValueError as e:
        message, details = real.describe(e)
    assert message == "ValueError: bad value second line"
    assert details.startswith("Traceback") and "raise ValueError" in details
    box = real.make_error_dialog(None, "Oops", message, details)
    qtbot.addWidget(box)
    assert box.text() == message and box.detailedText() == details
    assert real.describe(InputError("x.png: not a PNG"))[0] == "x.png: not a PNG"


def test_unexpected_exception_becomes_a_dialog(gui, dialogs, monkeypatch):
    from app import dialogs as module

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    module.install_excepthook(lambda: None)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError as e:
        sys.excepthook(type(e), e, e.__traceback__)
    title, message, details = dialogs.errors[-1]
    assert (title, message) == ("Unexpected error", "RuntimeError: boom in a slot")
    assert "Traceback" in details and "boom in a slot" in details


def test_app_without_display_says_so_in_one_line():
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run(
        [sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no display" in r.stderr


def test_app_process_starts_on_glx_and_opens_a_file(tmp_path):
    """A fresh process as `python main.py` runs it (run_app: display and GL checks, GLX
    inside Qt's context), given a panorama to open."""
    import subprocess

    pano = tiny_panorama(tmp_path)
    code = f"""
import sys, time
from PySide6.QtWidgets import QApplication

def run_briefly(self):
    t = time.monotonic()
    while time.monotonic() - t < 3:
        self.processEvents()
    from OpenGL import platform
    w = next(x for x in QApplication.topLevelWidgets() if type(x).__name__ == "MainWindow")
    w.tabs.setCurrentIndex(1)
    self.processEvents()
    print(type(platform.PLATFORM).__name__, w.size_label.text().replace(" ", ""),
          w.viewer.view.gl_error)
    w.dirty = False
    w.close()
    return 0

QApplication.exec = run_briefly
import app.main
sys.exit(app.main.run_app({str(pano)!r}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYOPENGL_PLATFORM", None)
    env.pop("QT_XCB_GL_INTEGRATION", None)
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-3:] == ["GLXPlatform", "512×256px", "None"], r.stdout


def test_vr_menu_says_why_and_asks_for_a_runtime_again(win, qtbot, result_dir, monkeypatch):
    """Greyed out with the reason in the item's own text (menus show no tooltips); opening
    the menu re-probes, so a runtime started after the app is found without a restart; the
    XR process does not inherit the app's GLX PyOpenGL platform."""
    from app import capabilities
    from app.capabilities import Capabilities

    win.open_scene_path(result_dir / "out")
    win.set_capabilities(Capabilities(xr=False, xr_reason="no OpenXR runtime answers"))
    assert not win.vr_action.isEnabled()
    assert win.vr_action.text() == "Enter VR — no OpenXR runtime answers"
    asked = []
    monkeypatch.setattr(
        capabilities, "probe_xr", lambda timeout=10.0: asked.append(1) or (True, "Monado")
    )
    win.vr_menu.aboutToShow.emit()
    qtbot.waitUntil(lambda: win.vr_action.isEnabled(), timeout=10000)
    assert asked == [1] and win.vr_action.text() == "Enter &VR"
    monkeypatch.setenv("PYOPENGL_PLATFORM", "glx")
    env = win.vr_environment()
    assert not env.contains("PYOPENGL_PLATFORM") and env.contains("PATH")


def test_the_suite_never_touches_the_users_settings(gui):
    """The app's default settings and data locations point into the session's private
    home (tests/conftest.py), not the user's."""
    from PySide6.QtCore import QSettings, QStandardPaths

    private = os.environ["XDG_CONFIG_HOME"]
    assert "pano4d-test-home-" in private
    assert QSettings("Pano4D", "Pano4D").fileName().startswith(private)
    data = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)
    assert data.startswith(os.environ["XDG_DATA_HOME"])


@pytest.mark.parametrize("size", [(1280, 720), (1366, 768)])
def test_the_window_fits_a_laptop_screen_and_its_panels_scroll(win, qtbot, size):
    """Down to 1280x720 the window fits and every control of the side panels can be
    scrolled into view (the panels scroll instead of forcing the window taller)."""
    from PySide6.QtWidgets import QScrollArea

    hint = win.minimumSizeHint()
    assert hint.width() <= size[0] and hint.height() <= size[1] - 40, hint  # a title bar
    win.resize(*size)
    qtbot.waitUntil(lambda: win.height() <= size[1])
    for dock, widgets in (
        ("generate", (win.preview_button, win.generate_panel.generate_button,
                      win.progress_panel.cancel_button)),
        ("regions", (win.region_panel.prompt_edit, win.find_box.text_edit,
                     win.find_box.find_button)),
    ):  # fmt: skip
        area = win.docks[dock].widget()
        assert isinstance(area, QScrollArea)
        for button in widgets:
            button.setVisible(True)
            area.ensureWidgetVisible(button)
            qtbot.waitUntil(lambda b=button: not b.visibleRegion().isEmpty(), timeout=3000)


def test_help_menu_guide_shortcuts_about_and_the_4k_suggestion(win, dialogs, monkeypatch, tmp_path):
    from PIL import Image
    from PySide6.QtGui import QDesktopServices

    titles = [
        a.text() for m in win.menuBar().actions() if m.text() == "&Help" for a in m.menu().actions()
    ]
    assert titles == ["User &Guide", "&Keyboard Shortcuts", "&About Pano4D"]
    opened = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True
    )
    assert win.open_guide() and opened == [str(ROOT / "docs" / "GUIDE.md")]
    win.show_shortcuts()
    title, text = dialogs.infos[-1]
    assert title == "Keyboard shortcuts" and "Ctrl+G" in text and "Generate" in text
    win.show_about()
    assert "Pano4D" in dialogs.infos[-1][1]
    # a 4096-wide panorama gets the 4k preset; a smaller one goes back to the default
    big = tmp_path / "big.png"
    Image.new("RGB", (4096, 2048), (90, 120, 160)).save(big)
    assert win.open_panorama(big, ask=False)
    assert win.generate_panel.preset_combo.currentData() == "4k"
    assert win.open_panorama(SAMPLES / "park_2048x1024.png", ask=False)
    assert win.generate_panel.preset_combo.currentData() == "standard"


def test_export_dialogs_start_in_the_last_export_folder(win, dialogs, result_dir, tmp_path, qtbot):
    starts = []
    from app import dialogs as real

    def pick(parent, title, start=""):
        starts.append(start)
        return str(tmp_path / "exports")

    real.pick_folder = pick  # monkeypatched by the fixture: restored after the test
    win.open_scene_path(result_dir / "out")
    (tmp_path / "exports").mkdir()
    win.export_dialog("ply")
    wait_job(qtbot, win)
    assert ".pano4d" not in starts[0] and "runs" not in starts[0]
    win.export_dialog("ply")
    wait_job(qtbot, win)
    assert starts[1] == str((tmp_path / "exports").absolute())
