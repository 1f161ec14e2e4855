"""Headset maths for the OpenXR viewer: poses, asymmetric projections, the scene anchor, the
comfort fade and the controller-to-playback mapping. Plain numpy; no OpenXR, no OpenGL.

Conventions (DESIGN.md section 2): OpenXR spaces are right-handed, +Y up, -Z forward, the
same as the scene's world, so a pose in the app's reference space (STAGE or LOCAL) becomes a
scene pose through one rigid transform, the **anchor**: the scene's origin (the panorama's
capture point) sits at the anchor's position and the scene's -Z (the panorama's centre)
points along the anchor's horizontal facing direction. The anchor is taken from the head
pose when the session starts and again whenever the user resets the view (grip).

Poses are ``(orientation, position)`` with the orientation an OpenXR quaternion in
**xyzw** order (``XrQuaternionf``), not the Gaussians' wxyz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .playback import Playback

__all__ = [
    "Anchor",
    "ControlState",
    "Controls",
    "comfort_fade",
    "eye_view_matrix",
    "pose_matrix",
    "projection_from_fov",
    "quat_xyzw_to_matrix",
]


def quat_xyzw_to_matrix(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """[3, 3] rotation of a unit quaternion given as (x, y, z, w); normalised first."""
    x, y, z, w = (float(c) for c in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0.0:
        raise ValueError("zero quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_matrix(orientation_xyzw, position) -> np.ndarray:
    """[4, 4] pose -> parent-space matrix (an eye's or the head's camera-to-space)."""
    m = np.eye(4)
    m[:3, :3] = quat_xyzw_to_matrix(orientation_xyzw)
    m[:3, 3] = np.asarray(position, dtype=np.float64).reshape(3)
    return m


def projection_from_fov(
    angle_left: float,
    angle_right: float,
    angle_up: float,
    angle_down: float,
    near: float,
    far: float,
) -> np.ndarray:
    """[4, 4] OpenGL projection for an OpenXR ``XrFovf`` (radians; left and down are usually
    negative): the asymmetric frustum ``XrMatrix4x4f_CreateProjectionFov`` builds for
    OpenGL, clip z in [-w, w]. ``viewer.renderer.intrinsics_from_projection`` turns it back
    into fx, fy, cx, cy for the splat shader."""
    if not 0 < near < far:
        raise ValueError(f"need 0 < near < far, got {near}, {far}")
    tl, tr = math.tan(angle_left), math.tan(angle_right)
    tu, td = math.tan(angle_up), math.tan(angle_down)
    w, h = tr - tl, tu - td
    if not (w > 0 and h > 0):
        raise ValueError(
            f"degenerate field of view {angle_left, angle_right, angle_up, angle_down}"
        )
    p = np.zeros((4, 4))
    p[0, 0] = 2.0 / w
    p[0, 2] = (tr + tl) / w
    p[1, 1] = 2.0 / h
    p[1, 2] = (tu + td) / h
    p[2, 2] = -(far + near) / (far - near)
    p[2, 3] = -2.0 * far * near / (far - near)
    p[3, 2] = -1.0
    return p


@dataclass(frozen=True)
class Anchor:
    """Where the scene's origin sits in the app's reference space, and which way it faces.

    position: [3] reference-space point of the scene origin; yaw: radians, the heading of
    the scene's -Z axis measured like the viewer's yaw (positive turns right, towards +X).
    """

    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0

    @classmethod
    def from_head(cls, head_to_space: np.ndarray) -> Anchor:
        """The anchor that puts the scene origin at the head with the panorama's centre
        straight ahead (horizontal part of the head's forward direction; roll/pitch ignored)."""
        m = np.asarray(head_to_space, dtype=np.float64)
        fwd = m[:3, :3] @ np.array([0.0, 0.0, -1.0])
        yaw = math.atan2(fwd[0], -fwd[2]) if math.hypot(fwd[0], fwd[2]) > 1e-9 else 0.0
        return cls(tuple(float(v) for v in m[:3, 3]), yaw)

    def scene_from_space(self) -> np.ndarray:
        """[4, 4] reference space -> scene world (translate to the anchor, undo its yaw)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        # Rotation about +Y by +yaw maps the scene's axes to the anchor's heading (a yaw to
        # the right is a negative rotation about +Y); its inverse goes space -> scene.
        ry = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # scene -> space
        m = np.eye(4)
        m[:3, :3] = ry.T
        m[:3, 3] = -ry.T @ np.asarray(self.position, dtype=np.float64)
        return m


def eye_view_matrix(scene_from_space: np.ndarray, eye_to_space: np.ndarray) -> np.ndarray:
    """[4, 4] world (scene) -> GL eye camera: the inverse of the eye's scene pose."""
    eye_to_scene = np.asarray(scene_from_space, np.float64) @ np.asarray(eye_to_space, np.float64)
    r, t = eye_to_scene[:3, :3], eye_to_scene[:3, 3]
    m = np.eye(4)
    m[:3, :3] = r.T
    m[:3, 3] = -r.T @ t
    return m


def comfort_fade(distance: float, radius: float, width: float) -> float:
    """Scene visibility in [0, 1] for a head ``distance`` from the capture point: 1 inside
    ``radius``, a smoothstep down to 0 at ``radius + width`` (0 width: a hard edge)."""
    if distance <= radius:
        return 1.0
    if width <= 0 or distance >= radius + width:
        return 0.0
    x = (distance - radius) / width
    return 1.0 - x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class ControlState:
    """One frame's controller input, both hands combined (OpenXR action state).

    scrub: thumbstick / trackpad x in [-1, 1]; play_pause: trigger held; reset: grip held.
    """

    scrub: float = 0.0
    play_pause: bool = False
    reset: bool = False


class Controls:
    """Maps controller input to the playback model (the same :class:`Playback` as the
    desktop viewer) with edge detection on the buttons.

    - thumbstick x scrubs time: ``scrub_fps`` frames per second at full deflection, outside
      a ``deadzone``; the playhead wraps in ``loop`` mode and stops at the ends otherwise
      (a slider). Scrubbing works while playing or paused and keeps the play state.
    - trigger press (the edge, not the hold) toggles play / pause;
    - grip press asks for a view reset (:meth:`update` returns ``True``; the session
      re-anchors the scene at the head).
    """

    def __init__(self, playback: Playback, scrub_fps: float = 24.0, deadzone: float = 0.2):
        if not 0 <= deadzone < 1:
            raise ValueError(f"deadzone must be in [0, 1), got {deadzone}")
        self.playback = playback
        self.scrub_fps = float(scrub_fps)
        self.deadzone = float(deadzone)
        self._prev = ControlState()
        self._acc = 0.0  # fractional frames scrubbed but not yet applied

    def scrub_rate(self, x: float) -> float:
        """Frames per second for stick deflection ``x``: 0 in the deadzone, then linear up to
        ``scrub_fps`` at full deflection (no jump at the deadzone's edge)."""
        a = abs(float(x))
        if a <= self.deadzone:
            return 0.0
        return math.copysign(min(1.0, (a - self.deadzone) / (1.0 - self.deadzone)), x) * (
            self.scrub_fps
        )

    def update(self, state: ControlState, dt: float) -> bool:
        """Apply one frame of input covering ``dt`` seconds; True if the view should reset."""
        pb = self.playback
        if state.play_pause and not self._prev.play_pause:
            pb.toggle()
        reset = state.reset and not self._prev.reset
        rate = self.scrub_rate(state.scrub)
        if rate == 0.0:
            self._acc = 0.0
        elif dt > 0:
            self._acc += rate * dt
            whole = math.trunc(self._acc + math.copysign(1e-9, self._acc))  # 3.9999.. is 4
            if whole:
                self._acc -= whole
                target = pb.frame + whole
                if pb.mode == "loop":
                    target %= pb.n_frames
                pb.seek(target)
        self._prev = state
        return reset
