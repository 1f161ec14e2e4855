"""The standard 3DGS PLY (Kerbl et al.): one ``vertex`` element whose properties are
``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`` (rot_0 = w), f_rest
channel-major (all red coefficients, then green, then blue), log scales, opacity logits.

Reading takes any SH degree (0..3) and any numeric property type (float, double, half,
integers: plyfile decodes them). An opacity of +/-inf (a fully opaque or empty splat,
legitimately produced when a compressed PLY is decompressed) is clamped to the logit of
1 - 1e-7 / 1e-7; NaN anywhere, or a non-finite position, scale or rotation, is refused with
the property named. A PlayCanvas compressed PLY (``element chunk``) is recognised and read
by :mod:`.compressed_ply`.

Writing is binary little-endian float32 in that order, atomically, in chunks of rows (peak
memory bounded). The header says who wrote it and how to read it back:
``comment Pano4D <version>``, ``comment axes y-up|y-down`` and, for frames of a sequence,
``comment fps <value>`` and ``comment frame <t>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from .. import __version__
from ..errors import FormatError
from ..fsutil import atomic_file
from ..gaussians import Gaussians
from ..video import fps_ok

CHUNK = 1 << 20  # rows converted at a time when writing
LOGIT_MAX = math.log((1 - 1e-7) / 1e-7)  # ~16.1: where +/-inf opacity logits are clamped
REQUIRED = [
    *("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"),
    *("scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"),
]


def _fail(path: Path, problem: str) -> FormatError:
    return FormatError(f"{path}: {problem}")


def ply_property_names(sh_degree: int) -> list[str]:
    """The standard 3DGS vertex property names, in file order, for an SH degree."""
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return [
        *("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"),
        *(f"f_rest_{i}" for i in range(n_rest)),
        *("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"),
    ]


def header(n: int, sh_degree: int, comments: Iterable[str] = ()) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"comment Pano4D {__version__}"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {n}")
    lines += [f"property float {name}" for name in ply_property_names(sh_degree)]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def _rows(g: Gaussians, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of ``g`` as a C-contiguous little-endian float32 [n, P] array."""
    sh = g.sh[start:stop].detach().cpu().float()
    n = sh.shape[0]
    cols = [
        g.means[start:stop].detach().cpu().float(),
        torch.zeros(n, 3),
        sh[:, 0, :],
        sh[:, 1:, :].transpose(1, 2).reshape(n, -1),  # channel-major f_rest
        g.opacities[start:stop].detach().cpu().float()[:, None],
        g.log_scales[start:stop].detach().cpu().float(),
        g.quats[start:stop].detach().cpu().float(),
    ]
    return np.ascontiguousarray(torch.cat(cols, 1).numpy(), dtype="<f4")


def _write_rows(f: BinaryIO, sets: Iterable[Gaussians]) -> None:
    for g in sets:
        for start in range(0, len(g), CHUNK):
            f.write(_rows(g, start, min(start + CHUNK, len(g))).data)


def write_sets(path, sets: list[Gaussians], comments: Iterable[str] = ()) -> None:
    """Write the concatenation of ``sets`` (same SH degree) as one PLY, atomically."""
    degree = sets[0].sh_degree
    if any(g.sh_degree != degree for g in sets):
        raise ValueError("all sets written to one PLY must share one SH degree")
    with atomic_file(path, suffix=".ply") as tmp, open(tmp, "wb") as f:
        f.write(header(sum(len(g) for g in sets), degree, comments))
        _write_rows(f, sets)


def write_ply(path, g: Gaussians, comments: Iterable[str] = ()) -> None:
    """Write ``g`` as a standard binary 3DGS PLY (atomically)."""
    write_sets(path, [g], comments)


def header_comments(path: Path) -> list[str]:
    """The ``comment`` lines of a PLY header (without the keyword)."""
    out = []
    with open(path, "rb") as f:
        for _ in range(4096):
            line = f.readline()
            if not line or line.strip() == b"end_header":
                break
            if line.startswith(b"comment "):
                out.append(line[8:].decode("ascii", "replace").strip())
    return out


