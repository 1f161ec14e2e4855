"""The scheduler-family interface of the Panoramic Denoiser (see the package docstring)."""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError


class Sampler:
    """One sampling pass of a diffusers scheduler over the split state z = a m + c eps.

    Subclasses give the family's noise levels ``c`` and signal scales ``a`` (both
    [steps + 1], float64) and write x0 in the scheduler's prediction type
    (:meth:`to_output`).
    """

    def __init__(self, scheduler, steps: int, **timestep_kwargs) -> None:
        self.scheduler, self.steps, self.kwargs = scheduler, steps, timestep_kwargs
        self.check(scheduler.config)
        self.reset()
        self.timesteps = scheduler.timesteps  # [steps] what the model is conditioned on
        self.sigmas = scheduler.sigmas.to(torch.float64)  # [steps + 1] the scheduler's own
        self.noise, self.signal = self.levels()  # c_i, a_i: [steps + 1] float64
        if len(self.timesteps) != steps or len(self.sigmas) != steps + 1:
            raise InputError(
                f"{type(scheduler).__name__} made {len(self.timesteps)} timesteps for "
                f"{steps} steps (a multi-stage solver); use a single-stage one"
            )

    # -- the family ----------------------------------------------------------------------

    def check(self, config) -> None:
        """Refuse settings the split cannot follow (stochastic steps)."""

    def levels(self) -> tuple[Tensor, Tensor]:
        """(noise level c_i, signal scale a_i) of the sample at each step: [steps + 1]."""
        raise NotImplementedError

    def to_output(self, x0: Tensor, sample: Tensor, i: int) -> Tensor:
        """The model output, in the scheduler's prediction type, whose x0 is ``x0``."""
        raise NotImplementedError

    # -- one pass ------------------------------------------------------------------------

    def reset(self) -> None:
        """Fresh scheduler state (step index, multistep history)."""
        self.scheduler.set_timesteps(self.steps, device="cpu", **self.kwargs)

    def begin(self, start: int) -> float:
        """Start a pass at step ``start``: the noise coefficient of its first sample (the
        scheduler's ``init_noise_sigma`` from pure noise - 1 for flow schedulers, whose
        pipelines draw plain N(0, 1) - else the level it noises to)."""
        self.reset()
        self.scheduler.set_begin_index(start)
        if start == 0:
            return float(getattr(self.scheduler, "init_noise_sigma", 1.0))
        return float(self.noise[start])

    def advance(self, m: Tensor, x0: Tensor, c: float, i: int) -> tuple[Tensor, float]:
        """Step i of the split state: (m_i, x0_i, c_i) -> (m_{i+1}, c_{i+1}).

        m, x0: Tensor  # [..., h, w] signal (clean-latent units) and the fused estimate
        """
        a0, a1 = float(self.signal[i]), float(self.signal[i + 1])
        sample = (a0 * m).float()
        out = self.to_output(x0.float(), sample, i)
        nxt = self.scheduler.step(out, self.timesteps[i], sample, return_dict=False)[0]
        return nxt.float() / a1, c * self.transfer(i)

    def transfer(self, i: int) -> float:
        """How step i scales the noise part of the sample: c_{i+1} / c_i."""
        return float(self.noise[i + 1] / self.noise[i])
