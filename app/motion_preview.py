"""Motion preview on the canvas: while it is on, a low-resolution animation of the painted
regions by the weightless flow animator (:func:`engine.animate.preview.preview_motion`,
about a second) plays in place of the panorama, and every edit starts a new one after a
short pause, so a mask that caught the wrong pixels shows before Generate.

:class:`MotionPreview` runs each preview in a :class:`app.worker.TaskWorker`; a newer edit
cancels the one in flight, and only the newest result is shown.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from engine.animate import FlowConfig
from engine.animate.preview import preview_motion
from engine.progress import Progress

from .canvas import PaintCanvas
from .regions_model import RegionsModel
from .worker import TaskWorker

__all__ = ["DEBOUNCE_MS", "MotionPreview"]

DEBOUNCE_MS = 350  # after the last edit


class MotionPreview(QObject):
    """See the module doc. ``flow_config()``: the run's flow settings (frames, fps, …).
    ``shown(count)``: a new preview is playing (count: previews shown so far);
    ``message(text)``: what the user should know (nothing painted, a failure)."""

    shown = Signal(int)
    message = Signal(str)

    def __init__(
        self,
        model: RegionsModel,
        canvas: PaintCanvas,
        flow_config: Callable[[], FlowConfig],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.model, self.canvas, self.flow_config = model, canvas, flow_config
        self.active = False
        self.count = 0
        self.video = None  # the PanoVideo playing
        self._current: TaskWorker | None = None
        self._workers: list[TaskWorker] = []  # running or not yet deleted
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        model.changed.connect(self.schedule)

    def set_active(self, on: bool) -> None:
        self.active = bool(on)
        if self.active:
            self._start()
        else:
            self._timer.stop()
            self._cancel()
            self.video = None
            self.canvas.set_motion_preview(None)

    def schedule(self) -> None:
        """An edit: preview again once the edits pause."""
        if self.active:
            self._cancel()  # what it would show is already out of date
            self._timer.start()

    def _cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()
        self._current = None

    def _start(self) -> None:
        self._cancel()
        rgb = self.canvas.panorama
        regions = [r for r in self.model.to_regions() if r.mask.any()]
        if rgb is None or not regions:
            self.video = None
            self.canvas.set_motion_preview(None)
            self.message.emit("Motion preview: paint a region to see it move")
            return
        flow = self.flow_config()

        def job(callback, cancel):
            progress = Progress("preview", callback, cancel)
            return preview_motion(rgb, regions, flow, progress=progress)

        worker = TaskWorker(job, self)
        worker.finished.connect(lambda video, w=worker: self._finished(w, video))
        worker.failed.connect(lambda text, _d, w=worker: self._failed(w, text))
        for sig in (worker.finished, worker.failed, worker.cancelled):
            sig.connect(lambda *_a, w=worker: self._ended(w))
        self._current = worker
        self._workers.append(worker)
        worker.start()

    def _finished(self, worker: TaskWorker, video) -> None:
        if worker is not self._current or not self.active:
            return
        self._current = None
        self.video = video
        self.count += 1
        h, w = video.frames.shape[1:3]
        note = f"Motion preview, {w} × {h} px, {video.n_frames} frames (flow animator)"
        self.canvas.set_motion_preview(video.frames, video.fps, note)
        self.shown.emit(self.count)

    def _failed(self, worker: TaskWorker, text: str) -> None:
        if worker is self._current:
            self._current = None
            self.message.emit(f"Motion preview failed: {text}")

    def _ended(self, worker: TaskWorker) -> None:
        if worker in self._workers and worker.wait(1000):
            self._workers.remove(worker)
            worker.release()
            worker.deleteLater()

    def shutdown(self) -> None:
        """Stop and wait for the workers (the window is closing)."""
        self.set_active(False)
        for w in list(self._workers):
            w.cancel()
            w.wait(10000)
