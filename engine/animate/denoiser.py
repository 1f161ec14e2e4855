"""The Panoramic Denoiser (4K4DGen section 3.3): an image-to-video diffusion model, trained on
perspective images, denoises a panoramic latent video on the sphere.

The state is an equirect latent video S (frames x channels x H x W, 1/8 of the panorama's
pixels). At **every** step of the scheduler, in every pass:

1. project S to every view of a view set (``gamma(S, d_k)``, batched, seam-wrapping);
2. have the model denoise every view with the view's own conditioning (its perspective crop
   of the panorama, its mask, its prompt), views batched ``view_batch`` at a time;
3. fuse the views' denoised estimates back on the sphere by the closed form of eq. 3
   (feathered per-view weights, seams wrap: :class:`engine.animate.fusion.SphereViews`);
4. step the scheduler once with the fused estimate.

Sampling is the model's own diffusers scheduler (:mod:`engine.animate.schedulers`: Euler,
flow matching, DPM-Solver++), stepped through its ``set_timesteps`` / ``step``. Its update is
affine in the sample and the denoised estimate x0, so the state splits exactly into a
signal part and a noise part, ``z_i = a_i m_i + c_i eps``, where eps is the initial noise.
We keep m on the sphere and give every view the same eps through
:meth:`SphereViews.white_noise`, which is unit-variance white Gaussian in every view
(test_denoiser checks it) - bilinear resampling of noise would shrink its variance at every
step and blur the result. What is fused on the sphere is the views' *denoised estimates*
x0_k (eq. 3's closed form applied to them, as SyncTweedies fuses Tweedie estimates), not the
stepped latents: the scheduler then steps the signal with ``fuse(x0_k)`` and the noise part
only changes its scalar coefficient. For SVD's Euler sampler this is
``m_{i+1} = r m_i + (1 - r) fuse(x0_k)`` with ``r = sigma_{i+1} / sigma_i``: the ``r m_i``
part is already on the sphere, so the state is never resampled (and blurred) 25 times.

Masks: outside the painted regions the signal is replaced by the source latent every step
(so z there is exactly the re-noised source), frame 0 is pinned to the source, and the
caller composites decoded frames with the feathered pixel mask, so static pixels stay
bit-identical to the input.

Two passes (as the 4K4DGen code): a low-resolution pass over the whole schedule with the
wide view set, then the result is decoded, upsampled, re-encoded at full resolution and
refined from an intermediate step with a denser set of narrower views matched to the full
resolution. Both passes fuse on the sphere at every step.

Memory per pass: the state and its source/consensus (3 x T x C x H x W latents), the views'
noisy inputs, denoised estimates and fixed noise (3 x V x T x C x h x w), and the fusion's
bounded temporaries (:mod:`engine.animate.fusion`: output + ~4 x T*C x view_chunk x largest
view footprint); the model sees ``view_batch`` views at a time. At 4K (latent 256 x 512,
14 frames, 20 + 54 views of 64 x 64 latents) that is well under 1 GB besides the model.

The model is anything with the :class:`ViewModel` methods; :mod:`engine.animate.svd` is the
diffusers Stable Video Diffusion / Animate-Anything backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import View
from ..progress import Progress
from ..sphere import (
    EquirectSampler,
    ViewSetConfig,
    make_views,
    matched_view_size,
    view_sample_coords,
)
from .fusion import SphereViews, resize_wrapped, ring_views
from .schedulers import Sampler, sampler_for

MODES = ("sphere", "independent", "equirect")


class ViewModel(Protocol):
    """A perspective image-to-video latent diffusion model, one step at a time."""

    latent_channels: int
    latent_scale: int  # panorama pixels per latent pixel (8 for SVD)
    size_multiple: int  # view sizes in pixels must be multiples of this
    device: torch.device
    dtype: torch.dtype

    scheduler: object  # the model's diffusers scheduler (a family of engine.animate.schedulers)

    def encode(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [-1, 1] (equirect, seam-wrapped) -> latents [B, C, h, w]."""

    def decode(self, latents: Tensor) -> Tensor:
        """latents [T, C, h, w] (one video, temporal context) -> [T, 3, H, W] in [-1, 1]."""

    def condition(
        self, crops: Tensor, masks: Tensor, frames: int, views: list[View] | None
    ) -> None:
        """Per-view conditioning for the coming steps: crops [V, 3, ph, pw] in [-1, 1],
            masks [V, 1, h, w] in [0, 1] (latent resolution), the views (pixels) they come from
            (None in equirect mode: one image, the whole panorama).

        Optional: ``source(image [3, H, W], frames) -> [T, C, h, w]``, the latent video of the
        still panorama (a video VAE that compresses time encodes it as a video; without it,
        every frame is ``encode(image)``), and ``reencode(video [T', 3, H, W]) -> [T, C, h, w]``
        for the refinement pass (without it, frames are encoded one by one), and
        ``schedule_kwargs((h, w)) -> dict``, more arguments of the scheduler's
        ``set_timesteps`` for inputs of h x w latents, the largest it sees (``mu`` for a flow
        model with dynamic shifting)."""

    def denoise(self, z: Tensor, sigma: float, timestep: Tensor, views: slice) -> Tensor:
        """z [n, T, C, h, w] noisy latents of views ``views`` -> denoised estimate x0;
        ``sigma`` and ``timestep`` are the scheduler's ``sigmas[i]`` and ``timesteps[i]``."""


