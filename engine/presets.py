"""Presets are data: per-stage field overrides applied to the frozen stage configs.

``build_config("standard", frames=24)`` returns a :class:`engine.pipeline.GenerateConfig`.
Field names are those of the stage dataclasses (FlowConfig, DepthConfig, LiftConfig,
OutputConfig); anything not listed keeps the dataclass default. Gaussian counts are about
1.27 * work_height^2 (equal-area grid). Timings are on a 2-core CPU (docs/BENCHMARKS.md).
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, dict[str, object]]] = {
    # seconds: check the regions and the motion (~21k Gaussians)
    "preview": {
        "animate": {"frames": 8},
        "lift": {
            "work_height": 128,
            "view_size": 96,
            "static_iters": 20,
            "dynamic_iters": 1,
            "views_per_iter": 1,
        },
        "output": {"preview_size": (144, 256), "preview_frames": 16},
    },
    # the default for 2048x1024 panoramas: ~330k Gaussians, a couple of minutes on a CPU
    "standard": {
        "animate": {"frames": 16},
        "lift": {"work_height": 512, "view_size": 256, "static_iters": 40, "dynamic_iters": 2},
        "output": {"preview_size": (288, 512), "preview_frames": 32},
    },
    # 4096x2048 panoramas: ~750k Gaussians and larger training views (a 1024-row grid with
    # the same views scored lower held-out PSNR and took longer: docs/BENCHMARKS.md)
    "4k": {
        "animate": {"frames": 16},
        "lift": {"work_height": 768, "view_size": 384, "static_iters": 40, "dynamic_iters": 2},
        "output": {"preview_size": (360, 640), "preview_frames": 32},
    },
}

DEFAULT_PRESET = "standard"
