"""Jobs on this machine: each in its own worker process (so a crash or an out-of-memory kill
takes one job, not the batch), ``max_parallel`` at a time (default 1: the pipeline already
uses every core). A worker that dies is started again and resumes from the job's
checkpoints, up to ``max_attempts`` times.

Workers ignore Ctrl-C (the terminal sends it to them too): the driver asks them to stop
through an event, and they stop at the next progress report with their checkpoints kept. A
worker whose driver died stops the same way.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
from pathlib import Path

from .jobs import Job


def _worker_main(spec, out, batch_id, resume, events, stop, parent) -> None:
    """A worker process: one job, its progress and result sent on ``events``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .worker import execute

    name = spec["name"]

    def report(stage: str, fraction: float, message: str) -> bool:
        events.put(("progress", name, stage, fraction, message))
        return stop.is_set() or os.getppid() != parent

    result = execute(spec, out, batch_id, resume, report)
    events.put(("result", name, result))


class LocalExecutor:
    """Worker processes on this machine (see the module's docstring)."""

    def __init__(self, max_parallel: int = 1, max_attempts: int = 3) -> None:
        self.ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited torch threads
        self.events = self.ctx.Queue()
        self.stop = self.ctx.Event()
        self.slots = max(1, max_parallel)
        self.max_attempts = max(1, max_attempts)
        self.running: dict[str, dict] = {}  # name -> {"proc", "args", "attempts", "result"}
        self.describe = f"local, {self.slots} job(s) at a time"

    def submit(self, job: Job, folder: Path, batch_id: str, resume: bool) -> None:
        args = (job.spec, str(folder), batch_id, resume)
        self.running[job.name] = {"args": args, "attempts": 0}
        self._start(job.name)

    def _start(self, name: str) -> None:
        entry = self.running[name]
        entry["attempts"] += 1
        proc = self.ctx.Process(
            target=_worker_main,
            args=(*entry["args"], self.events, self.stop, os.getpid()),
            name=f"pano4d-job-{name}",
        )
        proc.start()
        entry["proc"] = proc

    def poll(self, timeout: float) -> list[tuple]:
        """Events since the last call: ("progress", name, stage, fraction, message),
        ("result", name, dict), ("retry", name, reason) and ("lost", name, reason)."""
        out = self._drain(timeout)
        for name, entry in list(self.running.items()):
            proc = entry["proc"]
            if proc.is_alive():
                continue
            proc.join()
            out += self._drain(0.0)  # what it sent just before it exited
            if any(e[0] == "result" and e[1] == name for e in out):
                continue
            reason = f"the worker process died ({_exit_reason(proc.exitcode)})"
            if entry["attempts"] < self.max_attempts and not self.stop.is_set():
                out.append(("retry", name, f"{reason}; attempt {entry['attempts'] + 1}"))
                self._start(name)
            else:
                del self.running[name]
                out.append(("lost", name, f"{reason}, {entry['attempts']} time(s)"))
        return out

    def _drain(self, timeout: float) -> list[tuple]:
        out = []
        try:
            out.append(self.events.get(timeout=timeout) if timeout else self.events.get_nowait())
            while True:
                out.append(self.events.get_nowait())
        except queue.Empty:
            pass
        for event in out:
            if event[0] == "result":
                self.running.pop(event[1], None)
        return out

    def cancel(self) -> None:
        self.stop.set()

    def close(self) -> None:
        self.stop.set()
        for entry in self.running.values():
            entry["proc"].join(timeout=60)
            if entry["proc"].is_alive():
                entry["proc"].kill()
        self.running.clear()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
