"""The Stable Diffusion 3 family (SD3, SD3.5: a flow-matching DiT) as a text-to-image model
on the sphere: a :class:`engine.animate.denoiser.ViewModel` of one frame whose views are
conditioned on the prompt alone.

Weights are a diffusers ``StableDiffusion3Pipeline`` folder (``transformer/``
SD3Transformer2DModel, ``vae/`` AutoencoderKL with its shift and scaling factors,
``text_encoder/`` and ``text_encoder_2/`` CLIPTextModelWithProjection with their tokenizers,
``text_encoder_3/`` T5EncoderModel with ``tokenizer_3/`` where the folder has them - a
folder without them (T5-XXL is most of SD3's memory) loads with ``text_encoder_3=None`` and
diffusers encodes the T5 part of the prompt as zeros; the run says so - and ``scheduler/``
FlowMatchEulerDiscreteScheduler), loaded with ``from_pretrained``; a LoRA folder may be
loaded on top. Prompts are encoded by the pipeline's ``encode_prompt``.

Sampling is rectified flow (:mod:`engine.animate.schedulers.flow`): ``z = (1 - s) x0 + s
eps`` and the transformer predicts the velocity ``v = eps - x0`` at timestep ``1000 s``, so
the denoised estimate is ``x0 = z - s v``. With ``use_dynamic_shifting`` the schedule's
``mu`` comes from the token count of the largest view, as the pipeline computes it from the
image it makes. The transformer's position embedding bounds the view size.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InputError
from .base import TextImageModel, latent_scale, load_pipeline

# T5 (text_encoder_3/, tokenizer_3/) is optional: the folder loads without it
COMPONENTS = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2",
              "scheduler")  # fmt: skip


def load(path, cfg, device: torch.device) -> SD3Model:
    """The model of ``cfg`` (a TextPanoConfig) from a StableDiffusion3Pipeline folder."""
    from diffusers import StableDiffusion3Pipeline

    index = json.loads((Path(path) / "model_index.json").read_text())
    no_t5 = (index.get("text_encoder_3") or [None])[0] is None
    no_t5 = no_t5 or not (Path(path) / "text_encoder_3").is_dir()
    drop = {"text_encoder_3": None, "tokenizer_3": None} if no_t5 else {}
    pipe, dtype = load_pipeline(StableDiffusion3Pipeline, path, device, cfg.lora, **drop)
    if type(pipe.scheduler).__name__ != "FlowMatchEulerDiscreteScheduler":
        name = type(pipe.scheduler).__name__
        raise InputError(f"{path}: SD3 needs FlowMatchEulerDiscreteScheduler, it has {name}")
    largest = max_view_px(pipe)
    if cfg.view_size > largest:
        raise InputError(
            f"--text-model's transformer takes views of at most {largest} px "
            f"(its position embedding), asked for {cfg.view_size}"
        )
    model = SD3Model(pipe, dtype, device, cfg.prompt, cfg.negative_prompt, cfg.guidance)
    if no_t5:
        model.notes.append("no T5 text encoder in the folder: the prompt is read by CLIP only")
    return model


def max_view_px(pipe) -> int:
    """The largest view (pixels) the transformer's position embedding covers."""
    tc = pipe.transformer.config
    return (
        int(tc.pos_embed_max_size or tc.sample_size) * int(tc.patch_size) * latent_scale(pipe.vae)
    )


class SD3Model(TextImageModel):
    """A joint-attention DiT that predicts the flow velocity; every view sees the prompt."""

    def __init__(self, pipe, dtype: torch.dtype, device: torch.device, prompt: str,
                 negative_prompt: str = "", guidance: float = 7.0,
                 tile_px: int = 512) -> None:  # fmt: skip
        self.transformer = pipe.transformer
        self.patch = int(self.transformer.config.patch_size)
        self._setup(pipe, dtype, device, guidance, tile_px, self.patch, 0, [])
        with torch.no_grad():
            pos, neg, pooled, neg_pooled = pipe.encode_prompt(
                prompt, None, None, device=device, do_classifier_free_guidance=guidance > 1.0,
                negative_prompt=negative_prompt or None,
            )  # fmt: skip
        self.pos, self.pooled = pos.to(dtype), pooled.to(dtype)
        self.neg = None if guidance <= 1.0 else neg.to(dtype)
        self.neg_pooled = None if guidance <= 1.0 else neg_pooled.to(dtype)

    def schedule_kwargs(self, latent_hw: tuple[int, int]) -> dict:
        """``mu`` for a scheduler with dynamic shifting, from the tokens of an input of
        ``latent_hw`` latents (the largest view)."""
        c = self.scheduler.config
        if not c.get("use_dynamic_shifting", False):
            return {}
        from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
            calculate_shift,
        )

        tokens = (latent_hw[0] // self.patch) * (latent_hw[1] // self.patch)
        mu = calculate_shift(
            tokens, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
            c.get("base_shift", 0.5), c.get("max_shift", 1.16),
        )  # fmt: skip
        return {"mu": mu}

    @torch.no_grad()
    def denoise(self, z: Tensor, sigma: float, timestep: Tensor, views: slice) -> Tensor:
        """z [n, 1, C, h, w] = (1 - sigma) x0 + sigma eps -> x0 = z - sigma v."""
        x = z[:, 0].float()
        n = len(x)
        inp, emb, pooled = x.to(self.dtype), self.pos.expand(n, -1, -1), self.pooled.expand(n, -1)
        if self.neg is not None:
            inp = torch.cat([inp, inp])
            emb = torch.cat([self.neg.expand(n, -1, -1), emb])
            pooled = torch.cat([self.neg_pooled.expand(n, -1), pooled])
        t = timestep.to(self.device).reshape(1).expand(len(inp))
        v = self.transformer(hidden_states=inp, timestep=t, encoder_hidden_states=emb,
                             pooled_projections=pooled, return_dict=False)[0]  # fmt: skip
        v = self.guided(v) if self.neg is not None else v.float()
        return (x - sigma * v)[:, None]
