"""The viewer with scenes of millions of splats: frame time still and while moving.

The app's screen view (app/gl_widget.py) sorts off the render thread what its widened
frustum holds, and on a software rasteriser draws a coarser subset while the camera moves
(viewer/lod.py). This script times the same steps on the same renderer, offscreen:

- upload: packing and uploading the splats (40 bytes each at SH degree 0, in chunked SSBOs);
- cull + sort: what the sorter thread does per request (frustum cull, 16-bit radix sort);
- still: drawing the culled order, full detail (draw + glFinish);
- moving: the paint while the camera turns: the level-of-detail subset of the last order
  and its draw (draw + glFinish), for a camera turning 2 degrees per frame.

Scenes are panorama-like shells (benchmarks/bench_gl.py). On Mesa llvmpipe this measures the
CPU rasteriser. Run ``python benchmarks/bench_viewer_moving.py [--counts 5000000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_gl import MONO, shell_scene  # noqa: E402
from OpenGL import GL  # noqa: E402

from engine.camera import View, gl_projection  # noqa: E402
from viewer.gl.context import has_gl  # noqa: E402
from viewer.lod import LodPolicy, coarse_order, frustum_for  # noqa: E402
from viewer.offscreen import FAR, NEAR, OffscreenRenderer  # noqa: E402
from viewer.renderer import record_words  # noqa: E402
from viewer.sort import depth_keys, frustum_cull, sort_back_to_front  # noqa: E402


def draw(r: OffscreenRenderer, view: View, order: np.ndarray, k: int) -> float:
    spec = [(view.world_to_camera_gl(), gl_projection(view, NEAR, FAR), (0, 0, *MONO))]
    GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, r.fbo)
    GL.glViewport(0, 0, r.width, r.height)
    GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    GL.glFinish()
    t = time.perf_counter()
    r.renderer.draw(spec, order, lod_scale=k)
    GL.glFinish()
    return time.perf_counter() - t


def culled_sort(r: OffscreenRenderer, view: View) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    means, view_gl = r.renderer.means(), view.world_to_camera_gl()
    keep = frustum_cull(means, view_gl, frustum_for(view, r.renderer.radii(), NEAR))
    order = keep[sort_back_to_front(depth_keys(means[keep], view_gl))].astype(np.uint32)
    return order, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--frames", type=int, default=5)
    args = ap.parse_args()
    ok, info = has_gl()
    if not ok:
        print(f"no OpenGL context: {info}", file=sys.stderr)
        return 2
    print(f"renderer: {info}; 1920x1080, 90-degree view\n")
    print("| splats | upload | GPU bytes | in view | cull + sort (thread) | still frame | "
          "moving frame (LOD k) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    r = OffscreenRenderer(*MONO)
    budget = LodPolicy(software=True).budget
    for n in args.counts:
        g = shell_scene(n)
        t0 = time.perf_counter()
        r.upload(g)
        r.finish()
        up = time.perf_counter() - t0
        view = View(10.0, 5.0, 90.0, MONO[1], MONO[0])
        order, _ = culled_sort(r, view)
        draw(r, view, order, 1)  # warm-up (shader JIT)
        sorts, still, moving, ks = [], [], [], []
        for i in range(args.frames):
            view = View(10.0 + 2.0 * i, 5.0, 90.0, MONO[1], MONO[0])
            fresh, s = culled_sort(r, view)
            sorts.append(s)
            still.append(draw(r, view, fresh, 1))
            t = time.perf_counter()  # the paint while moving: LOD of the last order
            lod, k = coarse_order(order, r.renderer.count, budget)
            moving.append(time.perf_counter() - t + draw(r, view, lod, k))
            ks.append(k)
            order = fresh
        gpu = n * 4 * record_words(g.sh.shape[1])
        print(
            f"| {n:,} | {up:.1f} s | {gpu / 2**20:.0f} MiB | {len(order):,} | "
            f"{1e3 * statistics.median(sorts):.0f} ms | {1e3 * statistics.median(still):.0f} ms | "
            f"{1e3 * statistics.median(moving):.0f} ms (k={max(ks)}) |"
        )
    r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
