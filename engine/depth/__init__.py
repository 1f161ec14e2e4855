"""Panoramic depth: distance along the ray, per frame (DESIGN.md sections 2-3).

The weightless default is a geometric layout prior (:mod:`engine.depth.prior`) or a
user-supplied depth panorama; model-backed estimators plug in beside it.
"""

from .prior import DepthConfig, DepthStage, PanoDepth, layout_prior

__all__ = ["DepthConfig", "DepthStage", "PanoDepth", "layout_prior"]
