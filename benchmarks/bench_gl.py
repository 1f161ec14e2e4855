"""Frame time of the OpenGL splat renderer vs splat count (EGL offscreen, glFinish timing).

Scenes are panorama-like: N Gaussians on a shell (radius 4-8) around the viewer, sized like
``engine.lift.init`` (tangential sigma 0.6 x the mean spacing, thin radially), so the
fragment load per pixel stays roughly constant as N grows and about 1/5 of the splats lie
in a 90-degree view. Modes: mono 1920x1080 and stereo 2 x (1832x1920) (two viewports side
by side in one 3664x1920 framebuffer, one shared sort, one draw path).

Reported per count and mode: CPU depth sort (``np.argsort``, back to front), draw +
``glFinish`` (median of ``--reps``), and the total. On Mesa llvmpipe these numbers measure
the CPU rasteriser, not a GPU: use them to compare versions of the renderer, not to claim
frame rates. Run ``python benchmarks/bench_gl.py [--counts 100000 1000000 3000000]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.camera import View, gl_projection  # noqa: E402
from engine.gaussians import Gaussians, rgb_to_sh0  # noqa: E402
from viewer.gl.context import has_gl  # noqa: E402
from viewer.offscreen import FAR, NEAR, OffscreenRenderer  # noqa: E402

MONO = (1920, 1080)
EYE = (1832, 1920)  # width, height of one eye


def shell_scene(n: int, seed: int = 0) -> Gaussians:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = rng.uniform(4.0, 8.0, size=(n, 1)).astype(np.float32)
    sigma = 0.6 * r[:, 0] * math.sqrt(4 * math.pi / n)
    jitter = np.exp(rng.normal(0, 0.3, size=(n, 2))).astype(np.float32)
    scales = np.stack([sigma * jitter[:, 0], sigma * jitter[:, 1], 0.3 * sigma], -1)
    return Gaussians(
        means=torch.from_numpy(d * r),
        quats=torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32)),
        log_scales=torch.from_numpy(np.log(scales)),
        opacities=torch.from_numpy(rng.normal(2.0, 1.0, size=n).astype(np.float32)),
        sh=rgb_to_sh0(torch.from_numpy(rng.uniform(0, 1, (n, 1, 3)).astype(np.float32))),
    )


def time_mode(r: OffscreenRenderer, views: list, reps: int) -> tuple[float, float, int]:
    """(sort seconds, draw+finish seconds) medians and the number of instances drawn."""
    from OpenGL import GL

    specs = [(v.world_to_camera_gl(), gl_projection(v, NEAR, FAR), vp) for v, vp in views]
    sorts, draws, n = [], [], 0
    for i in range(reps + 1):  # first run warms up (shader JIT, buffer residency)
        t0 = time.perf_counter()
        order = r.renderer.sort(specs[0][0], NEAR)
        t1 = time.perf_counter()
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, r.fbo)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glViewport(0, 0, r.width, r.height)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        GL.glFinish()
        t2 = time.perf_counter()
        r.renderer.draw(specs, order)
        GL.glFinish()
        t3 = time.perf_counter()
        if i:
            sorts.append(t1 - t0)
            draws.append(t3 - t2)
        n = len(order)
    return statistics.median(sorts), statistics.median(draws), n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["mono", "stereo"], choices=["mono", "stereo"])
    args = ap.parse_args(argv)

    ok, info = has_gl()
    if not ok:
        print(f"no OpenGL context: {info}", file=sys.stderr)
        return 2
    print(
        f"renderer: {info}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} threads; reps={args.reps}\n"
    )
    mono_view = View(yaw_deg=10.0, pitch_deg=5.0, fov_deg=90.0, height=MONO[1], width=MONO[0])
    eye_kw = dict(yaw_deg=10.0, pitch_deg=5.0, fov_deg=90.0, height=EYE[1], width=EYE[0])
    left = View(**eye_kw, position=(-0.032, 0.0, 0.0))
    right = View(**eye_kw, position=(0.032, 0.0, 0.0))
    renderers = {}
    if "mono" in args.modes:
        renderers["mono"] = (OffscreenRenderer(*MONO), [(mono_view, (0, 0, *MONO))])
    if "stereo" in args.modes:
        renderers["stereo"] = (
            OffscreenRenderer(2 * EYE[0], EYE[1]),
            [(left, (0, 0, *EYE)), (right, (EYE[0], 0, *EYE))],
        )
    rows = []
    for n in args.counts:
        g = shell_scene(n)
        for mode, (r, views) in renderers.items():
            t0 = time.perf_counter()
            r.upload(g)
            r.finish()
            up = time.perf_counter() - t0
            sort_s, draw_s, drawn = time_mode(r, views, args.reps)
            label = "1920x1080" if mode == "mono" else "2x(1832x1920)"
            rows.append((n, label, drawn, up, sort_s, draw_s))
            print(
                f"  {n:>9,} {label:<14} upload {up:6.2f} s  sort {sort_s * 1e3:7.1f} ms  "
                f"draw {draw_s * 1e3:8.1f} ms",
                file=sys.stderr,
            )
    print("| splats | mode | in front (sorted) | upload s | sort ms | draw+finish ms | frame ms |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n, label, drawn, up, s, d in rows:
        print(
            f"| {n:,} | {label} | {drawn:,} | {up:.2f} | {s * 1e3:.1f} | {d * 1e3:.1f} | "
            f"{(s + d) * 1e3:.1f} |"
        )
    for r, _ in renderers.values():
        r.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
