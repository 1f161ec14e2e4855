"""Conversion between :class:`Gaussians` and gsply's ``GSData`` (PLY conventions: log scales,
opacity logits, wxyz quaternions, sh0 [N, 3], shN [N, K - 1, 3])."""

from __future__ import annotations

import numpy as np
import torch

from ..gaussians import Gaussians, unit_quats


def to_gsdata(g: Gaussians):
    import gsply

    sh = g.sh.detach().cpu().float().numpy()
    arr = lambda t: np.ascontiguousarray(t.detach().cpu().float().numpy())  # noqa: E731
    return gsply.GSData(
        means=arr(g.means),
        scales=arr(g.log_scales),
        quats=arr(unit_quats(g.quats)),
        opacities=arr(g.opacities),
        sh0=np.ascontiguousarray(sh[:, 0]),
        shN=np.ascontiguousarray(sh[:, 1:]),
    )


def from_gsdata(d) -> Gaussians:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    n = len(d.means)
    sh_n = None
    if d.shN is not None and n:  # an empty set has no rest bands to reshape: degree 0
        sh_n = np.asarray(d.shN, dtype=np.float32).reshape(n, -1, 3)
    sh0 = np.asarray(d.sh0, dtype=np.float32).reshape(n, 1, 3)
    sh = sh0 if sh_n is None or sh_n.shape[1] == 0 else np.concatenate([sh0, sh_n], 1)
    return Gaussians(
        means=t(d.means), quats=t(d.quats), log_scales=t(d.scales),
        opacities=t(np.asarray(d.opacities).reshape(n)), sh=t(sh),
    )  # fmt: skip
