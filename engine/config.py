"""The settings of a ``generate`` run: typed, frozen configs per stage, a preset applied to
them (:func:`build_config`), and the command line's or a batch job's options checked and
turned into (:class:`Inputs`, :class:`GenerateConfig`) before anything is read or written
(:func:`prepare`). Presets are data (:mod:`engine.presets`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .animate import ANIMATOR_NAMES, FlowConfig
from .animate.svd import SVDConfig
from .animate.wan import WanConfig
from .depth import DepthConfig
from .depth.models import require_model
from .depth.stage import ModelDepthConfig, model_depth_config
from .errors import InputError
from .hub import json_field, require
from .io import MAX_SIZE, MAX_SPEED_DEG_S, MIN_SIZE
from .lift.optimize import LiftConfig
from .lift.raster import has_gsplat
from .lift.regularizers import SEM_FALLBACK
from .presets import DEFAULT_PRESET, NEEDS_CUDA, PRESETS
from .text import TextPanoConfig


@dataclass(frozen=True)
class OutputConfig:
    preview_size: tuple[int, int] = (288, 512)  # (height, width) of the look-around video
    preview_frames: int = 32
    preview_fov_deg: float = 90.0
    equirect_loops: int = 2  # the animated panorama MP4 repeats the loop this many times
    half: bool = True  # fp16 attributes in the native scene


@dataclass(frozen=True)
class GenerateConfig:
    preset: str = DEFAULT_PRESET
    animator: str = "flow"
    animate: FlowConfig = FlowConfig()
    svd: SVDConfig = SVDConfig()  # the "svd" animator (frames / fps follow ``animate``)
    wan: WanConfig = WanConfig()  # the "wan" animator (frames / fps follow ``animate``)
    text: TextPanoConfig | None = None  # --prompt --text-model: the panorama is generated
    depth: DepthConfig = DepthConfig()
    depth_model: ModelDepthConfig | None = None  # --depth-model: model depth + eq. 4 alignment
    lift: LiftConfig = LiftConfig()
    output: OutputConfig = OutputConfig()


@dataclass(frozen=True)
class Inputs:
    panorama: Path | None  # None: generated from text (GenerateConfig.text) into OUT/
    mask: Path | None = None  # one region from a mask ...
    regions: Path | None = None  # ... or a region file with several
    depth: Path | None = None
    direction_deg: float = 0.0  # motion of the --mask region
    speed_deg_s: float = 2.0
    motion: str = "flow"  # of the --mask region: "flow" or "sway"
    region_args: tuple[str, ...] = ()  # --region "NAME: PROMPT": found by name, moved by words
    seg_model: str | None = None  # --seg-model: CLIPSeg, for region_args


def override(cfg, values: dict, where: str = ""):
    """``cfg`` (a frozen dataclass) with ``values`` replaced; a dict value overrides the
    fields of a nested dataclass the same way; lists become tuples. Unknown names raise
    InputError naming them."""
    names = {f.name for f in dataclasses.fields(cfg)}
    bad = sorted(set(values) - names)
    if bad:
        raise InputError(f"unknown {where or type(cfg).__name__} setting(s): {', '.join(bad)}")
    changes = {}
    for key, value in values.items():
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = override(current, value, f"{where}.{key}" if where else key)
        else:
            changes[key] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(cfg, **changes)


def build_config(
    preset: str = DEFAULT_PRESET,
    *,
    frames: int | None = None,
    animator: str = "flow",
    device: str = "auto",
    model: str | None = None,
    depth_model: str | None = None,
    dino_model: str | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    text_model: str | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
) -> GenerateConfig:
    """The GenerateConfig of a named preset, with optional overrides (``text_model``: the
    panorama is generated from ``prompt``)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    over = PRESETS[preset]
    cfg = GenerateConfig(preset=preset, animator=animator)
    parts = {}
    for name in ("animate", "depth", "lift", "output"):
        parts[name] = override(getattr(cfg, name), over.get(name, {}), name)
    if frames is not None:
        if not 2 <= frames <= 240:
            raise InputError(f"--frames must be between 2 and 240, got {frames}")
        parts["animate"] = dataclasses.replace(parts["animate"], frames=frames)
    if device != "auto" or preset not in NEEDS_CUDA:
        parts["lift"] = dataclasses.replace(parts["lift"], device=device)
    if parts["lift"].device == "cuda" and not has_gsplat():  # checked before anything is written
        raise InputError(
            f"{'--preset ' + preset if preset in NEEDS_CUDA else '--device cuda'} needs CUDA "
            "and gsplat, which are not available here; use --preset standard (or 4k) on the CPU"
        )
    if dino_model is not None:  # L_sem (eq. 5); checked now, before anything is written
        found = require(dino_model, "config.json", "DINOv2", SEM_FALLBACK)
        kind = json_field(found / "config.json", "model_type")
        if kind != "dinov2":
            raise InputError(
                f"--dino-model {dino_model} is a {kind or 'model of unknown type'}, not DINOv2 "
                f"(model_type 'dinov2'); {SEM_FALLBACK}"
            )
        regs = dataclasses.replace(parts["lift"].regularizers, dino_model=dino_model)
        parts["lift"] = dataclasses.replace(parts["lift"], regularizers=regs)
    if animator not in ANIMATOR_NAMES:
        raise InputError(f"unknown animator '{animator}' (choose from {', '.join(ANIMATOR_NAMES)})")
    if model is not None and animator not in MODEL_ANIMATORS:
        raise InputError(
            "--model names video model weights for --animator svd or wan; flow needs none"
        )
    if text_model is not None:
        parts["text"] = _text_config(over, text_model, prompt, negative_prompt, size, seed, device)
    elif (prompt or negative_prompt) and animator != "wan":
        given = "--prompt" if prompt else "--negative-prompt"
        raise InputError(
            f"{given} needs --text-model (to make the panorama) or --animator wan (to animate it)"
        )
    if animator == "wan":
        parts["animate"] = _wan_frames(parts["animate"], frames)
    anim = parts["animate"]
    svd = dataclasses.replace(cfg.svd, **over.get("svd", {}))
    parts["svd"] = dataclasses.replace(
        svd, frames=anim.frames, video_fps=anim.fps, model=model or svd.model, device=device
    )
    wan = override(cfg.wan, over.get("wan", {}), "wan")
    text = {
        "prompt": prompt or wan.prompt,
        "negative_prompt": negative_prompt or wan.negative_prompt,
    }
    parts["wan"] = dataclasses.replace(
        wan, frames=anim.frames, video_fps=anim.fps, model=model or wan.model, device=device, **text
    )
    if depth_model is not None:  # checked now, before anything is written
        require_model(depth_model)
        parts["depth_model"] = dataclasses.replace(
            model_depth_config(depth_model, preset), device=device
        )
    return dataclasses.replace(cfg, **parts)


