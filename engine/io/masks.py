"""Masks: :func:`load_mask` and the seam-aware resampling shared with depth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import _MASK_FORMATS, _PATHLIKE, AUX_ASPECT_TOLERANCE, MAX_SIZE, _fail
from .images import SizeCheck, _Image, _read_image

# --------------------------------------------------------------------------------------------
# Masks


def _check_size_arg(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (height, width), got {size!r}")
    return h, w


def _aux_size_check(path: _PATHLIKE, size: tuple[int, int], role: str) -> SizeCheck:
    target_h, target_w = size

    def check(w: int, h: int) -> None:
        if w <= 0 or h <= 0:
            _fail(path, f"image has zero size ({w}x{h}); expected a 2:1 {role}")
        max_h, max_w = MAX_SIZE
        if w > max_w or h > max_h:
            _fail(path, f"{role} is {w}x{h} pixels, larger than the maximum {max_w}x{max_h}")
        ratio = (w / h) / (target_w / target_h)
        if abs(ratio - 1.0) > AUX_ASPECT_TOLERANCE + 1e-9:
            _fail(
                path,
                f"{role} does not match the panorama: it is {w}x{h} (aspect {w / h:.3f}:1), "
                f"the panorama is {target_w}x{target_h}; expected the same 2:1 aspect "
                "(any resolution, within +/-2%)",
            )

    return check


def _read_aux(path: _PATHLIKE, size: tuple[int, int], role: str, formats: Sequence[str]):
    return _read_image(path, role, formats, _aux_size_check(path, size, role))


def _binary_from_image(image: _Image) -> np.ndarray:
    data = image.data
    if image.has_alpha:
        alpha = data[:, :, -1]
        if alpha.size and not np.all(alpha == alpha.flat[0]):
            return _nonzero(alpha, image)
        data = data[:, :, :-1]
    return _nonzero(data, image).any(axis=2) if data.ndim == 3 else _nonzero(data, image)


def _nonzero(values: np.ndarray, image: _Image) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isfinite(values) & (values != 0)
    if values.dtype.kind == "b":
        return values
    if image.fmt == "JPEG":
        return values >= (np.iinfo(values.dtype).max + 1) // 2
    return values != 0


def _resample(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 [h, w] -> [H, W]: area when shrinking, bilinear with a wrapped seam otherwise.

    Enlarging, the output rows beyond the first and last source rows' centres (half a
    source pixel at each pole) take those rows' values: across a pole the neighbour is half a
    turn away in longitude, and over half a pixel that changes nothing a user can see."""
    import cv2

    h, w = values.shape
    H, W = size
    values = np.ascontiguousarray(values, dtype=np.float32)
    if (h, w) == (H, W):
        return values.copy()
    if h >= H and w >= W:
        return cv2.resize(values, (W, H), interpolation=cv2.INTER_AREA)
    xs = ((np.arange(W, dtype=np.float64) + 0.5) * (w / W) - 0.5).astype(np.float32)
    ys = ((np.arange(H, dtype=np.float64) + 0.5) * (h / H) - 0.5).clip(0, h - 1)
    map_x = np.ascontiguousarray(np.broadcast_to(xs[None, :], (H, W)))
    map_y = np.ascontiguousarray(np.broadcast_to(ys.astype(np.float32)[:, None], (H, W)))
    return cv2.remap(
        values, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
    )


def resample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """bool [h, w] -> [H, W]: the pixels covered at least half (area when shrinking,
    bilinear with the seam wrapped when enlarging); a region thinner than that keeps every
    pixel it touches, so it is never lost."""
    if mask.shape == tuple(size):
        return mask.astype(bool, copy=True)
    coverage = _resample(mask.astype(np.float32), size)
    out = coverage >= 0.5
    if not out.any() and mask.any():
        out = coverage > 0  # never lose a thin region entirely
        if not out.any():  # even the interpolation missed it: keep the nearest pixels
            out = _nearest_binary(mask, size)
    return out


def _nearest_binary(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = mask.shape
    H, W = size
    out = np.zeros(size, dtype=bool)
    rows, cols = np.nonzero(mask)
    out[
        np.minimum((rows + 0.5) * H / h, H - 1).astype(int),
        np.minimum((cols + 0.5) * W / w, W - 1).astype(int),
    ] = True
    return out


def load_mask(path: _PATHLIKE, size: tuple[int, int]) -> np.ndarray:
    """A mask image or .npy -> bool [H, W] at the panorama's ``size`` (module docs)."""
    size = _check_size_arg(size)
    image = _read_aux(path, size, "mask", _MASK_FORMATS)
    return resample_mask(_binary_from_image(image), size)
