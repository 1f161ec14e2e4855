"""Progress reporting and cancellation shared by every long-running stage.

A stage's ``run`` receives a :class:`Progress` (wrapping a callback
``(stage, fraction, message)``) and a :class:`CancelToken`, and calls
``progress.update(fraction, message)`` at least once a second. ``update`` also checks the
token, so a cancelled run stops at the next report with :class:`engine.errors.Cancelled`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import Cancelled

ProgressCallback = Callable[[str, float, str], None]


class CancelToken:
    """Thread-safe flag; the UI or a signal handler sets it, workers poll it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def estimate_remaining(elapsed: float, fraction: float) -> float | None:
    """Seconds left at the average rate so far; None while too early to tell."""
    if fraction < 0.02 or elapsed < 2.0:
        return None
    if fraction >= 1.0:
        return 0.0
    return elapsed * (1.0 - fraction) / fraction


def _ignore(stage: str, fraction: float, message: str) -> None:
    pass


class Progress:
    """Reports the progress of one stage, scaled into [start, end] of an outer range."""

    def __init__(
        self,
        stage: str,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        start: float = 0.0,
        end: float = 1.0,
        prefix: str = "",
    ) -> None:
        self.stage = stage
        self.callback = callback or _ignore
        self.cancel = cancel or CancelToken()
        self.start, self.end = start, end
        self.prefix = prefix
        self.t0 = time.monotonic()

    def update(self, fraction: float, message: str = "") -> None:
        """Report ``fraction`` in [0, 1] of this stage's work; raises Cancelled if asked."""
        self.cancel.check()
        f = self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0)
        self.callback(self.stage, f, self.prefix + message)

    def sub(self, start: float, end: float, prefix: str = "") -> Progress:
        """A child reporter covering [start, end] of this one (same stage and token); its
        messages start with this one's prefix and then ``prefix``."""
        span = self.end - self.start
        return Progress(
            self.stage,
            self.callback,
            self.cancel,
            self.start + span * start,
            self.start + span * end,
            self.prefix + prefix,
        )
