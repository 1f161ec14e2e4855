"""Depth: one map (:func:`load_depth`) or one per frame (:func:`load_depth_frames`)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import NoReturn

import numpy as np

from ..fsutil import first_gap
from .common import _DEPTH_FORMATS, _PATHLIKE, _fail, _read_head, _sniff
from .masks import _aux_size_check, _check_size_arg, _read_aux, _resample

# --------------------------------------------------------------------------------------------
# Depth


def load_depth(path: _PATHLIKE, size: tuple[int, int], png16_scale: float = 0.001) -> np.ndarray:
    """A depth panorama -> float32 [H, W] ray distance; invalid pixels are NaN (module docs)."""
    size = _check_size_arg(size)
    if not (math.isfinite(png16_scale) and png16_scale > 0):
        raise ValueError(f"png16_scale must be a positive number, got {png16_scale!r}")
    image = _read_aux(path, size, "depth map", _DEPTH_FORMATS)
    data = image.data
    if image.has_alpha:
        data = data[:, :, :-1]
    if data.shape[2] > 1 and not all(
        np.array_equal(data[:, :, 0], data[:, :, c]) for c in range(1, data.shape[2])
    ):
        _fail(path, "depth map has several different channels; expected one channel")
    values = data[:, :, 0]
    if image.fmt in ("PNG", "TIFF") and values.dtype.kind in "ub":
        if values.dtype != np.uint16:
            _fail(
                path,
                f"depth map is {image.depth}, too coarse; expected 16-bit PNG/TIFF "
                "(value x scale, 0 = invalid), float TIFF/EXR or .npy",
            )
        depth = values.astype(np.float32) * np.float32(png16_scale)
    else:
        depth = values.astype(np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        _fail(
            path,
            "depth map has no valid value (all are 0, negative, NaN or infinite); "
            "expected positive distances",
        )
    return resize_depth(np.where(valid, depth, np.nan).astype(np.float32), size)


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """NaN-invalid depth [h, w] -> [H, W] (validity-weighted, edges kept; module docs)."""
    if depth.shape == tuple(size):
        return np.ascontiguousarray(depth)
    valid = np.isfinite(depth)
    num = _resample(np.where(valid, depth, 0.0).astype(np.float32), size)
    den = _resample(valid.astype(np.float32), size)
    keep = den >= 0.5
    if not keep.any():
        keep = den > 1e-6
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(keep, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
    h, w = depth.shape
    if h < size[0]:  # enlarging: no blends across depth edges
        import cv2

        # edge[r, c]: the 2x2 source block (r..r+1, c..c+1) spans a depth edge; the seam
        # wraps (column w-1's right neighbour is column 0), the last row pairs with itself
        wrap = lambda a: np.concatenate([a, a[:, :1]], 1).astype(np.float32)  # noqa: E731
        k, at = np.ones((2, 2), np.uint8), (0, 0)
        hi = cv2.dilate(
            wrap(np.where(valid, depth, 0.0)), k, anchor=at, borderType=cv2.BORDER_REPLICATE
        )[:, :w]
        lo = cv2.erode(
            wrap(np.where(valid, depth, np.inf)), k, anchor=at, borderType=cv2.BORDER_REPLICATE
        )[:, :w]
        edge = (hi > 1.1 * lo).astype(np.float32)
        rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
        cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
        nearest = depth[rows][:, cols]
        # a sample blends source pixels (r0, c0)..(r0 + 1, c0 + 1): the edge map's top-left
        r0 = np.clip(np.floor((np.arange(size[0]) + 0.5) * h / size[0] - 0.5), 0, h - 1)
        c0 = np.floor((np.arange(size[1]) + 0.5) * w / size[1] - 0.5).astype(int) % w
        at_edge = edge[r0.astype(int)][:, c0] > 0
        out = np.where(at_edge, nearest, out)
    return np.ascontiguousarray(out)


_FRAME_NAME = re.compile(r"^frame_(\d+)\.[A-Za-z0-9]+$")


def load_depth_frames(
    path: _PATHLIKE, size: tuple[int, int], n_frames: int, png16_scale: float = 0.001
) -> np.ndarray:
    """Depth per animation frame -> float32 [T, H, W] (NaN = invalid; module docs).

    ``path`` is a folder of ``frame_NNNN`` depth images, a [T, H, W] ``.npy``, or one depth
    map (used for every frame, returned as a read-only broadcast view).
    """
    p = Path(path)
    if p.is_dir():
        frames = [load_depth(f, size, png16_scale) for f in _frame_files(p, n_frames)]
        return np.stack(frames)
    if p.is_file() and _sniff(_read_head(p, "depth")) == "NPY":
        arr = _npy_frames(p)
        if arr is not None:
            return _depth_stack(p, arr, size, n_frames)
    one = load_depth(p, size, png16_scale)
    return np.broadcast_to(one, (n_frames, *one.shape))


def _frame_count_error(path: Path, got: int, want: int) -> NoReturn:
    if got == 0:
        _fail(path, f"per-frame depth holds no frames; give one depth per frame ({want})")
    _fail(
        path,
        f"per-frame depth has {got} frames but the animation has {want}; "
        f"give one depth per frame (or use --frames {got})",
    )


def _frame_files(folder: Path, n_frames: int) -> list[Path]:
    found: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        m = _FRAME_NAME.match(f.name)
        if not (m and f.is_file()):
            continue
        i = int(m.group(1))
        if i in found:
            _fail(folder, f"two depth files for frame {i}: {found[i].name} and {f.name}")
        found[i] = f
    if not found:
        _fail(folder, "no frame_NNNN depth files in this folder (expected frame_0000.png, ...)")
    missing = first_gap(sorted(found))
    if missing is not None:
        _fail(
            folder,
            f"per-frame depth has gaps: frame_{missing:04d} is missing "
            "(frames run from frame_0000 with no gaps)",
        )
    if len(found) != n_frames:
        _frame_count_error(folder, len(found), n_frames)
    return [found[i] for i in range(n_frames)]


def _npy_frames(path: Path) -> np.ndarray | None:
    """A [T, H, W] (or [T, H, W, 1]) array from a .npy, or None for a single map."""
    try:
        arr = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
    except ValueError:
        return None  # load_depth gives the reason
    if arr.ndim == 4 and arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] > 4:
        return arr
    return None


def _depth_stack(path: Path, arr: np.ndarray, size: tuple[int, int], n_frames: int) -> np.ndarray:
    if arr.shape[0] != n_frames:
        _frame_count_error(path, arr.shape[0], n_frames)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        _fail(path, f"depth array has dtype {arr.dtype}; expected real numbers")
    _aux_size_check(path, size, "per-frame depth")(arr.shape[2], arr.shape[1])
    out = np.empty((n_frames, *size), np.float32)
    for t in range(n_frames):
        d = arr[t].astype(np.float32)
        d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
        if not np.isfinite(d).any():
            _fail(
                path,
                f"per-frame depth frame {t} has no valid value "
                "(all are 0, negative, NaN or infinite)",
            )
        out[t] = resize_depth(d, size)
    return out
