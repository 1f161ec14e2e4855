"""Make the README / docs images from a finished demo run.

    python main.py demo --out demo_out && python scripts/make_doc_images.py demo_out

Writes docs/images/park_overview.jpg (input | painted regions | animated frame, with the
difference to the input) and docs/images/park_preview.jpg (frames of the look-around tour
rendered from the 4D Gaussian scene).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.io import load_panorama, load_regions  # noqa: E402
from engine.video import read_mp4  # noqa: E402


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (10 + 11 * len(text), 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main(run: Path) -> None:
    samples = ROOT / "resources" / "samples"
    pano = load_panorama(samples / "park_2048x1024.png")
    regions = load_regions(samples / "park_regions.json", (pano.height, pano.width))
    w = 768
    h = w // 2
    small = cv2.resize(pano.rgb, (w, h), interpolation=cv2.INTER_AREA)
    overlay = small.astype(np.float32)
    for r in regions:
        m = cv2.resize(r.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA) > 0
        overlay[m] = 0.5 * overlay[m] + 0.5 * np.array(r.color, np.float32)
    frames = read_mp4(run / "panorama.mp4")
    mid = cv2.resize(frames[len(frames) // 4], (w, h), interpolation=cv2.INTER_AREA)
    rows = [
        label(small, "input panorama"),
        label(overlay.astype(np.uint8), "painted regions: sky (right), trees (up)"),
        label(mid, "animated panorama, frame 4 of 16"),
    ]
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    overview = np.concatenate(rows, axis=0)[:, :, ::-1]
    cv2.imwrite(str(out / "park_overview.jpg"), overview, [cv2.IMWRITE_JPEG_QUALITY, 88])
    tour = read_mp4(run / "preview.mp4")
    picks = [tour[i] for i in np.linspace(0, len(tour) - 1, 4).astype(int)]
    grid = np.concatenate([np.concatenate(picks[:2], 1), np.concatenate(picks[2:], 1)], 0)
    grid = label(grid, "rendered from the 4D Gaussian scene")
    cv2.imwrite(str(out / "park_preview.jpg"), grid[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {out / 'park_overview.jpg'} and {out / 'park_preview.jpg'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_out"))
