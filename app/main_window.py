"""The Pano4D main window: paint the regions that move, generate in the background, explore
the result.

Layout: central tabs **Paint** (:class:`app.canvas.PaintCanvas`) and **Result** (the scene
viewer, :class:`app.viewer_panel.ViewerPanel`, with the time slider, play controls and the
Before/After toggle); dockable side panels **Regions** (:class:`app.region_panel.
RegionPanel`), **Look around** (:class:`app.lookaround.LookAroundView`) and **Generate**
(:class:`app.generate_panel.GeneratePanel` over :class:`app.progress_panel.ProgressPanel`);
a status bar with the panorama size and what this machine can run (CUDA, models, XR).

Shortcuts: Ctrl+O open panorama, Ctrl+Shift+O open project, Ctrl+S / Ctrl+Shift+S save
project (as), Ctrl+Z / Ctrl+Shift+Z undo / redo, Ctrl+G generate, Esc cancel, Ctrl+1 / Ctrl+2
Paint / Result, Ctrl+B before/after, Space play/pause (Result tab), Ctrl+E export PLY
sequence, Ctrl+Shift+V enter VR, Ctrl+Q quit.

All long work runs in :mod:`app.worker` threads; every dialog goes through
:mod:`app.dialogs` (tests replace those functions; nothing blocks). Projects
(:mod:`app.window_project`), exports (:mod:`app.window_export`) and VR
(:mod:`app.window_vr`) are parts of the window in their own modules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from PySide6.QtCore import QProcess, QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import InputError
from engine.io import Panorama, load_panorama
from engine.metrics import db_text
from engine.progress import StageEstimate

from . import dialogs
from .canvas import PaintCanvas
from .capabilities import Capabilities, CapabilityProbe
from .find_regions import DEFAULT_SEG_MODEL, FindRegionsBox, find_regions
from .generate_panel import GeneratePanel, GenerateSettings
from .lookaround import LookAroundView
from .motion_preview import MotionPreview
from .progress_panel import ProgressPanel, clock
from .project import (
    RESULT_DIR,
    RUN_DIR,
    SUFFIX,
    ProjectData,
    save_project,
    write_run_inputs,
)
from .region_panel import RegionPanel
from .regions_model import RegionsModel
from .shortcuts import ShortcutRouter
from .viewer_panel import ViewerPanel
from .window_export import EXPORTS, ExportActions
from .window_project import ProjectActions
from .window_vr import VrActions
from .worker import GenerateJob, GenerateWorker, TaskWorker

__all__ = ["MainWindow"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "samples" / "park_2048x1024.png"
MAX_RECENT = 8
AUTOSAVE_MS = 60_000
NO_RESULT = (
    "No result yet.\n\nPaint the regions that should move in the Paint tab, say how in "
    "Generate, and press Generate (Ctrl+G).\nOr open a scene you made before: File > Open "
    "Scene…, Open Project… or Open Recent."
)


def default_runs_dir() -> Path:
    """Where results of not-yet-saved projects go."""
    base = QStandardPaths.writableLocation(QStandardPaths.AppLocalDataLocation)
    return Path(base or Path.home() / ".pano4d") / "runs"


def _scrolling(widget: QWidget) -> QScrollArea:
    """A side panel that scrolls when the screen is shorter than the panel (laptops):
    its docks may then be as short as the screen allows."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width() + 16)
    return area


