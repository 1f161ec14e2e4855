"""antimatter15's ``.splat``: 32 bytes per splat, no header - position (3 x float32), linear
scale (3 x float32), colour RGBA (4 x uint8: RGB = 0.5 + C0 f_dc, A = opacity), rotation
(4 x uint8: (q / |q|) * 128 + 128, wxyz). SH degree 0 only. No maintained Python library
reads it; the layout is the format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import FormatError
from ..fsutil import atomic_file
from ..gaussians import SH_C0, Gaussians, unit_quats

RECORD = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def read_splat(path: Path) -> Gaussians:
    size = Path(path).stat().st_size
    if size == 0:
        raise FormatError(f"{path}: the file is empty (a .splat holds 32-byte records)")
    if size % RECORD.itemsize:
        raise FormatError(f"{path}: {size} bytes is not a whole number of 32-byte .splat records")
    r = np.fromfile(path, dtype=RECORD)
    rgba = r["rgba"].astype(np.float32) / 255
    alpha = np.clip(rgba[:, 3], 1e-6, 1 - 1e-6)
    quat = (r["rot"].astype(np.float32) - 128) / 128
    scale = r["scale"].astype(np.float32)
    if not (np.isfinite(r["pos"]).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise FormatError(f"{path}: non-finite position or non-positive scale in a .splat record")
    t = torch.from_numpy
    return Gaussians(
        means=t(np.ascontiguousarray(r["pos"])),
        quats=t(quat),
        log_scales=t(np.log(scale)),
        opacities=t(np.log(alpha / (1 - alpha))),
        sh=t(((rgba[:, :3] - 0.5) / SH_C0)[:, None, :].copy()),
    )


def write_splat(path: Path, g: Gaussians) -> None:
    if len(g) == 0:  # an empty .splat is an empty file, which reads as a broken one
        raise FormatError(
            f"{path}: nothing to write, this frame has no Gaussians (a .splat holds only its "
            "records; export PLY, SPZ or glTF for an empty scene)"
        )
    r = np.empty(len(g), RECORD)
    r["pos"] = g.means.detach().cpu().numpy()
    r["scale"] = g.log_scales.detach().cpu().exp().numpy()
    rgb = (0.5 + SH_C0 * g.sh[:, 0].detach().cpu()).clamp(0, 1)
    alpha = torch.sigmoid(g.opacities.detach().cpu())[:, None]
    r["rgba"] = (torch.cat([rgb, alpha], 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    q = unit_quats(g.quats)
    r["rot"] = (q * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    with atomic_file(path, suffix=".splat") as tmp:
        r.tofile(tmp)
