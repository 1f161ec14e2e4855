"""Offscreen rendering of Gaussians / 4D scenes through EGL (no window, no X, no GPU needed).

``OffscreenRenderer(w, h).render(scene, view, frame=t)`` returns an ``[H, W, 3]`` float32
image in [0, 1] with row 0 at the top, pixel-aligned with ``engine.lift.raster.render_view``
for the same :class:`engine.camera.View` (``view.width`` x ``view.height`` must fit in the
framebuffer; the image is drawn in its top-left corner). Sorting is on the CPU
(``np.argsort`` of camera depth, back to front).

Uploads are cached by object identity: rendering the same ``Gaussians`` / ``Scene4D``
object again reuses the GPU copy (call :meth:`OffscreenRenderer.invalidate` after changing
its tensors in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from OpenGL import GL

from engine.camera import View, gl_projection
from engine.gaussians import Gaussians
from engine.scene import Scene4D

from .gl.context import EGLContext
from .lod import frustum_for
from .renderer import SplatRenderer, Viewport

NEAR = 0.01  # the reference rasteriser's default cull planes
FAR = 1e4


class OffscreenRenderer:
    """An EGL context, a framebuffer object of ``width`` x ``height`` and a splat renderer.

    float_buffer: RGBA32F colour attachment (exact blending; default) or RGBA8.
    """

    def __init__(self, width: int, height: int, *, float_buffer: bool = True) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"framebuffer size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.ctx = EGLContext()
        try:
            self.ctx.make_current()
            max_size = int(GL.glGetIntegerv(GL.GL_MAX_RENDERBUFFER_SIZE))
            if max(width, height) > max_size:
                raise ValueError(f"{width}x{height} exceeds GL_MAX_RENDERBUFFER_SIZE {max_size}")
            self.fbo = int(GL.glGenFramebuffers(1))
            self.rbo = int(GL.glGenRenderbuffers(1))
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, self.rbo)
            fmt = GL.GL_RGBA32F if float_buffer else GL.GL_RGBA8
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, self.width, self.height)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
            GL.glFramebufferRenderbuffer(
                GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_RENDERBUFFER, self.rbo
            )
            status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
            if status != GL.GL_FRAMEBUFFER_COMPLETE:
                raise RuntimeError(f"framebuffer incomplete (status 0x{int(status):04X})")
            self.renderer = SplatRenderer()
        except BaseException:
            self.ctx.close()
            raise
        self._uploaded: object | None = None

    # ------------------------------------------------------------------ data

    def invalidate(self) -> None:
        """Forget the cached upload (the next render uploads again)."""
        self._uploaded = None

    def upload(self, scene: Gaussians | Scene4D) -> None:
        """Upload a Gaussian set or a 4D scene unless this very object is already resident."""
        if scene is self._uploaded:
            return
        self.ctx.make_current()
        if isinstance(scene, Scene4D):
            self.renderer.upload_static(scene.static)
            self.renderer.upload_dynamic(scene.dynamic)
        elif isinstance(scene, Gaussians):
            self.renderer.upload_static(scene)
            self.renderer.upload_dynamic([])
        else:
            raise TypeError(f"expected Gaussians or Scene4D, got {type(scene).__name__}")
        self._uploaded = scene

    # ------------------------------------------------------------------ rendering

    def render(
        self,
        scene: Gaussians | Scene4D,
        view: View,
        background: Sequence[float] = (0.0, 0.0, 0.0),
        frame: int = 0,
        order: np.ndarray | None = None,
        lod_scale: float = 1.0,
    ) -> np.ndarray:
        """[view.height, view.width, 3] float32 RGB in [0, 1], row 0 at the top."""
        self._check_size(view.width, view.height)
        vp = (0, self.height - view.height, view.width, view.height)  # top-left corner
        out = self.render_views(scene, [(view, vp)], background, frame, order, lod_scale)
        return out[: view.height, : view.width]

    def render_views(
        self,
        scene: Gaussians | Scene4D,
        views: Sequence[tuple[View, Viewport]],
        background: Sequence[float] = (0.0, 0.0, 0.0),
        frame: int = 0,
        order: np.ndarray | None = None,
        lod_scale: float = 1.0,
    ) -> np.ndarray:
        """Draw several views in one pass (e.g. two eyes side by side) and read back the
        whole framebuffer: [height, width, 3], row 0 at the top.

        Viewports are (x, y, w, h) in GL framebuffer pixels (y from the bottom). ``order``
        defaults to a back-to-front sort for the first view (of what its frustum holds, for
        a single view); ``lod_scale`` as for :meth:`SplatRenderer.draw`.
        """
        self.upload(scene)
        self.ctx.make_current()
        r = self.renderer
        r.set_frame(frame)
        specs = [(v.world_to_camera_gl(), gl_projection(v, NEAR, FAR), vp) for v, vp in views]
        if order is None and len(views) == 1:  # one view: sort what its frustum holds
            order = r.sort(specs[0][0], NEAR, frustum_for(views[0][0], r.radii(), NEAR))
        elif order is None and views:
            order = r.sort(specs[0][0], NEAR)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glViewport(0, 0, self.width, self.height)
        bg = [float(c) for c in background]
        if len(bg) != 3:
            raise ValueError(f"background must be 3 values, got {background!r}")
        GL.glClearColor(bg[0], bg[1], bg[2], 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        r.draw(specs, order, lod_scale)
        return self.read()[..., :3]

    def read(self, alpha: bool = False) -> np.ndarray:
        """The framebuffer as float32 [height, width, 4 or 3], clipped to [0, 1], row 0 top."""
        self.ctx.make_current()
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        data = GL.glReadPixels(0, 0, self.width, self.height, GL.GL_RGBA, GL.GL_FLOAT)
        img = np.frombuffer(data, dtype=np.float32).reshape(self.height, self.width, 4)
        img = np.clip(img[::-1], 0.0, 1.0)
        return np.ascontiguousarray(img if alpha else img[..., :3])

    def finish(self) -> None:
        self.ctx.make_current()
        GL.glFinish()

    def _check_size(self, w: int, h: int) -> None:
        if w > self.width or h > self.height:
            raise ValueError(
                f"view {w}x{h} does not fit the {self.width}x{self.height} framebuffer"
            )

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        if self.ctx.closed:
            return
        self.ctx.make_current()
        self.renderer.close()
        GL.glDeleteFramebuffers(1, [self.fbo])
        GL.glDeleteRenderbuffers(1, [self.rbo])
        self._uploaded = None
        self.ctx.close()

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
