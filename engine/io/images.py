"""Decoding: every image format ends up as :class:`_Image` (gray / gray+alpha / RGB /
RGBA channels); the size is checked from the header before the pixels are read."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .common import (
    _FORMAT_NAMES,
    _PATHLIKE,
    _QUIET_LOCK,
    _describe_exception,
    _detect_format,
    _fail,
    _quiet,
    _read_head,
)

# --------------------------------------------------------------------------------------------
# Decoding: every format ends up as _Image with channels in gray / gray+alpha / RGB / RGBA order


@dataclass
class _Image:
    data: np.ndarray  # [H, W, C], C in 1..4 (gray, gray+alpha, RGB, RGBA)
    fmt: str  # "PNG", ...
    depth: str  # "8-bit", "16-bit", "float", ...
    colour: str  # "gray", "gray+alpha", "RGB", "RGBA", "palette", ...
    premultiplied: bool = False  # colour already multiplied by alpha

    @property
    def has_alpha(self) -> bool:
        return self.data.shape[2] in (2, 4)

    @property
    def describe(self) -> str:
        return f"{self.fmt} {self.depth} {self.colour}"


SizeCheck = Callable[[int, int], None]  # (width, height) -> None or InputError


def _read_image(path: _PATHLIKE, role: str, allowed: Sequence[str], check: SizeCheck) -> _Image:
    fmt = _detect_format(path, role, allowed)
    reader = {
        "PNG": _read_png,
        "JPEG": _read_pil,
        "WebP": _read_pil,
        "TIFF": _read_tiff,
        "EXR": _read_exr,
        "HDR": _read_hdr,
        "NPY": _read_npy,
    }[fmt]
    try:
        image = reader(path, fmt, role, check)
    except InputError:
        raise
    except MemoryError:
        _fail(path, f"not enough memory to decode this {_FORMAT_NAMES[fmt]} {role}")
    except Exception as exc:  # any decoder failure is the file's fault here
        _fail(
            path,
            f"cannot decode this {_FORMAT_NAMES[fmt]} file, it is corrupt or truncated "
            f"({_describe_exception(exc)})",
        )
    h, w = image.data.shape[:2]
    if h == 0 or w == 0:
        _fail(path, f"image has zero size ({w}x{h}); expected a non-empty {role}")
    return image


def _bytes(path: _PATHLIKE) -> np.ndarray:
    return np.fromfile(os.fspath(path), dtype=np.uint8)


def _read_png(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    import cv2

    head = _read_head(path, role, 33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        _fail(path, "not a valid PNG file (header is missing or corrupt)")
    w = int.from_bytes(head[16:20], "big")
    h = int.from_bytes(head[20:24], "big")
    bit_depth, colour_type = head[24], head[25]
    check(w, h)
    colour_names = {0: "gray", 2: "RGB", 3: "palette", 4: "gray+alpha", 6: "RGBA"}
    if colour_type not in colour_names:
        _fail(path, f"not a valid PNG file (unknown colour type {colour_type})")
    with _quiet():
        data = cv2.imdecode(_bytes(path), cv2.IMREAD_UNCHANGED)  # also ignores EXIF
    if data is None:
        _fail(path, "cannot decode this PNG file, it is corrupt or truncated")
    data = _from_cv(data)
    if colour_type == 4 and data.shape[2] == 4:  # OpenCV expands gray+alpha to BGRA
        data = np.ascontiguousarray(data[:, :, [0, 3]])
    colour = colour_names[colour_type]
    if colour_type == 3:
        colour = "palette RGBA" if data.shape[2] == 4 else "palette RGB"
    elif colour_type in (0, 2) and data.shape[2] in (2, 4):
        colour += " (tRNS transparency)"
    depth = f"{bit_depth}-bit"
    if data.dtype == np.uint8 and bit_depth < 8 and colour_type == 0:
        data = _expand_low_bit_gray(data, bit_depth)
    return _Image(data, "PNG", depth, colour)


def _expand_low_bit_gray(data: np.ndarray, bit_depth: int) -> np.ndarray:
    # OpenCV already scales 1/2/4-bit gray to 0..255; keep a guard in case a build does not.
    top = (1 << bit_depth) - 1
    if int(data.max(initial=0)) <= top:
        return (data.astype(np.uint16) * 255 // top).astype(np.uint8)
    return data


def _from_cv(data: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) [H, W(, C)] -> RGB(A) [H, W, C]."""
    if data.ndim == 2:
        return data[:, :, None]
    if data.shape[2] == 3:
        return np.ascontiguousarray(data[:, :, ::-1])
    if data.shape[2] == 4:
        return np.ascontiguousarray(data[:, :, [2, 1, 0, 3]])
    return data


