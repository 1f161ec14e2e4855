"""OpenGL Gaussian-splat renderer (instanced quads, SSBOs, sorted alpha blending).

:class:`SplatRenderer` draws Gaussians into whatever framebuffer is bound, with the image
formation model of ``engine.lift.raster`` (gsplat 1.5 "classic"; shaders/splat.vert and
shaders/splat.frag hold the maths). It needs a current OpenGL 4.3+ core context (an
:class:`viewer.gl.context.EGLContext`, or the app's Qt context) for its whole life.

Data layout (std430 SSBOs, half floats where that is lossless enough):

- splats: ``8 + ceil(3K / 2)`` uint32 per Gaussian (40 bytes at SH degree 0) — world
  position as 3 float32, then float16 pairs: (sigmoid opacity, log-scale x), (log-scale y,
  log-scale z), (qw, qx), (qy, qz) of the normalised quaternion, one spare word, then the
  ``K * 3`` SH coefficients as float16 pairs (``Gaussians.sh`` order). The vertex shader
  builds the 3D covariance. float16 keeps 11 significant bits: scales within 0.05-0.4 %,
  opacity within 5e-4, colours within 3e-4;
- order: uint32 per drawn instance, indices into the current frame's list.

:func:`quantised` gives the Gaussians exactly as stored, so a reference render of them is
what the GPU should draw. Every buffer is split into up to ``CHUNKS`` SSBOs of at most the
driver's ``GL_MAX_SHADER_STORAGE_BLOCK_SIZE`` (128 MiB on Mesa: 4.2 M splats per chunk), so
a 5-8 M splat scene fits.

A frame is ``static + dynamic[t]`` (:class:`engine.scene.Scene4D`). Every dynamic frame is
resident in one buffer with per-frame offsets when that fits the chunks, so
:meth:`SplatRenderer.set_frame` only changes a uniform; otherwise frames are streamed one at
a time. Frame-local index ``i`` is static Gaussian ``i`` when ``i < n_static`` and dynamic
Gaussian ``i - n_static`` of frame ``t`` otherwise.

Blending is back to front on premultiplied colour, ``glBlendFunc(GL_ONE,
GL_ONE_MINUS_SRC_ALPHA)``, depth test off: with the framebuffer cleared to ``(bg, 0)`` the
result is ``sum_i c_i a_i T_i + T bg`` and alpha ``1 - T`` — front-to-back compositing.
The only intended difference from the reference is its early stop at transmittance 1e-4
(bounded by 1e-4 in colour).

Level of detail: :meth:`SplatRenderer.draw` takes ``lod_scale``; drawing a random 1/k of
the order (:func:`viewer.lod.coarse_order`) with ``lod_scale = k`` makes each splat cover
the area of k (its covariance times k): a coarse, fast preview while the camera moves on a
software rasteriser.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
import torch
from OpenGL import GL

from engine.gaussians import Gaussians

from .gl.shaders import load_program

SPLAT_WORDS = 8  # words before the SH in each record
CHUNKS = 4  # SSBOs per set (the shader's bindings)
Viewport = tuple[int, int, int, int]
ViewSpec = tuple[np.ndarray, np.ndarray, Viewport]  # (world->GL camera, projection, viewport)

_BIND_STATIC, _BIND_DYN, _BIND_ORDER = 0, 4, 8  # static chunks 0-3, dynamic 4-7, order 8


def _halves(x: torch.Tensor) -> np.ndarray:
    """float tensor [N, 2M] -> uint32 [N, M]: consecutive pairs packed as float16 (the low
    half first, as GLSL's unpackHalf2x16 reads them)."""
    h = x.to(torch.float16).contiguous().numpy().view(np.uint16).astype(np.uint32)
    return h[:, 0::2] | (h[:, 1::2] << 16)


def record_words(k: int) -> int:
    """uint32 words per splat record at K SH coefficients."""
    return SPLAT_WORDS + (3 * k + 1) // 2


def pack_splats(g: Gaussians) -> np.ndarray:
    """uint32 [N, record_words(K)] splat records for the SSBOs (module docstring)."""
    with torch.no_grad():
        n = len(g)
        means = g.means.detach().to("cpu", torch.float32).contiguous()
        q = torch.nn.functional.normalize(g.quats.detach().to("cpu", torch.float32), dim=-1)
        opac = torch.sigmoid(g.opacities.detach().to("cpu", torch.float32))
        halfs = torch.cat(
            [opac[:, None], g.log_scales.detach().to("cpu", torch.float32), q], 1
        )  # 8 values: opacity, 3 log-scales, 4 quaternion
        sh = g.sh.detach().to("cpu", torch.float32).reshape(n, 3 * g.sh.shape[1])
        if sh.shape[1] % 2:
            sh = torch.cat([sh, torch.zeros(n, 1)], 1)
        rows = np.zeros((n, record_words(g.sh.shape[1])), np.uint32)
        rows[:, 0:3] = means.numpy().view(np.uint32)
        rows[:, 3:7] = _halves(halfs)
        rows[:, SPLAT_WORDS:] = _halves(sh)
    return rows


def quantised(g: Gaussians) -> Gaussians:
    """``g`` as the renderer stores it (float16 attributes, normalised quaternions)."""

    def half(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(torch.float16).to(torch.float32)

    q = torch.nn.functional.normalize(g.quats.detach().float(), dim=-1)
    opac = half(torch.sigmoid(g.opacities.detach().float())).clamp(1e-7, 1 - 1e-7)
    return Gaussians(
        g.means.detach().float().clone(),
        half(q),
        half(g.log_scales),
        torch.log(opac / (1 - opac)),
        half(g.sh),
    )


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


class _Chunked:
    """Rows of one kind split over ``CHUNKS`` SSBOs of at most ``rows_per_chunk`` rows."""

    def __init__(self) -> None:
        self.parts = [_Buffer() for _ in range(CHUNKS)]

    def write(self, rows: np.ndarray, rows_per_chunk: int) -> None:
        for i, part in enumerate(self.parts):
            part.write(rows[i * rows_per_chunk : (i + 1) * rows_per_chunk])

    def bind(self, first: int) -> None:
        for i, part in enumerate(self.parts):
            part.bind(first + i)

    def delete(self) -> None:
        for part in self.parts:
            part.delete()


class SplatRenderer:
    """Draws a static Gaussian set plus the current dynamic frame into the bound framebuffer.

    Create, use and :meth:`close` it with its OpenGL context current.
    """

    def __init__(self, shader: str = "splat") -> None:
        self.program = load_program(shader)
        self.vao = int(GL.glGenVertexArrays(1))
        self._static = _Chunked()
        self._dyn = _Chunked()
        self._order = _Buffer(GL.GL_STREAM_DRAW)
        self._static_means = np.zeros((0, 3), np.float32)
        self._static_radii = np.zeros(0, np.float32)
        self._dyn_means: list[np.ndarray] = []
        self._dyn_radii: list[np.ndarray] = []
        self._dyn_offsets: list[int] = []
        self._dyn_host: list[np.ndarray | None] = []  # streaming mode only (None: not packed)
        self._dyn_frames: list[Gaussians] = []  # deferred packing: the frames still to pack
        self._packer: threading.Thread | None = None
        self._pack_gen = 0  # a new upload stops the previous packer
        self._settle = False  # deferred: make the frames resident once all are packed
        self._resident = -1  # the frame in the dynamic buffers (streaming mode)
        self.streaming = False  # dynamic frames too big to be resident: one at a time
        self.sh_k = 1
        self._dyn_k = 1
        self.frame = 0
        self.sh_degree: int | None = None  # None: the data's degree
        max_block = int(GL.glGetIntegerv(GL.GL_MAX_SHADER_STORAGE_BLOCK_SIZE))
        self.max_block_bytes = max_block if max_block > 0 else 2**31 - 1
        self._means_cache: tuple[int, np.ndarray, np.ndarray] | None = None
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
                "uStride",
                "uChunk",
                "uLodScale",
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

    @property
    def chunk_rows(self) -> int:
        """Splats per SSBO chunk (the driver's block limit over the record size)."""
        return max(1, self.max_block_bytes // (4 * record_words(self.sh_k)))

    def capacity(self) -> int:
        """The most splats one set (static, or the resident dynamic frames) can hold."""
        return CHUNKS * self.chunk_rows

    def _fits(self, n: int) -> bool:
        return n <= self.capacity()

    def upload_static(self, g: Gaussians) -> None:
        rows = pack_splats(g)
        self.sh_k = g.sh.shape[1]
        if not self._fits(len(rows)):
            raise ValueError(
                f"static set of {len(rows)} Gaussians exceeds what this driver's storage "
                f"blocks hold ({self.capacity()} at SH degree {g.sh_degree})"
            )
        self._static.write(rows, self.chunk_rows)
        self._static_means = g.means.detach().to("cpu", torch.float32).numpy().copy()
        self._static_radii = _radii(g)
        self._means_cache = None
        self._check_k()

    def upload_dynamic(self, frames: Sequence[Gaussians], *, defer: bool = False) -> None:
        """All dynamic frames, resident in the chunked buffers (frame t at its offset) when
        they fit (instant scrubbing); otherwise *streamed*: the packed frames stay in host
        memory and :meth:`set_frame` uploads one frame at a time.

        ``defer``: pack only the current frame now (a window opening a scene stays
        responsive) and the others on a thread; until they are all packed the frames stream
        (a frame not packed yet is packed when shown), then the next :meth:`draw` makes them
        resident when they fit."""
        self._pack_gen += 1
        self._settle = False
        ks = {g.sh.shape[1] for g in frames}
        if len(ks) > 1:
            raise ValueError(f"dynamic frames have different SH sizes {sorted(ks)}")
        k = ks.pop() if ks else self.sh_k
        counts = [len(g) for g in frames]
        if counts and not self._fits(max(counts)):
            raise ValueError(f"a dynamic frame of {max(counts)} Gaussians exceeds the buffers")
        self._dyn_means = [g.means.detach().to("cpu", torch.float32).numpy().copy() for g in frames]
        self._dyn_radii = [_radii(g) for g in frames]
        self._dyn_k = k
        self._means_cache = None
        self.frame = min(self.frame, max(len(frames) - 1, 0))
        self._resident = -1
        deferred = defer and len(frames) > 1
        self._dyn_frames = list(frames) if deferred else []
        self.streaming = deferred or not self._fits(sum(counts))
        if deferred:
            self._dyn_host = [None] * len(frames)
            self._dyn_offsets = [0] * len(frames)
            self._upload_frame(self.frame)
            self._settle = self._fits(sum(counts))
            self._packer = threading.Thread(
                target=self._pack_all, args=(self._pack_gen,), daemon=True
            )
            self._packer.start()
        elif self.streaming:
            self._dyn_host = [pack_splats(g) for g in frames]
            self._dyn_offsets = [0] * len(frames)
            self._upload_frame(self.frame)
        else:
            packed = [pack_splats(g) for g in frames]
            self._dyn_host = []
            self._dyn_offsets = [int(x) for x in np.cumsum([0, *counts])[:-1]]
            empty = np.zeros((0, record_words(k)), np.uint32)
            self._dyn.write(np.concatenate(packed) if packed else empty, self.chunk_rows)
        self._check_k()

    def _pack_all(self, gen: int) -> None:  # on the packer thread
        host, frames = self._dyn_host, self._dyn_frames
        for t, g in enumerate(frames):
            if gen != self._pack_gen:
                return
            if host[t] is None:
                host[t] = pack_splats(g)

    def wait_packed(self, timeout: float | None = None) -> bool:
        """Wait for a deferred upload's packer; True when no packing is left."""
        if self._packer is not None:
            self._packer.join(timeout)
        return self._packer is None or not self._packer.is_alive()

    def _settle_resident(self) -> None:
        """Deferred upload: once every frame is packed, make them resident (GL thread)."""
        if not self._settle or (self._packer is not None and self._packer.is_alive()):
            return
        self._settle = False
        if any(rows is None for rows in self._dyn_host):
            return  # the packer was stopped: keep streaming
        self._dyn_offsets = [int(x) for x in np.cumsum([0, *map(len, self._dyn_host)])[:-1]]
        self._dyn.write(np.concatenate(self._dyn_host), self.chunk_rows)
        self._dyn_host, self._dyn_frames = [], []
        self.streaming = False
        self._resident = -1

    def _upload_frame(self, t: int) -> None:
        """Streaming mode: make frame ``t`` the one in the dynamic buffers."""
        if t == self._resident or not self._dyn_host:
            return
        rows = self._dyn_host[t]
        if rows is None:  # deferred, not packed yet
            rows = self._dyn_host[t] = pack_splats(self._dyn_frames[t])
        self._dyn.write(rows, self.chunk_rows)
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

    def _frame_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(means, radii) of the current frame, built once per frame (read-only)."""
        c = self._means_cache
        if c is not None and c[0] == self.frame:
            return c[1], c[2]
        if not self._dyn_means:
            means, radii = self._static_means, self._static_radii
        else:
            means = np.concatenate([self._static_means, self._dyn_means[self.frame]])
            radii = np.concatenate([self._static_radii, self._dyn_radii[self.frame]])
        means.flags.writeable = False
        radii.flags.writeable = False
        self._means_cache = (self.frame, means, radii)
        return means, radii

    def means(self) -> np.ndarray:
        """[count, 3] float32 world positions of the current frame, in frame-local order
        (read-only; the same array until the frame or the data change)."""
        return self._frame_arrays()[0]

    def radii(self) -> np.ndarray:
        """[count] float32 world radius (3 sigma of the largest axis) of each splat."""
        return self._frame_arrays()[1]

    def sort(self, view_gl: np.ndarray, near: float = 0.0, frustum=None) -> np.ndarray:
        """Back-to-front order (uint32 frame-local indices) for one world->GL-camera matrix;
        with a :class:`viewer.sort.Frustum`, only of the splats that can reach it."""
        means = self.means()
        if frustum is None:
            return back_to_front(means, view_gl, near)
        from .sort import frustum_cull

        keep = frustum_cull(means, view_gl, frustum)
        return keep[back_to_front(means[keep], view_gl, near)].astype(np.uint32)

    # ------------------------------------------------------------------ drawing

    def draw(
        self, views: Sequence[ViewSpec], order: np.ndarray | None = None, lod_scale: float = 1.0
    ) -> None:
        """Draw the current frame into each viewport of the bound framebuffer.

        views: list of (world->GL-camera [4, 4], GL projection [4, 4], (x, y, w, h) viewport
            in framebuffer pixels from the bottom-left) — one entry for mono, two for stereo.
        order: back-to-front frame-local indices (uint32); None sorts for ``views[0]``.
            One order serves every view (for stereo, sort for the head / centre eye).
        lod_scale: each splat's covariance is multiplied by this (a subset from
        :meth:`lod_subset` drawn with its k covers what the whole set covers).
        The caller clears the framebuffer (to (bg, 0)); blending state is set and restored.
        """
        if not views:
            return
        self._settle_resident()
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
        self._dyn.bind(_BIND_DYN)
        self._order.bind(_BIND_ORDER)
        u = self._u
        GL.glUniform1ui(u["uStaticCount"], self.n_static)
        GL.glUniform1ui(u["uDynOffset"], self._dyn_offsets[self.frame] if self._dyn_means else 0)
        GL.glUniform1i(u["uShDegree"], degree)
        GL.glUniform1i(u["uShK"], self.sh_k)
        GL.glUniform1ui(u["uStride"], record_words(self.sh_k))
        GL.glUniform1ui(u["uChunk"], self.chunk_rows)
        GL.glUniform1f(u["uLodScale"], float(lod_scale))

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
        self._pack_gen += 1  # stops a packer
        for b in (self._static, self._dyn, self._order):
            b.delete()
        if self.vao:
            GL.glDeleteVertexArrays(1, [self.vao])
            self.vao = 0
        if self.program:
            GL.glDeleteProgram(self.program)
            self.program = 0


def _radii(g: Gaussians) -> np.ndarray:
    return (3.0 * torch.exp(g.log_scales.detach().float().amax(-1))).cpu().numpy()


__all__ = [
    "SplatRenderer",
    "quantised",
    "ViewSpec",
    "Viewport",
    "back_to_front",
    "intrinsics_from_projection",
    "pack_splats",
]
