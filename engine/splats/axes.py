"""Axes of splat files. Pano4D's world is +Y up, -Z forward (DESIGN.md section 2); 3DGS
training code (COLMAP) and the files of its ecosystem (PLY, compressed PLY, SPZ, .splat) are
**+Y down**. PlayCanvas (SuperSplat, splat-transform) turns such a file 180 degrees about
the Z axis to stand it up; Pano4D does the same, so a scene exported here opens in SuperSplat
facing the way it faces here, and splat-transform's glTF output (+Y up) matches Pano4D's.

:func:`flip` turns a set from one convention to the other exactly: positions (-x, -y, z),
rotations q' = q_z(180) q, and the spherical harmonics by the parity of each real basis
function under (x, y) -> (-x, -y).

Detection (``--axes auto``): a file that says its axes (Pano4D writes ``comment axes y-up``
/ ``y-down`` in PLY headers) is taken at its word; a native scene and glTF are y-up; any
other PLY, compressed PLY, SPZ or .splat file is y-down (the 3DGS convention).
"""

from __future__ import annotations

import torch

from ..gaussians import Gaussians

AXES = ("y-up", "y-down")
# sign of each real SH basis function (3DGS order, degrees 0..3) under (x, y, z) -> (-x, -y, z):
# y, z, x | xy, yz, 3z^2 - 1, xz, x^2 - y^2 | y(3x^2 - y^2), xyz, y(5z^2 - 1), z(5z^2 - 3),
# x(5z^2 - 1), z(x^2 - y^2), x(x^2 - 3y^2)
SH_SIGNS = (1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1)


def flip(g: Gaussians, inverse: bool = False) -> Gaussians:
    """The same Gaussians turned 180 degrees about Z (y-up <-> y-down). ``inverse`` turns the
    other way: the rotation is the same, the quaternion's sign is not, so a set flipped and
    flipped back with ``inverse`` is bit-identical to the original."""
    sign = torch.tensor([-1.0, -1.0, 1.0], dtype=g.means.dtype)
    w, x, y, z = g.quats.unbind(-1)
    if inverse:  # q_z(-180) q = -(q_z(180) q)
        w, x, y, z = -w, -x, -y, -z
    k = g.sh.shape[1]
    sh_sign = torch.tensor(SH_SIGNS[:k], dtype=g.sh.dtype)[None, :, None]
    return Gaussians(
        means=g.means * sign,
        quats=torch.stack([-z, -y, x, w], -1),  # (0, 0, 0, 1) * (w, x, y, z)
        log_scales=g.log_scales.clone(),
        opacities=g.opacities.clone(),
        sh=g.sh * sh_sign,
    )


def to_world(g: Gaussians, axes: str) -> Gaussians:
    """A set stored with ``axes`` in Pano4D's world (y-up)."""
    return flip(g, inverse=True) if axes == "y-down" else g


def from_world(g: Gaussians, axes: str) -> Gaussians:
    """A set of Pano4D's world as stored with ``axes`` (the inverse of :func:`to_world`)."""
    return flip(g) if axes == "y-down" else g


def check(axes: str, allow_auto: bool = True) -> str:
    allowed = (*AXES, "auto") if allow_auto else AXES
    if axes not in allowed:
        raise ValueError(f"--axes must be one of {', '.join(allowed)}, got {axes!r}")
    return axes
