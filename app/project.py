"""Projects: one folder ``NAME.pano4dproj/`` holding everything about one panorama.

Layout::

    NAME.pano4dproj/
      project.json      format "pano4d-project" v1 (below), written last
      panorama-<hash>.png   optional copy of the panorama (else only its path is kept)
      regions-<id>/     the painted regions: an engine region file + one mask PNG per region
      run/              the inputs of the latest generate run (panorama path + region file)
      result/           the latest generate output (scene/, videos, report.json, .pano4d/)

``project.json``::

    {"format": "pano4d-project", "version": 1,
     "panorama": {"path": "/abs/park.png", "copy": "panorama-<hash>.png" | null},
     "settings": {GenerateSettings},
     "regions": "regions-<id>/regions.json" | null,
     "result": "result" | "/abs/elsewhere" | null,
     "generation": null | {"status": "running" | "done" | "cancelled" | "failed",
                           "out": ..., "panorama": ..., "regions": ..., "settings": {...}}}

Paths inside the project folder are stored relative to it (the folder can be moved), others
absolute. Every file is written atomically (:mod:`engine.fsutil`) and nothing the current
``project.json`` names is ever overwritten: new regions go to a new folder, a panorama copy is
named by its content, and ``project.json`` — written last, atomically — is the commit point;
what it no longer names is removed after. A crash at any moment leaves the previous complete
project or the new one, never a mix.

Saving a project into another folder (Save As, or keeping a project the app made in its
data folder) brings its result and its unfinished run along: :func:`adopt_outputs`.

A run that was interrupted (status still "running" after a crash or kill, or "cancelled")
and left checkpoints in ``OUT/.pano4d/`` can be resumed: :meth:`ProjectData.resumable`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.fsutil import atomic_dir, atomic_file, atomic_write_json
from engine.io import Region, save_regions

from .generate_panel import GenerateSettings

__all__ = [
    "FORMAT",
    "SUFFIX",
    "VERSION",
    "ProjectData",
    "adopt_outputs",
    "load_project",
    "project_folder",
    "save_project",
]

FORMAT = "pano4d-project"
VERSION = 1
SUFFIX = ".pano4dproj"
PROJECT_FILE = "project.json"
REGIONS_DIR = "regions"
RUN_DIR = "run"
RESULT_DIR = "result"
_SAVE_LOCK = threading.Lock()  # one writer per process (stale folders are removed after)


@dataclass
class ProjectData:
    """A project as the app holds it (absolute paths)."""

    folder: Path
    panorama: Path  # the image the app opens: the copy inside the project when there is one
    panorama_original: Path  # where it came from
    copied: bool = False
    settings: GenerateSettings = field(default_factory=GenerateSettings)
    regions_file: Path | None = None  # engine region file (None: nothing painted)
    result: Path | None = None
    generation: dict[str, Any] | None = None  # absolute paths, see the module doc

    def resumable(self) -> bool:
        """An interrupted run whose checkpoints are still there."""
        g = self.generation
        if not g or g.get("status") not in ("running", "cancelled"):
            return False
        return (Path(g["out"]) / ".pano4d" / "state.json").is_file()


def project_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a project folder: ``.pano4dproj`` added when missing; a path to the
    ``project.json`` inside one means its folder."""
    p = Path(path)
    if p.name == PROJECT_FILE:
        return p.parent
    return p if p.suffix == SUFFIX else p.with_name(p.name + SUFFIX)


def _rel(folder: Path, p: Path | None) -> str | None:
    if p is None:
        return None
    p = Path(p).absolute()
    try:
        return p.relative_to(folder.absolute()).as_posix()
    except ValueError:
        return str(p)


def _abs(folder: Path, s: str | None) -> Path | None:
    if s is None:
        return None
    p = Path(s)
    return p if p.is_absolute() else folder / p


