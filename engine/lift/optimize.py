"""Lifting: panoramic video + per-frame depth -> Scene4D at the input's own resolution.

Pano4D's 4D representation (DESIGN.md section 4): the Gaussians of cells outside every
region form one **static** set shared by all frames; those of animated cells form a
**dynamic** set whose attributes change per frame, geometry included. Static areas cannot
flicker, and the scene is far smaller than T full sets.

The stage, for a panorama of H x W pixels:

1. Cells (:mod:`.cells`): adaptive, about ``cells.density`` Gaussians per input pixel,
   small where the image has detail or depth edges, large in flat areas.
2. Gaussians (:mod:`.init`) on the cells' rays at frame 0's depth, sized to each cell's
   footprint, in a view-independent compositing order; background layers behind depth
   edges (:mod:`.layers`) so an eye off the centre sees background, not holes.
3. Linear colour solve (:mod:`.solve`) against cube maps of training views at the input's
   angular resolution: the colours that render frame 0 back best, in closed form.
4. Refinement passes (:mod:`.refine`): Adam on opacities, scales and colours with the
   eq. 5 losses at full resolution.
5. Later frames: the dynamic Gaussians follow depth[t] along their rays (means and scales
   scale with d_t / d_0), and their colours are solved again with the static set fixed,
   on the pixels they touch, with the eq. 6 temporal term (``lambda_temporal`` of the
   previous frame's render mixed into the target: the L2 form of the term); optional
   per-frame refinement passes use its L1 form.
6. Evaluation (:mod:`.evaluate`): PSNR at the input's own angular resolution.

Rendering goes through :mod:`engine.lift.raster` (gsplat on CUDA for the refinement, the
pure-torch rasteriser otherwise; the weights of the colour solve always come from the
torch compositor, on whichever device).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..gaussians import Gaussians, rgb_to_sh0, sh0_to_rgb
from ..io import resize_depth
from ..progress import Progress
from .cells import CellConfig, Cells, build_cells
from .evaluate import evaluate
from .init import InitConfig, cell_depths, cell_values, init_gaussians, subset
from .layers import LayerConfig, background_layer
from .raster import has_gsplat, render_view
from .refine import RefineConfig, Step, random_steps, refine
from .regularizers import RegularizerConfig, Regularizers
from .solve import (
    SolveConfig,
    Subproblem,
    Weights,
    build_weights,
    dynamic_rois,
    frame_training_views,
    training_views,
)


@dataclass(frozen=True)
class LiftConfig:
    cells: CellConfig = CellConfig()
    init: InitConfig = InitConfig()
    layers: LayerConfig = LayerConfig()  # background behind depth edges
    solve: SolveConfig = SolveConfig()
    refine: RefineConfig = RefineConfig()
    regularizers: RegularizerConfig = RegularizerConfig()  # L_geo, L_sem (eq. 5)
    scale: float = 1.0  # lift a copy at this fraction of the input's resolution (previews)
    evaluate: bool = True  # measured against the input at its own resolution either way
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" (see lift_device)


@dataclass
class LiftResult:
    static: Gaussians
    dynamic: list[Gaussians]
    metrics: dict[str, float | str]


def lift_device(setting: str) -> torch.device:
    """Where lifting runs: "cuda" (gsplat rasteriser) or "cpu" (pure-torch rasteriser);
    "auto" picks CUDA when CUDA and gsplat are both available."""
    if setting == "cuda" or (setting == "auto" and has_gsplat()):
        return torch.device("cuda")
    return torch.device("cpu")


def colours_of(g: Gaussians) -> Tensor:
    """[N, 3] base colours (SH DC) of a set."""
    return sh0_to_rgb(g.sh[:, 0])


def with_colours(g: Gaussians, colours: Tensor) -> Gaussians:
    """``g`` with SH degree 0 colours ``colours`` [N, 3]."""
    return dataclasses.replace(g, sh=rgb_to_sh0(colours)[:, None, :].contiguous())


def follow_depth(g: Gaussians, ratio: Tensor) -> Gaussians:
    """``g`` moved along the rays from the origin by ``ratio`` [N] (means and scales)."""
    r = ratio.to(g.means)
    return dataclasses.replace(
        g, means=g.means * r[:, None], log_scales=g.log_scales + torch.log(r)[:, None]
    )


@dataclass
class _Layout:
    """The frame-0 Gaussians before fitting, their cells and which are dynamic."""

    gaussians: Gaussians
    cells: Cells
    dynamic: Tensor  # [N] bool
    depth0: Tensor  # [N] frame-0 depth of every cell (float64)

    @property
    def layer(self) -> Tensor:
        """[N] bool: the background layer's Gaussians (:mod:`.layers`)."""
        return (self.cells.level < 0).to(self.dynamic.device)


