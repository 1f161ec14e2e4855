"""Make the region masks of the bundled demo sample (resources/samples/park_*).

    PYTHONPATH=. python scripts/make_sample_masks.py [--overlay overlay.png]

Reads ``resources/samples/park_2048x1024.png`` and writes, through
:func:`engine.io.save_regions`, ``park_regions.json`` with two regions and their 8-bit 0/255
masks ``park_sky.png`` and ``park_trees.png``. Deterministic colour/position heuristics plus
morphology (OpenCV); everything that looks left/right wraps around the panorama seam.

* ground line: per column, the lowest row above which the image stops looking like grass
  (green hue, saturated), smoothed across columns;
* sky: bright, bluish-or-white pixels above the ground line that are connected to the top
  edge after a morphological opening (so small gaps between branches stay with the trees),
  with small holes filled;
* trees: everything between the sky and the ground line that is not sky; the grass and the
  paths below the ground line stay static.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from engine.io import Region, load_panorama, save_regions  # noqa: E402

SAMPLES = os.path.join(ROOT, "resources", "samples")
PANORAMA = os.path.join(SAMPLES, "park_2048x1024.png")
REGIONS = os.path.join(SAMPLES, "park_regions.json")


def wrap_op(mask: np.ndarray, pad: int, op) -> np.ndarray:
    """Apply ``op`` to a [H, W] uint8 map with the left/right seam wrapped."""
    padded = np.pad(mask, ((0, 0), (pad, pad)), mode="wrap")
    return op(padded)[:, pad:-pad]


def morph(mask: np.ndarray, kind: int, size: tuple[int, int]) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, size)
    return wrap_op(
        mask,
        size[0] + 2,
        lambda m: cv2.morphologyEx(m, kind, kernel, borderType=cv2.BORDER_REPLICATE),
    )


def components_touching_top(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` 8-connected to the top row, with connections across the seam."""
    h, w = mask.shape
    doubled = np.hstack([mask, mask]).astype(np.uint8)
    n, labels = cv2.connectedComponents(doubled, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(labels[0][doubled[0] > 0])] = True
    keep[0] = False
    selected = keep[labels]
    return selected[:, :w] | selected[:, w:]


def fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Fill enclosed background components smaller than ``max_area`` pixels (seam-aware)."""
    h, w = mask.shape
    background = np.hstack([~mask, ~mask]).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < max_area
    small[0] = False
    filled = small[labels]
    return mask | filled[:, :w] | filled[:, w:]


def ground_line(rgb: np.ndarray) -> np.ndarray:
    """Row index per column where the grass begins (first grass row)."""
    h, w = rgb.shape[:2]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    grass = ((hue >= 26) & (hue <= 50) & (sat >= 60) & (val < 140)).astype(np.float32)
    smooth = wrap_op(grass, 16, lambda m: cv2.blur(m, (15, 9), borderType=cv2.BORDER_REPLICATE))
    # a row starts the ground if it and the 40 rows below it look like grass
    good = smooth >= 0.5
    run = cv2.erode(good.astype(np.uint8), np.ones((41, 1), np.uint8), anchor=(0, 0)) > 0
    lo, hi = h // 3, int(h * 0.62)
    band = run[lo:hi]
    line = np.where(band.any(axis=0), band.argmax(axis=0) + lo, hi).astype(np.int32)
    # patches of green foliage above the ground look like grass and pull the line up in a few
    # stretches: replace columns that stray from a wide running median (the camera is level,
    # the real line varies slowly), then smooth with a narrow one
    baseline = wrapped_median(line, 200)
    line = np.where(np.abs(line - baseline) > 5, baseline, line)
    return np.round(wrapped_median(line, 15)).astype(np.int32)


def wrapped_median(values: np.ndarray, k: int) -> np.ndarray:
    """Running median over 2k+1 samples of a periodic 1-D signal."""
    padded = np.concatenate([values[-k:], values, values[:k]]).astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1)
    return np.median(windows, axis=1)


def make_masks(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = rgb.shape[:2]
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    value = np.maximum(np.maximum(r, g), b)
    ground = ground_line(rgb)
    rows = np.arange(h)[:, None]
    above_ground = rows < ground[None, :]

    # sky candidates: bluish, or nearly white (the clouds by the sun) ...
    bluish = (b >= 95) & (b * 100 >= 85 * r) & (b * 100 >= 90 * g)
    whitish = (value >= 170) & (np.abs(r - b) <= 40) & (np.abs(g - b) <= 40)
    colour_ok = (bluish | whitish) & above_ground
    # ... and nearly as bright as the open sky around them: a normalised blur of the clearly
    # open sky gives the local sky brightness; sky seen through bare branches is darker and
    # goes with the trees instead of drifting with the clouds.
    open_sky = (colour_ok & (value >= 170)).astype(np.float32)
    kernel = (151, 151)

    def blur(m):
        return cv2.blur(m, kernel, borderType=cv2.BORDER_REFLECT)

    weight = wrap_op(open_sky, 80, blur)
    total = wrap_op(open_sky * value.astype(np.float32), 80, blur)
    reference = np.where(weight > 1e-3, total / np.maximum(weight, 1e-3), 255.0)
    candidate = colour_ok & (value >= 0.85 * reference)
    candidate = morph(candidate.astype(np.uint8), cv2.MORPH_OPEN, (7, 7)) > 0
    sky = components_touching_top(candidate)
    sky = fill_small_holes(sky, max_area=400)
    sky = morph(sky.astype(np.uint8), cv2.MORPH_CLOSE, (5, 5)) > 0
    sky &= above_ground

    # trees: the band between the sky and the ground line, minus the sky
    trees = above_ground & ~sky
    trees = morph(trees.astype(np.uint8), cv2.MORPH_OPEN, (3, 3)) > 0
    trees &= ~sky
    # keep only the big connected band (drop isolated specks inside the sky)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        np.hstack([trees, trees]).astype(np.uint8), connectivity=8
    )
    big = stats[:, cv2.CC_STAT_AREA] >= 2000
    big[0] = False
    kept = big[labels]
    trees = kept[:, :w] | kept[:, w:]
    return sky, trees


def overlay(rgb: np.ndarray, sky: np.ndarray, trees: np.ndarray) -> np.ndarray:
    out = rgb.astype(np.float32)
    out[sky] = 0.5 * out[sky] + 0.5 * np.array([80, 160, 255])
    out[trees] = 0.5 * out[trees] + 0.5 * np.array([255, 200, 0])
    return out.clip(0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", help="also write an overlay PNG here, for inspection")
    args = parser.parse_args(argv)
    pano = load_panorama(PANORAMA)
    sky, trees = make_masks(pano.rgb)
    regions = [
        Region(
            "sky", sky, direction_deg=0.0, speed_deg_s=3.0, feather_px=16.0, color=(255, 90, 200)
        ),
        Region(
            "trees",
            trees,
            direction_deg=0.0,
            speed_deg_s=2.5,
            feather_px=6.0,
            color=(255, 200, 0),
            motion="sway",
        ),
    ]
    save_regions(REGIONS, regions)
    total = sky.size
    print(f"sky {sky.sum() / total:.3f}, trees {trees.sum() / total:.3f} of the panorama")
    if args.overlay:
        cv2.imwrite(args.overlay, cv2.cvtColor(overlay(pano.rgb, sky, trees), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
