"""Headset frame cost: per-eye render time and total frame time vs splat count, through a
real OpenXR session (Monado, null compositor, simulated HMD) — the code path
``python main.py xr`` runs.

For each splat count and eye size the script runs ``--frames`` frames of
:func:`viewer.xr.run_xr` on a panorama-like shell scene (``bench_gl.shell_scene``: N
Gaussians on a shell of radius 4-8 around the viewer) and reports medians over the frames
after ``--warmup``:

  eye GPU   GL_TIME_ELAPSED per eye (splat draw + compose into the swapchain image)
  eye CPU   CPU time issuing one eye (after its swapchain image is available)
  sort      the one radial sort per frame shared by both eyes (redone when the head moves
            or the animation frame changes; Monado's simulated head is still, so only
            frame changes re-sort here — the "sort" column is the median of the sorts run)
  frame     xrBeginFrame -> xrEndFrame returned (both eyes, sort, submit)
  period    the runtime's display period (the null compositor paces at its own rate)

Eye sizes: the simulated HMD's recommended size through Monado. Monado's null compositor
caps swapchains at 1920x1080 per eye, so 2x(1832x1920) (a Quest-2-class panel) is measured
by ``--offscreen``: the same per-eye path without a runtime (one radial sort from the head,
then per eye ``viewer.xr_gl.draw_eye``: splats into the RGBA16F target, compose into an
sRGB8 texture standing in for the swapchain image; asymmetric per-eye FOV, 64 mm IPD),
timed with glFinish per eye. On Mesa llvmpipe these figures measure a CPU rasteriser shared
with Monado's own compositor threads: use them to compare versions, not to claim frame
rates; a desktop GPU is what the 90 Hz target is about.

Usage: ``python benchmarks/bench_xr.py [--counts 500000 1000000] [--frames 12]`` (needs
scripts/build_monado.sh to have built Monado) and ``python benchmarks/bench_xr.py
--offscreen [--eye-size 1832x1920] [--counts ...]`` (no runtime needed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gl import shell_scene  # noqa: E402

from engine.gaussians import Gaussians  # noqa: E402
from engine.scene import Scene4D  # noqa: E402
from viewer.monado import monado_env  # noqa: E402
from viewer.xr import XrConfig, run_xr  # noqa: E402


def med(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def run_one(n: int, eye: tuple[int, int] | None, frames: int, warmup: int) -> dict:
    scene = Scene4D(shell_scene(n), [Gaussians.empty(0)], 8.0)
    t = time.perf_counter()
    rep = run_xr(scene, XrConfig(frames=frames, eye_size=eye, log_every=0))
    wall = time.perf_counter() - t
    st = rep.stats[warmup:]
    gpu = [s.eye_gpu_ms for s in st if s.eye_gpu_ms]
    sorts = [s.sort_ms for s in rep.stats if s.sort_ms > 0]
    return {
        "n": n,
        "eye": rep.eye_size,
        "gpu": [med([g[i] for g in gpu]) for i in (0, 1)],
        "cpu": [med([s.eye_cpu_ms[i] for s in st]) for i in (0, 1)],
        "sort": med(sorts),
        "frame": med([s.frame_ms for s in st]),
        "period": med([s.display_period_ms for s in st]),
        "wall": wall,
        "system": rep.system,
        "renderer": rep.gl_renderer,
    }


def run_offscreen(n: int, eye: tuple[int, int], frames: int, warmup: int) -> dict:
    """The headset's per-eye path without a runtime (see the module doc)."""
    from OpenGL import GL

    from viewer.gl.context import EGLContext
    from viewer.gl.shaders import load_program
    from viewer.renderer import SplatRenderer
    from viewer.sort import radial_keys, sort_back_to_front
    from viewer.xr_gl import GL_SRGB8_ALPHA8, EyeTarget, draw_eye
    from viewer.xr_math import Anchor, eye_view_matrix, pose_matrix, projection_from_fov

    ctx = EGLContext()
    w, h = eye
    r = SplatRenderer()
    r.upload_static(shell_scene(n))
    r.upload_dynamic([])
    prog = load_program("xr_compose")
    targets = [EyeTarget(w, h, GL_SRGB8_ALPHA8, prog) for _ in range(2)]
    out = []
    for _ in range(2):
        tex = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, GL.GL_SRGB8_ALPHA8, w, h)
        out.append(tex)
    head = pose_matrix((0, 0, 0, 1), (0.0, 1.6, 0.0))
    to_scene = Anchor.from_head(head).scene_from_space()
    fovs = [(-0.90, 0.76, 0.87, -0.93), (-0.76, 0.90, 0.87, -0.93)]  # Quest-2-like, L / R
    eyes = [pose_matrix((0, 0, 0, 1), (x, 1.6, 0.0)) for x in (-0.032, 0.032)]
    rows = []
    for _ in range(frames):
        t = time.perf_counter()
        order = sort_back_to_front(radial_keys(r.means(), (to_scene @ head)[:3, 3]))
        sort_ms = (time.perf_counter() - t) * 1e3
        eye_ms = []
        for i in range(2):
            te = time.perf_counter()
            proj = projection_from_fov(*fovs[i], 0.05, 1000.0)
            view = eye_view_matrix(to_scene, eyes[i])
            draw_eye(r, targets[i], out[i], view, proj, order, 1.0, (0.0, 0.0, 0.0))
            GL.glFinish()
            eye_ms.append((time.perf_counter() - te) * 1e3)
        rows.append((sort_ms, eye_ms, (time.perf_counter() - t) * 1e3))
    for tg in targets:
        tg.close()
    GL.glDeleteTextures(2, out)
    r.close()
    ctx.close()
    rows = rows[warmup:]
    return {
        "n": n,
        "eye": eye,
        "gpu": [med([e[i] for _, e, _ in rows]) for i in (0, 1)],
        "cpu": [float("nan"), float("nan")],
        "sort": med([s for s, _, _ in rows]),
        "frame": med([f for _, _, f in rows]),
        "period": float("nan"),
        "system": "no runtime (offscreen eye path)",
        "renderer": ctx.renderer,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--offscreen", action="store_true", help="no runtime: the per-eye path")
    ap.add_argument("--eye-size", default="1832x1920", help="WxH per eye for --offscreen")
    args = ap.parse_args()
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    if args.offscreen:
        w, h = (int(x) for x in args.eye_size.lower().split("x"))
        results = (run_offscreen(n, (w, h), args.frames, args.warmup) for n in args.counts)
    else:
        os.environ.update(monado_env(controllers=False))
        results = (run_one(n, None, args.frames, args.warmup) for n in args.counts)
    header = (
        f"{'splats':>9} {'eye WxH':>10} {'L GPU':>7} {'R GPU':>7} {'L CPU':>7} "
        f"{'R CPU':>7} {'sort':>6} {'frame':>7} {'period':>7}  (ms)"
    )
    for k, r in enumerate(results):
        if k == 0:
            print(f"runtime: {r['system']}; GL: {r['renderer']}")
            print(header)
        w, h = r["eye"]
        print(
            f"{r['n']:>9,} {f'{w}x{h}':>10} {r['gpu'][0]:7.1f} {r['gpu'][1]:7.1f} "
            f"{r['cpu'][0]:7.1f} {r['cpu'][1]:7.1f} {r['sort']:6.1f} {r['frame']:7.1f} "
            f"{r['period']:7.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
