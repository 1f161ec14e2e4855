"""Presets are data: per-stage field overrides applied to the frozen stage configs.

``build_config("standard", frames=24)`` returns a :class:`engine.config.GenerateConfig`.
Field names are those of the stage dataclasses (FlowConfig, DepthConfig, LiftConfig,
OutputConfig); a nested dict overrides the fields of a nested config (``lift.cells``,
``lift.solve``, ...); anything not listed keeps the dataclass default. Timings are on a
2-core CPU (docs/BENCHMARKS.md).
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, dict[str, object]]] = {
    # seconds: check the regions and the motion; lifted at half the input's resolution
    "preview": {
        "animate": {"frames": 8},
        "lift": {
            "scale": 0.5,
            "solve": {"view_sets": 1, "iters": 20},
            "refine": {"passes": 0},
        },
        "output": {"preview_size": (144, 256), "preview_frames": 16},
        # a video model: one pass of 10 steps over 6 wide views (4 round the horizon, the
        # poles) of at most 256 px
        "svd": {
            "steps": 10,
            "two_pass": False,
            "view_size": 256,
            "fov_deg": 120.0,
            "rings": ((0.0, 4, 0.0),),
        },
        "wan": {"steps": 8, "view_size": 256, "fov_deg": 120.0, "rings": ((0.0, 4, 0.0),)},
        "text": {"steps": 12, "size": (512, 1024), "two_pass": False},
    },
    # the default for 2048x1024 panoramas: at the input's resolution, 0.6 Gaussians per
    # input pixel, one cube map of training views at 1.25x the input's angular resolution
    # (fit as a headset magnifies it: +1.3 dB there, the same at the input's own; the
    # animated regions' later frames at 1x, they are most of the time), two refinement
    # passes over it and 12 random native views each (as good as two cube maps, at 60 % of
    # the memory)
    "standard": {
        "animate": {"frames": 16},
        "lift": {
            "solve": {"view_sets": 1, "resolution": 1.25, "frame_resolution": 1.0},
            "refine": {"passes": 2, "random_views": 12},
        },
        "output": {"preview_size": (288, 512), "preview_frames": 32},
    },
    # 4096x2048 panoramas: at the input's resolution (about 5 M Gaussians), training views
    # at 1.25x (as standard); four refinement passes (about a minute each on 2 cores; 1 pass:
    # 31.2 dB native, 2: 32.1, 4: 33.0, the target; 527 s end to end); the finest
    # cells a little narrower (0.55 of a cell: +0.15 dB native, +0.5 dB in a headset, which
    # magnifies this size 1.6x; at 2048x1024, magnified 3.2x, it costs 1.2 dB there)
    "4k": {
        "animate": {"frames": 16},
        "lift": {
            "init": {"fine_footprint": 0.55},
            "solve": {"view_sets": 1, "resolution": 1.25, "frame_resolution": 1.0},
            "refine": {"passes": 4, "random_views": 12},
        },
        "output": {"preview_size": (360, 640), "preview_frames": 32},
    },
    # a CUDA GPU: gsplat rasterises the refinement, every cell at the finest level, three
    # cube maps at 1.25x (as the CPU presets, measured there) and a realistic iteration
    # budget (100 passes x 18 views = 1800 steps); not measured on a GPU yet
    "cuda": {
        "animate": {"frames": 16},
        "lift": {
            "device": "cuda",
            "cells": {"density": 1.0},
            "init": {"footprint": 0.5},
            "solve": {"view_sets": 3, "resolution": 1.25},
            "refine": {"passes": 100, "dynamic_passes": 4},
        },
        "output": {"preview_size": (540, 960), "preview_frames": 48},
    },
}

NEEDS_CUDA = {name for name, p in PRESETS.items() if p.get("lift", {}).get("device") == "cuda"}
DEFAULT_PRESET = "standard"

# What one job of a preset needs from a machine, for the batch scheduler (docs/BENCHMARKS.md:
# peak RSS of a 2048x1024 run, rounded up, and 4096x2048 for 4k; the CPU lift uses every
# core it is given). A Ray task asks for these; memory is in GB.
RESOURCES: dict[str, dict[str, float]] = {
    "preview": {"cpus": 1, "gpus": 0, "memory_gb": 1.5},
    "standard": {"cpus": 2, "gpus": 0, "memory_gb": 3.5},
    "4k": {"cpus": 2, "gpus": 0, "memory_gb": 6.5},
    "cuda": {"cpus": 4, "gpus": 1, "memory_gb": 16.0},
}
