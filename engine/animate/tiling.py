"""Seam-wrapped column tiles: run an image model (a VAE) over a panorama in tiles whose
context wraps across the left/right seam, so the result has no seam and memory is bounded."""

from __future__ import annotations

import torch
from torch import Tensor


def tiled_columns(fn, x: Tensor, tile: int, pad: int, ratio: float, on_tile=None) -> Tensor:
    """Apply ``fn`` ([B, C, H, w'] -> [B, C', H*r, w'*r]) over column tiles of ``x`` with
    ``pad`` columns of seam-wrapped context on each side (r = 1 / ratio); ``on_tile(k, n)``
    is called after tile k of n."""
    w = x.shape[-1]
    scale = 1 / ratio
    outs = []
    starts = range(0, w, tile)
    for k, c0 in enumerate(starts):
        c1 = min(w, c0 + tile)
        p = min(pad, w)
        cols = torch.arange(c0 - p, c1 + p, device=x.device) % w
        y = fn(x[..., cols])
        a = round(p * scale)
        outs.append(y[..., a : a + round((c1 - c0) * scale)])
        if on_tile is not None:
            on_tile(k + 1, len(starts))
    return torch.cat(outs, dim=-1)
