"""Presets are data: per-stage field overrides applied to the frozen stage configs.

``build_config("standard", frames=24)`` returns a :class:`engine.pipeline.GenerateConfig`.
Field names are those of the stage dataclasses (FlowConfig, DepthConfig, LiftConfig,
OutputConfig); anything not listed keeps the dataclass default.
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, dict[str, object]]] = {
    # seconds on a 2-core CPU; small Gaussian grid, short optimisation
    "preview": {
        "animate": {"frames": 8},
        "lift": {"work_height": 64, "view_size": 64, "static_iters": 30, "dynamic_iters": 3},
        "output": {"preview_size": (144, 256), "preview_frames": 16},
    },
    # the default: 2048x1024 panoramas in a few minutes on a 2-core CPU
    "standard": {
        "animate": {"frames": 16},
        "lift": {"work_height": 128, "view_size": 96, "static_iters": 80, "dynamic_iters": 6},
        "output": {"preview_size": (288, 512), "preview_frames": 32},
    },
    # 4096x2048 inputs: a denser Gaussian grid and larger training views
    "4k": {
        "animate": {"frames": 16},
        "lift": {"work_height": 192, "view_size": 128, "static_iters": 100, "dynamic_iters": 6},
        "output": {"preview_size": (360, 640), "preview_frames": 32},
    },
}

DEFAULT_PRESET = "standard"
