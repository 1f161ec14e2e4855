"""Back-to-front splat sorting speed: ``viewer.sort.sort_back_to_front`` (16-bit quantised,
stable radix) against full-precision float argsorts, best of ``--repeat`` runs.

    python benchmarks/bench_sort.py [--n 2000000] [--repeat 5] [--bits 16]

Keys are camera depths of a panorama-like cloud (points on shells 1..20 around the viewer).
The target is <= 15 ms for 2M splats off the render thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.camera import View  # noqa: E402
from viewer.sort import depth_keys, quantize_far_to_near, sort_back_to_front  # noqa: E402

TARGET_MS = 15.0


def best_ms(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, thread pools, torch init)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bits", type=int, default=16)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    d = rng.normal(size=(args.n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    means = (d * rng.uniform(1, 20, size=(args.n, 1))).astype(np.float32)
    view = View(yaw_deg=30, pitch_deg=10).world_to_camera_gl()
    keys = depth_keys(means, view)
    q = quantize_far_to_near(keys, args.bits)
    tkeys = torch.from_numpy(keys)
    b = args.bits
    rows = [
        ("depth_keys (N×3 → N float32)", lambda: depth_keys(means, view)),
        (f"quantise to {b} bits", lambda: quantize_far_to_near(keys, b)),
        (f"sort_back_to_front({b}) auto", lambda: sort_back_to_front(keys, b)),
        (f"sort_back_to_front({b}) torch", lambda: sort_back_to_front(keys, b, "torch")),
        (f"sort_back_to_front({b}) numpy, pool", lambda: sort_back_to_front(keys, b, "numpy")),
        (
            f"sort_back_to_front({b}) numpy, 1 thread",
            lambda: sort_back_to_front(keys, b, "numpy", threads=1),
        ),
        ("np.argsort(uint16, kind='stable') only", lambda: np.argsort(q, kind="stable")),
        ("np.argsort(float32) (quicksort)", lambda: np.argsort(keys)),
        ("np.argsort(float32, kind='stable')", lambda: np.argsort(keys, kind="stable")),
        ("torch.argsort(float32)", lambda: torch.argsort(tkeys)),
        ("torch.argsort(float32, stable=True)", lambda: torch.argsort(tkeys, stable=True)),
    ]
    print(
        f"{args.n:,} splats, best of {args.repeat}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, numpy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)\n"
    )
    print("| method | ms |")
    print("|---|---:|")
    results = {}
    for name, fn in rows:
        ms = best_ms(fn, args.repeat)
        results[name] = ms
        print(f"| {name} | {ms:.1f} |")
    auto = results[f"sort_back_to_front({b}) auto"]
    met = "met" if auto <= TARGET_MS else "NOT met"
    print(f"\nTarget <= {TARGET_MS:.0f} ms for sort_back_to_front: {met} ({auto:.1f} ms).")


if __name__ == "__main__":
    main()
