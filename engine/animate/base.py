"""What every animator produces, and the feathered region weights they share."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from ..io import Region
from ..progress import Progress


@dataclass
class PanoVideo:
    """A looping panoramic video.

    frames: np.ndarray  # [T, H, W, 3] uint8 (may be a read-only memmap of a checkpoint)
    weight: np.ndarray  # [H, W] float32 in [0, 1]: how much each pixel animates (0 = static;
                        #   those pixels equal the input panorama bit for bit in every frame)
    """

    frames: np.ndarray
    fps: float
    weight: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def static_mask(self) -> np.ndarray:
        """[H, W] bool: pixels guaranteed identical to the input in every frame."""
        return self.weight <= 0


def feathered(mask: np.ndarray, feather_px: float) -> np.ndarray:
    """[H, W] bool -> float32 weight: 0 outside, rising smoothly to 1 over ``feather_px``
    pixels inside the region. Distances wrap across the left/right seam."""
    m = mask.astype(np.uint8)
    if feather_px <= 0:
        return m.astype(np.float32)
    pad = int(np.ceil(feather_px)) + 1
    h, w = m.shape
    pad = min(pad, w)
    wrapped = np.concatenate([m[:, -pad:], m, m[:, :pad]], axis=1)
    dist = cv2.distanceTransform(wrapped, cv2.DIST_L2, 5)[:, pad : pad + w]
    t = np.clip(dist / feather_px, 0.0, 1.0)
    out = t * t * (3 - 2 * t)
    out[~mask] = 0.0
    return out.astype(np.float32)


def region_weights(regions: list[Region]) -> np.ndarray:
    """[R, H, W] float32 feathered weights; later regions win where regions overlap, so the
    weights at a pixel sum to at most 1."""
    ws = [feathered(r.mask, r.feather_px) for r in regions]
    out = np.stack(ws) if ws else np.zeros((0, 0, 0), np.float32)
    for i in range(len(ws) - 2, -1, -1):
        out[i] *= 1.0 - np.clip(out[i + 1 :].sum(axis=0), 0.0, 1.0)
    return out


def start_model_video(
    pano, regions: list[Region], frames: int, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shared start of a model-backed animator: (feathered weights [R, H, W], their union
    [H, W] float32, the output video [T, H, W, 3] uint8 holding the input in every frame)."""
    h, w = pano.height, pano.width
    weights = region_weights(regions)
    union = weights.sum(axis=0).clip(0, 1) if len(regions) else np.zeros((h, w), np.float32)
    if out is None:
        out = np.empty((frames, h, w, 3), np.uint8)
    out[:] = pano.rgb[None]
    return weights, union.astype(np.float32), out


def finish_model_video(pano, union: np.ndarray, video, out: np.ndarray, device, progress) -> None:
    """The shared end: free the model's GPU cache, bring the decoded video [T, 3, H', W'] in
    [-1, 1] to the panorama's size (seam-wrapped, no step at sizes the model rounds) and
    composite it into ``out`` by the feathered weight (static pixels stay the input)."""
    from .fusion import resize_wrapped

    if device.type == "cuda":
        torch.cuda.empty_cache()
    if video.shape[-2:] != (pano.height, pano.width):
        video = resize_wrapped(video, (pano.height, pano.width))
    composite(pano.rgb, union, video.cpu(), out, progress)


def composite(
    rgb: np.ndarray, weight: np.ndarray, video: Tensor, out: np.ndarray, progress: Progress
) -> None:
    """out[t] = input + weight * (decoded - input), rounded; weight-0 pixels are copied from
    the input (bit-identical) and frame 0 is the input.

    rgb: [H, W, 3] uint8; weight: [H, W]; video: [T, 3, H, W] in [-1, 1]; out: [T, H, W, 3]
    """
    moving = weight > 0
    base = rgb[moving].astype(np.float32)  # [n, 3]
    wt = weight[moving][:, None]
    out[0] = rgb
    for t in range(1, len(video)):
        frame = ((video[t].permute(1, 2, 0).numpy() + 1) * 127.5)[moving]
        blended = base + wt * (frame - base)
        out[t][moving] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        progress.update(t / max(1, len(video) - 1), f"frame {t + 1}/{len(video)}")
