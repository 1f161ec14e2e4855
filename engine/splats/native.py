"""The native Pano4D scene folder (format ``pano4d-scene``): :func:`save_scene`,
:func:`load_scene`, :func:`scene_info`.

Native scene folder (format ``pano4d-scene``, version 2; version 1 is still read)
------------------------------------------------------------------------------------
::

    scene/
      manifest.json
      static.safetensors
      dynamic/base.safetensors          the dynamic set of frame 0, complete
      dynamic/frame_0001.safetensors    fp16 deltas of frame 1 against the base
      ...

``manifest.json`` is a JSON object with these keys:

- ``format`` = ``"pano4d-scene"``, ``version`` = 2 (an integer; readers refuse versions
  they do not know with one line)
- ``conventions``: axes ``+Y up, -Z forward, +X right (OpenGL)``, quaternions ``wxyz``,
  scales ``log``, opacity ``logit``, colour ``0.5 + 0.28209479 * sh_dc``, depth ``distance
  along the ray`` (DESIGN.md section 2)
- ``frame_count`` (>= 1), ``fps`` (0.1..240), ``sh_degree`` (0..3; K = (sh_degree + 1)^2)
- ``counts``: ``{"static": N_s, "dynamic": [N_0, N_1, ...]}`` (one count per frame)
- ``bounds``: ``{"min": [x, y, z], "max": [x, y, z]}`` over every mean of every set
- ``dtypes``: storage dtype per tensor name, ``"float32"`` or ``"float16"``
- ``dynamic_encoding``: ``"delta"`` or ``"full"`` (below)
- ``files``: ``{"static": "static.safetensors", "dynamic": [...], "dynamic_base": ...}``
  (paths relative to the folder)
- ``dynamic_delta_fields``: the fields that change over time (``"delta"`` encoding)
- ``provenance``: free JSON object (source panorama, preset, regions, timings...)
- ``created`` (ISO 8601, UTC) and ``writer`` (``"Pano4D <version>"``)

Dynamic sets. With the ``"delta"`` encoding (every frame's dynamic set has the same size
and there are >= 2 frames), ``files.dynamic_base`` holds frame 0's dynamic set complete,
in the storage dtypes; ``files.dynamic[0]`` is null, and ``files.dynamic[t]`` (t >= 1)
holds one float16 tensor per name in ``dynamic_delta_fields``: frame t's value minus the
stored base value. Fields not listed are the same in every frame and stored once, in the
base. A reader builds frame t as base + delta (in float32). Deltas keep 11 significant
bits of the *change*: a Gaussian that moves 0.5 m is placed to within 0.25 mm. Per frame
and dynamic Gaussian at SH degree 0 this costs 6 bytes for a colour change, 2 for opacity,
6 each for means and log-scales when the geometry moves. With ``"full"`` encoding (sizes
differ between frames, or one frame) ``files.dynamic[t]`` holds frame t's set complete
and there is no base.

Version 1 (still read): no ``dynamic_encoding``; ``files.dynamic`` lists complete sets,
except that the fields named in ``dynamic_shared_fields`` are left out of them and stored
once in ``files.dynamic_shared``.

Each complete ``.safetensors`` set holds exactly five tensors for N Gaussians:
``means`` [N, 3], ``quats`` [N, 4] (wxyz), ``log_scales`` [N, 3], ``opacities`` [N]
(logits), ``sh`` [N, K, 3]. N may be 0. ``means`` is always float32. With ``half=True``
(default) the other four are float16, unless a value exceeds the float16 range (65504), in
which case that tensor is stored as float32 in every file. float16 keeps 11 significant bits:
relative error <= 2^-11 (4.9e-4) per value; for colours in [0, 1] the DC coefficient is off
by at most 4.9e-4, i.e. colour by at most 1.4e-4 (1/28 of an 8-bit level); opacity by at most
1e-3 for logits within +-16; scales by at most 0.4 % for log-scales within +-16.
Bytes per Gaussian (SH degree 0 / 3): 34 / 124 half, 56 / 236 float32.

Loading memory-maps each file (``safetensors.safe_open``), checks tensor names, shapes and
dtypes against the manifest, checks every value is finite, and returns float32 tensors.
Any problem raises :class:`~engine.errors.FormatError` with one line naming the file.

Saving writes the whole folder under a temporary name and renames it into place, so a crash
never leaves a half scene; saving over an existing scene replaces it. A non-empty folder that
is not a Pano4D scene is never replaced.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .. import __version__
from ..errors import FormatError, InputError
from ..fsutil import atomic_dir, fsync_file, readable_by_all, to_json, tree_size
from ..gaussians import Gaussians
from ..video import FPS_RANGE, fps_ok

FORMAT_NAME = "pano4d-scene"
FORMAT_VERSION = 2  # written; versions 1 and 2 are read
MANIFEST = "manifest.json"
BASE_FILE = "dynamic/base.safetensors"
CONVENTIONS = {
    "axes": "+Y up, -Z forward, +X right (OpenGL)",
    "quaternion": "wxyz",
    "scales": "log",
    "opacity": "logit",
    "colour": "0.5 + 0.28209479 * sh_dc",
    "depth": "distance along the ray",
}
FIELDS = ("means", "quats", "log_scales", "opacities", "sh")
FP16_MAX = 65504.0
_DTYPES = {"float16": torch.float16, "float32": torch.float32}

PathLike = str | os.PathLike[str]

if TYPE_CHECKING:
    from ..scene import Scene4D


# --------------------------------------------------------------------------- saving


def _abs_max(t: Tensor) -> float:
    """max |t| in one pass (NaN if any NaN, inf if any inf; 0 when empty)."""
    if t.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(t.detach())
    return max(-float(lo), float(hi))


def full_set_bytes(n: int, sh_degree: int, half: bool = True) -> int:
    """Tensor bytes of n Gaussians stored as one complete set (no sharing), e.g. to compare a
    scene with T full per-frame sets. Headers (a few hundred bytes per file) not included."""
    k = (sh_degree + 1) ** 2
    rest = 4 + 3 + 1 + 3 * k  # quats, log_scales, opacities, sh
    return n * (12 + rest * (2 if half else 4))


def uses_deltas(dynamic: list[Gaussians]) -> bool:
    """Whether the dynamic sets get the delta encoding (>= 2 frames of one size)."""
    return len(dynamic) >= 2 and len({len(g) for g in dynamic}) == 1 and len(dynamic[0]) > 0


def varying_fields(dynamic: list[Gaussians]) -> list[str]:
    """Fields that differ between the frames' dynamic sets (all when sizes differ)."""
    if not uses_deltas(dynamic):
        return list(FIELDS)
    first = dynamic[0].tensors()
    return [
        name
        for name in FIELDS
        if not all(torch.equal(first[name], g.tensors()[name]) for g in dynamic[1:])
    ]


