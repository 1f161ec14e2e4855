"""Lifting quality where the truth is known: a ray-traced room, centre and off-centre eyes.

The benchmark ray-traces a panorama and its exact depth (benchmarks/raytrace.py), lifts it
with a preset's settings (the depth given, as ``generate --depth`` does), and renders the
scene:

- from the centre at the input's angular resolution: ``psnr_native`` against the panorama;
- from eyes 0.1, 0.2 and 0.3 m off the centre, 60-degree views at half the input's
  angular resolution, against the ray-traced ground truth of the same eye (supersampled 3 x 3),
  over the pixels whose surface point the centre also sees (what a single panorama can
  know). The scene is rendered antialiased as the truth is (``render_antialiased``: these
  views are ~2.2 input pixels per pixel, so it takes 3 x 3 samples); the point-sampled
  render, which aliases on sub-pixel splats, is reported beside it;
- the same eyes as a VR headset shows them: 40-degree views at the headset's 18.3 px/deg
  (the input magnified 3.2x at 2048x1024), point-sampled as the viewer draws them, against
  a 2 x 2-supersampled truth, over the pixels the centre also sees; next to the same views
  from the centre against the truth (what the input's resolution allows at that
  magnification, with no parallax to get right);
- the no-parallax baseline: the panorama's own crop in the same view direction (as if the
  eye had not moved), scored the same way;
- what the centre does not see (disocclusions): the share of those pixels the scene leaves
  nearly empty (alpha < 0.5), with and without the background layers behind depth edges;
  their PSNR against the ground truth, and the 99th percentile of their chroma error (the
  largest channel error after each colour's grey level is taken out: a coloured fringe
  along a foreground edge shows there, a blur or a brightness error barely does), with the
  layers held as built or fitted with the rest (``LayerConfig.hold``).

Usage: python benchmarks/bench_parallax.py [--height 1024] [--preset standard] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import raytrace  # noqa: E402
from _common import machine  # noqa: E402

from engine.camera import View  # noqa: E402
from engine.config import build_config  # noqa: E402
from engine.gaussians import Gaussians  # noqa: E402
from engine.lift.evaluate import HEADSET_FOV, headset_views  # noqa: E402
from engine.lift.optimize import Lifter  # noqa: E402
from engine.lift.raster import render_antialiased, render_view  # noqa: E402
from engine.sphere import perspective_view  # noqa: E402

OFFSETS = (0.1, 0.2, 0.3)
DIRECTIONS = ((-30.0, -5.0), (25.0, 0.0), (120.0, -20.0), (-150.0, 10.0))  # yaw, pitch


def eyes(seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """Two eye positions per offset, in fixed random directions."""
    rng = np.random.default_rng(seed)
    out = []
    for r in OFFSETS:
        for _ in range(2):
            d = rng.normal(size=3)
            out.append((r, r * d / np.linalg.norm(d)))
    return out


def views_for(width: int, eye: np.ndarray) -> list[View]:
    """Four 60-degree views at half the input's angular resolution from ``eye``."""
    size = max(16, round(width * 60.0 / 360.0 / 2))
    pos = tuple(float(x) for x in eye)
    return [View(yaw, pitch, 60.0, size, size, position=pos) for yaw, pitch in DIRECTIONS]


def headset_views_for(width: int, eye: np.ndarray) -> list[View]:
    """The same four directions from ``eye`` in 40-degree views at a headset's angular
    resolution (the psnr_headset views' size)."""
    size = headset_views(width)[0].width
    pos = tuple(float(x) for x in eye)
    return [View(y, p, HEADSET_FOV, size, size, position=pos) for y, p in DIRECTIONS]


