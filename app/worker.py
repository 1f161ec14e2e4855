"""Long work off the UI thread: :class:`GenerateWorker` runs :func:`engine.pipeline.run`, and
:class:`TaskWorker` any other long function (exports), each in its own ``QThread`` with a
:class:`engine.progress.CancelToken`.

The function does the work; the worker only wraps it: progress callbacks become the
``progress(stage, fraction, message)`` signal (throttled to ~20 per second, stage changes
and the end always delivered), a normal return ``finished(result)``,
:class:`engine.errors.Cancelled` ``cancelled()``, and any other exception
``failed(message, details)`` — an :class:`~engine.errors.InputError` with its one line, an
unexpected error as ``Type: text`` with the traceback in ``details``. Exactly one of the
three end signals is emitted per run. :meth:`cancel` sets the token; the engine checks it at
every progress report (at least once a second).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from engine.errors import Cancelled
from engine.progress import CancelToken

from .dialogs import describe

__all__ = ["GenerateJob", "GenerateWorker", "TaskWorker"]

PROGRESS_INTERVAL_S = 0.05


class _Runner(QThread):
    def __init__(self, body: Callable[[], None], parent=None) -> None:
        super().__init__(parent)
        self._body = body

    def run(self) -> None:
        self._body()


class TaskWorker(QObject):
    """Runs ``fn(callback, cancel)`` in a ``QThread``; see the module doc for the signals.

    One worker runs once: :meth:`start`, then exactly one of ``finished(result)``,
    ``failed(message, details)`` or ``cancelled()``."""

    progress = Signal(str, float, str)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(
        self, fn: Callable[[Callable[[str, float, str], None], CancelToken], Any], parent=None
    ) -> None:
        super().__init__(parent)
        self._fn = fn
        self.cancel_token = CancelToken()
        self.result: Any = None
        self.error: tuple[str, str] | None = None
        self.outcome: str | None = None  # "finished" | "failed" | "cancelled"
        self._last_emit = 0.0
        self._last_stage = ""
        self._lock = threading.Lock()
        self._released = False
        self._thread = _Runner(self._run, self)

    def start(self) -> None:
        self._thread.start()

    def is_running(self) -> bool:
        return not self._released and self._thread.isRunning()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the thread ends (True) or ``timeout_ms`` passed (False)."""
        return self._released or bool(self._thread.wait(timeout_ms))

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """After the run ended (:meth:`wait` returned True): drop the function (its closure
        may hold scenes and masks) so that the worker can be deleted (``deleteLater``);
        :attr:`outcome`, :attr:`error`, :meth:`is_running` and :meth:`wait` still answer."""
        self._released = True
        self._fn = None

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def _report(self, stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            due = (
                stage != self._last_stage
                or fraction >= 1.0
                or now - self._last_emit >= PROGRESS_INTERVAL_S
            )
            if not due:
                return
            self._last_emit, self._last_stage = now, stage
        self.progress.emit(stage, float(fraction), str(message))

    def _run(self) -> None:  # in the thread
        try:
            self.result = self._fn(self._report, self.cancel_token)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except Exception as e:  # every failure becomes a dialog, never a crash
            self.error = describe(e)
            self.outcome = "failed"
            self.failed.emit(*self.error)
        else:
            self.outcome = "finished"
            self.finished.emit(self.result)


@dataclass(frozen=True)
class GenerateJob:
    """One generate run: the pipeline's inputs, config and output folder."""

    inputs: Any  # engine.config.Inputs
    config: Any  # engine.config.GenerateConfig
    out: Path
    resume: bool = False
    # run first, in the thread: writes the input files the pipeline reads (the region file;
    # its atomic writes fsync, which can take a while on a busy disk)
    prepare: Callable[[], None] | None = None


class GenerateWorker(TaskWorker):
    """:func:`engine.pipeline.run` for one :class:`GenerateJob` in a ``QThread``.

    ``finished(report)`` carries the report dict the pipeline returns."""

    def __init__(self, job: GenerateJob, parent=None) -> None:
        super().__init__(self._generate, parent)
        self.job: GenerateJob | None = job

    def release(self) -> None:
        super().release()
        self.job = None  # its prepare closure holds the regions' full-resolution masks

    def _generate(self, callback, cancel: CancelToken) -> dict:
        from engine import pipeline

        j = self.job
        if j.prepare is not None:
            callback("load", 0.0, "writing the run's inputs")
            j.prepare()
        return pipeline.run(
            j.inputs, j.config, Path(j.out), callback=callback, cancel=cancel, resume=j.resume
        )