def _choose_dtypes(scene: Scene4D, half: bool) -> dict[str, str]:
    """float32 for means; float16 for the rest when ``half`` and every value fits.

    Also refuses non-finite values (a scene that ``load_scene`` would reject).
    """
    peak = dict.fromkeys(FIELDS, 0.0)
    sets = [("static", scene.static)] + [(f"frame {t}", g) for t, g in enumerate(scene.dynamic)]
    for where, g in sets:
        for name, t in g.tensors().items():
            m = _abs_max(t)
            if not math.isfinite(m):
                raise ValueError(f"cannot save scene: non-finite values in {where} '{name}'")
            peak[name] = max(peak[name], m)
    fp16 = {n: half and n != "means" and peak[n] <= FP16_MAX for n in FIELDS}
    return {n: "float16" if fp16[n] else "float32" for n in FIELDS}


def _stored(g: Gaussians, dtypes: dict[str, str], fields: Iterable[str]) -> dict[str, Tensor]:
    """The given fields of ``g`` in their storage dtypes (CPU, contiguous)."""
    all_tensors = g.tensors()
    return {n: all_tensors[n].detach().to("cpu", _DTYPES[dtypes[n]]).contiguous() for n in fields}


def _deltas(g: Gaussians, base: dict[str, Tensor], fields: list[str]) -> dict[str, Tensor]:
    """float16 ``g - base`` per field (against the *stored* base, so errors do not add up)."""
    out = {}
    for name in fields:
        d = getattr(g, name).detach().cpu().float() - base[name].float()
        if _abs_max(d) > FP16_MAX:
            raise ValueError(f"cannot save scene: a per-frame change of '{name}' exceeds float16")
        out[name] = d.half().contiguous()
    return out


