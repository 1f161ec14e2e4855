"""Text to panorama: the three strategies of 4K4DGen Table 2 for a text-to-image model, the
cost of fusion per step and peak memory at panorama sizes.

  (a) equirect     the whole equirect latent denoised as one (squashed) image
  (b) independent  every perspective view denoised on its own, stitched once at the end
  (c) sphere       project -> one step per view -> fusion of the denoised estimates, every step

Reported per strategy: view-consistency error (mean |view output - consensus fused from all
views|, latent units; engine.animate.denoiser.view_disagreement), seam discontinuity of the
latent and of the decoded panorama (1 = the step across the seam is like any other column
step), time per step, the fusion's share of it and the peak extra memory of the run.

    python benchmarks/bench_text.py                       # tiny random SD built here (CPU)
    python benchmarks/bench_text.py --family sd3          # tiny random SD3 (flow-matching DiT)
    python benchmarks/bench_text.py --model PATH --device cuda --sizes 2048x1024 4096x2048

With a tiny random model the picture is meaningless (random weights paint noise-like
texture, whose seam looks like any column); the consistency, timing and memory figures
measure the strategies and the machinery themselves.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import PeakMemory, machine  # noqa: E402

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser  # noqa: E402
from engine.metrics import seam_discontinuity  # noqa: E402
from engine.sphere import ViewSetConfig  # noqa: E402
from engine.text import TextPanoConfig, load_model  # noqa: E402


def run(model, size, mode, steps, view_size, device):
    h, w = size
    cfg = DenoiserConfig(steps=steps, views=ViewSetConfig(size=view_size), two_pass=False,
                         pin_first_frame=False, mode=mode)  # fmt: skip
    den = PanoramicDenoiser(model, cfg)
    t0 = time.perf_counter()
    with PeakMemory(device) as mem:
        lat = den.run(torch.zeros(3, h, w), torch.ones(h, w), 1)
        rgb = model.decode(lat)[0].permute(1, 2, 0).cpu().numpy()
    wall = time.perf_counter() - t0
    st = den.stats
    return {
        "consistency": st.consistency,
        "seam_latent": seam_discontinuity(lat[0].permute(1, 2, 0).cpu().numpy())["ratio"],
        "seam_rgb": seam_discontinuity(rgb)["ratio"],
        "step_s": (st.model_s + st.fusion_s) / max(1, st.steps),
        "fusion_share": st.fusion_share,
        "views": st.views[0],
        "wall_s": wall,
        "peak_mb": mem.extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a SD or SD3 pipeline folder (default: tiny random)")
    ap.add_argument("--family", choices=("sd", "sd3"), default="sd", help="the tiny model's")
    ap.add_argument("--sizes", nargs="+", default=["512x256", "2048x1024", "4096x2048"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--view-size", type=int, default=512)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    spec = a.model
    if spec is None:
        from tests import tiny_models

        build = tiny_models.build_tiny_sd3 if a.family == "sd3" else tiny_models.build_tiny_sd
        spec = str(build(Path(tempfile.mkdtemp()) / a.family))
    torch.manual_seed(0)
    model = load_model(TextPanoConfig(model=spec, prompt="misty alpine lake at dawn, pine forest",
                                      device=a.device), torch.device(a.device))  # fmt: skip
    name = f"tiny random {a.family.upper()}" if a.model is None else a.model
    print(f"\nMachine: {machine()}; model: {name}, "
          f"{a.steps} steps, views of at most {a.view_size} px\n")  # fmt: skip
    print("| size | strategy | views | view consistency | seam latent / rgb | s per step | "
          "fusion share | peak extra memory |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for text in a.sizes:
        w, h = (int(v) for v in text.split("x"))
        modes = ("equirect", "independent", "sphere") if w <= 1024 else ("sphere",)
        for mode in modes:
            try:
                r = run(model, (h, w), mode, a.steps, a.view_size, a.device)
            except ValueError as e:  # e.g. larger than a DiT's position embedding
                print(f"| {w}×{h} | {mode} | — | {e} |", flush=True)
                continue
            row = (
                f"| {w}×{h} | {mode} | {r['views']} | {r['consistency']:.4f} | "
                f"{r['seam_latent']:.2f} / {r['seam_rgb']:.2f} | {r['step_s']:.2f} | "
                f"{100 * r['fusion_share']:.0f} % | {r['peak_mb']:.0f} MB |"
            )
            print(row, flush=True)


if __name__ == "__main__":
    main()
