"""Fusion of per-view images back onto the equirect grid (4K4DGen eq. 3, engine.sphere) and
perspective projection: time and extra memory at 2048x1024 and 4096x2048.

    python benchmarks/bench_sphere.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import PeakMemory  # noqa: E402  (benchmarks/ is on sys.path)

from engine.sphere import ViewSetConfig, coverage, fuse_views, make_views, perspective_view  # noqa: E402


def main() -> None:
    views = make_views(ViewSetConfig(size=512))
    print(f"default view set: {len(views)} views, {coverage(views)}")
    print("| equirect | channels | views | project all views | fuse | peak extra RSS during fuse |")
    print("|---|---|---|---|---|---|")
    for h, c in ((1024, 3), (2048, 3), (256, 4)):
        w = 2 * h
        pano = torch.rand(1, c, h, w)
        size = 512 if h >= 1024 else 64  # images, or SVD latents of 512 px views
        vs = make_views(ViewSetConfig(size=size))
        t0 = time.perf_counter()
        per_view = torch.stack([perspective_view(pano, v) for v in vs])
        t_proj = time.perf_counter() - t0
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            fused, _ = fuse_views(per_view, vs, h, w)
            t_fuse = time.perf_counter() - t0
        extra = mem.extra
        print(
            f"| {w}x{h} | {c} | {len(vs)} x {size}² | {t_proj:.2f} s | {t_fuse:.2f} s "
            f"| {extra:.0f} MB (output {fused.numel() * 4 / 1e6:.0f} MB) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
