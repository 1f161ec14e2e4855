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

import torch
from torch import Tensor

from ..animate.schedulers.euler import k_diffusion_x0
from .base import TextImageModel, load_pipeline

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def load(path, cfg, device: torch.device) -> SDModel:
    """The model of ``cfg`` (a TextPanoConfig) from a StableDiffusionPipeline folder."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe, dtype = load_pipeline(
        StableDiffusionPipeline, path, device, cfg.lora,
        safety_checker=None, requires_safety_checker=False,
    )  # fmt: skip
    note = ""
    if type(pipe.scheduler).__name__ != "EulerDiscreteScheduler":
        note = f"{type(pipe.scheduler).__name__} replaced by EulerDiscreteScheduler (same config)"
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return SDModel(pipe, dtype, device, cfg.prompt, cfg.negative_prompt, cfg.guidance, note=note)


class SDModel(TextImageModel):
    """A UNet that predicts noise (or v) at k-diffusion sigmas; every view sees the prompt."""

    def __init__(self, pipe, dtype: torch.dtype, device: torch.device, prompt: str,
                 negative_prompt: str = "", guidance: float = 7.5, tile_px: int = 512,
                 note: str = "") -> None:  # fmt: skip
        self.unet = pipe.unet
        levels = len(self.unet.config.down_block_types) - 1
        self._setup(pipe, dtype, device, guidance, tile_px, 1, levels, [note])
        with torch.no_grad():
            pos, neg = pipe.encode_prompt(
                prompt, device, 1, guidance > 1.0, negative_prompt=negative_prompt or None
            )
        self.pos, self.neg = pos.to(dtype), None if neg is None else neg.to(dtype)

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
        out = self.unet(inp, t, encoder_hidden_states=emb, return_dict=False)[0]
        out = self.guided(out) if self.neg is not None else out.float()
        x0 = k_diffusion_x0(x, out, sigma, self.scheduler.config.prediction_type)
        return x0[:, None]
