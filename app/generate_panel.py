"""The Generate panel: preset, frame count, animator, depth backend and device, and the
Generate button (Ctrl+G in the main window).

Choices that cannot run here stay in their list, greyed out, with the reason as their
tooltip and in a note under the form ("Video diffusion (SVD): not in this build", "CUDA: no
CUDA device …"); :meth:`GeneratePanel.set_capabilities` applies an
:class:`app.capabilities.Capabilities`.

:class:`GenerateSettings` is what the panel holds, stored in projects as JSON, and turned
into an :class:`engine.config.GenerateConfig` by :meth:`GenerateSettings.to_config`:
``build_config(preset, frames=, animator=, device=)`` plus ``overrides`` — per-stage field
overrides (``{"lift": {"refine": {"passes": 0}}}``) applied exactly like a preset's own
fields (tests and power users use them for a tiny run).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import InputError
from engine.io import MAX_PROMPT_CHARS
from engine.presets import DEFAULT_PRESET, NEEDS_CUDA, PRESETS

from .capabilities import DEFAULT_DEPTH_MODEL, DEFAULT_SVD_MODEL, Capabilities, Choice

__all__ = ["GeneratePanel", "GenerateSettings"]

PRESET_NOTES = {
    "preview": "seconds: check regions and motion (lifted at half resolution)",
    "standard": "2048×1024 panoramas: about 2 minutes on a 2-core CPU",
    "4k": "4096×2048 panoramas: about 9 minutes on a 2-core CPU",
    "cuda": "a CUDA GPU: gsplat, every cell at full detail, 1800 refinement steps",
}
SECTIONS = ("animate", "svd", "depth", "depth_model", "lift", "output")


def preset_frames(preset: str) -> int:
    from engine.animate import FlowConfig

    return int(PRESETS.get(preset, {}).get("animate", {}).get("frames", FlowConfig().frames))


@dataclass(frozen=True)
class GenerateSettings:
    preset: str = DEFAULT_PRESET
    frames: int | None = None  # None: the preset's
    animator: str = "flow"
    depth: str = "prior"  # "prior" (weightless) or "model"
    device: str = "auto"
    svd_model: str = DEFAULT_SVD_MODEL  # weights of the "svd" animator: a folder or hub id
    depth_model: str = DEFAULT_DEPTH_MODEL  # weights of the "model" depth backend
    prompt: str = ""  # the scene prompt (the text-conditioned "wan" animator)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> GenerateSettings:
        """Settings from a project file; unknown keys are ignored, bad types refused."""
        if not isinstance(d, dict):
            raise InputError("project settings: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        s = cls(**{k: v for k, v in d.items() if k in known})
        for name in ("preset", "animator", "depth", "device", "svd_model", "depth_model", "prompt"):
            if not isinstance(getattr(s, name), str):
                raise InputError(f"project settings: '{name}' must be a string")
        if s.preset not in PRESETS:
            raise InputError(f"project settings: unknown preset '{s.preset}'")
        if s.frames is not None and (not isinstance(s.frames, int) or isinstance(s.frames, bool)):
            raise InputError("project settings: 'frames' must be an integer or null")
        if not isinstance(s.overrides, dict) or not all(
            isinstance(v, dict) for v in s.overrides.values()
        ):
            raise InputError("project settings: 'overrides' must be an object of objects")
        return s

    def to_config(self):
        """The engine's GenerateConfig (InputError for values the engine refuses)."""
        from engine import config

        kwargs: dict[str, Any] = {
            "frames": self.frames,
            "animator": self.animator,
            "device": self.device,
        }
        params = inspect.signature(config.build_config).parameters
        if self.animator == "svd" and "model" in params:
            kwargs["model"] = self.svd_model
        if self.animator == "wan":  # one video-model field: SVD's default means Wan's own
            kwargs["model"] = None if self.svd_model == DEFAULT_SVD_MODEL else self.svd_model
            kwargs["prompt"] = self.prompt.strip() or None
        if self.depth == "model":
            if "depth_model" not in params:
                raise InputError("the depth model backend is not in this build")
            kwargs["depth_model"] = self.depth_model
        cfg = config.build_config(self.preset, **kwargs)
        return apply_overrides(cfg, self.overrides)


def apply_overrides(cfg, overrides: dict[str, dict[str, Any]]):
    """``cfg`` with per-stage fields replaced (nested configs as nested objects; InputError
    for unknown names)."""
    from engine.config import override

    parts = {}
    for section, fields in overrides.items():
        if section not in SECTIONS:
            raise InputError(f"unknown settings section '{section}' (one of {SECTIONS})")
        part = getattr(cfg, section, None)
        if part is None:
            raise InputError(f"settings section '{section}' is not in use with these choices")
        parts[section] = override(part, fields, section)
    return dataclasses.replace(cfg, **parts)


