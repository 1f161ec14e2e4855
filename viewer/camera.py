"""The viewer's camera: look around from the capture point, plus small 6-DoF moves.

Conventions (DESIGN.md section 2, same as :class:`engine.camera.View`): world +Y up, -Z
forward, +X right; yaw positive turns right (towards +X), pitch positive looks up. The camera
is gravity-aligned (no roll).

- ``fov_deg`` here is the **vertical** field of view, so resizing a window changes how much
  is seen sideways, not the zoom; :meth:`ViewerCamera.view` converts it to the horizontal FOV
  that ``View`` takes for the given output size.
- Mouse drag is **grab the world** (like panorama viewers and maps): the scene follows the
  cursor. Dragging right turns the head left (yaw decreases), dragging down (screen y grows
  downwards, as in Qt) looks up (pitch increases). At the centre of the image the grabbed
  point stays under the cursor at any zoom. ``drag_sign=-1`` gives "turn the head" instead.
- :meth:`ViewerCamera.rotate` (arrow keys, gamepad) is **turn the head**: +dyaw turns
  right, +dpitch looks up.
- :meth:`ViewerCamera.move` moves relative to the current yaw only (W/S along the horizontal
  forward direction, A/D sideways, Q/E straight down/up), so looking down and
  pressing W does not sink into the floor. The position stays within ``radius`` of the
  origin (the capture point): a move that would leave the sphere ends on its surface.

All of it is plain Python state: no Qt, no OpenGL, no wall clock (the caller passes dt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from engine.camera import View

PITCH_LIMIT_DEG = 89.9

__all__ = ["PITCH_LIMIT_DEG", "CameraState", "ViewerCamera", "forward_vector"]


def _wrap_yaw(yaw: float) -> float:
    """Yaw wrapped into [-180, 180)."""
    return (yaw + 180.0) % 360.0 - 180.0


def forward_vector(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """[3] unit viewing direction for yaw/pitch (equals ``View(...).forward()``)."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.cos(p) * math.sin(y), math.sin(p), -math.cos(p) * math.cos(y)])


@dataclass(frozen=True)
class CameraState:
    """An immutable snapshot of the viewer camera (degrees, metres-like world units)."""

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    fov_deg: float = 75.0  # vertical field of view
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def forward(self) -> np.ndarray:
        return forward_vector(self.yaw_deg, self.pitch_deg)

    def angle_to(self, other: CameraState) -> float:
        """Angle in degrees between the two viewing directions."""
        c = float(np.dot(self.forward(), other.forward()))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))

    def distance_to(self, other: CameraState) -> float:
        return math.dist(self.position, other.position)

    def moved_since(
        self, other: CameraState, angle_deg: float = 1.0, distance: float = 0.01
    ) -> bool:
        """True if the viewing direction turned by more than ``angle_deg`` or the position
        moved by more than ``distance`` since ``other``. Field of view is ignored: depth
        order ``-z_cam = dot(p - eye, forward)`` depends only on the direction and the eye."""
        return self.angle_to(other) > angle_deg or self.distance_to(other) > distance


