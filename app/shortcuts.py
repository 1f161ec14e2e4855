"""Keys go where the user means them, whichever widget has the focus.

- **Undo / redo** (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y) in a spin box undo the *edit* (the
  regions' undo stack), not the box's text: its value is already an edit. In a text field
  they undo its typing while it has some, then the edits.
- **Canvas keys** (B E F D tools, [ ] brush size, 0 fit) work on the Paint tab while the
  focus is in a side panel (the region list, a button, a slider), except in a text field
  or a spin box, where they are typed.

:class:`ShortcutRouter` is an application event filter that looks at key presses reaching
the window's focus widget; the canvas and the Result view keep their own keys.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

__all__ = ["ShortcutRouter"]

_TEXT = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def _spin_box(w: QWidget) -> QAbstractSpinBox | None:
    for cand in (w, w.parentWidget()):
        if isinstance(cand, QAbstractSpinBox):
            return cand
    return None


def _types_text(w: QWidget) -> bool:
    return (
        isinstance(w, _TEXT)
        or (isinstance(w, QComboBox) and w.isEditable())
        or (_spin_box(w) is not None)
    )


def _local_undo(w: QWidget, redo: bool) -> bool:
    """Whether text field ``w`` has typing of its own to undo (``redo``: to redo)."""
    if isinstance(w, QLineEdit):
        return w.isRedoAvailable() if redo else w.isUndoAvailable()
    if isinstance(w, (QTextEdit, QPlainTextEdit)):
        doc = w.document()
        return doc.isRedoAvailable() if redo else doc.isUndoAvailable()
    return False


class ShortcutRouter(QObject):
    """See the module's docstring. ``paint_active()`` says whether the Paint tab is shown;
    ``own_keys`` are the widgets that handle their keys themselves (canvas, Result view)."""

    def __init__(
        self,
        window: QWidget,
        canvas,
        undo_stack,
        paint_active: Callable[[], bool],
        own_keys: tuple[QWidget, ...],
    ) -> None:
        super().__init__(window)
        self.window, self.canvas, self.undo_stack = window, canvas, undo_stack
        self.paint_active = paint_active
        self.own_keys = own_keys

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() != QEvent.KeyPress or obj is not QApplication.focusWidget():
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.window:
            return False
        if any(w is obj or w.isAncestorOf(obj) for w in self.own_keys):
            return False
        ctrl = bool(event.modifiers() & Qt.ControlModifier)
        undo = event.matches(QKeySequence.Undo)
        redo = event.matches(QKeySequence.Redo) or (ctrl and event.key() == Qt.Key_Y)
        if undo or redo:  # reaches here only when a text widget took the shortcut
            if _spin_box(obj) is None and _local_undo(obj, redo=not undo):
                return False
            (self.undo_stack.undo if undo else self.undo_stack.redo)()
            return True
        if _types_text(obj) or not self.paint_active():
            return False
        return self.canvas.handle_key(event, tools_only=True)
