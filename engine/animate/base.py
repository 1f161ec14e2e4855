"""What every animator produces, and the feathered region weights they share."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..io import Region


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
