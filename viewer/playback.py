"""Animation playback clock for a T-frame scene: play/pause, speed, loop/pingpong/once, scrub.

Deterministic: no wall clock inside. The caller measures real elapsed time and passes it to
:meth:`Playback.advance`, which accumulates fractional frames (a 60 Hz display playing a
24 fps scene shows each frame for 2 or 3 refreshes, never drifting).

Modes, for n frames (indices 0..n-1):
  ``"loop"``      0 1 … n-1 0 1 …
  ``"pingpong"``  0 1 … n-1 n-2 … 1 0 1 …  (period 2n-2: the end frames are not shown twice)
  ``"once"``      0 1 … n-1, then stops (``playing`` becomes False) on the last frame;
                  ``play()`` at the end starts again from frame 0.
A negative speed plays backwards (``once`` then stops at frame 0).
"""

from __future__ import annotations

import math

MODES = ("loop", "pingpong", "once")

# Tolerance (in frames) for floating-point accumulation: 30 steps of 1/30 s at 30 fps land
# on frame 30, not 29.
_EPS = 1e-6

__all__ = ["MODES", "Playback"]


class Playback:
    """Playback position over ``n_frames`` frames at ``fps`` frames per second."""

    def __init__(
        self,
        n_frames: int,
        fps: float = 24.0,
        mode: str = "loop",
        speed: float = 1.0,
        playing: bool = True,
    ) -> None:
        if int(n_frames) < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be positive, got {fps}")
        self.n_frames = int(n_frames)
        self.fps = float(fps)
        self.mode = mode  # validated by the setter
        self.speed = speed
        self.playing = bool(playing)
        # Position on the mode's timeline, in frames: loop [0, n), pingpong [0, 2n-2),
        # once [0, n-1]. A float, so fractions of a frame accumulate.
        self._t = 0.0

    # ---- properties

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown playback mode {value!r} (one of {', '.join(MODES)})")
        frame = self.frame if hasattr(self, "_t") else 0
        self._mode = value
        if hasattr(self, "_t"):
            self._t = float(frame)  # keep showing the same frame, going forwards

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"speed must be finite, got {value}")
        self._speed = value

    @property
    def frame(self) -> int:
        """Index of the frame to show, 0..n_frames-1."""
        n = self.n_frames
        i = math.floor(self._t + _EPS)
        if n == 1:
            return 0
        if self._mode == "loop":
            return i % n
        if self._mode == "pingpong":
            p = i % (2 * n - 2)
            return p if p < n else 2 * n - 2 - p
        return min(max(i, 0), n - 1)

    @property
    def time_s(self) -> float:
        """Scene time of the shown frame, seconds (frame / fps)."""
        return self.frame / self.fps

    @property
    def duration_s(self) -> float:
        """Length of one pass through the frames, seconds (n_frames / fps)."""
        return self.n_frames / self.fps

    @property
    def direction(self) -> int:
        """+1 if frame indices are currently increasing, -1 if decreasing (pingpong back leg
        or a negative speed)."""
        sign = 1 if self._speed >= 0 else -1
        if self._mode == "pingpong" and self.n_frames > 1:
            p = math.floor(self._t + _EPS) % (2 * self.n_frames - 2)
            if p >= self.n_frames - 1:
                sign = -sign
        return sign

    # ---- control

    def play(self) -> None:
        """Start playing; in ``once`` mode at the end (or start, when reversed) rewind."""
        if self._mode == "once":
            if self._speed >= 0 and self.frame >= self.n_frames - 1:
                self._t = 0.0
            elif self._speed < 0 and self.frame <= 0:
                self._t = float(self.n_frames - 1)
        self.playing = True

    def pause(self) -> None:
        self.playing = False

    def toggle(self) -> bool:
        """Play if paused, pause if playing; returns the new ``playing``."""
        if self.playing:
            self.pause()
        else:
            self.play()
        return self.playing

    def seek(self, frame: int | float) -> int:
        """Jump to ``frame`` (clamped to 0..n_frames-1; fractions are dropped). Keeps the play
        state; in pingpong the motion continues forwards from there. Returns the frame."""
        f = math.floor(float(frame)) if math.isfinite(float(frame)) else 0
        self._t = float(min(max(f, 0), self.n_frames - 1))
        return self.frame

    def step(self, frames: int = 1) -> int:
        """Move by whole frames along the mode's timeline (e.g. ',' / '.' keys while paused)."""
        self._t = self._wrap(math.floor(self._t + _EPS) + int(frames))
        return self.frame

    def advance(self, dt_seconds: float) -> int:
        """Let ``dt_seconds`` of real time pass (ignored while paused) and return the frame."""
        if self.playing and dt_seconds > 0 and self.n_frames > 1:
            self._t = self._wrap(self._t + dt_seconds * self.fps * self._speed)
        return self.frame

    def _wrap(self, t: float) -> float:
        n = self.n_frames
        if n == 1:
            return 0.0
        if self._mode == "loop":
            return t % n
        if self._mode == "pingpong":
            return t % (2 * n - 2)
        # once
        if t >= n - 1:
            self.playing = False
            return float(n - 1)
        if t <= 0 and self._speed < 0:
            self.playing = False
            return 0.0
        return max(t, 0.0)
