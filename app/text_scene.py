"""File > New Scene from Text: a prompt for the whole scene becomes the panorama to paint on,
made by a text-to-image model denoised on the sphere (:func:`engine.text.generate_panorama`,
the same as ``generate --prompt --text-model``).

:class:`TextSceneDialog` asks for the prompt, the model (a folder or a hub id in the local
cache, probed as it is edited: Make is greyed with the reason while its weights are absent),
the size and the seed; :func:`make_panorama` is the work the window runs in a worker, and
writes the panorama as a PNG that records its prompt.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QVBoxLayout,
)

from engine.progress import Progress

__all__ = ["DEFAULT_TEXT_MODEL", "SIZES", "TextSceneDialog", "make_panorama"]

DEFAULT_TEXT_MODEL = "stabilityai/stable-diffusion-2-1-base"
SIZES = ((1024, 2048), (512, 1024), (256, 512), (2048, 4096))  # (H, W); 512 x 256: a draft


def make_panorama(cfg, folder: Path, progress: Progress) -> Path:
    """Generate the panorama of ``cfg`` (a :class:`engine.text.TextPanoConfig`) and write it
    to ``folder/text-DATE.png`` (atomically, the prompt and seed in its PNG text); its path."""
    from PIL import Image, PngImagePlugin

    from engine.fsutil import atomic_file
    from engine.text import generate_panorama

    rgb, _stats, _notes = generate_panorama(cfg, progress)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"text-{time.strftime('%Y%m%d-%H%M%S')}.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("pano4d:prompt", cfg.prompt)
    info.add_text("pano4d:seed", str(cfg.seed))
    info.add_text("pano4d:model", cfg.model)
    with atomic_file(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", pnginfo=info)
    return path


class TextSceneDialog(QDialog):
    """See the module doc; :meth:`config` is the TextPanoConfig asked for."""

    def __init__(self, parent=None, model: str = DEFAULT_TEXT_MODEL, device: str = "auto"):
        super().__init__(parent)
        self.setWindowTitle("New Scene from Text")
        self.device = device
        self.prompt_edit = QPlainTextEdit(self)
        self.prompt_edit.setPlaceholderText("misty alpine lake at dawn, pine forest, mountains")
        self.prompt_edit.setFixedHeight(70)
        self.negative_edit = QLineEdit(self)
        self.negative_edit.setPlaceholderText("what to avoid (optional)")
        self.model_edit = QLineEdit(model, self)
        self.model_edit.setToolTip(
            "A Stable Diffusion or SD3 pipeline: a folder, or a hub id already in the local cache"
        )
        self.size_combo = QComboBox(self)
        for h, w in SIZES:
            self.size_combo.addItem(f"{w} × {h}", (h, w))
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(mid);")
        form = QFormLayout()
        form.addRow("Scene prompt", self.prompt_edit)
        form.addRow("Avoid", self.negative_edit)
        form.addRow("Text-to-image model", self.model_edit)
        form.addRow("Size", self.size_combo)
        form.addRow("Seed", self.seed_spin)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Make Panorama")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addWidget(self.buttons)
        self.available = False
        self.model_edit.editingFinished.connect(self.probe)
        self.prompt_edit.textChanged.connect(self._update)
        self.probe()

    def probe(self) -> None:
        """Look for the model (nothing is downloaded) and say why Make is greyed out."""
        from engine import text

        spec = self.model_edit.text().strip()
        try:
            found = text.probe(spec) if spec else None
            why = "no model named" if found is None else str(found.reason)
        except Exception as e:  # a broken probe must not break the dialog
            found, why = None, f"probe failed: {type(e).__name__}: {e}"
        self.available = found is not None and found.path is not None
        self.note.setText(
            f"Made on the sphere (views fused at every step) with {found.path}."
            if self.available
            else f"Unavailable: {why}. Open a panorama instead."
        )
        self._update()

    def _update(self) -> None:
        ok = self.available and bool(self.prompt_edit.toPlainText().strip())
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)

    def config(self):
        """The engine's TextPanoConfig of what is asked."""
        from engine.text import TextPanoConfig

        return TextPanoConfig(
            model=self.model_edit.text().strip(),
            prompt=" ".join(self.prompt_edit.toPlainText().split()),
            negative_prompt=self.negative_edit.text().strip(),
            size=tuple(self.size_combo.currentData()),
            device=self.device,
            seed=self.seed_spin.value(),
        )
