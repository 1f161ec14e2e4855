"""The Stable Diffusion family as a text-to-image model on the sphere: a
:class:`engine.animate.denoiser.ViewModel` of one frame whose views are conditioned on the
prompt alone.

Weights are a diffusers ``StableDiffusionPipeline`` folder (``unet/``
UNet2DConditionModel, ``vae/`` AutoencoderKL, ``text_encoder/`` CLIPTextModel,
``tokenizer/`` CLIPTokenizer, ``scheduler/``), loaded with ``from_pretrained`` (fp16 on
CUDA, fp32 on the CPU); a LoRA folder (e.g. a panorama LoRA) may be loaded on top with the
pipeline's own ``load_lora_weights``. Prompts are encoded by the pipeline's
``encode_prompt``. Sampling uses the folder's scheduler when the sphere sampler drives it
(Euler); any other SD scheduler (PNDM, DDIM, ...) is replaced by
``EulerDiscreteScheduler.from_config`` of the same config, and the run says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .. import hub
from ..animate.schedulers.euler import k_diffusion_x0
from ..animate.tiling import tiled_columns
from ..errors import InputError

PIPELINES = ("StableDiffusionPipeline",)


def load_pipeline(path: Path, device: torch.device, lora: str | None = None):
    """(pipeline, dtype, note) from a StableDiffusionPipeline folder."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    kw = {"local_files_only": hub.offline()}
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            path, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False, **kw
        )
        if lora:
            pipe.load_lora_weights(lora, **kw)
    except (OSError, ValueError, TypeError, RuntimeError, KeyError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load the text-to-image model from {path}: {first}") from e
    note = ""
    if type(pipe.scheduler).__name__ != "EulerDiscreteScheduler":
        note = f"{type(pipe.scheduler).__name__} replaced by EulerDiscreteScheduler (same config)"
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        m.to(device).eval().requires_grad_(False)
    return pipe, dtype, note


class SDModel:
    """Text-to-image on the sphere: every view sees the same prompt; one frame."""

    def __init__(self, pipe, dtype: torch.dtype, device: torch.device, prompt: str,
                 negative_prompt: str = "", guidance: float = 7.5, tile_px: int = 512,
                 note: str = "") -> None:  # fmt: skip
        self.pipe, self.dtype, self.device = pipe, dtype, device
        self.unet, self.vae, self.scheduler = pipe.unet, pipe.vae, pipe.scheduler
        self.latent_channels = int(self.vae.config.latent_channels)
        self.latent_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.size_multiple = self.latent_scale * 2 ** (len(self.unet.config.down_block_types) - 1)
        self.scaling = float(self.vae.config.scaling_factor)
        self.guidance, self.tile_px = guidance, tile_px
        self.notes = [note] if note else []
        with torch.no_grad():
            pos, neg = pipe.encode_prompt(
                prompt, device, 1, guidance > 1.0, negative_prompt=negative_prompt or None
            )
        self.pos, self.neg = pos.to(dtype), None if neg is None else neg.to(dtype)

    def condition(self, crops: Tensor, masks: Tensor, frames: int, views=None) -> None:
        if frames != 1:
            raise ValueError("a text-to-image model makes one frame")

    @torch.no_grad()
    def denoise(self, z: Tensor, sigma: float, timestep: Tensor, views: slice) -> Tensor:
        """z [n, 1, C, h, w] = x0 + sigma eps -> x0 (the UNet sees z / sqrt(sigma^2 + 1))."""
        x = z[:, 0].float()
        n = len(x)
        inp = (x / (sigma * sigma + 1) ** 0.5).to(self.dtype)
        emb = self.pos.expand(n, -1, -1)
        if self.neg is not None:
            inp = torch.cat([inp, inp])
            emb = torch.cat([self.neg.expand(n, -1, -1), emb])
        t = timestep.to(self.device)
        out = self.unet(inp, t, encoder_hidden_states=emb, return_dict=False)[0].float()
        if self.neg is not None:
            u, c = out.chunk(2)
            out = u + self.guidance * (c - u)
        x0 = k_diffusion_x0(x, out, sigma, self.scheduler.config.prediction_type)
        return x0[:, None]

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> scaled latents [B, C, H / s, W / s] (seam-wrapped tiles)."""
        s = self.latent_scale

        def enc(x: Tensor) -> Tensor:
            lat = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode().float()
            return lat * self.scaling

        return tiled_columns(enc, images, self.tile_px, 8 * s, s)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """[T, C, h, w] -> [T, 3, H, W] in [-1, 1] (seam-wrapped tiles)."""
        s = self.latent_scale

        def dec(x: Tensor) -> Tensor:
            return self.vae.decode(x.to(self.vae.dtype) / self.scaling).sample.float()

        z = latents.to(self.device)
        return tiled_columns(dec, z, self.tile_px // s, 8, 1 / s).clamp(-1, 1)
