"""Spatial-temporal depth alignment (4K4DGen eq. 4, engine.depth.align): time and memory
per frame at 2048x1024 and 4096x2048, and accuracy on a synthetic box room.

The 20-view default set at the view size matched to the panorama (652 px / 1304 px for
90 degree views) is rendered from an analytic box room, each view corrupted by a random
scale, offset and smooth bias (as in tests/engine/test_align.py); we report the naive
per-pixel average's AbsRel and the aligned AbsRel (one global scale fitted), the time of
the first frame (including its final fusion) and of a warm-started later frame, and the
peak extra RSS of aligning two frames (the inputs themselves not counted).

    python benchmarks/bench_align.py [--sizes 1024 2048] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import PeakMemory  # noqa: E402  (benchmarks/ is on sys.path)

from engine.depth.align import AlignConfig, align_depths  # noqa: E402
from engine.progress import Progress  # noqa: E402
from engine.sphere import (  # noqa: E402
    ViewSetConfig,
    equirect_dirs,
    fuse_views,
    make_views,
    matched_view_size,
    perspective_view,
)


def box_room(h: int, w: int) -> np.ndarray:
    d = equirect_dirs(h, w).numpy()
    lo, hi = np.array([-3.0, -1.6, -4.0]), np.array([2.5, 1.4, 3.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, hi / d, np.where(d < 0, lo / d, np.inf))
    return t.min(-1).astype(np.float32)


def corrupt(vd: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    v, h, w = vd.shape
    scale = np.exp(rng.uniform(-np.log(2), np.log(2), v))
    near = vd.reshape(v, -1).min(1).values.numpy()
    shift = rng.uniform(-0.3, 0.3, v) * near
    shift -= shift.mean()
    yy, xx = np.mgrid[0:h, 0:w] / h - 0.5
    out = []
    for i in range(v):
        p, q, r = rng.normal(size=3)
        bias = 0.05 * near[i] * (p * xx + q * yy + r * np.sin(3 * xx + 2 * yy)) / 2
        out.append(((vd[i].numpy() + shift[i] + bias) / scale[i]).astype(np.float32))
    return torch.from_numpy(np.stack(out))


def absrel(est: np.ndarray, truth: np.ndarray) -> float:
    k = np.median(truth / est)
    return float(np.mean(np.abs(k * est - truth) / truth))


def run(h: int, cfg: AlignConfig) -> None:
    w = 2 * h
    size = matched_view_size(w, 90.0)
    views = make_views(ViewSetConfig(size=size))
    truth = torch.from_numpy(box_room(h, w))
    clean = torch.stack([perspective_view(truth[None, None], v)[0, 0] for v in views])
    rng = np.random.default_rng(0)
    frames = torch.stack([corrupt(clean, rng), corrupt(clean, rng)])
    naive, _ = fuse_views(frames[0][:, None, None], views, h, w)
    marks: dict[str, float] = {}

    def note(stage: str, fraction: float, message: str) -> None:
        key = message.split(":")[0]  # "align frame k"
        marks.setdefault(key, time.perf_counter())

    t0 = time.perf_counter()
    with PeakMemory() as rss:
        out = align_depths(frames, views, (h, w), cfg=cfg, progress=Progress("depth", note))
    t_end = time.perf_counter()
    t_first = marks.get("align frame 1", t_end) - t0
    t_next = t_end - marks.get("align frame 1", t0)
    print(
        f"| {w}x{h} | {len(views)} x {size}² | {cfg.iters}/{cfg.iters_next} it, work "
        f"{cfg.work_size}, grid {cfg.grid_height} | {t_first:.1f} s | {t_next:.1f} s | "
        f"{rss.extra:.0f} MB | {absrel(naive[0, 0].numpy(), truth.numpy()):.4f} | "
        f"{absrel(out[0].numpy(), truth.numpy()):.4f} |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="equirect rows")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--iters-next", type=int, default=150)
    ap.add_argument("--work", type=int, default=96)
    ap.add_argument("--grid", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    cfg = AlignConfig(
        iters=a.iters,
        iters_next=a.iters_next,
        work_size=a.work,
        grid_height=a.grid,
        device=a.device,
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}")
    print(
        "| equirect | views | settings | first frame | later frame (warm) | peak extra RSS "
        "| naive AbsRel | aligned AbsRel |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for h in a.sizes:
        run(h, cfg)


if __name__ == "__main__":
    main()
