"""Niantic SPZ (gzip- or zstd-compressed quantised splats, versions 2-4), through gsply.
gsply reads and writes SPZ in the PLY axes (y-down), like the other 3DGS formats."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError
from ..fsutil import atomic_file
from ..gaussians import Gaussians
from ._gsply import from_gsdata, to_gsdata


def read_spz(path: Path) -> Gaussians:
    import gsply

    try:
        return from_gsdata(gsply.read_spz(path))
    except (ValueError, KeyError, OSError, EOFError, IndexError) as e:
        raise FormatError(f"{path}: not a readable SPZ file ({e})") from None


def write_spz(path: Path, g: Gaussians) -> None:
    import gsply

    with atomic_file(path, suffix=".spz") as tmp:
        gsply.write_spz(tmp, to_gsdata(g))
