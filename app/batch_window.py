"""The Batch window (Generate > Batch…): the jobs of a job file (:mod:`engine.batch.jobs`) run
by :func:`engine.batch.run_batch` on this machine or a Ray cluster, as ``main.py batch`` does.

A table lists every job and its state (status, attempts, stage, progress, time, and the
result's PSNR or the one-line reason it failed), with the overall progress and the time left
above it. Choosing an output folder that holds an earlier batch shows that batch's state and
offers to resume it: finished jobs are kept, the others continue from their checkpoints.
Stop asks the jobs to stop at their next progress report, keeping their checkpoints. A done
job opens in the main window's Result tab (double-click, or Open Result).

:class:`BatchWorker` only wraps ``run_batch`` (a :class:`app.worker.TaskWorker`); every
state change reaches the window as a :class:`BatchSnapshot`.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.batch import BatchConfig, Job, load_jobs
from engine.batch.display import psnr_text, summary_text
from engine.batch.worker import LOG
from engine.progress import clock

from . import dialogs
from .progress_panel import STAGE_NAMES
from .worker import TaskWorker

__all__ = ["BatchSnapshot", "BatchWindow", "BatchWorker", "read_snapshot"]

COLUMNS = ("Job", "Status", "Attempts", "Stage", "Progress", "Time", "Details")
STATUS_TEXT = {
    "pending": "Waiting",
    "running": "Running",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Stopped",
}
STATUS_COLOUR = {"done": "#2e7d32", "failed": "#c62828", "running": "#1565c0"}
CLUSTERS = (
    ("This machine", "local"),
    ("Ray: join the running cluster, or start one here", "ray"),
    ("Ray cluster at an address", "ray:"),
)


@dataclass(frozen=True)
class BatchSnapshot:
    """A batch's state at one moment, for the window (made in the worker's thread)."""

    jobs: tuple[dict, ...]  # batch.json's job entries, in job-file order
    fraction: float  # share done of this run's work
    summary: str  # '2/5 done, 1 failed  3:12 elapsed, about 4:25 left'
    finished: bool = False


def snapshot(state, finished: bool = False) -> BatchSnapshot:
    """A :class:`BatchSnapshot` of an :class:`engine.batch.BatchState`."""
    jobs = tuple(dict(j) for j in sorted(state.jobs.values(), key=lambda j: j["index"]))
    return BatchSnapshot(jobs, state.fraction(), summary_text(state), finished)


def read_snapshot(folder: Path) -> tuple[BatchSnapshot, dict] | None:
    """The state an earlier batch left in ``folder/batch.json`` and that file's document;
    None when there is none (or it is not a batch status file)."""
    try:
        doc = json.loads((Path(folder) / "batch.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != "pano4d-batch-status":
        return None
    jobs = tuple(j for j in doc.get("jobs", []) if isinstance(j, dict) and "name" in j)
    total = len(jobs) or 1
    done = sum(j.get("status") == "done" for j in jobs)
    failed = sum(j.get("status") == "failed" for j in jobs)
    when = "finished" if doc.get("finished") else "stopped before the end"
    text = f"Earlier batch ({when}): {done}/{len(jobs)} done" + (
        f", {failed} failed" if failed else ""
    )
    return BatchSnapshot(jobs, done / total, text, finished=True), doc


class BatchWorker(TaskWorker):
    """:func:`engine.batch.run_batch` in a ``QThread``: ``changed(BatchSnapshot)`` a few times
    a second, ``finished(BatchSnapshot)`` at the end (also after Stop)."""

    changed = Signal(object)

    def __init__(
        self, jobs: list[Job], out: Path, cfg: BatchConfig, jobs_file: Path | None, parent=None
    ) -> None:
        super().__init__(self._batch, parent)
        self.jobs, self.out, self.cfg, self.jobs_file = jobs, Path(out), cfg, jobs_file

    def _batch(self, callback, cancel) -> BatchSnapshot:
        from engine.batch import run_batch

        state = run_batch(
            self.jobs,
            self.out,
            self.cfg,
            jobs_file=self.jobs_file,
            on_change=lambda s: self.changed.emit(snapshot(s)),
            cancel=cancel,
        )
        return snapshot(state, finished=True)


def has_ray() -> tuple[bool, str]:
    """(whether Ray can be used, why not)."""
    if importlib.util.find_spec("ray") is None:
        return False, "Ray is not installed (pip install 'ray[default]')"
    return True, ""


class _ProgressDelegate(QStyledItemDelegate):
    """Draws the Progress column's value (Qt.UserRole, 0..1) as a progress bar."""

    def paint(self, painter, option, index) -> None:
        value = index.data(Qt.UserRole)
        if value is None:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(1000 * float(value))
        bar.text = f"{100 * float(value):.0f}%"
        bar.textVisible = True
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.CE_ProgressBar, bar, painter, option.widget)


