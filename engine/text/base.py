"""What every text-to-image family shares on the sphere: loading a diffusers pipeline folder
with ``from_pretrained`` (one clear error when it cannot), an optional LoRA on top, and a
:class:`engine.animate.denoiser.ViewModel` of one frame whose VAE encodes and decodes the
equirect in column tiles that wrap the seam. A family file subclasses :class:`TextImageModel`
and writes its ``denoise`` (its network, its prediction type) and its prompt encoding.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .. import hub
from ..animate.tiling import tiled_columns
from ..errors import LOAD_ERRORS, InputError, first_line


def load_pipeline(cls, path: Path, device: torch.device, lora: str | None = None, **kw):
    """(pipeline, dtype): ``cls.from_pretrained(path)`` in fp16 on CUDA, fp32 on the CPU, with
    ``lora`` loaded by the pipeline's own ``load_lora_weights``; its modules on ``device``,
    frozen."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    local = {"local_files_only": hub.offline()}
    try:
        with hub.quiet_dtype_notice():
            pipe = cls.from_pretrained(path, torch_dtype=dtype, **kw, **local)
        if lora:
            pipe.load_lora_weights(lora, **local)
    except LOAD_ERRORS as e:
        first = first_line(e)
        raise InputError(f"cannot load the text-to-image model from {path}: {first}") from e
    pipe.set_progress_bar_config(disable=True)
    for m in pipe.components.values():
        if isinstance(m, torch.nn.Module):
            m.to(device).eval().requires_grad_(False)
    return pipe, dtype


def latent_scale(vae) -> int:
    """Panorama pixels per latent pixel of an AutoencoderKL."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


class TextImageModel:
    """Text-to-image on the sphere: every view sees the same prompt; one frame.

    Subclasses call :meth:`_setup` and implement ``denoise``.
    """

    def _setup(self, pipe, dtype: torch.dtype, device: torch.device, guidance: float, tile_px: int,
               patch: int, net_levels: int, notes: list[str]) -> None:  # fmt: skip
        """Sizes from the VAE and the network: ``patch`` latent pixels per token and
        ``net_levels`` halvings inside the network set the view size multiple."""
        self.pipe, self.dtype, self.device = pipe, dtype, device
        self.vae, self.scheduler = pipe.vae, pipe.scheduler
        self.latent_channels = int(self.vae.config.latent_channels)
        self.latent_scale = latent_scale(self.vae)
        self.size_multiple = self.latent_scale * patch * 2**net_levels
        # scaled latents = (raw - shift) * scaling; the shift is SD3's and FLUX's, else 0
        self.scaling = float(self.vae.config.scaling_factor)
        self.shift = float(self.vae.config.get("shift_factor") or 0.0)
        self.guidance, self.tile_px = guidance, tile_px
        self.notes = [n for n in notes if n]

    def condition(self, crops: Tensor, masks: Tensor, frames: int, views=None) -> None:
        if frames != 1:
            raise ValueError("a text-to-image model makes one frame")

    def guided(self, out: Tensor) -> Tensor:
        """Classifier-free guidance of a batch run as [negative; positive] halves."""
        u, c = out.float().chunk(2)
        return u + self.guidance * (c - u)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> scaled latents [B, C, H / s, W / s] (seam-wrapped tiles)."""
        s = self.latent_scale

        def enc(x: Tensor) -> Tensor:
            lat = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode().float()
            return (lat - self.shift) * self.scaling

        return tiled_columns(enc, images, self.tile_px, 8 * s, s)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """[T, C, h, w] -> [T, 3, H, W] in [-1, 1] (seam-wrapped tiles)."""
        s = self.latent_scale

        def dec(x: Tensor) -> Tensor:
            raw = x.to(self.vae.dtype) / self.scaling + self.shift
            return self.vae.decode(raw).sample.float()

        z = latents.to(self.device)
        return tiled_columns(dec, z, self.tile_px // s, 8, 1 / s).clamp(-1, 1)
