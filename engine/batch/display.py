"""The batch's progress on a terminal: an overall bar with the time left, and one line per
running job, redrawn in place on a terminal; a line per change otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time

from ..metrics import db_text
from ..progress import clock, estimate_remaining
from .state import BatchState


def summary_text(state: BatchState) -> str:
    """'2/5 done, 1 failed  3:12 elapsed, about 4:25 left'."""
    f, elapsed = state.fraction(), state.elapsed()
    c = state.counts()
    parts = [f"{c['done']}/{len(state.jobs)} done"]
    parts += [f"{c[k]} {k}" for k in ("failed", "cancelled") if c[k]]
    if state.skipped:
        parts.append(f"{len(state.skipped)} from before")
    left = estimate_remaining(elapsed, f)
    left_s = f", about {clock(left)} left" if left else ""
    return f"{', '.join(parts)}  {clock(elapsed)} elapsed{left_s}"


def overall_line(state: BatchState, width: int = 24) -> str:
    """'[####----] 42.0%  2/5 done, 1 failed  3:12 elapsed, about 4:25 left'."""
    f = state.fraction()
    bar = "#" * int(width * f) + "-" * (width - int(width * f))
    return f"[{bar}] {100 * f:5.1f}%  {summary_text(state)}"


def job_line(job: dict) -> str:
    """'  park       lift     63%  frame 3/8' for a running job."""
    pct = f"{100 * float(job.get('fraction') or 0):3.0f}%"
    again = f" (attempt {job['attempts']})" if (job.get("attempts") or 0) > 1 else ""
    stage, message = str(job.get("stage") or ""), job.get("message") or ""
    return f"  {job['name'][:24]:<24} {stage:<8} {pct}  {message[:60]}{again}"


def finished_line(job: dict, total: int) -> str:
    head = f"[{job['index'] + 1}/{total}] {job['name']}: {job['status']}"
    if job["status"] == "done":
        fig = job.get("figures") or {}
        return f"{head} in {job.get('seconds') or 0:.1f} s{psnr_text(fig, ', ')}"
    if job["status"] == "failed":
        return f"{head}: {job.get('error')}"
    return head


def psnr_text(figures: dict, lead: str = "") -> str:
    """'psnr_native 40.71 dB (12 views of 60 deg at 683x683 px)', or '' without one."""
    if "psnr_native" not in figures:
        return ""
    where = str(figures.get("psnr_native_resolution", "")).split(" from")[0]
    return f"{lead}psnr_native {db_text(figures['psnr_native'])}" + (f" ({where})" if where else "")


class BatchTerminal:
    """``on_change`` for :func:`engine.batch.run_batch` that draws on ``stream``."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.block = 0  # lines drawn last time (terminal)
        self.last_draw = 0.0
        self.status: dict[str, tuple] = {}
        self.decile = -1

    def __call__(self, state: BatchState) -> None:
        lines = []
        for name, job in state.jobs.items():
            key = (job["status"], job.get("stage"))
            if self.status.get(name) != key:
                self.status[name] = key
                if job["status"] in ("done", "failed", "cancelled") and name not in state.skipped:
                    lines.append(finished_line(job, len(state.jobs)))
                elif job["status"] == "running" and not self.tty:
                    lines.append(job_line(job))
        if self.tty:
            self._redraw(state, lines)
        else:
            decile = int(10 * state.fraction())
            if decile != self.decile:
                self.decile = decile
                lines.append(overall_line(state))
            for line in lines:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _redraw(self, state: BatchState, finished: list[str]) -> None:
        now = time.monotonic()
        if not finished and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        up = f"\x1b[{self.block}F" if self.block else ""
        running = [job_line(j) for j in state.jobs.values() if j["status"] == "running"]
        block = [overall_line(state), *running]
        text = up + "".join(f"\x1b[2K{ln}\n" for ln in [*finished, *block])
        self.stream.write(text + "\x1b[J")
        self.stream.flush()
        self.block = len(block)

    def close(self, state: BatchState) -> None:
        """The final overall line (on a terminal, in place of the live block)."""
        self(state)
        up = f"\x1b[{self.block}F\x1b[J" if self.tty and self.block else ""
        self.stream.write(up + overall_line(state) + "\n")
        self.stream.flush()
        self.block = 0
