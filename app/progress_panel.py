"""The progress panel of a running job: stage, percent bar, message, elapsed and estimated
time left, and Cancel (Esc).

Feed it the worker's ``progress(stage, fraction, message)`` signal; a 250 ms timer keeps the
elapsed time ticking between reports. A generate run passes a
:class:`engine.progress.StageEstimate`: the bar then shows the share of the expected time
done and the estimate comes from measured stage rates (and the stage times of the last
similar run). Other jobs (exports) use the average rate so far (``elapsed * (1 - f) / f``),
shown once 2 % is done and at least 2 s passed.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from engine.progress import StageEstimate, clock, estimate_remaining

__all__ = ["ProgressPanel", "clock", "estimate_remaining"]

STAGE_NAMES = {
    "load": "Loading",
    "animate": "Animating",
    "depth": "Estimating depth",
    "lift": "Lifting to Gaussians",
    "save": "Writing results",
    "export": "Exporting",
    "segment": "Finding regions",
    "text": "Making the panorama",
}


class ProgressPanel(QWidget):
    """Shows one job at a time: :meth:`start`, :meth:`update_progress`, :meth:`stop`."""

    cancelRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("", self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.stage_label = QLabel("Idle", self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setFormat("%p%")
        self.message_label = QLabel("", self)
        self.elapsed_label = QLabel("", self)
        self.eta_label = QLabel("", self)
        # Text changes must not change any size: a relayout of the dock resizes the central
        # canvas and repaints the whole window, many times a second while a job reports.
        for label in (
            self.title,
            self.stage_label,
            self.message_label,
            self.elapsed_label,
            self.eta_label,
        ):
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
            label.setMinimumWidth(0)
        self.cancel_button = QPushButton("Cancelling…", self)
        self.cancel_button.setMinimumWidth(self.cancel_button.sizeHint().width())
        self.cancel_button.setToolTip("Stop the running job (Esc)")  # the window's action
        self.cancel_button.clicked.connect(self._on_cancel)
        lay = QGridLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.title, 0, 0, 1, 2)
        lay.addWidget(self.stage_label, 1, 0, 1, 2)
        lay.addWidget(self.bar, 2, 0, 1, 2)
        lay.addWidget(self.message_label, 3, 0, 1, 2)
        lay.addWidget(self.elapsed_label, 4, 0)
        lay.addWidget(self.eta_label, 4, 1)
        lay.addWidget(self.cancel_button, 5, 0, 1, 2)
        self.fraction = 0.0
        self.stage = ""
        self.message = ""
        self.running = False
        self._t0 = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._refresh)
        self._pending = False
        self._done_title = ""
        self.estimate: StageEstimate | None = None
        self.stop("")

    def start(
        self, title: str, done_title: str = "Last job", estimate: StageEstimate | None = None
    ) -> None:
        """A job begins: ``title`` heads the panel while it runs, ``done_title`` after;
        ``estimate``: the run's stages (see the module doc)."""
        self.running = True
        self.estimate = estimate
        self._done_title = done_title
        self.fraction, self.stage, self.message = 0.0, "", ""
        self._pending = False
        self._t0 = time.monotonic()
        self.title.setText(title)
        self.stage_label.setText("Starting…")
        self._set_message("")
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Cancel")
        self._refresh_times()
        self._timer.start()
        self.show()

    def update_progress(self, stage: str, fraction: float, message: str) -> None:
        """Record a report; the widgets show it at the next refresh (at most 4 per second,
        at once for a new stage): ``QProgressBar.setValue`` repaints synchronously, and in a
        window holding an OpenGL widget every repaint composites the whole window (tens of
        ms on a software renderer) — at the worker's report rate that starves the UI."""
        if not self.running:
            return
        new_stage = stage != self.stage
        fraction = max(0.0, min(1.0, float(fraction)))
        if self.estimate is not None:
            self.estimate.update(stage, fraction)
            fraction = self.estimate.fraction()
        self.stage, self.fraction = stage, fraction
        self.message = message
        self._pending = True
        if new_stage:
            self._refresh()

    def _refresh(self) -> None:
        if self._pending:
            self._pending = False
            name = STAGE_NAMES.get(self.stage, self.stage.capitalize())
            self.stage_label.setText(f"{name} — {100 * self.fraction:.0f}%")
            self.bar.setValue(round(1000 * self.fraction))
            self._set_message(self.message)
        self._refresh_times()

    def _set_message(self, text: str) -> None:
        metrics = self.message_label.fontMetrics()
        width = max(40, self.message_label.width())
        self.message_label.setText(metrics.elidedText(text, Qt.ElideRight, width))
        self.message_label.setToolTip(text)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _refresh_times(self) -> None:
        el = self.elapsed()
        self.elapsed_label.setText(f"Elapsed {clock(el)}")
        if self.estimate is not None:
            left = self.estimate.remaining()
        else:
            left = estimate_remaining(el, self.fraction)
        self.eta_label.setText(
            "Estimating time left…" if left is None else f"About {clock(left)} left"
        )

    def _on_cancel(self) -> None:
        if self.running:
            self.cancel_button.setEnabled(False)
            self.cancel_button.setText("Cancelling…")
            self.cancelRequested.emit()

    def stop(self, text: str) -> None:
        """The job ended: ``text`` says how (finished, cancelled, failed)."""
        self.running = False
        self._timer.stop()
        if self._pending and text:
            self._refresh()  # the last report, then the outcome
        self.stage_label.setText(text or "Idle")
        if text:
            self.title.setText(self._done_title)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        if not text:
            self.eta_label.setText("")
            self.elapsed_label.setText("")
        else:
            self.eta_label.setText("")
            self.elapsed_label.setText(f"Took {clock(self.elapsed())}")
