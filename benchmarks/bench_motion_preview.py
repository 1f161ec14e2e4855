"""Motion preview latency: from an edit to the frames on the canvas, as the app does it
(the regions copied out of the model, reduced, animated by the flow animator at 512 × 256),
for the park sample (2048 × 1024) and the 4096 × 2048 example panorama; 16 frames, two
regions (a sky band that drifts, a block of trees that sways). Prints JSON.

    python benchmarks/bench_motion_preview.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from _common import machine

from engine.animate import FlowConfig
from engine.animate.preview import preview_motion
from engine.io import Region, load_panorama

ROOT = Path(__file__).resolve().parent.parent
INPUTS = {
    "park 2048x1024": ROOT / "resources" / "samples" / "park_2048x1024.png",
    "pannellum 4096x2048": ROOT.parent / "shared" / "data" / "pannellum_examplepano_4096x2048.jpg",
}


def regions(h: int, w: int) -> list[Region]:
    sky = np.zeros((h, w), bool)
    sky[: h // 3] = True
    trees = np.zeros((h, w), bool)
    trees[h // 2 : 2 * h // 3, w // 8 : w // 2] = True
    return [Region("sky", sky, 0.0, 4.0), Region("trees", trees, 0.0, 2.0, motion="sway")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = {"machine": machine(), "frames": 16, "preview": "512x256", "inputs": {}}
    for name, path in INPUTS.items():
        if not path.is_file():
            continue
        pano = load_panorama(path)
        regs = regions(pano.height, pano.width)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            copies = [Region(r.name, r.mask.copy(), r.direction_deg, r.speed_deg_s, motion=r.motion)
                      for r in regs]  # fmt: skip  # what RegionsModel.to_regions hands over
            preview_motion(pano.rgb, copies, FlowConfig(frames=16))
            times.append(time.perf_counter() - t0)
        out["inputs"][name] = {"median_s": round(statistics.median(times), 2),
                               "all_s": [round(t, 2) for t in times]}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
