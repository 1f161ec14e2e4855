"""4D Gaussian scenes: :class:`Scene4D`, and opening any scene a user points at.

A :class:`Scene4D` is one **static** Gaussian set, shared by every frame (everything outside
the animated regions), plus one **dynamic** set per frame (the animated regions; sets may
differ in size between frames). Frame ``t`` renders ``static + dynamic[t]``.

The native folder format is :mod:`engine.splats.native` (its save, load and info are
re-exported here); the formats of the splat ecosystem are :mod:`engine.splats`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .gaussians import Gaussians
from .progress import Progress, ProgressCallback
from .splats.ply import ply_property_names, read_ply, write_ply  # noqa: F401 (re-exported)

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- Scene4D


@dataclass
class Scene4D:
    """A static Gaussian set shared by all frames plus one dynamic set per frame."""

    static: Gaussians
    dynamic: list[Gaussians]
    fps: float
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.dynamic) < 1:
            raise ValueError("a Scene4D needs at least one frame (dynamic set)")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        degrees = {self.static.sh_degree, *(d.sh_degree for d in self.dynamic)}
        if len(degrees) != 1:
            raise ValueError(f"all sets of a scene must share one SH degree, got {degrees}")

    @property
    def n_frames(self) -> int:
        return len(self.dynamic)

    @property
    def sh_degree(self) -> int:
        return self.static.sh_degree

    def frame(self, t: int) -> Gaussians:
        """All Gaussians of frame ``t``: the static set followed by ``dynamic[t]``."""
        return Gaussians.cat([self.static, self.dynamic[t]])

    def bounds(self) -> tuple[list[float], list[float]]:
        """Per-axis (min, max) over every mean of every set; zeros for an empty scene."""
        means = [g.means.detach() for g in (self.static, *self.dynamic) if len(g)]
        if not means:
            return [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        lo = torch.stack([m.amin(0) for m in means]).amin(0)
        hi = torch.stack([m.amax(0) for m in means]).amax(0)
        return [float(x) for x in lo], [float(x) for x in hi]


def _reporter(progress: Progress | ProgressCallback | None, stage: str) -> Progress | None:
    """Accept a :class:`Progress`, a bare ``(stage, fraction, message)`` callback or None."""
    if progress is None or isinstance(progress, Progress):
        return progress
    return Progress(stage, progress)


# --------------------------------------------------------------------------- PLY and others
# The formats of the splat ecosystem live in engine.splats (one module per format); these
# names stay here for the callers that know them.


def export_ply_sequence(
    scene: Scene4D,
    out_dir: PathLike,
    *,
    progress: Progress | ProgressCallback | None = None,
    axes: str = "y-down",
) -> list[Path]:
    """Write ``frame_0000.ply``, ... (static + that frame's dynamic set; fps and axes in the
    headers). ``progress``: a :class:`Progress` or a ``(stage, fraction, message)`` callback
    (stage ``"export"``); a cancelled token stops between frames."""
    from .splats import write_splats

    return write_splats(scene, out_dir, "sequence", axes=axes, progress=progress)


# --------------------------------------------------------------------------- opening anything


def open_scene(path: PathLike, *, fps: float = 8.0, axes: str = "auto") -> Scene4D:
    """Open whatever a user points the viewer, ``render`` or ``info`` at, as a Scene4D: a
    native scene folder (or a ``generate`` output folder holding one in ``scene/``), a
    splat file (.ply, .compressed.ply, .spz, .splat, .glb) or a folder of
    ``frame_0000.ply``, ... (:func:`engine.splats.open_splats`). One line on error."""
    from .splats import open_splats

    return open_splats(path, fps=fps, axes=axes)


# --------------------------------------------------------------------------- the native format
# (imported last: engine.splats.native builds Scene4D objects)

from .splats.native import (  # noqa: E402, F401 (re-exported)
    BASE_FILE,
    CONVENTIONS,
    FIELDS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FP16_MAX,
    MANIFEST,
    full_set_bytes,
    load_scene,
    save_scene,
    scene_info,
    uses_deltas,
    varying_fields,
)
