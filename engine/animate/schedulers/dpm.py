"""Variance preserving, multistep (``DPMSolverMultistepScheduler``, dpmsolver++):
z = alpha_t x0 + sigma_t eps. Every order's update scales the sample by sigma_t / sigma_s
and adds a combination of x0s, so the split holds across its history."""

from __future__ import annotations

from torch import Tensor

from ...errors import InputError
from .base import Sampler


class DPMSampler(Sampler):
    def check(self, config) -> None:
        if config.algorithm_type != "dpmsolver++":
            raise InputError(
                f"DPMSolverMultistepScheduler with algorithm_type {config.algorithm_type!r} "
                "(use 'dpmsolver++': the SDE variants add noise inside the step)"
            )
        if config.thresholding:
            raise InputError("DPMSolverMultistepScheduler with thresholding (not affine)")
        if config.get("use_flow_sigmas", False):
            raise InputError("DPMSolverMultistepScheduler with use_flow_sigmas")

    def levels(self) -> tuple[Tensor, Tensor]:
        alpha = 1 / (self.sigmas**2 + 1).sqrt()  # the scheduler's sigmas are sigma_t / alpha_t
        return self.sigmas * alpha, alpha

    def to_output(self, x0: Tensor, sample: Tensor, i: int) -> Tensor:
        a, s = float(self.signal[i]), float(self.noise[i])
        kind = self.scheduler.config.prediction_type
        if kind == "epsilon":
            return (sample - a * x0) / s
        if kind == "v_prediction":  # x0 = a sample - s v
            return (a * sample - x0) / s
        if kind == "sample":
            return x0
        raise InputError(f"DPMSolverMultistepScheduler with prediction_type {kind!r}")