def is_compressed(path: Path) -> bool:
    """A PlayCanvas compressed PLY (its header declares ``element chunk``)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"ply") and b"element chunk" in head.split(b"end_header")[0]


def _vertices(path: Path) -> np.ndarray:
    from plyfile import PlyData

    if not path.is_file():
        raise _fail(path, "no such file")
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # plyfile raises many types for malformed input
        raise _fail(path, f"not a readable PLY file ({type(e).__name__}: {e})") from None
    if "vertex" not in ply:
        raise _fail(path, "no 'vertex' element (not a Gaussian splat PLY)")
    return ply["vertex"].data


def _rest_count(path: Path, names: tuple[str, ...]) -> int:
    rest = sorted(int(n[7:]) for n in names if n.startswith("f_rest_") and n[7:].isdigit())
    if rest != list(range(len(rest))):
        raise _fail(path, "f_rest_* properties are not numbered 0..M-1")
    if len(rest) not in (0, 9, 24, 45):
        raise _fail(path, f"{len(rest)} f_rest properties (expected 0, 9, 24 or 45: SH 0..3)")
    return len(rest)


def read_ply(path) -> Gaussians:
    """Read a standard 3DGS PLY into float32 :class:`Gaussians` (in the file's own axes)."""
    path = Path(path)
    if path.is_file() and is_compressed(path):
        from .compressed_ply import read_compressed_ply

        return read_compressed_ply(path)
    v = _vertices(path)
    names = v.dtype.names or ()
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise _fail(path, f"missing 3DGS properties: {', '.join(missing)}")
    n_rest = _rest_count(path, names)
    wanted = [n for n in ply_property_names(0) if n not in ("nx", "ny", "nz")]
    wanted[6:6] = [f"f_rest_{i}" for i in range(n_rest)]
    try:
        cols = np.stack([np.asarray(v[n], dtype=np.float32) for n in wanted], 1)
    except (ValueError, TypeError) as e:
        raise _fail(path, f"non-numeric 3DGS property ({e})") from None
    op = wanted.index("opacity")
    cols[:, op] = np.where(np.isinf(cols[:, op]), np.sign(cols[:, op]) * LOGIT_MAX, cols[:, op])
    bad = ~np.isfinite(cols).all(0)
    if bad.any():
        name = wanted[int(np.argmax(bad))]
        what = "NaN" if np.isnan(cols[:, int(np.argmax(bad))]).any() else "non-finite values"
        raise _fail(path, f"{what} in property '{name}'")
    return from_columns(cols, n_rest)


def from_columns(cols: np.ndarray, n_rest: int) -> Gaussians:
    """[N, 14 + n_rest] float32 in ``read_ply``'s order -> Gaussians."""
    a = torch.from_numpy(np.ascontiguousarray(cols, dtype=np.float32))
    n, k = a.shape[0], n_rest // 3 + 1
    rest = a[:, 6 : 6 + n_rest].reshape(n, 3, k - 1).transpose(1, 2)
    sh = torch.cat([a[:, 3:6][:, None, :], rest], 1).contiguous()
    tail = a[:, 6 + n_rest :]
    return Gaussians(
        means=a[:, 0:3].contiguous(),
        quats=tail[:, 4:8].contiguous(),
        log_scales=tail[:, 1:4].contiguous(),
        opacities=tail[:, 0].contiguous(),
        sh=sh,
    )


def declared_axes(path: Path) -> str | None:
    """The axes a PLY header declares (``comment axes y-up``), or None."""
    for c in header_comments(path):
        parts = c.split()
        if len(parts) == 2 and parts[0] == "axes" and parts[1] in ("y-up", "y-down"):
            return parts[1]
    return None


def declared_fps(path: Path) -> float | None:
    for c in header_comments(path):
        parts = c.split()
        if len(parts) == 2 and parts[0] == "fps":
            try:
                fps = float(parts[1])
            except ValueError:
                return None
            return fps if fps_ok(fps) else None
    return None
