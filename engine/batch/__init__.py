"""Batches of ``generate`` jobs, on this machine or a Ray cluster (``main.py batch``).

:func:`run_batch` is the driver: it starts the jobs that are left (``resume`` skips the ones
that are done), follows their progress and results through an executor (:mod:`.local`:
worker processes here; :mod:`.ray_cluster`: Ray tasks), keeps ``DIR/batch.json`` current
(:mod:`.state`) and stops cleanly when the cancel token is set. Each job writes ``DIR/NAME/``
as ``generate`` does (:mod:`.worker`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..progress import CancelToken
from .jobs import Job, load_jobs
from .state import BatchState

__all__ = ["BatchConfig", "BatchState", "Job", "load_jobs", "run_batch"]


@dataclass(frozen=True)
class BatchConfig:
    cluster: str = "local"  # "local", "ray" (start or join) or "ray:ADDRESS"
    max_parallel: int | None = None  # local: jobs at a time (default 1); Ray: a cap
    resume: bool = False
    max_attempts: int = 3  # runs of a job whose worker died (each resumes)
    shared: bool | None = None  # Ray: do workers see DIR? None: each task looks


def make_executor(cfg: BatchConfig, out: Path, batch_id: str):
    if cfg.cluster == "local":
        from .local import LocalExecutor

        return LocalExecutor(cfg.max_parallel or 1, cfg.max_attempts)
    if cfg.cluster == "ray" or cfg.cluster.startswith("ray:"):
        from .ray_cluster import RayExecutor

        address = cfg.cluster.partition(":")[2] or None
        return RayExecutor(out, batch_id, address, cfg.max_parallel, cfg.max_attempts, cfg.shared)
    raise InputError(f"--cluster must be local, ray or ray:ADDRESS, got {cfg.cluster!r}")


def run_batch(
    jobs: list[Job],
    out: Path,
    cfg: BatchConfig = BatchConfig(),
    *,
    jobs_file: Path | None = None,
    on_change: Callable[[BatchState], None] | None = None,
    cancel: CancelToken | None = None,
) -> BatchState:
    """Run ``jobs`` into folder ``out``; returns the final state (also in out/batch.json).
    ``on_change(state)`` is called after every batch of events (a few times a second)."""
    cancel = cancel or CancelToken()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    batch_id = uuid.uuid4().hex
    executor = make_executor(cfg, out, batch_id)  # a bad --cluster leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "jobs_file": str(jobs_file) if jobs_file else None,
        "cluster": executor.describe,
    }
    state = BatchState(out / "batch.json", jobs, meta, cfg.resume)
    by_name = {j.name: j for j in jobs}
    todo = list(state.todo())
    running: set[str] = set()
    stopping = False
    try:
        while todo or running:
            if cancel.cancelled and not stopping:
                stopping = True
                executor.cancel()
                todo.clear()
            while todo and len(running) < executor.slots:
                name = todo.pop(0)
                try:
                    executor.submit(by_name[name], out / name, batch_id, cfg.resume)
                except InputError as e:
                    state.update(name, status="failed", error=str(e))
                    continue
                running.add(name)
                state.update(
                    name, status="running", stage="queued", fraction=0.0, message="", attempts=1
                )
            for event in executor.poll(0.25):
                _apply(state, running, event)
            if on_change is not None:
                on_change(state)
    finally:
        executor.close()
        for name in running:  # stopped before it reported back
            state.update(name, status="cancelled")
        state.write(finished=True)
    return state


def _apply(state: BatchState, running: set[str], event: tuple) -> None:
    kind, name = event[0], event[1]
    if name not in state.jobs:
        return
    if kind == "progress":
        _, _, stage, fraction, message = event
        state.update(name, stage=stage, fraction=round(float(fraction), 4), message=message)
    elif kind == "retry":
        state.update(name, message=event[2], attempts=state.jobs[name]["attempts"] + 1)
    elif kind == "lost":
        running.discard(name)
        state.update(name, status="failed", error=event[2])
    elif kind == "result":
        running.discard(name)
        result = event[2]
        fields = {k: result[k] for k in ("seconds", "figures", "error", "attempts") if k in result}
        if result["status"] == "done":
            fields.update(fraction=1.0, stage="done", message="")
        state.update(name, status=result["status"], **fields)