def psnr(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    se = sum(float(((a - b) ** 2)[m].sum()) for a, b, m in pairs)
    n = sum(int(m.sum()) * 3 for _, _, m in pairs)
    return 10 * math.log10(n / se) if se > 0 else float("inf")


def lift(
    pano: np.ndarray, depth: np.ndarray, preset: str, layers: bool, hold: bool = True
) -> tuple[Gaussians, dict]:
    cfg = build_config(preset).lift
    cfg = dataclasses.replace(
        cfg, layers=dataclasses.replace(cfg.layers, enabled=layers, hold=hold)
    )
    h, w = depth.shape
    out = Lifter(cfg).run(pano[None], depth[None], np.zeros((h, w), np.float32))
    return Gaussians.cat([out.static, out.dynamic[0]]), out.metrics


def _point_sampled(g: Gaussians, v: View) -> np.ndarray:
    """[h, w, 3] in [0, 1]: one sample per pixel, as the viewer draws."""
    with torch.no_grad():
        return render_view(g, v, background=torch.zeros(3)).rgb.clamp(0, 1).numpy()


def _no_parallax(img: torch.Tensor, v: View) -> np.ndarray:
    """[h, w, 3]: the panorama ``img`` [1, 3, H, W] cropped as ``v`` from the centre."""
    crop = perspective_view(img, dataclasses.replace(v, position=(0.0, 0.0, 0.0)))
    return crop[0].permute(1, 2, 0).numpy()


def measure(g: Gaussians, img: torch.Tensor, truth: list) -> dict:
    ours, point, base, holes, hidden, chroma = [], [], [], [], [], []
    width = img.shape[-1]
    for v, gt, seen in truth:
        with torch.no_grad():
            r = render_antialiased(g, v, width, background=torch.zeros(3))
        rgb = r.rgb.clamp(0, 1).numpy()
        point.append((_point_sampled(g, v), gt, seen))
        ours.append((rgb, gt, seen))
        base.append((_no_parallax(img, v), gt, seen))
        unseen = ~seen
        if unseen.any():
            holes.append((int((r.alpha.numpy()[unseen] < 0.5).sum()), int(unseen.sum())))
            hidden.append((rgb, gt, unseen))
            chroma.append(chroma_error(rgb, gt)[unseen])
    empty = sum(h for h, _ in holes) / max(1, sum(n for _, n in holes))
    return {
        "off_centre": psnr(ours),
        "off_centre_point_sampled": psnr(point),
        "no_parallax": psnr(base),
        "disoccluded_empty": empty,
        "disoccluded_psnr": psnr(hidden),
        "disoccluded_chroma_p99": float(np.percentile(np.concatenate(chroma), 99)),
    }


def measure_headset(g: Gaussians, img: torch.Tensor, truth: list, centre: list) -> dict:
    """PSNR in headset views against the truth, point-sampled as the viewer draws a
    magnified scene: off centre, the no-parallax baseline there, and from the centre."""
    return {
        "off_centre_headset": psnr([(_point_sampled(g, v), gt, s) for v, gt, s in truth]),
        "no_parallax_headset": psnr([(_no_parallax(img, v), gt, s) for v, gt, s in truth]),
        "centre_headset_truth": psnr([(_point_sampled(g, v), gt, s) for v, gt, s in centre]),
    }


def chroma_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[h, w] largest channel difference of two [h, w, 3] images after each pixel's grey
    level (channel mean) is taken out of both: how far the hue and saturation differ."""
    return np.abs((a - a.mean(-1, keepdims=True)) - (b - b.mean(-1, keepdims=True))).max(-1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=1024)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    pano, depth = raytrace.panorama(args.height, ss=3)
    img = torch.from_numpy(pano).permute(2, 0, 1)[None].float() / 255
    width = pano.shape[1]
    truth, truth_hs = [], []
    for _, eye in eyes():
        for v in views_for(width, eye):
            truth.append((v, *raytrace.view(v, ss=3)))
        for v in headset_views_for(width, eye):
            truth_hs.append((v, *raytrace.view(v, ss=2)))
    centre_hs = [(v, *raytrace.view(v, ss=2)) for v in headset_views_for(width, np.zeros(3))]
    print(
        f"ray traced {width}x{args.height} + {len(truth)} + {len(truth_hs)} headset views "
        f"in {time.time() - t0:.0f} s"
    )
    rows = {}
    for name, layers, hold in (
        ("layers", True, True),
        ("layers, fitted", True, False),
        ("no layers", False, True),
    ):
        t1 = time.time()
        g, metrics = lift(pano, depth, args.preset, layers, hold)
        res = measure(g, img, truth)
        res.update(measure_headset(g, img, truth_hs, centre_hs))
        res.update(
            psnr_native=metrics["psnr_native"],
            psnr_headset=metrics["psnr_headset"],
            gaussians=len(g),
            gaussians_per_input_pixel=metrics["gaussians_per_input_pixel"],
            background_layer=metrics["gaussians_background_layer"],
            lift_s=round(time.time() - t1, 1),
        )
        rows[name] = res
        print(json.dumps({"lift": name, **res}))
    half = max(16, round(width / 12))
    hs = truth_hs[0][0].width
    print(f"\n{machine()}; {width}x{args.height}, preset {args.preset}")
    print("| lift | Gaussians / px | centre psnr_native | off-centre (0.1-0.3 m), antialiased | "
          "point-sampled | no-parallax baseline | disoccluded pixels: left empty | "
          "PSNR | chroma error p99 | headset: centre psnr_headset | centre vs truth | "
          "off-centre | no parallax |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['gaussians_per_input_pixel']:.2f} | {r['psnr_native']:.2f} dB | "
            f"{r['off_centre']:.2f} dB | {r['off_centre_point_sampled']:.2f} dB | "
            f"{r['no_parallax']:.2f} dB | "
            f"{100 * r['disoccluded_empty']:.1f} % | {r['disoccluded_psnr']:.2f} dB | "
            f"{r['disoccluded_chroma_p99']:.3f} | {r['psnr_headset']:.2f} dB | "
            f"{r['centre_headset_truth']:.2f} dB | {r['off_centre_headset']:.2f} dB | "
            f"{r['no_parallax_headset']:.2f} dB |"
        )
    print(f"(off-centre views: 60 deg at {half}x{half} px, half the input's angular resolution;"
          f" headset views: {HEADSET_FOV:.0f} deg at {hs}x{hs} px, point-sampled)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
