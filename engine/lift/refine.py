"""Refinement passes: gradient steps on the lifting losses of 4K4DGen eq. 5-6.

After the linear colour solve the Gaussians already render the input back closely; a few
passes over the training views at full resolution then adjust opacities, scales and
colours together (what the linear solve cannot: the weights themselves). Each step renders
one view (or the rectangle of it that the trained Gaussians touch) and descends

    L = L_rgb(render, target) + lambda_temporal L1(render, render of frame t-1)
        + lambda_geo L_geo + lambda_sem L_sem

with L_rgb = 0.8 L1 + 0.2 (1 - SSIM); the temporal term only for later frames (it ties a
frame to the previous one at the same camera, eq. 6), L_geo / L_sem from
:class:`engine.lift.regularizers.Regularizers`. Positions and orientations stay where the
depth put them. Adam, one step per view, views in a fixed shuffled order per pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..camera import View
from ..gaussians import Gaussians
from ..progress import Progress
from ..sphere import perspective_view
from .init import to_bchw
from .losses import l1, rgb_loss
from .raster import Roi, render_view
from .regularizers import Regularizers


@dataclass(frozen=True)
class RefineConfig:
    passes: int = 2  # sweeps over the training views for the static set and frame 0
    dynamic_passes: int = 0  # sweeps over the views that see the regions, per later frame
    lr: float = 0.02  # colour lr / 2, opacity 5 lr, log-scale lr
    lambda_temporal: float = 0.05  # eq. 6 temporal term (later frames)
    random_views: int = 0  # per pass, extra views in random directions at the input's
    #                        angular resolution (the fit then holds between training views)


@dataclass
class Step:
    """One training camera: a view, the rectangle of it that is rendered and its target."""

    view: View
    roi: Roi
    target: Tensor  # [h, w, 3] of the rectangle
    previous: Tensor | None = None  # [h, w, 3] render of frame t-1 there (temporal term)


class _Trainable:
    """Opacity logits, log-scales and SH of the ``free`` Gaussians as leaf tensors."""

    def __init__(self, g: Gaussians, free: Tensor, cfg: RefineConfig) -> None:
        self.g, self.free = g, free
        self.opacities = g.opacities[free].clone().requires_grad_(True)
        self.log_scales = g.log_scales[free].clone().requires_grad_(True)
        self.sh = g.sh[free].clone().requires_grad_(True)
        self.opt = torch.optim.Adam(
            [
                {"params": [self.sh], "lr": cfg.lr / 2},
                {"params": [self.opacities], "lr": cfg.lr * 5},
                {"params": [self.log_scales], "lr": cfg.lr},
            ],
            eps=1e-15,
        )

    def gaussians(self) -> Gaussians:
        """All Gaussians, the free ones taking the trainable values (differentiable)."""
        idx = torch.nonzero(self.free).squeeze(-1)

        def put(full: Tensor, part: Tensor) -> Tensor:
            return full.detach().index_put((idx,), part)

        g = self.g
        return Gaussians(
            g.means,
            g.quats,
            put(g.log_scales, self.log_scales),
            put(g.opacities, self.opacities),
            put(g.sh, self.sh),
        )


def refine(
    g: Gaussians,
    steps: list[Step] | Callable[[int], list[Step]],
    passes: int,
    cfg: RefineConfig,
    regs: Regularizers,
    t: int,
    *,
    free: Tensor | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> Gaussians:
    """``passes`` sweeps of Adam over ``steps`` (a list, or a function of the pass number
    giving that pass's steps), training the ``free`` Gaussians [N] bool (all when None);
    returns the refined set (detached)."""
    progress = progress or Progress("lift")
    if passes <= 0 or len(g) == 0:
        return g
    dev = g.means.device
    free = torch.ones(len(g), dtype=torch.bool, device=dev) if free is None else free
    params = _Trainable(g, free, cfg)
    rng = random.Random(seed)
    bg = torch.zeros(3, device=dev)
    for p in range(passes):
        todo = steps(p) if callable(steps) else steps
        rng.shuffle(order := list(range(len(todo))))
        for k, i in enumerate(order):
            step = todo[i]
            cur = params.gaussians()
            render = render_view(
                cur, step.view, step.roi, background=bg, with_depth=regs.needs_depth
            )
            fraction = (p + (k + 1) / len(todo)) / passes
            loss = step_loss(render, step, cfg, regs, cur, t, fraction)
            params.opt.zero_grad(set_to_none=True)
            loss.backward()
            params.opt.step()
            progress.update(fraction, f"refining: pass {p + 1}/{passes}, view {k + 1}/{len(todo)}")
    return params.gaussians().detach()


def step_loss(render, step: Step, cfg: RefineConfig, regs: Regularizers, g, t, fraction):
    """The loss of one refinement step (module docstring)."""
    loss = rgb_loss(render.rgb, step.target)
    if step.previous is not None and cfg.lambda_temporal > 0:
        loss = loss + cfg.lambda_temporal * l1(render.rgb, step.previous)
    return loss + regs.loss(g, step.view, t, fraction, render, step.roi)


def random_steps(
    frame: np.ndarray, width: int, n: int, seed: int, device: torch.device | str = "cpu"
) -> list[Step]:
    """``n`` 60-degree views in uniformly random directions (with a random roll) at the
    angular resolution of an equirect ``width`` pixels wide, with their targets: crops of
    ``frame`` [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    size = max(8, round(width * 60.0 / 360.0))
    img = (to_bchw(frame) / 255).to(device)
    steps = []
    for _ in range(n):
        yaw = float(rng.uniform(-180.0, 180.0))
        pitch = float(np.degrees(np.arcsin(rng.uniform(-1.0, 1.0))))
        view = View(yaw, pitch, 60.0, size, size, float(rng.uniform(-45.0, 45.0)))
        target = perspective_view(img, view)[0].permute(1, 2, 0)
        steps.append(Step(view, (0, 0, size, size), target))
    return steps
