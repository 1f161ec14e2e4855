"""The scheduler families of the Panoramic Denoiser against diffusers' own schedulers: the
model output each writes has the x0 it was given (by each prediction type's definition),
and stepping the split state (signal + scalar noise coefficient) equals stepping the whole
noisy sample with the scheduler, for single- and multistep solvers."""

from __future__ import annotations

import pytest
import torch

from engine.animate.schedulers import FAMILIES, sampler_for
from engine.errors import InputError


def _schedulers():
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
    )

    return {
        "euler-v-leading": EulerDiscreteScheduler(  # SVD's: init_noise_sigma != sigma_max
            prediction_type="v_prediction",
            use_karras_sigmas=True,
            sigma_min=0.002,
            sigma_max=700.0,
            timestep_spacing="leading",
            steps_offset=1,
        ),  # fmt: skip
        "euler-eps": EulerDiscreteScheduler(timestep_spacing="trailing"),
        "euler-sample": EulerDiscreteScheduler(prediction_type="sample"),
        "flow-shift": FlowMatchEulerDiscreteScheduler(shift=5.0),
        "dpm2m-eps": DPMSolverMultistepScheduler(solver_order=2),
        "dpm3m-v": DPMSolverMultistepScheduler(solver_order=3, prediction_type="v_prediction"),
    }


NAMES = list(_schedulers())


def _noisy(kind, sched, x0, eps, i):
    """(sample, the model output that has x0 by definition) at step i."""
    s = float(sched.sigmas[i])
    if kind.startswith("euler"):  # z = x0 + s eps; v = (eps - s x0) / sqrt(s^2 + 1)
        z = x0 + s * eps
        pred = sched.config.prediction_type
        out = {"epsilon": eps, "sample": x0}.get(pred, (eps - s * x0) / (s * s + 1) ** 0.5)
    elif kind.startswith("flow"):  # z = (1 - t) x0 + t eps; velocity eps - x0
        z, out = (1 - s) * x0 + s * eps, eps - x0
    else:  # VP: alpha = 1 / sqrt(s^2 + 1), sigma_t = s alpha; v = alpha eps - sigma_t x0
        a = 1 / (s * s + 1) ** 0.5
        z = a * x0 + s * a * eps
        out = eps if sched.config.prediction_type == "epsilon" else a * eps - s * a * x0
    return z, out


@pytest.mark.parametrize("name", NAMES)
def test_model_output_has_the_given_x0(name):
    sched = _schedulers()[name]
    smp = sampler_for(sched, 6)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    for i in (0, 2, 5):
        z, want = _noisy(name, sched, x0, eps, i)
        torch.testing.assert_close(smp.to_output(x0, z, i), want, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("start", [0, 2])
def test_split_state_steps_as_the_whole_sample(name, start):
    """Reference: scheduler.step on z = a m + c eps with the model output of a linear
    denoiser, exactly as a pipeline loop does; ours steps the signal alone and scales c."""
    steps = 6
    g = torch.Generator().manual_seed(1)
    mu, eps = torch.randn(2, 2, 3, 4, 4, generator=g)
    ref_sched = _schedulers()[name]
    smp = sampler_for(_schedulers()[name], steps)
    ref_sched.set_timesteps(steps)
    ref_sched.set_begin_index(start)
    c = smp.begin(start)
    m = mu * 0.5 if start else torch.zeros_like(mu)
    z = float(smp.signal[start]) * m + c * eps  # what the pipeline holds
    for i in range(start, steps):
        x0 = mu + 0.3 * (z - mu)  # any estimate that depends on the sample
        _, out = _noisy(
            name, ref_sched, x0, (z - float(smp.signal[i]) * x0) / float(smp.noise[i]), i
        )
        if name.startswith("euler"):
            ref_sched.is_scale_input_called = True
        z = ref_sched.step(out, ref_sched.timesteps[i], z, return_dict=False)[0]
        m, c = smp.advance(m, x0, c, i)
        torch.testing.assert_close(float(smp.signal[i + 1]) * m + c * eps, z, atol=1e-4, rtol=1e-4)
    assert c == pytest.approx(float(smp.noise[-1]) * 1.0, abs=1e-6)


def test_euler_leading_starts_from_the_schedulers_initial_noise():
    sched = _schedulers()["euler-v-leading"]
    smp = sampler_for(sched, 4)
    assert smp.begin(0) == pytest.approx(float((smp.sigmas[0] ** 2 + 1) ** 0.5))
    assert smp.begin(2) == pytest.approx(float(smp.sigmas[2]))  # img2img: x0 + sigma eps


def test_unsupported_and_stochastic_schedulers_are_refused_with_the_reason():
    from diffusers import (
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
    )

    with pytest.raises(InputError, match="cannot drive a EulerAncestralDiscreteScheduler"):
        sampler_for(EulerAncestralDiscreteScheduler(), 4)
    with pytest.raises(InputError, match="stochastic_sampling"):
        sampler_for(FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), 4)
    with pytest.raises(InputError, match="SDE"):
        sampler_for(DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"), 4)
    assert set(FAMILIES) >= {"EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler"}
