"""The time-left estimate from measured stage rates (engine.progress.StageEstimate), checked
on simulated runs whose true time left is known, against the average-rate estimate it
replaces."""

from __future__ import annotations

import pytest

from engine.pipeline import STAGES, stage_spans
from engine.progress import StageEstimate, estimate_remaining


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def simulate(durations: dict[str, float], spans, expected=None, step: float = 0.5):
    """Run stages that advance linearly in time for ``durations`` seconds, reporting every
    ``step`` s as the pipeline does (overall fraction inside each stage's span). Yields
    (true time left, StageEstimate's remaining, average-rate estimate, estimate's fraction,
    true share of the time done)."""
    clock = Clock()
    est = StageEstimate(spans, expected, now=clock)
    total = sum(durations.values())
    start = 0.0
    for stage, d in durations.items():
        a, b = spans[stage]
        n = max(1, int(d / step))
        for i in range(n + 1):
            clock.t = start + d * i / n
            est.update(stage, a + (b - a) * i / n)
            avg = estimate_remaining(clock.t, a + (b - a) * i / n)
            yield total - clock.t, est.remaining(), avg, est.fraction(), clock.t / total
        start += d


# The run: writing the results took ~38 % of the time but had ~15 % of the bar.
SLOW_SAVE = {"load": 0.2, "animate": 20.0, "depth": 0.3, "lift": 310.0, "save": 200.0}


def test_spans_cover_the_run_in_stage_order():
    for text in (False, True):
        spans = stage_spans(text)
        assert list(spans) == [s for s in STAGES if text or s != "text"]
        ends = [0.0] + [b for _, b in spans.values()]
        assert [a for a, _ in spans.values()] == pytest.approx(ends[:-1])
        assert ends[-1] == pytest.approx(1.0)


def test_with_the_last_runs_stage_times_the_estimate_holds_where_the_average_runs_away():
    """Last run's timings from a machine 30 % slower: after the first stages the estimate is
    within 5 % of the run's length of the truth; the average-rate estimate is off by far more
    (it thinks the save is as fast as its share of the bar)."""
    expected = {s: 1.3 * d for s, d in SLOW_SAVE.items()}
    total = sum(SLOW_SAVE.values())
    ours, avg_err = [], []
    for true, est, avg, frac, share in simulate(SLOW_SAVE, stage_spans(), expected):
        assert est is not None  # seconds from the start: the stage times are known
        assert frac == pytest.approx(share, abs=0.02)  # the bar measures time
        if total - true > 21.0:  # after animate
            ours.append(abs(est - true) / total)
            if avg is not None:
                avg_err.append(abs(avg - true) / total)
    assert max(ours) < 0.05
    assert max(avg_err) > 0.25  # the old estimate's error, for contrast


def test_without_earlier_timings_it_scales_stages_by_the_measured_rates():
    """No earlier run: the relative lengths come from the spans; the estimate waits until a
    rate is measured, then follows the current stage's own rate; it is exact for a run whose
    stages match the spans."""
    spans = stage_spans()
    matched = {s: 500.0 * (b - a) for s, (a, b) in spans.items()}
    rows = list(simulate(matched, spans))
    assert rows[0][1] is None  # nothing to go on yet
    for true, est, _, frac, share in rows:
        if est is not None and true < 480:
            assert est == pytest.approx(true, rel=0.03, abs=1.0)
            assert frac == pytest.approx(share, abs=0.01)
    # a slow save: the lift's rate and the shares give the estimate; once the save has run
    # a while its own rate takes over, and the estimate converges to the truth
    late = [(t, e) for t, e, *_ in simulate(SLOW_SAVE, spans) if e is not None and t < 100]
    assert all(abs(e - t) < 0.25 * t + 5 for t, e in late)


def test_a_resumed_run_starts_at_its_first_stage_that_runs():
    clock = Clock()
    expected = {"load": 1.0, "animate": 9.0, "depth": 1.0, "lift": 60.0, "save": 29.0}
    est = StageEstimate(stage_spans(), expected, now=clock)
    est.update("lift", stage_spans()["lift"][0])  # animate and depth came from checkpoints
    assert est.fraction() == pytest.approx(0.11)
    assert est.remaining() == pytest.approx(89.0)
    clock.t = 30.0
    est.update("lift", sum(stage_spans()["lift"]) / 2)  # half the lift in 30 s, as expected
    assert est.remaining() == pytest.approx(59.0)
    assert est.fraction() == pytest.approx(0.41)


def test_stages_resumed_from_checkpoints_or_tiny_do_not_set_the_speed():
    """A resumed run: loading takes 2 s (expected 1 s: a tiny stage, noise), animate and
    depth come from their checkpoints in a fraction of a second (they report only their
    end); the lift then runs at the expected pace. The estimate stays with the truth."""
    clock = Clock()
    expected = {"load": 1.0, "animate": 9.0, "depth": 1.0, "lift": 60.0, "save": 29.0}
    spans = stage_spans()
    est = StageEstimate(spans, expected, now=clock)
    est.update("load", spans["load"][0])
    clock.t = 2.0
    est.update("animate", spans["animate"][1])  # resumed: its end at once
    clock.t = 2.3
    est.update("depth", spans["depth"][1])
    clock.t = 2.5
    est.update("lift", spans["lift"][0])
    assert est.remaining() == pytest.approx(89.0, rel=0.05)
    clock.t = 32.5
    est.update("lift", sum(spans["lift"]) / 2)
    assert est.remaining() == pytest.approx(59.0, rel=0.05)
