"""Regions: :class:`Region`, the ``pano4d-regions`` file (:func:`load_regions`,
:func:`save_regions`) and its validation."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .common import (
    _MASK_FORMATS,
    _MAX_JSON_BYTES,
    _PATHLIKE,
    _QUIET_LOCK,
    MAX_FEATHER_PX,
    MAX_LABEL,
    MAX_SPEED_DEG_S,
    REGIONS_FORMAT,
    REGIONS_VERSION,
    _check_file,
    _describe_exception,
    _fail,
)
from .images import _Image
from .masks import _binary_from_image, _check_size_arg, _read_aux, resample_mask

# --------------------------------------------------------------------------------------------
# Public data type


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
        mask = resample_mask(source, size)
        if prompt.strip() and not {"motion", "direction_deg", "speed_deg_s"} & set(item):
            from ..text.motion import parse_motion  # the prompt's words say how it moves

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