MODEL_ANIMATORS = ("svd", "wan")


def size_arg(text: str | None) -> tuple[int, int] | None:
    """--size '2048x1024' -> (1024, 2048) (rows, columns); None stays None."""
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 2048x1024, got {text!r}")
    return int(h), int(w)


# the options of ``generate`` (the command line's and a batch job's names)
OPTIONS = (
    "panorama", "mask", "regions", "region", "seg_model", "depth", "depth_model",
    "dino_model", "preset", "animator", "model", "frames", "direction", "speed", "motion",
    "prompt", "negative_prompt", "text_model", "size", "seed", "device",
)  # fmt: skip


def prepare(options: dict) -> tuple[Inputs, GenerateConfig]:
    """(Inputs, GenerateConfig) of ``generate``'s options (names of :data:`OPTIONS`; absent
    ones take their defaults). Raises InputError when they are wrong or a model is missing;
    nothing is read but the models' folders."""
    opt = options.get
    _check_region_options(opt)
    if opt("panorama") is None and not opt("text_model"):
        raise InputError(
            "give a panorama, or make one from --prompt with --text-model (a Stable Diffusion "
            "pipeline folder or a hub id in the local cache)"
        )
    if opt("panorama") is not None and opt("text_model"):
        raise InputError("give a panorama or --text-model to make one, not both")
    if opt("seg_model") and not (opt("region") or opt("regions")):
        raise InputError(
            "--seg-model finds regions named by --region or a regions file's 'mask_prompt'"
        )
    if opt("motion", "flow") not in ("flow", "sway"):
        raise InputError(f"motion must be 'flow' or 'sway', got {opt('motion')!r}")
    if opt("device", "auto") not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {opt('device')!r}")
    path = {k: Path(opt(k)) if opt(k) else None for k in ("panorama", "mask", "regions", "depth")}
    inputs = Inputs(
        **path,
        direction_deg=float(opt("direction", 0.0)),
        speed_deg_s=float(opt("speed", 2.0)),
        motion=opt("motion", "flow"),
        region_args=tuple(opt("region", ())),
        seg_model=opt("seg_model"),
    )
    cfg = build_config(
        opt("preset", DEFAULT_PRESET),
        frames=opt("frames"),
        animator=opt("animator", "flow"),
        device=opt("device", "auto"),
        model=opt("model"),
        depth_model=opt("depth_model"),
        dino_model=opt("dino_model"),
        prompt=opt("prompt"),
        negative_prompt=opt("negative_prompt"),
        text_model=opt("text_model"),
        size=size_arg(opt("size")),
        seed=opt("seed"),
    )
    require_models(inputs, cfg)
    return inputs, cfg


