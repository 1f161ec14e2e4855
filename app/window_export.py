"""The main window's exports of the shown scene: the native scene (copied when it is on
disk), a PLY sequence, the 360° MP4 and the preview video, each in a cancellable worker
with progress.

A part of :class:`app.main_window.MainWindow`, which it expects to provide ``viewer``,
``scene_path``, ``result_dir``, ``qsettings`` and the task helpers (``_start_task``,
``_job_ended``, ``_running``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from engine.errors import InputError

from . import dialogs

__all__ = ["EXPORTS", "ExportActions"]

EXPORTS = {
    "scene": "Native scene…",
    "ply": "PLY sequence…",
    "mp4": "360° MP4…",
    "preview": "Preview video…",
}


class ExportActions:
    """Export the shown scene (a mixin of the main window)."""

    def _result_file(self, name: str) -> Path | None:
        if self.result_dir is None:
            return None
        p = self.result_dir / name
        return p if p.is_file() else None

    def _export_dir(self) -> str:
        """Where export dialogs start: the last folder exported to, else the user's
        Documents (never the hidden data folder the runs live in)."""
        last = self.qsettings.value("last_export_dir", "")
        if last and Path(str(last)).is_dir():
            return str(last)
        docs = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
        return docs if docs and Path(docs).is_dir() else str(Path.home())

    def export_dialog(self, kind: str) -> None:
        start = self._export_dir()
        if kind == "ply":
            path = dialogs.pick_folder(self, "Export PLY sequence into folder", start)
        elif kind == "scene":
            path = dialogs.save_file(self, "Export native scene (a folder)", "Folders (*)", start)
        else:
            path = dialogs.save_file(self, "Export video", "MP4 video (*.mp4)", start)
            if path and not path.lower().endswith(".mp4"):
                path += ".mp4"
        if path:
            target = Path(path)
            folder = target if kind == "ply" else target.parent
            self.qsettings.setValue("last_export_dir", str(folder.absolute()))
            self.export_to(kind, path)

    def export_to(self, kind: str, path: str | os.PathLike[str]) -> bool:
        """Export the shown scene in a worker: ``scene`` (native folder), ``ply`` (PLY
        sequence into a folder), ``mp4`` (the 360° equirect video), ``preview`` (the
        look-around video; rendered when the result has none)."""
        scene = self.viewer.view.scene
        if scene is None or self._running():
            return False
        dest = Path(path)
        if kind in ("ply", "scene"):  # a picked folder holding the user's files: a subfolder
            from engine.splats import scene_folder, sequence_folder

            pick = sequence_folder if kind == "ply" else scene_folder
            try:
                dest = pick(dest, self._scene_name())
                self._outside_shown_scene(dest)
            except InputError as e:
                dialogs.error(self, "Cannot export", str(e))
                return False
        task = self._export_task(kind, scene, dest)
        if task is None:
            dialogs.error(self, "Cannot export", f"no {EXPORTS[kind].rstrip('…')} for this scene")
            return False
        what = EXPORTS[kind].rstrip("…")
        return self._start_task(
            task,
            (f"Exporting {what}", f"Last export: {what}"),
            lambda _r: self._job_ended(f"Exported to {dest}"),
            ("Export failed", "Export failed"),
            cancelled="Export cancelled",
        )

    def _outside_shown_scene(self, dest: Path) -> None:
        """InputError when ``dest`` is the shown scene's folder or inside it (replacing it
        would destroy what is being copied)."""
        if self.scene_path is None:
            return
        src, dest = self.scene_path.resolve(), dest.resolve()
        if dest == src or src in dest.parents:
            raise InputError(f"{dest} is the scene shown, or inside it; choose another folder")

    def _scene_name(self) -> str:
        """A name for the shown scene: its run folder's (``RUN/scene``), else its own."""
        p = self.scene_path
        if p is None:
            return "Pano4D scene"
        return p.parent.name if p.name == "scene" else p.name

    def _export_task(self, kind: str, scene, dest: Path):
        from engine.fsutil import atomic_dir, atomic_file, parents_made
        from engine.progress import Progress

        if kind == "ply":
            from engine.scene import export_ply_sequence

            return lambda cb, cancel: export_ply_sequence(
                scene, dest, progress=Progress("export", cb, cancel)
            )
        if kind == "scene":
            from engine.scene import save_scene

            scene_path = self.scene_path  # the shown scene's, as it is now

            def write_scene(cb, cancel):
                if scene_path is not None:
                    files = [f for f in scene_path.rglob("*") if f.is_file()]
                    done = iter(range(1, len(files) + 1))

                    def copy_one(src, dst):  # a Cancel stops between files, nothing kept
                        cancel.check()
                        shutil.copy2(src, dst)
                        cb("export", next(done, len(files)) / max(len(files), 1), "copying")

                    with atomic_dir(dest) as tmp:
                        shutil.copytree(scene_path, tmp, dirs_exist_ok=True, copy_function=copy_one)
                    return dest
                save_scene(scene, dest, half=True)
                return dest

            return write_scene
        source = self._result_file("panorama.mp4" if kind == "mp4" else "preview.mp4")
        if source is not None:

            def copy(cb, cancel):
                cb("export", 0.0, f"copying {source.name}")
                size = max(source.stat().st_size, 1)
                with (
                    parents_made(dest),
                    atomic_file(dest, suffix=".mp4") as tmp,
                    open(source, "rb") as src,
                    open(tmp, "wb") as dst,
                ):
                    while chunk := src.read(8 << 20):  # a Cancel stops between chunks
                        cancel.check()
                        dst.write(chunk)
                        cb("export", dst.tell() / size, f"copying {source.name}")
                cb("export", 1.0, "done")
                return dest

            return copy
        if kind == "preview":
            from engine.config import OutputConfig
            from engine.pipeline import preview_frames
            from engine.video import write_mp4

            def render(cb, cancel):
                with parents_made(dest):
                    frames = preview_frames(scene, OutputConfig(), Progress("export", cb, cancel))
                    return write_mp4(dest, frames, scene.fps)

            return render
        return None