class MainWindow(ProjectActions, ExportActions, VrActions, QMainWindow):
    """The app. ``settings``: where recent files live (tests pass a temporary one);
    ``probe``: run the capability probe at start (tests pass False and set them)."""

    def __init__(
        self,
        settings: QSettings | None = None,
        *,
        probe: bool = True,
        runs_dir: Path | None = None,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.qsettings = settings if settings is not None else QSettings("Pano4D", "Pano4D")
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.pano: Panorama | None = None
        self.project: ProjectData | None = None
        self.copy_panorama = False
        self.auto_project = False  # a project the app made in its data folder for a run
        self._quitting = False  # "cancel and quit" asked; the window closes when the job ends
        self.closed = False
        self.generation: dict | None = None
        self.result_dir: Path | None = None
        self.scene_path: Path | None = None
        self.worker: TaskWorker | None = None
        self.last_report: dict | None = None
        self.dirty = False
        self._saves = 0  # project saves asked for by the UI (see _run_generation)
        self._edits = 0  # changes made (see _sync_dirty)
        self._run_saved: int | None = None  # _edits when the run's snapshot was saved
        self.capabilities = Capabilities()
        self.vr_process: QProcess | None = None
        self.batch_window = None  # app.batch_window.BatchWindow, made when first asked for
        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self._build_widgets()
        self.shortcut_router = ShortcutRouter(
            self,
            self.canvas,
            self.model.undo_stack,
            lambda: self.tabs.currentWidget() is self.canvas,
            (self.canvas, self.viewer),
        )
        QApplication.instance().installEventFilter(self.shortcut_router)
        self._build_actions()
        self._build_menus()
        self._build_status()
        self.model.changed.connect(self._mark_dirty)
        self.generate_panel.changed.connect(self._mark_dirty)
        self.generate_panel.generateRequested.connect(self.start_generation)
        self.progress_panel.cancelRequested.connect(self.cancel_job)
        self.viewer.glFailed.connect(lambda msg: dialogs.error(self, "OpenGL", msg))
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self._probe: CapabilityProbe | None = None
        self._xr: tuple[bool, str] | None = None
        self._xr_probe = None  # XrProbe: asked again each time the VR menu opens
        self.generate_panel.modelSpecsChanged.connect(self.probe_capabilities)
        if probe:
            self.probe_capabilities(*self.generate_panel.specs())
        self._update_actions()
        self._update_title()

    # ------------------------------------------------------------------ construction

    def _build_widgets(self) -> None:
        self.model = RegionsModel(self)
        self.canvas = PaintCanvas(self.model)
        self.viewer = ViewerPanel(None)
        self.viewer.set_empty_text(NO_RESULT)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.canvas, "Paint")
        self.tabs.addTab(self.viewer, "Result")
        self.tabs.setTabToolTip(0, "Paint the regions that move (Ctrl+1)")
        self.tabs.setTabToolTip(1, "The generated 4D scene (Ctrl+2)")
        self.setCentralWidget(self.tabs)
        self.region_panel = RegionPanel(self.model, self.canvas)
        seg_model = str(self.qsettings.value("seg_model", "") or DEFAULT_SEG_MODEL)
        self.find_box = FindRegionsBox(self.region_panel, seg_model)
        self.region_panel.layout().addWidget(self.find_box)
        self.find_box.findRequested.connect(self.find_regions)
        self.find_box.model_edit.editingFinished.connect(
            lambda: self.qsettings.setValue("seg_model", self.find_box.model_edit.text().strip())
        )
        self.lookaround = LookAroundView(self.model)
        gen = QWidget()
        lay = QVBoxLayout(gen)
        lay.setContentsMargins(0, 0, 0, 0)
        self.generate_panel = GeneratePanel(gen)
        self.motion_preview = MotionPreview(
            self.model, self.canvas, self._preview_flow_config, self
        )
        self.motion_preview.message.connect(lambda t: self.statusBar().showMessage(t, 8000))
        self.generate_panel.changed.connect(self.motion_preview.schedule)
        self.progress_panel = ProgressPanel(gen)
        lay.addWidget(self.generate_panel)
        lay.addWidget(self.progress_panel)
        lay.addStretch(1)
        self.docks = {}
        for key, title, widget, area in (
            ("regions", "Regions", self.region_panel, Qt.RightDockWidgetArea),
            ("generate", "Generate", gen, Qt.RightDockWidgetArea),
            # a wide perspective strip under the (wide) panorama
            ("look", "Look around", self.lookaround, Qt.BottomDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{key}")
            dock.setWidget(widget if key == "look" else _scrolling(widget))
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)  # right column full height
        self.lookaround.setMinimumHeight(170)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        A = self._action
        self.open_action = A("&Open Panorama…", self.open_dialog, QKeySequence.Open)
        self.open_project_action = A("Open &Project…", self.open_project_dialog, "Ctrl+Shift+O")
        self.text_scene_action = A(
            "New Scene from &Text…",
            self.new_scene_from_text,
            "Ctrl+Shift+N",
            "Make the panorama from a prompt with a text-to-image model",
        )
        self.sample_action = A(
            "Open the &Bundled Sample",
            lambda: self.open_panorama(SAMPLE),
            tip="The park panorama that comes with Pano4D (CC0, Poly Haven)",
        )
        self.save_action = A("&Save Project", self.save, QKeySequence.Save)
        self.save_as_action = A("Save Project &As…", self.save_as, "Ctrl+Shift+S")
        self.copy_action = A("Copy Panorama into Project", self._toggle_copy)
        self.copy_action.setCheckable(True)
        self.open_scene_action = A("Open &Scene Folder…", self.open_scene_dialog)
        self.open_splat_action = A("Open Spla&t File…", self.open_splat_dialog)
        self.quit_action = A("&Quit", self.close, "Ctrl+Q")
        stack = self.model.undo_stack
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.Undo)
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for a in (self.undo_action, self.redo_action):
            self.addAction(a)
        self.generate_action = A(
            "&Generate", self.start_generation, "Ctrl+G", "Animate the regions, build the scene"
        )
        self.resume_action = A("&Resume Unfinished Run", self.resume_generation)
        self.cancel_action = A("&Cancel", self.cancel_job, "Esc")
        self.batch_action = A(
            "&Batch…", self.open_batch_window, tip="Run a job file's scenes, here or on Ray"
        )
        self.preview_action = QAction("Preview &Motion", self)
        self.preview_action.setCheckable(True)
        self.preview_action.setShortcut(QKeySequence("Ctrl+M"))
        tip = "A quick low-resolution animation of the painted regions on the canvas, renewed "
        self.preview_action.setToolTip(tip + "after every edit (Ctrl+M)")
        self.preview_action.setStatusTip(tip + "after every edit")
        self.preview_action.toggled.connect(self._on_preview_toggled)
        self.addAction(self.preview_action)
        button = QToolButton(self.generate_panel)
        button.setDefaultAction(self.preview_action)
        button.setToolButtonStyle(Qt.ToolButtonTextOnly)
        button.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        lay = self.generate_panel.layout()
        lay.insertWidget(lay.indexOf(self.generate_panel.generate_button), button)
        self.preview_button = button
        self.paint_tab_action = A("&Paint", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self.result_tab_action = A("&Result", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2")
        self.before_action = A("&Before / After", self._toggle_before, "Ctrl+B")
        self.play_action = QAction("Play / Pause", self.viewer)
        self.play_action.setShortcut(QKeySequence(Qt.Key_Space))
        self.play_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.play_action.triggered.connect(self.viewer.toggle_play)
        self.viewer.addAction(self.play_action)
        self.export_actions = {}
        for kind, text in EXPORTS.items():
            act = A(text, lambda _=False, k=kind: self.export_dialog(k))
            self.export_actions[kind] = act
        self.export_actions["ply"].setShortcut(QKeySequence("Ctrl+E"))
        self.vr_action = A(
            "Enter &VR", self.enter_vr, "Ctrl+Shift+V", "View the scene in a headset"
        )

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addAction(self.open_action)
        f.addAction(self.text_scene_action)
        self.recent_menu = f.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        f.addAction(self.sample_action)
        f.addAction(self.open_project_action)
        f.addAction(self.open_scene_action)
        f.addAction(self.open_splat_action)
        f.addSeparator()
        for a in (self.save_action, self.save_as_action, self.copy_action):
            f.addAction(a)
        f.addSeparator()
        f.addAction(self.quit_action)
        e = mb.addMenu("&Edit")
        e.addAction(self.undo_action)
        e.addAction(self.redo_action)
        g = mb.addMenu("&Generate")
        for a in (self.preview_action, self.generate_action, self.resume_action):
            g.addAction(a)
        g.addAction(self.cancel_action)
        g.addSeparator()
        g.addAction(self.batch_action)
        v = mb.addMenu("&View")
        for a in (self.paint_tab_action, self.result_tab_action, self.before_action):
            v.addAction(a)
        v.addAction(self.play_action)
        v.addSeparator()
        for dock in self.docks.values():
            v.addAction(dock.toggleViewAction())
        x = mb.addMenu("E&xport")
        for a in self.export_actions.values():
            x.addAction(a)
        self.vr_menu = mb.addMenu("V&R")
        self.vr_menu.addAction(self.vr_action)
        self.vr_menu.aboutToShow.connect(self.reprobe_xr)
        h = mb.addMenu("&Help")
        h.addAction(self._action("User &Guide", self.open_guide, "F1", "docs/GUIDE.md"))
        h.addAction(self._action("&Keyboard Shortcuts", self.show_shortcuts))
        h.addAction(self._action("&About Pano4D", self.show_about))

    def _preview_flow_config(self):
        """The flow settings the next run would use (frames, fps, …), for the preview."""
        from engine.animate import FlowConfig

        try:
            return self.generate_panel.settings().to_config().animate
        except Exception:  # settings the probe has not confirmed yet: the preset's frames
            return FlowConfig(frames=self.generate_panel.frames_spin.value())

    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self.tabs.setCurrentWidget(self.canvas)  # where it plays
            self.statusBar().showMessage("Motion preview: animating the painted regions…", 3000)
        self.motion_preview.set_active(on)  # may say why there is nothing to show

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.size_label = QLabel("No panorama", self)
        self.caps_label = QLabel("Probing CUDA, models and XR…", self)
        sb.addPermanentWidget(self.size_label)
        sb.addPermanentWidget(self.caps_label)

    # ------------------------------------------------------------------ state helpers

    def _mark_dirty(self, *_args) -> None:
        self._edits += 1
        if self.pano is not None and not self.dirty:
            self.dirty = True
            self._update_title()
        self._update_actions()

    def _sync_dirty(self) -> None:
        """Not dirty once a run's worker saved its snapshot and nothing changed since."""
        if self.dirty and self._run_saved is not None and self._run_saved == self._edits:
            self.dirty = False
            self._update_title()

    def _update_title(self) -> None:
        if self.project is not None:
            name = self.project.folder.name
        elif self.pano is not None:
            name = Path(self.pano.path or "untitled").name
        else:
            name = ""
        star = "*" if self.dirty else ""
        self.setWindowTitle(f"Pano4D — {name}{star}" if name else "Pano4D")

    def _busy_refusal(self) -> bool:
        """True (after saying why) while a job runs: its result belongs to this panorama."""
        if self._running():
            dialogs.error(
                self, "A job is running", "Wait for it to finish or cancel it (Esc) first."
            )
            return True
        return False

    def _running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _update_actions(self) -> None:
        running = self._running()
        has_pano = self.pano is not None
        has_scene = self.viewer.view.scene is not None
        self.generate_action.setEnabled(has_pano and not running)
        self.preview_action.setEnabled(has_pano)
        self.find_box.set_ready(has_pano and not running)
        self.text_scene_action.setEnabled(not running)
        self.generate_panel.set_running(running)
        self.generate_panel.generate_button.setEnabled(has_pano and not running)
        self.cancel_action.setEnabled(running)
        self.resume_action.setEnabled(
            not running
            and self.generation is not None
            and (Path(self.generation["out"]) / ".pano4d" / "state.json").is_file()
        )
        self.save_action.setEnabled(has_pano)
        self.save_as_action.setEnabled(has_pano)
        for kind, act in self.export_actions.items():
            ok = has_scene and not running
            if kind == "mp4":
                ok = ok and self._result_file("panorama.mp4") is not None
                act.setToolTip("" if ok else "Only for a scene generated in this project")
            act.setEnabled(ok)
        vr_ok = has_scene and self.scene_path is not None and self.capabilities.xr
        self.vr_action.setEnabled(vr_ok)
        self.vr_action.setToolTip(
            "View the scene in a headset" if vr_ok else f"XR: {self.capabilities.xr_reason}"
        )
        self.vr_action.setText(self._vr_text(has_scene and self.scene_path is not None))

    def probe_capabilities(self, svd_spec: str, depth_spec: str) -> None:
        """Probe (again) off the UI thread; XR only once (it does not depend on the specs)."""
        first = self._probe is None
        probe = CapabilityProbe(self, xr=first, svd_spec=svd_spec, depth_spec=depth_spec)
        probe.ready.connect(lambda caps: self._probed(probe, caps, first))
        self._probe = probe
        if first:
            self.caps_label.setText("Probing CUDA, models and XR…")
        probe.start()

    def _probed(self, probe: CapabilityProbe, caps: Capabilities, first: bool) -> None:
        if first:
            self._xr = (caps.xr, caps.xr_reason)
        if probe is not self._probe:  # an older probe: only its XR answer still counts
            if first:
                xr, reason = self._xr
                self.set_capabilities(
                    dataclasses.replace(self.capabilities, xr=xr, xr_reason=reason)
                )
            return
        if not first and self._xr is not None:  # XR is asked once, by the first probe
            caps = dataclasses.replace(caps, xr=self._xr[0], xr_reason=self._xr[1])
        self.set_capabilities(caps)

    def set_capabilities(self, caps: Capabilities) -> None:
        self.capabilities = caps
        self.generate_panel.set_capabilities(caps)
        self.caps_label.setText(caps.summary())
        self.caps_label.setMinimumWidth(self.caps_label.sizeHint().width())
        self.caps_label.setToolTip(caps.tooltip())
        self._update_actions()

    # ------------------------------------------------------------------ opening

    def open_dialog(self) -> None:
        path = dialogs.open_file(self, "Open panorama", dialogs.IMAGE_FILTER, self._last_dir())
        if path:
            self.open_panorama(path)

    def open_panorama(self, path: str | os.PathLike[str], *, ask: bool = True) -> bool:
        """Load a panorama (errors: one-line dialog). Returns success."""
        if self._busy_refusal() or (ask and not self.maybe_save()):
            return False
        try:
            pano = load_panorama(path)
        except Exception as e:  # InputError: the engine's one line; anything else summarised
            dialogs.error(self, "Cannot open panorama", *dialogs.describe(e))
            return False
        self._show_panorama(pano)
        self.project = None
        self.auto_project = False
        self.generation = None
        self.result_dir = None
        self.last_report = None
        self.dirty = False
        self._add_recent(Path(path))
        self._update_title()
        self._update_actions()
        return True

    # ------------------------------------------------------------------ help

    GUIDE = ROOT / "docs" / "GUIDE.md"

    def open_guide(self) -> bool:
        """The user guide in the desktop's viewer for Markdown (or its text editor)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        if not self.GUIDE.is_file():
            dialogs.error(self, "No user guide", f"{self.GUIDE} is missing from this install")
            return False
        ok = QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.GUIDE)))
        if not ok:
            self.statusBar().showMessage(f"Open {self.GUIDE} to read the guide", 10000)
        return ok

    def shortcut_text(self) -> str:
        """Every action with a shortcut, from the actions themselves (so it cannot go stale)."""
        rows = []
        for a in self.actions():
            key = a.shortcut().toString(QKeySequence.NativeText)
            if key:
                rows.append(f"<tr><td><b>{key}</b></td><td>{a.text().replace('&', '')}</td></tr>")
        extra = ("B / E / F / D", "brush / eraser / fill / direction tool"), ("[ / ]", "brush size")
        rows += [f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in extra]
        return "<table>" + "".join(rows) + "</table>"

    def show_shortcuts(self) -> None:
        dialogs.info(self, "Keyboard shortcuts", self.shortcut_text())

    def show_about(self) -> None:
        from engine import __version__

        dialogs.info(
            self,
            "About Pano4D",
            f"<b>Pano4D {__version__}</b><br>A 360° panorama, or a sentence, into an explorable "
            "4D Gaussian scene (4K4DGen, TiP4GEN).<br>MIT licence. The bundled park sample is "
            "CC0 (Poly Haven).",
        )

    def _suggest_preset(self, width: int) -> None:
        """A 4096-wide (or larger) panorama gets the 4k preset; a smaller one after a 4k
        panorama goes back to the default (the user can still choose)."""
        combo = self.generate_panel.preset_combo
        want = "4k" if width >= 4096 else None
        current = combo.currentData()
        if want and current != want:
            combo.setCurrentIndex(combo.findData(want))
            self.statusBar().showMessage("4k preset chosen for this 4096-pixel-wide panorama", 8000)
        elif not want and current == "4k":
            combo.setCurrentIndex(combo.findData("standard"))

    def _show_panorama(self, pano: Panorama) -> None:
        self.pano = pano
        self.model.reset(pano.height, pano.width)
        self.canvas.set_panorama(pano.rgb)
        self.lookaround.set_panorama(pano.rgb)
        self.viewer.set_scene(None)
        self.viewer.set_before_image(None)
        self.viewer.set_empty_text(NO_RESULT)
        self.scene_path = None
        self.tabs.setCurrentIndex(0)
        self.size_label.setText(f"{pano.width} × {pano.height} px")
        self.motion_preview.schedule()  # of the new panorama, when on
        self._suggest_preset(pano.width)
        self.size_label.setToolTip(f"{pano.path}\n{pano.source}")
        self.statusBar().showMessage(f"Opened {Path(pano.path or '').name}", 5000)

    def open_scene_dialog(self) -> None:
        path = dialogs.pick_folder(self, "Open scene folder", self._last_dir())
        if path:
            self.open_scene_path(path)

    def open_splat_dialog(self) -> None:
        path = dialogs.open_file(self, "Open splat file", dialogs.SPLAT_FILTER, self._last_dir())
        if path:
            self.open_scene_path(path)

    def open_scene_path(self, path: str | os.PathLike[str]) -> bool:
        """Show a scene (native folder, generate output, a splat file: .ply, .compressed.ply,
        .spz, .splat, .glb, or a PLY sequence) in Result."""
        from .viewer_window import open_any

        if self._busy_refusal():  # an export may be reading the shown scene
            return False
        try:
            scene = open_any(path)
        except Exception as e:  # InputError / FormatError: one line; others summarised
            dialogs.error(self, "Cannot open scene", *dialogs.describe(e))
            return False
        p = Path(path)
        native = p / "scene" if (p / "scene" / "manifest.json").is_file() else p
        self.scene_path = native if (native / "manifest.json").is_file() else None
        self.result_dir = p if (p / "scene" / "manifest.json").is_file() else None
        self.viewer.set_scene(scene)
        self.viewer.set_before_image(self.pano.rgb if self.pano is not None else None)
        self.tabs.setCurrentIndex(1)
        self._update_actions()
        return True

    # ------------------------------------------------------------------ generate

    def _ensure_project(self) -> bool:
        """A run needs a project to come back to after a crash: work that was never saved
        gets one in the app's data folder (listed under Open Recent; Save asks where to put
        it for good)."""
        if self.project is not None:
            return True
        stem = Path(self.pano.path or "untitled").stem
        folder = self.runs_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{SUFFIX}"
        pano = Path(self.pano.path).absolute()
        # written by the run's worker (see _run_generation), not here on the UI thread
        self.project = ProjectData(folder, pano, pano, settings=self.generate_panel.settings())
        self.auto_project = True
        self._add_recent(folder)
        self._update_title()
        return True

    def _work_dirs(self) -> tuple[Path, Path]:
        """(run inputs folder, output folder) for the next generate run."""
        base = self.project.folder
        return base / RUN_DIR, base / RESULT_DIR

    def new_scene_from_text(self) -> bool:
        """Ask for a scene prompt and a text-to-image model, make the panorama in a worker
        and open it for painting (saved in the app's data folder, under Open Recent)."""
        from engine.progress import Progress

        from .text_scene import DEFAULT_TEXT_MODEL, TextSceneDialog, make_panorama

        if self._busy_refusal() or not self.maybe_save():
            return False
        model = str(self.qsettings.value("text_model", DEFAULT_TEXT_MODEL))
        dialog = TextSceneDialog(self, model, self.generate_panel.settings().device)
        if not dialogs.run_dialog(dialog):
            return False
        cfg = dialog.config()
        self.qsettings.setValue("text_model", cfg.model)
        folder = self.runs_dir

        def job(callback, cancel):
            return make_panorama(cfg, folder, Progress("text", callback, cancel))

        return self._start_task(
            job,
            ("Making the panorama from text", "Last panorama from text"),
            self._text_scene_made,
            ("Failed", "Cannot make the panorama"),
        )

    def _text_scene_made(self, path: Path) -> None:
        self._job_ended(f"Made {path.name}")
        self.open_panorama(path)

    def find_regions(self, entries: list, spec: str) -> bool:
        """Find ``entries`` [(name, prompt)] in the panorama with the CLIPSeg model ``spec``
        (in a worker); each found region is added as a layer, all in one undoable edit."""
        if self._running() or self.pano is None:
            return False
        from engine.progress import Progress

        rgb = self.pano.rgb

        def job(callback, cancel):
            return find_regions(rgb, entries, spec, Progress("segment", callback, cancel))

        names = ", ".join(name for name, _ in entries)
        return self._start_task(
            job,
            (f"Finding {names}", f"Last search: {names}"),
            lambda masks: self._regions_found(entries, masks),
            ("Failed", "Cannot find the regions"),
        )

    def _start_task(
        self,
        job,
        titles: tuple[str, str],
        finished,
        failure: tuple[str, str],
        cancelled: str = "Cancelled",
    ) -> bool:
        """Run ``job(callback, cancel)`` (not a generation) in a worker: the progress panel
        headed by ``titles`` (while running, after); ``finished(result)`` on success; on
        failure the panel says ``failure[0]`` and a dialog titled ``failure[1]`` the reason."""
        worker = TaskWorker(job, self)
        worker.progress.connect(self.progress_panel.update_progress)
        worker.finished.connect(finished)
        worker.cancelled.connect(lambda: self._job_ended(cancelled))
        worker.failed.connect(lambda message, details: self._task_failed(failure, message, details))
        self.worker = worker
        self.progress_panel.start(*titles)
        worker.start()
        self._update_actions()
        return True

    def _task_failed(self, failure: tuple[str, str], message: str, details: str) -> None:
        self._job_ended(failure[0])
        dialogs.error(self, failure[1], message, details)

    def _job_ended(self, text: str) -> None:
        """A worker that is not a generation (an export, a search) ended: ``text`` says how."""
        self._release_worker()
        self.progress_panel.stop(text)
        self.statusBar().showMessage(text, 10000)
        self._update_actions()

    def _regions_found(self, entries: list, masks: list) -> None:
        from engine.text.motion import parse_motion

        self._job_ended(f"Found {len(masks)} region{'s' if len(masks) != 1 else ''}")
        stack = self.model.undo_stack
        stack.beginMacro("Find regions from text")
        try:
            for (name, prompt), mask in zip(entries, masks):
                i = self.model.add_layer(name)
                self.model.paint_mask(i, mask)
                words = parse_motion(prompt).decided() if prompt else {}
                self.model.set_params(i, prompt=prompt or name, **words)
        except InputError as e:  # a name or prompt the regions refuse: none are added
            stack.endMacro()
            stack.undo()
            dialogs.error(self, "Cannot add the regions found", str(e))
            return
        stack.endMacro()
        self.tabs.setCurrentWidget(self.canvas)

    def start_generation(self) -> bool:
        """Generate from the painted regions with the panel's settings (in a worker)."""
        if self._running():
            return False
        if self.pano is None:
            dialogs.error(self, "Nothing to generate", "Open a panorama first (Ctrl+O).")
            return False
        regions = self.model.to_regions()
        if not regions:
            dialogs.error(
                self,
                "Nothing to animate",
                "Paint at least one region (the parts that should move) before generating.",
            )
            return False
        settings = self.generate_panel.settings()
        try:
            cfg = settings.to_config()
        except Exception as e:
            dialogs.error(self, "Cannot generate", *dialogs.describe(e))
            return False
        if not self._ensure_project():
            return False
        run_dir, out = self._work_dirs()
        panorama = Path(self.pano.path).absolute()
        self.generation = {
            "status": "running",
            "out": str(out),
            "panorama": str(panorama),
            "regions": str(run_dir / "regions.json"),
            "settings": settings.to_json(),
        }
        prepare = lambda: write_run_inputs(run_dir, panorama, regions)  # noqa: E731
        return self._run_generation(cfg, resume=False, prepare=prepare)

    def resume_generation(self) -> bool:
        """Continue the interrupted run recorded in :attr:`generation` from its checkpoints."""
        g = self.generation
        if self._running() or g is None:
            return False
        try:
            cfg = GenerateSettings.from_json(g["settings"]).to_config()
        except Exception as e:
            dialogs.error(self, "Cannot resume", *dialogs.describe(e))
            return False
        g["status"] = "running"
        return self._run_generation(cfg, resume=True)

    def _stage_key(self, preset: str) -> str:
        size = f"{self.pano.width}x{self.pano.height}" if self.pano is not None else "none"
        return f"stage_seconds/{preset}/{size}"

    def _stage_seconds(self, preset: str) -> dict[str, float] | None:
        """How long each stage took on the last full run of ``preset`` at this size here."""
        try:
            value = json.loads(str(self.qsettings.value(self._stage_key(preset), "")))
            return {str(k): float(v) for k, v in value.items()}
        except (ValueError, TypeError, AttributeError):
            return None

    def _remember_stage_seconds(self, report: dict) -> None:
        """Keep a finished run's stage times (not a resumed one's: some stages were skipped)."""
        timings = report.get("timings_s")
        if not isinstance(timings, dict) or self.worker.job.resume:
            return
        preset = GenerateSettings.from_json(self.generation["settings"]).preset
        self.qsettings.setValue(self._stage_key(preset), json.dumps(timings))

    def _run_generation(self, cfg, *, resume: bool, prepare=None) -> bool:
        from engine.config import Inputs
        from engine.pipeline import stage_spans

        g = self.generation
        inputs = Inputs(panorama=Path(g["panorama"]), regions=Path(g["regions"]))
        snapshot = self._project_snapshot()  # the project as it is now, "running" recorded
        saves, edits = self._saves, self._edits
        self._run_saved = None

        def write_inputs_and_project() -> None:  # in the worker: PNG encoding and fsyncs
            if prepare is not None:
                prepare()
            if snapshot is None:
                return
            # unless the UI saved (newer work) since the snapshot
            if save_project(**snapshot, unless=lambda: self._saves != saves) is not None:
                self._run_saved = edits  # read on the UI thread by _sync_dirty

        job = GenerateJob(
            inputs, cfg, Path(g["out"]), resume=resume, prepare=write_inputs_and_project
        )
        # ``dirty`` stays: the worker saves the snapshot, and may fail (see _sync_dirty)
        worker = GenerateWorker(job, self)
        worker.progress.connect(self.progress_panel.update_progress)
        worker.progress.connect(lambda *_: self._sync_dirty())
        worker.finished.connect(self._generation_finished)
        worker.cancelled.connect(lambda: self._generation_ended("cancelled", "Cancelled"))
        worker.failed.connect(self._generation_failed)
        self.worker = worker
        self.progress_panel.start(
            "Resuming…" if resume else f"Generating ({cfg.preset})",
            f"Last generation ({cfg.preset})",
            StageEstimate(stage_spans(), self._stage_seconds(cfg.preset)),
        )
        worker.start()
        self._update_actions()
        return True

    def _record_run_end(self) -> None:
        """Write how a generate run ended into the project (the window is closing)."""
        g, w = self.generation, self.worker
        if isinstance(w, GenerateWorker) and g and g.get("status") == "running" and w.outcome:
            g["status"] = "done" if w.outcome == "finished" else w.outcome
            if w.outcome == "finished":
                self.result_dir = Path(g["out"])
            self._quiet_save()

    def cancel_job(self) -> None:
        if self._running():
            self.worker.cancel()
            self.statusBar().showMessage("Cancelling…")

    def _release_worker(self) -> None:
        """Free what a finished worker holds (its function's closure: scenes, masks) and the
        worker itself; its outcome stays readable."""
        w = self.worker
        if w is not None and not w.released and w.wait(10000):
            w.release()
            w.deleteLater()

    def _generation_ended(self, status: str, text: str) -> None:
        self._release_worker()
        if self.generation is not None:
            self.generation["status"] = status
        self.progress_panel.stop(text)
        self.statusBar().showMessage(text, 10000)
        self._quiet_save()
        self._update_actions()

    def _generation_failed(self, message: str, details: str) -> None:
        self._generation_ended("failed", "Failed")
        dialogs.error(self, "Generation failed", message, details)

    def _generation_finished(self, report: dict) -> None:
        self.last_report = report
        self._remember_stage_seconds(report)
        out = Path(self.generation["out"])
        self.result_dir = out
        took = clock(self.progress_panel.elapsed())
        self._generation_ended("done", f"Finished in {took}")
        if self.open_scene_path(out):
            self.viewer.set_before_image(self.pano.rgb if self.pano is not None else None)
        self.statusBar().showMessage(
            f"Scene ready: {report.get('gaussians_static', 0)} static + "
            f"{report.get('gaussians_dynamic_per_frame', 0)} × {report.get('frames', 0)} "
            f"dynamic Gaussians, {db_text(report.get('psnr_native'), 1)} at the input's "
            f"own resolution, {db_text(report.get('psnr_headset'), 1)} magnified as a "
            "headset shows it",
            15000,
        )

    # ------------------------------------------------------------------ result

    def _toggle_before(self) -> None:
        if not self.viewer.before_button.isHidden():  # hidden: no before image (not: other tab)
            self.tabs.setCurrentIndex(1)
            self.viewer.set_before(not self.viewer.showing_before)

    # ------------------------------------------------------------------ recent, drop, close

    def _last_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def recent_files(self) -> list[str]:
        value = self.qsettings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        p = str(Path(path).absolute())
        items = [p] + [r for r in self.recent_files() if r != p]
        self.qsettings.setValue("recent", items[:MAX_RECENT])
        self.qsettings.sync()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for i, p in enumerate(self.recent_files()):
            act = self.recent_menu.addAction(f"&{i + 1} {dialogs.short_path(p)}")
            act.triggered.connect(lambda _=False, p=p: self.open_any_path(p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def open_any_path(self, path: str | os.PathLike[str]) -> bool:
        """A dropped or recent path: a project, a scene or a panorama."""
        p = Path(path)
        if p.suffix == SUFFIX or (p / "project.json").is_file():
            return self.open_project(p)
        if p.is_dir() or dialogs.is_splat_file(p):
            return self.open_scene_path(p)
        return self.open_panorama(p)

    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls() and any(u.isLocalFile() for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dropEvent(self, e) -> None:
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if paths:
            e.acceptProposedAction()
            self.open_any_path(paths[0])

    def open_batch_window(self):
        """Show the Batch window (one per main window); its done jobs open in Result."""
        from .batch_window import BatchWindow

        if self.batch_window is None:
            self.batch_window = BatchWindow(self.qsettings, self)
            self.batch_window.openResult.connect(self._open_batch_result)
        self.batch_window.show()
        self.batch_window.raise_()
        self.batch_window.activateWindow()
        return self.batch_window

    def _open_batch_result(self, folder: str) -> None:
        if self.open_scene_path(folder):
            self.raise_()
            self.activateWindow()

    def closeEvent(self, e) -> None:
        batch = self.batch_window
        if batch is not None and batch.running() and not batch.close():  # it asks first
            e.ignore()
            return
        if self._running():
            if not self._quitting:
                answer = dialogs.ask(
                    self,
                    "Quit Pano4D?",
                    "A job is running. Cancel it and quit? (A generation can be resumed "
                    "later from its project.)",
                    ["Cancel job and quit", "Keep working"],
                )
                if answer != "Cancel job and quit" or not self.maybe_save():
                    e.ignore()
                    return
                self._quitting = True
                self.worker.cancel()
                for signal in (self.worker.cancelled, self.worker.finished, self.worker.failed):
                    signal.connect(lambda *_: QTimer.singleShot(0, self.close))
            if not self.worker.wait(2000):
                # the engine stops at its next progress check: quit then (close again)
                self.hide()
                e.ignore()
                return
            self._record_run_end()  # its queued end signal may never be delivered now
        elif not self._quitting and not self.maybe_save():
            e.ignore()
            return
        self.autosave_timer.stop()
        self.motion_preview.shutdown()
        QApplication.instance().removeEventFilter(self.shortcut_router)
        self.viewer.shutdown()
        self.closed = True
        super().closeEvent(e)