def _check_region_options(opt: Callable) -> None:
    """What the region options say, checked without reading a file: one source of regions
    (none only for a panorama made from text: a still scene), the --mask motion only with
    --mask and in range, the panorama's size and seed only with --text-model."""
    sources = [k for k in ("mask", "regions", "region") if opt(k)]
    if len(sources) > 1:
        raise InputError("give one of --mask, --regions or --region, not several")
    if not sources and opt("panorama") is not None:
        raise InputError(
            "nothing to animate: give a mask (--mask M), a region file (--regions R.json) or "
            "--region 'NAME: how it moves'"
        )
    motion = [f"--{k}" for k in ("direction", "speed", "motion") if opt(k) is not None]
    if motion and not opt("mask"):
        raise InputError(
            f"{motion[0]} sets how the --mask region moves; a regions file or --region says "
            "how each of its regions moves"
        )
    for key, lo, hi in (("direction", -math.inf, math.inf), ("speed", 0.0, MAX_SPEED_DEG_S)):
        v = opt(key)
        if v is not None and not (math.isfinite(float(v)) and lo <= float(v) <= hi):
            raise InputError(f"--{key} must be a finite number within {lo:g}..{hi:g}, got {v}")
    text = [f"--{k}" for k in ("size", "seed") if opt(k) is not None]
    if text and not opt("text_model"):
        raise InputError(f"{text[0]} sets the panorama --text-model makes; give --text-model too")


def require_models(inputs: Inputs, cfg: GenerateConfig) -> None:
    """Raise InputError naming where we looked when a model the run needs is missing
    (called before anything is written)."""
    if inputs.region_args or inputs.seg_model:
        from .text.segment import require as require_seg

        require_seg(inputs.seg_model)
    if cfg.animator == "svd":
        from .animate.svd import require as require_svd

        require_svd(cfg.svd.model)
    if cfg.animator == "wan":
        from .animate.wan import require as require_wan

        require_wan(cfg.wan.model)


def _text_config(over, model, prompt, negative, size, seed, device) -> TextPanoConfig:
    """The text-to-panorama settings: the preset's, then the command line's."""
    from .text import require

    if not prompt:
        raise InputError("--text-model makes a panorama from --prompt: give the prompt too")
    base = TextPanoConfig(model=model, prompt=prompt)
    cfg = override(base, over.get("text", {}), "text")
    changes = {"negative_prompt": negative or "", "device": device}
    if size is not None:
        changes["size"] = size
    if seed is not None:
        changes["seed"] = seed
    cfg = dataclasses.replace(cfg, **changes)
    cfg.check()
    (h, w), (h0, w0), (h1, w1) = cfg.size, MIN_SIZE, MAX_SIZE
    if not h0 <= h <= h1:  # what the loader takes as a panorama
        raise InputError(f"--size {w}x{h}: a panorama is {w0}x{h0} to {w1}x{h1} pixels")
    require(model)  # before anything is written
    return cfg


def _wan_frames(anim: FlowConfig, asked: int | None) -> FlowConfig:
    """Wan's VAE compresses time 4x: 4k + 1 frames. A preset's count is rounded up to the
    next such count; a count the user asked for must be one already."""
    if asked is not None and (asked - 1) % 4:
        raise InputError(f"--animator wan needs 4k + 1 frames (5, 9, 13, 17, ...), got {asked}")
    n = anim.frames if asked is not None else 4 * -(-(anim.frames - 1) // 4) + 1
    return dataclasses.replace(anim, frames=max(5, n))
