"""Pure-torch rasteriser speed: forward (no grad) and forward + backward, vs. splat count
and image size, on a panorama-like scene (discs on a sphere around the camera, about one
pixel apart, mostly opaque) — the workload of lifting and of `render`.

    python benchmarks/bench_raster.py [--counts 10000 30000 100000 300000] [--sizes 128 256 512]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.camera import View  # noqa: E402
from engine.lift.cells import finest_cells  # noqa: E402
from engine.lift.init import init_gaussians  # noqa: E402
from engine.lift.raster import render_view  # noqa: E402


def scene(n: int):
    rows = max(8, round(math.sqrt(n / 1.57)))
    grid = finest_cells(rows)
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(len(grid), 3, generator=g)
    depth = 3 + 3 * torch.rand(len(grid), generator=g)
    return init_gaussians(grid, colours, depth)


def forward(g, view: View) -> None:
    with torch.no_grad():
        render_view(g, view)


def forward_backward(g, view: View) -> None:
    sh = g.sh.clone().requires_grad_(True)
    g = type(g)(g.means, g.quats, g.log_scales, g.opacities, sh)
    render_view(g, view).rgb.sum().backward()


def best_of(fn, *args, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| Gaussians (whole sphere) | view | forward | forward + backward |")
    print("|---|---|---|---|")
    for n in a.counts:
        base = scene(n)
        for size in a.sizes:
            view = View(20, 10, 90, size, size)

            print(
                f"| {len(base):,} | {size}x{size} | {1e3 * best_of(forward, base, view):.0f} ms "
                f"| {1e3 * best_of(forward_backward, base, view):.0f} ms |",
                flush=True,
            )


if __name__ == "__main__":
    main()
