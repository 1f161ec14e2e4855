"""Playback: frame sequences over many dt steps against exact (rational) brute force."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from viewer.playback import Playback


def expected_frame(i: int, n: int, mode: str) -> int:
    """Frame for the i-th frame tick (i = floor(elapsed * fps * speed)), by brute force."""
    if n == 1:
        return 0
    if mode == "loop":
        seq = list(range(n))
    elif mode == "pingpong":
        seq = list(range(n)) + list(range(n - 2, 0, -1))
    else:
        return min(max(i, 0), n - 1)
    return seq[i % len(seq)]


@pytest.mark.parametrize("mode", ["loop", "pingpong", "once"])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_random_dt_sequence_matches_brute_force(mode, n):
    rng = np.random.default_rng(n)
    fps, speed = 24, Fraction(3, 2)
    pb = Playback(n, fps=fps, mode=mode, speed=float(speed))
    elapsed = Fraction(0)
    for k in rng.integers(0, 9, size=2000):
        dt = Fraction(int(k), 60)  # 60 Hz display ticks, sometimes dropped / zero
        elapsed += dt
        got = pb.advance(float(dt))
        ticks = math.floor(elapsed * fps * speed)
        assert got == expected_frame(ticks, n, mode), (float(elapsed), ticks)
        assert pb.frame == got
    if mode == "once" and n > 1:
        assert not pb.playing and pb.frame == n - 1


def test_exact_frame_steps_do_not_drift():
    pb = Playback(30, fps=30)
    frames = [pb.advance(1 / 30) for _ in range(3000)]
    assert frames == [(i + 1) % 30 for i in range(3000)]


def test_pingpong_bounces_without_repeating_ends():
    pb = Playback(4, fps=10, mode="pingpong")
    seq = [pb.frame] + [pb.advance(0.1) for _ in range(12)]
    assert seq == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert all(abs(a - b) == 1 for a, b in zip(seq, seq[1:]))


def test_once_stops_and_play_restarts():
    pb = Playback(3, fps=1, mode="once")
    assert [pb.advance(1.0) for _ in range(4)] == [1, 2, 2, 2]
    assert not pb.playing
    pb.play()
    assert pb.playing and pb.frame == 0
    assert pb.advance(1.0) == 1


def test_pause_play_toggle():
    pb = Playback(10, fps=10, playing=False)
    assert pb.advance(5.0) == 0
    assert pb.toggle() is True
    assert pb.advance(0.35) == 3
    assert pb.toggle() is False
    assert pb.advance(1.0) == 3
    pb.play()
    assert pb.advance(0.06) == 4  # fractional 0.5 frame was kept across the pause


def test_seek_clamps_and_keeps_state():
    pb = Playback(10, fps=10, playing=False)
    assert pb.seek(4) == 4 and pb.frame == 4
    assert pb.seek(-3) == 0
    assert pb.seek(99) == 9
    assert pb.seek(6.7) == 6
    assert not pb.playing
    pb.play()
    assert pb.advance(0.1) == 7  # fraction reset by seek
    pp = Playback(5, fps=1, mode="pingpong")
    pp.seek(4)
    assert [pp.advance(1) for _ in range(5)] == [3, 2, 1, 0, 1]


def test_speed_and_reverse():
    pb = Playback(10, fps=10, speed=2.0)
    assert pb.advance(0.1) == 2
    pb.speed = 0.5
    assert pb.advance(0.1) == 2  # half a frame
    assert pb.advance(0.1) == 3
    pb.speed = -1.0
    assert [pb.advance(0.1) for _ in range(5)] == [2, 1, 0, 9, 8]
    once = Playback(5, fps=1, mode="once", speed=-1.0)
    once.seek(2)
    assert [once.advance(1) for _ in range(3)] == [1, 0, 0]
    assert not once.playing


def test_time_and_mode_switch():
    pb = Playback(48, fps=24)
    pb.seek(12)
    assert pb.time_s == pytest.approx(0.5)
    assert pb.duration_s == pytest.approx(2.0)
    pb.mode = "pingpong"
    assert pb.frame == 12
    with pytest.raises(ValueError):
        pb.mode = "bounce"
    with pytest.raises(ValueError):
        Playback(0, fps=24)
    with pytest.raises(ValueError):
        Playback(5, fps=0)


def test_step_and_direction():
    pb = Playback(4, fps=1, mode="pingpong", playing=False)
    assert pb.direction == 1
    assert [pb.step() for _ in range(4)] == [1, 2, 3, 2]
    assert pb.direction == -1
    assert pb.step(-1) == 3
