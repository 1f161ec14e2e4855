"""Monocular depth models through ``transformers``, per perspective view, batched.

Backends (chosen from the folder's ``config.json`` ``model_type``):

- ``dpt`` (DPT / MiDaS v3, e.g. ``Intel/dpt-large``): :class:`DPTForDepthEstimation`,
  relative inverse depth (disparity-like).
- ``depth_anything`` (Depth Anything V1/V2, ``AutoModelForDepthEstimation``): relative
  inverse depth, or metric depth in metres when ``depth_estimation_type == "metric"``
  (the "Metric-Indoor/Outdoor" checkpoints).
- ``zoedepth`` (ZoeDepth, ``AutoModelForDepthEstimation``): metric depth in metres.

Every model here predicts for a pinhole image, so its output is *planar*: inverse planar z
for the relative models, planar z for the metric ones. :func:`to_ray_depth` turns either
into distance along each pixel's ray (``View.planar_to_ray``, DESIGN.md section 2):

- relative: the disparity is normalised by its ``near_quantile`` value (so the near part
  of the view sits at depth ~1), z = 1 / disparity; pixels whose disparity is at most
  ``1 / far`` of that (the sky, anything unbounded, or <= 0) go to the far shell.
- metric: z as predicted; z >= far, non-finite or <= 0 goes to the far shell.

Preprocessing and resizing back are the model's own: when the folder holds the model's
image processor (``preprocessor_config.json``, as every published checkpoint does) it is
loaded with ``AutoImageProcessor`` and used as is (resize, rescale, normalise), and the
prediction goes back to the view's size by a bicubic resize (what DPT's and Depth
Anything's ``post_process_depth_estimation`` do; ZoeDepth's needs torchvision). A folder
without one gets the model family's defaults (a bicubic resize to the model's input size,
its mean and std), and says so in :attr:`DepthModel.preprocessing`.

The far shell is a sphere (distance ``far`` along every ray), like the layout prior's.
Weights are found with :func:`engine.hub.locate` (a local folder, or the Hugging Face cache;
never downloaded here) and loaded with ``from_pretrained(folder, local_files_only=...)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import View
from ..errors import LOAD_ERRORS, InputError, first_line
from ..hub import ModelProbe, locate, offline

MARKER = "config.json"
FALLBACK = "drop --depth-model to use the layout prior (weightless) or give --depth"
KINDS = {"dpt": "relative", "depth_anything": "relative", "zoedepth": "metric"}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class DepthModelConfig:
    batch: int = 4  # views per forward pass
    input_size: int | None = None  # model input (square); None: the model's own size
    far: float = 100.0  # far shell: relative units (near ~ 1) or metres (metric models)
    near_quantile: float = 0.98  # relative models: disparity quantile that maps to depth 1
    device: str = "cpu"


# ----------------------------------------------------------------------------------------
# finding the weights


def _config(folder: Path) -> dict:
    try:
        cfg = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _model_type(folder: Path) -> str:
    return str(_config(folder).get("model_type", ""))


def probe(spec: str) -> ModelProbe:
    """Is ``spec`` (a folder or a hub id) a usable depth model here? Never downloads.

    ``path`` is None when it is missing or is not a supported depth model; ``reason`` says
    where we looked or what is wrong (one line, for the CLI and the app)."""
    found = locate(spec, MARKER)
    if found.path is None:
        return found
    kind = _model_type(found.path)
    if kind not in KINDS:
        what = f"a '{kind}' model" if kind else "not a transformers model"
        return ModelProbe(
            spec, None, f"{found.path} is {what}, not a depth model (DPT, Depth Anything, ZoeDepth)"
        )
    heads = _config(found.path).get("architectures") or []
    if heads and not any(str(h).endswith("ForDepthEstimation") for h in heads):
        return ModelProbe(spec, None, f"{found.path} is a {heads[0]}, not a depth-estimation model")
    return found


def require_model(spec: str) -> Path:
    """The folder of a usable depth model, or an InputError naming where we looked and the
    weightless fallback."""
    found = probe(spec)
    if found.path is None:
        raise InputError(f"no depth model weights: {found.reason}; {FALLBACK}")
    return found.path


# ----------------------------------------------------------------------------------------
# output conversion


def to_ray_depth(raw: Tensor, kind: str, ray_factor: Tensor, cfg: DepthModelConfig) -> Tensor:
    """Model output -> distance along the ray, with the far shell.

    raw: Tensor  # [B, h, w] model output at view resolution (disparity-like or planar z)
    kind: "relative" (inverse planar depth, any scale) or "metric" (planar z in metres)
    ray_factor: Tensor  # [h, w] View.planar_to_ray()
    returns: Tensor  # [B, h, w] float32 in (0, far]
    """
    raw = raw.to(torch.float32)
    fac = ray_factor.to(raw)
    far = torch.full_like(raw, cfg.far)
    if kind == "relative":
        flat = raw.reshape(raw.shape[0], -1)
        flat = torch.where(torch.isfinite(flat) & (flat > 0), flat, torch.nan)
        q = torch.nanquantile(flat, cfg.near_quantile, dim=1)
        q = torch.where(torch.isfinite(q), q, torch.ones_like(q)).clamp_min(1e-12)
        disp = raw / q[:, None, None]
        ok = torch.isfinite(disp) & (disp > 1.0 / cfg.far)
        z = 1.0 / torch.where(ok, disp, torch.ones_like(disp))
    elif kind == "metric":
        ok = torch.isfinite(raw) & (raw > 0) & (raw < cfg.far)
        z = torch.where(ok, raw, torch.ones_like(raw))
    else:
        raise ValueError(f"unknown depth kind {kind!r}")
    return torch.where(ok, (z * fac).clamp(max=cfg.far), far)


# ----------------------------------------------------------------------------------------
# the model


class DepthModel:
    """A loaded depth network: ``view_depths(images, view)`` -> ray distance per view."""

    def __init__(self, model, kind: str, size: int, mean: Tensor, std: Tensor,
                 cfg: DepthModelConfig, processor=None) -> None:  # fmt: skip
        self.model, self.kind, self.size, self.cfg = model, kind, size, cfg
        self.mean, self.std = mean, std
        self.processor = processor
        self.preprocessing = (
            f"the model's image processor ({type(processor).__name__})"
            if processor is not None
            else f"defaults (no preprocessor_config.json): {size} px, its mean and std"
        )

    @classmethod
    def load(cls, spec: str, cfg: DepthModelConfig = DepthModelConfig()) -> DepthModel:
        """Load from a folder or the HF cache (offline when HF_HUB_OFFLINE is set)."""
        folder = require_model(spec)
        mtype = _model_type(folder)
        import transformers  # heavy: imported only when a model is used

        transformers.utils.logging.disable_progress_bar()  # the CLI draws its own

        if mtype == "dpt":
            model_cls = transformers.DPTForDepthEstimation
        else:
            model_cls = transformers.AutoModelForDepthEstimation
        try:
            model = model_cls.from_pretrained(str(folder), local_files_only=offline())
        except LOAD_ERRORS as e:
            first = first_line(e)
            raise InputError(f"cannot load the depth model in {folder}: {first}; {FALLBACK}") from e
        model = model.to(cfg.device).eval()
        kind = KINDS[mtype]
        if getattr(model.config, "depth_estimation_type", "relative") == "metric":
            kind = "metric"
        size, mean, std = _preprocessing(folder, model.config, mtype, cfg)
        return cls(model, kind, size, mean, std, cfg, _image_processor(folder, cfg))

    @torch.no_grad()
    def predict(self, images: Tensor, on_batch: Callable[[float], None] | None = None) -> Tensor:
        """Raw model output at the images' resolution.

        images: Tensor  # [B, h, w, 3] float in [0, 1]
        on_batch: called with the fraction done after each batch (progress / cancel checks)
        returns: Tensor  # [B, h, w] (disparity-like for relative models, z for metric)
        """
        b, h, w, _ = images.shape
        dev = self.cfg.device
        outs = []
        for i in range(0, b, max(1, self.cfg.batch)):
            batch = images[i : i + self.cfg.batch].to(torch.float32).clamp(0, 1)
            if self.processor is not None:
                outs.append(self._predict_with_processor(batch, (h, w)))
            else:
                x = batch.permute(0, 3, 1, 2).to(dev)
                x = F.interpolate(x, (self.size, self.size), mode="bicubic", align_corners=False)
                x = (x.clamp(0, 1) - self.mean.to(dev)) / self.std.to(dev)
                pred = self.model(pixel_values=x).predicted_depth  # [b, h', w']
                pred = F.interpolate(
                    pred[:, None], size=(h, w), mode="bicubic", align_corners=False
                )
                outs.append(pred[:, 0].float().cpu())
            if on_batch is not None:
                on_batch(min(1.0, (i + self.cfg.batch) / b))
        return torch.cat(outs)

    def _predict_with_processor(self, batch: Tensor, size: tuple[int, int]) -> Tensor:
        """[b, h, w, 3] in [0, 1] -> [b, h, w] through the model's own image processor."""
        proc = self.processor
        kw = {} if self.cfg.input_size is None else {"size": _size_arg(proc, self.cfg.input_size)}
        arrays = list(batch.numpy())  # channels last, already in [0, 1]
        inputs = proc(images=arrays, do_rescale=False, return_tensors="pt", **kw)
        out = self.model(pixel_values=inputs["pixel_values"].to(self.cfg.device, torch.float32))
        pred = out.predicted_depth[:, None].float()  # back to the view: bicubic, as DPT's and
        pred = F.interpolate(pred, size=size, mode="bicubic", align_corners=False)  # DA's own
        return pred[:, 0].cpu()

    def view_depths(
        self,
        images: Tensor | np.ndarray,
        view: View,
        on_batch: Callable[[float], None] | None = None,
    ) -> Tensor:
        """Distance along the ray for images taken with ``view``'s intrinsics.

        images: [B, h, w, 3] uint8 or float in [0, 1] (h, w = view.height, view.width)
        returns: Tensor  # [B, h, w] float32, the far shell where the model sees nothing near
        """
        x = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
        if x.dtype == torch.uint8:
            x = x.float() / 255
        raw = self.predict(x.float(), on_batch)
        return to_ray_depth(raw, self.kind, torch.from_numpy(view.planar_to_ray()), self.cfg)


