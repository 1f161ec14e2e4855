"""Atomic file and folder writes: a crash never leaves a half-written result at the final path.

Every writer builds its output under a hidden temporary name next to the destination (same
folder, hence same file system) and renames it into place only once it is complete:

- :func:`atomic_write_bytes` / :func:`atomic_write_json` write a whole file at once;
- :func:`atomic_file` yields a temporary *path* for writers that want a file name
  (ffmpeg, plyfile, safetensors) and renames it into place on success;
- :func:`atomic_dir` yields a temporary *folder* and renames it into place on success,
  replacing an existing folder of the same name.

On failure (any exception, including KeyboardInterrupt) the temporary file or folder is
removed and the destination is left as it was. Temporary names start with ``.`` and contain
``.tmp-``; a hard kill (SIGKILL, power loss) can leave one behind, never a partial
destination. Replacing an existing folder takes two renames (old folder aside, new folder in),
so a hard kill exactly between them leaves the previous folder under ``.NAME.old-*`` beside
the destination.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InputError


def run_name(panorama: str | os.PathLike[str] | None, prompt: str | None) -> str:
    """A folder name for a run given no name: the panorama's file name without its suffix,
    or the prompt's first four words, in letters, digits, '.', '_' and '-' (any other run
    of characters becomes one '-'); "scene" when nothing is left."""
    if panorama:
        base = Path(panorama).stem
    else:
        base = "-".join(re.findall(r"[a-z0-9]+", (prompt or "").lower())[:4])
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base).lstrip("-._")[:100].rstrip("-.")
    return name or "scene"


@contextlib.contextmanager
def parents_made(path: str | os.PathLike[str]) -> Iterator[None]:
    """Create the missing folders above ``path`` for the block; remove those it made when
    the block fails (nothing half-written: not even an empty folder)."""
    missing, p = [], Path(path).parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def reserve(path: str | os.PathLike[str]) -> None:
    """Allocate the disk blocks of a (sparse) file of its current length, so that writing
    it through a memory map cannot fail later with SIGBUS; OSError ENOSPC when the disk is
    full. A no-op where the file system cannot preallocate."""
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
        except AttributeError:  # no posix_fallocate on this platform
            pass


def _fsync_dir(folder: Path) -> None:
    """Best effort: make a rename inside ``folder`` durable (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush one file's data to disk (best effort)."""
    try:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    except OSError:
        pass


def _current_umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def readable_by_all(path: str | os.PathLike[str]) -> None:
    """Give a file the ordinary permissions for this umask (writers such as safetensors
    create their files 0600, which other users could not read)."""
    os.chmod(path, 0o666 & ~_UMASK)


def _temp_name(final: Path, kind: str, suffix: str = "") -> Path:
    """A new empty file beside ``final`` with the permissions a plain ``open`` would give."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{kind}-", suffix=suffix, dir=final.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    ``suffix`` is appended to the temporary name (e.g. ``".mp4"`` for tools that pick the
    format from the extension). The parent folder must exist.
    """
    final = Path(path)
    tmp = _temp_name(final, "tmp", suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(final.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def _json_default(obj: Any) -> Any:
    """JSON for the few non-JSON types provenance tends to carry (paths, numpy, tensors)."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return _finite(obj.tolist())
    if isinstance(obj, (set, frozenset, tuple)):
        return _finite(list(obj))
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats replaced by None, in dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """``json.dumps`` that also accepts paths, numpy values and tensors (as lists), and
    writes strict JSON: a NaN or infinite float becomes null (Python would write ``NaN``,
    which JavaScript, jq and most parsers refuse)."""
    return json.dumps(
        _finite(obj), indent=indent, default=_json_default, ensure_ascii=False, allow_nan=False
    )


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as UTF-8 JSON (plus a final newline) to ``path`` atomically."""
    atomic_write_bytes(path, (to_json(obj, indent=indent) + "\n").encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final_path``; rename it into place on success.

    An existing folder at ``final_path`` is replaced (moved aside, new one renamed in, old one
    deleted); if the final rename fails the old folder is put back. An existing *file* at
    ``final_path`` is refused with :class:`InputError`. On failure the temporary folder is
    removed and ``final_path`` is untouched. The parent folder is created if needed.
    """
    final = Path(final_path)
    if final.exists() and not final.is_dir():
        raise InputError(f"{final}: exists and is not a folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        _replace_dir(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(final.parent)


def _replace_dir(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    os.rmdir(old)
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    _remove(old)


def first_gap(numbers: list[int]) -> int | None:
    """The first of 0, 1, 2, ... missing from the sorted distinct frame numbers ``numbers``
    (None: none is; cheap for any frame number)."""
    return next((i for i, n in enumerate(numbers) if n != i), None)


# what file managers leave in any folder they show: never the user's work
SYSTEM_FILES = {".DS_Store", "Thumbs.db", "desktop.ini", "._.DS_Store"}


def check_replaceable(folder: str | os.PathLike[str], prefix: str, suffix: str) -> None:
    """Raise :class:`InputError` if ``folder`` exists and holds anything but files named
    ``{prefix}*{suffix}`` (an earlier output of the same kind, which may be replaced) and
    the files file managers leave (:data:`SYSTEM_FILES`)."""
    out = Path(folder)
    if not out.is_dir():
        return
    other = [
        p.name
        for p in sorted(out.iterdir())
        if not (p.is_file() and p.name.startswith(prefix) and p.name.endswith(suffix))
        and p.name not in SYSTEM_FILES
    ]
    if other:
        raise InputError(f"{out}: holds other files ({other[0]}, ...); refusing to replace it")


def check_writable(final_path: str | os.PathLike[str], *, inside: bool = False) -> None:
    """Raise :class:`InputError` unless the writers above can create ``final_path``.

    The folder that takes the new entry (``final_path`` itself when ``inside`` and it is a
    folder, results then being written in it; else the nearest existing folder above it)
    must accept a file; the current folder and those above it cannot be replaced. Called
    before long work, so a bad output path fails at once. Nothing is left behind.
    """
    if not str(final_path).strip():
        raise InputError("the output path is empty")
    final = Path(final_path)
    here = Path.cwd()
    resolved = final.resolve()
    if not inside and resolved in (here, *here.parents):
        raise InputError(f"{final_path!s}: is the current folder (or above it); name a new one")
    if inside and resolved.exists() and not resolved.is_dir():
        raise InputError(f"{final_path!s}: exists and is not a folder")
    folder = resolved if inside and resolved.is_dir() else final.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{final_path!s}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".pano4d-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(f"{final_path!s}: cannot write in {folder} ({e.strerror})") from None


def tree_size(path: str | os.PathLike[str]) -> int:
    """Total size in bytes of a file, or of all files under a folder."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
