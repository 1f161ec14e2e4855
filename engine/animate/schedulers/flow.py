"""Rectified flow (``FlowMatchEulerDiscreteScheduler``): z = (1 - t) x0 + t eps and the
model predicts the velocity eps - x0. Wan, Stable Diffusion 3 and FLUX use it."""

from __future__ import annotations

from torch import Tensor

from ...errors import InputError
from .base import Sampler


class FlowMatchSampler(Sampler):
    def check(self, config) -> None:
        if config.get("stochastic_sampling", False):
            raise InputError("FlowMatchEulerDiscreteScheduler with stochastic_sampling=True")
        if config.get("invert_sigmas", False):
            raise InputError("FlowMatchEulerDiscreteScheduler with invert_sigmas=True")

    def levels(self) -> tuple[Tensor, Tensor]:
        return self.sigmas, 1 - self.sigmas

    def to_output(self, x0: Tensor, sample: Tensor, i: int) -> Tensor:
        return (sample - x0) / float(self.sigmas[i])
