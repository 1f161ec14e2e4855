"""Lifting: panoramic video + depth -> Scene4D (static set + per-frame dynamic sets).

Pano4D's 4D representation (DESIGN.md section 4): Gaussians of pixels outside every region
form one **static** set shared by all frames; Gaussians of animated pixels form a
**dynamic** set per frame. Static areas cannot flicker, and the scene is roughly T times
smaller than T full sets.

Optimisation (4K4DGen eq. 5-6) over perspective views at the origin: the view set plus
randomly rotated cameras each iteration (their targets are exact perspective crops of the
frame, so every camera has ground truth).

1. Frame 0: the static set and frame 0's dynamic set are fitted jointly with
   L_rgb = 0.8 L1 + 0.2 (1 - SSIM).
2. Frames 1..T-1: the static set is frozen; the dynamic set starts from the previous
   frame's (warm start, colours re-sampled from the new frame) and is fitted on views that
   see the regions with L_rgb + lambda_temporal * L1(render_t, render_{t-1}), the temporal
   term of eq. 6 between renders of consecutive frames at the same camera.

Rendering goes through :func:`engine.lift.raster.render_view` (gsplat on CUDA, the
pure-torch rasteriser otherwise).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..camera import View
from ..gaussians import Gaussians, rgb_to_sh0
from ..progress import Progress
from ..sphere import ViewSetConfig, make_views, perspective_view
from .init import (
    InitConfig,
    area_resize,
    equal_area_grid,
    footprint_any,
    init_gaussians,
    sample_at_grid,
    subset,
    to_bchw,
)
from .losses import rgb_loss
from .raster import Render, has_gsplat, render_view
from .regularizers import RegularizerConfig, Regularizers


@dataclass(frozen=True)
class LiftConfig:
    work_height: int = 128  # rows of the equal-area Gaussian grid (~1.27 * h^2 Gaussians)
    view_size: int = 96  # training view size in pixels (square)
    view_fov_deg: float = 90.0
    static_iters: int = 60  # joint static + frame-0 iterations
    dynamic_iters: int = 8  # iterations per later frame
    views_per_iter: int = 2
    jitter_fraction: float = 0.5  # share of randomly rotated cameras among training views
    lr_sh: float = 0.02
    lr_opacity: float = 0.05
    lr_scale: float = 0.01
    lambda_temporal: float = 0.05
    eval_views: int = 6  # held-out views between the training rings
    eval_size: int = 256  # evaluation views (pixels), independent of the training size
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" (see lift_device)
    init: InitConfig = InitConfig()
    regularizers: RegularizerConfig = RegularizerConfig()  # L_geo, L_sem (eq. 5)


@dataclass
class LiftResult:
    static: Gaussians
    dynamic: list[Gaussians]
    metrics: dict[str, float]


# ----------------------------------------------------------------------------------------
# targets


class Targets:
    """Perspective crops of the frames, taken from an area-filtered copy of each frame whose
    angular resolution matches the views (no aliasing). Frames are filtered on first use."""

    def __init__(
        self, frames: np.ndarray, view_size: int, fov_deg: float, device: torch.device
    ) -> None:
        self.device = device
        px_deg = fov_deg / view_size
        self.height = int(min(frames.shape[1], max(16, round(180.0 / px_deg))))
        self.source = frames
        self.cache: dict[int, Tensor] = {}

    def __call__(self, t: int, view: View) -> Tensor:
        """[h, w, 3] float target for frame t."""
        if t not in self.cache:
            frame = area_resize(np.asarray(self.source[t]), self.height)
            self.cache[t] = (to_bchw(frame) / 255).to(self.device)  # a copy (frames may be memmaps)
        return perspective_view(self.cache[t], view)[0].permute(1, 2, 0)


HELDOUT_CLEARANCE_DEG = 20.0  # random training cameras never look this close to a held-out one


def _random_view(rng: random.Random, cfg: LiftConfig, avoid: np.ndarray) -> View:
    """A uniformly random direction at the origin, at least HELDOUT_CLEARANCE_DEG away from
    every direction in ``avoid`` [M, 3] (the held-out evaluation views stay held out)."""
    limit = math.cos(math.radians(HELDOUT_CLEARANCE_DEG))
    while True:
        yaw = rng.uniform(-180.0, 180.0)
        pitch = math.degrees(math.asin(rng.uniform(-1.0, 1.0)))
        view = View(yaw, pitch, cfg.view_fov_deg, cfg.view_size, cfg.view_size)
        if len(avoid) == 0 or float((avoid @ view.forward()).max()) < limit:
            return view


def heldout_views(cfg: LiftConfig) -> list[View]:
    """Views halfway between the training rings, never used for training."""
    n = cfg.eval_views
    out = []
    for i in range(n):
        pitch = 25.0 if i % 2 == 0 else -25.0
        out.append(
            View(22.5 + 360.0 * i / n, pitch, cfg.view_fov_deg, cfg.view_size, cfg.view_size)
        )
    return out


# ----------------------------------------------------------------------------------------
# parameters


class _Params:
    """Trainable tensors of a Gaussian set: SH, opacity logits and (optionally) log-scales;
    positions and orientations stay where the depth put them (a single viewpoint cannot
    move them reliably). Later frames' dynamic sets keep frame 0's scales, so only colour
    and opacity change over time (and the scene stores the rest once)."""

    def __init__(self, g: Gaussians, scales: bool = True) -> None:
        self.fixed = g
        self.sh = g.sh.clone().requires_grad_(True)
        self.opacities = g.opacities.clone().requires_grad_(True)
        self.log_scales = g.log_scales.clone().requires_grad_(scales)

    def groups(self, cfg: LiftConfig) -> list[dict]:
        groups = [
            {"params": [self.sh], "lr": cfg.lr_sh},
            {"params": [self.opacities], "lr": cfg.lr_opacity},
        ]
        if self.log_scales.requires_grad:
            groups.append({"params": [self.log_scales], "lr": cfg.lr_scale})
        return groups

    def gaussians(self) -> Gaussians:
        return Gaussians(
            self.fixed.means, self.fixed.quats, self.log_scales, self.opacities, self.sh
        )


def _render(g: Gaussians, view: View) -> Tensor:
    return render_view(g, view, background=torch.zeros(3, device=g.means.device)).rgb


def _render_full(g: Gaussians, view: View, with_depth: bool) -> Render:
    bg = torch.zeros(3, device=g.means.device)
    return render_view(g, view, background=bg, with_depth=with_depth)


def lift_device(setting: str) -> torch.device:
    """Where lifting runs: "cuda" (gsplat rasteriser) or "cpu" (pure-torch rasteriser);
    "auto" picks CUDA when CUDA and gsplat are both available."""
    if setting == "cuda" or (setting == "auto" and has_gsplat()):
        return torch.device("cuda")
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------
# the stage


class Lifter:
    """Builds and optimises the Scene4D Gaussians (see the module docstring)."""

    def __init__(self, cfg: LiftConfig = LiftConfig()) -> None:
        self.cfg = cfg
        self.device = lift_device(cfg.device)
        self._held_out_dirs = np.stack([v.forward() for v in heldout_views(cfg)])

    def initial_sets(
        self, frames: np.ndarray, depth: np.ndarray, weight: np.ndarray
    ) -> tuple[Gaussians, Gaussians, Tensor]:
        """Static set, frame-0 dynamic set, and the dynamic sample mask of the grid."""
        cfg = self.cfg
        grid = equal_area_grid(cfg.work_height)
        d = sample_at_grid(area_resize(np.asarray(depth[0], np.float32), cfg.work_height), grid)
        # a grid sample is dynamic if any animated full-res pixel falls in its footprint
        animated = area_resize((weight > 0).astype(np.float32), cfg.work_height) > 0
        dyn = footprint_any(animated, grid)
        rgb = sample_at_grid(area_resize(np.asarray(frames[0]), cfg.work_height), grid) / 255
        g = init_gaussians(grid, rgb, d[:, 0], cfg.init).to(self.device)
        self._grid = grid
        dyn = dyn.to(self.device)
        return subset(g, ~dyn), subset(g, dyn), dyn

    def frame_colours(self, frame: np.ndarray, dyn: Tensor) -> Tensor:
        """SH DC of the dynamic samples taken from ``frame``: [M, 1, 3]."""
        rgb = sample_at_grid(area_resize(np.asarray(frame), self.cfg.work_height), self._grid)
        return rgb_to_sh0((rgb.to(self.device)[dyn] / 255).clamp(0, 1))[:, None, :]

    def run(
        self,
        frames: np.ndarray,
        depth: np.ndarray,
        weight: np.ndarray,
        progress: Progress | None = None,
        *,
        resume_static: Gaussians | None = None,
        resume_dynamic: list[Gaussians] | None = None,
        on_static: Callable[[Gaussians, Gaussians], None] | None = None,
        on_frame: Callable[[int, Gaussians], None] | None = None,
    ) -> LiftResult:
        """frames [T, H, W, 3] uint8, depth [T, h, w], weight [H, W] -> LiftResult.

        ``on_static`` / ``on_frame`` are checkpoint hooks; ``resume_*`` restart from them.
        """
        progress = progress or Progress("lift")
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        n_frames = frames.shape[0]
        targets = Targets(frames, cfg.view_size, cfg.view_fov_deg, self.device)
        self._regs = Regularizers(cfg.regularizers, depth, self.device, cfg.seed)
        static0, dyn0, dyn_mask = self.initial_sets(frames, depth, weight)
        region_views = self._region_views(weight)
        # share of progress: static phase, then one slot per later frame
        static_share = 0.5 if n_frames > 1 and len(dyn0) else 0.97
        if resume_static is not None and resume_dynamic:
            static = resume_static.to(self.device)
            dynamic = [g.to(self.device) for g in resume_dynamic]
        else:
            static, d0 = self._fit_static(
                static0, dyn0, targets, rng, progress.sub(0, static_share)
            )
            dynamic = [d0]
            if on_static:
                on_static(static, d0)
        for t in range(len(dynamic), n_frames):
            sub = progress.sub(
                static_share + (0.97 - static_share) * (t - 1) / max(n_frames - 1, 1),
                static_share + (0.97 - static_share) * t / max(n_frames - 1, 1),
            )
            g = self._fit_dynamic(
                static, dynamic[-1], frames[t], dyn_mask, t, targets, region_views, rng, sub
            )
            dynamic.append(g)
            if on_frame:
                on_frame(t, g)
        progress.update(0.97, "lifted")
        metrics = self.evaluate(static, dynamic, frames, weight, progress.sub(0.97, 1.0))
        metrics.update(gaussians_static=len(static), gaussians_dynamic_per_frame=len(dynamic[0]))
        metrics["lift_device"] = str(self.device)
        return LiftResult(static.to("cpu"), [g.to("cpu") for g in dynamic], metrics)

    # -- phases ------------------------------------------------------------------------

    def _training_view(self, rng: random.Random, base: list[View]) -> View:
        if not base or rng.random() < self.cfg.jitter_fraction:
            return _random_view(rng, self.cfg, self._held_out_dirs)
        return rng.choice(base)

    def _fit_static(
        self,
        static: Gaussians,
        dyn: Gaussians,
        targets: Targets,
        rng: random.Random,
        progress: Progress,
    ) -> tuple[Gaussians, Gaussians]:
        cfg = self.cfg
        ps, pd = _Params(static), _Params(dyn)
        opt = torch.optim.Adam(ps.groups(cfg) + pd.groups(cfg), eps=1e-15)
        base = make_views(ViewSetConfig(fov_deg=cfg.view_fov_deg, size=cfg.view_size))
        for it in range(cfg.static_iters):
            g = Gaussians.cat([ps.gaussians(), pd.gaussians()])
            loss = torch.zeros((), device=self.device)
            for _ in range(cfg.views_per_iter):
                progress.cancel.check()  # an iteration can take ~1 s: check per view
                view = self._training_view(rng, base)
                render = _render_full(g, view, self._regs.needs_depth)
                loss = loss + rgb_loss(render.rgb, targets(0, view))
                frac = (it + 1) / max(cfg.static_iters, 1)
                loss = loss + self._regs.loss(g, view, 0, frac, render)
            progress.cancel.check()
            opt.zero_grad(set_to_none=True)
            (loss / cfg.views_per_iter).backward()
            opt.step()
            progress.update(
                (it + 1) / max(cfg.static_iters, 1), f"static {it + 1}/{cfg.static_iters}"
            )
        return ps.gaussians().detach(), pd.gaussians().detach()

    def _fit_dynamic(
        self,
        static: Gaussians,
        prev: Gaussians,
        frame: np.ndarray,
        dyn_mask: Tensor,
        t: int,
        targets: Targets,
        region_views: list[View],
        rng: random.Random,
        progress: Progress,
    ) -> Gaussians:
        cfg = self.cfg
        start = Gaussians(prev.means, prev.quats, prev.log_scales, prev.opacities, prev.sh.clone())
        if len(start) == 0:
            progress.update(1.0)
            return start
        start.sh[:, :1] = self.frame_colours(frame, dyn_mask)
        pd = _Params(start, scales=False)
        opt = torch.optim.Adam(pd.groups(cfg), eps=1e-15)
        prev_full = Gaussians.cat([static, prev])
        for it in range(cfg.dynamic_iters):
            g = Gaussians.cat([static, pd.gaussians()])
            loss = torch.zeros((), device=self.device)
            for _ in range(cfg.views_per_iter):
                progress.cancel.check()
                view = self._training_view(rng, region_views)
                full = _render_full(g, view, self._regs.needs_depth)
                render = full.rgb
                with torch.no_grad():
                    before = _render(prev_full, view)
                loss = loss + rgb_loss(render, targets(t, view))
                loss = loss + cfg.lambda_temporal * (render - before).abs().mean()
                frac = (it + 1) / max(cfg.dynamic_iters, 1)
                loss = loss + self._regs.loss(g, view, t, frac, full)
            progress.cancel.check()
            opt.zero_grad(set_to_none=True)
            (loss / cfg.views_per_iter).backward()
            opt.step()
            progress.update(
                (it + 1) / cfg.dynamic_iters, f"frame {t}: {it + 1}/{cfg.dynamic_iters}"
            )
        return pd.gaussians().detach()

    def _region_views(self, weight: np.ndarray) -> list[View]:
        """Views of the default set that see a noticeable part of the animated regions."""
        cfg = self.cfg
        views = make_views(ViewSetConfig(fov_deg=cfg.view_fov_deg, size=cfg.view_size))
        w = area_resize((weight > 0).astype(np.float32), 128)
        keep = [v for v in views if float(perspective_view(w, v).mean()) > 0.01]
        return keep or views

    # -- evaluation ----------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(
        self,
        static: Gaussians,
        dynamic: list[Gaussians],
        frames: np.ndarray,
        weight: np.ndarray,
        progress: Progress | None = None,
    ) -> dict[str, float]:
        """PSNR at the training directions and at held-out views (frames 0 and T/2), at a
        fixed evaluation size against full-detail targets; static-area flicker. Reports
        progress (and so checks for cancellation) after every rendered view."""
        cfg = self.cfg
        progress = progress or Progress("lift")
        size, fov = cfg.eval_size, cfg.view_fov_deg
        targets = Targets(frames, size, fov, self.device)
        train = make_views(ViewSetConfig(fov_deg=fov, size=size))
        held = [dataclasses.replace(v, height=size, width=size) for v in heldout_views(cfg)]
        frame_ids = sorted({0, len(dynamic) // 2})
        total, done = len(frame_ids) * (len(train) + len(held)), 0

        def mean_psnr(views: list[View]) -> float:
            nonlocal done
            vals = []
            for t in frame_ids:
                g = Gaussians.cat([static, dynamic[t]])
                for v in views:
                    mse = float(((_render(g, v).clamp(0, 1) - targets(t, v)) ** 2).mean())
                    vals.append(10 * math.log10(1 / max(mse, 1e-12)))
                    done += 1
                    progress.update(done / total, f"evaluating {done}/{total} views")
            return float(np.mean(vals))

        return {
            "psnr_train": mean_psnr(train),
            "psnr_heldout": mean_psnr(held),
            "static_flicker": self._flicker(static, dynamic, weight, held, progress),
        }

    def _flicker(
        self,
        static: Gaussians,
        dynamic: list[Gaussians],
        weight: np.ndarray,
        views: list[View],
        progress: Progress,
    ) -> float:
        """Mean |render(t+1) - render(t)| (0..255) over view pixels that see only static scene."""
        if len(dynamic) < 2:
            return 0.0
        animated = area_resize((weight > 0).astype(np.float32), 256)
        diffs = []
        for v in views:
            static_px = torch.from_numpy(np.asarray(perspective_view(animated, v)) == 0)
            static_px = static_px.to(self.device)
            if not bool(static_px.any()):
                continue
            prev = _render(Gaussians.cat([static, dynamic[0]]), v)
            for t in range(1, min(len(dynamic), 4)):
                cur = _render(Gaussians.cat([static, dynamic[t]]), v)
                diffs.append(float((cur - prev).abs()[static_px].mean()) * 255)
                prev = cur
            progress.update(1.0, "measuring flicker in static areas")
        return float(np.mean(diffs)) if diffs else 0.0
