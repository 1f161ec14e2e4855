"""The scale a splat scene is seen at: what the renderer's blur costs, and how the training
views' resolution trades the input's own resolution against magnified views.

1. Kernel blur: the panorama's own native crops (the psnr_native views) blurred by a
   Gaussian of sigma px, against the unblurred crops. A splat's screen footprint is at
   least sqrt(own^2 + 0.3) px, so this is what a colour fit must sharpen past (it can:
   see benchmarks/bench_kernel.py for what does limit it).
2. Lifts of frame 0 (a fixed top-quarter region, the layout depth prior, no animation) with
   the given lift settings, scored from the centre against the input's own crops over
   static pixels: psnr_native (14 views of 60 deg at the input's angular resolution),
   magnified 1.6x and 2x (8 views of 37.5 / 30 deg at the same pixel count) and
   psnr_headset (8 views of 40 deg at 18.3 px/deg).

    python benchmarks/bench_scale.py --blur
    python benchmarks/bench_scale.py --lift '{"solve": {"resolution": 1.25}}' '{}'
    python benchmarks/bench_scale.py --panorama resources/samples/park_2048x1024.png --lift ...

Each --lift argument is a JSON dict of LiftConfig overrides on top of the 4k preset's
(or, with --preset standard / cuda, that preset's) lift settings; ``'{}'`` is the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402

from engine.config import override  # noqa: E402
from engine.depth import DepthConfig, DepthStage  # noqa: E402
from engine.gaussians import Gaussians  # noqa: E402
from engine.io import load_panorama  # noqa: E402
from engine.lift.evaluate import _static_pixels, native_views, psnr_over  # noqa: E402
from engine.lift.init import to_bchw  # noqa: E402
from engine.lift.optimize import LiftConfig, Lifter  # noqa: E402
from engine.lift.raster import render_view  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from engine.sphere import perspective_view  # noqa: E402

PANNELLUM = ROOT.parent / "shared" / "data" / "pannellum_examplepano_4096x2048.jpg"


def crops(image: torch.Tensor, views) -> list[torch.Tensor]:
    return [perspective_view(image, v)[0].permute(1, 2, 0) for v in views]


def blur_table(rgb: np.ndarray, animated: np.ndarray, sigmas: list[float]) -> None:
    views = native_views(rgb.shape[1])
    refs = crops(to_bchw(rgb) / 255, views)
    masks = [_static_pixels(animated, v) for v in views]
    print("| Gaussian blur sigma (px) | PSNR vs the unblurred native crops |\n|---|---|")
    for s in sigmas:
        pairs = [
            (torch.from_numpy(cv2.GaussianBlur(r.numpy(), (0, 0), s)), r, m)
            for r, m in zip(refs, masks)
        ]
        print(f"| {s:.2f} | {psnr_over(pairs):.2f} dB |")


def magnified(g: Gaussians, image: torch.Tensor, animated: np.ndarray, fov: float) -> float:
    views = [dataclasses.replace(v, fov_deg=fov) for v in native_views(image.shape[-1], 8)]
    bg = torch.zeros(3)
    got = [render_view(g, v, background=bg).rgb for v in views]
    masks = [_static_pixels(animated, v) for v in views]
    return psnr_over(list(zip(got, crops(image, views), masks)))


def lift(rgb: np.ndarray, animated: np.ndarray, base: dict, over: dict) -> dict:
    h, w = rgb.shape[:2]
    depth = DepthStage(DepthConfig()).run(1, (h, w), None).depth
    cfg = override(override(LiftConfig(), base), over)
    t0 = time.perf_counter()
    res = Lifter(cfg).run(rgb[None], depth, animated.astype(np.float32))
    wall = time.perf_counter() - t0
    g = Gaussians.cat([res.static, res.dynamic[0]])
    image = to_bchw(rgb) / 255
    m = res.metrics
    return {
        "over": over,
        "gaussians_per_px": m["gaussians_per_input_pixel"],
        "native": m["psnr_native"],
        "mag16": magnified(g, image, animated, 37.5),
        "mag2": magnified(g, image, animated, 30.0),
        "headset": m["psnr_headset"],
        "train": m["psnr_train"],
        "wall_s": round(wall),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "lift_device": m.get("lift_device"),
        "cuda_peak_gb": torch.cuda.max_memory_allocated() / 1e9
        if torch.cuda.is_available()
        else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--panorama", type=Path, default=PANNELLUM)
    ap.add_argument("--preset", default="4k", choices=("standard", "4k", "cuda"))
    ap.add_argument("--blur", action="store_true", help="the kernel blur table")
    ap.add_argument("--lift", nargs="*", default=[], help="JSON LiftConfig overrides")
    a = ap.parse_args()
    rgb = load_panorama(a.panorama).rgb
    h, w = rgb.shape[:2]
    animated = np.zeros((h, w), bool)
    animated[: h // 4] = True
    print(f"\nMachine: {machine()}; {a.panorama.name} {w}x{h}, top quarter animated\n")
    if a.blur:
        blur_table(rgb, animated, [0.45, 0.55, 0.63, 0.74])
    base = PRESETS[a.preset]["lift"]
    for text in a.lift:  # one process per config is fairer for peak RSS; this is simpler
        r = lift(rgb, animated, base, json.loads(text))
        print(json.dumps(r), flush=True)
        if math.isnan(r["native"]):
            raise SystemExit("no static pixels were measured")


if __name__ == "__main__":
    main()
