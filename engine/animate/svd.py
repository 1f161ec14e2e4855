"""The ``svd`` animator: Stable Video Diffusion (or its mask-conditioned fine-tune
Animate-Anything) under the Panoramic Denoiser (:mod:`engine.animate.denoiser`).

Weights are a diffusers pipeline folder (``model_index.json`` plus ``unet/``, ``vae/``,
``image_encoder/``, ``feature_extractor/``, ``scheduler/``) named by ``SVDConfig.model``: a
local folder or a hub id already in the Hugging Face cache (:mod:`engine.hub`; nothing is
downloaded; ``HF_HUB_OFFLINE`` is respected). Components load with
``from_pretrained(folder, subfolder=..., local_files_only=hub.offline())``: fp16 on CUDA,
fp32 on the CPU. diffusers and transformers are imported only when a model loads.

Per view the conditioning is that view's perspective crop: its CLIP image embedding (cross
attention) and its VAE latent (concatenated to the noisy latent, after SVD's noise
augmentation), never one squashed panorama embedding. A UNet with 2C + 1 input channels
(Animate-Anything's layout: noisy latent, image latent, motion mask) gets the view's latent
mask as the last channel. Motion strength (``motion_bucket_id``, ``fps_id``) and the
per-frame classifier-free guidance ramp (``min_guidance`` -> ``max_guidance``) are settings.
Latents are decoded with the temporal VAE decoder ``decode_chunk`` frames at a time (temporal
context inside a chunk), in column tiles that wrap across the seam; never through GIF/PIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import hub
from ..devices import pick_device
from ..errors import LOAD_ERRORS, InputError, first_line
from ..io import Panorama, Region
from ..progress import Progress
from ..sphere import ViewSetConfig
from .base import PanoVideo, composite, finish_model_video, start_model_video
from .denoiser import DenoiserConfig, PanoramicDenoiser
from .schedulers.euler import k_diffusion_x0
from .tiling import tiled_columns

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"
MARKER = "model_index.json"
COMPONENTS = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")
FALLBACK = "the weightless fallback is --animator flow"


@dataclass(frozen=True)
class SVDConfig:
    """Settings of the ``svd`` animator (defaults: SVD-XT's own)."""

    model: str = DEFAULT_MODEL  # local folder or hub id (in the local HF cache)
    frames: int = 14
    video_fps: float = 8.0  # playback rate of the result
    fps_id: int = 7  # SVD's fps micro-conditioning (the pipeline passes fps - 1)
    motion_bucket_id: int = 127  # higher = more motion
    noise_aug_strength: float = 0.02
    min_guidance: float = 1.0  # classifier-free guidance, ramped over the frames
    max_guidance: float = 3.0
    steps: int = 25
    view_size: int = 512  # largest view size in pixels
    fov_deg: float = 90.0
    rings: tuple[tuple[float, int, float], ...] = ViewSetConfig().rings  # + the two poles
    two_pass: bool = True
    refine_strength: float = 0.4
    view_batch: int = 2
    decode_chunk: int = 8  # frames decoded together (temporal context)
    tile_px: int = 512  # VAE encode/decode in column tiles of this many pixels
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0

    def denoiser(self) -> DenoiserConfig:
        return DenoiserConfig(
            steps=self.steps,
            views=ViewSetConfig(rings=self.rings, fov_deg=self.fov_deg, size=self.view_size),
            two_pass=self.two_pass,
            refine_strength=self.refine_strength,
            view_batch=self.view_batch,
            seed=self.seed,
        )


def probe(model: str = DEFAULT_MODEL) -> hub.ModelProbe:
    """Are the weights of ``model`` here? (The app greys out the choice when not.)"""
    found = hub.locate(model, MARKER)
    if found.path is None:
        return found
    missing = [c for c in COMPONENTS if not (found.path / c).is_dir()]
    if missing:
        return hub.ModelProbe(model, None, f"{found.path} lacks {', '.join(missing)}/")
    for sub, want in _CLASSES.items():
        got = hub.json_field(found.path / sub / "config.json", "_class_name")
        if got != want:
            why = f"its {sub} is {got or 'unreadable'}, not {want}"
            return hub.ModelProbe(model, None, f"{found.path} is not a video model: {why}")
    return found


# the component classes of an SVD / Animate-Anything pipeline folder
_CLASSES = {
    "unet": "UNetSpatioTemporalConditionModel",
    "vae": "AutoencoderKLTemporalDecoder",
}


def require(model: str) -> Path:
    """The weights folder, or an InputError naming where we looked and the fallback."""
    p = probe(model)
    if p.path is None:
        raise InputError(f"no video model weights: {p.reason}; {FALLBACK}")
    return p.path


def load_components(path: Path, device: torch.device) -> dict:
    """unet, vae, image_encoder, feature_extractor, scheduler from a pipeline folder."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    local = hub.offline()
    kw = {"local_files_only": local}
    try:
        with hub.quiet_dtype_notice():
            unet = UNetSpatioTemporalConditionModel.from_pretrained(
                path, subfolder="unet", torch_dtype=dtype, **kw
            )
        vae = AutoencoderKLTemporalDecoder.from_pretrained(path, subfolder="vae", **kw)
        if not vae.config.get("force_upcast", False):  # SVD's VAE asks for fp32
            vae = vae.to(dtype)
        enc = CLIPVisionModelWithProjection.from_pretrained(
            path, subfolder="image_encoder", dtype=dtype, **kw
        )
        fe = CLIPImageProcessor.from_pretrained(path, subfolder="feature_extractor", **kw)
        sched = EulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler", **kw)
    except LOAD_ERRORS as e:  # incl. bad configs
        first = first_line(e)
        raise InputError(f"cannot load the video model from {path}: {first}; {FALLBACK}") from e
    for m in (unet, vae, enc):
        m.to(device).eval().requires_grad_(False)
    return {
        "unet": unet,
        "vae": vae,
        "image_encoder": enc,
        "feature_extractor": fe,
        "scheduler": sched,
        "dtype": dtype,
    }


class SVDModel:
    """:class:`engine.animate.denoiser.ViewModel` over diffusers SVD components."""

    def __init__(self, parts: dict, cfg: SVDConfig, device: torch.device) -> None:
        self.unet, self.vae = parts["unet"], parts["vae"]
        self.encoder, self.processor = parts["image_encoder"], parts["feature_extractor"]
        self.scheduler = parts["scheduler"]
        self.dtype, self.device, self.cfg = parts["dtype"], device, cfg
        self.latent_channels = int(self.vae.config.latent_channels)
        self.latent_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        downs = len(self.unet.config.down_block_types)
        self.size_multiple = self.latent_scale * 2 ** (downs - 1)
        in_ch = int(self.unet.config.in_channels)
        c = self.latent_channels
        if in_ch not in (2 * c, 2 * c + 1):
            raise InputError(
                f"the UNet takes {in_ch} input channels; expected {2 * c} (SVD) or "
                f"{2 * c + 1} (Animate-Anything: with a mask channel)"
            )
        self.mask_channel = in_ch == 2 * c + 1
        self.scaling = float(self.vae.config.scaling_factor)
        self.gen = torch.Generator(device).manual_seed(cfg.seed + 1)

    @classmethod
    def load(cls, model: str, cfg: SVDConfig, device: torch.device) -> SVDModel:
        return cls(load_components(require(model), device), cfg, device)

    # -- conditioning and one step ------------------------------------------------------

    def condition(self, crops: Tensor, masks: Tensor, frames: int, views=None) -> None:
        """crops [V, 3, ph, pw] in [-1, 1]; masks [V, 1, h, w] latent-resolution mask."""
        self.frames = frames
        b = max(1, self.cfg.view_batch)
        emb, lat = [], []
        with torch.no_grad():
            for s in range(0, len(crops), b):
                x = crops[s : s + b].to(self.device, torch.float32)
                emb.append(self._clip(x))
                noisy = x + self.cfg.noise_aug_strength * torch.randn(
                    x.shape, generator=self.gen, device=self.device
                )
                lat.append(self._vae_encode(noisy, scaled=False))
        self.emb = torch.cat(emb)  # [V, 1, D]
        self.img_lat = torch.cat(lat)  # [V, C, h, w]
        if self.img_lat.shape[-2:] != masks.shape[-2:]:
            raise ValueError("view latents and masks disagree in size")
        self.masks = masks.to(self.device, self.dtype)
        ids = [self.cfg.fps_id - 1, self.cfg.motion_bucket_id, self.cfg.noise_aug_strength]
        self.time_ids = torch.tensor([ids], dtype=self.dtype, device=self.device)
        g = torch.linspace(self.cfg.min_guidance, self.cfg.max_guidance, frames)
        self.guidance = g.to(self.device, torch.float32)[None, :, None, None, None]

    def _clip(self, x: Tensor) -> Tensor:
        """[n, 3, h, w] in [-1, 1] -> CLIP image embeddings [n, 1, D]."""
        size = int((getattr(self.processor, "crop_size", None) or {}).get("height", 224))
        img = F.interpolate(
            (x + 1) / 2, size=(size, size), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0, 1)
        mean = torch.tensor(self.processor.image_mean, device=self.device)[None, :, None, None]
        std = torch.tensor(self.processor.image_std, device=self.device)[None, :, None, None]
        pix = ((img - mean) / std).to(self.dtype)
        return self.encoder(pix).image_embeds[:, None]

    @torch.no_grad()
    def denoise(self, z: Tensor, sigma: float, timestep: Tensor, views: slice) -> Tensor:
        """z [n, T, C, h, w] -> x0 (EDM / Euler preconditioning, SVD's v-prediction)."""
        t = z.shape[1]
        lat = self.img_lat[views][:, None].expand(-1, t, -1, -1, -1).to(self.dtype)
        parts = [z.to(self.dtype) / math.sqrt(sigma * sigma + 1), lat]
        if self.mask_channel:
            parts.append(self.masks[views][:, None].expand(-1, t, -1, -1, -1))
        cond = torch.cat(parts, dim=2)
        emb = self.emb[views]
        cfg_on = self.cfg.max_guidance > 1 or self.cfg.min_guidance > 1
        if cfg_on:  # unconditional half: no image latent, no embedding (as the pipeline)
            parts[1] = torch.zeros_like(lat)
            cond = torch.cat([torch.cat(parts, dim=2), cond])
            emb = torch.cat([torch.zeros_like(emb), emb])
        ts = timestep.to(self.device, self.dtype).reshape(1).expand(len(cond))
        out = self.unet(
            cond,
            ts,
            encoder_hidden_states=emb,
            added_time_ids=self.time_ids.expand(len(cond), -1),
            return_dict=False,
        )[0].float()
        if cfg_on:
            u, c = out.chunk(2)
            out = u + self.guidance * (c - u)
        return self._x0(z.float(), out, sigma)

    def _x0(self, z: Tensor, out: Tensor, sigma: float) -> Tensor:
        return k_diffusion_x0(z, out, sigma, self.scheduler.config.prediction_type)

    # -- VAE ------------------------------------------------------------------------------

    def _vae_encode(self, x: Tensor, scaled: bool = True) -> Tensor:
        lat = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode().float()
        return lat * self.scaling if scaled else lat

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] equirect in [-1, 1] -> scaled latents [B, C, H/8, W/8]; column
        tiles with seam-wrapped context."""
        s = self.latent_scale
        return tiled_columns(lambda x: self._vae_encode(x), images, self.cfg.tile_px, 8 * s, s)

    @torch.no_grad()
    def decode(self, latents: Tensor, progress: Progress | None = None) -> Tensor:
        """[T, C, h, w] -> [T, 3, 8h, 8w] in [-1, 1]; ``decode_chunk`` frames together
        (reporting to ``progress`` after each chunk)."""
        s, chunk = self.latent_scale, max(1, self.cfg.decode_chunk)
        out = []
        for f0 in range(0, len(latents), chunk):
            z = latents[f0 : f0 + chunk].to(self.device)

            def dec(x: Tensor) -> Tensor:
                z = x.to(self.vae.dtype) / self.scaling
                y = self.vae.decode(z, num_frames=len(x))
                return y.sample.float()

            done = min(len(latents), f0 + chunk)

            def tile(k: int, n: int, f0: int = f0, done: int = done) -> None:
                if progress is not None:
                    part = (f0 + (done - f0) * k / n) / len(latents)
                    progress.update(part, f"decoding frames {f0 + 1}-{done}, tile {k}/{n}")

            out.append(tiled_columns(dec, z, self.cfg.tile_px // s, 8, 1 / s, tile).clamp(-1, 1))
        return torch.cat(out)


class SVDAnimator:
    """``run(pano, regions, progress, out)`` -> :class:`PanoVideo` (the animator interface)."""

    name = "svd"

    def __init__(self, cfg: SVDConfig = SVDConfig()) -> None:
        if cfg.frames < 2:
            raise InputError(f"the svd animator needs at least 2 frames, got {cfg.frames}")
        if cfg.steps < 1:
            raise InputError(f"the svd animator needs at least 1 step, got {cfg.steps}")
        self.cfg = cfg
        self.stats = None

    def run(
        self,
        pano: Panorama,
        regions: list[Region],
        progress: Progress | None = None,
        out: np.ndarray | None = None,
    ) -> PanoVideo:
        progress = progress or Progress("animate")
        cfg = self.cfg
        _, union, out = start_model_video(pano, regions, cfg.frames, out)
        if not (union > 0).any():
            progress.update(1.0, "nothing to animate")
            return PanoVideo(out, cfg.video_fps, union)
        device = pick_device(cfg.device)
        progress.update(0.0, "loading the video model")
        model = SVDModel.load(cfg.model, cfg, device)
        den = PanoramicDenoiser(model, cfg.denoiser())
        image, weight = _work_size(pano.rgb, union, model.size_multiple)
        latents = den.run(image, weight, cfg.frames, progress.sub(0.02, 0.9))
        self.stats = den.stats
        progress.update(0.9, "decoding frames")
        video = model.decode(latents, progress.sub(0.9, 0.97))  # [T, 3, H', W']
        del model, den  # free the UNet, VAE and CLIP (and their GPU memory) before compositing
        finish_model_video(pano, union, video, out, device, progress.sub(0.97, 1.0))
        return PanoVideo(out, cfg.video_fps, union)


def _work_size(rgb: np.ndarray, union: np.ndarray, multiple: int) -> tuple[Tensor, Tensor]:
    """The panorama in [-1, 1] and its weight at a size the model accepts (H a multiple of
    2 x ``multiple``, W = 2H; unchanged when already so): ([3, H', W'], [H', W'])."""
    h = rgb.shape[0]
    step = 2 * multiple
    hh = max(step, round(h / step) * step)
    img = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1
    wt = torch.from_numpy(union)
    if hh != h:
        img = F.interpolate(img[None], size=(hh, 2 * hh), mode="area")[0]
        wt = F.interpolate(wt[None, None], size=(hh, 2 * hh), mode="area")[0, 0]
    return img, wt


__all__ = ["SVDAnimator", "SVDConfig", "SVDModel", "composite", "load_components", "probe"]
