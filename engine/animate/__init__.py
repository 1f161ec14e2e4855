"""Animators: panorama + regions -> looping panoramic video (PanoVideo).

``flow`` (default) is weightless and runs on the CPU; model-backed animators (diffusion)
plug in through :func:`get_animator` by name.
"""

from __future__ import annotations

from .base import PanoVideo, region_weights
from .flow import FlowAnimator, FlowConfig

ANIMATORS = {"flow": FlowAnimator}
# model-backed animators, imported on first use (their modules load diffusers lazily too)
_LAZY = {"svd": ("svd", "SVDAnimator"), "wan": ("wan", "WanAnimator")}
ANIMATOR_NAMES = ("flow", "svd", "wan")


def get_animator(name: str):
    """The animator class registered under ``name`` (raises KeyError if unknown)."""
    if name not in ANIMATORS and name in _LAZY:
        import importlib

        module, cls = _LAZY[name]
        ANIMATORS[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return ANIMATORS[name]


__all__ = [
    "ANIMATORS",
    "ANIMATOR_NAMES",
    "FlowAnimator",
    "FlowConfig",
    "PanoVideo",
    "get_animator",
    "region_weights",
]