@contextlib.contextmanager
def _pil_unlimited() -> Iterator[Any]:
    """Pillow with its decompression-bomb limit lifted: we check the size ourselves."""
    from PIL import Image

    with _QUIET_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield Image
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _read_pil(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    pil_formats = {"JPEG": ["JPEG"], "WebP": ["WEBP"]}[fmt]
    with _pil_unlimited() as Image, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(os.fspath(path), formats=pil_formats)  # lazy: reads the header only
        except Image.UnidentifiedImageError:
            _fail(path, f"not a valid {fmt} file (the header is corrupt or truncated)")
        with im:
            w, h = im.size
            check(w, h)
            mode = im.mode
            im.load()  # EXIF orientation is deliberately not applied
            if mode in ("L", "RGB", "RGBA", "LA"):
                data = np.asarray(im)
            elif mode in ("I;16", "I;16B", "I;16L"):
                data = np.asarray(im).astype(np.uint16)
            elif mode in ("1",):
                data = np.asarray(im.convert("L"))
            elif mode in ("P", "PA", "RGBa", "La"):
                data = np.asarray(im.convert("RGBA" if "A" in mode or "a" in mode else "RGB"))
            else:  # CMYK, YCbCr, ...
                data = np.asarray(im.convert("RGB"))
    data = np.ascontiguousarray(data)
    if data.ndim == 2:
        data = data[:, :, None]
    colour = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}[data.shape[2]]
    if mode == "CMYK":
        colour = "CMYK (converted to RGB)"
    depth = "16-bit" if data.dtype == np.uint16 else "8-bit"
    return _Image(data, fmt, depth, colour)


def _read_tiff(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    import tifffile

    with _quiet(), tifffile.TiffFile(os.fspath(path)) as tif:
        if not tif.pages:
            _fail(path, "TIFF file contains no image")
        page = tif.pages.first
        w, h = int(page.imagewidth), int(page.imagelength)
        check(w, h)
        photometric = int(page.photometric)
        if photometric == 3:
            _fail(path, "palette (indexed colour) TIFF is not supported; save it as RGB or gray")
        if photometric not in (0, 1, 2, 6):
            _fail(
                path,
                f"TIFF photometric interpretation {page.photometric.name} is not supported; "
                "expected gray or RGB",
            )
        samples = int(page.samplesperpixel)
        extrasamples = tuple(int(e) for e in page.extrasamples)
        planar_separate = int(page.planarconfig) == 2
        data = page.asarray()
    if samples == 1:
        data = data.reshape(h, w, 1)
    elif planar_separate or (data.ndim == 3 and data.shape[0] == samples and data.shape[2] == w):
        data = np.moveaxis(data.reshape(samples, h, w), 0, -1)
    else:
        data = data.reshape(h, w, samples)
    if photometric in (0, 1):  # gray (+ extra samples)
        data = data[:, :, : min(2, samples)]
    else:
        data = data[:, :, : min(4, samples)]
    if data.shape[2] not in (1, 2, 3, 4):
        _fail(path, f"TIFF with {samples} samples per pixel is not supported")
    if photometric == 0 and data.dtype.kind in "ub":  # min-is-white
        top = True if data.dtype == np.bool_ else np.iinfo(data.dtype).max
        data = data.copy()
        data[:, :, 0] = (~data[:, :, 0]) if data.dtype == np.bool_ else top - data[:, :, 0]
    if data.dtype == np.bool_:
        data = data.astype(np.uint8) * np.uint8(255)
        depth = "1-bit"
    elif data.dtype.kind == "f":
        data = data.astype(np.float32)
        depth = "float"
    elif data.dtype in (np.uint8, np.uint16):
        depth = f"{data.dtype.itemsize * 8}-bit"
    else:
        _fail(
            path,
            f"TIFF sample type {data.dtype} is not supported; expected 8- or 16-bit unsigned "
            "integers or floats",
        )
    premultiplied = bool(extrasamples) and extrasamples[0] == 1
    colour = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}[data.shape[2]]
    return _Image(np.ascontiguousarray(data), "TIFF", depth, colour, premultiplied)


def _import_openexr(path: _PATHLIKE) -> Any:
    try:
        import OpenEXR
    except ImportError:
        _fail(path, "reading EXR files needs the 'openexr' Python package, which is missing")
    return OpenEXR


