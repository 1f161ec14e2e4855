"""Loading and validating what the user gives Pano4D: panorama, masks, regions, depth.

Every user-facing failure raises :class:`engine.errors.InputError` with one line that names the
file, says what is wrong and what is expected; no exception of a decoder (OpenCV, Pillow,
OpenEXR, tifffile, json, NumPy) escapes, and native decoders' own chatter on stdout/stderr
(libpng, OpenEXR, OpenCV logging) is swallowed while they run.

Files are recognised by their content (magic bytes), not by their extension; the extension is
only used to phrase the error when the content is not recognised.

Panorama (:func:`load_panorama`)
================================
Equirectangular 360x180 image, width = 2 x height within +/-1 % (W/H in [1.98, 2.02]),
between 256x128 and 16384x8192 pixels inclusive. The size is read from the header before the
pixels are decoded, so an oversized file fails at once.

* PNG, JPEG, WebP, TIFF: 1/8/16-bit, gray, gray+alpha, palette, RGB, RGBA.
  16-bit samples become 8-bit by ``round(v / 257)`` (exact for values that came from 8-bit).
  Gray is replicated into R, G and B. An alpha channel that is not fully opaque is composited
  over black (``c * a / a_max``, rounded once at the end); a fully opaque one is dropped. The
  result says which in :attr:`Panorama.source`.
* EXIF orientation is **ignored** on purpose: a panorama's rows are latitudes, and rotating it
  would break the equirectangular mapping.
* EXR, Radiance HDR, float TIFF: scene-linear float RGB, tone-mapped to 8-bit sRGB by
  :func:`tonemap_linear`: NaN and -inf become 0, +inf the largest finite value, negatives 0;
  an exposure maps the median luminance (Rec. 709 weights, over pixels with positive
  luminance) to 0.18; then the ACES filmic fit of K. Narkowicz,
  ``f(x) = x (2.51 x + 0.03) / (x (2.43 x + 0.59) + 0.14)`` clamped to [0, 1], per channel;
  then the sRGB transfer function and rounding. The mapping is monotonic. EXR colour is
  premultiplied by convention, so its alpha is ignored (compositing over black is a no-op).
  EXR channels used: ``R, G, B`` (or the first ``<layer>.R/G/B``), else ``Y``, else a lone
  channel.

:attr:`Panorama.rgb` (uint8 sRGB, H x W x 3) is the canonical image: "static pixels are
bit-identical" is judged against it. Treat it as read-only.

Masks (:func:`load_mask`)
=========================
Any image the panorama loader reads, or a ``.npy`` array ([H, W] or [H, W, C]). Nonzero means
"animate": the maximum over the colour channels is compared with 0 -- except that if the image
has an alpha channel that is not constant, the alpha channel alone is the mask (a painted
layer exported with transparency), and JPEG masks are thresholded at half scale because lossy
compression scatters small nonzero values around the edges. The mask may have any size whose
aspect is within +/-2 % of the panorama's; it is resampled to the panorama size (area
averaging when shrinking, bilinear with the left/right seam wrapped when enlarging) and
thresholded at 0.5 -- but a region is never lost: if nothing survives 0.5, every pixel with
any coverage (> 0) is kept, so a one-pixel-thin stroke survives downscaling.

Regions file (:func:`load_regions`, :func:`save_regions`) -- format ``pano4d-regions`` v1
=========================================================================================
A UTF-8 JSON object::

    {"format": "pano4d-regions", "version": 1,
     "regions": [
       {"name": "sky", "mask": "sky.png", "label": null, "motion": "flow",
        "direction_deg": 0, "speed_deg_s": 2.0, "feather_px": 12,
        "color": [80, 160, 255]}]}

Top-level keys are exactly ``format``, ``version`` and ``regions`` (a non-empty list). Per
region:

``name`` (required)
    non-empty string without control characters, unique within the file.
``mask`` (required)
    path of a mask image, relative to the JSON file's folder or absolute.
``label`` (optional, default null)
    null: the region is the mask's nonzero pixels (rules of :func:`load_mask`). An integer
    0..65535: the mask is a label map shared by several regions and the region is the pixels
    equal to this value (single-channel image or ``.npy``; the value must occur).
``motion`` (optional, default "flow")
    ``"flow"``: the region drifts along its direction (clouds, water, smoke); the clip
    loops by cross-fading. ``"sway"``: it oscillates back and forth along its direction
    once per loop, with a phase that varies smoothly across the region (foliage, grass,
    ripples); it loops exactly, with no cross-fade.
``direction_deg`` (optional, default 0)
    motion direction on the sphere's local tangent plane, degrees, in the east/north frame
    of every point of the region: 0 = east (to the right in the image, +longitude),
    90 = north (up), 180 = west, 270 = south. Any finite number; stored modulo 360. (The
    flow animator makes this a field that is smooth through the poles: see
    :mod:`engine.animate.flow`.)
``speed_deg_s`` (optional, default 2.0)
    angular speed in degrees per second: on the horizon this is degrees of arc per second;
    the motion slows as cos(latitude) towards the poles, 0..90.
``feather_px`` (optional, default 8)
    edge feather width in panorama pixels at full resolution, 0..1024.
``color`` (optional, default [255, 80, 80])
    UI colour, three integers 0..255.
``prompt`` (optional)
    what the region is and how it moves ("clouds drifting slowly to the left"): conditions
    text video models, and when the entry gives none of ``motion``, ``direction_deg`` and
    ``speed_deg_s`` its words set them (:mod:`engine.text.motion`).
``mask_prompt`` (optional, instead of ``mask``)
    what to select ("sky"): segmented on the panorama by the seg model (``--seg-model``).

Any other key is an error, as are wrong types, non-finite numbers (JSON ``NaN``), values out
of range, duplicate names, missing mask files and regions that are empty after resampling.
Regions may overlap; where they do, the later region wins. :func:`save_regions` writes the
masks as 8-bit single-channel 0/255 PNGs next to the JSON (or in ``mask_dir``) and the JSON
last, each atomically (temporary file + ``os.replace``).

Depth (:func:`load_depth`)
==========================
Distance along the ray (not planar z), one value per panorama pixel, in metre-like units:
16-bit PNG/TIFF (``value * png16_scale``; 0 = invalid), float TIFF, EXR (channel ``Z``,
``depth``, ``distance``, ``Y``, ``R`` or a lone channel) or ``.npy`` (real numbers, taken as
they are; [H, W] or [H, W, 1]). 8-bit depth is refused (too coarse). Aspect within +/-2 % of
the panorama's; resampled to the panorama size with validity weighting (invalid pixels do not
bleed into valid ones). Non-finite and non-positive values are invalid and are returned as
**NaN** -- the caller decides how to fill them (e.g. with the far shell). A map with no valid
value is an error. Enlarging keeps depth edges: where the four source pixels of a sample
differ by more than 10 %, the nearest one is taken instead of a blend (a blend would float
Gaussians between a foreground and its background).

Per-frame depth (:func:`load_depth_frames`): a folder of ``frame_0000.<ext>``,
``frame_0001.<ext>``, ... depth images (any of the formats above, numbered from 0 with no
gaps), or a ``.npy`` array [T, H, W] (or [T, H, W, 1]). There must be exactly one depth per
animation frame; every frame must share one size (a 2:1 aspect as above) and hold at least
one valid value. A single depth map is the same depth for every frame.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from engine.errors import InputError

__all__ = [
    "MAX_SIZE",
    "MIN_SIZE",
    "Panorama",
    "Region",
    "REGIONS_FORMAT",
    "REGIONS_VERSION",
    "load_depth",
    "load_depth_frames",
    "resize_depth",
    "load_mask",
    "load_panorama",
    "load_regions",
    "regions_from_mask",
    "save_regions",
    "tonemap_linear",
    "validate_regions",
]

MIN_SIZE = (128, 256)  # (H, W)
MAX_SIZE = (8192, 16384)  # (H, W)
PANORAMA_ASPECT_TOLERANCE = 0.01  # W/H in [1.98, 2.02]
AUX_ASPECT_TOLERANCE = 0.02  # masks and depth: aspect within 2 % of the panorama's
REGIONS_FORMAT = "pano4d-regions"
REGIONS_VERSION = 1
MAX_SPEED_DEG_S = 90.0
MAX_FEATHER_PX = 1024.0
MAX_LABEL = 65535
_MAX_JSON_BYTES = 16 * 1024 * 1024

_PATHLIKE = str | os.PathLike

# Format names by extension, only used to phrase errors (content decides the decoder).
_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".webp": "WebP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".exr": "EXR",
    ".hdr": "HDR",
    ".pic": "HDR",
    ".rgbe": "HDR",
    ".npy": "NPY",
}
_FORMAT_NAMES = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "WebP": "WebP",
    "TIFF": "TIFF",
    "EXR": "OpenEXR",
    "HDR": "Radiance HDR",
    "NPY": "NumPy .npy",
}
_IMAGE_FORMATS = ("PNG", "JPEG", "WebP", "TIFF", "EXR", "HDR")
_PANORAMA_FORMATS = _IMAGE_FORMATS
_MASK_FORMATS = (*_IMAGE_FORMATS, "NPY")
_DEPTH_FORMATS = ("PNG", "TIFF", "EXR", "NPY")


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


@dataclass(frozen=True, eq=False)
class Region:
    """A painted region that moves, and how."""

    name: str
    mask: np.ndarray  # bool [H, W]
    direction_deg: float  # 0 = east (+longitude, right), 90 = north (up), 180 west, 270 south
    speed_deg_s: float  # degrees per second (arc speed on the horizon), 0..90
    feather_px: float = 8.0  # edge feather width in full-resolution panorama pixels, >= 0
    color: tuple[int, int, int] = (255, 80, 80)  # UI colour
    motion: str = "flow"  # "flow" (drifts along the direction) or "sway" (oscillates)
    prompt: str = ""  # what the region is and how it moves (text-conditioned video models)


# --------------------------------------------------------------------------------------------
# Errors and quiet native code


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(path: _PATHLIKE | None, message: str) -> NoReturn:
    prefix = f"{os.fspath(path)}: " if path is not None else ""
    raise InputError(_one_line(prefix + message))


def _describe_exception(exc: BaseException) -> str:
    text = _one_line(str(exc))
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_QUIET_LOCK = threading.RLock()
_LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence native decoders (libpng, OpenEXR, OpenCV) and library warnings while they run.

    The process-wide stdout/stderr file descriptors are pointed at a temporary file for the
    duration (POSIX only, under a lock); whatever was captured is logged at DEBUG level.
    """
    python_sink = io.StringIO()
    with (
        _QUIET_LOCK,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(python_sink),
        contextlib.redirect_stderr(python_sink),
    ):
        warnings.simplefilter("ignore")
        tiff_logger = logging.getLogger("tifffile")
        old_level = tiff_logger.level
        tiff_logger.setLevel(logging.CRITICAL)
        saved: list[int] = []
        sink = None
        try:
            if os.name == "posix":
                try:
                    for stream in (sys.stdout, sys.stderr):
                        with contextlib.suppress(Exception):
                            stream.flush()
                    sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
                    saved = [os.dup(1), os.dup(2)]
                    os.dup2(sink.fileno(), 1)
                    os.dup2(sink.fileno(), 2)
                except OSError:
                    for fd_target, fd_saved in zip((1, 2), saved):
                        os.dup2(fd_saved, fd_target)
                    for fd in saved:
                        os.close(fd)
                    saved = []
            yield
        finally:
            if saved:
                _flush_c_stdio()
                for fd_target, fd_saved in zip((1, 2), saved):
                    os.dup2(fd_saved, fd_target)
                for fd in saved:
                    os.close(fd)
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.seek(0)
                    captured = sink.read(4096).decode("utf-8", "replace").strip()
                    captured = (python_sink.getvalue()[:4096] + " " + captured).strip()
                    if captured:
                        _LOG.debug("decoder output: %s", _one_line(captured))
                sink.close()
            tiff_logger.setLevel(old_level)


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