class Lifter:
    """Builds and fits the Scene4D Gaussians (see the module docstring)."""

    def __init__(self, cfg: LiftConfig = LiftConfig()) -> None:
        self.cfg = cfg
        self.device = lift_device(cfg.device)

    def layout(self, frame0: np.ndarray, depth0: np.ndarray, animated: np.ndarray) -> _Layout:
        """Cells, initial Gaussians and the background layer of frame 0."""
        cells = build_cells(frame0, depth0, animated, self.cfg.cells)
        d0 = cell_depths(depth0, cells)
        colours = cell_values(np.asarray(frame0, np.float32) / 255, cells)
        layer = background_layer(frame0, depth0, animated, self.cfg.layers)
        g = Gaussians.cat(
            [
                init_gaussians(cells, colours, d0, self.cfg.init),
                init_gaussians(layer.cells, layer.colours, layer.depth, self.cfg.init),
            ]
        )
        all_cells = Cells.cat([cells, layer.cells])
        dynamic = all_cells.animated.to(self.device)
        return _Layout(g.to(self.device), all_cells, dynamic, torch.cat([d0, layer.depth]))

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
        """frames [T, H, W, 3] uint8, depth [T, h, w] (ray distance, any resolution; the
        input's own is best), weight [H, W] -> LiftResult.

        ``on_static`` / ``on_frame`` are checkpoint hooks; ``resume_*`` restart from them.
        """
        progress = progress or Progress("lift")
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        full_frames, full_animated = frames, np.asarray(weight) > 0
        if cfg.scale != 1.0:
            frames, depth, weight = _rescaled(frames, depth, weight, cfg.scale)
        n_frames, width = frames.shape[0], frames.shape[2]
        animated = np.asarray(weight) > 0
        frame0 = np.asarray(frames[0])
        progress.update(0.0, "laying out cells")
        lay = self.layout(frame0, np.asarray(depth[0]), animated)
        regs = Regularizers(cfg.regularizers, depth, self.device, cfg.seed)
        views = training_views(width, cfg.solve)
        has_later = n_frames > 1 and bool(lay.dynamic.any())
        p_static, p_frames = (0.02, 0.62), (0.62, 0.9) if has_later else (0.9, 0.9)
        if resume_static is not None and resume_dynamic:
            static = resume_static.to(self.device)
            dynamic = [g.to(self.device) for g in resume_dynamic]
        else:
            part = progress.sub(*p_static, prefix="static + frame 0: ")
            static, d0 = self._fit_frame0(lay, frame0, views, regs, part)
            dynamic = [d0]
            if on_static:
                on_static(static, d0)
        if len(dynamic) < n_frames:
            frame_views = frame_training_views(width, cfg.solve)
            self._fit_frames(
                lay, static, dynamic, frames, depth, frame_views, regs, progress.sub(*p_frames),
                on_frame,
            )  # fmt: skip
        metrics: dict[str, float | str] = {}
        if cfg.evaluate:
            full_views = training_views(full_frames.shape[2], cfg.solve)[:6]
            metrics.update(
                evaluate(
                    static, dynamic, full_frames, full_animated, full_views, progress.sub(0.9, 1)
                )
            )
        n = len(static) + len(dynamic[0])
        metrics.update(
            gaussians_static=len(static),
            gaussians_dynamic_per_frame=len(dynamic[0]),
            gaussians_per_input_pixel=round(n / (full_frames.shape[1] * full_frames.shape[2]), 4),
            gaussians_background_layer=int(lay.layer.sum()),
            lift_device=str(self.device),
        )
        progress.update(1.0, "lifted")
        return LiftResult(static.to("cpu"), [g.to("cpu") for g in dynamic], metrics)

    # -- frame 0 -----------------------------------------------------------------------

    def _fit_frame0(
        self, lay: _Layout, frame0: np.ndarray, views, regs: Regularizers, progress: Progress
    ) -> tuple[Gaussians, Gaussians]:
        """Colour solve and refinement of every Gaussian against frame 0."""
        cfg = self.cfg
        g = lay.gaussians
        weights = build_weights(g, views, cfg.solve, progress.sub(0.0, 0.3))
        targets = weights.targets(frame0)
        held = lay.layer if cfg.layers.hold else None
        colours = weights.solve(
            targets, colours_of(g), cfg.solve, progress.sub(0.3, 0.45), held=held
        )
        g = with_colours(g, colours)
        steps = [
            Step(v, roi, _target(targets, rows, v, roi))
            for v, roi, rows in zip(weights.views, weights.rois, weights.rows)
        ]
        del weights

        def pass_steps(p: int) -> list[Step]:  # the training views plus fresh random ones
            n, width = cfg.refine.random_views, frame0.shape[1]
            return steps + random_steps(frame0, width, n, cfg.seed + p, self.device)

        todo = pass_steps if cfg.refine.random_views else steps
        free = None if held is None else ~held
        g = refine(
            g,
            todo,
            cfg.refine.passes,
            cfg.refine,
            regs,
            0,
            free=free,
            progress=progress.sub(0.45, 1),
        )
        return subset(g, ~lay.dynamic), subset(g, lay.dynamic)

    # -- later frames --------------------------------------------------------------------

    def _fit_frames(
        self,
        lay: _Layout,
        static: Gaussians,
        dynamic: list[Gaussians],
        frames: np.ndarray,
        depth: np.ndarray,
        views,
        regs: Regularizers,
        progress: Progress,
        on_frame: Callable[[int, Gaussians], None] | None,
    ) -> None:
        """Per-frame geometry and colours of the dynamic set, appended to ``dynamic``."""
        cfg, d0 = self.cfg, dynamic[0]
        on_cpu = lay.dynamic.cpu()
        cells_d = lay.cells.subset(on_cpu)
        base_depth = lay.depth0[on_cpu]
        free = torch.arange(len(static) + len(d0), device=self.device) >= len(static)
        start, n_frames = len(dynamic), frames.shape[0]
        cached: tuple[Tensor, Weights, Subproblem] | None = None  # (geometry, weights, problem)
        for t in range(start, n_frames):
            part = progress.sub(
                (t - start) / (n_frames - start),
                (t + 1 - start) / (n_frames - start),
                prefix=f"frame {t}/{n_frames - 1}: ",
            )
            part.update(0.0, "geometry")
            geometry = cell_depths(np.asarray(depth[t]), cells_d) / base_depth
            g_t, prev = follow_depth(d0, geometry), dynamic[-1]
            if cached is None or not torch.equal(geometry, cached[0]):
                full = Gaussians.cat([static, with_colours(g_t, colours_of(prev))])
                rois = dynamic_rois(g_t, views)
                w = build_weights(full, views, cfg.solve, part.sub(0, 0.5), rois)
                cached = (geometry, w, w.restrict(free, colours_of(full)))
            _, w, sub = cached
            # the render of frame t-1 on the problem's pixels (eq. 6 temporal term)
            same = torch.equal(g_t.means, prev.means) and torch.equal(
                g_t.log_scales, prev.log_scales
            )
            if same and torch.equal(g_t.opacities, prev.opacities):
                previous = sub.render(colours_of(prev))
            else:
                previous = _render_rows(Gaussians.cat([static, prev]), w)[sub.rows]
            y = w.targets(np.asarray(frames[t]))
            blended = temporal_target(y[sub.rows], previous, cfg.refine.lambda_temporal)
            colours = sub.solve(blended, colours_of(prev), cfg.solve, part.sub(0.5, 0.8))
            g_t = with_colours(g_t, colours)
            if cfg.refine.dynamic_passes > 0:
                before = _render_rows(Gaussians.cat([static, prev]), w)
                g_t = self._refine_frame(static, g_t, w, y, before, free, regs, t, part.sub(0.8, 1))
                cached = None  # opacities and scales changed: new weights next frame
            dynamic.append(g_t)
            if on_frame:
                on_frame(t, g_t)

    def _refine_frame(self, static, g_t, w: Weights, y, previous, free, regs, t, progress):
        """The per-frame refinement passes of the dynamic set (static fixed)."""
        steps = [
            Step(v, roi, _target(y, rows, v, roi), _target(previous, rows, v, roi))
            for v, roi, rows in zip(w.views, w.rois, w.rows)
        ]
        full = Gaussians.cat([static, g_t])
        out = refine(
            full, steps, self.cfg.refine.dynamic_passes, self.cfg.refine, regs, t,
            free=free, progress=progress, seed=self.cfg.seed + t,
        )  # fmt: skip
        return subset(out, free)