@dataclass(frozen=True)
class DenoiserConfig:
    """Settings of the Panoramic Denoiser.

    views: the wide view set of the low-resolution (or only) pass; ``views.size`` is the
        largest view size in pixels (smaller panoramas get views matched to their resolution)
    refine_strength: fraction of the schedule re-run in the full-resolution pass
    mode: "sphere" (the Panoramic Denoiser), or the ablations of 4K4DGen Table 2:
        "independent" (each view denoised on its own, stitched once at the end) and
        "equirect" (the whole equirect latent denoised as one image)
    """

    steps: int = 25
    views: ViewSetConfig = field(default_factory=lambda: ViewSetConfig(size=512))
    feather: float = 0.15
    two_pass: bool = True
    lowres_factor: int = 2
    refine_strength: float = 0.4
    min_latent_rows: int = 8  # no low-resolution pass below this many latent rows
    view_batch: int = 4
    pin_first_frame: bool = True
    noise_oversample: int = 0  # 0 = automatic (SphereViews.oversample_for_views)
    mode: str = "sphere"
    seed: int = 0


@dataclass
class PassPlan:
    scale: int  # panorama pixels are divided by this
    views: list[View]  # in pixels
    start: int  # first step of the schedule


@dataclass
class StepStats:
    """Wall time of the steps: model calls vs. projection + fusion (seconds)."""

    model_s: float = 0.0
    fusion_s: float = 0.0
    steps: int = 0
    noise_unfilled: float = 0.0
    views: list[int] = field(default_factory=list)
    consistency: float = float("nan")  # see :func:`view_disagreement` (last pass)

    @property
    def fusion_share(self) -> float:
        total = self.model_s + self.fusion_s
        return self.fusion_s / total if total > 0 else 0.0


