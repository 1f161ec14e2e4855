"""Find regions from text: names (and optional prompts) typed in the Regions panel become
painted regions, found by a CLIPSeg model on perspective views fused on the sphere
(:func:`engine.text.segment.segment_on_sphere`), each one undoable edit.

:class:`FindRegionsBox` is the panel part: the text, the model (a folder or a hub id in the
local cache; probed as it is edited, and the Find button greyed with the reason when its
weights are absent) and the button; it emits ``findRequested(entries, spec)``.
:func:`find_regions` is the work the window runs in a worker; :func:`parse_entries` reads the
text.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QLineEdit, QPushButton, QVBoxLayout

from engine.errors import InputError
from engine.progress import Progress
from engine.text.motion import parse_region_arg

__all__ = ["DEFAULT_SEG_MODEL", "FindRegionsBox", "find_regions", "parse_entries"]

DEFAULT_SEG_MODEL = "CIDAS/clipseg-rd64-refined"


def parse_entries(text: str) -> list[tuple[str, str]]:
    """``"sky: clouds drift left; lake: ripples"`` or ``"sky, lake"`` -> [(name, prompt)]:
    entries split at ``;`` or new lines (at commas when there is a single entry without a
    prompt); ``NAME: prompt`` as ``--region`` reads it. InputError for an entry without a
    name."""
    parts = [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]
    if len(parts) == 1 and ":" not in parts[0]:
        parts = [p.strip() for p in parts[0].split(",") if p.strip()]
    entries = []
    for part in parts:
        if ":" not in part:
            entries.append((part, ""))
            continue
        try:
            entries.append(parse_region_arg(part))
        except ValueError:
            raise InputError(f"'{part}': write an entry as NAME or 'NAME: how it moves'") from None
    return entries


def find_regions(
    rgb: np.ndarray,  # [H, W, 3] uint8
    entries: list[tuple[str, str]],
    spec: str,
    progress: Progress,
) -> list[np.ndarray]:
    """[H, W] bool mask per entry, found by the CLIPSeg model ``spec`` from its name."""
    from engine.text import segment

    progress.update(0.0, f"loading the segmentation model {spec}")
    predict = segment.clipseg_predictor(spec)
    names = [name for name, _ in entries]
    masks, _ = segment.segment_on_sphere(rgb, names, predict, progress=progress)
    return masks


class FindRegionsBox(QGroupBox):
    """See the module doc."""

    findRequested = Signal(list, str)  # [(name, prompt)], model spec

    def __init__(self, parent=None, model: str = DEFAULT_SEG_MODEL) -> None:
        super().__init__("Find regions from text", parent)
        lay = QVBoxLayout(self)
        self.text_edit = QLineEdit(self)
        self.text_edit.setPlaceholderText("sky: clouds drift left; lake: ripples")
        self.text_edit.setToolTip(
            "What to find, by name: 'sky, lake', or with how each moves: "
            "'sky: clouds drift left; trees: leaves swaying'. Each becomes a region."
        )
        self.text_edit.returnPressed.connect(self._request)
        self.text_edit.textChanged.connect(lambda _t: self._update())
        self.model_edit = QLineEdit(model, self)
        self.model_edit.setToolTip("CLIPSeg weights: a folder, or a hub id in the local cache")
        self.model_edit.editingFinished.connect(self.probe)
        self.find_button = QPushButton("Find", self)
        self.find_button.clicked.connect(self._request)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        for w in (self.text_edit, self.model_edit, self.find_button, self.note):
            lay.addWidget(w)
        self.available = False
        self.reason = ""
        self.ready = False  # a panorama is open and no job runs
        self.probe()

    def probe(self) -> None:
        """Look for the model's weights (a folder or the local hub cache; nothing is
        downloaded) and grey Find out with the reason when they are absent."""
        from engine.text import segment

        spec = self.model_edit.text().strip()
        try:
            found = segment.probe(spec) if spec else None
        except Exception as e:  # a broken probe must not break the panel
            found, why = None, f"probe failed: {type(e).__name__}: {e}"
        else:
            why = "no model named" if found is None else str(found.reason)
        self.available = found is not None and found.path is not None
        self.reason = "" if self.available else why
        self._update()

    def set_ready(self, ready: bool) -> None:
        self.ready = bool(ready)
        self._update()

    def _update(self) -> None:
        can = self.available and self.ready and bool(self.text_edit.text().strip())
        self.find_button.setEnabled(can)
        if not self.available:
            self.note.setText(f"Unavailable: {self.reason}. Paint the regions instead.")
        else:
            self.note.setText("Found regions are added as new layers (Ctrl+Z removes them).")
        self.find_button.setToolTip(self.note.text())

    def _request(self) -> None:
        if not self.find_button.isEnabled():
            return
        try:
            entries = parse_entries(self.text_edit.text())
        except InputError as e:
            self.note.setText(str(e))
            return
        if entries:
            self.findRequested.emit(entries, self.model_edit.text().strip())