@dataclass
class _Plan:
    """What goes into which file: ``files`` maps relative paths to tensor dicts."""

    manifest: dict[str, Any]
    files: dict[str, dict[str, Tensor]]


def _plan(scene: Scene4D, half: bool) -> _Plan:
    dtypes = _choose_dtypes(scene, half)
    files = {"static.safetensors": _stored(scene.static, dtypes, FIELDS)}
    names: list[str | None] = []
    delta = uses_deltas(scene.dynamic)
    varying = varying_fields(scene.dynamic) if delta else list(FIELDS)
    if delta:
        base = _stored(scene.dynamic[0], dtypes, FIELDS)
        files[BASE_FILE] = base
        names.append(None)
        for t, g in enumerate(scene.dynamic[1:], start=1):
            rel = f"dynamic/frame_{t:04d}.safetensors"
            files[rel] = _deltas(g, base, varying)
            names.append(rel)
    else:
        for t, g in enumerate(scene.dynamic):
            rel = f"dynamic/frame_{t:04d}.safetensors"
            files[rel] = _stored(g, dtypes, FIELDS)
            names.append(rel)
    lo, hi = scene.bounds()
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "conventions": CONVENTIONS,
        "frame_count": scene.n_frames,
        "fps": float(scene.fps),
        "sh_degree": scene.sh_degree,
        "counts": {"static": len(scene.static), "dynamic": [len(g) for g in scene.dynamic]},
        "bounds": {"min": lo, "max": hi},
        "dtypes": dtypes,
        "dynamic_encoding": "delta" if delta else "full",
        "files": {
            "static": "static.safetensors",
            "dynamic": names,
            "dynamic_base": BASE_FILE if delta else None,
        },
        "dynamic_delta_fields": varying if delta else [],
        "provenance": scene.meta,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "writer": f"Pano4D {__version__}",
    }
    return _Plan(manifest, files)


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a file, or a non-empty folder that is not a Pano4D scene."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; refusing to replace it")
    if not any(folder.iterdir()):
        return
    try:
        fmt = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != FORMAT_NAME:
        raise InputError(f"{folder}: exists and is not a Pano4D scene; refusing to replace it")


def _write_file(path: Path, tensors: dict[str, Tensor]) -> None:
    """One safetensors file of the scene (readable by everyone)."""
    meta = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION)}
    safetensors.torch.save_file(tensors, str(path), metadata=meta)
    readable_by_all(path)


def save_scene(scene: Scene4D, folder: PathLike, *, half: bool = True) -> int:
    """Write ``scene`` as a native scene folder (atomically); returns its size in bytes.

    ``half`` stores everything except the means as float16 (see the module docstring for the
    error bounds). An existing scene at ``folder`` is replaced; a crash leaves either the old
    scene or nothing, never a mix. Raises ``ValueError`` for non-finite values and
    ``InputError`` when ``folder`` is a file or a non-empty folder that is not a scene.
    """
    folder = Path(folder)
    _check_replaceable(folder)
    plan = _plan(scene, half)
    text = to_json(plan.manifest) + "\n"  # before touching the disk: fails on bad meta
    with atomic_dir(folder) as tmp:
        (tmp / "dynamic").mkdir()
        for rel, tensors in plan.files.items():
            _write_file(tmp / rel, tensors)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        for f in tmp.rglob("*"):
            if f.is_file():
                fsync_file(f)
        size = tree_size(tmp)
    return size


# --------------------------------------------------------------------------- loading


