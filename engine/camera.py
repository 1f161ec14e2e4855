"""Perspective cameras in the conventions of DESIGN.md section 2.

World: right-handed, +Y up, -Z forward, +X right (OpenGL / OpenXR). A :class:`View` looks
from ``position`` along the direction given by yaw (positive turns right, towards +X),
pitch (positive looks up) and roll (positive tilts the image clockwise, i.e. the head
rolls right). ``fov_deg`` is the horizontal field of view; pixels are square.

The rotation ``R = Ry(-yaw) @ Rx(pitch) @ Rz(-roll)`` maps GL camera axes (x right, y up,
looking along -z) to world axes. gsplat and the pure-torch rasteriser take OpenCV cameras
(+x right, +y down, +z forward); :func:`gl_to_cv` is the one place the two are converted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Camera axes: OpenCV = OpenGL with y and z flipped.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class View:
    """A pinhole view: orientation in degrees, horizontal FOV, output size, position."""

    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    fov_deg: float = 90.0
    height: int = 512
    width: int = 512
    roll_deg: float = 0.0
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def focal(self) -> float:
        """Focal length in pixels (same for x and y)."""
        return 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2 * math.atan(0.5 * self.height / self.focal))

    def rotation(self) -> np.ndarray:
        """[3, 3] GL-camera-to-world rotation."""
        return (
            rot_y(-math.radians(self.yaw_deg))
            @ rot_x(math.radians(self.pitch_deg))
            @ rot_z(-math.radians(self.roll_deg))
        )

    def forward(self) -> np.ndarray:
        """[3] unit viewing direction in world coordinates."""
        return self.rotation() @ np.array([0.0, 0.0, -1.0])

    def intrinsics(self) -> np.ndarray:
        """[3, 3] OpenCV intrinsics K (principal point at the image centre)."""
        f = self.focal
        return np.array(
            [[f, 0, self.width / 2], [0, f, self.height / 2], [0, 0, 1]], dtype=np.float64
        )

    def world_to_camera_gl(self) -> np.ndarray:
        """[4, 4] world-to-camera matrix, OpenGL camera axes (the GL renderer's view matrix)."""
        r = self.rotation()
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ np.asarray(self.position, dtype=np.float64)
        return m

    def world_to_camera_cv(self) -> np.ndarray:
        """[4, 4] world-to-camera matrix, OpenCV camera axes (gsplat ``viewmats``)."""
        return gl_to_cv(self.world_to_camera_gl())

    def pixel_rays(self) -> np.ndarray:
        """[H, W, 3] unit world directions through the pixel centres."""
        f = self.focal
        x = (np.arange(self.width) + 0.5 - self.width / 2) / f
        y = -(np.arange(self.height) + 0.5 - self.height / 2) / f
        xx, yy = np.meshgrid(x, y)
        d = np.stack([xx, yy, -np.ones_like(xx)], axis=-1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return d @ self.rotation().T

    def planar_to_ray(self) -> np.ndarray:
        """[H, W] factor turning planar depth (camera z) into distance along the ray."""
        f = self.focal
        x = (np.arange(self.width) + 0.5 - self.width / 2) / f
        y = (np.arange(self.height) + 0.5 - self.height / 2) / f
        xx, yy = np.meshgrid(x, y)
        return np.sqrt(1 + xx**2 + yy**2)


def gl_to_cv(world_to_gl: np.ndarray) -> np.ndarray:
    """Convert a [4, 4] world-to-camera matrix from OpenGL to OpenCV camera axes.

    This is the single place the two camera conventions meet (DESIGN.md section 2).
    The inverse is the same operation (the flip is its own inverse).
    """
    m = np.array(world_to_gl, dtype=np.float64, copy=True)
    m[:3, :] = _GL_TO_CV @ m[:3, :]
    return m


def gl_projection(view: View, near: float = 0.01, far: float = 1000.0) -> np.ndarray:
    """[4, 4] OpenGL projection matrix matching ``view``'s intrinsics."""
    f = view.focal
    w, h = view.width, view.height
    p = np.zeros((4, 4))
    p[0, 0] = 2 * f / w
    p[1, 1] = 2 * f / h
    p[2, 2] = -(far + near) / (far - near)
    p[2, 3] = -2 * far * near / (far - near)
    p[3, 2] = -1.0
    return p
