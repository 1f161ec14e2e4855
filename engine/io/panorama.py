"""The panorama: :class:`Panorama` and :func:`load_panorama` (see :mod:`engine.io`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .common import (
    _PANORAMA_FORMATS,
    _PATHLIKE,
    MAX_SIZE,
    MIN_SIZE,
    PANORAMA_ASPECT_TOLERANCE,
    _fail,
)
from .images import SizeCheck, _Image, _read_image

# --------------------------------------------------------------------------------------------
# Public data types


@dataclass(frozen=True, eq=False)
class Panorama:
    """A loaded equirectangular panorama."""

    rgb: np.ndarray  # [H, W, 3] uint8 sRGB, the canonical image
    path: str | None
    source: str  # e.g. "PNG 16-bit RGBA, alpha composited on black"

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W), the ``size`` argument of the other loaders."""
        return (self.height, self.width)

    def as_float(self) -> np.ndarray:
        """A new float32 [H, W, 3] copy in [0, 1] (sRGB-encoded, ``rgb / 255``)."""
        return self.rgb.astype(np.float32) / np.float32(255.0)


# --------------------------------------------------------------------------------------------
# Panorama


def _panorama_size_check(path: _PATHLIKE) -> SizeCheck:
    def check(w: int, h: int) -> None:
        (min_h, min_w), (max_h, max_w) = MIN_SIZE, MAX_SIZE
        if w <= 0 or h <= 0:
            _fail(path, f"image has zero size ({w}x{h}); expected a 2:1 panorama")
        if w > max_w or h > max_h:
            _fail(
                path,
                f"panorama is {w}x{h} pixels, larger than the maximum {max_w}x{max_h}; "
                "downscale it first",
            )
        aspect = w / h
        if abs(aspect - 2.0) > 2.0 * PANORAMA_ASPECT_TOLERANCE + 1e-9:
            _fail(
                path,
                f"image is {w}x{h} (aspect {aspect:.3f}:1); expected an equirectangular "
                "360-degree panorama with width = 2 x height (2:1 within +/-1%)",
            )
        if w < min_w or h < min_h:
            _fail(
                path,
                f"panorama is {w}x{h} pixels, smaller than the minimum {min_w}x{min_h}",
            )

    return check


def load_panorama(path: _PATHLIKE) -> Panorama:
    """Load, validate and convert a panorama to canonical 8-bit sRGB (see module docs)."""
    check = _panorama_size_check(path)
    image = _read_image(path, "panorama", _PANORAMA_FORMATS, check)
    h, w = image.data.shape[:2]
    check(w, h)  # the decoded size, in case a header lied
    notes: list[str] = []
    data = image.data
    if data.dtype.kind == "f":
        colour = data[:, :, :1] if data.shape[2] <= 2 else data[:, :, :3]
        if colour.shape[2] == 1:
            colour = np.repeat(colour, 3, axis=2)
        rgb, note = _tonemap(colour)
        if note.startswith(NO_FINITE):
            _fail(path, "float image has no finite colour (every sample is NaN or infinite)")
        notes.append(note)
        if image.has_alpha and not image.premultiplied and not np.all(data[:, :, -1] == 1.0):
            notes.append("alpha ignored (float colour taken as premultiplied)")
    else:
        rgb, alpha_note = _integer_to_rgb8(path, image)
        if alpha_note:
            notes.append(alpha_note)
    source = image.describe
    if image.colour.startswith("gray"):
        notes.insert(0, "gray replicated to RGB")
    if notes:
        source += ", " + ", ".join(notes)
    return Panorama(rgb=np.ascontiguousarray(rgb), path=os.fspath(path), source=source)


