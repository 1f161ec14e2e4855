"""OpenGL Gaussian-splat renderer (instanced quads, SSBOs, sorted alpha blending).

:class:`SplatRenderer` draws Gaussians into whatever framebuffer is bound, with the image
formation model of ``engine.lift.raster`` (gsplat 1.5 "classic"; shaders/splat.vert and
shaders/splat.frag hold the maths). It needs a current OpenGL 4.3+ core context (an
:class:`viewer.gl.context.EGLContext`, or the app's Qt context) for its whole life.

Data layout (std430 SSBOs):

- splats: 3 vec4 per Gaussian — ``[x, y, z, opacity]``, ``[xx, xy, xz, yy]``,
  ``[yz, zz, 0, 0]`` (world position, sigmoid opacity, world 3D covariance computed once on
  upload from the normalised quaternion and the scales), 48 bytes;
- SH: ``K * 3`` float32 per Gaussian (``Gaussians.sh`` as is), evaluated in the vertex
  shader along the view direction for degree 0..3 (``sh_degree`` limits it);
- order: uint32 per drawn instance, indices into the current frame's list.

A frame is ``static + dynamic[t]`` (:class:`engine.scene.Scene4D`). Every dynamic frame is
resident in one buffer with per-frame offsets, so :meth:`SplatRenderer.set_frame` only
changes two uniforms: scrubbing costs nothing on the GPU side. Frame-local index ``i`` is
static Gaussian ``i`` when ``i < n_static`` and dynamic Gaussian ``i - n_static`` of frame
``t`` otherwise.

Blending is back to front on premultiplied colour, ``glBlendFunc(GL_ONE,
GL_ONE_MINUS_SRC_ALPHA)``, depth test off: with the framebuffer cleared to ``(bg, 0)`` the
result is ``sum_i c_i a_i T_i + T bg`` and alpha ``1 - T`` — front-to-back compositing.
The only intended difference from the reference is its early stop at transmittance 1e-4
(bounded by 1e-4 in colour).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from OpenGL import GL

from engine.gaussians import Gaussians
from engine.lift.raster import quat_to_rotmat

from .gl.shaders import load_program

FLOATS_PER_SPLAT = 12
Viewport = tuple[int, int, int, int]
ViewSpec = tuple[np.ndarray, np.ndarray, Viewport]  # (world->GL camera, projection, viewport)

_BIND_STATIC, _BIND_STATIC_SH, _BIND_DYN, _BIND_DYN_SH, _BIND_ORDER = range(5)


def pack_splats(g: Gaussians) -> tuple[np.ndarray, np.ndarray]:
    """[N, 12] float32 splat rows and [N, K*3] float32 SH rows for the SSBOs."""
    with torch.no_grad():
        means = g.means.detach().to("cpu", torch.float64)
        rot = quat_to_rotmat(g.quats.detach().to("cpu", torch.float64))  # [N, 3, 3]
        rs = rot * torch.exp(g.log_scales.detach().to("cpu", torch.float64)).unsqueeze(-2)
        cov = rs @ rs.transpose(-1, -2)
        opac = torch.sigmoid(g.opacities.detach().to("cpu", torch.float64))
        rows = torch.zeros(len(g), FLOATS_PER_SPLAT, dtype=torch.float32)
        rows[:, 0:3] = means
        rows[:, 3] = opac
        rows[:, 4:10] = torch.stack(
            [cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]],
            -1,
        )
        sh = g.sh.detach().to("cpu", torch.float32).reshape(len(g), 3 * g.sh.shape[1])
    return rows.numpy(), sh.numpy()


def intrinsics_from_projection(proj: np.ndarray, width: int, height: int) -> dict[str, float]:
    """fx, fy, cx, cy (OpenCV pixels, y down) and near / far planes of a GL projection."""
    p = np.asarray(proj, dtype=np.float64)
    p22, p23 = p[2, 2], p[2, 3]
    near = p23 / (p22 - 1.0)
    far = math.inf if abs(p22 + 1.0) < 1e-12 else p23 / (p22 + 1.0)
    return {
        "fx": 0.5 * width * p[0, 0],
        "fy": 0.5 * height * p[1, 1],
        "cx": 0.5 * width * (1.0 - p[0, 2]),
        "cy": 0.5 * height * (1.0 + p[1, 2]),
        "near": near,
        "far": far,
    }


def back_to_front(means: np.ndarray, view_gl: np.ndarray, near: float = 0.0) -> np.ndarray:
    """uint32 indices of ``means`` [N, 3] sorted far to near for a world->GL-camera matrix.

    The reverse of a stable ascending sort on camera depth (the reference's front-to-back
    order, ties included). Gaussians closer than ``near`` are left out.
    """
    m = np.asarray(view_gl, dtype=np.float32)
    depth = -(means @ m[2, :3] + m[2, 3])  # OpenCV z = -GL z
    if near > 0:
        keep = np.flatnonzero(depth >= near)
        idx = keep[np.argsort(depth[keep], kind="stable")]
    else:
        idx = np.argsort(depth, kind="stable")
    return idx[::-1].astype(np.uint32)


class _Buffer:
    """A growable SSBO."""

    def __init__(self, usage: int = GL.GL_STATIC_DRAW) -> None:
        self.id = int(GL.glGenBuffers(1))
        self.usage = usage
        self.capacity = 0
        self.write(np.zeros(4, np.float32))

    def write(self, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data)
        n = max(int(data.nbytes), 16)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, self.id)
        if n > self.capacity or self.usage == GL.GL_STATIC_DRAW:
            GL.glBufferData(GL.GL_SHADER_STORAGE_BUFFER, n, None, self.usage)
            self.capacity = n
        if data.nbytes:
            GL.glBufferSubData(GL.GL_SHADER_STORAGE_BUFFER, 0, data.nbytes, data)
        GL.glBindBuffer(GL.GL_SHADER_STORAGE_BUFFER, 0)

    def bind(self, binding: int) -> None:
        GL.glBindBufferBase(GL.GL_SHADER_STORAGE_BUFFER, binding, self.id)

    def delete(self) -> None:
        if self.id:
            GL.glDeleteBuffers(1, [self.id])
            self.id = 0


class SplatRenderer:
    """Draws a static Gaussian set plus the current dynamic frame into the bound framebuffer.

    Create, use and :meth:`close` it with its OpenGL context current.
    """

    def __init__(self, shader: str = "splat") -> None:
        self.program = load_program(shader)
        self.vao = int(GL.glGenVertexArrays(1))
        self._static = _Buffer()
        self._static_sh = _Buffer()
        self._dyn = _Buffer()
        self._dyn_sh = _Buffer()
        self._order = _Buffer(GL.GL_STREAM_DRAW)
        self._static_means = np.zeros((0, 3), np.float32)
        self._dyn_means: list[np.ndarray] = []
        self._dyn_offsets: list[int] = []
        self._dyn_host: list[tuple[np.ndarray, np.ndarray]] = []  # streaming mode only
        self._resident = -1  # the frame in the dynamic buffers (streaming mode)
        self.streaming = False  # dynamic frames too big to be resident: one at a time
        self.sh_k = 1
        self._dyn_k = 1
        self.frame = 0
        self.sh_degree: int | None = None  # None: the data's degree
        max_block = int(GL.glGetIntegerv(GL.GL_MAX_SHADER_STORAGE_BLOCK_SIZE))
        self.max_block_bytes = max_block if max_block > 0 else 2**31 - 1
        self._u = {
            name: GL.glGetUniformLocation(self.program, name)
            for name in (
                "uView",
                "uFocal",
                "uCentre",
                "uSize",
                "uNearFar",
                "uCamPos",
                "uStaticCount",
                "uDynOffset",
                "uShDegree",
                "uShK",
                "uOrigin",
            )
        }

    # ------------------------------------------------------------------ data

    @property
    def n_static(self) -> int:
        return len(self._static_means)

    @property
    def n_frames(self) -> int:
        return len(self._dyn_means)

    @property
    def n_dynamic(self) -> int:
        """Dynamic Gaussians in the current frame."""
        return len(self._dyn_means[self.frame]) if self._dyn_means else 0

    @property
    def count(self) -> int:
        """Gaussians in the current frame (static + dynamic)."""
        return self.n_static + self.n_dynamic

    def _check_size(self, what: str, *arrays: np.ndarray) -> None:
        for a in arrays:
            if a.nbytes > self.max_block_bytes:
                warnings.warn(
                    f"{what}: a {a.nbytes / 2**20:.0f} MiB buffer exceeds this driver's "
                    f"GL_MAX_SHADER_STORAGE_BLOCK_SIZE ({self.max_block_bytes / 2**20:.0f} MiB);"
                    " rendering may be incomplete on drivers that enforce it",
                    RuntimeWarning,
                    stacklevel=3,
                )

    def upload_static(self, g: Gaussians) -> None:
        rows, sh = pack_splats(g)
        self._check_size(f"static set of {len(g)} Gaussians", rows, sh)
        self._static.write(rows)
        self._static_sh.write(sh)
        self._static_means = np.ascontiguousarray(rows[:, :3])
        self.sh_k = g.sh.shape[1]
        self._check_k()

    def upload_dynamic(self, frames: Sequence[Gaussians]) -> None:
        """All dynamic frames, resident in one buffer (frame t at its offset) when that fits
        the driver's SSBO block limit (instant scrubbing); otherwise *streamed*: the packed
        frames stay in host memory and :meth:`set_frame` uploads one frame at a time, so GPU
        memory holds a single frame (Mesa's limit is 128 MiB, ~2.8 M dynamic splats-frames)."""
        packed = [pack_splats(g) for g in frames]
        ks = {g.sh.shape[1] for g in frames}
        if len(ks) > 1:
            raise ValueError(f"dynamic frames have different SH sizes {sorted(ks)}")
        k = ks.pop() if ks else self.sh_k
        rows = [p[0] for p in packed]
        self._dyn_means = [np.ascontiguousarray(r[:, :3]) for r in rows]
        self._dyn_k = k
        self.frame = min(self.frame, max(len(frames) - 1, 0))
        row_bytes = sum(p[0].nbytes for p in packed)
        sh_bytes = sum(p[1].nbytes for p in packed)
        self.streaming = max(row_bytes, sh_bytes) > self.max_block_bytes
        if self.streaming:
            self._dyn_host = packed
            self._dyn_offsets = [0] * len(packed)
            self._resident = -1
            self._upload_frame(self.frame)
        else:
            self._dyn_host = []
            counts = [len(r) for r in rows]
            self._dyn_offsets = [int(x) for x in np.cumsum([0, *counts])[:-1]]
            all_rows = np.concatenate(rows) if rows else np.zeros((0, 12), np.float32)
            shs = [p[1] for p in packed]
            all_sh = np.concatenate(shs) if shs else np.zeros((0, 3), np.float32)
            self._dyn.write(all_rows)
            self._dyn_sh.write(all_sh)
        self._check_k()

    def _upload_frame(self, t: int) -> None:
        """Streaming mode: make frame ``t`` the one in the dynamic buffers."""
        if t == self._resident or not self._dyn_host:
            return
        rows, sh = self._dyn_host[t]
        self._check_size(f"dynamic frame {t} of {len(rows)} Gaussians", rows, sh)
        self._dyn.write(rows)
        self._dyn_sh.write(sh)
        self._resident = t

    def _check_k(self) -> None:
        if self._dyn_means and self.n_static and self._dyn_k != self.sh_k:
            raise ValueError(
                f"static set has {self.sh_k} SH coefficients, dynamic frames {self._dyn_k}"
            )
        if not self.n_static and self._dyn_means:
            self.sh_k = self._dyn_k

    def set_frame(self, t: int) -> None:
        if not self._dyn_means:
            if t != 0:
                raise IndexError(f"frame {t}: no dynamic frames uploaded")
            return
        if not 0 <= t < len(self._dyn_means):
            raise IndexError(f"frame {t} out of range 0..{len(self._dyn_means) - 1}")
        self.frame = t
        if self.streaming:
            self._upload_frame(t)

    def means(self) -> np.ndarray:
        """[count, 3] float32 world positions of the current frame, in frame-local order."""
        if not self._dyn_means:
            return self._static_means
        return np.concatenate([self._static_means, self._dyn_means[self.frame]])

    def sort(self, view_gl: np.ndarray, near: float = 0.0) -> np.ndarray:
        """Back-to-front order (uint32 frame-local indices) for one world->GL-camera matrix."""
        return back_to_front(self.means(), view_gl, near)

    # ------------------------------------------------------------------ drawing

    def draw(self, views: Sequence[ViewSpec], order: np.ndarray | None = None) -> None:
        """Draw the current frame into each viewport of the bound framebuffer.

        views: list of (world->GL-camera [4, 4], GL projection [4, 4], (x, y, w, h) viewport
            in framebuffer pixels from the bottom-left) — one entry for mono, two for stereo.
        order: back-to-front frame-local indices (uint32); None sorts for ``views[0]``.
            One order serves every view (for stereo, sort for the head / centre eye).
        The caller clears the framebuffer (to (bg, 0)); blending state is set and restored.
        """
        if not views:
            return
        if order is None:
            order = self.sort(views[0][0])
        order = np.ascontiguousarray(order, dtype=np.uint32)
        n = len(order)
        if n == 0:
            return
        if n and int(order.max()) >= self.count:
            raise IndexError(f"order index {int(order.max())} >= {self.count} Gaussians")
        self._order.write(order)
        degree = round(math.sqrt(self.sh_k)) - 1
        if self.sh_degree is not None:
            degree = min(degree, self.sh_degree)

        GL.glUseProgram(self.program)
        GL.glBindVertexArray(self.vao)
        self._static.bind(_BIND_STATIC)
        self._static_sh.bind(_BIND_STATIC_SH)
        self._dyn.bind(_BIND_DYN)
        self._dyn_sh.bind(_BIND_DYN_SH)
        self._order.bind(_BIND_ORDER)
        u = self._u
        GL.glUniform1ui(u["uStaticCount"], self.n_static)
        GL.glUniform1ui(u["uDynOffset"], self._dyn_offsets[self.frame] if self._dyn_means else 0)
        GL.glUniform1i(u["uShDegree"], degree)
        GL.glUniform1i(u["uShK"], self.sh_k)

        was_blend = GL.glIsEnabled(GL.GL_BLEND)
        was_depth = GL.glIsEnabled(GL.GL_DEPTH_TEST)
        was_scissor = GL.glIsEnabled(GL.GL_SCISSOR_TEST)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_SCISSOR_TEST)
        for view_gl, proj, (x, y, w, h) in views:
            k = intrinsics_from_projection(proj, w, h)
            m = np.asarray(view_gl, dtype=np.float64)
            campos = -m[:3, :3].T @ m[:3, 3]
            GL.glViewport(x, y, w, h)
            GL.glScissor(x, y, w, h)
            GL.glUniformMatrix4fv(u["uView"], 1, GL.GL_TRUE, m.astype(np.float32))
            GL.glUniform2f(u["uFocal"], k["fx"], k["fy"])
            GL.glUniform2f(u["uCentre"], k["cx"], k["cy"])
            GL.glUniform2f(u["uSize"], float(w), float(h))
            GL.glUniform2f(u["uNearFar"], k["near"], min(k["far"], 3.0e38))
            GL.glUniform3f(u["uCamPos"], *campos.astype(np.float32))
            GL.glUniform2f(u["uOrigin"], float(x), float(y))
            GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, n)
        if not was_scissor:
            GL.glDisable(GL.GL_SCISSOR_TEST)
        if was_depth:
            GL.glEnable(GL.GL_DEPTH_TEST)
        if not was_blend:
            GL.glDisable(GL.GL_BLEND)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)

    def close(self) -> None:
        """Free the GL objects (the context must be current)."""
        for b in (self._static, self._static_sh, self._dyn, self._dyn_sh, self._order):
            b.delete()
        if self.vao:
            GL.glDeleteVertexArrays(1, [self.vao])
            self.vao = 0
        if self.program:
            GL.glDeleteProgram(self.program)
            self.program = 0


__all__ = [
    "SplatRenderer",
    "ViewSpec",
    "Viewport",
    "back_to_front",
    "intrinsics_from_projection",
    "pack_splats",
]
