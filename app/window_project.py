"""The main window's projects: open (relinking a moved panorama), save, save as, autosave,
and the outputs that follow a project when it moves.

A part of :class:`app.main_window.MainWindow`, which it expects to provide the panorama
and project state (``pano``, ``project``, ``result_dir``, ``generation``, ``dirty``, ...),
its widgets (``model``, ``generate_panel``, ``viewer``, ``tabs``) and its helpers
(``_show_panorama``, ``open_scene_path``, ``_add_recent``, ``_running``, ...).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.io import load_panorama, load_regions

from . import dialogs
from .project import (
    RESULT_DIR,
    SUFFIX,
    PanoramaMissing,
    adopt_outputs,
    load_project,
    project_folder,
    save_project,
)

__all__ = ["ProjectActions"]


class ProjectActions:
    """Open, save and autosave projects (a mixin of the main window)."""

    def open_project_dialog(self) -> None:
        path = dialogs.pick_folder(self, "Open project (a .pano4dproj folder)", self._last_dir())
        if path:
            self.open_project(path)

    def open_project(self, path: str | os.PathLike[str], *, ask: bool = True) -> bool:
        if self._busy_refusal() or (ask and not self.maybe_save()):
            return False
        relinked = None
        try:  # everything read and checked before any state is replaced
            try:
                data = load_project(path)
            except PanoramaMissing as e:  # offer to point the project at where it is now
                relinked = self._locate_panorama(e)
                if relinked is None:
                    return False
                data = load_project(path, panorama=relinked)
            pano = load_panorama(data.panorama)
            size = (pano.height, pano.width)
            regions = load_regions(data.regions_file, size) if data.regions_file else []
        except Exception as e:
            dialogs.error(self, "Cannot open project", *dialogs.describe(e))
            return False
        self._show_panorama(pano)
        self.result_dir = None  # the previous project's; this one's is opened below
        self.last_report = None
        if regions:
            self.model.set_regions(regions)
            self.model.undo_stack.clear()
        self.generate_panel.set_settings(data.settings)
        self.project = data
        self.auto_project = data.folder.resolve().parent == self.runs_dir.resolve()
        self.copy_panorama = data.copied
        self.copy_action.setChecked(data.copied)
        self.generation = data.generation
        self.dirty = relinked is not None  # saving records the panorama's new place
        self._add_recent(data.folder)
        if data.result is not None and (data.result / "scene" / "manifest.json").is_file():
            self.open_scene_path(data.result)
            self.tabs.setCurrentIndex(0)
        elif data.result is not None:
            missing = f"This project's result {data.result} is missing (moved or deleted?)."
            self.viewer.set_empty_text(f"{missing}\n\nPress Generate (Ctrl+G) to make it again.")
            self.statusBar().showMessage(missing, 15000)
        self._update_title()
        self._update_actions()
        if data.resumable():
            answer = dialogs.ask(
                self,
                "Resume generation?",
                "The last generation of this project was interrupted. Resume it from its "
                "checkpoints?",
                ["Resume", "Not now"],
            )
            if answer == "Resume":
                self.resume_generation()
        return True

    def _locate_panorama(self, missing: PanoramaMissing) -> str | None:
        """Ask where a project's moved panorama is now; None when the user does not say."""
        answer = dialogs.ask(
            self,
            "Panorama not found",
            f"{missing}\n\nLocate it to open the project with its regions and settings.",
            ["Locate…", "Cancel"],
        )
        if answer != "Locate…":
            return None
        start = str(missing.path.parent if missing.path.parent.is_dir() else self._last_dir())
        return dialogs.open_file(self, "Locate the panorama", dialogs.IMAGE_FILTER, start)

    def _toggle_copy(self, on: bool) -> None:
        self.copy_panorama = bool(on)
        self._mark_dirty()

    def save(self) -> bool:
        if self.project is None or self.auto_project:
            return self.save_as()
        return self.save_project_to(self.project.folder)

    def save_as(self) -> bool:
        if self.pano is None:
            return False
        start = str(Path(self._last_dir()) / (Path(self.pano.path or "untitled").stem + SUFFIX))
        path = dialogs.save_file(self, "Save project", f"Pano4D project (*{SUFFIX})", start)
        if not path:
            return False
        return self.save_project_to(path)

    def save_project_to(self, path: str | os.PathLike[str], *, quiet: bool = False) -> bool:
        """Write the project (crash-safe); errors: a dialog (``quiet``: the status bar)."""
        if self.pano is None:
            return False
        folder = project_folder(path)
        previous = self.project.folder if self.project is not None else None
        moving = previous is not None and previous.absolute() != folder.absolute()
        scratch = self._scratch_of_outputs(folder)
        # the outputs come along when the project moves, and from the app's scratch project
        # (never while a job writes them: the next save after it brings them)
        adopt = (moving or scratch is not None) and not self._running()
        self._saves += 1  # before saving: a generate worker's older snapshot must not follow
        try:
            if adopt:
                result, generation = self._adopt_outputs(folder)
            else:
                result, generation = self.result_dir, self.generation
            if result is None and (folder / RESULT_DIR / "scene").is_dir():
                result = folder / RESULT_DIR
            self.project = save_project(
                folder,
                panorama=Path(self.pano.path),
                regions=self.model.to_regions(),
                settings=self.generate_panel.settings(),
                copy_panorama=self.copy_panorama,
                result=result,
                generation=generation,
            )
        except Exception as e:
            if quiet:
                self.statusBar().showMessage(f"Autosave failed: {dialogs.describe(e)[0]}", 10000)
            else:
                dialogs.error(self, "Cannot save project", *dialogs.describe(e))
            return False
        self._follow_outputs(result, generation)
        if adopt and scratch is not None:
            self._discard_auto_project(scratch)
        elif moving and self._running():
            self.statusBar().showMessage(
                "Saved; the running generation's result joins the project when it ends", 10000
            )
        if Path(self.pano.path or "") != self.project.panorama:  # the copy, or its original
            self.pano = dataclasses.replace(self.pano, path=str(self.project.panorama))
            self.size_label.setToolTip(f"{self.pano.path}\n{self.pano.source}")
        self.dirty = False
        self.auto_project = False
        self._add_recent(folder)
        self._update_title()
        self.statusBar().showMessage(f"Saved {folder.name}", 3000)
        return True

    def _adopt_outputs(self, folder: Path) -> tuple[Path | None, dict | None]:
        """The result and run record to save into ``folder``, copied into it when they live
        elsewhere (:func:`app.project.adopt_outputs`; a wait cursor while it copies)."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            return adopt_outputs(folder, self.result_dir, self.generation)
        finally:
            QApplication.restoreOverrideCursor()

    def _follow_outputs(self, result: Path | None, generation: dict | None) -> None:
        """After a save that copied the outputs: the window shows and names the copies."""
        if generation is not None:
            self.generation = generation
        if result is None or self.result_dir is None or result == self.result_dir:
            return
        shown = self.scene_path is not None and self.scene_path.parent == self.result_dir
        self.result_dir = result
        if shown:  # reopen from the copy (the viewer may read frames from disk later)
            tab = self.tabs.currentIndex()
            self.open_scene_path(result)
            self.tabs.setCurrentIndex(tab)

    def _scratch_of_outputs(self, folder: Path) -> Path | None:
        """The project in the app's data folder (other than ``folder``) that holds the
        current result or run, if any: its outputs are the app's to move."""
        g = self.generation or {}
        runs, target = self.runs_dir.resolve(), folder.resolve()
        for p in (self.result_dir, g.get("out")):
            if p is None:
                continue
            q = Path(p).resolve()
            for parent in q.parents:
                if parent.parent == runs and parent != target:
                    return parent
        return None

    def _discard_auto_project(self, folder: Path) -> None:
        """Remove the project the app made in its data folder once it has been saved
        elsewhere with everything it held (kept when anything still names it)."""
        if folder.resolve().parent != self.runs_dir.resolve():
            return
        p, g = self.project, self.project.generation or {}
        named = [p.panorama, p.regions_file, p.result, *(g.get(k) for k in ("out", "regions"))]
        named.append(g.get("panorama"))
        old = folder.resolve()
        if any(n and Path(n).resolve().is_relative_to(old) for n in named):
            return  # something the saved project names is still in there
        shutil.rmtree(folder, ignore_errors=True)
        items = [r for r in self.recent_files() if Path(r) != folder.absolute()]
        self.qsettings.setValue("recent", items)

    def autosave(self) -> None:
        """The timer's save: only a project that has a folder and unsaved changes."""
        self._sync_dirty()
        if self.project is not None and self.dirty:
            self._quiet_save()

    def _project_snapshot(self) -> dict | None:
        """Arguments of :func:`app.project.save_project` for the current state (copies: a
        worker thread writes them while the user keeps painting)."""
        if self.project is None or self.pano is None:
            return None
        return {
            "folder": self.project.folder,
            "panorama": Path(self.pano.path),
            "regions": self.model.to_regions(),
            "settings": self.generate_panel.settings(),
            "copy_panorama": self.copy_panorama,
            "result": self.result_dir,
            "generation": dict(self.generation) if self.generation else None,
        }

    def _quiet_save(self) -> None:
        """Save the current project where it is (autosave, run state); errors to the status
        bar. A project the app made itself stays one (Save still asks where)."""
        if self.project is None:
            return
        auto = self.auto_project
        self.save_project_to(self.project.folder, quiet=True)
        self.auto_project = auto

    def maybe_save(self) -> bool:
        """Before replacing or closing the work: True to go on."""
        self._sync_dirty()
        if not self.dirty or self.pano is None:
            return True
        what = self.project.folder.name if self.project else Path(self.pano.path or "").name
        answer = dialogs.ask_save_changes(self, what)
        if answer == "save":
            return self.save()
        return answer == "discard"