def _target(pixels: Tensor, rows: slice, view, roi) -> Tensor:
    """The rows of one view's rectangle as an image [h, w, 3]."""
    x0, y0, x1, y1 = roi
    return pixels[rows].reshape(y1 - y0, x1 - x0, 3)


@torch.no_grad()
def _render_rows(g: Gaussians, w: Weights) -> Tensor:
    """[P, 3] the rasteriser's render of ``g`` at the pixels of ``w`` (its views' rectangles)."""
    dev = g.means.device
    out = torch.empty(w.a.shape[0], 3, device=dev)
    for view, roi, rows in zip(w.views, w.rois, w.rows):
        rgb = render_view(g, view, roi, background=torch.zeros(3, device=dev)).rgb
        out[rows] = rgb.reshape(-1, 3)
    return out


def _rescaled(frames: np.ndarray, depth: np.ndarray, weight: np.ndarray, scale: float):
    """Frames, depth and motion weight at ``scale`` times their resolution."""
    h = max(16, round(frames.shape[1] * scale))
    size = (2 * h, h)
    small = np.stack(
        [cv2.resize(np.asarray(f), size, interpolation=cv2.INTER_AREA) for f in frames]
    )
    d = np.stack([resize_depth(np.asarray(x, np.float32), (h, 2 * h)) for x in depth])
    w = cv2.resize(np.asarray(weight, np.float32), size, interpolation=cv2.INTER_AREA)
    return small, d, w


def temporal_target(target: Tensor, previous: Tensor, lam: float) -> Tensor:
    """The render r minimising ||r - target||^2 + lam ||r - previous||^2 per pixel (the colour
    solve's eq. 6 temporal term): (target + lam previous) / (1 + lam).

    target, previous: Tensor  # [P, 3] the frame's pixels and frame t-1's render of them
    """
    return (target + lam * previous) / (1 + lam)
