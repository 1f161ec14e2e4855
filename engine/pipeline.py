"""The generate pipeline: load -> animate -> depth -> lift -> save (DESIGN.md section 3).

:func:`run` is the one readable sequence of stages. Each stage reports progress through a
callback ``(stage, fraction, message)`` and stops with :class:`engine.errors.Cancelled` when
the cancel token is set. Checkpoints live in ``OUT/.pano4d/`` (:mod:`engine.checkpoints`),
so ``run(..., resume=True)`` continues a killed run where it stopped, provided the inputs
and settings are the same. The settings and their checks are :mod:`engine.config`. Every final
output is written atomically; the checkpoints are removed after success.

Outputs in ``OUT``: ``scene/`` (native 4D scene), ``panorama.mp4`` (animated equirect with
360 metadata), ``preview.mp4`` (look-around tour rendered from the scene), ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .animate import PanoVideo, get_animator
from .camera import View
from .checkpoints import Checkpoints, fingerprint
from .config import GenerateConfig, Inputs, OutputConfig
from .depth import DepthStage, PanoDepth
from .depth.stage import ModelDepthStage
from .errors import InputError
from .fsutil import atomic_write_bytes, atomic_write_json, fsync_file, reserve
from .gaussians import Gaussians
from .io import (
    Panorama,
    Region,
    load_depth_frames,
    load_mask,
    load_panorama,
    load_regions,
    regions_from_mask,
    resize_depth,
    validate_regions,
)
from .lift.optimize import Lifter
from .lift.raster import render_view
from .metrics import (
    loop_discontinuity,
    peak_rss_mb,
    seam_discontinuity,
    static_max_error,
)
from .progress import CancelToken, Progress, ProgressCallback
from .scene import Scene4D, full_set_bytes, save_scene
from .text import TextPanoConfig
from .tour import look_around
from .video import write_mp4

STAGES = ("text", "load", "animate", "depth", "lift", "save")
MODEL_DEPTH_ROWS = 1024  # model depth is aligned at up to this many rows, then resampled
# The stages' shares of the progress bar: measured on the standard preset (2-core CPU, 102 s:
# load 0, animate 3, depth 0, lift 85, save 11; docs/BENCHMARKS.md); text: a guess for SDXL.
_WEIGHTS = {"text": 0.3, "load": 0.01, "animate": 0.03, "depth": 0.01, "lift": 0.85, "save": 0.11}


# ----------------------------------------------------------------------------------------
# loading


@dataclass
class Loaded:
    pano: Panorama
    regions: list[Region]
    user_depth: np.ndarray | None  # [T, H, W] (a broadcast view when one map for all)
    understood: dict[str, str] = dataclasses.field(default_factory=dict)  # --region: motion read


def load_inputs(inputs: Inputs, n_frames: int, still_ok: bool = False) -> Loaded:
    """Load and validate everything before any output is written (``n_frames``: the
    animation's frame count, which per-frame depth must match; ``still_ok``: no regions
    is a still scene, for panoramas made from text)."""
    pano = load_panorama(inputs.panorama)
    size = (pano.height, pano.width)
    _one_region_source(inputs)
    understood: dict[str, str] = {}
    if inputs.region_args:
        regions, understood = regions_from_text(pano, inputs.region_args, inputs.seg_model)
    elif inputs.regions is not None:
        regions = load_regions(inputs.regions, size, _segmenter(pano, inputs.seg_model))
    elif inputs.mask is not None:
        mask = load_mask(inputs.mask, size)
        regions = regions_from_mask(
            mask,
            inputs.direction_deg,
            inputs.speed_deg_s,
            name=Path(inputs.mask).stem,
            motion=inputs.motion,
        )
    elif still_ok:
        regions = []  # a panorama made from text, nothing named to move: a still scene
    else:
        raise InputError(
            "nothing to animate: give a mask (--mask M), a region file (--regions R.json) or "
            "--region 'NAME: how it moves'"
        )
    if regions:
        validate_regions(regions, size)
    depth = None
    if inputs.depth is not None:
        depth = load_depth_frames(inputs.depth, size, n_frames)  # [T, H, W], NaN = invalid
    return Loaded(pano, regions, depth, understood)


def _one_region_source(inputs: Inputs) -> None:
    given = [inputs.mask is not None, inputs.regions is not None, bool(inputs.region_args)]
    if sum(given) > 1:
        raise InputError("give one of --mask, --regions or --region, not several")


def check_sized_inputs(inputs: Inputs, size: tuple[int, int], n_frames: int) -> None:
    """What can be checked of the inputs against a panorama of ``size`` (H, W) before it
    exists (one made from text): the mask, the region file's masks and the depth. Raises
    InputError; reads only."""
    _one_region_source(inputs)
    if inputs.mask is not None:
        load_mask(inputs.mask, size)
    if inputs.regions is not None:  # regions found by mask_prompt: stand-ins until the panorama
        stand_in = (lambda _prompt: np.ones(size, bool)) if inputs.seg_model else None
        load_regions(inputs.regions, size, stand_in)
    if inputs.depth is not None:
        load_depth_frames(inputs.depth, size, n_frames)


def _segmenter(pano: Panorama, seg_model: str | None):
    """``segment(mask_prompt) -> [H, W] bool`` on this panorama, or None without a model."""
    if not seg_model:
        return None
    from .text.segment import clipseg_predictor, segment_on_sphere

    predict = clipseg_predictor(seg_model)
    return lambda prompt: segment_on_sphere(pano.rgb, [prompt], predict)[0][0]


def regions_from_text(
    pano: Panorama, args: tuple[str, ...], seg_model: str | None
) -> tuple[list[Region], dict[str, str]]:
    """--region "NAME: PROMPT" -> regions found by NAME with the seg model, moving as the
    prompt's words say (:mod:`engine.text.motion`), carrying the prompt for text models."""
    from .text.motion import parse_motion, parse_region_arg
    from .text.segment import clipseg_predictor, segment_on_sphere

    try:
        named = [parse_region_arg(a) for a in args]
    except ValueError as e:
        raise InputError(str(e)) from None
    predict = clipseg_predictor(seg_model or "")
    masks, _ = segment_on_sphere(pano.rgb, [n for n, _ in named], predict)
    regions, understood = [], {}
    for (name, prompt), mask in zip(named, masks):
        m = parse_motion(prompt)
        regions.append(Region(name, mask, m.direction_deg, m.speed_deg_s, motion=m.motion,
                              prompt=prompt))  # fmt: skip
        understood[name] = m.summary()
    return regions, understood


