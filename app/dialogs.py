"""Every dialog the app shows goes through the small functions here, so that a test can
replace one (monkeypatch) and nothing ever blocks: :func:`error`, :func:`ask`,
:func:`ask_save_changes`, :func:`open_file`, :func:`save_file`, :func:`pick_folder`.

An error dialog shows one line (the engine's :class:`~engine.errors.InputError` text, or a
short summary) with the details (traceback, log) behind "Show Details…". :func:`describe`
turns any exception into that (message, details) pair; :func:`install_excepthook` makes an
unexpected exception in a Qt slot a dialog instead of a crash.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from engine.errors import InputError

__all__ = [
    "ask",
    "ask_save_changes",
    "describe",
    "error",
    "install_excepthook",
    "make_error_dialog",
    "open_file",
    "pick_folder",
    "save_file",
]


def describe(exc: BaseException) -> tuple[str, str]:
    """(one-line message, details) for an exception: InputError text as it is (the engine
    words it for users), anything else as ``Type: text`` with the traceback as details."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, InputError):
        return in_app_words(" ".join(str(exc).split())), details
    if isinstance(exc, OSError) and (message := file_system_message(exc)):
        return message, details
    text = " ".join(str(exc).split())
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(message) > 300:
        message = message[:297] + "..."
    return message, details


# The engine's advice names command-line options; in the app, the controls that do the same.
APP_WORDS = {
    "the weightless fallback is --animator flow": "choose Animator: Flow (weightless, CPU)",
    "drop --depth-model to use the layout prior (weightless) or give --depth": (
        "choose Depth: Layout prior (weightless)"
    ),
    "drop --dino-model to lift without L_sem": "lift without the semantic regulariser",
    "a segmentation model (--seg-model)": (
        "a segmentation model (Regions > Find regions from text)"
    ),
    "--animator wan needs": "Wan needs",
}


def in_app_words(message: str) -> str:
    """An engine message with its command-line advice in the app's words (APP_WORDS)."""
    for cli, app in APP_WORDS.items():
        message = message.replace(cli, app)
    return message


_TEMP = re.compile(r"^\.(.+)\.tmp-[^/]*$")  # engine.fsutil's temporary names: .NAME.tmp-XXXX


def file_system_message(exc: OSError) -> str | None:
    """A user's words for a refused write or a missing folder, naming the folder they chose
    (not the hidden temporary file the write went through); None for other errors."""
    if exc.filename is None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{os.strerror(exc.errno)}: free some space or choose another folder"
        return None
    path = Path(str(exc.filename))
    match = _TEMP.match(path.name)
    folder, name = path.parent, (match.group(1) if match else path.name)
    reasons = {
        errno.EROFS: f"Cannot write to {folder}: it is on a read-only disk",
        errno.EACCES: f"Cannot write to {folder}: permission denied",
        errno.EPERM: f"Cannot write to {folder}: permission denied",
        errno.ENOSPC: f"Cannot write {name} in {folder}: the disk is full",
        errno.EDQUOT: f"Cannot write {name} in {folder}: the disk quota is used up",
        errno.ENOENT: f"{folder} does not exist (moved or deleted?); choose another folder",
    }
    if exc.errno == errno.ENOENT and folder.exists():
        return None  # a missing input file, not a destination: the generic text names it
    return reasons.get(exc.errno)


def make_error_dialog(
    parent: QWidget | None, title: str, message: str, details: str = ""
) -> QMessageBox:
    """The error dialog (not shown): ``message`` as text, ``details`` expandable."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Critical)
    box.setWindowTitle(title)
    box.setText(message)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.Ok)
    return box


def error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """Show an error (modal) with expandable details."""
    make_error_dialog(parent, title, message, details).exec()


def info(parent: QWidget | None, title: str, text: str) -> None:
    """Information (modal, rich text allowed)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Information)
    box.setWindowTitle(title)
    box.setText(text)
    box.exec()


def ask(parent: QWidget | None, title: str, text: str, buttons: list[str]) -> str | None:
    """A question with the given button labels; returns the label clicked (None: closed)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle(title)
    box.setText(text)
    made = {box.addButton(b, QMessageBox.AcceptRole): b for b in buttons}
    box.exec()
    return made.get(box.clickedButton())


def ask_save_changes(parent: QWidget | None, what: str) -> str:
    """ "save", "discard" or "cancel" for unsaved changes in ``what``."""
    r = QMessageBox.question(
        parent,
        "Unsaved changes",
        f"{what} has unsaved changes. Save them first?",
        QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel,
        QMessageBox.Save,
    )
    return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(r, "cancel")


IMAGE_FILTER = "Panoramas (*.png *.jpg *.jpeg *.webp *.tif *.tiff *.exr *.hdr);;All files (*)"
SPLAT_FILTER = "Gaussian splats (*.ply *.spz *.splat *.glb);;All files (*)"


def is_splat_file(path: str | Path) -> bool:
    """A file name a splat reader takes (engine.splats: .ply, .compressed.ply, .spz, ...)."""
    from engine.splats import SUFFIXES

    return Path(path).name.lower().endswith(tuple(SUFFIXES.values()))


def open_file(parent: QWidget | None, title: str, filters: str, start: str = "") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, start, filters)
    return path or None


def save_file(parent: QWidget | None, title: str, filters: str, start: str = "") -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, start, filters)
    return path or None


def pick_folder(parent: QWidget | None, title: str, start: str = "") -> str | None:
    path = QFileDialog.getExistingDirectory(parent, title, start)
    return path or None


def run_dialog(dialog) -> bool:
    """Show a modal dialog; True when it was accepted."""
    return dialog.exec() == dialog.DialogCode.Accepted


def install_excepthook(parent_fn=lambda: None) -> None:
    """Unexpected exceptions (in slots, timers) become an error dialog, never a crash.

    ``parent_fn()`` returns the widget to parent the dialog on (e.g. the main window)."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        message, details = describe(exc.with_traceback(tb))
        traceback.print_exception(exc_type, exc, tb)  # also on stderr for bug reports
        try:
            module = sys.modules[__name__]  # look up at call time (tests patch error)
            module.error(parent_fn(), "Unexpected error", message, details)
        except Exception:  # a broken dialog must not recurse
            previous(exc_type, exc, tb)

    sys.excepthook = hook


def short_path(path: str | Path, limit: int = 60) -> str:
    """A path for a status line: the tail when it is long."""
    s = str(path)
    return s if len(s) <= limit else "…" + s[-(limit - 1) :]
