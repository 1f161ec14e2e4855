"""The model-backed depth stage: per-view, per-frame model depth -> eq. 4 alignment.

For every frame of the panoramic video, the frame is cut into the view set's perspective
views (engine.sphere), a transformers depth model estimates each view's depth in batches
(:mod:`engine.depth.models`: distance along the ray, far shell for the sky; a relative
model's disparities are first made to agree across the views by a per-view scale and
shift, :mod:`engine.depth.disparity`), and
:func:`engine.depth.align.align_depths` fuses the views of all frames into one panoramic
depth per frame (static pixels keep frame 0's depth).

Units: a metric model keeps its metres. A relative model has no unit, so the result is
scaled to the layout prior's median over the lower hemisphere (a camera ~1.6 m above the
ground) — or, when the user also gives a depth panorama, calibrated to it per frame with
TiP4GEN's median scale/shift (its eqs. 9-11). Finally clamped to [near, far].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..devices import pick_device
from ..errors import InputError
from ..progress import Progress
from ..sphere import ViewSetConfig, make_views, perspective_view
from .align import AlignConfig, align_depths
from .disparity import DisparityAlignConfig, align_disparities
from .models import DepthModel, DepthModelConfig
from .prior import DepthConfig, PanoDepth, fill_user_depth, layout_prior


@dataclass(frozen=True)
class ModelDepthConfig:
    """Settings of :class:`ModelDepthStage` (``model``: a folder or a hub id)."""

    model: str
    view_size: int = 384  # pixels of each perspective view given to the model
    view_fov_deg: float = 90.0
    batch: int = 4
    far_ratio: float = 100.0  # relative models: far shell at this multiple of the near depth
    align: AlignConfig = AlignConfig()
    device: str = "auto"  # model and alignment: "auto" (CUDA when available), "cpu", "cuda"


# CPU-sized settings per pipeline preset (the paper's 3000 iterations are the defaults)
PRESETS: dict[str, dict] = {
    "preview": {
        "view_size": 64,
        "align": AlignConfig(iters=60, iters_next=20, grid_height=32, work_size=32),
    },
    "standard": {
        "view_size": 256,
        "align": AlignConfig(iters=400, iters_next=150, grid_height=128, work_size=96),
    },
    "4k": {
        "view_size": 384,
        "align": AlignConfig(iters=600, iters_next=200, grid_height=192, work_size=128),
    },
}


def model_depth_config(spec: str, preset: str) -> ModelDepthConfig:
    """The ModelDepthConfig for ``--depth-model spec`` under a pipeline preset."""
    return dataclasses.replace(ModelDepthConfig(model=spec), **PRESETS.get(preset, {}))


class ModelDepthStage:
    """``run(frames, size, motion_weight, user_depth)`` -> :class:`PanoDepth` [T, H, W]."""

    name = "model"

    def __init__(self, cfg: ModelDepthConfig, depth: DepthConfig | None = None) -> None:
        if cfg.view_size < 8 or not 10.0 <= cfg.view_fov_deg <= 170.0:
            raise InputError("depth model views need >= 8 pixels and a 10..170 degree FOV")
        self.cfg, self.depth = cfg, depth or DepthConfig()

    def run(
        self,
        frames: np.ndarray,
        size: tuple[int, int],
        motion_weight: np.ndarray | None = None,
        user_depth: np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> PanoDepth:
        """frames: [T, H, W, 3] uint8; size: (h, w) of the depth; motion_weight [H, W]."""
        progress = progress or Progress("depth")
        cfg = self.cfg
        dev = pick_device(cfg.device).type
        mcfg = DepthModelConfig(batch=cfg.batch, far=cfg.far_ratio, device=dev)
        progress.update(0.0, f"loading depth model {cfg.model}")
        model = DepthModel.load(cfg.model, mcfg)
        views = make_views(ViewSetConfig(fov_deg=cfg.view_fov_deg, size=cfg.view_size))
        dcfg = DisparityAlignConfig(far=cfg.far_ratio)
        n = frames.shape[0]
        per_view = torch.empty(n, len(views), cfg.view_size, cfg.view_size)
        est = progress.sub(0.0, 0.4)
        for t in range(n):
            frame = torch.from_numpy(np.array(frames[t])).permute(2, 0, 1)[None]
            imgs = torch.stack([perspective_view(frame.float() / 255, v)[0] for v in views])
            msg = f"{model.kind} depth, frame {t + 1}/{n}"
            report = lambda f, t=t, m=msg: est.update((t + f) / n, m)  # noqa: E731
            if model.kind == "relative":  # disparity up to scale and shift: align the views
                raw = model.predict(imgs.permute(0, 2, 3, 1), report)
                per_view[t] = align_disparities(raw, views, dcfg)
            else:
                per_view[t] = model.view_depths(imgs.permute(0, 2, 3, 1), views[0], report)
        kind = model.kind
        del model  # free the network (and its GPU memory) before the alignment
        if dev == "cuda":
            torch.cuda.empty_cache()
        depth = align_depths(
            per_view, views, size, motion_weight=motion_weight,
            cfg=dataclasses.replace(cfg.align, device=dev),
            progress=progress.sub(0.4, 0.95),
        )  # fmt: skip
        depth, how = self._units(depth, kind, user_depth)
        depth = depth.clamp(self.depth.near, self.depth.far).numpy().astype(np.float32)
        progress.update(1.0, "depth aligned")
        how = (
            f"views affine-aligned in disparity, eq. 4 aligned, {how}"
            if kind == "relative"
            else f"eq. 4 aligned, {how}"
        )
        return PanoDepth(depth, f"{kind} depth model {cfg.model}, {how}")

    def _units(
        self, depth: torch.Tensor, kind: str, user_depth: np.ndarray | None
    ) -> tuple[torch.Tensor, str]:
        h, w = depth.shape[-2:]
        if user_depth is not None:  # [T, H', W'] (or [H', W']): calibrate each frame to it
            frames = user_depth if user_depth.ndim == 3 else user_depth[None]
            ref = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
            ref = np.where(np.isfinite(ref), fill_user_depth(ref, self.depth), np.nan)
            ref = ref[0] if len(ref) == 1 else ref
            from .align import median_calibrate

            return median_calibrate(depth, ref), "median-calibrated to the user depth"
        if kind == "metric":
            return depth, "metric"
        prior = torch.from_numpy(layout_prior(h, w, self.depth))[h // 2 :]
        ratio = float(torch.median(prior) / torch.median(depth[0, h // 2 :]))
        return depth * ratio, "scaled to the layout prior"
