"""Text to panorama (TiP4GEN's first stage, training-free): a text-to-image diffusion model
denoises the equirect latent on the sphere with the Panoramic Denoiser's project-and-fuse
steps (:mod:`engine.animate.denoiser`): at every step the latent is projected to
overlapping perspective views, each view is denoised with the prompt, and the denoised
estimates are fused back on the sphere, so the seam and the poles are consistent. Large
panoramas take a low-resolution pass over the whole schedule, then a refinement at full
resolution with narrower views, like the video models.

The model family comes from the folder's ``model_index.json``; one file per family:

- :mod:`.sd` - the Stable Diffusion family (``StableDiffusionPipeline``, UNet, Euler)
- :mod:`.sd3` - Stable Diffusion 3 / 3.5 (``StableDiffusion3Pipeline``, a flow-matching DiT)

What they share (loading, the seam-wrapped VAE tiles, guidance) is :mod:`.base`. Another
family (FLUX, Sana, ...) is one more file with the component folders it needs
(``COMPONENTS``, checked before anything loads) and a ``load(path, cfg, device)`` that
returns a :class:`.base.TextImageModel` subclass, and a line in ``FAMILIES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import hub
from ..devices import pick_device
from ..errors import InputError
from ..progress import Progress
from ..sphere import ViewSetConfig

MARKER = "model_index.json"
NEEDED = "--text-model (a Stable Diffusion or SD3 pipeline folder, or a hub id in the local cache)"
FAMILIES = {"StableDiffusionPipeline": "sd", "StableDiffusion3Pipeline": "sd3"}


@dataclass(frozen=True)
class TextPanoConfig:
    """Settings of :func:`generate_panorama`."""

    model: str
    prompt: str
    negative_prompt: str = ""
    size: tuple[int, int] = (1024, 2048)  # (H, W), W = 2 H
    steps: int = 30
    guidance: float = 7.5
    view_size: int = 512  # largest view, pixels
    fov_deg: float = 90.0
    two_pass: bool = True
    lora: str | None = None  # a LoRA folder loaded on top (e.g. a panorama LoRA)
    mode: str = "sphere"  # or the ablations "independent" / "equirect" (benchmarks)
    device: str = "auto"
    seed: int = 0

    def check(self) -> None:
        h, w = self.size
        if w != 2 * h or h < 64:
            raise InputError(f"--size must be W x H with W = 2 H and H >= 64, got {w}x{h}")
        if not self.prompt.strip():
            raise InputError("--prompt is empty: say what the panorama shows")
        if self.steps < 1:
            raise InputError(f"text-to-panorama needs at least 1 step, got {self.steps}")


def probe(spec: str) -> hub.ModelProbe:
    """Is ``spec`` a text-to-image pipeline folder of a supported family?"""
    found = hub.locate(spec, MARKER)
    if found.path is None:
        return found
    name = hub.json_field(found.path / MARKER, "_class_name")
    if name not in FAMILIES:
        known = ", ".join(FAMILIES)
        what = name or "no pipeline"
        return hub.ModelProbe(spec, None, f"{found.path} is {what}, not a text-to-image {known}")
    needed = importlib.import_module(f"{__name__}.{FAMILIES[name]}").COMPONENTS
    missing = [c for c in needed if not (found.path / c).is_dir()]
    if missing:
        return hub.ModelProbe(
            spec, None, f"{found.path} lacks {', '.join(c + '/' for c in missing)}"
        )
    return found


def require(spec: str | None) -> Path:
    if not spec:
        raise InputError(f"a panorama from --prompt needs {NEEDED}")
    p = probe(spec)
    if p.path is None:
        raise InputError(f"no text-to-image model weights: {p.reason}; give {NEEDED}")
    return p.path


def load_model(cfg: TextPanoConfig, device: torch.device):
    """The family's ViewModel for ``cfg.model``."""
    path = require(cfg.model)
    family = FAMILIES[hub.json_field(path / MARKER, "_class_name")]
    return importlib.import_module(f"{__name__}.{family}").load(path, cfg, device)


def generate_panorama(cfg: TextPanoConfig, progress: Progress | None = None):
    """The equirect panorama of ``cfg.prompt``: ([H, W, 3] uint8, the denoiser's stats,
    notes for the user)."""
    from ..animate.denoiser import DenoiserConfig, PanoramicDenoiser

    cfg.check()
    progress = progress or Progress("text")
    device = pick_device(cfg.device)
    progress.update(0.0, "loading the text-to-image model")
    model = load_model(cfg, device)
    h, w = cfg.size
    step = 2 * model.size_multiple
    if h % step:
        raise InputError(f"--size height must be a multiple of {step} for this model, got {h}")
    dcfg = DenoiserConfig(
        steps=cfg.steps,
        views=ViewSetConfig(fov_deg=cfg.fov_deg, size=cfg.view_size),
        two_pass=cfg.two_pass,
        pin_first_frame=False,
        mode=cfg.mode,
        seed=cfg.seed,
    )
    den = PanoramicDenoiser(model, dcfg)
    blank = torch.zeros(3, h, w)
    latents = den.run(blank, torch.ones(h, w), 1, progress.sub(0.02, 0.95))
    progress.update(0.95, "decoding the panorama")
    rgb = model.decode(latents)[0].cpu()  # [3, H, W]
    out = ((rgb.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    progress.update(1.0, f"panorama {w}x{h}")
    return out, den.stats, model.notes


__all__ = ["TextPanoConfig", "generate_panorama", "probe", "require"]
