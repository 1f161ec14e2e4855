"""PlayCanvas / SuperSplat compressed PLY (``.compressed.ply``: 256-splat chunks of
quantised positions, scales, rotations and colours; SH bands as 8-bit), through gsply."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError
from ..fsutil import atomic_file
from ..gaussians import Gaussians
from ._gsply import from_gsdata, to_gsdata

SUFFIX = ".compressed.ply"


def read_compressed_ply(path: Path) -> Gaussians:
    import gsply

    try:
        return from_gsdata(gsply.plyread(path))
    except (ValueError, KeyError, OSError, IndexError) as e:
        raise FormatError(f"{path}: not a readable compressed PLY ({e})") from None


def write_compressed_ply(path: Path, g: Gaussians) -> None:
    import gsply

    path = Path(path)
    if not path.name.endswith(SUFFIX):
        raise ValueError(f"a compressed PLY's name ends with {SUFFIX}: {path.name}")
    with atomic_file(path, suffix=SUFFIX) as tmp:
        gsply.plywrite(tmp, to_gsdata(g), compressed=True)
