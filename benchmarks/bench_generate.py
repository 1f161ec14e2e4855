"""End-to-end time and peak memory of `main.py generate`, and scene size vs. T full sets.

Runs each case as a separate process (so peak RSS is that run's own) and prints a markdown
table for docs/BENCHMARKS.md, plus the raw numbers as JSON.

    python benchmarks/bench_generate.py                 # standard (park 2048x1024) and 4k
    python benchmarks/bench_generate.py --cases standard
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine  # benchmarks/ is on sys.path (run as a script)
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def quarter_mask(path: Path, size: tuple[int, int]) -> Path:
    """A mask of the top quarter of the rows (25% of the pixels: sky and the lake-free
    upper part), the 'animated area' the issue's size target speaks of."""
    h, w = size
    m = np.zeros((h, w), np.uint8)
    m[: h // 4] = 255
    Image.fromarray(m).save(path)
    return path


def cases(tmp: Path) -> dict[str, list[str]]:
    samples = ROOT / "resources" / "samples"
    big = SHARED / "pannellum_examplepano_4096x2048.jpg"
    return {
        "standard": [
            str(samples / "park_2048x1024.png"),
            "--regions",
            str(samples / "park_regions.json"),
            "--preset",
            "standard",
        ],
        "4k": [
            str(big),
            "--mask",
            str(quarter_mask(tmp / "quarter_4096.png", (2048, 4096))),
            "--speed",
            "3",
            "--preset",
            "4k",
        ],
        "preview": [
            str(samples / "park_2048x1024.png"),
            "--regions",
            str(samples / "park_regions.json"),
            "--preset",
            "preview",
        ],
    }


def run_case(name: str, args: list[str], tmp: Path) -> dict:
    out = tmp / f"out_{name}"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "generate", *args, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    return {
        "case": name,
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(report["peak_rss_mb"] / 1000, 2),  # the run's own ru_maxrss
        "report": report,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=["standard", "4k"])
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--keep", type=Path, help="write the outputs here (out_CASE/) and keep them")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = a.keep or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        all_cases = cases(tmp)
        for name in a.cases:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            results.append(run_case(name, all_cases[name], tmp))
    print(f"\nMachine: {machine()}\n")
    print(
        "| preset | input | frames | wall | peak RSS | stages (s) | Gaussians static + dyn/frame "
        "| per input px | scene on disk | T full sets | ratio | psnr_native | psnr_headset "
        "| psnr_train |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rep = r["report"]
        stages = ", ".join(f"{k} {v:.0f}" for k, v in rep["timings_s"].items())
        full = rep["bytes_full_per_frame_sets"]
        print(
            f"| {r['case']} | {rep.get('source_size', '')} | {rep['frames']} | {r['wall_s']:.0f} s "
            f"| {r['peak_rss_gb']:.2f} GB | {stages} "
            f"| {rep['gaussians_static']} + {rep['gaussians_dynamic_per_frame']} "
            f"| {rep['gaussians_per_input_pixel']:.2f} "
            f"| {rep['bytes_on_disk'] / 1e6:.1f} MB | {full / 1e6:.1f} MB "
            f"| {rep['bytes_on_disk'] / full:.3f} "
            f"| {rep['psnr_native']:.2f} dB | {rep['psnr_headset']:.2f} dB "
            f"| {rep['psnr_train']:.2f} dB |"
        )
    for r in results:
        rep = r["report"]
        print(f"{r['case']}: psnr_native {rep['psnr_native_resolution']}; "
              f"psnr_headset {rep['psnr_headset_resolution']}; "
              f"psnr_train {rep['psnr_train_resolution']}")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
