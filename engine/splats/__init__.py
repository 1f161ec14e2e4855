"""Splat files both ways: :func:`open_splats` opens what the splat ecosystem makes,
:func:`write_splats` writes what it reads. One module per format:

=====================  =====  =====  ======  =======================================
format                 read   write  axes    codec
=====================  =====  =====  ======  =======================================
native scene folder    yes    yes    y-up    :mod:`engine.scene` (safetensors)
3DGS PLY (.ply)        yes    yes    y-down  :mod:`.ply` (plyfile to read)
PLY sequence (folder)  yes    yes    y-down  :mod:`.ply`, ``frame_NNNN.ply``
compressed PLY         yes    yes    y-down  :mod:`.compressed_ply` (gsply)
SPZ (.spz)             yes    yes    y-down  :mod:`.spz` (gsply)
.splat (antimatter15)  yes    yes    y-down  :mod:`.splat`
glTF KHR_gaussian_...  yes    yes    y-up    :mod:`.glb`
SOG, .ksplat           no     no     -       recognised; the message names the conversion
=====================  =====  =====  ======  =======================================

Axes (:mod:`.axes`): files are read into Pano4D's world (+Y up). ``axes="auto"`` takes a
PLY's own ``comment axes ...`` line when it has one, else each format's convention (the
table); ``"y-up"`` / ``"y-down"`` say how the file is stored. Writing, the 3DGS formats
are y-down by default (so SuperSplat, the web viewers and gsplat show them upright) and
their PLY headers say so; glTF and the native scene are y-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FormatError, InputError
from ..fsutil import atomic_dir, check_replaceable, first_gap, parents_made
from ..gaussians import Gaussians
from ..progress import Progress, ProgressCallback
from . import axes as _axes
from .ply import declared_axes, declared_fps, is_compressed, read_ply, write_sets

WRITE_FORMATS = ("ply", "sequence", "compressed-ply", "spz", "splat", "glb", "native")
NATIVE_Y = {"glb": "y-up", "native": "y-up"}  # every other format is y-down by convention
UNMARKED = ("compressed-ply", "spz", "splat")  # y-down by convention, with no axes field
SUFFIXES = {"ply": ".ply", "compressed-ply": ".compressed.ply", "spz": ".spz",
            "splat": ".splat", "glb": ".glb"}  # fmt: skip
UNSUPPORTED = {
    ".sog": "SOG (PlayCanvas)",
    ".ksplat": "KSPLAT (mkkellogg's GaussianSplats3D)",
}


def format_for(out: str | Path) -> str | None:
    """The write format an output name implies: a folder of PLY frames when it ends with a
    slash, is an existing folder or has no suffix; else its splat suffix (``.compressed.ply``
    before ``.ply``); None for any other suffix."""
    name = str(out).lower()
    if name.endswith(("/", "\\")) or Path(out).is_dir():
        return "sequence"
    for fmt in ("compressed-ply", "ply", "spz", "splat", "glb"):
        if name.endswith(SUFFIXES[fmt]):
            return fmt
    return None if Path(name).suffix else "sequence"


def _scene_cls():
    from ..scene import Scene4D

    return Scene4D


def _read_file(p: Path) -> tuple[Gaussians, str, float | None]:
    """(set in the file's axes, those axes by convention or declaration, declared fps)."""
    name = p.name.lower()
    if name.endswith(".ply"):
        if is_compressed(p):
            from .compressed_ply import read_compressed_ply

            return read_compressed_ply(p), "y-down", None
        return read_ply(p), declared_axes(p) or "y-down", declared_fps(p)
    if name.endswith(".spz"):
        from .spz import read_spz

        return read_spz(p), "y-down", None
    if name.endswith(".splat"):
        from .splat import read_splat

        return read_splat(p), "y-down", None
    if name.endswith(".glb"):
        from .glb import read_glb

        return read_glb(p), "y-up", None
    if name == "meta.json" or p.suffix.lower() in UNSUPPORTED:
        what = UNSUPPORTED.get(p.suffix.lower(), "SOG (PlayCanvas)")
        raise FormatError(
            f"{p}: {what} is recognised but not read by Pano4D; convert it with PlayCanvas "
            f"splat-transform (`splat-transform {p.name} scene.ply`) and open the PLY"
        )
    raise FormatError(
        f"{p}: unknown splat format '{p.suffix or p.name}' (Pano4D opens native scene folders, "
        ".ply, .compressed.ply, .spz, .splat, .glb and folders of frame_NNNN.ply)"
    )


def open_splats(path, *, fps: float = 8.0, axes: str = "auto"):
    """Open a native scene, a generate output folder, a splat file or a PLY sequence as a
    :class:`engine.scene.Scene4D` in Pano4D's axes (module docstring). One line on error."""
    from ..scene import MANIFEST, load_scene

    _axes.check(axes)
    p = Path(path)
    scene_cls = _scene_cls()
    if p.is_dir() and (p / MANIFEST).exists():
        return load_scene(p)
    if p.is_dir() and (p / "scene" / MANIFEST).is_file():
        return load_scene(p / "scene")
    if p.is_dir() and (p / "meta.json").is_file() and not _sequence(p):
        _read_file(p / "meta.json")  # an unbundled SOG: the message says what to do
    if p.is_dir():
        files = _sequence(p)
        if not files:
            raise FormatError(
                f"{p}: not a Pano4D scene (no manifest.json) and no frame_0000.ply sequence in it"
            )
        return _open_sequence(p, files, fps, axes)
    if not p.exists():
        raise FormatError(f"{p}: not found")
    g, stored, file_fps = _read_file(p)
    g = _axes.to_world(g, stored if axes == "auto" else axes)
    meta = {"source": str(p), "axes": stored if axes == "auto" else axes}
    return scene_cls(g, [Gaussians.empty(g.sh_degree)], file_fps or fps, meta)


def _open_sequence(folder: Path, files: list[Path], fps: float, axes: str):
    read = [_read_file(f) for f in files]
    frames = [_axes.to_world(g, s if axes == "auto" else axes) for g, s, _ in read]
    if len({f.sh_degree for f in frames}) != 1:
        raise FormatError(f"{folder}: the PLY frames have different SH degrees")
    k = _common_prefix(frames)
    static = Gaussians(**{n: t[:k] for n, t in frames[0].tensors().items()})
    dynamic = [Gaussians(**{n: t[k:] for n, t in f.tensors().items()}) for f in frames]
    rate = read[0][2] or fps
    meta = {"source": str(folder), "frames": len(files), "axes": read[0][1]}
    return _scene_cls()(static, dynamic, rate, meta)


def _common_prefix(frames: list[Gaussians]) -> int:
    """Number of leading Gaussians identical (every field) in all frames."""
    import torch

    n = min(len(f) for f in frames)
    if n == 0 or len(frames) < 2:
        return 0
    same = torch.ones(n, dtype=torch.bool)
    first = frames[0].tensors()
    for f in frames[1:]:
        for name, t in f.tensors().items():
            same &= (t[:n] == first[name][:n]).reshape(n, -1).all(dim=1)
    bad = torch.nonzero(~same)
    return int(bad[0]) if len(bad) else n


def _sequence(folder: Path) -> list[Path]:
    """frame_NNNN.ply files of a folder, in frame order (numbers must run 0, 1, 2, ...)."""
    found = {}
    for p in folder.glob("frame_*.ply"):
        stem = p.stem.removeprefix("frame_")
        if stem.isdigit():
            found[int(stem)] = p
    if not found:
        return []
    numbers = sorted(found)
    missing = first_gap(numbers)
    if missing is not None:
        raise FormatError(f"{folder}: PLY sequence has gaps (frame_{missing:04d}.ply is missing)")
    return [found[i] for i in numbers]


def sequence_folder(chosen: str | Path, name: str) -> Path:
    """Where a PLY sequence goes when a user picks folder ``chosen``: the folder itself when
    it is empty, new, or holds an earlier sequence (frame_*.ply only); else a new subfolder
    ``{name} PLY`` in it (numbered when taken), so nothing of the user's is replaced."""
    return _free_folder(
        chosen, f"{name} PLY", "the PLY sequence", lambda f: check_replaceable(f, "frame_", ".ply")
    )


def scene_folder(chosen: str | Path, name: str) -> Path:
    """Where a native scene goes when a user picks folder ``chosen``: the folder itself when
    it is empty, new, or an earlier Pano4D scene; else a new subfolder ``{name} scene`` in
    it (numbered when taken), so nothing of the user's is replaced."""
    from .native import _check_replaceable

    return _free_folder(chosen, f"{name} scene", "the scene", _check_replaceable)


def _free_folder(chosen: str | Path, sub: str, what: str, check) -> Path:
    chosen = Path(chosen)
    candidates = [chosen, chosen / sub, *(chosen / f"{sub} {i}" for i in range(2, 100))]
    if os.path.ismount(chosen):  # a drive's root cannot be swapped for a new folder
        candidates = candidates[1:]
    for folder in candidates:
        try:
            check(folder)
        except InputError:
            continue
        if not folder.exists() or folder.is_dir():
            return folder
    raise InputError(f"{chosen}: no free folder for {what} in it")


def write_splats(
    scene,
    out,
    fmt: str,
    *,
    axes: str | None = None,
    frame: int = 0,
    progress: Progress | ProgressCallback | None = None,
) -> list[Path]:
    """Write ``scene`` (frame ``frame`` for the one-set formats) as ``fmt``; returns the
    paths written. ``axes``: how the 3DGS formats store it (default y-down)."""
    from ..scene import _reporter, save_scene

    if fmt not in WRITE_FORMATS:
        raise FormatError(f"unknown splat format '{fmt}' (choose from {', '.join(WRITE_FORMATS)})")
    out = Path(out)
    if fmt == "native":
        save_scene(scene, out)
        return [out]
    stored = NATIVE_Y.get(fmt) or _axes.check(axes or "y-down", allow_auto=False)
    if fmt in UNMARKED and stored != "y-down":
        raise FormatError(
            f"--out-axes {stored}: a {fmt} file has no place to say how it is stored, and "
            f"its readers (Pano4D's too) take it as y-down, so it would reopen upside down; "
            f"y-up is for ply and sequence, whose headers record it"
        )
    if fmt == "sequence" or (fmt == "ply" and not out.name.lower().endswith(".ply")):
        implied = None if fmt == "sequence" else format_for(out)  # sequence: asked for
        if implied not in (None, "sequence"):
            raise FormatError(
                f"--out {out.name} names a {out.suffix} file, not a folder of PLY frames; "
                f"give --format {implied} (or --format sequence for a folder of that name)"
            )
        return _write_sequence(scene, out, stored, _reporter(progress, "export"))
    if not 0 <= frame < scene.n_frames:
        raise FormatError(f"--frame {frame} is outside the scene's frames 0..{scene.n_frames - 1}")
    suffix = SUFFIXES[fmt]
    if not out.name.lower().endswith(suffix):
        raise FormatError(f"--out for {fmt} must end with {suffix}, got {out.name}")
    g = _axes.from_world(scene.frame(frame), stored)
    comments = [f"axes {stored}", f"fps {scene.fps:g}", f"frame {frame}"]
    with parents_made(out):  # as the folder formats create theirs
        if fmt == "ply":
            write_sets(out, [g], comments)
        else:
            from importlib import import_module

            module = import_module(f"{__name__}.{fmt.replace('-', '_')}")
            getattr(module, f"write_{fmt.replace('-', '_')}")(out, g)
    return [out]


def _write_sequence(scene, out: Path, stored: str, rep) -> list[Path]:
    """frame_0000.ply, ... (static + that frame's dynamic set), fps and axes in the headers:
    SuperSplat's flipbook import. The folder is written whole; an existing one is replaced
    only when it holds nothing but frame_*.ply files."""
    if out.exists() and not out.is_dir():
        raise FormatError(f"--out {out} exists and is not a folder")
    check_replaceable(out, "frame_", ".ply")
    static = _axes.from_world(scene.static, stored)
    names = []
    with atomic_dir(out) as tmp:  # written whole: an earlier sequence is replaced, not mixed
        for t, dyn in enumerate(scene.dynamic):
            if rep:
                rep.update(t / scene.n_frames, f"PLY frame {t + 1}/{scene.n_frames}")
            names.append(f"frame_{t:04d}.ply")
            comments = [f"axes {stored}", f"fps {scene.fps:g}", f"frame {t}"]
            write_sets(tmp / names[-1], [static, _axes.from_world(dyn, stored)], comments)
    paths = [out / n for n in names]
    if rep:
        rep.update(1.0, f"wrote {len(paths)} PLY files")
    return paths


__all__ = ["WRITE_FORMATS", "open_splats", "sequence_folder", "write_splats"]