def _copy_panorama(folder: Path, source: Path) -> str:
    """Copy the panorama in under a name made from its content (``panorama-<hash>.png``):
    a new copy never overwrites the one the current project.json names."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    name = f"panorama-{digest}{source.suffix.lower()}"
    dest = folder / name
    if not dest.is_file():
        with atomic_file(dest, suffix=source.suffix) as tmp:
            shutil.copyfile(source, tmp)
    return name


def _write_regions(folder: Path, regions: list[Region]) -> str | None:
    """The regions into a new folder ``regions-<random>/`` (project.json switches to it)."""
    if not regions:
        return None
    name = f"{REGIONS_DIR}-{secrets.token_hex(4)}"
    with atomic_dir(folder / name) as tmp:
        save_regions(tmp / "regions.json", regions)
    return f"{name}/regions.json"


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Region folders and panorama copies the committed project.json no longer names."""
    for p in folder.iterdir():
        stale_regions = p.is_dir() and p.name.startswith(REGIONS_DIR + "-")
        stale_copy = p.is_file() and p.name.startswith("panorama-")
        if (stale_regions or stale_copy) and p.name not in keep:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def save_project(
    folder: str | os.PathLike[str],
    *,
    panorama: Path,
    regions: list[Region],
    settings: GenerateSettings,
    copy_panorama: bool = False,
    result: Path | None = None,
    generation: dict[str, Any] | None = None,
    unless: Callable[[], bool] | None = None,
) -> ProjectData | None:
    """Write a project (crash-safe, see the module doc) and return what was written.

    Thread-safe: a generate worker records its run while the UI thread may autosave.
    ``unless``: checked under the save lock; when it returns True nothing is written and the
    result is None (a worker's older snapshot must not replace a newer save)."""
    with _SAVE_LOCK:
        if unless is not None and unless():
            return None
        return _save_project(
            project_folder(folder),
            panorama=panorama,
            regions=regions,
            settings=settings,
            copy_panorama=copy_panorama,
            result=result,
            generation=generation,
        )


def _save_project(
    folder: Path,
    *,
    panorama: Path,
    regions: list[Region],
    settings: GenerateSettings,
    copy_panorama: bool,
    result: Path | None,
    generation: dict[str, Any] | None,
) -> ProjectData:
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    panorama = Path(panorama).absolute()
    original = panorama
    recorded = None  # the original path the current project.json names
    doc_path = folder / PROJECT_FILE
    if doc_path.is_file():  # keep the original path when re-saving from the copy
        try:
            old = json.loads(doc_path.read_text())
            recorded = Path(old["panorama"]["path"])
            if old["panorama"].get("copy") and (folder / old["panorama"]["copy"]) == panorama:
                original = recorded
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    # a panorama copy of this folder (what _remove_stale removes when it is no longer named)
    is_copy = panorama.parent == folder.absolute() and panorama.name.startswith("panorama-")
    if is_copy and not panorama.is_file() and recorded and recorded.is_file():
        panorama = original = recorded  # an earlier save removed the copy: the original
        is_copy = False
    if is_copy and not copy_panorama:
        # the copy is removed below: name the original, which must still be there (checked
        # before anything is written)
        if recorded is None or recorded.absolute() == panorama:
            raise InputError(
                f"{folder}: the panorama's original is unknown; keep 'Copy Panorama into "
                "Project' ticked"
            )
        original = recorded
        if not original.is_file():
            raise InputError(
                f"{folder}: the panorama's original {original} is missing; keep 'Copy "
                "Panorama into Project' ticked (the copy is the only one)"
            )
    copy_name = None
    if copy_panorama:
        copy_name = _copy_panorama(folder, panorama)
    regions_rel = _write_regions(folder, regions)
    new_regions = folder / regions_rel.split("/")[0] if regions_rel else None
    gen = None
    if generation is not None:
        gen = {
            k: (_rel(folder, v) if k in ("out", "panorama", "regions") else v)
            for k, v in generation.items()
        }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "panorama": {"path": str(original), "copy": copy_name},
        "settings": settings.to_json(),
        "regions": regions_rel,
        "result": _rel(folder, result),
        "generation": gen,
    }
    try:
        atomic_write_json(doc_path, doc)  # the commit point
    except BaseException:
        if new_regions is not None:
            shutil.rmtree(new_regions, ignore_errors=True)
        raise
    keep = {n for n in (copy_name, regions_rel and regions_rel.split("/")[0]) if n}
    _remove_stale(folder, keep)
    return load_project(folder)


def _fail(folder: Path, problem: str) -> InputError:
    return InputError(f"{folder}: {problem}")


_PATH_KEYS = ("regions", "result")
_STATUSES = ("running", "done", "cancelled", "failed")


def _check_generation(gen) -> None:
    """InputError (one line) unless ``gen`` is a generation record as the module doc says."""
    if not isinstance(gen, dict):
        raise InputError("'generation' must be an object or null")
    if gen.get("status") not in _STATUSES:
        raise InputError(f"generation 'status' must be one of {', '.join(_STATUSES)}")
    for key in ("out", "panorama", "regions"):
        if not isinstance(gen.get(key), str) or not gen[key]:
            raise InputError(f"generation '{key}' must be a path string")
    try:
        GenerateSettings.from_json(gen.get("settings"))
    except InputError as e:
        raise InputError(f"generation {e}") from None