def _largest_view(passes: list[PassPlan], s: int) -> tuple[int, int]:
    """(h, w) in latents of the largest view of any pass."""
    sizes = [(v.height // s, v.width // s) for p in passes for v in p.views]
    return max(sizes, key=lambda hw: hw[0] * hw[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PanoramicDenoiser:
    """``run(image, weight, frames, progress)`` -> the clean equirect latent video."""

    def __init__(self, model: ViewModel, cfg: DenoiserConfig = DenoiserConfig()) -> None:
        if cfg.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {cfg.mode!r}")
        self.model, self.cfg = model, cfg
        self.stats = StepStats()

    # -- planning --------------------------------------------------------------------------

    def _view_size(self, width_px: int, fov_deg: float) -> int:
        mult = self.model.size_multiple
        size = min(self.cfg.views.size, matched_view_size(width_px, fov_deg))
        return max(mult, size // mult * mult)

    def plan(self, height: int, width: int) -> list[PassPlan]:
        """The passes for an H x W panorama (pixels)."""
        cfg = self.cfg
        s = self.model.latent_scale
        low = cfg.lowres_factor
        two = cfg.two_pass and low > 1 and height // s // low >= cfg.min_latent_rows
        fov = cfg.views.fov_deg
        first_w = width // low if two else width
        size = self._view_size(first_w, fov)
        passes = [PassPlan(low if two else 1, make_views(_with(cfg.views, size)), 0)]
        if two:
            start = min(cfg.steps - 1, round(cfg.steps * (1 - cfg.refine_strength)))
            # narrower views so the full resolution is not lost to view resampling
            fine = math.degrees(2 * math.atan(cfg.views.size * math.pi / width))
            if fine < fov:
                views = ring_views(fine, self._view_size(width, fine))
            else:
                views = make_views(_with(cfg.views, self._view_size(width, fov)))
            passes.append(PassPlan(1, views, start))
        return passes

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self, image: Tensor, weight: Tensor, frames: int, progress: Progress | None = None
    ) -> Tensor:
        """Denoise a panoramic latent video conditioned on ``image``.

        image: Tensor  # [3, H, W] panorama in [-1, 1] (H, W multiples of the latent scale)
        weight: Tensor  # [H, W] in [0, 1]: where the video may differ from the image
        returns: Tensor  # [T, C, H / s, W / s] clean latents (s = model.latent_scale)
        """
        progress = progress or Progress("animate")
        cfg, model = self.cfg, self.model
        h, w = image.shape[-2:]
        s = model.latent_scale
        if h % s or w % s:
            raise ValueError(f"panorama size {w}x{h} is not a multiple of {s}")
        passes = self.plan(h, w) if cfg.mode == "sphere" else [self.plan(h, w)[0]]
        extra = {}
        if hasattr(model, "schedule_kwargs"):  # sized by what the model sees at once
            seen = (h // s, w // s) if cfg.mode == "equirect" else _largest_view(passes, s)
            extra = model.schedule_kwargs(seen)
        sampler = sampler_for(model.scheduler, cfg.steps, **extra)
        total = sum(cfg.steps - p.start for p in passes)
        done = 0
        gen = torch.Generator(model.device).manual_seed(cfg.seed)
        m = None
        for k, p in enumerate(passes):
            if m is not None:  # refine: decode, upsample, re-encode at this resolution
                up = progress.sub(done / total, done / total)  # no schedule share: a moment
                m = self._upsample(m, p.scale, (h // p.scale, w // p.scale), up)
            pimg = _downscale(image, p.scale)
            pw = _downscale(weight[None], p.scale)[0]
            src = self._source(pimg, frames)  # [T, C, h, w]
            mask = latent_mask(pw, s).to(model.device)
            sub = progress.sub(done / total, (done + cfg.steps - p.start) / total)
            label = f"pass {k + 1}/{len(passes)}"
            m = self._pass(p, pimg, src, mask, frames, m, sampler, gen, sub, label)
            done += cfg.steps - p.start
        return m

    def _pass(self, p, pimg, src, mask, frames, m, sampler, gen, progress, label):
        cfg, model = self.cfg, self.model
        c, lh, lw = src.shape[1:]
        s = model.latent_scale
        if cfg.mode == "equirect":
            return self._pass_equirect(p, pimg, src, mask, frames, m, sampler, gen, progress)
        lviews = [_latent_view(v, s) for v in p.views]
        sv = SphereViews(lviews, lh, lw, feather=cfg.feather, device=model.device)
        self.stats.views.append(len(lviews))
        crops = sv_crops(pimg.to(model.device), p.views)
        model.condition(crops, sv.project(mask[None, None])[:, 0], frames, p.views)
        _, noise, unfilled = sv.white_noise(frames * c, gen, cfg.noise_oversample)  # [V, ...]
        self.stats.noise_unfilled = max(self.stats.noise_unfilled, unfilled)
        noise = noise.reshape(len(lviews), frames, c, sv.h, sv.w)
        if m is None:
            m = torch.zeros(frames, c, lh, lw, device=model.device)
        args = (sv, m, src, mask, noise, sampler, p.start, progress)
        if cfg.mode == "independent":
            return self._pass_independent(*args)
        return self._pass_sphere(*args, label)

    def _pass_sphere(self, sv, m, src, mask, noise, sampler, start, progress, label):
        """The Panoramic Denoiser's steps: project, one step per view, fuse (eq. 3)."""
        model = self.model
        n = sampler.steps
        c = sampler.begin(start)
        for i in range(start, n):
            progress.cancel.check()
            m = self._constrain(m, src, mask)
            t0 = time.perf_counter()
            z = float(sampler.signal[i]) * sv.project(m) + c * noise
            _sync(model.device)
            t1 = time.perf_counter()
            x0 = self._denoise_views(z, sampler, i)
            _sync(model.device)
            t2 = time.perf_counter()
            fused = sv.fuse(x0, fill=m)
            m, c = sampler.advance(m, fused, c, i)
            _sync(model.device)
            t3 = time.perf_counter()
            if i == n - 1:
                self.stats.consistency = view_disagreement(sv, x0, fused, mask)
            self.stats.model_s += t2 - t1
            self.stats.fusion_s += (t1 - t0) + (t3 - t2)
            self.stats.steps += 1
            progress.update((i + 1 - start) / (n - start), f"{label}, step {i + 1}/{n}")
        return self._constrain(m, src, mask)

    def _denoise_views(self, z: Tensor, sampler: Sampler, i: int) -> Tensor:
        """z [V, T, C, h, w] at step i -> x0 [V, T, C, h, w], ``view_batch`` views per call."""
        sigma, timestep = float(sampler.sigmas[i]), sampler.timesteps[i]
        out = []
        b = max(1, self.cfg.view_batch)
        for s in range(0, len(z), b):
            zz = z[s : s + b].to(self.model.dtype)
            out.append(self.model.denoise(zz, sigma, timestep, slice(s, s + len(zz))).float())
        return torch.cat(out)

    def _source(self, image: Tensor, frames: int) -> Tensor:
        """The latent video of the still panorama: [T, C, h, w]."""
        model = self.model
        img = image.to(model.device, model.dtype)
        if hasattr(model, "source"):
            return model.source(img, frames).float()
        return model.encode(img[None]).float().expand(frames, -1, -1, -1)

    def _constrain(self, m: Tensor, src: Tensor, mask: Tensor) -> Tensor:
        """Unmasked latents = the source latents [T, C, h, w]; frame 0 pinned to them."""
        m = src + mask * (m - src)
        if self.cfg.pin_first_frame:
            m = m.clone()
            m[0] = src[0]
        return m

    def _upsample(self, m: Tensor, scale: int, size: tuple[int, int], progress: Progress) -> Tensor:
        """Decode the low-resolution latent video, resize the frames to ``size`` (seam
        wrapped) and encode them again: the start of the refinement pass."""
        model = self.model
        progress.update(0.0, "upsampling the low-resolution pass: decoding")
        frames = model.decode(m.to(model.dtype)).float()  # [T, 3, h, w]
        up = resize_wrapped(frames, size).clamp(-1, 1)
        if hasattr(model, "reencode"):
            progress.update(0.5, "upsampling the low-resolution pass: encoding")
            return model.reencode(up.to(model.dtype)).float()
        out = []
        for t, f in enumerate(up):
            progress.update(
                t / len(up), f"upsampling the low-resolution pass: frame {t + 1}/{len(up)}"
            )
            out.append(model.encode(f[None].to(model.dtype)).float())
        return torch.cat(out)

    # -- ablations (4K4DGen Table 2) --------------------------------------------------------

    def _pass_independent(self, sv, m, src, mask, noise, sampler, start, progress):
        """Each view runs its own full denoising with no fusion; stitched once at the end."""
        zv = sv.project(self._constrain(m, src, mask))  # [V, T, C, h, w] signal per view
        srcv = sv.project(src)  # [V, T, C, h, w]
        maskv = sv.project(mask[None, None])  # [V, 1, 1, h, w]
        n = sampler.steps
        c = sampler.begin(start)
        for i in range(start, n):
            progress.cancel.check()
            mv = srcv + maskv * (zv - srcv)
            if self.cfg.pin_first_frame:
                mv[:, 0] = srcv[:, 0]
            t1 = time.perf_counter()
            x0 = self._denoise_views(float(sampler.signal[i]) * mv + c * noise, sampler, i)
            self.stats.model_s += time.perf_counter() - t1
            zv, c = sampler.advance(mv, x0, c, i)
            self.stats.steps += 1
            progress.update((i + 1 - start) / (n - start), f"independent views, step {i + 1}/{n}")
        t0 = time.perf_counter()
        fused = sv.fuse(zv, fill=m)
        self.stats.fusion_s += time.perf_counter() - t0
        self.stats.consistency = view_disagreement(sv, zv, fused, mask)
        return self._constrain(fused, src, mask)

    def _pass_equirect(self, p, pimg, src, mask, frames, m, sampler, gen, progress):
        """The whole equirect latent denoised as one (squashed) image: ordinary sampling,
        the same as the model's own diffusers pipeline when nothing is masked."""
        model = self.model
        c, lh, lw = src.shape[1:]
        model.condition(pimg[None].to(model.device), mask[None, None], frames, None)
        noise = torch.randn(1, frames, c, lh, lw, generator=gen, device=model.device)
        if m is None:
            m = torch.zeros(frames, c, lh, lw, device=model.device)
        n = sampler.steps
        k = sampler.begin(p.start)
        for i in range(p.start, n):
            progress.cancel.check()
            m = self._constrain(m, src, mask)
            t1 = time.perf_counter()
            x0 = self._denoise_views(float(sampler.signal[i]) * m[None] + k * noise, sampler, i)
            self.stats.model_s += time.perf_counter() - t1
            m, k = sampler.advance(m, x0[0], k, i)
            self.stats.steps += 1
            progress.update((i + 1 - p.start) / (n - p.start), f"equirect, step {i + 1}/{n}")
        self.stats.views.append(1)
        return self._constrain(m, src, mask)


def view_disagreement(sv: SphereViews, outs: Tensor, fused: Tensor, mask: Tensor) -> float:
    """How much the views' own outputs differ from the consensus fused from all of them:
    mean |outs_k - gamma(fused, d_k)| over the animated pixels of every view (the
    view-consistency error of the ablation; 0 when overlapping views agree exactly).

    outs: Tensor  # [V, T, C, h, w];  fused: Tensor  # [T, C, H, W];  mask: Tensor  # [H, W]
    """
    maskv = sv.project(mask[None, None].float())[:, 0]  # [V, 1, h, w]
    diff = (outs - sv.project(fused)).abs().mean(dim=(1, 2))  # [V, h, w]
    wt = maskv[:, 0]
    return float((diff * wt).sum() / wt.sum().clamp_min(1e-12))


def _with(cfg: ViewSetConfig, size: int) -> ViewSetConfig:
    return ViewSetConfig(cfg.rings, cfg.poles, cfg.fov_deg, size)


def _latent_view(v: View, scale: int) -> View:
    return View(v.yaw_deg, v.pitch_deg, v.fov_deg, v.height // scale, v.width // scale, v.roll_deg)


def _downscale(image: Tensor, factor: int) -> Tensor:
    """[C, H, W] -> [C, H / f, W / f] by area averaging (f = 1: unchanged)."""
    if factor == 1:
        return image
    return F.avg_pool2d(image[None], factor)[0]


def latent_mask(weight: Tensor, scale: int) -> Tensor:
    """[H, W] pixel weight -> [h, w] latent mask in [0, 1]: the largest weight in each latent
    pixel, dilated by one latent pixel (columns wrap) so decoded edges can move."""
    m = F.max_pool2d(weight[None, None].float(), scale)
    wrapped = torch.cat([m[..., -1:], m, m[..., :1]], dim=-1)
    return F.max_pool2d(wrapped, 3, stride=1, padding=(1, 0))[0, 0]


def sv_crops(image: Tensor, views: list[View]) -> Tensor:
    """Perspective crops of a [3, H, W] panorama for ``views`` (pixels): [V, 3, h, w]."""
    sampler = EquirectSampler(image[None].float(), mode="bicubic")
    out = [
        sampler(*[t.to(image.device) for t in view_sample_coords(v, *image.shape[-2:])])[0]
        for v in views
    ]
    return torch.stack(out).clamp(-1, 1)


__all__ = [
    "DenoiserConfig",
    "PanoramicDenoiser",
    "StepStats",
    "ViewModel",
    "latent_mask",
    "view_disagreement",
]