def _fail(path: Path, problem: str) -> FormatError:
    return FormatError(f"{path}: {' '.join(str(problem).split())}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _read_manifest_json(folder: Path) -> tuple[Path, dict[str, Any]]:
    if not folder.exists():
        raise _fail(folder, "no such scene folder")
    if not folder.is_dir():
        raise _fail(folder, "not a folder (a Pano4D scene is a folder with manifest.json)")
    path = folder / MANIFEST
    if not path.is_file():
        raise _fail(path, "missing (not a Pano4D scene folder)")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _fail(path, "not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise _fail(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(m, dict):
        raise _fail(path, "not a JSON object")
    if m.get("format") != FORMAT_NAME:
        raise _fail(path, f"not a Pano4D scene (format {m.get('format')!r}, not {FORMAT_NAME!r})")
    v = m.get("version")
    if not _is_int(v) or v < 1:
        raise _fail(path, f"invalid format version {v!r}")
    if v > FORMAT_VERSION:
        raise _fail(
            path,
            f"written by a newer Pano4D (scene format version {v}; this Pano4D reads up to "
            f"version {FORMAT_VERSION}) - please upgrade Pano4D",
        )
    return path, m


def _check_manifest(path: Path, m: dict[str, Any]) -> None:
    """Structural checks of a version-1 or -2 manifest (types and mutual consistency)."""

    def need(ok: bool, problem: str) -> None:
        if not ok:
            raise _fail(path, problem)

    t = m.get("frame_count")
    need(_is_int(t) and t >= 1, f"'frame_count' must be an integer >= 1, got {t!r}")
    need(
        _is_number(m.get("fps")) and fps_ok(m["fps"]),
        f"'fps' must be within {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}, got {m.get('fps')!r}",
    )
    d = m.get("sh_degree")
    need(_is_int(d) and 0 <= d <= 3, f"'sh_degree' must be 0..3, got {d!r}")
    counts, files, dtypes = m.get("counts"), m.get("files"), m.get("dtypes")
    need(isinstance(counts, dict), "'counts' must be an object")
    need(_is_int(counts.get("static")) and counts["static"] >= 0, "bad 'counts.static'")
    dyn = counts.get("dynamic")
    need(isinstance(dyn, list) and len(dyn) == t, f"'counts.dynamic' must list {t} counts")
    need(all(_is_int(n) and n >= 0 for n in dyn), "'counts.dynamic' must hold integers >= 0")
    need(isinstance(files, dict), "'files' must be an object")
    need(isinstance(files.get("static"), str), "'files.static' must be a path")
    fd = files.get("dynamic")
    need(isinstance(fd, list) and len(fd) == t, f"'files.dynamic' must list {t} paths")
    if m["version"] == 1:
        _check_v1_dynamic(m, need)
    else:
        _check_v2_dynamic(m, need)
    for rel in [files["static"], *(r for r in fd if r is not None)]:
        need(_inside(rel), f"file entry {rel!r} is not a relative path inside the scene folder")
    need(isinstance(dtypes, dict) and set(dtypes) == set(FIELDS), f"'dtypes' must name {FIELDS}")
    bad = {k: v for k, v in dtypes.items() if v not in _DTYPES}
    need(not bad, f"unsupported dtypes {bad} (float16 or float32)")
    need(dtypes["means"] == "float32", "'means' must be stored as float32")
    need(isinstance(m.get("provenance", {}), dict), "'provenance' must be an object")


def _inside(rel: Any) -> bool:
    """Is ``rel`` a non-empty relative path that stays inside the scene folder?"""
    if not isinstance(rel, str) or rel == "":
        return False
    p = PurePosixPath(rel)
    return not p.is_absolute() and ".." not in p.parts


def _field_list(m: dict[str, Any], key: str, need) -> list[str]:
    names = m.get(key) or []
    need(
        isinstance(names, list)
        and all(f in FIELDS for f in names)
        and len(set(names)) == len(names),
        f"'{key}' must list distinct names from {FIELDS}",
    )
    return names


def _check_v1_dynamic(m: dict[str, Any], need) -> None:
    files, dyn = m["files"], m["counts"]["dynamic"]
    need(all(isinstance(r, str) for r in files["dynamic"]), "'files.dynamic' must list paths")
    if _field_list(m, "dynamic_shared_fields", need):
        rel = files.get("dynamic_shared")
        need(isinstance(rel, str), "'files.dynamic_shared' must be a path")
        need(len(set(dyn)) == 1, "'dynamic_shared_fields' needs the same count in every frame")
        need(_inside(rel), f"file entry {rel!r} is not a relative path inside the scene folder")


def _check_v2_dynamic(m: dict[str, Any], need) -> None:
    files, dyn = m["files"], m["counts"]["dynamic"]
    enc = m.get("dynamic_encoding")
    need(enc in ("delta", "full"), f"'dynamic_encoding' must be 'delta' or 'full', got {enc!r}")
    fd = files["dynamic"]
    if enc == "full":
        need(all(isinstance(r, str) for r in fd), "'files.dynamic' must list paths")
        return
    _field_list(m, "dynamic_delta_fields", need)
    need(len(set(dyn)) == 1, "the 'delta' encoding needs the same count in every frame")
    need(fd[0] is None, "'files.dynamic[0]' must be null with the 'delta' encoding")
    need(all(isinstance(r, str) for r in fd[1:]), "'files.dynamic' must list paths")
    rel = files.get("dynamic_base")
    need(_inside(rel), f"'files.dynamic_base' {rel!r} is not a path inside the scene folder")


def _read_tensors(path: Path, mmap: bool) -> dict[str, Tensor]:
    if not path.is_file():
        raise _fail(path, "missing (listed in manifest.json)")
    try:
        if not mmap:
            return safetensors.torch.load(path.read_bytes())
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _fail(path, f"not a valid safetensors file ({e})") from None


def _check_header(path: Path) -> None:
    """FormatError unless ``path`` is a safetensors file whose header covers it exactly."""
    if not path.is_file():
        raise _fail(path, "missing (listed in manifest.json)")
    try:
        with safe_open(str(path), framework="pt") as f:
            list(f.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _fail(path, f"not a valid safetensors file ({e})") from None


def _load_fields(
    path: Path, n: int, k: int, dtypes: dict[str, str], mmap: bool, fields: Iterable[str]
) -> dict[str, Tensor]:
    """Read and validate the given fields of one Gaussian set; returns float32 tensors."""
    fields = list(fields)
    tensors = _read_tensors(path, mmap)
    if set(tensors) != set(fields):
        missing, extra = set(fields) - set(tensors), set(tensors) - set(fields)
        raise _fail(path, f"wrong tensors (missing {sorted(missing)}, unexpected {sorted(extra)})")
    shapes = {"means": (n, 3), "quats": (n, 4), "log_scales": (n, 3), "opacities": (n,)}
    shapes["sh"] = (n, k, 3)
    out = {}
    for name in fields:
        t, want = tensors[name], _DTYPES[dtypes[name]]
        if t.dtype != want:
            got = str(t.dtype).removeprefix("torch.")
            raise _fail(path, f"tensor '{name}' is {got}, manifest.json says {dtypes[name]}")
        if tuple(t.shape) != shapes[name]:
            raise _fail(
                path,
                f"tensor '{name}' has shape {list(t.shape)}, expected {list(shapes[name])} "
                f"(manifest.json: {n} Gaussians, {k} SH coefficients)",
            )
        if not math.isfinite(_abs_max(t)):
            raise _fail(path, f"tensor '{name}' contains non-finite values (NaN or inf)")
        out[name] = t.float()
    return out


def load_scene(folder: PathLike, *, mmap: bool = True) -> Scene4D:
    """Load and validate a native scene folder; all tensors come back as float32 on the CPU.

    ``mmap=True`` memory-maps each file while reading it; ``mmap=False`` reads whole files.
    Raises :class:`FormatError` (one line naming the file and the problem) on any defect.
    """
    folder = Path(folder)
    path, m = _read_manifest_json(folder)
    _check_manifest(path, m)
    k = (m["sh_degree"] + 1) ** 2
    counts, files, dtypes = m["counts"], m["files"], m["dtypes"]
    static = Gaussians(
        **_load_fields(folder / files["static"], counts["static"], k, dtypes, mmap, FIELDS)
    )
    if m["version"] == 1:
        dynamic = _load_v1_dynamic(folder, m, k, mmap)
    elif m["dynamic_encoding"] == "full":
        dynamic = [
            Gaussians(**_load_fields(folder / rel, n, k, dtypes, mmap, FIELDS))
            for rel, n in zip(files["dynamic"], counts["dynamic"])
        ]
    else:
        dynamic = _load_deltas(folder, m, k, mmap)
    from ..scene import Scene4D  # engine.scene re-exports this module

    return Scene4D(static, dynamic, float(m["fps"]), dict(m.get("provenance", {})))


def _load_v1_dynamic(folder: Path, m: dict[str, Any], k: int, mmap: bool) -> list[Gaussians]:
    counts, files, dtypes = m["counts"], m["files"], m["dtypes"]
    shared_fields = m.get("dynamic_shared_fields") or []
    shared = {}
    if shared_fields:
        n0 = counts["dynamic"][0]
        shared = _load_fields(folder / files["dynamic_shared"], n0, k, dtypes, mmap, shared_fields)
    varying = [f for f in FIELDS if f not in shared_fields]
    return [
        Gaussians(**_load_fields(folder / rel, n, k, dtypes, mmap, varying), **shared)
        for rel, n in zip(files["dynamic"], counts["dynamic"])
    ]


def _load_deltas(folder: Path, m: dict[str, Any], k: int, mmap: bool) -> list[Gaussians]:
    """Version 2, 'delta' encoding: frame t = base + delta_t."""
    n, files = m["counts"]["dynamic"][0], m["files"]
    base = _load_fields(folder / files["dynamic_base"], n, k, m["dtypes"], mmap, FIELDS)
    fields = m.get("dynamic_delta_fields") or []
    half = dict.fromkeys(FIELDS, "float16")
    frames = [Gaussians(**base)]
    for rel in files["dynamic"][1:]:
        delta = _load_fields(folder / rel, n, k, half, mmap, fields)
        frames.append(
            Gaussians(**{f: base[f] + delta[f] if f in delta else base[f] for f in FIELDS})
        )
    return frames


def scene_info(folder: PathLike) -> dict[str, Any]:
    """The manifest plus a summary, reading no tensor data (for ``main.py info``).

    Adds ``path``, ``bytes_on_disk`` (manifest and listed files), ``duration_s`` and
    ``gaussians`` (static, dynamic min/max/total and the largest per-frame total). Raises
    :class:`FormatError` for a bad manifest, or a listed file that is missing or not a whole
    safetensors file (its header is read: a truncated or foreign file fails), as opening
    the scene would.
    """
    folder = Path(folder)
    path, m = _read_manifest_json(folder)
    _check_manifest(path, m)
    files = m["files"]
    rels = [files["static"], *(r for r in files["dynamic"] if r is not None)]
    if m["version"] == 1 and m.get("dynamic_shared_fields"):
        rels.append(files["dynamic_shared"])
    if m.get("dynamic_encoding") == "delta":
        rels.append(files["dynamic_base"])
    for rel in rels:
        _check_header(folder / rel)
    present = [folder / r for r in rels]
    dyn, n_static = m["counts"]["dynamic"], m["counts"]["static"]
    return {
        **m,
        "path": str(folder),
        "bytes_on_disk": path.stat().st_size + sum(p.stat().st_size for p in present),
        "duration_s": m["frame_count"] / m["fps"],
        "gaussians": {
            "static": n_static,
            "dynamic_min": min(dyn),
            "dynamic_max": max(dyn),
            "dynamic_total": sum(dyn),
            "max_per_frame": n_static + max(dyn),
        },
    }