class PanoramaMissing(InputError):
    """The project's panorama is not where the project says (``path``): it can be re-linked
    with ``load_project(folder, panorama=NEW)``."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def load_project(
    path: str | os.PathLike[str], panorama: str | os.PathLike[str] | None = None
) -> ProjectData:
    """Read a project folder; InputError (one line) for anything unusable, PanoramaMissing
    when only its panorama has gone. ``panorama``: where the panorama is now (re-linked; the
    project then refers to it once saved)."""
    folder = project_folder(path)
    doc_path = folder / PROJECT_FILE
    if not doc_path.is_file():
        raise _fail(folder, f"not a Pano4D project (no {PROJECT_FILE})")
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _fail(folder, f"{PROJECT_FILE} is unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(folder, f"{PROJECT_FILE} is not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise _fail(folder, f"project version {doc.get('version')!r}; this Pano4D reads {VERSION}")
    try:
        pano = doc["panorama"]
        if not isinstance(pano, dict) or not isinstance(pano.get("path"), str):
            raise InputError("'panorama' must be an object with a 'path' string")
        original = Path(pano["path"])
        copy = pano.get("copy")
        for key, value in (("panorama copy", copy), *((k, doc.get(k)) for k in _PATH_KEYS)):
            if value is not None and not isinstance(value, str):
                raise InputError(f"'{key}' must be a path string or null")
        settings = GenerateSettings.from_json(doc.get("settings", {}))
        gen = doc.get("generation")
        if gen is not None:
            _check_generation(gen)
            gen = {
                k: (str(_abs(folder, v)) if k in ("out", "panorama", "regions") and v else v)
                for k, v in gen.items()
            }
    except (KeyError, TypeError, AttributeError) as e:
        raise _fail(folder, f"{PROJECT_FILE} is missing or mistypes {e}") from None
    except InputError as e:
        raise _fail(folder, str(e)) from None
    if panorama is not None:  # re-linked by the user: the original is now this one
        original, copy = Path(panorama), None
    panorama = folder / copy if copy else original
    if not panorama.is_file():
        message = f"{folder}: the panorama {panorama} is missing (moved or deleted?)"
        raise PanoramaMissing(message, panorama)
    regions = _abs(folder, doc.get("regions"))
    if regions is not None and not regions.is_file():
        raise _fail(folder, f"the region file {regions} is missing")
    return ProjectData(
        folder=folder,
        panorama=panorama,
        panorama_original=original,
        copied=bool(copy),
        settings=settings,
        regions_file=regions,
        result=_abs(folder, doc.get("result")),
        generation=gen,
    )


def write_run_inputs(run_dir: Path, panorama: Path, regions: list[Region]) -> Path:
    """Write the region file a generate run reads (replacing the previous run's); returns
    its path. The bytes only depend on the regions, so resuming finds the same fingerprint."""
    if not regions:
        raise InputError("nothing to animate: paint at least one region first")
    with atomic_dir(run_dir) as tmp:
        save_regions(tmp / "regions.json", regions)
        atomic_write_json(tmp / "inputs.json", {"panorama": str(Path(panorama).absolute())})
    return run_dir / "regions.json"


def _inside(p: Path, folder: Path) -> bool:
    return p.resolve().is_relative_to(folder.resolve())


def _copy_tree(source: Path, dest: Path) -> None:
    with atomic_dir(dest) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True, symlinks=True)


def adopt_outputs(
    folder: str | os.PathLike[str],
    result: Path | None,
    generation: dict[str, Any] | None,
) -> tuple[Path | None, dict[str, Any] | None]:
    """Copy the result and the latest run (its inputs and checkpoints) that live outside
    project ``folder`` into ``folder/result/`` and ``folder/run/``; return the result path and
    the generation record (absolute paths) naming the copies. What is already inside
    ``folder``, or missing, is left as it is. Each copy is atomic (:func:`atomic_dir`)."""
    folder = project_folder(folder).absolute()
    dest = folder / RESULT_DIR
    for source in (result, Path(generation["out"]) if generation else None):
        if source is not None and folder.resolve().is_relative_to(source.resolve()):
            raise InputError(f"{folder}: a project cannot be saved inside {source}")
    copied = None  # the output folder copied to dest (only one fits there)
    if result is not None and result.is_dir() and not _inside(result, folder):
        _copy_tree(result, dest)
        copied, result = result.resolve(), dest
    if generation is None:
        return result, None
    g = dict(generation)
    out = Path(g["out"])
    if copied is not None and out.resolve() == copied:
        g["out"] = str(dest)
    elif copied is None and out.is_dir() and not _inside(out, folder):
        _copy_tree(out, dest)
        g["out"] = str(dest)
    run = Path(g["regions"]).parent
    if run.is_dir() and not _inside(run, folder):
        _copy_tree(run, folder / RUN_DIR)
        g["regions"] = str(folder / RUN_DIR / Path(g["regions"]).name)
    return result, g
