"""Panoramic depth: distance along the ray, per frame (DESIGN.md sections 2-3).

The weightless default is a geometric layout prior (:mod:`engine.depth.prior`) or a
user-supplied depth panorama; model-backed estimators plug in beside it
(:mod:`engine.depth.models`, :mod:`engine.depth.stage`) and are fused across views and
frames by the spatial-temporal alignment of :mod:`engine.depth.align` (4K4DGen eq. 4).
"""

from .align import AlignConfig, align_depths, median_calibrate
from .prior import DepthConfig, DepthStage, PanoDepth, layout_prior
from .stage import ModelDepthConfig, ModelDepthStage

__all__ = [
    "AlignConfig",
    "DepthConfig",
    "DepthStage",
    "ModelDepthConfig",
    "ModelDepthStage",
    "PanoDepth",
    "align_depths",
    "layout_prior",
    "median_calibrate",
]
