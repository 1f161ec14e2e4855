"""The ``wan`` animator: Wan 2.x image-to-video (text-conditioned) under the Panoramic
Denoiser (:mod:`engine.animate.denoiser`), stepped by its flow-matching scheduler.

Weights are a diffusers ``WanImageToVideoPipeline`` folder (``model_index.json`` with
``tokenizer/``, ``text_encoder/`` (UMT5), ``vae/`` (the Wan VAE), ``transformer/``,
``scheduler/`` and, for Wan 2.1 I2V, ``image_encoder/`` + ``image_processor/``) named by
``WanConfig.model``: a local folder or a hub id already in the Hugging Face cache (nothing
is downloaded). The pipeline is loaded with ``from_pretrained`` and its own helpers encode
the prompts (``encode_prompt``), the CLIP image embedding (``encode_image``) and the
first-frame condition with its mask channels (``prepare_latents``), so each view is
conditioned exactly as the pipeline conditions one image.

What differs from the pipeline is only where the views come from and go to:

- The state is the panorama's latent video [T', C, h, w] with T' = (T - 1) / 4 + 1 latent
  frames (the Wan VAE compresses time 4x); views are fused on latent frames.
- Each view's prompt is the global prompt plus the ``prompt`` of the region it sees most
  (by feathered weight inside the view), so "clouds drifting left" conditions the views of
  the sky and "ripples" those of the lake.
- The loop closes by conditioning the last frame on the first where the model was trained
  for it (a first/last-frame model: the pipeline's ``last_image``, its mask channels and a
  second CLIP embedding); otherwise the last latent frames are blended towards frame 0
  (:func:`blend_loop`). Frame 0 of the result is the input.
- The latent video of the still panorama (what unmasked latents are held to) is the VAE's
  encoding of the panorama repeated T times, so static latents are what the causal VAE
  produces for a still video.
- Schedulers: the folder's ``FlowMatchEulerDiscreteScheduler`` is used as is. Wan's
  published folders ship ``UniPCMultistepScheduler`` (flow_prediction, use_flow_sigmas),
  which the sphere sampler does not drive; it is replaced by FlowMatchEulerDiscreteScheduler
  with the same ``flow_shift`` and the run says so (``WanModel.notes``).

The VAE runs in column tiles whose context wraps across the seam
(:func:`engine.animate.tiling.tiled_columns`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .. import hub
from ..camera import View
from ..devices import pick_device
from ..errors import LOAD_ERRORS, InputError, first_line
from ..io import Panorama, Region
from ..progress import Progress
from ..sphere import ViewSetConfig, perspective_view
from .base import PanoVideo, finish_model_video, start_model_video
from .denoiser import DenoiserConfig, PanoramicDenoiser
from .svd import _work_size
from .tiling import tiled_columns

DEFAULT_MODEL = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
MARKER = "model_index.json"
COMPONENTS = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
FALLBACK = "the weightless fallback is --animator flow"
PIPELINE = "WanImageToVideoPipeline"


@dataclass(frozen=True)
class WanConfig:
    """Settings of the ``wan`` animator (defaults: Wan 2.1 I2V's)."""

    model: str = DEFAULT_MODEL
    prompt: str = ""  # the global prompt (the whole scene)
    negative_prompt: str = ""
    frames: int = 17  # output frames, 4k + 1
    video_fps: float = 16.0
    steps: int = 30
    guidance: float = 5.0  # classifier-free guidance scale (1 = off)
    max_sequence_length: int = 512
    view_size: int = 480
    fov_deg: float = 90.0
    rings: tuple[tuple[float, int, float], ...] = ViewSetConfig().rings
    two_pass: bool = False
    refine_strength: float = 0.4
    view_batch: int = 1
    close_loop: bool = True  # condition the last frame on the first
    tile_px: int = 512
    device: str = "auto"
    seed: int = 0
    region_prompts: tuple[str, ...] = field(default=())  # filled from the regions

    def denoiser(self) -> DenoiserConfig:
        return DenoiserConfig(
            steps=self.steps,
            views=ViewSetConfig(rings=self.rings, fov_deg=self.fov_deg, size=self.view_size),
            two_pass=self.two_pass,
            refine_strength=self.refine_strength,
            view_batch=self.view_batch,
            seed=self.seed,
        )

    def check(self) -> None:
        if self.frames < 5 or (self.frames - 1) % 4:
            raise InputError(
                f"the wan animator needs 4k + 1 frames (5, 9, 13, ...), got {self.frames}"
            )
        if self.steps < 1:
            raise InputError(f"the wan animator needs at least 1 step, got {self.steps}")


def probe(model: str = DEFAULT_MODEL) -> hub.ModelProbe:
    """Are the weights of ``model`` here, and are they a Wan image-to-video pipeline?"""
    found = hub.locate(model, MARKER)
    if found.path is None:
        return found
    missing = [c for c in COMPONENTS if not (found.path / c).is_dir()]
    if missing:
        return hub.ModelProbe(model, None, f"{found.path} lacks {', '.join(missing)}/")
    name = hub.json_field(found.path / MARKER, "_class_name")
    if name != PIPELINE:
        why = f"its model_index.json names {name or 'no pipeline'}, not {PIPELINE}"
        return hub.ModelProbe(model, None, f"{found.path} is not a Wan image-to-video model: {why}")
    return found


def require(model: str) -> Path:
    p = probe(model)
    if p.path is None:
        raise InputError(f"no video model weights: {p.reason}; {FALLBACK}")
    return p.path


def load_pipeline(path: Path, device: torch.device):
    """The diffusers WanImageToVideoPipeline from ``path`` (bf16 on CUDA, fp32 on the CPU;
    the VAE stays fp32) and a note when its scheduler was replaced."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kw = {"local_files_only": hub.offline()}
    try:
        with hub.quiet_dtype_notice():
            vae = AutoencoderKLWan.from_pretrained(
                path, subfolder="vae", torch_dtype=torch.float32, **kw
            )
            pipe = WanImageToVideoPipeline.from_pretrained(path, vae=vae, torch_dtype=dtype, **kw)
    except LOAD_ERRORS as e:
        first = first_line(e)
        raise InputError(f"cannot load the video model from {path}: {first}; {FALLBACK}") from e
    if pipe.transformer_2 is not None or pipe.config.expand_timesteps:
        raise InputError(
            f"{path} is a Wan 2.2 two-expert or TI2V pipeline; Pano4D drives the single "
            "transformer I2V layout (Wan 2.1 I2V); " + FALLBACK
        )
    note = ""
    sched = pipe.scheduler
    if type(sched).__name__ != "FlowMatchEulerDiscreteScheduler":
        shift = float(sched.config.get("flow_shift", None) or sched.config.get("shift", 3.0))
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
        note = (
            f"{type(sched).__name__} replaced by FlowMatchEulerDiscreteScheduler(shift={shift:g}) "
            "for sampling on the sphere"
        )
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.transformer, pipe.text_encoder, pipe.image_encoder, pipe.vae):
        if m is not None:
            m.to(device).eval().requires_grad_(False)
    return pipe, dtype, note


class WanModel:
    """:class:`engine.animate.denoiser.ViewModel` over a diffusers Wan I2V pipeline."""

    def __init__(self, pipe, dtype: torch.dtype, cfg: WanConfig, device: torch.device,
                 regions: np.ndarray | None = None, note: str = "") -> None:  # fmt: skip
        self.pipe, self.cfg, self.device, self.dtype = pipe, cfg, device, dtype
        self.vae, self.transformer = pipe.vae, pipe.transformer
        self.scheduler = pipe.scheduler
        self.latent_channels = int(self.vae.config.z_dim)
        self.latent_scale = int(pipe.vae_scale_factor_spatial)
        self.temporal = int(pipe.vae_scale_factor_temporal)
        self.size_multiple = self.latent_scale * int(self.transformer.config.patch_size[1])
        self.regions = regions  # [R, H, W] feathered region weights (for the view prompts)
        zdim = self.latent_channels
        self.mean = torch.tensor(self.vae.config.latents_mean).view(1, zdim, 1, 1, 1)
        self.std = torch.tensor(self.vae.config.latents_std).view(1, zdim, 1, 1, 1)
        self.notes = [note] if note else []
        # first/last-frame models (FLF2V) take the loop's closing frame as a condition
        self.first_last = self.transformer.config.get("pos_embed_seq_len") is not None
        self._prompt_cache: dict[str, tuple[Tensor, Tensor | None]] = {}

    @classmethod
    def load(cls, cfg: WanConfig, device: torch.device, regions=None) -> WanModel:
        pipe, dtype, note = load_pipeline(require(cfg.model), device)
        return cls(pipe, dtype, cfg, device, regions, note)

    def raw_frames(self, latent_frames: int) -> int:
        return (latent_frames - 1) * self.temporal + 1

    # -- text and conditioning --------------------------------------------------------------

    def view_prompts(self, views: list[View] | None) -> list[str]:
        """The global prompt plus the local prompt of the region each view sees most."""
        base = self.cfg.prompt.strip()
        local = self.cfg.region_prompts
        if self.regions is None or not any(local) or views is None:
            n = 1 if views is None else len(views)
            return [base] * n
        out = []
        for v in views:
            small = View(v.yaw_deg, v.pitch_deg, v.fov_deg, 32, 32, v.roll_deg)
            seen = [float(perspective_view(w[None], small).sum()) for w in self.regions]
            k = int(np.argmax(seen)) if max(seen) > 0 else -1
            extra = local[k] if k >= 0 and k < len(local) else ""
            out.append(", ".join(p for p in (base, extra) if p))
        return out

    def _embed(self, prompt: str) -> tuple[Tensor, Tensor | None]:
        if prompt not in self._prompt_cache:
            cfg_on = self.cfg.guidance > 1.0
            pos, neg = self.pipe.encode_prompt(
                prompt=prompt,
                negative_prompt=self.cfg.negative_prompt if cfg_on else None,
                do_classifier_free_guidance=cfg_on,
                max_sequence_length=self.cfg.max_sequence_length,
                device=self.device,
            )
            self._prompt_cache[prompt] = (
                pos.to(self.dtype),
                None if neg is None else neg.to(self.dtype),
            )
        return self._prompt_cache[prompt]

    @torch.no_grad()
    def condition(self, crops: Tensor, masks: Tensor, frames: int, views=None) -> None:
        """crops [V, 3, ph, pw] in [-1, 1]: the first (and, closing the loop, last) frame of
        each view's video condition, with the view's prompt and CLIP image embedding."""
        from PIL import Image

        pipe, n = self.pipe, len(crops)
        raw = self.raw_frames(frames)
        prompts = self.view_prompts(views)
        pos, neg = zip(*(self._embed(p) for p in prompts))
        self.pos = torch.cat(pos)
        self.neg = None if neg[0] is None else torch.cat(neg)
        self.img_emb = None
        last = self.cfg.close_loop and self.first_last
        if self.transformer.config.image_dim is not None:
            pil = [_to_pil(c, Image) for c in crops]
            embs = [pipe.encode_image([p, p] if last else [p], self.device) for p in pil]
            self.img_emb = torch.stack(embs).to(self.dtype)  # [V, 1 or 2, L, D]
        conds = []
        for k in range(n):
            img = crops[k : k + 1].to(self.device, torch.float32)
            _, cond = pipe.prepare_latents(
                img, 1, self.latent_channels, img.shape[-2], img.shape[-1], raw, torch.float32,
                self.device, None, torch.zeros(1, self.latent_channels, frames,
                                               *[s // self.latent_scale for s in img.shape[-2:]]),
                img if last else None,
            )  # fmt: skip
            conds.append(cond)
        self.cond = torch.cat(conds).to(self.dtype)  # [V, 4 + C, T', h, w]

    @torch.no_grad()
    def denoise(self, z: Tensor, sigma: float, timestep: Tensor, views: slice) -> Tensor:
        """z [n, T', C, h, w] at flow time sigma -> x0 = z - sigma v."""
        x = z.permute(0, 2, 1, 3, 4).to(self.dtype)  # [n, C, T', h, w]
        n = len(x)
        inp = torch.cat([x, self.cond[views]], dim=1)
        ts = timestep.to(self.device).reshape(1).expand(n)
        img = None if self.img_emb is None else self.img_emb[views].flatten(0, 1)
        kw = {"timestep": ts, "encoder_hidden_states_image": img, "return_dict": False}
        v = self.transformer(hidden_states=inp, encoder_hidden_states=self.pos[views], **kw)[0]
        if self.neg is not None:
            u = self.transformer(hidden_states=inp, encoder_hidden_states=self.neg[views], **kw)[0]
            v = u.float() + self.cfg.guidance * (v.float() - u.float())
        x0 = x.float() - sigma * v.float()
        return x0.permute(0, 2, 1, 3, 4)

    # -- the Wan VAE (normalised latents, column tiles wrapping the seam) ----------------------

    def _encode_video(self, video: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> normalised latents [B, C, T', h, w]."""
        lat = self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode().float()
        return (lat - self.mean.to(lat)) / self.std.to(lat)

    def _tiles(self, fn, x: Tensor, up: bool) -> Tensor:
        s = self.latent_scale
        tile = self.cfg.tile_px // s if up else self.cfg.tile_px
        pad, ratio = (8, 1 / s) if up else (8 * s, s)
        return tiled_columns(fn, x, tile, pad, ratio)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """[B, 3, H, W] -> [B, C, h, w]: each image as a one-frame video."""
        return self._tiles(lambda x: self._encode_video(x[:, :, None])[:, :, 0], images, False)

    @torch.no_grad()
    def source(self, image: Tensor, frames: int) -> Tensor:
        """The still panorama as a video of ``raw_frames(frames)`` frames: [T', C, h, w]."""
        raw = self.raw_frames(frames)

        def enc(x: Tensor) -> Tensor:  # [1, 3, H, w'] -> [1, C * T', h, w']
            lat = self._encode_video(x[:, :, None].expand(-1, -1, raw, -1, -1))
            return lat.flatten(1, 2)

        flat = self._tiles(enc, image[None].float(), False)
        return flat.reshape(self.latent_channels, frames, *flat.shape[-2:]).transpose(0, 1)

    @torch.no_grad()
    def reencode(self, video: Tensor) -> Tensor:
        """[T, 3, H, W] frames -> [T', C, h, w]."""
        t = video.shape[0]

        def enc(x: Tensor) -> Tensor:  # [1, 3 * T, H, w'] -> [1, C * T', h, w']
            v = x.reshape(1, t, 3, *x.shape[-2:]).transpose(1, 2)
            return self._encode_video(v).flatten(1, 2)

        flat = self._tiles(enc, video.float().reshape(1, t * 3, *video.shape[-2:]), False)
        return flat.reshape(self.latent_channels, -1, *flat.shape[-2:]).transpose(0, 1)

    @torch.no_grad()
    def decode(self, latents: Tensor, progress: Progress | None = None) -> Tensor:
        """[T', C, h, w] -> [T, 3, H, W] in [-1, 1] (T = 4 (T' - 1) + 1)."""
        frames = latents.shape[0]
        raw = self.raw_frames(frames)
        tile = max(1, self.cfg.tile_px // self.latent_scale)
        tiles = -(-latents.shape[-1] // tile)
        done = [0]

        def dec(x: Tensor) -> Tensor:  # [1, C * T', h, w'] -> [1, 3 * T, H, W']
            z = x.reshape(1, self.latent_channels, frames, *x.shape[-2:])
            z = z * self.std.to(z) + self.mean.to(z)
            y = self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0].float()
            done[0] += 1
            if progress is not None:
                progress.update(done[0] / tiles, f"decoding frames, tile {done[0]}/{tiles}")
            return y.transpose(1, 2).flatten(1, 2)

        lat = latents.transpose(0, 1).reshape(1, -1, *latents.shape[-2:]).to(self.device)
        flat = self._tiles(dec, lat, True)
        return flat.reshape(raw, 3, *flat.shape[-2:]).clamp(-1, 1)


def blend_loop(latents: Tensor, span: int = 2) -> Tensor:
    """Close the loop of a model that cannot condition its last frame: the last ``span``
    latent frames move towards frame 0 by (k + 1) / (span + 1), so the wrap from the last
    frame to the first is a step like the others.

    latents: Tensor  # [T', C, h, w] (frame 0 is the input's latent)
    """
    out = latents.clone()
    t = len(latents)
    span = min(span, t - 1)
    for k in range(span):
        i = t - span + k
        beta = (k + 1) / (span + 1)
        out[i] = (1 - beta) * latents[i] + beta * latents[0]
    return out


def _to_pil(crop: Tensor, image_module):
    arr = ((crop.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return image_module.fromarray(arr)


class WanAnimator:
    """``run(pano, regions, progress, out)`` -> :class:`PanoVideo` (the animator interface)."""

    name = "wan"

    def __init__(self, cfg: WanConfig = WanConfig()) -> None:
        cfg.check()
        self.cfg = cfg
        self.stats = None
        self.notes: list[str] = []

    def run(
        self,
        pano: Panorama,
        regions: list[Region],
        progress: Progress | None = None,
        out: np.ndarray | None = None,
    ) -> PanoVideo:
        progress = progress or Progress("animate")
        cfg = dataclasses.replace(self.cfg, region_prompts=tuple(r.prompt for r in regions))
        weights, union, out = start_model_video(pano, regions, cfg.frames, out)
        if not (union > 0).any():
            progress.update(1.0, "nothing to animate")
            return PanoVideo(out, cfg.video_fps, union)
        device = pick_device(cfg.device)
        progress.update(0.0, "loading the video model")
        model = WanModel.load(cfg, device, torch.from_numpy(weights)[:, None])
        self.notes = list(model.notes)
        image, weight = _work_size(pano.rgb, union, model.size_multiple)
        model.regions = F.interpolate(model.regions, size=image.shape[-2:], mode="area")
        den = PanoramicDenoiser(model, cfg.denoiser())
        latent_frames = (cfg.frames - 1) // model.temporal + 1
        latents = den.run(image, weight, latent_frames, progress.sub(0.02, 0.9))
        if cfg.close_loop and not model.first_last:
            latents = blend_loop(latents)
        self.stats = den.stats
        progress.update(0.9, "decoding frames")
        video = model.decode(latents, progress.sub(0.9, 0.97))  # [T, 3, H', W']
        del model, den
        finish_model_video(pano, union, video, out, device, progress.sub(0.97, 1.0))
        return PanoVideo(out, cfg.video_fps, union)


__all__ = [
    "WanAnimator",
    "blend_loop",
    "WanConfig",
    "WanModel",
    "load_pipeline",
    "probe",
    "require",
]
