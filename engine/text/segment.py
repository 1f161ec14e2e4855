"""Regions from text: a ``mask_prompt`` ("sky", "lake") segmented on perspective views and
fused on the sphere, so a region is one seamless mask across the left/right seam and up to
the poles.

Every view of the view set (20 views of 90 degrees, the poles included) is cut from the
panorama, the segmentation model gives a probability per pixel and prompt, the views are
fused by eq. 3's feathered closed form (:func:`engine.sphere.fuse_views`) on an equirect
grid, resized to the panorama (columns wrap) and thresholded. The model is CLIPSeg
(transformers ``CLIPSegForImageSegmentation`` with its ``AutoProcessor``), loaded with
``from_pretrained`` from a folder or the HF cache; anything giving probabilities per view
(``predict(crops, prompts)``) plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import hub
from ..animate.fusion import resize_wrapped
from ..errors import LOAD_ERRORS, InputError, first_line
from ..progress import Progress
from ..sphere import ViewSetConfig, fuse_views, make_views, perspective_view

MARKER = "config.json"
FALLBACK = "paint the region or give its mask (--mask / --regions) instead"
Predict = Callable[[np.ndarray, list[str]], Tensor]  # crops [V, h, w, 3] uint8 -> [V, P, h, w]


@dataclass(frozen=True)
class SegmentConfig:
    view_size: int = 352  # CLIPSeg's own input size
    grid_height: int = 256  # rows of the fused probability map
    threshold: float = 0.4  # fused probability above which a pixel is in the region
    feather: float = 0.15
    batch: int = 4  # views per forward pass


def probe(spec: str) -> hub.ModelProbe:
    found = hub.locate(spec, MARKER)
    if found.path is None:
        return found
    kind = hub.json_field(found.path / MARKER, "model_type")
    if kind != "clipseg":
        return hub.ModelProbe(
            spec, None, f"{found.path} is a '{kind or 'unknown'}' model, not CLIPSeg"
        )
    return found


def require(spec: str | None) -> Path:
    if not spec:
        raise InputError(f"finding a region from its name needs --seg-model (CLIPSeg); {FALLBACK}")
    p = probe(spec)
    if p.path is None:
        raise InputError(f"no segmentation model weights: {p.reason}; {FALLBACK}")
    return p.path


def clipseg_predictor(spec: str, device: str = "cpu", batch: int = 4) -> Predict:
    """``predict(crops, prompts)`` of a CLIPSeg checkpoint: sigmoid probabilities resized
    back to the crops' size."""
    from transformers import AutoProcessor, CLIPSegForImageSegmentation
    from transformers.utils import logging

    path = require(spec)
    logging.disable_progress_bar()  # the CLI draws its own
    kw = {"local_files_only": hub.offline()}
    try:
        processor = AutoProcessor.from_pretrained(path, **kw)
        model = CLIPSegForImageSegmentation.from_pretrained(path, **kw).to(device).eval()
    except LOAD_ERRORS as e:
        first = first_line(e)
        raise InputError(
            f"cannot load the segmentation model from {path}: {first}; {FALLBACK}"
        ) from e

    max_tokens = model.config.text_config.max_position_embeddings

    @torch.no_grad()
    def predict(crops: np.ndarray, prompts: list[str]) -> Tensor:
        v, h, w = crops.shape[:3]
        out = torch.empty(v, len(prompts), h, w)
        for i in range(v):
            images = [crops[i]] * len(prompts)
            inputs = processor(
                text=prompts,
                images=images,
                padding=True,
                truncation=True,  # a long name is cut to the text encoder's length
                max_length=max_tokens,
                return_tensors="pt",
            )
            logits = model(**inputs.to(device)).logits.reshape(
                len(prompts), 1, *inputs["pixel_values"].shape[-2:]
            )
            out[i] = (
                F.interpolate(logits.float(), size=(h, w), mode="bilinear")[:, 0].sigmoid().cpu()
            )
        return out

    return predict


def segment_on_sphere(
    rgb: np.ndarray,
    prompts: list[str],
    predict: Predict,
    cfg: SegmentConfig = SegmentConfig(),
    progress: Progress | None = None,
) -> tuple[list[np.ndarray], Tensor]:
    """Masks of ``prompts`` in an equirect panorama.

    rgb: [H, W, 3] uint8; returns ([H, W] bool per prompt, fused probabilities [P, H, W])
    """
    progress = progress or Progress("load")
    h, w = rgb.shape[:2]
    views = make_views(ViewSetConfig(size=cfg.view_size))
    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    probs = []
    for k in range(0, len(views), cfg.batch):
        chunk = views[k : k + cfg.batch]
        crops = np.stack(
            [
                perspective_view(img, v)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
                for v in chunk
            ]
        )
        probs.append(predict(crops, prompts))
        progress.update(
            min(1.0, (k + len(chunk)) / len(views)),
            f"finding {', '.join(prompts)}: view {k + len(chunk)}/{len(views)}",
        )
    per_view = torch.cat(probs)[:, None]  # [V, 1, P, h, w]
    gh = min(cfg.grid_height, h)
    fused, cover = fuse_views(per_view, views, gh, 2 * gh, feather=cfg.feather)
    full = resize_wrapped(fused[0], (h, w), mode="bilinear")  # [P, H, W], the seam wraps
    masks = [(full[i] > cfg.threshold).numpy() for i in range(len(prompts))]
    for prompt, m, p in zip(prompts, masks, full):
        if not m.any():
            raise InputError(
                f"the segmentation model found no '{prompt}' in the panorama (highest "
                f"probability {float(p.max()):.2f} < {cfg.threshold}); {FALLBACK}"
            )
    return masks, full