# --------------------------------------------------------------------------------------------
# File checks and format sniffing


def _check_file(path: _PATHLIKE, role: str) -> int:
    """Existence / type / emptiness checks; returns the file size in bytes."""
    try:
        if not os.path.exists(path):
            _fail(path, f"file not found; expected an existing {role} file")
        if os.path.isdir(path):
            _fail(path, f"is a folder, not a file; expected a {role} file")
        size = os.path.getsize(path)
    except (OSError, ValueError) as exc:
        _fail(path, f"cannot access the {role} file ({_describe_exception(exc)})")
    if size == 0:
        _fail(path, f"file is empty (0 bytes); expected a {role} file")
    return size


def _read_head(path: _PATHLIKE, role: str, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        _fail(path, f"cannot read the {role} file ({_describe_exception(exc)})")


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"\x76\x2f\x31\x01":
        return "EXR"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "HDR"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    return None


def _list_formats(formats: Sequence[str]) -> str:
    names = [_FORMAT_NAMES[f] for f in formats]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _detect_format(path: _PATHLIKE, role: str, allowed: Sequence[str]) -> str:
    _check_file(path, role)
    fmt = _sniff(_read_head(path, role))
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if fmt is None:
        if ext in _EXTENSIONS:
            name = _FORMAT_NAMES[_EXTENSIONS[ext]]
            _fail(
                path,
                f"not a valid {name} file (unrecognised content: corrupt, truncated or "
                f"misnamed); expected a {role} in {_list_formats(allowed)}",
            )
        shown = f"'{ext}'" if ext else "(no extension)"
        _fail(
            path,
            f"unsupported file type {shown}; expected a {role} in {_list_formats(allowed)}",
        )
    if fmt not in allowed:
        _fail(
            path,
            f"is a {_FORMAT_NAMES[fmt]} file, which is not accepted for a {role}; "
            f"expected {_list_formats(allowed)}",
        )
    return fmt


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
    note = f"tone-mapped (median luminance to 0.18: exposure x{exposure:.4g}, ACES fit, sRGB)"
    if n_bad or n_neg:
        note += f", {n_bad} non-finite and {n_neg} negative samples clamped"
    return out, note


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
    """float32 [h, w] -> [H, W]: area when shrinking, bilinear with a wrapped seam otherwise."""
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


def _resample_binary(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
    return _resample_binary(_binary_from_image(image), size)


# --------------------------------------------------------------------------------------------
# Regions


def regions_from_mask(
    mask: np.ndarray,
    direction_deg: float = 0.0,
    speed_deg_s: float = 2.0,
    feather_px: float = 8.0,
    name: str = "region",
    motion: str = "flow",
) -> list[Region]:
    """One region from a single mask (what ``generate --mask M`` animates)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"mask must be a 2-D array [H, W], got shape {tuple(mask.shape)}")
    region = Region(
        name=name,
        mask=mask.astype(bool) if mask.dtype != np.bool_ else mask,
        direction_deg=float(direction_deg) % 360.0
        if math.isfinite(float(direction_deg))
        else float(direction_deg),
        speed_deg_s=float(speed_deg_s),
        feather_px=float(feather_px),
        motion=motion,
    )
    validate_regions([region], mask.shape)
    return [region]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_regions(regions: Sequence[Region], size: tuple[int, int]) -> None:
    """Check regions for the panorama ``size``; raise InputError naming the region and field."""
    size = _check_size_arg(size)
    if len(regions) == 0:
        raise InputError("no regions to animate: paint at least one region")
    seen: set[str] = set()
    for i, region in enumerate(regions, start=1):
        if not isinstance(region, Region):
            raise InputError(f"region #{i} is a {type(region).__name__}, not a Region")
        _check_name(None, i, region.name)
        label = f"region '{region.name}'"
        if region.name in seen:
            raise InputError(f"{label}: duplicate region name; names must be unique")
        seen.add(region.name)
        mask = region.mask
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != size:
            shape = tuple(mask.shape) if isinstance(mask, np.ndarray) else type(mask).__name__
            dtype = mask.dtype if isinstance(mask, np.ndarray) else "-"
            raise InputError(
                f"{label}: mask has shape {shape} and dtype {dtype}; expected a bool array "
                f"of shape {size} (the panorama's height x width)"
            )
        if not mask.any():
            raise InputError(f"{label}: mask is empty; paint at least one pixel")
        for field, value, lo, hi in (
            ("direction_deg", region.direction_deg, -math.inf, math.inf),
            ("speed_deg_s", region.speed_deg_s, 0.0, MAX_SPEED_DEG_S),
            ("feather_px", region.feather_px, 0.0, MAX_FEATHER_PX),
        ):
            problem = _number_problem(value, lo, hi)
            if problem:
                raise InputError(f"{label}: {field} {problem}")
        problem = _color_problem(region.color)
        if problem:
            raise InputError(f"{label}: color {problem}")
        if region.motion not in MOTIONS:
            raise InputError(f"{label}: motion must be one of {', '.join(MOTIONS)}")


def _check_name(path: _PATHLIKE | None, index: int, name: Any) -> None:
    prefix = f"region #{index}: name"
    if not isinstance(name, str):
        _fail(path, f"{prefix} must be a string, got {_json_type(name)}")
    if not name.strip():
        _fail(path, f"{prefix} must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        _fail(path, f"{prefix} must not contain control characters")
    if len(name) > 200:
        _fail(path, f"{prefix} is longer than 200 characters")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"[:60]
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _number_problem(value: Any, lo: float, hi: float) -> str | None:
    if not _is_number(value) and not isinstance(value, np.floating | np.integer):
        return f"must be a number, got {_json_type(value)}"
    value = float(value)
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if value < lo or value > hi:
        if math.isinf(hi):
            return f"must be >= {lo:g}, got {value:g}"
        return f"must be between {lo:g} and {hi:g}, got {value:g}"
    return None


def _color_problem(value: Any) -> str | None:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255
            for c in value
        )
    ):
        return f"must be three integers 0..255 like [255, 80, 80], got {value!r}"[:120]
    return None


_REGION_FIELDS = (
    "name",
    "mask",
    "label",
    "motion",
    "direction_deg",
    "speed_deg_s",
    "feather_px",
    "color",
    "prompt",
    "mask_prompt",
)
MOTIONS = ("flow", "sway")
MAX_PROMPT_CHARS = 2000
_TOP_FIELDS = ("format", "version", "regions")


def _read_json(path: _PATHLIKE) -> Any:
    size = _check_file(path, "regions JSON")
    if size > _MAX_JSON_BYTES:
        _fail(path, f"file is {size} bytes, too large for a regions JSON file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        _fail(path, f"cannot read the regions file ({_describe_exception(exc)})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        _fail(path, "is not UTF-8 text; expected a pano4d-regions JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(
            path,
            f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "expected a pano4d-regions JSON file",
        )
    except (ValueError, RecursionError) as exc:
        _fail(path, f"is not valid JSON ({_describe_exception(exc)})")


class _MaskCache:
    """Decoded mask files, shared by regions that use the same label map."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.images: dict[str, _Image] = {}

    def get(self, path: str) -> _Image:
        if path not in self.images:
            self.images[path] = _read_aux(path, self.size, "mask", _MASK_FORMATS)
        return self.images[path]


def _label_channel(image: _Image, where: str) -> np.ndarray:
    data = image.data
    colour = data[:, :, :-1] if image.has_alpha else data
    if colour.shape[2] > 1 and not all(
        np.array_equal(colour[:, :, 0], colour[:, :, c]) for c in range(1, colour.shape[2])
    ):
        raise InputError(
            f"{where}: a label map must be a single-channel (gray) image or array, "
            f"but this one has different colour channels"
        )
    return colour[:, :, 0]


def load_regions(
    path: _PATHLIKE,
    size: tuple[int, int],
    segment: Callable[[str], np.ndarray] | None = None,
) -> list[Region]:
    """Read a ``pano4d-regions`` JSON file (format in the module docs) for a panorama size.

    ``segment(mask_prompt) -> [H, W] bool`` finds a region that has a ``mask_prompt`` and no
    ``mask`` (a segmentation model on the panorama); without it such a region is refused."""
    size = _check_size_arg(size)
    doc = _read_json(path)
    if not isinstance(doc, dict):
        _fail(path, f"top level is {_json_type(doc)}; expected a JSON object")
    for key in doc:
        if key not in _TOP_FIELDS:
            _fail(path, f"unknown key '{key}' at the top level; allowed: {', '.join(_TOP_FIELDS)}")
    if doc.get("format") != REGIONS_FORMAT:
        _fail(
            path,
            f"'format' is {_json_type(doc.get('format'))}; expected \"{REGIONS_FORMAT}\"",
        )
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        _fail(path, f"'version' is {_json_type(version)}; expected {REGIONS_VERSION}")
    if version > REGIONS_VERSION:
        _fail(
            path,
            f"regions format version {version} is newer than this Pano4D reads "
            f"(version {REGIONS_VERSION}); update Pano4D",
        )
    if version != REGIONS_VERSION:
        _fail(path, f"unsupported regions format version {version}; expected {REGIONS_VERSION}")
    items = doc.get("regions")
    if not isinstance(items, list):
        _fail(path, f"'regions' is {_json_type(items)}; expected a list of regions")
    if not items:
        _fail(path, "'regions' is empty; expected at least one region")

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    cache = _MaskCache(size)
    regions: list[Region] = []
    names: set[str] = set()
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            _fail(path, f"region #{i} is {_json_type(item)}; expected an object")
        _check_name(path, i, item.get("name"))
        name = item["name"]
        where = f"region '{name}'"
        if name in names:
            _fail(path, f"{where}: duplicate name; region names must be unique")
        names.add(name)
        for key in item:
            if key not in _REGION_FIELDS:
                _fail(
                    path,
                    f"{where}: unknown key '{key}'; allowed: {', '.join(_REGION_FIELDS)}",
                )
        values: dict[str, float] = {}
        for field, default, lo, hi in (
            ("direction_deg", 0.0, -math.inf, math.inf),
            ("speed_deg_s", 2.0, 0.0, MAX_SPEED_DEG_S),
            ("feather_px", 8.0, 0.0, MAX_FEATHER_PX),
        ):
            value = item.get(field, default)
            problem = _number_problem(value, lo, hi)
            if problem:
                _fail(path, f"{where}: field '{field}' {problem}")
            values[field] = float(value)
        motion = item.get("motion", "flow")
        if motion not in MOTIONS:
            _fail(
                path, f"{where}: field 'motion' must be one of {', '.join(MOTIONS)}, got {motion!r}"
            )
        prompt = item.get("prompt", "")
        if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
            _fail(
                path,
                f"{where}: field 'prompt' must be text of at most {MAX_PROMPT_CHARS} characters, "
                f"got {_json_type(prompt)}",
            )
        color = item.get("color", [255, 80, 80])
        problem = _color_problem(color)
        if problem:
            _fail(path, f"{where}: field 'color' {problem}")
        label = item.get("label")
        if label is not None and (
            not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= MAX_LABEL
        ):
            _fail(
                path,
                f"{where}: field 'label' must be null or an integer 0..{MAX_LABEL}, "
                f"got {_json_type(label)}",
            )
        mask_prompt = item.get("mask_prompt")
        if mask_prompt is not None and (
            not isinstance(mask_prompt, str) or not mask_prompt.strip()
        ):
            _fail(path, f"{where}: field 'mask_prompt' must be text, got {_json_type(mask_prompt)}")
        if item.get("mask") is None and mask_prompt is not None:
            if segment is None:
                _fail(path, f"{where}: 'mask_prompt' needs a segmentation model (--seg-model)")
            source = segment(mask_prompt.strip())
        else:
            mask_ref = item.get("mask")
            if not isinstance(mask_ref, str) or not mask_ref.strip():
                _fail(
                    path,
                    f"{where}: field 'mask' must be the path of a mask image, "
                    f"got {_json_type(mask_ref)}",
                )
            mask_path = os.path.normpath(os.path.join(folder, os.path.expanduser(mask_ref)))
            if not os.path.isfile(mask_path):
                what = "is a folder" if os.path.isdir(mask_path) else "not found"
                _fail(path, f"{where}: mask file '{mask_ref}' {what} (looked for {mask_path})")
            try:
                image = cache.get(mask_path)
                if label is None:
                    source = _binary_from_image(image)
                else:
                    labels = _label_channel(image, mask_ref)
                    source = labels == label
                    if not source.any():
                        present = np.unique(labels)
                        shown = ", ".join(str(v) for v in present[:12].tolist())
                        more = ", ..." if present.size > 12 else ""
                        raise InputError(
                            f"label {label} does not occur in mask file '{mask_ref}' "
                            f"(values present: {shown}{more})"
                        )
            except InputError as exc:
                _fail(path, f"{where}: {exc}")
            if not source.any():
                _fail(path, f"{where}: mask file '{mask_ref}' is empty (no nonzero pixel)")
        mask = _resample_binary(source, size)
        if prompt.strip() and not {"motion", "direction_deg", "speed_deg_s"} & set(item):
            from .text.motion import parse_motion  # the prompt's words say how it moves

            said = parse_motion(prompt)
            motion, values["direction_deg"] = said.motion, said.direction_deg
            values["speed_deg_s"] = said.speed_deg_s
        regions.append(
            Region(
                name=name,
                mask=mask,
                direction_deg=values["direction_deg"] % 360.0,
                speed_deg_s=values["speed_deg_s"],
                feather_px=values["feather_px"],
                color=(int(color[0]), int(color[1]), int(color[2])),
                motion=motion,
                prompt=prompt.strip(),
            )
        )
    try:
        validate_regions(regions, size)
    except InputError as exc:
        _fail(path, str(exc))
    return regions


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    return slug[:60] or "region"


def _mask_prefix(json_path: str) -> str:
    stem = Path(json_path).stem
    for suffix in ("_regions", "-regions", ".regions", "regions"):
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _umask() -> int:
    with _QUIET_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _atomic_write(path: str, payload: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_regions(
    path: _PATHLIKE, regions: Sequence[Region], mask_dir: _PATHLIKE | None = None
) -> None:
    """Write ``regions`` as a ``pano4d-regions`` v1 JSON file plus one PNG mask per region.

    Masks go to ``mask_dir`` (default: the JSON's folder) as ``<prefix>_<name>.png``, where
    the prefix is the JSON file's stem without a trailing ``regions`` (``park_regions.json``
    -> ``park_sky.png``; ``regions.json`` -> ``sky.png``). Masks are written first, the JSON
    last, each atomically.
    """
    if len(regions) == 0:
        raise InputError(f"{os.fspath(path)}: no regions to save")
    first = regions[0].mask
    size = tuple(first.shape) if isinstance(first, np.ndarray) and first.ndim == 2 else (1, 1)
    try:
        validate_regions(regions, size)
    except InputError as exc:
        _fail(path, f"cannot save: {exc}")
    import cv2

    json_path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(json_path)
    masks_folder = os.path.abspath(os.fspath(mask_dir)) if mask_dir is not None else folder
    prefix = _mask_prefix(json_path)
    entries = []
    used: set[str] = set()
    try:
        os.makedirs(folder, exist_ok=True)
        os.makedirs(masks_folder, exist_ok=True)
        for region in regions:
            base = f"{prefix}_{_slug(region.name)}" if prefix else _slug(region.name)
            file_name, n = f"{base}.png", 2
            while file_name.lower() in used:
                file_name, n = f"{base}_{n}.png", n + 1
            used.add(file_name.lower())
            mask_path = os.path.join(masks_folder, file_name)
            ok, encoded = cv2.imencode(".png", region.mask.astype(np.uint8) * np.uint8(255))
            if not ok:
                _fail(mask_path, "could not encode the mask as PNG")
            _atomic_write(mask_path, encoded.tobytes())
            try:
                ref = Path(os.path.relpath(mask_path, folder)).as_posix()
            except ValueError:  # another drive on Windows
                ref = Path(mask_path).as_posix()
            entries.append(
                {
                    "name": region.name,
                    "mask": ref,
                    "label": None,
                    "motion": region.motion,
                    "direction_deg": round(float(region.direction_deg) % 360.0, 6),
                    "speed_deg_s": float(region.speed_deg_s),
                    "feather_px": float(region.feather_px),
                    "color": [int(c) for c in region.color],
                    **({"prompt": region.prompt} if region.prompt else {}),
                }
            )
        doc = {"format": REGIONS_FORMAT, "version": REGIONS_VERSION, "regions": entries}
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        _atomic_write(json_path, text.encode("utf-8"))
    except OSError as exc:
        _fail(path, f"cannot write the regions ({_describe_exception(exc)})")


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

        filled = np.where(valid, depth, 0.0).astype(np.float32)
        k = np.ones((2, 2), np.uint8)
        hi = cv2.dilate(filled, k, borderType=cv2.BORDER_REPLICATE)
        lo = cv2.erode(np.where(valid, depth, np.inf).astype(np.float32), k)
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
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        _fail(
            folder,
            f"per-frame depth has gaps: frame_{missing[0]:04d} is missing "
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
