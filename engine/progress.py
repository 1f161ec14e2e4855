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


class StageEstimate:
    """Time left, and the share of the time done, of a run made of stages, from measured
    stage rates.

    ``spans``: stage -> (start, end), the part of the overall fraction each stage reports in
    (:func:`engine.pipeline.stage_spans`). ``expected``: stage -> seconds each stage took on a
    similar earlier run (report.json ``timings_s``); without it the spans' widths give the
    stages' relative lengths, and the absolute scale comes from the rates measured here.

    Feed it every report with :meth:`update`. The current stage's time left blends its
    expected time left (scaled by how fast the stages that ran went against their expected
    times: stages resumed from checkpoints, and stages expected to take under 3 s or, with
    relative lengths, 5 % of the run, do not count) with its own rate so far, trusting its
    own rate more as it advances (as much as the prior at 10 % of the stage, nine times more
    at 90 %); stages still to come take their expected time, scaled the same way. So a stage
    that is slower or faster than its share of the bar, like writing the results, no longer
    makes the estimate run away: the bar (:meth:`fraction`) measures expected time, not the
    stages' fixed shares.
    """

    def __init__(
        self,
        spans: dict[str, tuple[float, float]],
        expected: dict[str, float] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.order = sorted(spans, key=lambda s: spans[s][0])
        self.spans = spans
        given = {s: float(expected[s]) for s in self.order if expected and s in expected}
        self.absolute = bool(given) and all(s in given for s in self.order)
        if self.absolute:
            self.expected = given
        else:  # relative lengths only: the spans' widths
            self.expected = {s: spans[s][1] - spans[s][0] for s in self.order}
        self.now = now
        self.t0 = now()
        self.durations: dict[str, float] = {}  # finished stages
        self.stage: str | None = None
        self.stage_t0 = self.t0
        self.local = 0.0  # fraction of the current stage
        self._first_at_end = False  # the current stage's first report was its end (resumed)

    def update(self, stage: str, fraction: float) -> None:
        """A report: ``fraction`` of the whole run, as the pipeline's callback gives it."""
        t = self.now()
        if stage not in self.spans:
            return
        a, b = self.spans[stage]
        local = min(max((fraction - a) / (b - a), 0.0), 1.0) if b > a else 1.0
        if stage != self.stage:
            if self.stage is not None:  # a stage that only reported its end was resumed
                ran = not self._first_at_end
                self.durations[self.stage] = t - self.stage_t0 if ran else 0.0
            for s in self.order[: self.order.index(stage)]:  # skipped stages
                self.durations.setdefault(s, 0.0)
            self.stage, self.stage_t0 = stage, t
            self._first_at_end = local >= 0.99
        self.local = local

    def _speed(self) -> float | None:
        """Measured seconds per expected second, over the stages that ran (not resumed) and
        are expected to take at least 3 s (5 % of the run with relative lengths: a stage of a
        second says nothing about the others), plus the current one projected from its own
        rate; None
        while nothing is measured and the expected times are only relative."""
        least = 3.0 if self.absolute else 0.05 * sum(self.expected.values())
        ran = [s for s, d in self.durations.items() if d > 0 and self.expected[s] >= least]
        num = sum(self.durations[s] for s in ran)
        den = sum(self.expected[s] for s in ran)
        g, spent = self.local, self.now() - self.stage_t0
        if self.stage is not None and g >= 0.05 and spent >= 1.0 and self.expected[self.stage]:
            num, den = num + spent / g, den + self.expected[self.stage]
        if den > 0 and num > 0:
            return num / den
        return 1.0 if self.absolute else None

    def remaining(self) -> float | None:
        """Seconds left; None while there is nothing to go on yet."""
        if self.stage is None:
            return None
        speed = self._speed()
        if speed is None:
            return None
        g, spent = self.local, self.now() - self.stage_t0
        own = spent * (1.0 - g) / g if g >= 0.05 and spent >= 1.0 else None
        prior = speed * self.expected[self.stage] * (1.0 - g)
        if own is None:
            current = prior
        else:  # its own rate weighs as much as the prior at 10 % of the stage
            w = g / (g + 0.1)
            current = (1.0 - w) * prior + w * own
        later = self.order[self.order.index(self.stage) + 1 :]
        return current + speed * sum(self.expected[s] for s in later)

    def fraction(self) -> float:
        """Share of the run's expected time done (for a progress bar)."""
        if self.stage is None:
            return 0.0
        total = sum(self.expected.values())
        if total <= 0:
            return 0.0
        i = self.order.index(self.stage)
        done = sum(self.expected[s] for s in self.order[:i])
        done += self.local * self.expected[self.stage]
        return min(done / total, 1.0)


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
