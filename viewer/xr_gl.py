"""OpenGL side of the headset viewer: the graphics binding handed to OpenXR, swapchain format
choice, per-eye render targets with the compose pass, and GPU timers.

Bindings (``XR_KHR_opengl_enable``):
  EGL  ``XR_MNDX_egl_enable`` (Monado): a surfaceless EGL context, no X server at all.
       Preferred when the runtime offers it.
  GLX  ``XrGraphicsBindingOpenGLXlibKHR`` (SteamVR, Monado under X11): a GLX context on a
       1x1 pbuffer of the X display named by ``DISPLAY``.

PyOpenGL's GL entry points are resolved through libglvnd, which dispatches to whichever
context is current, so the splat renderer runs unchanged on either binding. Importing
``xr`` makes PyOpenGL switch its platform object to GLX (pyopenxr's ``platform/linux.py``);
:func:`import_xr` binds ``OpenGL.GL`` first and restores the platform object afterwards,
so EGL keeps working in the same process.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

# Colour formats in order of preference (GL internal formats). sRGB first: the splat colours
# are sRGB-encoded values, stored as they are; then 10-bit and float formats (values are
# decoded to linear light in the compose pass for these), then plain 8-bit.
GL_SRGB8_ALPHA8 = 0x8C43
GL_RGB10_A2 = 0x8059
GL_RGBA16F = 0x881A
GL_RGBA8 = 0x8058
FORMAT_PREFERENCE = (GL_SRGB8_ALPHA8, GL_RGB10_A2, GL_RGBA16F, GL_RGBA8)
FORMAT_NAMES = {
    GL_SRGB8_ALPHA8: "GL_SRGB8_ALPHA8",
    GL_RGB10_A2: "GL_RGB10_A2",
    GL_RGBA16F: "GL_RGBA16F",
    GL_RGBA8: "GL_RGBA8",
    0x8C41: "GL_SRGB8",
    0x8051: "GL_RGB8",
    0x881B: "GL_RGB16F",
    0x8C3A: "GL_R11F_G11F_B10F",
}
SRGB_FORMATS = frozenset({GL_SRGB8_ALPHA8, 0x8C41})

__all__ = [
    "FORMAT_PREFERENCE",
    "EglBinding",
    "EyeTarget",
    "GlxBinding",
    "GpuTimer",
    "choose_format",
    "draw_eye",
    "format_name",
    "import_xr",
]


def import_xr() -> Any:
    """``import xr`` without losing PyOpenGL's platform (see the module doc). The OpenXR
    loader's own error log is silenced (``XR_LOADER_DEBUG=none``, unless set): failures
    reach the user as one message from the caller."""
    os.environ.setdefault("XR_LOADER_DEBUG", "none")
    import OpenGL.platform as plat
    from OpenGL import GL  # noqa: F401  - bind GL entry points under the current platform

    global _GLX_PLATFORM
    saved = plat.PLATFORM
    try:
        import xr
    finally:
        if _GLX_PLATFORM is None and "GLX" in type(plat.PLATFORM).__name__:
            _GLX_PLATFORM = plat.PLATFORM
        plat.PLATFORM = saved
    return xr


_GLX_PLATFORM: Any = None  # the GLX platform object pyopenxr installed (GlxBinding uses it)


def choose_format(offered: list[int]) -> int:
    """The first of :data:`FORMAT_PREFERENCE` the runtime offers, else its first format."""
    if not offered:
        raise RuntimeError("the OpenXR runtime offers no swapchain formats")
    for f in FORMAT_PREFERENCE:
        if f in offered:
            return f
    return offered[0]


def format_name(fmt: int) -> str:
    return FORMAT_NAMES.get(int(fmt), f"0x{int(fmt):04X}")


# --------------------------------------------------------------------------- bindings


class EglBinding:
    """A surfaceless EGL OpenGL 4.3+ core context and its ``XrGraphicsBindingEGLMNDX``."""

    kind = "egl"

    def __init__(self, xr: Any) -> None:
        from OpenGL import EGL

        from .gl.context import EGLContext

        self.ctx = EGLContext()
        cfg_id = EGL.EGLint()
        if not EGL.eglQueryContext(
            self.ctx.display, self.ctx.context, EGL.EGL_CONFIG_ID, ctypes.pointer(cfg_id)
        ):
            raise RuntimeError("eglQueryContext(EGL_CONFIG_ID) failed")
        attribs = (EGL.EGLint * 3)(EGL.EGL_CONFIG_ID, cfg_id.value, EGL.EGL_NONE)
        config = EGL.EGLConfig()
        n = EGL.EGLint()
        ok = EGL.eglChooseConfig(self.ctx.display, attribs, ctypes.pointer(config), 1, n)
        if not ok or n.value < 1:
            raise RuntimeError("eglChooseConfig(EGL_CONFIG_ID) found no config")
        libegl = ctypes.CDLL("libEGL.so.1")
        gpa = ctypes.cast(libegl.eglGetProcAddress, ctypes.c_void_p).value
        self._binding = xr.GraphicsBindingEGLMNDX(
            get_proc_address=xr.PFN_xrEglGetProcAddressMNDX(gpa),
            display=self.ctx.display,
            config=config,
            context=self.ctx.context,
        )
        self.renderer = self.ctx.renderer

    @property
    def pointer(self) -> ctypes.c_void_p:
        return ctypes.cast(ctypes.pointer(self._binding), ctypes.c_void_p)

    def make_current(self) -> None:
        self.ctx.make_current()

    def close(self) -> None:
        self.ctx.close()


class GlxBinding:
    """A GLX OpenGL 4.3+ core context on a 1x1 pbuffer and ``XrGraphicsBindingOpenGLXlibKHR``.

    Needs an X server (``DISPLAY``): what SteamVR's OpenGL path requires on Linux.
    """

    kind = "glx"

    def __init__(self, xr: Any) -> None:
        from OpenGL import GLX

        x11 = ctypes.CDLL("libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self._x11 = x11
        dpy = x11.XOpenDisplay(None)
        if not dpy:
            raise RuntimeError("cannot open the X display named by DISPLAY")
        self.dpy = dpy
        self._gl = ctypes.CDLL("libGL.so.1")
        # PyOpenGL resolves entry points it has not used yet through its platform object;
        # with a GLX context current that must be the GLX platform (restored on close).
        import OpenGL.platform as plat
        from OpenGL.platform.glx import GLXPlatform

        self._saved_platform = plat.PLATFORM
        plat.PLATFORM = _GLX_PLATFORM or GLXPlatform()
        self.context = None
        self.pbuffer = 0
        try:
            self._setup(GLX, xr)
            from OpenGL import GL

            self.make_current()
            self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
        except BaseException:
            self.close()
            raise

    def _setup(self, GLX: Any, xr: Any) -> None:
        gl = self._gl
        vp = ctypes.c_void_p
        gl.glXChooseFBConfig.restype = ctypes.POINTER(vp)
        gl.glXChooseFBConfig.argtypes = [
            vp,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
        ]
        gl.glXGetFBConfigAttrib.argtypes = [vp, vp, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        gl.glXCreatePbuffer.restype = ctypes.c_ulong
        gl.glXCreatePbuffer.argtypes = [vp, vp, ctypes.POINTER(ctypes.c_int)]
        gl.glXMakeContextCurrent.argtypes = [vp, ctypes.c_ulong, ctypes.c_ulong, vp]
        gl.glXDestroyContext.argtypes = [vp, vp]
        gl.glXDestroyPbuffer.argtypes = [vp, ctypes.c_ulong]
        gl.glXGetProcAddressARB.restype = vp
        gl.glXGetProcAddressARB.argtypes = [ctypes.c_char_p]
        screen = 0
        fb_attr = [
            GLX.GLX_X_RENDERABLE,
            1,
            GLX.GLX_DRAWABLE_TYPE,
            GLX.GLX_PBUFFER_BIT,
            GLX.GLX_RENDER_TYPE,
            GLX.GLX_RGBA_BIT,
            GLX.GLX_RED_SIZE,
            8,
            GLX.GLX_GREEN_SIZE,
            8,
            GLX.GLX_BLUE_SIZE,
            8,
            GLX.GLX_ALPHA_SIZE,
            8,
            0,
        ]
        n = ctypes.c_int()
        configs = gl.glXChooseFBConfig(
            self.dpy, screen, (ctypes.c_int * len(fb_attr))(*fb_attr), ctypes.byref(n)
        )
        if not configs or n.value < 1:
            raise RuntimeError("glXChooseFBConfig found no RGBA8 pbuffer config")
        cfg = configs[0]
        visual = ctypes.c_int()
        gl.glXGetFBConfigAttrib(self.dpy, cfg, GLX.GLX_VISUAL_ID, ctypes.byref(visual))
        create = ctypes.CFUNCTYPE(vp, vp, vp, vp, ctypes.c_int, ctypes.POINTER(ctypes.c_int))(
            gl.glXGetProcAddressARB(b"glXCreateContextAttribsARB")
        )
        ctx_attr = [0x2091, 4, 0x2092, 5, 0x9126, 0x1, 0]  # 4.5 core profile
        ctx = create(self.dpy, cfg, None, 1, (ctypes.c_int * 7)(*ctx_attr))
        if not ctx:
            ctx_attr[3] = 3
            ctx = create(self.dpy, cfg, None, 1, (ctypes.c_int * 7)(*ctx_attr))
        if not ctx:
            raise RuntimeError("glXCreateContextAttribsARB could not make a 4.3+ core context")
        pb_attr = (ctypes.c_int * 5)(GLX.GLX_PBUFFER_WIDTH, 1, GLX.GLX_PBUFFER_HEIGHT, 1, 0)
        self.context = ctx
        self.pbuffer = gl.glXCreatePbuffer(self.dpy, cfg, pb_attr)
        if not self.pbuffer:
            raise RuntimeError("glXCreatePbuffer failed")
        self._binding = xr.GraphicsBindingOpenGLXlibKHR(
            x_display=ctypes.cast(self.dpy, ctypes.POINTER(GLX.Display)),
            visualid=visual.value,
            glx_fbconfig=ctypes.cast(cfg, GLX.GLXFBConfig),
            glx_drawable=self.pbuffer,
            glx_context=ctypes.cast(ctx, GLX.GLXContext),
        )

    @property
    def pointer(self) -> ctypes.c_void_p:
        return ctypes.cast(ctypes.pointer(self._binding), ctypes.c_void_p)

    def make_current(self) -> None:
        if not self._gl.glXMakeContextCurrent(self.dpy, self.pbuffer, self.pbuffer, self.context):
            raise RuntimeError("glXMakeContextCurrent failed")

    def close(self) -> None:
        if self.dpy:
            self._gl.glXMakeContextCurrent(self.dpy, 0, 0, None)
            if self.pbuffer:
                self._gl.glXDestroyPbuffer(self.dpy, self.pbuffer)
            if self.context:
                self._gl.glXDestroyContext(self.dpy, self.context)
            self._x11.XCloseDisplay(self.dpy)
            self.dpy = None
            import OpenGL.platform as plat

            plat.PLATFORM = self._saved_platform


# --------------------------------------------------------------------------- per-eye target


class EyeTarget:
    """One eye: an RGBA16F render target the splats are blended into, and the compose pass
    that writes it into the runtime's swapchain texture (fade + colour encoding)."""

    def __init__(self, width: int, height: int, swapchain_format: int, program: int) -> None:
        from OpenGL import GL

        self.width, self.height = int(width), int(height)
        self.linear_out = int(swapchain_format) not in SRGB_FORMATS
        self.program = program
        self.tex = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.tex)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, GL.GL_RGBA16F, self.width, self.height)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self.fbo = int(GL.glGenFramebuffers(1))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferTexture2D(
            GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, self.tex, 0
        )
        self._check("eye render target")
        self.out_fbo = int(GL.glGenFramebuffers(1))
        self.vao = int(GL.glGenVertexArrays(1))
        self._u = {
            n: GL.glGetUniformLocation(program, n)
            for n in ("uSrc", "uFade", "uFadeColour", "uLinearOut")
        }
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

    @staticmethod
    def _check(what: str) -> None:
        from OpenGL import GL

        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"{what}: framebuffer incomplete (status 0x{int(status):04X})")

    def begin(self, background: tuple[float, float, float]) -> None:
        """Bind and clear the eye's render target to (background, 0)."""
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glClearColor(*background, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)

    def compose(self, swapchain_tex: int, fade: float, fade_colour=(0.0, 0.0, 0.0)) -> None:
        """Write the eye's render into ``swapchain_tex`` (fade, encoding), blending off."""
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.out_fbo)
        GL.glFramebufferTexture2D(
            GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, swapchain_tex, 0
        )
        self._check("swapchain image")
        GL.glDisable(GL.GL_FRAMEBUFFER_SRGB)
        GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glUseProgram(self.program)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.tex)
        GL.glUniform1i(self._u["uSrc"], 0)
        GL.glUniform1f(self._u["uFade"], float(fade))
        GL.glUniform3f(self._u["uFadeColour"], *(float(c) for c in fade_colour))
        GL.glUniform1i(self._u["uLinearOut"], int(self.linear_out))
        GL.glBindVertexArray(self.vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 3)
        GL.glBindVertexArray(0)
        GL.glUseProgram(0)

    def read_output(self) -> np.ndarray:
        """[H, W, 4] uint8 of the swapchain image last composed into (row 0 at the top), as
        stored (sRGB-encoded values for an sRGB swapchain)."""
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self.out_fbo)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        data = GL.glReadPixels(0, 0, self.width, self.height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
        img = np.frombuffer(data, dtype=np.uint8).reshape(self.height, self.width, 4)
        return np.ascontiguousarray(img[::-1])

    def close(self) -> None:
        from OpenGL import GL

        GL.glDeleteFramebuffers(2, [self.fbo, self.out_fbo])
        GL.glDeleteTextures(1, [self.tex])
        GL.glDeleteVertexArrays(1, [self.vao])


class GpuTimer:
    """GL_TIME_ELAPSED queries for ``slots`` named intervals per frame, read ``depth`` frames
    later (never stalls the frame loop). :meth:`collect` returns the oldest finished frame's
    milliseconds per slot, or None while results are pending."""

    def __init__(self, slots: int, depth: int = 3) -> None:
        from OpenGL import GL

        self.slots, self.depth = slots, depth
        self.ids = [list(GL.glGenQueries(slots)) for _ in range(depth)]
        self._frame = 0
        self._issued: list[bool] = [False] * depth

    def begin(self, slot: int) -> None:
        from OpenGL import GL

        GL.glBeginQuery(GL.GL_TIME_ELAPSED, self.ids[self._frame % self.depth][slot])

    def end(self) -> None:
        from OpenGL import GL

        GL.glEndQuery(GL.GL_TIME_ELAPSED)

    def next_frame(self) -> list[float] | None:
        """Close this frame's set; return the milliseconds of the oldest pending set if done."""
        from OpenGL import GL

        self._issued[self._frame % self.depth] = True
        self._frame += 1
        k = self._frame % self.depth
        if not self._issued[k]:
            return None
        ids = self.ids[k]
        self._issued[k] = False
        if not GL.glGetQueryObjectuiv(ids[-1], GL.GL_QUERY_RESULT_AVAILABLE):
            return None  # still running: drop this sample rather than wait
        from OpenGL.raw.GL.VERSION.GL_3_3 import glGetQueryObjectui64v

        out = []
        for q in ids:
            ns = ctypes.c_uint64()
            glGetQueryObjectui64v(q, GL.GL_QUERY_RESULT, ctypes.byref(ns))
            out.append(ns.value / 1e6)
        return out

    def close(self) -> None:
        from OpenGL import GL

        for ids in self.ids:
            GL.glDeleteQueries(len(ids), ids)


def draw_eye(
    renderer: Any,
    target: EyeTarget,
    swapchain_tex: int,
    view_gl: np.ndarray,
    proj: np.ndarray,
    order: np.ndarray | None,
    fade: float,
    background: tuple[float, float, float],
) -> None:
    """One eye: clear the eye's target, draw the splats (``renderer``: a
    :class:`viewer.renderer.SplatRenderer` with the frame set) with the eye's world->GL
    view [4, 4] and projection [4, 4] in the given back-to-front ``order``, and compose the
    result into ``swapchain_tex`` with the comfort ``fade``."""
    target.begin(background)
    renderer.draw([(view_gl, proj, (0, 0, target.width, target.height))], order)
    target.compose(swapchain_tex, fade)
