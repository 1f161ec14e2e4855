"""Animators: panorama + regions -> looping panoramic video (PanoVideo).

``flow`` (default) is weightless and runs on the CPU; model-backed animators (diffusion)
plug in through :func:`get_animator` by name.
"""

from __future__ import annotations

from .base import PanoVideo, region_weights
from .flow import FlowAnimator, FlowConfig

ANIMATORS = {"flow": FlowAnimator}


def get_animator(name: str):
    """The animator class registered under ``name`` (raises KeyError if unknown)."""
    return ANIMATORS[name]


__all__ = ["ANIMATORS", "FlowAnimator", "FlowConfig", "PanoVideo", "get_animator", "region_weights"]