def _seconds(job: dict) -> float | None:
    if job.get("status") == "running" and job.get("started"):
        try:
            started = datetime.strptime(job["started"], "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None
        return max(0.0, time.time() - started.timestamp())
    return job.get("seconds")


def _details(job: dict) -> str:
    status = job.get("status")
    if status == "failed":
        return str(job.get("error") or "")
    if status == "done":
        return psnr_text(job.get("figures") or {})
    if status == "cancelled":
        return "stopped; its checkpoints are kept (Resume continues it)"
    return str(job.get("message") or "")


def row_texts(job: dict) -> list[str]:
    """The table's cells for one job (see :data:`COLUMNS`)."""
    status = job.get("status", "pending")
    stage = job.get("stage") if status == "running" else None
    seconds = _seconds(job)
    return [
        str(job.get("name", "")),
        STATUS_TEXT.get(status, status),
        str(job.get("attempts") or ""),
        STAGE_NAMES.get(stage, stage or "") if stage != "queued" else "Starting",
        f"{100 * float(job.get('fraction') or 0):.0f}%",
        clock(seconds) if seconds is not None else "",
        _details(job),
    ]


class BatchWindow(QMainWindow):
    """Runs a job file's jobs; see the module's docstring. ``openResult(folder)`` asks the
    main window to show a done job."""

    openResult = Signal(str)

    def __init__(self, settings: QSettings | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch — Pano4D")
        self.resize(980, 560)
        self.settings = settings or QSettings()
        self.jobs: list[Job] = []
        self.jobs_file: Path | None = None
        self.out: Path | None = None
        self.worker: BatchWorker | None = None
        self.rows: dict[str, int] = {}
        self.shown: dict[str, dict] = {}
        self._build()
        self._update_controls()

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        self.jobs_edit = QLineEdit(self, readOnly=True, placeholderText="a .json job file")
        self.jobs_button = QPushButton("Open Job File…", self, clicked=self.open_jobs_dialog)
        self.out_edit = QLineEdit(self, readOnly=True, placeholderText="where DIR/NAME/ go")
        self.out_button = QPushButton("Choose…", self, clicked=self.choose_out_dialog)
        self.cluster_combo = QComboBox(self)
        for text, key in CLUSTERS:
            self.cluster_combo.addItem(text, key)
        ok, why = has_ray()
        for i in (1, 2):
            self.cluster_combo.model().item(i).setEnabled(ok)
            self.cluster_combo.setItemData(i, why or None, Qt.ToolTipRole)
        self.address_edit = QLineEdit(self, placeholderText="HOST:6379")
        self.cluster_combo.currentIndexChanged.connect(self._update_controls)
        self.parallel_spin = QSpinBox(self, minimum=0, maximum=256, specialValueText="auto")
        self.parallel_spin.setToolTip(
            "Jobs at a time. auto: one on this machine (a job already uses every core); "
            "on Ray, as many as the cluster's CPUs and GPUs fit"
        )
        self.resume_check = QCheckBox(
            "Resume: keep finished jobs, continue the rest from their checkpoints", self
        )
        self.start_button = QPushButton("Start", self, clicked=self.start)
        self.stop_button = QPushButton("Stop", self, clicked=self.stop)
        self.open_button = QPushButton("Open Result", self, clicked=self.open_selected)
        self.log_button = QPushButton("Show Log", self, clicked=self.show_selected_log)
        self.folder_button = QPushButton("Open Folder", self, clicked=self.open_selected_folder)
        self.bar = QProgressBar(self, minimum=0, maximum=1000, textVisible=True)
        self.summary_label = QLabel("No job file open", self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setItemDelegateForColumn(COLUMNS.index("Progress"), _ProgressDelegate(self))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.Stretch)
        header.setMinimumSectionSize(60)
        self.table.itemSelectionChanged.connect(self._update_controls)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._activate(row))

        form = QFormLayout()
        form.addRow("Job file", self._pair(self.jobs_edit, self.jobs_button))
        form.addRow("Output folder", self._pair(self.out_edit, self.out_button))
        form.addRow("Run on", self._pair(self.cluster_combo, self.address_edit))
        form.addRow("Jobs at a time", self.parallel_spin)
        form.addRow("", self.resume_check)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        for b in (self.open_button, self.log_button, self.folder_button):
            buttons.addWidget(b)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.setCentralWidget(body)
        cluster = self.settings.value("batch/cluster", "local")
        index = self.cluster_combo.findData(cluster)
        if index >= 0 and self.cluster_combo.model().item(index).isEnabled():
            self.cluster_combo.setCurrentIndex(index)
        self.address_edit.setText(str(self.settings.value("batch/address", "")))

    def _pair(self, a: QWidget, b: QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(a, 1)
        row.addWidget(b)
        return row

    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _update_controls(self) -> None:
        busy = self.running()
        for w in (self.jobs_button, self.out_button, self.cluster_combo, self.parallel_spin):
            w.setEnabled(not busy)
        self.resume_check.setEnabled(not busy)
        self.address_edit.setEnabled(not busy and self.cluster_combo.currentData() == "ray:")
        self.start_button.setEnabled(not busy and bool(self.jobs) and self.out is not None)
        self.stop_button.setEnabled(busy and not self.worker.cancel_token.cancelled)
        job = self.selected_job()
        folder = self._job_folder(job)
        done = job is not None and job.get("status") == "done"
        self.open_button.setEnabled(done and folder is not None)
        self.log_button.setEnabled(folder is not None and (folder / LOG).is_file())
        self.folder_button.setEnabled(folder is not None and folder.is_dir())

    # ------------------------------------------------------------------ inputs

    def open_jobs_dialog(self) -> None:
        start = str(self.settings.value("batch/jobs_dir", ""))
        path = dialogs.open_file(self, "Open job file", "Job files (*.json);;All files (*)", start)
        if path:
            self.open_jobs(path)

    def open_jobs(self, path) -> bool:
        """Load and check job file ``path`` (an error dialog names the bad entry)."""
        path = Path(path).absolute()
        try:
            jobs = load_jobs(path)
        except Exception as e:  # InputError: which entry and why; others summarised
            dialogs.error(self, "Cannot open job file", *dialogs.describe(e))
            return False
        self.jobs, self.jobs_file = jobs, path
        self.jobs_edit.setText(str(path))
        self.settings.setValue("batch/jobs_dir", str(path.parent))
        if self.out is None:
            self.out = path.parent / f"{path.stem}_out"
            self.out_edit.setText(str(self.out))
        self._show_folder_state()
        return True

    def choose_out_dialog(self) -> None:
        start = str(self.out or self.settings.value("batch/out_dir", ""))
        path = dialogs.pick_folder(self, "Output folder for the batch", start)
        if path:
            self.set_out(path)

    def set_out(self, path) -> bool:
        """Use folder ``path``; an earlier batch there is shown, and offered for resuming."""
        path = Path(path).absolute()
        if path.exists() and not path.is_dir():
            dialogs.error(self, "Cannot use this output folder", f"{path} is not a folder")
            return False
        self.out = path
        self.out_edit.setText(str(path))
        self.settings.setValue("batch/out_dir", str(path.parent))
        earlier = read_snapshot(path)
        if not self.jobs and earlier is not None:
            jobs_file = earlier[1].get("jobs_file")
            if jobs_file and Path(jobs_file).is_file():
                return self.open_jobs(jobs_file)
        self._show_folder_state()
        return True

    def _show_folder_state(self) -> None:
        """The jobs as pending, merged with an earlier batch's state in the output folder."""
        earlier = read_snapshot(self.out) if self.out is not None else None
        before = {j["name"]: j for j in earlier[0].jobs} if earlier else {}
        jobs = tuple(
            before.get(j.name, {"name": j.name, "index": j.index, "status": "pending"})
            for j in self.jobs
        ) or (earlier[0].jobs if earlier else ())
        left = any(j.get("status") != "done" for j in jobs)
        self.resume_check.setChecked(bool(before) and left)
        if earlier:
            summary = earlier[0].summary + ("; Resume continues it" if left and self.jobs else "")
        else:
            summary = f"{len(self.jobs)} job(s), none run yet" if self.jobs else "No jobs"
        done = sum(j.get("status") == "done" for j in jobs)
        self.show_snapshot(BatchSnapshot(jobs, done / max(1, len(jobs)), summary, True))

    def config(self) -> BatchConfig:
        key = self.cluster_combo.currentData()
        if key == "ray:":
            key = f"ray:{self.address_edit.text().strip()}"
        parallel = self.parallel_spin.value() or None
        return BatchConfig(cluster=key, max_parallel=parallel, resume=self.resume_check.isChecked())

    # ------------------------------------------------------------------ running

    def start(self) -> bool:
        if self.running() or not self.jobs or self.out is None:
            return False
        if self.cluster_combo.currentData() == "ray:" and not self.address_edit.text().strip():
            dialogs.error(self, "Cannot start the batch", "Type the Ray cluster's address")
            return False
        earlier = read_snapshot(self.out)
        if not self.resume_check.isChecked() and earlier is not None:
            done = [j for j in earlier[0].jobs if j.get("status") == "done"]
            if done:
                answer = dialogs.ask(
                    self,
                    "Earlier batch in this folder",
                    f"{len(done)} job(s) here are already done. Resume (keep them and continue "
                    "the rest) or run every job again?",
                    ["Resume", "Run All Again", "Cancel"],
                )
                if answer in (None, "Cancel"):
                    return False
                self.resume_check.setChecked(answer == "Resume")
        cfg = self.config()
        self.settings.setValue("batch/cluster", self.cluster_combo.currentData())
        self.settings.setValue("batch/address", self.address_edit.text().strip())
        self.worker = BatchWorker(self.jobs, self.out, cfg, self.jobs_file, self)
        self.worker.changed.connect(self.show_snapshot)
        self.worker.finished.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.summary_label.setText("Starting…")
        self.worker.start()
        self._update_controls()
        return True

    def stop(self) -> None:
        """Ask the running jobs to stop (at their next progress report, checkpoints kept)."""
        if self.running():
            self.worker.cancel()
            self.summary_label.setText("Stopping: each job stops at its next progress report…")
            self._update_controls()

    def _finished(self, snap: BatchSnapshot) -> None:
        self._ended()
        self.show_snapshot(snap)
        stopped = any(j.get("status") == "cancelled" for j in snap.jobs)
        head = "Batch stopped" if stopped else "Batch finished"
        self.summary_label.setText(f"{head}: {snap.summary}")
        self.statusBar().showMessage(f"{head}; results in {self.out}", 10000)

    def _failed(self, message: str, details: str) -> None:
        self._ended()
        self.summary_label.setText(f"Batch failed: {message}")
        dialogs.error(self, "Batch failed", message, details)

    def _ended(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.wait()
            worker.release()
            worker.deleteLater()
        self._update_controls()

    def show_snapshot(self, snap: BatchSnapshot) -> None:
        """Fill the table and the overall bar from ``snap``."""
        names = [str(j.get("name")) for j in snap.jobs]
        if names != list(self.rows):
            self.table.setRowCount(len(names))
            self.rows = {n: i for i, n in enumerate(names)}
        self.shown = {str(j.get("name")): j for j in snap.jobs}
        for job in snap.jobs:
            self._fill_row(self.rows[str(job.get("name"))], job)
        self.bar.setValue(int(1000 * snap.fraction))
        self.summary_label.setText(snap.summary)
        self._update_controls()

    def _fill_row(self, row: int, job: dict) -> None:
        status = job.get("status", "pending")
        for col, text in enumerate(row_texts(job)):
            item = self.table.item(row, col)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, col, item)
            item.setText(text)
            if COLUMNS[col] == "Progress":
                item.setData(Qt.UserRole, float(job.get("fraction") or 0))
            if COLUMNS[col] == "Status":
                colour = STATUS_COLOUR.get(status)
                item.setForeground(QColor(colour) if colour else self.palette().text())
            if COLUMNS[col] == "Details":
                item.setToolTip(text)

    # ------------------------------------------------------------------ results

    def selected_job(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        name = self.table.item(rows[0].row(), 0)
        return self.shown.get(name.text()) if name is not None else None

    def _job_folder(self, job: dict | None) -> Path | None:
        if job is None or self.out is None:
            return None
        return self.out / str(job.get("name"))

    def _activate(self, row: int) -> None:
        self.table.selectRow(row)
        job = self.selected_job()
        if job is not None and job.get("status") == "done":
            self.open_selected()
        elif job is not None:
            self.show_selected_log()

    def open_selected(self) -> bool:
        job = self.selected_job()
        folder = self._job_folder(job)
        if folder is None or job.get("status") != "done":
            return False
        if not (folder / "scene" / "manifest.json").is_file():
            dialogs.error(self, "Cannot open result", f"{folder} holds no scene any more")
            return False
        self.openResult.emit(str(folder))
        return True

    def show_selected_log(self) -> bool:
        folder = self._job_folder(self.selected_job())
        if folder is None or not (folder / LOG).is_file():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder / LOG)))

    def open_selected_folder(self) -> bool:
        folder = self._job_folder(self.selected_job())
        if folder is None or not folder.is_dir():
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def closeEvent(self, e) -> None:
        if self.running():
            answer = dialogs.ask(
                self,
                "Batch running",
                "Stop the batch? Each job stops at its next progress report and keeps its "
                "checkpoints; Resume continues it later.",
                ["Stop and Close", "Keep Running"],
            )
            if answer != "Stop and Close":
                e.ignore()
                return
            self.worker.cancel()
            self.worker.wait(120000)
        super().closeEvent(e)
