"""Ablation of the Panoramic Denoiser (4K4DGen Table 2) and the cost of fusion.

With one image-to-video model, three strategies animate the same panorama and mask:

  (a) equirect     the whole equirect latent denoised as one (squashed) image
  (b) independent  every perspective view denoised on its own, stitched once at the end
  (c) sphere       the Panoramic Denoiser: project -> one step per view -> eq. 3 fusion,
                   at every step

Reported per strategy: view-consistency error (mean |view output - the consensus fused from
all views| over the animated pixels, latent units; :func:`engine.animate.denoiser.
view_disagreement`), seam discontinuity of the latent video and of the decoded video (1 = the
step across the seam is like any other column step; engine.metrics for the video), motion in
the region (mean |frame t - frame t-1| over the decoded frames t >= 1, 8-bit levels), time
per step, the fusion's share of each step and peak memory (RSS on the CPU, CUDA allocator
peak on a GPU). Then fusion alone at the 4K latent size (256 x 512, 14 frames x 4
channels) for the wide 20-view set and the dense refinement set.

    python benchmarks/bench_denoiser.py                 # tiny random SVD built here (CPU)
    python benchmarks/bench_denoiser.py --model stabilityai/stable-video-diffusion-img2vid-xt \
        --device cuda --size 1024 --frames 14 --steps 25   # real weights on a GPU

With the tiny random model the *motion* is meaningless; the consistency, seam, timing and
memory figures measure the strategies themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import PeakMemory  # noqa: E402  (benchmarks/ is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine.animate.base import region_weights  # noqa: E402
from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser  # noqa: E402
from engine.animate.fusion import SphereViews, ring_views  # noqa: E402
from engine.animate.svd import SVDConfig, SVDModel, _work_size, composite  # noqa: E402
from engine.camera import View  # noqa: E402
from engine.io import load_panorama, load_regions  # noqa: E402
from engine.metrics import seam_discontinuity  # noqa: E402
from engine.progress import Progress  # noqa: E402
from engine.sphere import ViewSetConfig, make_views  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"


def sample_inputs(size: int):
    """The bundled park panorama and its regions, resized to size x 2 size."""
    import cv2

    pano = load_panorama(SAMPLES / "park_2048x1024.png")
    regions = load_regions(SAMPLES / "park_regions.json", pano.size)
    rgb = cv2.resize(pano.rgb, (2 * size, size), interpolation=cv2.INTER_AREA)
    union = region_weights(regions).sum(0).clip(0, 1)
    union = cv2.resize(union, (2 * size, size), interpolation=cv2.INTER_AREA)
    return rgb, union.astype(np.float32)


def ablation(args, model: SVDModel, rgb: np.ndarray, union: np.ndarray) -> None:
    image, weight = _work_size(rgb, union, model.size_multiple)
    print(
        f"\n{rgb.shape[1]}x{rgb.shape[0]} panorama, {args.frames} frames, {args.steps} steps, "
        f"one pass, device {model.device}\n"
    )
    print(
        "| strategy | views | view-consistency error | seam: latent / video | motion (levels) "
        "| time / step | fusion share | peak memory |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, label in (
        ("equirect", "(a) whole equirect"),
        ("independent", "(b) independent views + stitch"),
        ("sphere", "(c) Panoramic Denoiser"),
    ):
        cfg = DenoiserConfig(
            steps=args.steps,
            views=ViewSetConfig(size=args.view_size),
            two_pass=False,
            view_batch=args.view_batch,
            mode=mode,
        )
        den = PanoramicDenoiser(model, cfg)
        model.gen.manual_seed(1)
        with PeakMemory(model.device) as mem:
            lat = den.run(image, weight, args.frames)
        video = model.decode(lat.to(model.dtype)).float().cpu()
        frames = np.empty((args.frames, *rgb.shape), np.uint8)
        composite(rgb, union, video, frames, Progress("bench"))
        moving = union > 0
        # frame-to-frame change of the decoded frames (frame 0 is the pinned input itself)
        dec = frames[1:, moving].astype(np.float32)
        motion = np.abs(dec[1:] - dec[:-1]).mean()
        s = den.stats
        per_step = (s.model_s + s.fusion_s) / max(1, s.steps)
        cons = "n/a (no views)" if mode == "equirect" else f"{s.consistency:.4f}"
        print(
            f"| {label} | {s.views[0]} | {cons} | {latent_seam(lat, weight):.2f} / "
            f"{seam_discontinuity(frames)['ratio']:.2f} "
            f"| {motion:.2f} | {per_step:.2f} s | {100 * s.fusion_share:.2f} % "
            f"| {mem.extra:.0f} MB |",
            flush=True,
        )


def latent_seam(lat: torch.Tensor, weight: torch.Tensor) -> float:
    """Mean |step across the seam| / mean |step between neighbouring columns| of the latent
    video (frames >= 1) over the latent rows that animate at the seam (1 = no seam)."""
    from engine.animate.denoiser import latent_mask

    mask = latent_mask(weight, weight.shape[-1] // lat.shape[-1]).to(lat.device) > 0
    rows = mask[:, 0] | mask[:, -1]
    if not bool(rows.any()):
        return float("nan")
    v = lat[1:, :, rows]
    seam = (v[..., 0] - v[..., -1]).abs().mean()
    return float(seam / (v[..., 1:] - v[..., :-1]).abs().mean())


def fusion_alone(device: torch.device, repeats: int = 3) -> None:
    """Project + fuse at the 4K latent size: 256 x 512, 14 frames x 4 channels."""
    print("\nFusion alone at the 4K latent size (equirect latent 512x256, 14 frames x 4 ch)\n")
    print(
        "| view set | plan build | plan memory | project (all views) | fuse (eq. 3) "
        "| peak extra memory of a fuse |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    sets = {
        "20 x 90° (64² latent = 512 px views)": make_views(ViewSetConfig(size=64)),
        "dense 42.9° refinement set (64² latent)": [
            View(v.yaw_deg, v.pitch_deg, v.fov_deg, 64, 64) for v in ring_views(42.9, 64)
        ],
    }
    latent = torch.randn(14, 4, 256, 512, device=device)
    SphereViews(make_views(ViewSetConfig(size=8)), 16, 32, device=device)  # warm up torch
    for name, views in sets.items():
        t0 = time.perf_counter()
        sv = SphereViews(views, 256, 512, device=device)
        build = time.perf_counter() - t0
        per_view = sv.project(latent)
        with PeakMemory(device) as mem:  # the first fuse: before the allocator caches
            sv.fuse(per_view, fill=latent)
        foot = sv.plan_idx.shape[1]
        bound = (latent.numel() + 56 * sv.view_chunk * foot) * 4 / 1e6  # output + temporary
        tp, tf = [], []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            per_view = sv.project(latent)
            _sync(device)
            t1 = time.perf_counter()
            sv.fuse(per_view, fill=latent)
            _sync(device)
            tf.append(time.perf_counter() - t1)
            tp.append(t1 - t0)
        print(
            f"| {name}: {len(views)} views | {build:.2f} s | {sv.plan_bytes / 1e6:.1f} MB "
            f"| {1000 * min(tp):.0f} ms | {1000 * min(tf):.0f} ms "
            f"| {mem.extra:.0f} MB (bound {bound:.0f} MB) |",
            flush=True,
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="SVD weights (folder or cached hub id); default: tiny random")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=256, help="panorama height (width = 2x)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--view-size", type=int, default=512)
    ap.add_argument("--view-batch", type=int, default=20)
    ap.add_argument("--skip-ablation", action="store_true")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}")
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name())
    if not args.skip_ablation:
        with tempfile.TemporaryDirectory() as tmp:
            spec = args.model
            if spec is None:
                from tests.engine.test_svd import build_tiny_svd

                spec = str(build_tiny_svd(Path(tmp), in_channels=9))
                print("model: tiny random SVD (Animate-Anything layout, 9 input channels)")
            cfg = SVDConfig(model=spec, frames=args.frames, steps=args.steps)
            cfg = dataclasses.replace(cfg, view_batch=args.view_batch)
            model = SVDModel.load(spec, cfg, device)
            ablation(args, model, *sample_inputs(args.size))
    fusion_alone(device)


if __name__ == "__main__":
    main()