class GeneratePanel(QWidget):
    """Form for :class:`GenerateSettings` plus the Generate button."""

    generateRequested = Signal()
    changed = Signal()
    modelSpecsChanged = Signal(str, str)  # (video model, depth model): probe them again

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.overrides: dict[str, dict[str, Any]] = {}
        self.capabilities = Capabilities()
        self.preset_combo = QComboBox(self)
        for name in PRESETS:
            self.preset_combo.addItem(
                name.upper() if name in ("4k", "cuda") else name.capitalize(), name
            )
            i = self.preset_combo.count() - 1
            self.preset_combo.setItemData(i, PRESET_NOTES.get(name, ""), Qt.ToolTipRole)
        self.frames_spin = QSpinBox(self)
        self.frames_spin.setRange(2, 240)
        self.frames_spin.setToolTip("Frames of the animation loop")
        self.animator_combo = QComboBox(self)
        self.depth_combo = QComboBox(self)
        self.device_combo = QComboBox(self)
        self.svd_edit = QLineEdit(DEFAULT_SVD_MODEL, self)
        self.svd_edit.setToolTip(
            "Video diffusion weights: a local folder or a Hugging Face id already in the "
            "local cache (nothing is downloaded)"
        )
        self.prompt_edit = QLineEdit(self)
        self.prompt_edit.setPlaceholderText("misty alpine lake at dawn, pine forest")
        self.prompt_edit.setMaxLength(MAX_PROMPT_CHARS)
        self.prompt_edit.editingFinished.connect(self.changed)
        self.depth_edit = QLineEdit(DEFAULT_DEPTH_MODEL, self)
        self.depth_edit.setToolTip(
            "Depth model weights (DPT, Depth Anything, ZoeDepth): a local folder or a Hugging "
            "Face id already in the local cache (nothing is downloaded)"
        )
        for edit in (self.svd_edit, self.depth_edit):
            edit.editingFinished.connect(self._on_specs_edited)
        self._specs = (DEFAULT_SVD_MODEL, DEFAULT_DEPTH_MODEL)
        self.preset_note = QLabel(self)
        self.unavailable_note = QLabel(self)
        self.unavailable_note.setWordWrap(True)
        self.unavailable_note.setStyleSheet("color: palette(mid);")
        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setToolTip(
            "Animate the painted regions and build the 4D scene (Ctrl+G)"
        )
        self.generate_button.clicked.connect(self.generateRequested)
        form = QFormLayout()
        form.addRow("Preset", self.preset_combo)
        form.addRow("", self.preset_note)
        form.addRow("Frames", self.frames_spin)
        form.addRow("Animator", self.animator_combo)
        form.addRow("Video model", self.svd_edit)
        form.addRow("Scene prompt", self.prompt_edit)
        form.addRow("Depth", self.depth_combo)
        form.addRow("Depth model", self.depth_edit)
        form.addRow("Device", self.device_combo)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(form)
        lay.addWidget(self.unavailable_note)
        lay.addWidget(self.generate_button)
        # choices asked for (a project's settings) that the capabilities do not list yet (the
        # probe takes seconds): kept, and picked when the probe lists them, unless the user
        # picks something else first
        self._pending: dict[str, str] = {}
        self.set_capabilities(self.capabilities)
        for attr, combo, _fallback in self._choices():
            combo.activated.connect(lambda _i, a=attr: self._pending.pop(a, None))
        self.preset_combo.currentIndexChanged.connect(self._on_preset)
        self.set_settings(GenerateSettings())
        for w in (self.preset_combo, self.animator_combo, self.depth_combo, self.device_combo):
            w.currentIndexChanged.connect(self.changed)
        self.frames_spin.valueChanged.connect(self.changed)
        self.frames_spin.editingFinished.connect(self._sync_frames)
        self.animator_combo.currentIndexChanged.connect(lambda _i: self._sync_prompt())
        self._sync_prompt()

    # ------------------------------------------------------------------ capabilities

    def set_capabilities(self, caps: Capabilities) -> None:
        """Fill the animator/depth/device lists; greys out (with reasons) what cannot run."""
        self.capabilities = caps
        keep = self.settings() if self.animator_combo.count() else None  # with what is pending
        _fill(self.animator_combo, caps.animators)
        _fill(self.depth_combo, caps.depth)
        _fill(self.device_combo, caps.devices)
        model: QStandardItemModel = self.preset_combo.model()
        for name in NEEDS_CUDA:
            i = self.preset_combo.findData(name)
            if i >= 0:
                model.item(i).setEnabled(caps.cuda)
                tip = PRESET_NOTES.get(name, "") if caps.cuda else f"needs CUDA: {caps.cuda_reason}"
                self.preset_combo.setItemData(i, tip, Qt.ToolTipRole)
        missing = [c for c in (*caps.animators, *caps.depth, *caps.devices) if not c.available]
        names = ", ".join(c.label for c in missing)
        self.unavailable_note.setText(f"Unavailable here: {names} (hover for why)")
        self.unavailable_note.setToolTip("\n".join(f"{c.label}: {c.reason}" for c in missing))
        self.unavailable_note.setVisible(bool(missing))
        if keep is not None:
            self.set_settings(keep)
        self._sync_prompt()

    def is_available(self, combo: QComboBox, name: str) -> bool:
        i = combo.findData(name)
        return i >= 0 and combo.model().item(i).isEnabled()

    # ------------------------------------------------------------------ settings

    def settings(self) -> GenerateSettings:
        """What the form holds; a choice still waiting for the capabilities (see
        :meth:`set_settings`) counts as chosen."""
        preset = str(self.preset_combo.currentData())
        frames = self.frames_spin.value()
        shown = {
            attr: str(combo.currentData() or fallback) for attr, combo, fallback in self._choices()
        }
        return GenerateSettings(
            preset=preset,
            frames=None if frames == preset_frames(preset) else frames,
            **{**shown, **self._pending},
            svd_model=self.svd_edit.text().strip() or DEFAULT_SVD_MODEL,
            depth_model=self.depth_edit.text().strip() or DEFAULT_DEPTH_MODEL,
            prompt=" ".join(self.prompt_edit.text().split()),
            overrides=dict(self.overrides),
        )

    def _choices(self) -> tuple[tuple[str, QComboBox, str], ...]:
        """(settings field, its combo, the weightless default) per choice."""
        return (
            ("animator", self.animator_combo, "flow"),
            ("depth", self.depth_combo, "prior"),
            ("device", self.device_combo, "auto"),
        )

    def set_settings(self, s: GenerateSettings) -> None:
        """Show ``s``; a choice that cannot run here falls back to the weightless default. One
        the capabilities do not list yet (not probed) stays asked for: :meth:`settings`
        returns it and :meth:`set_capabilities` picks it once listed and available."""
        preset = s.preset if self.is_available(self.preset_combo, s.preset) else DEFAULT_PRESET
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(preset)))
        self._on_preset()
        self.svd_edit.setText(s.svd_model)
        self.depth_edit.setText(s.depth_model)
        self.prompt_edit.setText(s.prompt)
        if s.frames is not None:
            self.frames_spin.setValue(int(s.frames))
        self._pending = {}
        for attr, combo, fallback in self._choices():
            name = getattr(s, attr)
            pick = name if self.is_available(combo, name) else fallback
            if combo.findData(name) < 0:
                self._pending[attr] = name
            combo.setCurrentIndex(max(0, combo.findData(pick)))
        self.overrides = dict(s.overrides)
        self._sync_prompt()

    def specs(self) -> tuple[str, str]:
        return (
            self.svd_edit.text().strip() or DEFAULT_SVD_MODEL,
            self.depth_edit.text().strip() or DEFAULT_DEPTH_MODEL,
        )

    def _on_specs_edited(self) -> None:
        if self.specs() != self._specs:
            self._specs = self.specs()
            self.modelSpecsChanged.emit(*self._specs)
            self.changed.emit()

    def _on_preset(self, *_args) -> None:
        preset = str(self.preset_combo.currentData())
        self.frames_spin.setValue(preset_frames(preset))
        self.preset_note.setText(PRESET_NOTES.get(preset, ""))

    def set_running(self, running: bool) -> None:
        self.generate_button.setEnabled(not running)
        for w in (
            self.preset_combo,
            self.frames_spin,
            self.animator_combo,
            self.depth_combo,
            self.device_combo,
            self.svd_edit,
            self.depth_edit,
        ):
            w.setEnabled(not running)
        self._sync_prompt(running)

    def _sync_prompt(self, running: bool = False) -> None:
        """The scene prompt is read by the text-conditioned video model only: greyed, with
        the reason in its tooltip, for the other animators."""
        wan = self.animator_combo.currentData() == "wan"
        self._sync_frames()
        self.prompt_edit.setEnabled(wan and not running)
        self.prompt_edit.setToolTip(
            "What the whole scene is and how it moves; each view is also given the prompt of "
            "the region it sees most"
            if wan
            else "Used by the text video model (Wan): choose it as the Animator (its weights "
            "must be on disk)"
        )

    def _sync_frames(self) -> None:
        """Wan's VAE makes 4k + 1 frames: with it the Frames box steps 5, 9, 13, ... and a
        typed count goes up to the next such number."""
        wan, spin = self.animator_combo.currentData() == "wan", self.frames_spin
        spin.setMinimum(5 if wan else 2)
        spin.setSingleStep(4 if wan else 1)
        spin.setToolTip(
            "Frames of the animation loop"
            + (": Wan makes 4k + 1 (5, 9, 13, 17, ...)" if wan else "")
        )
        if wan and (spin.value() - 1) % 4:
            spin.setValue(((spin.value() - 1) // 4 + 1) * 4 + 1)


def _fill(combo: QComboBox, choices: tuple[Choice, ...]) -> None:
    combo.blockSignals(True)
    combo.clear()
    model: QStandardItemModel = combo.model()
    for c in choices:
        combo.addItem(c.label if c.available else f"{c.label} — unavailable", c.name)
        item = model.item(combo.count() - 1)
        item.setEnabled(c.available)
        item.setToolTip(c.reason)
    first = next((i for i, c in enumerate(choices) if c.available), 0)
    combo.setCurrentIndex(first)
    combo.blockSignals(False)