@dataclass
class ViewerCamera:
    """Look-around camera with small moves around the capture point (see the module doc).

    Attributes you may tune: ``radius`` (max distance from the origin), ``fov_min`` /
    ``fov_max`` (vertical FOV limits), ``zoom_step`` (FOV factor per wheel step),
    ``move_speed`` (units per second at full input), ``drag_sign`` (+1 grab the world,
    -1 turn the head), ``drag_sensitivity``.
    """

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    fov_deg: float = 75.0
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 0.5
    fov_min: float = 20.0
    fov_max: float = 120.0
    zoom_step: float = 1.1
    move_speed: float = 0.5
    drag_sign: float = 1.0
    drag_sensitivity: float = 1.0
    anchor: tuple[float, float, float] = (0.0, 0.0, 0.0)  # moves stay within radius of it
    _home: CameraState = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.radius < 0:
            raise ValueError(f"radius must be >= 0, got {self.radius}")
        if not 0 < self.fov_min <= self.fov_max < 180:
            raise ValueError(
                f"need 0 < fov_min <= fov_max < 180, got {self.fov_min}, {self.fov_max}"
            )
        self._apply(CameraState(self.yaw_deg, self.pitch_deg, self.fov_deg, self.position))
        self._home = self.state

    # ---- state

    @property
    def state(self) -> CameraState:
        return CameraState(self.yaw_deg, self.pitch_deg, self.fov_deg, self.position)

    def set_state(self, state: CameraState) -> None:
        """Adopt a snapshot (clamped to this camera's limits)."""
        self._apply(state)

    def set_home(self, state: CameraState | None = None) -> None:
        """Make ``state`` (default: the current one) what :meth:`reset` returns to."""
        self._home = self.state if state is None else state

    def reset(self) -> None:
        """Back to the home state (the constructor's, unless :meth:`set_home` changed it)."""
        self._apply(self._home)

    def _apply(self, s: CameraState) -> None:
        self.yaw_deg = _wrap_yaw(float(s.yaw_deg))
        self.pitch_deg = min(PITCH_LIMIT_DEG, max(-PITCH_LIMIT_DEG, float(s.pitch_deg)))
        self.fov_deg = min(self.fov_max, max(self.fov_min, float(s.fov_deg)))
        self.position = self._clamp_position(s.position)

    def _clamp_position(
        self, p: tuple[float, float, float] | np.ndarray
    ) -> tuple[float, float, float]:
        a = np.asarray(self.anchor, dtype=np.float64)
        v = np.asarray(p, dtype=np.float64).reshape(3) - a
        r = float(np.linalg.norm(v))
        if r > self.radius:
            v = v * (self.radius / r)
        v = v + a
        return (float(v[0]), float(v[1]), float(v[2]))

    def frame(self, home) -> None:
        """Start (and reset) at ``home`` (a :class:`viewer.framing.Home`), moving within its
        radius around it; ``None``: the capture point, the constructor's limits."""
        if home is None:
            self.anchor, self.radius, self.move_speed = (0.0, 0.0, 0.0), 0.5, 0.5
            state = CameraState(0.0, 0.0, 75.0, (0.0, 0.0, 0.0))
        else:
            self.anchor, self.radius, self.move_speed = home.position, home.radius, home.move_speed
            state = CameraState(home.yaw_deg, home.pitch_deg, home.fov_deg, home.position)
        self._apply(state)
        self._home = self.state

    # ---- input

    def degrees_per_pixel(self, viewport_h: int) -> float:
        """Angle subtended by one pixel at the image centre for a viewport ``viewport_h``
        pixels high (the drag gain that keeps the grabbed point under the cursor)."""
        f = 0.5 * viewport_h / math.tan(math.radians(self.fov_deg) / 2)
        return math.degrees(math.atan(1.0 / f))

    def drag(self, dx_px: float, dy_px: float, viewport_h: int) -> None:
        """Mouse drag by (dx, dy) pixels, screen axes (x right, y down). Grab the world by
        default: dragging right turns left, dragging down looks up."""
        if viewport_h <= 0:
            return
        k = self.degrees_per_pixel(viewport_h) * self.drag_sensitivity * self.drag_sign
        self.rotate(-dx_px * k, dy_px * k)

    def rotate(self, dyaw_deg: float, dpitch_deg: float) -> None:
        """Turn the head: +dyaw turns right, +dpitch looks up (pitch clamped to ±89.9°)."""
        self._apply(
            replace(
                self.state, yaw_deg=self.yaw_deg + dyaw_deg, pitch_deg=self.pitch_deg + dpitch_deg
            )
        )

    def zoom(self, wheel_steps: float) -> None:
        """Mouse wheel: positive steps (wheel away from the user) zoom in. Each step scales
        the FOV by ``1 / zoom_step``; clamped to [fov_min, fov_max]."""
        self._apply(replace(self.state, fov_deg=self.fov_deg * self.zoom_step ** (-wheel_steps)))

    def move(self, forward: float, right: float, up: float, dt: float) -> None:
        """Move for ``dt`` seconds with inputs in [-1, 1] (W/S = ±forward, D/A = ±right,
        E/Q = ±up) at ``move_speed``. Forward/right follow the yaw only and stay horizontal;
        up is world +Y. An input vector longer than 1 is normalised (no faster diagonals).
        Moves beyond ``radius`` end on the sphere's surface."""
        inp = np.array([forward, right, up], dtype=np.float64)
        n = float(np.linalg.norm(inp))
        if n == 0.0 or dt <= 0.0:
            return
        if n > 1.0:
            inp /= n
        y = math.radians(self.yaw_deg)
        fwd = np.array([math.sin(y), 0.0, -math.cos(y)])
        rgt = np.array([math.cos(y), 0.0, math.sin(y)])
        upv = np.array([0.0, 1.0, 0.0])
        d = (inp[0] * fwd + inp[1] * rgt + inp[2] * upv) * (self.move_speed * dt)
        self.position = self._clamp_position(np.asarray(self.position) + d)

    # ---- output

    def hfov_deg(self, height: int, width: int) -> float:
        """Horizontal FOV for an output of ``height`` x ``width`` (square pixels)."""
        t = math.tan(math.radians(self.fov_deg) / 2) * width / max(height, 1)
        return math.degrees(2 * math.atan(t))

    def view(self, height: int, width: int) -> View:
        """An ``engine.camera.View`` of this camera for a ``height`` x ``width`` output."""
        return View(
            yaw_deg=self.yaw_deg,
            pitch_deg=self.pitch_deg,
            fov_deg=self.hfov_deg(height, width),
            height=int(height),
            width=int(width),
            roll_deg=0.0,
            position=self.position,
        )

    def forward(self) -> np.ndarray:
        return forward_vector(self.yaw_deg, self.pitch_deg)

    def moved_since(
        self, other_state: CameraState, angle_deg: float = 1.0, distance: float = 0.01
    ) -> bool:
        """Whether the current state differs from ``other_state`` enough to re-sort."""
        return self.state.moved_since(other_state, angle_deg, distance)