def _image_processor(folder: Path, cfg: DepthModelConfig):
    """The folder's own image processor (AutoImageProcessor), or None if it has none."""
    if not (folder / "preprocessor_config.json").is_file():
        return None
    from transformers import AutoImageProcessor
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()  # without torchvision it falls back to PIL, and says so
    try:
        return AutoImageProcessor.from_pretrained(str(folder), local_files_only=offline())
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise InputError(f"cannot load the image processor in {folder}: {e}; {FALLBACK}") from e
    finally:
        logging.set_verbosity(level)


def _size_arg(processor, side: int) -> dict:
    """``size`` for an image processor call: its own keys, set to ``side``."""
    own = getattr(processor, "size", None)
    keys = own.keys() if isinstance(own, dict) else ("height", "width")
    return dict.fromkeys(keys, side)


def _preprocessing(folder: Path, config, mtype: str, cfg: DepthModelConfig):
    """(input size, mean [1,3,1,1], std [1,3,1,1]) from preprocessor_config.json if present,
    else the model family's defaults; the size is rounded to a multiple of the patch size."""
    mean, std = IMAGENET if mtype == "depth_anything" else HALF
    size = None
    proc = folder / "preprocessor_config.json"
    if proc.is_file():
        try:
            p = json.loads(proc.read_text())
        except ValueError:
            p = {}
        mean, std = p.get("image_mean", mean), p.get("image_std", std)
        s = p.get("size")
        size = s.get("height") if isinstance(s, dict) else s
    backbone = getattr(config, "backbone_config", None)
    patch = getattr(backbone, "patch_size", None) or getattr(config, "patch_size", 16)
    size = cfg.input_size or size or getattr(backbone, "image_size", None)
    size = size or getattr(config, "image_size", 384)
    size = max(patch, int(round(int(size) / patch)) * patch)
    to_t = lambda v: torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1)  # noqa: E731
    return size, to_t(mean), to_t(std)
