"""k-diffusion sigmas (``EulerDiscreteScheduler``): z = x0 + sigma eps; the model sees
z / sqrt(sigma^2 + 1). Stable Video Diffusion and Stable Diffusion use it."""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError
from .base import Sampler


class EulerSampler(Sampler):
    def check(self, config) -> None:
        kind = config.prediction_type
        if kind not in ("epsilon", "v_prediction", "sample", "original_sample"):
            raise InputError(f"EulerDiscreteScheduler with prediction_type {kind!r}")

    def levels(self) -> tuple[Tensor, Tensor]:
        return self.sigmas, torch.ones_like(self.sigmas)

    def begin(self, start: int) -> float:
        c = super().begin(start)
        self.scheduler.is_scale_input_called = True  # the view model scales its own input
        return c

    def to_output(self, x0: Tensor, sample: Tensor, i: int) -> Tensor:
        s = float(self.sigmas[i])
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return (sample - x0) / s
        if kind == "v_prediction":  # x0 = -s / sqrt(s^2 + 1) v + sample / (s^2 + 1)
            return (sample / (s * s + 1) - x0) * ((s * s + 1) ** 0.5 / s)
        return x0


def k_diffusion_x0(z: Tensor, out: Tensor, sigma: float, prediction_type: str) -> Tensor:
    """x0 from a model output for z = x0 + sigma eps (the scheduler's ``prediction_type``)."""
    if prediction_type == "epsilon":
        return z - sigma * out
    if prediction_type == "v_prediction":
        return out * (-sigma / (sigma * sigma + 1) ** 0.5) + z / (sigma * sigma + 1)
    if prediction_type in ("sample", "original_sample"):
        return out
    raise InputError(f"unsupported scheduler prediction_type {prediction_type!r}")
