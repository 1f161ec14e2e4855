"""Quality figures that need no model weights (DESIGN.md section 8).

Discontinuities are reported as *ratios* to the ordinary step they are compared with, so
1.0 means "the seam (or the loop) is as smooth as any other column (or frame) step" and
values well above 1 mean a visible jump:

- ``seam_discontinuity``: mean |col 0 - col W-1| / mean |col c - col c+1| (all rows,
  frames, channels), measured on the animated panorama.
- ``loop_discontinuity``: mean |frame 0 - frame T-1| / mean over t of |frame t+1 - frame t|,
  over the animated pixels only (static pixels do not change at all); None (null) for
  fewer than 3 frames, where the loop step is the only step.
- ``seam_discontinuity_input``: the same seam figure for the input panorama, so a seam
  that was already in the input is not blamed on the animation.
- ``static_max_error``: max |frame t - input| over static pixels and all frames (must be 0).
- ``static_flicker``: mean |render(t+1) - render(t)| over view pixels that see only static
  scene, in 0..255 units (0 for a perfect static/dynamic split).
"""

from __future__ import annotations

import resource
import sys

import numpy as np


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def seam_discontinuity(frames: np.ndarray) -> dict[str, float]:
    """frames [T, H, W, 3] (or [H, W, 3]) -> {seam, typical, ratio}."""
    f = frames if frames.ndim == 4 else frames[None]
    seam = _mean_abs(f[:, :, 0], f[:, :, -1])
    steps = [_mean_abs(f[i : i + 1, :, :-1], f[i : i + 1, :, 1:]) for i in range(f.shape[0])]
    typical = float(np.mean(steps))
    return {"seam": seam, "typical": typical, "ratio": seam / max(typical, 1e-9)}


def loop_discontinuity(frames: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    """frames [T, H, W, 3]; weight [H, W] (> 0 = animated) -> {loop, typical, ratio}."""
    t = frames.shape[0]
    if t < 3:  # with 2 frames the loop step is the only step: nothing to compare with
        return {"loop": 0.0, "typical": 0.0, "ratio": None}
    sel = (weight > 0) if weight is not None else np.ones(frames.shape[1:3], bool)
    if not sel.any():
        return {"loop": 0.0, "typical": 0.0, "ratio": 0.0}

    def px(i: int) -> np.ndarray:
        return frames[i][sel]

    loop = _mean_abs(px(0), px(t - 1))
    steps = [_mean_abs(px(i), px(i + 1)) for i in range(t - 1)]
    typical = float(np.mean(steps))
    ratio = loop / typical if typical > 0 else (0.0 if loop == 0 else float("inf"))
    return {"loop": loop, "typical": typical, "ratio": ratio}


def static_max_error(frames: np.ndarray, source: np.ndarray, weight: np.ndarray) -> int:
    """Largest difference (0..255) between any frame and the input on static pixels."""
    static = weight <= 0
    if not static.any():
        return 0
    worst = 0
    ref = source[static].astype(np.int16)
    for f in frames:
        worst = max(worst, int(np.abs(f[static].astype(np.int16) - ref).max()))
    return worst


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0, mask: np.ndarray | None = None) -> float:
    """PSNR in dB between two images of the same shape (optionally over a pixel mask)."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        d = d[mask]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def db_text(value: float | None, digits: int = 2) -> str:
    """A PSNR for people: '40.71 dB', or 'n/a' where there was nothing to compare (None,
    NaN: every pixel animated) and 'inf dB' for an exact match."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f} dB"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: the kernel's high-water mark (VmHWM) on
    Linux. ``ru_maxrss`` is the fallback elsewhere; on Linux it is not used because a
    process started by fork + exec inherits its parent's peak there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6