def _exr_channels(path: _PATHLIKE, check: SizeCheck) -> dict[str, np.ndarray]:
    OpenEXR = _import_openexr(path)
    with _quiet():
        with OpenEXR.File(os.fspath(path), header_only=True) as f:
            # copy what we need now: the header is emptied when the file closes
            window = f.header().get("dataWindow")
        if window is None:
            _fail(path, "cannot read the EXR header, the file is corrupt or truncated")
        lo, hi = (np.asarray(v).copy() for v in window)
        w, h = int(hi[0]) - int(lo[0]) + 1, int(hi[1]) - int(lo[1]) + 1
        check(w, h)
        with OpenEXR.File(os.fspath(path), separate_channels=True) as f:
            channels = f.channels()
            out = {}
            for name, channel in channels.items():
                pixels = np.asarray(channel.pixels)
                if pixels.shape[:2] != (h, w):
                    continue  # subsampled chroma channels (RY/BY) are not used
                out[name] = pixels.astype(np.float32)
    if not out:
        _fail(path, "EXR file has no full-resolution channel")
    return out


def _pick_exr_rgb(path: _PATHLIKE, channels: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    if all(c in channels for c in "RGB"):
        return np.dstack([channels[c] for c in "RGB"]), "RGB"
    layers = sorted(
        {n.rsplit(".", 1)[0] for n in channels if "." in n and n.rsplit(".", 1)[1] == "R"}
    )
    for layer in layers:
        names = [f"{layer}.{c}" for c in "RGB"]
        if all(n in channels for n in names):
            return np.dstack([channels[n] for n in names]), f"RGB of layer '{layer}'"
    if "Y" in channels:
        return channels["Y"][:, :, None], "luminance Y"
    if len(channels) == 1:
        name = next(iter(channels))
        return channels[name][:, :, None], f"channel '{name}'"
    _fail(
        path,
        f"EXR has no R, G, B or Y channels (it has {', '.join(sorted(channels)[:8])}); "
        "expected an RGB image",
    )


def _read_exr(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    channels = _exr_channels(path, check)
    if role == "depth map":
        lower = {n.lower(): n for n in channels}
        for want in ("z", "depth", "distance", "y", "r"):
            if want in lower:
                return _Image(channels[lower[want]][:, :, None], "EXR", "float", lower[want])
        for n in channels:
            if n.lower().endswith((".z", ".depth", ".distance")):
                return _Image(channels[n][:, :, None], "EXR", "float", n)
        if len(channels) == 1:
            name = next(iter(channels))
            return _Image(channels[name][:, :, None], "EXR", "float", name)
        _fail(
            path,
            f"EXR has no depth channel (it has {', '.join(sorted(channels)[:8])}); "
            "expected a channel named Z, depth, distance, Y or R",
        )
    data, colour = _pick_exr_rgb(path, channels)
    alpha = "A" in channels and colour == "RGB"
    if role == "mask" and alpha:
        data = np.dstack([data, channels["A"]])
        colour = "RGBA"
    return _Image(np.ascontiguousarray(data), "EXR", "float", colour, premultiplied=True)


_HDR_RES = re.compile(rb"^([+-])([XY]) +(\d+) +([+-])([XY]) +(\d+)\s*$")


def _read_hdr(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    import cv2

    with open(path, "rb") as f:
        head = f.read(65536)
    lines = head.split(b"\n")
    size = None
    for i, line in enumerate(lines[:-1]):
        if line.strip() == b"" and i > 0:
            match = _HDR_RES.match(lines[i + 1].strip())
            if match:
                a, b = int(match.group(3)), int(match.group(6))
                size = (b, a) if match.group(2) == b"Y" else (a, b)  # (w, h)
            break
    if size is None:
        _fail(path, "not a valid Radiance HDR file (no resolution line in the header)")
    check(*size)
    with _quiet():
        data = cv2.imdecode(_bytes(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        _fail(path, "cannot decode this Radiance HDR file, it is corrupt or truncated")
    data = _from_cv(data).astype(np.float32)
    colour = {1: "gray", 3: "RGB"}.get(data.shape[2], "RGB")
    return _Image(data[:, :, :3], "HDR", "float", colour)


def _read_npy(path: _PATHLIKE, fmt: str, role: str, check: SizeCheck) -> _Image:
    try:
        arr = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc):
            _fail(path, "NumPy file holds Python objects; expected a numeric array")
        raise
    if not isinstance(arr, np.ndarray):
        _fail(path, "expected a single array in a .npy file")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        _fail(path, f"array has shape {tuple(arr.shape)}; expected [H, W] or [H, W, C<=4]")
    if arr.dtype.kind not in "biuf":
        _fail(path, f"array has dtype {arr.dtype}; expected bool, integer or float values")
    check(int(arr.shape[1]), int(arr.shape[0]))
    data = np.array(arr)  # read it all, release the memory map
    del arr
    if data.ndim == 2:
        data = data[:, :, None]
    colour = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}[data.shape[2]]
    return _Image(np.ascontiguousarray(data), "NPY", str(data.dtype), colour)
