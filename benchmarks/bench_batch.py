"""Batch throughput: N preview jobs of the park sample, run locally (one at a time) and on a
local 2-worker Ray cluster (each job a task of one CPU); scenes per hour and overhead per job
(batch wall time per job minus the job's own pipeline time).

Usage: python benchmarks/bench_batch.py [--jobs 4] [--preset preview]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.batch import BatchConfig, load_jobs, run_batch  # noqa: E402

SAMPLE = ROOT / "resources" / "samples"


def measure(jobs, out: Path, cfg: BatchConfig) -> dict:
    t0 = time.monotonic()
    state = run_batch(jobs, out, cfg)
    wall = time.monotonic() - t0
    own = [j["seconds"] for j in state.jobs.values() if j["status"] == "done"]
    return {
        "done": len(own),
        "wall_s": round(wall, 1),
        "scenes_per_hour": round(3600 * len(own) / wall, 1),
        "job_s_mean": round(sum(own) / len(own), 1),
        "overhead_s_per_job": round((wall - sum(own) / cfg_parallel(cfg)) / len(own), 2),
    }


def cfg_parallel(cfg: BatchConfig) -> int:
    return 2 if cfg.cluster == "ray" else (cfg.max_parallel or 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--preset", default="preview")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pano4d-bench-batch-"))
    entries = [
        {"name": f"park{i}", "panorama": str(SAMPLE / "park_2048x1024.png"),
         "regions": str(SAMPLE / "park_regions.json")}
        for i in range(args.jobs)
    ]  # fmt: skip
    (tmp / "jobs.json").write_text(json.dumps({"defaults": {"preset": args.preset},
                                               "jobs": entries}))  # fmt: skip
    jobs = load_jobs(tmp / "jobs.json")
    results = {"local (1 at a time)": measure(jobs, tmp / "local", BatchConfig())}
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results["ray, 2 workers x 1 CPU"] = measure(jobs, tmp / "ray", BatchConfig(cluster="ray"))
    ray.shutdown()
    print(json.dumps({"preset": args.preset, "jobs": args.jobs, **results}, indent=1))


if __name__ == "__main__":
    main()
