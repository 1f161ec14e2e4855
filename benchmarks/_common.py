"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this
folder is on ``sys.path``): peak memory of a block, and a one-line machine description."""

from __future__ import annotations

import os
import platform
import threading
import time
from pathlib import Path

import psutil
import torch


class PeakMemory:
    """Peak extra memory of a block (MB) in ``.extra``: the CUDA allocator's peak on a CUDA
    device, else this process's RSS sampled every 2 ms on a thread (peak minus start)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.extra = (torch.cuda.max_memory_allocated() - self.start) / 1e6
        else:
            self.running = False
            self.thread.join()
            self.extra = (self.peak - self.start) / 1e6


def machine() -> str:
    """CPU model, cores, memory and OS of this machine, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()}"