def _to8(values: np.ndarray) -> np.ndarray:
    """uint8/uint16 samples -> uint8, 16-bit by round(v / 257)."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.uint16:
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise TypeError(values.dtype)


def _integer_to_rgb8(path: _PATHLIKE, image: _Image) -> tuple[np.ndarray, str]:
    data = image.data
    if data.dtype.kind == "b":
        data = data.astype(np.uint8) * np.uint8(255)
    if data.dtype not in (np.uint8, np.uint16):
        _fail(
            path,
            f"sample type {data.dtype} is not supported for a panorama; expected 8- or 16-bit",
        )
    channels = data.shape[2]
    colour = data[:, :, :1] if channels <= 2 else data[:, :, :3]
    note = ""
    if channels in (2, 4):
        alpha = data[:, :, -1]
        top = np.iinfo(data.dtype).max
        if image.premultiplied:
            note = "alpha ignored (colour already premultiplied)"
        elif np.all(alpha == top):
            note = "alpha channel fully opaque (ignored)"
        else:
            note = "alpha composited on black"
            colour = _composite_on_black(colour, alpha, top)
    if colour.dtype != np.uint8:
        colour = _to8(colour)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return colour, note


_CHUNK_ROWS = 256  # bounded temporaries for 16384 x 8192 images


def _composite_on_black(colour: np.ndarray, alpha: np.ndarray, top: int) -> np.ndarray:
    """uint8 ``round(c * a / a_max / (257 if 16-bit else 1))``, exact integer arithmetic."""
    divisor = int(top) * (257 if colour.dtype == np.uint16 else 1)
    wide = np.uint64 if colour.dtype == np.uint16 else np.uint32
    out = np.empty(colour.shape, dtype=np.uint8)
    for y in range(0, colour.shape[0], _CHUNK_ROWS):
        c = colour[y : y + _CHUNK_ROWS].astype(wide)
        a = alpha[y : y + _CHUNK_ROWS, :, None].astype(wide)
        # floor(c a / d + 1/2) = floor((2 c a + d) / 2 d)
        out[y : y + _CHUNK_ROWS] = (2 * c * a + divisor) // (2 * divisor)
    return out


def tonemap_linear(linear: np.ndarray) -> np.ndarray:
    """Scene-linear float RGB [H, W, 3] -> uint8 sRGB [H, W, 3] (operator in module docs)."""
    return _tonemap(np.asarray(linear, dtype=np.float32))[0]


NO_FINITE = "no finite sample"


def _tonemap(linear: np.ndarray) -> tuple[np.ndarray, str]:
    h = linear.shape[0]
    # pass 1: sanitise statistics (non-finite, negative) and the exposure from the median
    n_bad = n_neg = 0
    top = -np.inf
    samples = []
    for y in range(0, h, _CHUNK_ROWS):
        x = np.asarray(linear[y : y + _CHUNK_ROWS], dtype=np.float32)
        finite = np.isfinite(x)
        n_bad += int(x.size - np.count_nonzero(finite))
        n_neg += int(np.count_nonzero(x < 0))
        if finite.any():
            top = max(top, float(x[finite].max()))
        sub = np.nan_to_num(x[::2, ::2], nan=0.0, posinf=0.0, neginf=0.0)
        np.maximum(sub, 0.0, out=sub)
        lum = 0.2126 * sub[..., 0] + 0.7152 * sub[..., 1] + 0.0722 * sub[..., 2]
        samples.append(lum[lum > 0])
    positive = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    median = float(np.median(positive)) if positive.size else 0.0
    exposure = 0.18 / median if median > 0 and math.isfinite(median) else 1.0
    posinf_value = max(top, 0.0) if math.isfinite(top) else 1.0
    # pass 2: map, chunk by chunk
    out = np.empty(linear.shape[:2] + (3,), dtype=np.uint8)
    for y in range(0, h, _CHUNK_ROWS):
        x = np.array(linear[y : y + _CHUNK_ROWS], dtype=np.float32, copy=True)
        if n_bad:
            x = np.nan_to_num(x, nan=0.0, posinf=posinf_value, neginf=0.0)
        np.maximum(x, 0.0, out=x)
        x *= np.float32(exposure)
        mapped = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
        np.clip(mapped, 0.0, 1.0, out=mapped)
        encoded = np.where(
            mapped <= 0.0031308, 12.92 * mapped, 1.055 * np.power(mapped, 1.0 / 2.4) - 0.055
        )
        out[y : y + _CHUNK_ROWS] = np.floor(np.clip(encoded, 0.0, 1.0) * 255.0 + 0.5)
    if n_bad == linear.size:
        return out, NO_FINITE
    note = f"tone-mapped (median luminance to 0.18: exposure x{exposure:.4g}, ACES fit, sRGB)"
    if n_bad or n_neg:
        note += f", {n_bad} non-finite and {n_neg} negative samples clamped"
    return out, note
