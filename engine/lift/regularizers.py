"""Lifting regularisers of 4K4DGen eq. 5 (from DreamScene360): L_geo and L_sem.

- L_geo = 1 - Pearson(R_D(G, 0, d_i), Theta(gamma(I, d_i))): the depth rendered at a
  training view against the estimated depth seen from that view (here: the aligned
  panoramic depth of the frame, projected into the view). Pearson is invariant to scale
  and offset, so it regularises the *shape* of the rendered depth only. Pixels the render
  does not cover (alpha < 0.5) are left out; a view whose estimated depth is constant has
  no shape to match and adds nothing.
- L_sem = 1 - cos(CLS(R(G, 0, d_i)), CLS(R(G, delta, d_i))): DINOv2's CLS feature
  (``transformers.Dinov2Model``, pooled output) of the render at a training view against
  the render from a camera displaced by delta in [-a, a]^3. The undisplaced render is the
  reference (no gradient through it). The range a is 0.05, 0.1, 0.2 from 54 %, 66 % and
  90 % of the iterations on (the paper: iterations 5400, 6600, 9000 of 10000); before the
  first milestone the term is off.

Weights: lambda_geo = lambda_sem = 0.05 (the paper's), configurable. Two mistakes of the
released 4K4DGen code are deliberately *not* repeated here: (1) its depth weight is applied
twice (the geometric term is multiplied by its lambda inside the loss helper and again by
the caller) — here each term is multiplied by its weight exactly once, in
:meth:`Regularizers.loss`; (2) its "reference" masked term compares a frame with itself
(the render of frame t against a target built from the same frame t), which is identically
zero and only costs time — the temporal term lives in the lifter and compares frame t with
frame t-1 at the same camera, and nothing here compares a render with itself.
LPIPS (TiP4GEN) is not implemented.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import View
from ..errors import InputError
from ..gaussians import Gaussians
from ..hub import locate, offline
from ..sphere import perspective_view
from .raster import Render, Roi, render_view

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SEM_FALLBACK = "drop --dino-model to lift without L_sem"


@dataclass(frozen=True)
class RegularizerConfig:
    lambda_geo: float = 0.05
    lambda_sem: float = 0.05
    dino_model: str | None = None  # DINOv2 folder or hub id; None: L_sem off
    dino_size: int = 224  # renders are resized to this for DINOv2
    jitter_milestones: tuple[float, ...] = (0.54, 0.66, 0.9)  # fractions of the iterations
    jitter_radii: tuple[float, ...] = (0.05, 0.1, 0.2)  # camera displacement range from each


def pearson_loss(rendered: Tensor, estimated: Tensor, mask: Tensor | None = None) -> Tensor:
    """1 - Pearson correlation of two depth maps over ``mask`` (all pixels if None).

    rendered, estimated: Tensor  # [H, W] (gradient flows into ``rendered``)
    mask: Tensor | None  # [H, W] bool
    returns: scalar in [0, 2]; 0 when fewer than 2 pixels or ``estimated`` is constant.
    """
    x, y = rendered.reshape(-1), estimated.reshape(-1).to(rendered)
    if mask is not None:
        keep = mask.reshape(-1)
        x, y = x[keep], y[keep]
    if x.numel() < 2:
        return rendered.sum() * 0.0
    xc, yc = x - x.mean(), y - y.mean()
    vy = (yc * yc).sum()
    if float(vy) <= 1e-12 * max(float((y * y).sum()), 1e-30):
        return rendered.sum() * 0.0
    denom = torch.sqrt((xc * xc).sum() * vy).clamp_min(1e-12)
    return 1.0 - (xc * yc).sum() / denom


def jitter_radius(fraction: float, cfg: RegularizerConfig) -> float:
    """The camera displacement range at ``fraction`` (0..1) of the iterations (0: off)."""
    radius = 0.0
    for start, r in zip(cfg.jitter_milestones, cfg.jitter_radii, strict=True):
        if fraction >= start:
            radius = r
    return radius


def jittered(view: View, radius: float, rng: random.Random) -> View:
    """``view`` moved by a uniform random vector in [-radius, radius]^3."""
    p = np.asarray(view.position, dtype=np.float64)
    delta = np.array([rng.uniform(-radius, radius) for _ in range(3)])
    return dataclasses.replace(view, position=tuple(float(v) for v in p + delta))


class DinoCLS:
    """DINOv2's pooled CLS feature of images, differentiable w.r.t. the images."""

    def __init__(self, spec: str, size: int = 224, device: str | torch.device = "cpu") -> None:
        probe = locate(spec, "config.json")
        if probe.path is None:
            raise InputError(f"no DINOv2 weights: {probe.reason}; {SEM_FALLBACK}")
        from transformers import Dinov2Model  # heavy: only when L_sem is on
        from transformers.utils import logging

        logging.disable_progress_bar()
        try:
            model = Dinov2Model.from_pretrained(str(probe.path), local_files_only=offline())
        except (OSError, ValueError) as e:
            raise InputError(f"cannot load DINOv2 from {probe.path}: {e}; {SEM_FALLBACK}") from e
        self.model = model.to(device).eval().requires_grad_(False)
        self.size = size
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def __call__(self, images: Tensor) -> Tensor:
        """images: Tensor  # [B, H, W, 3] in [0, 1] -> [B, D] CLS features."""
        x = images.permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) - self.mean) / self.std
        return self.model(pixel_values=x).pooler_output


