"""Motion preview: the flow animator (the weightless default) on a small copy of the
panorama and its regions, fast enough to follow every edit (0.4–0.5 s at 512 × 256 on two
CPU cores, docs/BENCHMARKS.md), so a mask that catches the wrong pixels shows before Generate.

The panorama is reduced by area averaging, each mask keeps the pixels it covers at least
half of (or, for a region thinner than that, every pixel it touches), feathers shrink by the
same factor, and the animator runs with the run's own :class:`FlowConfig` (frames, fps,
turbulence, seed): the motion is the run's, at a lower resolution.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ..errors import InputError
from ..io import Panorama, Region
from ..io.masks import resample_mask
from ..progress import Progress
from .base import PanoVideo
from .flow import FlowAnimator, FlowConfig

__all__ = ["PREVIEW_WIDTH", "preview_motion", "shrink_regions"]

PREVIEW_WIDTH = 512


def shrink_regions(regions: list[Region], size: tuple[int, int], full_width: int) -> list[Region]:
    """``regions`` at ``size`` = (h, w): masks by coverage (:func:`engine.io.masks.
    resample_mask`, as mask files are read), feathers scaled by ``w / full_width``."""
    scale = size[1] / full_width
    return [
        dataclasses.replace(r, mask=resample_mask(r.mask, size), feather_px=r.feather_px * scale)
        for r in regions
    ]


def preview_motion(
    rgb: np.ndarray,  # [H, W, 3] uint8
    regions: list[Region],
    flow: FlowConfig | None = None,
    width: int = PREVIEW_WIDTH,
    progress: Progress | None = None,
) -> PanoVideo:
    """The flow animation of ``regions`` at ``width`` × ``width / 2``: frames [T, h, w, 3]
    (``flow``: the run's settings; default :class:`FlowConfig`)."""
    if not any(r.mask.any() for r in regions):
        raise InputError("nothing to preview: paint a region first")
    h_full, w_full = rgb.shape[:2]
    w = min(int(width), w_full)
    size = (max(1, w // 2), w)
    small = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    pano = Panorama(small, None, f"motion preview of a {w_full}×{h_full} panorama")
    shrunk = shrink_regions(regions, size, w_full)
    return FlowAnimator(flow or FlowConfig()).run(pano, shrunk, progress or Progress("preview"))