# ----------------------------------------------------------------------------------------
# the pipeline


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the wall time of the block in ``timings[stage]`` (seconds)."""
    t0 = time.monotonic()
    try:
        yield
    finally:
        timings[stage] = round(time.monotonic() - t0, 3)


def stage_spans(text: bool = False) -> dict[str, tuple[float, float]]:
    """stage -> (start, end): the part of the overall fraction each stage reports in (the
    text stage only when the panorama is generated)."""
    used = [s for s in STAGES if text or s != "text"]
    total = sum(_WEIGHTS[s] for s in used)
    out, start = {}, 0.0
    for s in used:
        out[s] = (start, start + _WEIGHTS[s] / total)
        start += _WEIGHTS[s] / total
    return out


def _stage_progress(
    callback: ProgressCallback | None, cancel: CancelToken, text: bool = False
) -> dict[str, Progress]:
    """One reporter per stage, spanning its share of the whole run (:func:`stage_spans`)."""
    return {s: Progress(s, callback, cancel, a, b) for s, (a, b) in stage_spans(text).items()}


def run(
    inputs: Inputs,
    cfg: GenerateConfig,
    out: Path,
    *,
    callback: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    resume: bool = False,
) -> dict:
    """Generate a 4D scene from ``inputs`` into folder ``out``; returns the report dict."""
    cancel = cancel or CancelToken()
    prog = _stage_progress(callback, cancel, cfg.text is not None)
    timings: dict[str, float] = {}
    out = Path(out)
    notes: list[str] = []
    if cfg.text is not None:
        check_sized_inputs(inputs, cfg.text.size, cfg.animate.frames)
        with _timed(timings, "text"):
            inputs = text_stage(inputs, cfg.text, out, resume, prog["text"], notes)
    with _timed(timings, "load"):
        prog["load"].update(0.0, f"reading {Path(inputs.panorama).name}")
        loaded = load_inputs(inputs, cfg.animate.frames, still_ok=cfg.text is not None)
        if out.exists() and not out.is_dir():
            raise InputError(f"--out {out} exists and is not a folder")
        ckpt = Checkpoints(out, fingerprint(inputs, cfg), resume)
        prog["load"].update(
            1.0, f"{loaded.pano.width}x{loaded.pano.height}, {len(loaded.regions)} region(s)"
        )
    with _timed(timings, "animate"):
        video = animate_stage(loaded, cfg, ckpt, prog["animate"])
    with _timed(timings, "depth"):
        depth = depth_stage(loaded, cfg, video, ckpt, prog["depth"])
    with _timed(timings, "lift"):
        scene, lift_metrics = lift_stage(loaded, cfg, video, depth, ckpt, prog["lift"])
    with _timed(timings, "save"):
        values = save_stage(loaded, cfg, video, scene, out, prog["save"])
    values.update(lift_metrics)
    values.update(_video_metrics(loaded.pano, video))
    values["source_size"] = f"{loaded.pano.width}x{loaded.pano.height}"
    if loaded.understood:
        values["regions_understood"] = loaded.understood
    if notes:
        values["notes"] = notes
    values["timings_s"] = timings
    values["peak_rss_mb"] = round(peak_rss_mb(), 1)
    on_cuda = values.pop("lift_device", "cpu").startswith("cuda")
    values["device"] = "cuda (gsplat rasteriser)" if on_cuda else "cpu (pure-torch rasteriser)"
    atomic_write_json(out / "report.json", values)
    ckpt.remove()
    return values


def text_stage(
    inputs: Inputs, cfg: TextPanoConfig, out: Path, resume: bool, progress: Progress, notes: list
) -> Inputs:
    """The panorama of ``cfg.prompt`` as OUT/panorama.png (reused by --resume when made from
    the same settings); the inputs then read it like any panorama."""
    from .text import generate_panorama

    path, marker = out / "panorama.png", out / ".pano4d-text.json"
    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if resume and path.is_file() and marker.is_file() and marker.read_text() == key:
        progress.update(1.0, "panorama from the previous run")
        return dataclasses.replace(inputs, panorama=path)
    rgb, _, model_notes = generate_panorama(cfg, progress)
    notes.extend(model_notes)
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV is BGR
    if not ok:
        raise OSError(f"cannot encode {path}")
    atomic_write_bytes(path, png.tobytes())
    atomic_write_bytes(marker, key.encode())
    return dataclasses.replace(inputs, panorama=path)


def animate_stage(
    loaded: Loaded, cfg: GenerateConfig, ckpt: Checkpoints, progress: Progress
) -> PanoVideo:
    frames_path, (h, w) = ckpt.path("frames.npy"), loaded.pano.rgb.shape[:2]
    if ckpt.done("animate"):
        frames = ckpt.load_array("frames.npy", (-1, h, w, 3))
        progress.update(1.0, "resumed from checkpoint")
        return PanoVideo(frames, cfg.animate.fps, np.array(ckpt.load_array("weight.npy", (h, w))))
    settings = {"svd": cfg.svd, "wan": cfg.wan}.get(cfg.animator, cfg.animate)
    animator = get_animator(cfg.animator)(settings)
    t = cfg.animate.frames
    frames = np.lib.format.open_memmap(frames_path, mode="w+", dtype=np.uint8, shape=(t, h, w, 3))
    reserve(frames_path)  # a full disk is an OSError now, not a SIGBUS when a page is written
    video = animator.run(loaded.pano, loaded.regions, progress, out=frames)
    # unmap, then fsync the file: the dirty pages stay in the OS page cache and fsync writes
    # them without holding the GIL (numpy's memmap.flush -> mmap.flush holds it: a ~110 ms
    # UI stall at 2048x1024 x 16 frames while the app generates)
    fps, weight = video.fps, video.weight
    del frames, video  # the animator's video holds the mapping too
    fsync_file(frames_path)
    ckpt.save_array("weight.npy", weight)
    ckpt.mark("animate")
    return PanoVideo(np.load(frames_path, mmap_mode="r"), fps, weight)


def depth_stage(
    loaded: Loaded, cfg: GenerateConfig, video: PanoVideo, ckpt: Checkpoints, progress: Progress
) -> PanoDepth:
    """Depth at the panorama's own resolution for every frame (the model path aligns at up
    to 1024 rows and resamples, keeping depth edges)."""
    size = (loaded.pano.height, loaded.pano.width)
    if ckpt.done("depth"):
        d = ckpt.load_array("depth.npy")  # [T, H, W], or [H, W] for all
        if d.shape[-2:] != size or d.ndim not in (2, 3):
            raise ckpt.damaged(
                "depth.npy", f"shape {list(d.shape)}, expected [T, {size[0]}, {size[1]}]"
            )
        progress.update(1.0, "resumed from checkpoint")
        source = ckpt.state.get("depth_source", "checkpoint")
        if d.ndim == 3:
            return PanoDepth(d, source)
        return PanoDepth(np.broadcast_to(d, (video.n_frames, *d.shape)), source)
    if cfg.depth_model is not None:
        rows = min(size[0], MODEL_DEPTH_ROWS)
        stage = ModelDepthStage(cfg.depth_model, cfg.depth)
        depth = stage.run(video.frames, (rows, 2 * rows), video.weight, loaded.user_depth, progress)
        full = np.stack([resize_depth(d, size) for d in depth.depth])
        depth = PanoDepth(full, depth.source)
    else:
        depth = DepthStage(cfg.depth).run(video.n_frames, size, loaded.user_depth, progress)
    d = depth.depth
    ckpt.save_array("depth.npy", np.ascontiguousarray(d[0] if d.strides[0] == 0 else d))
    ckpt.state["depth_source"] = depth.source
    ckpt.mark("depth")
    return depth


def lift_stage(loaded, cfg, video: PanoVideo, depth, ckpt: Checkpoints, progress: Progress):
    lifter = Lifter(cfg.lift)
    static = ckpt.load_set("static.safetensors")
    dynamic: list[Gaussians] = []
    if static is not None:
        for t in range(video.n_frames):
            g = ckpt.load_set(f"dynamic_{t:04d}.safetensors")
            if g is None:
                break
            dynamic.append(g)
        if not dynamic:
            static = None

    def on_static(s: Gaussians, d0: Gaussians) -> None:
        ckpt.save_set("dynamic_0000.safetensors", d0)
        ckpt.save_set("static.safetensors", s)

    def on_frame(t: int, g: Gaussians) -> None:
        ckpt.save_set(f"dynamic_{t:04d}.safetensors", g)

    result = lifter.run(
        video.frames,
        depth.depth,
        video.weight,
        progress,
        resume_static=static,
        resume_dynamic=dynamic,
        on_static=on_static,
        on_frame=on_frame,
    )
    meta = {
        "generator": f"Pano4D {__version__}",
        "source": str(loaded.pano.path),
        "source_size": [loaded.pano.width, loaded.pano.height],
        "preset": cfg.preset,
        "animator": cfg.animator,
        "depth": depth.source,
        "regions": [
            {
                "name": r.name,
                "motion": r.motion,
                "direction_deg": r.direction_deg,
                "speed_deg_s": r.speed_deg_s,
                **({"prompt": r.prompt} if r.prompt else {}),
            }
            for r in loaded.regions
        ],
        **({"prompt": cfg.wan.prompt} if cfg.animator == "wan" and cfg.wan.prompt else {}),
    }
    return Scene4D(result.static, result.dynamic, video.fps, meta), result.metrics


def save_stage(
    loaded, cfg: GenerateConfig, video: PanoVideo, scene: Scene4D, out: Path, progress: Progress
) -> dict:
    for name in ("report.json", "panorama.mp4", "preview.mp4"):  # an earlier run's, if any:
        (out / name).unlink(missing_ok=True)  # a save cut short leaves no mix of two runs
    progress.update(0.0, "writing the scene")
    nbytes = save_scene(scene, out / "scene", half=cfg.output.half)
    progress.update(0.1, "writing panorama.mp4")
    loops = max(1, cfg.output.equirect_loops)
    frames = (video.frames[i % video.n_frames] for i in range(video.n_frames * loops))
    write_mp4(
        out / "panorama.mp4",
        frames,
        video.fps,
        spherical=True,
        progress=progress.sub(0.1, 0.5),
        total=video.n_frames * loops,
    )
    tour = preview_frames(scene, cfg.output, progress.sub(0.5, 1.0))
    write_mp4(out / "preview.mp4", tour, video.fps)
    n_per_frame = len(scene.static) + len(scene.dynamic[0])
    full = scene.n_frames * full_set_bytes(n_per_frame, scene.sh_degree, cfg.output.half)
    return {
        "gaussians_static": len(scene.static),
        "gaussians_dynamic_per_frame": len(scene.dynamic[0]),
        "frames": scene.n_frames,
        "bytes_on_disk": nbytes,
        "bytes_full_per_frame_sets": full,
    }


def preview_frames(scene: Scene4D, cfg: OutputConfig, progress: Progress) -> Iterator[np.ndarray]:
    """The look-around preview of a generated scene (pure-torch rasteriser)."""
    views = look_around(cfg.preview_frames, cfg.preview_size, cfg.preview_fov_deg)
    return render_tour(scene, views, progress)


def _torch_draw(g: Gaussians, view: View) -> np.ndarray:
    with torch.no_grad():
        return render_view(g, view, background=torch.zeros(3)).rgb.numpy()


def render_tour(
    scene: Scene4D,
    views: list[View],
    progress: Progress,
    draw: Callable[[Gaussians, View], np.ndarray] = _torch_draw,
) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames of ``scene`` along ``views``, scene time advancing one
    animation frame per video frame (looping). ``draw(gaussians, view)`` returns a float
    [H, W, 3] image in [0, 1]: the pure-torch rasteriser by default (the viewer passes its
    OpenGL renderer)."""
    for i, view in enumerate(views):
        t = i % scene.n_frames
        rgb = draw(scene.frame(t), view)
        progress.update(
            (i + 1) / len(views),
            f"look-around view {i + 1}/{len(views)} (scene frame {t + 1}/{scene.n_frames})",
        )
        yield (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _video_metrics(pano: Panorama, video: PanoVideo) -> dict:
    return {
        "seam_discontinuity": seam_discontinuity(video.frames)["ratio"],
        "seam_discontinuity_input": seam_discontinuity(pano.rgb)["ratio"],
        "loop_discontinuity": loop_discontinuity(video.frames, video.weight)["ratio"],
        "static_max_error": static_max_error(video.frames, pano.rgb, video.weight),
        "animated_fraction": float((video.weight > 0).mean()),
    }
