"""Where model-backed stages run: one rule for ``--device auto|cpu|cuda``."""

from __future__ import annotations

import torch

from .errors import InputError


def has_cuda() -> bool:
    return torch.cuda.is_available()


def pick_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else the CPU; "cuda" without CUDA is an InputError.
    (Lifting adds its own condition, gsplat: see :func:`engine.lift.optimize.lift_device`.)"""
    if name not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device '{name}' (choose auto, cpu or cuda)")
    if name == "cuda" and not has_cuda():
        raise InputError("--device cuda: CUDA is not available here; use --device cpu")
    if name == "auto":
        name = "cuda" if has_cuda() else "cpu"
    return torch.device(name)
