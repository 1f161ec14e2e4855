"""Scheduler families for the Panoramic Denoiser: each drives a diffusers scheduler's own
``set_timesteps`` / ``step`` on a state kept split on the sphere.

The denoiser's state at step i is ``z_i = a_i m_i + c_i eps``: a signal ``m`` (in units of
the clean latent) that lives on the equirect grid, and white noise ``eps`` that every view
draws with unit variance (:meth:`engine.animate.fusion.SphereViews.white_noise`). A
deterministic scheduler step is affine in the sample and the denoised estimate x0 (and, for
multistep solvers, the earlier x0s), and it carries the noise part by the ratio of noise
levels: ``step(a m + c eps) = step(a m) + c (c_{i+1} / c_i) eps``. So each step calls the
scheduler on the signal part alone, with the view-fused x0 given in the scheduler's own
prediction type, and multiplies the scalar noise coefficient; nothing is resampled and the
split is exact (``test_schedulers`` checks it against stepping the whole state).

One file per family. Adding one is adding a file and a line in ``FAMILIES``:

- :mod:`.euler` - k-diffusion sigmas: ``EulerDiscreteScheduler`` (SVD, Stable Diffusion)
- :mod:`.flow` - rectified flow: ``FlowMatchEulerDiscreteScheduler`` (Wan, SD3, FLUX)
- :mod:`.dpm` - variance preserving, multistep: ``DPMSolverMultistepScheduler`` (dpmsolver++)

Stochastic settings (ancestral noise, ``s_churn``, SDE solvers) are refused: their fresh
noise inside ``step`` would be drawn on the equirect grid, not per view.
"""

from __future__ import annotations

from ...errors import InputError
from .base import Sampler
from .dpm import DPMSampler
from .euler import EulerSampler
from .flow import FlowMatchSampler

FAMILIES: dict[str, type[Sampler]] = {
    "EulerDiscreteScheduler": EulerSampler,
    "FlowMatchEulerDiscreteScheduler": FlowMatchSampler,
    "DPMSolverMultistepScheduler": DPMSampler,
}


def sampler_for(scheduler, steps: int, **timestep_kwargs) -> Sampler:
    """The :class:`Sampler` of ``scheduler``'s family, its timesteps set for ``steps``.

    timestep_kwargs: passed to ``scheduler.set_timesteps`` (e.g. ``mu`` for flow models with
    dynamic shifting)
    """
    name = type(scheduler).__name__
    family = FAMILIES.get(name)
    if family is None:
        known = ", ".join(sorted(FAMILIES))
        raise InputError(f"the Panoramic Denoiser cannot drive a {name}; supported: {known}")
    return family(scheduler, steps, **timestep_kwargs)


__all__ = ["FAMILIES", "Sampler", "sampler_for"]
