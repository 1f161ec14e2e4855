"""``DIR/batch.json``: the state of a batch, rewritten atomically as it changes.

::

    {"format": "pano4d-batch-status", "version": 1, "jobs_file": ..., "cluster": "local",
     "started": ISO, "updated": ISO, "finished": ISO or null, "seconds": ...,
     "summary": {"total": 3, "done": 2, "failed": 1, "running": 0, "pending": 0,
                 "cancelled": 0, "skipped": 0, "scenes_per_hour": ...},
     "jobs": [{"index": 0, "name": "park", "status": "done", "attempts": 1,
               "started": ISO, "finished": ISO, "seconds": 21.4, "stage": "save",
               "fraction": 1.0, "message": ..., "error": null, "figures": {...}}, ...]}

A job's status is ``pending``, ``running``, ``done``, ``failed`` (its one-line ``error``) or
``cancelled``. ``batch --resume`` keeps the jobs that are done (and whose ``report.json`` is
still there) and runs the rest again, from their checkpoints.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..fsutil import atomic_write_json
from .jobs import Job

STATUSES = ("pending", "running", "done", "failed", "cancelled")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class BatchState:
    """The jobs' states, and batch.json kept up to date (at every change of status, and at
    most every ``interval_s`` for progress)."""

    def __init__(self, path: Path, jobs: list[Job], meta: dict, resume: bool, interval_s=5.0):
        self.path = Path(path)
        self.interval_s = interval_s
        self.t0 = time.monotonic()
        self.written = 0.0
        previous = _read(self.path) if resume else {}
        before = {j.get("name"): j for j in previous.get("jobs", [])}
        self.skipped: set[str] = set()
        self.jobs: dict[str, dict] = {}
        for job in jobs:
            old = before.get(job.name, {})
            if (
                old.get("status") == "done"
                and (self.path.parent / job.name / "report.json").is_file()
            ):
                self.jobs[job.name] = old | {"index": job.index}
                self.skipped.add(job.name)
            else:
                self.jobs[job.name] = _pending(job)
        self.doc = {"format": "pano4d-batch-status", "version": 1, **meta, "started": _now()}
        self.write()

    def todo(self) -> list[str]:
        """Names of the jobs still to run, in job-file order."""
        return [n for n, j in self.jobs.items() if n not in self.skipped]

    def update(self, name: str, **fields) -> None:
        """Change a job's fields; writes batch.json at once when its status changed."""
        job = self.jobs[name]
        changed = "status" in fields and fields["status"] != job["status"]
        if fields.get("status") == "running" and job["status"] != "running":
            job["started"], job["finished"], job["error"] = _now(), None, None
        if fields.get("status") in ("done", "failed", "cancelled"):
            job["finished"] = _now()
        job.update(fields)
        if changed or time.monotonic() - self.written >= self.interval_s:
            self.write()

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in STATUSES}
        for job in self.jobs.values():
            c[job["status"]] += 1
        return c

    def fraction(self) -> float:
        """Share done of the work this run had to do (skipped jobs excluded)."""
        todo = self.todo()
        if not todo:
            return 1.0
        f = 0.0
        for name in todo:
            job = self.jobs[name]
            f += 1.0 if job["status"] in ("done", "failed") else float(job.get("fraction") or 0)
        return f / len(todo)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def write(self, finished: bool = False) -> None:
        seconds = round(self.elapsed(), 2)
        counts = self.counts()
        done_here = sum(1 for n in self.todo() if self.jobs[n]["status"] == "done")
        summary = {"total": len(self.jobs), **counts, "skipped": len(self.skipped)}
        if done_here and seconds > 0:
            summary["scenes_per_hour"] = round(3600.0 * done_here / seconds, 2)
        self.doc.update(
            updated=_now(),
            finished=_now() if finished else None,
            seconds=seconds,
            summary=summary,
            jobs=sorted(self.jobs.values(), key=lambda j: j["index"]),
        )
        atomic_write_json(self.path, self.doc)
        self.written = time.monotonic()


def _pending(job: Job) -> dict:
    return {
        "index": job.index,
        "name": job.name,
        "status": "pending",
        "attempts": 0,
        "started": None,
        "finished": None,
        "seconds": None,
        "stage": None,
        "fraction": 0.0,
        "message": "",
        "error": None,
        "figures": None,
    }


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
