"""Mutation testing of the core formulas: break one line, the suite must go red.

Each mutation below replaces one exact piece of code (it must occur exactly once in its
file, or the script stops: a stale entry is a bug of the list) in a temporary copy of the
project, runs the tests that guard it (pytest, stop at the first failure) and records
whether they failed (the mutation is *killed*) or passed (it *survived*: a missing test).

    python scripts/mutate.py                 # every mutation (about 15 minutes on 2 cores)
    python scripts/mutate.py --only eps2d    # those whose name contains "eps2d"
    python scripts/mutate.py --list          # names and what each breaks

Exit status: 0 when every mutation is killed, 1 when any survives, 2 for a stale entry.
The list is the project's own: add a line for every formula a test must guard.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file, relative to the project
    find: str  # exact text (once in the file)
    replace: str
    why: str  # what it breaks
    tests: tuple[str, ...]  # the tests that must fail


D, A, L = "tests/engine/test_denoiser.py", "tests/engine/test_align.py", "tests/engine/test_lift.py"
R, S, F = "tests/engine/test_raster.py", "tests/engine/test_sphere.py", "tests/engine/test_flow.py"
LOSS, REG = "tests/engine/test_losses.py", "tests/engine/test_regularizers.py"
SOLVE, CELLS = "tests/engine/test_solve.py", "tests/engine/test_cells.py"
SCENE, SVD, LOD = (
    "tests/engine/test_scene.py",
    "tests/engine/test_svd.py",
    "tests/viewer/test_lod.py",
)
SCHED, DISP = "tests/engine/test_schedulers.py", "tests/engine/test_disparity.py"
GREF = "tests/engine/test_raster_gsplat_ref.py"  # gsplat's own torch reference

MUTATIONS = [
    # --- the Panoramic Denoiser -------------------------------------------------------------
    Mutation(
        "sampler-step",
        "engine/animate/schedulers/base.py",
        "        return nxt.float() / a1, c * self.transfer(i)\n",
        "        return x0.float(), c * self.transfer(i)\n",
        "the sampler's update keeps no share of the current state",
        (D, SVD),
    ),
    Mutation(
        "noise-transfer",
        "engine/animate/schedulers/base.py",
        "        return float(self.noise[i + 1] / self.noise[i])\n",
        "        return 1.0\n",
        "the noise part keeps its first level instead of following the schedule",
        (D, SCHED),
    ),
    Mutation(
        "wan-velocity",
        "engine/animate/wan.py",
        "        x0 = x.float() - sigma * v.float()\n",
        "        x0 = x.float() + sigma * v.float()\n",
        "the flow model's x0 from its velocity has the wrong sign",
        ("tests/engine/test_wan.py",),
    ),
    Mutation(
        "sd3-velocity",
        "engine/text/sd3.py",
        "        return (x - sigma * v)[:, None]\n",
        "        return (x + sigma * v)[:, None]\n",
        "SD3's x0 from its velocity has the wrong sign",
        ("tests/engine/test_text_sd3.py",),
    ),
    Mutation(
        "sd3-dynamic-shift-tokens",
        "engine/text/sd3.py",
        "        tokens = (latent_hw[0] // self.patch) * (latent_hw[1] // self.patch)\n",
        "        tokens = latent_hw[0] * latent_hw[1]\n",
        "the dynamic shift counts latent pixels instead of patch tokens",
        ("tests/engine/test_text_sd3.py",),
    ),
    Mutation(
        "text-vae-shift",
        "engine/text/base.py",
        "            return (lat - self.shift) * self.scaling\n",
        "            return lat * self.scaling\n",
        "the SD3 VAE's latent shift is not removed before scaling",
        ("tests/engine/test_text_sd3.py",),
    ),
    Mutation(
        "text-guidance",
        "engine/text/base.py",
        "        return u + self.guidance * (c - u)\n",
        "        return c + self.guidance * (c - u)\n",
        "classifier-free guidance starts from the conditional output",
        ("tests/engine/test_text.py", "tests/engine/test_text_sd3.py"),
    ),
    Mutation(
        "sd-input-scaling",
        "engine/text/sd.py",
        "        inp = (x / (sigma * sigma + 1) ** 0.5).to(self.dtype)\n",
        "        inp = x.to(self.dtype)\n",
        "the UNet sees the unscaled k-diffusion sample",
        ("tests/engine/test_text.py",),
    ),
    Mutation(
        "flow-velocity-output",
        "engine/animate/schedulers/flow.py",
        "        return (sample - x0) / float(self.sigmas[i])\n",
        "        return (x0 - sample) / float(self.sigmas[i])\n",
        "x0 written as the opposite velocity for a flow scheduler",
        (SCHED, "tests/engine/test_wan.py"),
    ),
    Mutation(
        "noise-first-step-only",
        "engine/animate/denoiser.py",
        "            z = float(sampler.signal[i]) * sv.project(m) + c * noise\n",
        "            z = float(sampler.signal[i]) * sv.project(m) + (c * noise if i == start else 0.0)\n",
        "noise enters the views only at the first step",
        (D,),
    ),
    Mutation(
        "equirect-noise-first-step-only",
        "engine/animate/denoiser.py",
        "            x0 = self._denoise_views(float(sampler.signal[i]) * m[None] + k * noise, sampler, i)\n",
        "            x0 = self._denoise_views(float(sampler.signal[i]) * m[None] + (k * noise if i == p.start else 0.0), sampler, i)\n",
        "ordinary (equirect) sampling adds the noise only at the first step",
        (D, SVD),
    ),
    Mutation(
        "euler-v-output",
        "engine/animate/schedulers/euler.py",
        "            return (sample / (s * s + 1) - x0) * ((s * s + 1) ** 0.5 / s)\n",
        "            return (sample - x0) / s\n",
        "x0 written as epsilon for a v-prediction scheduler",
        (SCHED, SVD),
    ),
    Mutation(
        "flow-signal-scale",
        "engine/animate/schedulers/flow.py",
        "        return self.sigmas, 1 - self.sigmas\n",
        "        return self.sigmas, self.sigmas * 0 + 1\n",
        "flow matching's signal is not scaled by 1 - t",
        (D, SCHED),
    ),
    Mutation(
        "dpm-alpha",
        "engine/animate/schedulers/dpm.py",
        "        alpha = 1 / (self.sigmas**2 + 1).sqrt()  # the scheduler's sigmas are sigma_t / alpha_t\n",
        "        alpha = 1 / (self.sigmas**2 + 1)\n",
        "the variance-preserving signal scale",
        (SCHED,),
    ),
    Mutation(
        "fusion-unfeathered",
        "engine/animate/fusion.py",
        "                wgt = feather_weight(x, y, self.w, self.h, self.feather) * front\n",
        "                wgt = front.to(x.dtype) * ((x >= 0) & (x < self.w) & (y >= 0) & (y < self.h))\n",
        "eq. 3 fuses with flat weights instead of feathered ones",
        (D,),
    ),
    Mutation(
        "fusion-unnormalised",
        "engine/animate/fusion.py",
        "        self.plan_weight *= norm[self.plan_idx]\n",
        "        self.plan_weight *= 1.0\n",
        "eq. 3 sums the views instead of averaging them",
        (D,),
    ),
    Mutation(
        "noise-variance",
        "engine/animate/fusion.py",
        "        views = acc / cnt.clamp_min(1).sqrt()\n",
        "        views = acc / cnt.clamp_min(1)\n",
        "view noise is averaged (variance shrinks) instead of summed / sqrt(n)",
        (D,),
    ),
    Mutation(
        "resize-seam-clamped",
        "engine/animate/fusion.py",
        "    xp = torch.cat([x4[..., -pad:], x4, x4[..., :pad]], dim=-1)\n",
        "    xp = torch.cat([x4[..., :1].expand(-1, -1, -1, pad), x4, x4[..., -1:].expand(-1, -1, -1, pad)], dim=-1)\n",
        "the seam-wrapping resize clamps at the image border",
        (D, SVD),
    ),
    Mutation(
        "depth-resize-seam",
        "engine/io/masks.py",
        "        values, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP\n",
        "        values, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE\n",
        "enlarging a depth map or mask clamps at the seam instead of wrapping",
        ("tests/engine/test_io.py",),
    ),
    Mutation(
        "mask-not-preserved",
        "engine/animate/denoiser.py",
        "        m = src + mask * (m - src)\n",
        "        m = m + 0.0 * mask\n",
        "unmasked latents are no longer replaced by the source",
        (D, SVD),
    ),
    Mutation(
        "composite-unfeathered",
        "engine/animate/base.py",
        "        blended = base + wt * (frame - base)\n",
        "        blended = frame\n",
        "the decoded video replaces the input without the feathered weight",
        (SVD,),
    ),
    # --- the flow animator --------------------------------------------------------------------
    Mutation(
        "loop-crossfade",
        "engine/animate/flow.py",
        "                wgt = (1 - alpha) if sign < 0 else alpha\n",
        "                wgt = 0.5\n",
        "the loop's cross-fade weights are flat",
        (F,),
    ),
    # --- depth alignment (eq. 4) -----------------------------------------------------------
    Mutation(
        "disparity-shift-ignored",
        "engine/depth/disparity.py",
        "            rows = torch.stack([xs[i], us[i], -xj, -uj], -1).reshape(-1, 4)  # r = rows @ th\n",
        "            rows = torch.stack([xs[i], 0 * us[i], -xj, 0 * uj], -1).reshape(-1, 4)\n",
        "relative disparities are aligned by a scale only",
        (DISP,),
    ),
    Mutation(
        "disparity-planar",
        "engine/depth/disparity.py",
        "    return d / fac, 1.0 / fac, wt\n",
        "    return d, 1.0 + 0 * fac, wt\n",
        "disparity compared as inverse planar depth instead of inverse ray distance",
        (DISP,),
    ),
    Mutation(
        "eq4-data",
        "engine/depth/align.py",
        "        loss = cfg.lambda_depth * (ctx.wgt * _charbonnier(resid, cfg.charbonnier_eps)).sum()\n",
        "        loss = 0.0 * (ctx.wgt * _charbonnier(resid, cfg.charbonnier_eps)).sum()\n",
        "eq. 4 without its data term",
        (A,),
    ),
    Mutation(
        "eq4-shift-tv",
        "engine/depth/align.py",
        "        l_shift = _tv(st.beta)\n",
        "        l_shift = 0.0 * _tv(st.beta)\n",
        "eq. 4 without the TV of the shift",
        (A,),
    ),
    Mutation(
        "eq4-regularisers",
        "engine/depth/align.py",
        "        return loss + cfg.lambda_scale * l_scale + cfg.lambda_shift * l_shift\n",
        "        return loss\n",
        "eq. 4 without its scale and shift terms",
        (A,),
    ),
    Mutation(
        "eq4-temporal-scale",
        "engine/depth/align.py",
        "            l_scale = l_scale + (scale - ctx.prev.scale()).abs().mean()\n",
        "            l_scale = l_scale + 0.0\n",
        "eq. 4 without the temporal term of the scales",
        (A,),
    ),
    Mutation(
        "eq4-temporal-shift",
        "engine/depth/align.py",
        "            l_shift = l_shift + (st.beta - ctx.prev.beta).abs().mean()\n",
        "            l_shift = l_shift + 0.0\n",
        "eq. 4 without the temporal term of the shifts",
        (A,),
    ),
    Mutation(
        "eq4-lambda-scale",
        "engine/depth/align.py",
        "    lambda_scale: float = 0.1\n",
        "    lambda_scale: float = 1.0\n",
        "eq. 4's lambda_scale is not the paper's",
        (A,),
    ),
    # --- lifting losses (eq. 5-6) ------------------------------------------------------------
    Mutation(
        "rgb-loss-weights",
        "engine/lift/losses.py",
        "    return (1.0 - lambda_ssim) * l1(pred, target) + lambda_ssim * (1.0 - ssim(pred, target))\n",
        "    return l1(pred, target)\n",
        "L_rgb without its D-SSIM part",
        (LOSS,),
    ),
    Mutation(
        "ssim-c2",
        "engine/lift/losses.py",
        "SSIM_C2 = 0.03**2\n",
        "SSIM_C2 = 0.01**2\n",
        "SSIM's second constant",
        (LOSS,),
    ),
    Mutation(
        "temporal-refine",
        "engine/lift/refine.py",
        "        loss = loss + cfg.lambda_temporal * l1(render.rgb, step.previous)\n",
        "        loss = loss + 0.0 * l1(render.rgb, step.previous)\n",
        "the refinement's L_temporal (eq. 6) is off",
        (L,),
    ),
    Mutation(
        "headset-resolution",
        "engine/lift/evaluate.py",
        "    px_per_deg = min(HEADSET_PX_PER_DEG, MAX_ZOOM * width / 360.0)\n",
        "    px_per_deg = min(HEADSET_PX_PER_DEG, width / 360.0)\n",
        "psnr_headset measured at the input's own resolution, not magnified as in a headset",
        ("tests/engine/test_lift.py",),
    ),
    Mutation(
        "held-solve",
        "engine/lift/solve.py",
        "        r -= alpha * ap\n        if keep is not None:\n            r *= keep\n",
        "        r -= alpha * ap\n",
        "held colours drift in the colour solve (their residual feeds the search directions)",
        ("tests/engine/test_solve.py",),
    ),
    Mutation(
        "layer-hold-refine",
        "engine/lift/optimize.py",
        "        free = None if held is None else ~held\n",
        "        free = None\n",
        "the refinement fits the background layer from the centre (coloured fringes off it)",
        ("tests/engine/test_layers.py",),
    ),
    Mutation(
        "temporal-solve",
        "engine/lift/optimize.py",
        "    return (target + lam * previous) / (1 + lam)\n",
        "    return target\n",
        "the colour solve's L_temporal is off",
        (L,),
    ),
    Mutation(
        "geo-off",
        "engine/lift/regularizers.py",
        "            total = total + self.cfg.lambda_geo * self.geo(render, t, view, roi)\n",
        "            total = total + 0.0 * self.geo(render, t, view, roi)\n",
        "L_geo is off",
        (REG,),
    ),
    Mutation(
        "sem-off",
        "engine/lift/regularizers.py",
        "            total = total + self.cfg.lambda_sem * self.sem(g, view, radius)\n",
        "            total = total + 0.0 * self.sem(g, view, radius)\n",
        "L_sem is off",
        (REG,),
    ),
    Mutation(
        "sem-cosine",
        "engine/lift/regularizers.py",
        "        return 1.0 - F.cosine_similarity(ref, self.dino(other[None]), dim=-1).mean()\n",
        "        return (ref - self.dino(other[None])).abs().mean()\n",
        "L_sem is not 1 - cosine similarity of the CLS features",
        (REG,),
    ),
    Mutation(
        "pearson",
        "engine/lift/regularizers.py",
        "    return 1.0 - (xc * yc).sum() / denom\n",
        "    return 1.0 - (xc * yc).sum() / denom.clamp_min(1.0)\n",
        "Pearson's normalisation",
        (REG,),
    ),
    # --- the rasteriser ------------------------------------------------------------------------
    Mutation(
        "eps2d",
        "engine/lift/raster.py",
        "EPS2D = 0.3  #",
        "EPS2D = 0.0  #",
        "no low-pass filter on cov2d",
        (R,),
    ),
    Mutation(
        "alpha-clamp",
        "engine/lift/raster.py",
        "ALPHA_MAX = 0.999  #",
        "ALPHA_MAX = 1.0  #",
        "the alpha clamp",
        (R,),
    ),
    Mutation(
        "transmittance-stop",
        "engine/lift/raster.py",
        "T_MIN = 1e-4  #",
        "T_MIN = 0.0  #",
        "the transmittance stop",
        (R,),
    ),
    Mutation(
        "jacobian-clamp",
        "engine/lift/raster.py",
        "CLIP_FOV = 0.3  #",
        "CLIP_FOV = 0.0  #",
        "the EWA Jacobian is clamped at the image edge instead of 30 % beyond it",
        (GREF, R),
    ),
    Mutation(
        "quat-rotation",
        "engine/lift/raster.py",
        "        2 * (x * z + w * y),\n",
        "        2 * (x * z - w * y),\n",
        "one entry of the quaternion's rotation matrix has the wrong sign",
        (GREF, R),
    ),
    Mutation(
        "sh-degree-3",
        "engine/lift/sh.py",
        "C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),",
        "C3[3] * z * (2.0 * zz - 3.0 * xx - 2.0 * yy),",
        "one degree-3 spherical harmonic is the wrong polynomial",
        (GREF, R),
    ),
    # --- depth input ----------------------------------------------------------------------------
    Mutation(
        "depth-edge-anchor",
        "engine/io/depth.py",
        "k, at = np.ones((2, 2), np.uint8), (0, 0)",
        "k, at = np.ones((2, 2), np.uint8), (-1, -1)",
        "enlarged depth looks for edges one pixel off and blends across them",
        ("tests/engine/test_io.py",),
    ),
    Mutation(
        "depth-edge-seam",
        "engine/io/depth.py",
        "np.concatenate([a, a[:, :1]], 1)",
        "np.concatenate([a, a[:, -1:]], 1)",
        "enlarged depth blends across an edge that lies on the seam",
        ("tests/engine/test_io.py",),
    ),
    # --- sphere conventions ----------------------------------------------------------------------
    Mutation(
        "pixel-centre",
        "engine/sphere.py",
        "    lat = (0.5 - (r + 0.5) / height) * math.pi\n",
        "    lat = (0.5 - r / height) * math.pi\n",
        "equirect pixel centres at the corner instead of +0.5",
        (S,),
    ),
    # --- the lift ------------------------------------------------------------------------------
    Mutation(
        "order-offsets",
        "engine/lift/init.py",
        "    d = d * (1.0 + order_offsets(cells, cfg.order_step))\n",
        "    d = d\n",
        "no view-independent compositing order",
        (L,),
    ),
    Mutation(
        "fine-footprint",
        "engine/lift/init.py",
        "        fp = torch.where(cells.level == 0, cfg.fine_footprint, fp)  # not layers (-1)\n",
        "        fp = torch.where(cells.level <= 1, cfg.fine_footprint, fp)  # not layers (-1)\n",
        "the finest cells' own footprint reaches the merged and the background-layer cells",
        (L,),
    ),
    Mutation(
        "solid-angle",
        "engine/lift/solve.py",
        "    return (1.0 / (f * f * (1 + x[None, :] ** 2 + y[:, None] ** 2) ** 1.5)).reshape(-1).float()\n",
        "    return (1.0 / (f * f + 0.0 * x[None, :] + 0.0 * y[:, None])).reshape(-1).float()\n",
        "pixel weights without the solid angle",
        (SOLVE,),
    ),
    Mutation(
        "cg-step",
        "engine/lift/solve.py",
        "        p = z + (rz_next / rz.clamp_min(1e-30)) * p\n",
        "        p = z\n",
        "conjugate gradients become steepest descent",
        (SOLVE,),
    ),
    Mutation(
        "follow-depth-scales",
        "engine/lift/optimize.py",
        "        g, means=g.means * r[:, None], log_scales=g.log_scales + torch.log(r)[:, None]\n",
        "        g, means=g.means * r[:, None], log_scales=g.log_scales\n",
        "dynamic Gaussians move with the depth but keep their size",
        (L,),
    ),
    Mutation(
        "cells-forced-split",
        "engine/lift/cells.py",
        "        s = np.where(forced, np.inf, s)\n",
        "        s = s\n",
        "cells straddle depth edges and region borders",
        (CELLS,),
    ),
    Mutation(
        "delta-against-stored-base",
        "engine/splats/native.py",
        "        base = _stored(scene.dynamic[0], dtypes, FIELDS)\n",
        "        base = {n: t.detach().cpu().float() for n, t in scene.dynamic[0].tensors().items()}\n",
        "per-frame deltas against the unrounded base (the base's rounding adds to theirs)",
        (SCENE,),
    ),
    Mutation(
        "cull-margin",
        "viewer/sort.py",
        "    keep &= np.abs(cam[:, 0]) - z * tx <= r * np.float32(math.sqrt(1 + tx * tx))\n",
        "    keep &= np.abs(cam[:, 0]) - z * tx <= 0\n",
        "culling ignores the splats' radii",
        (LOD,),
    ),
    Mutation(
        "antialias-point-sampled",
        "engine/lift/raster.py",
        "        return x.reshape(h, s, w, s, *x.shape[2:]).mean((1, 3))\n",
        "        return x[::s, ::s]\n",
        "a coarse view takes one sample per pixel instead of the mean of its samples",
        (R,),
    ),
    Mutation(
        "cull-pre-test-bound",
        "engine/lift/raster.py",
        "    rx = EXTEND_MAX * fx * rz * s_max * (1 + tx * tx) ** 0.5 + pad\n",
        "    rx = EXTEND_MAX * fx * rz * s_max + pad\n",
        "the cheap pre-test ignores the Jacobian's growth off axis and drops visible Gaussians",
        (R,),
    ),
]


def copy_project(dst: Path) -> None:
    """The tracked and untracked-not-ignored files of the project, into ``dst``."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def apply(m: Mutation, root: Path) -> None:
    path = root / m.path
    text = path.read_text()
    if text.count(m.find) != 1:
        raise LookupError(
            f"{m.name}: the text to mutate occurs {text.count(m.find)} times in {m.path}"
        )
    path.write_text(text.replace(m.find, m.replace))


def run(m: Mutation, timeout: float) -> tuple[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"mutant-{m.name}-") as d:
        root = Path(d)
        copy_project(root)
        apply(m, root)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.monotonic() - t0
        status = "survived" if proc.returncode == 0 else "killed"
        if proc.returncode not in (0, 1):  # 2-5: collection errors, no tests: not a verdict
            status = f"error (pytest {proc.returncode})"
        return status, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[], help="run mutations whose name has this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(s in m.name for s in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {m.path:32} {m.why}")
        return 0
    for m in chosen:  # stale entries fail before anything runs
        if (ROOT / m.path).read_text().count(m.find) != 1:
            print(f"stale mutation {m.name}: its text is not exactly once in {m.path}")
            return 2
    survivors = []
    for m in chosen:
        status, secs = run(m, args.timeout)
        print(f"{m.name:28} {status:18} {secs:6.1f} s  {m.why}", flush=True)
        if status != "killed" and not status.startswith("killed"):
            survivors.append(m.name)
    print(
        f"\n{len(chosen) - len(survivors)}/{len(chosen)} killed; survivors: {survivors or 'none'}"
    )
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