class Regularizers:
    """L_geo and L_sem for the lifter: ``loss(g, view, t, fraction, render)``.

    depth: [T, H, W] (or [H, W]) estimated panoramic depth (distance along the ray).
    """

    def __init__(
        self,
        cfg: RegularizerConfig,
        depth: np.ndarray | None,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        self.cfg, self.device = cfg, device
        self.rng = random.Random(seed)
        self.depth = None
        if depth is not None and cfg.lambda_geo > 0:
            d = np.asarray(depth, dtype=np.float32)
            self.depth = d[None] if d.ndim == 2 else d
        self.dino = None
        if cfg.dino_model and cfg.lambda_sem > 0:
            self.dino = DinoCLS(cfg.dino_model, cfg.dino_size, device)
        self._cache: dict[int, Tensor] = {}

    @property
    def needs_depth(self) -> bool:
        return self.depth is not None

    @property
    def active(self) -> bool:
        return self.depth is not None or self.dino is not None

    def estimated_depth(self, t: int, view: View, roi: Roi | None = None) -> Tensor:
        """The estimated depth of frame t seen from ``view`` (or its rectangle): [h, w]."""
        assert self.depth is not None
        t = min(t, self.depth.shape[0] - 1)
        if t not in self._cache:
            self._cache = {t: torch.from_numpy(np.array(self.depth[t]))[None, None].to(self.device)}
        est = perspective_view(self._cache[t], view)[0, 0]
        if roi is not None:
            x0, y0, x1, y1 = roi
            est = est[y0:y1, x0:x1]
        return est

    def geo(self, render: Render, t: int, view: View, roi: Roi | None = None) -> Tensor:
        """L_geo (unweighted) for a render made ``with_depth``."""
        assert render.depth is not None
        est = self.estimated_depth(t, view, roi)
        return pearson_loss(render.depth, est, render.alpha.detach() > 0.5)

    def sem(self, g: Gaussians, view: View, radius: float) -> Tensor:
        """L_sem (unweighted): DINOv2 CLS of the render at ``view`` (the reference, no
        gradient) against a camera moved by up to ``radius``; both rendered at the DINO
        input size."""
        assert self.dino is not None
        small = dataclasses.replace(view, height=self.cfg.dino_size, width=self.cfg.dino_size)
        moved = jittered(small, radius, self.rng)
        bg = torch.zeros(3, device=g.means.device)
        with torch.no_grad():
            ref = self.dino(render_view(g, small, background=bg).rgb[None])
        other = render_view(g, moved, background=bg).rgb
        return 1.0 - F.cosine_similarity(ref, self.dino(other[None]), dim=-1).mean()

    def loss(
        self,
        g: Gaussians,
        view: View,
        t: int,
        fraction: float,
        render: Render,
        roi: Roi | None = None,
    ) -> Tensor:
        """lambda_geo L_geo + lambda_sem L_sem — each weight applied exactly once.

        ``render`` is of ``view``'s rectangle ``roi`` (the whole view when None)."""
        total = render.rgb.sum() * 0.0
        if self.depth is not None and render.depth is not None:
            total = total + self.cfg.lambda_geo * self.geo(render, t, view, roi)
        radius = jitter_radius(fraction, self.cfg)
        if self.dino is not None and radius > 0:
            total = total + self.cfg.lambda_sem * self.sem(g, view, radius)
        return total
