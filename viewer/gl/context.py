"""Headless OpenGL 4.3+ core contexts through EGL (no X server, no GPU needed).

:class:`EGLContext` opens a surfaceless EGL display (``EGL_PLATFORM_SURFACELESS_MESA``
through ``eglGetPlatformDisplay`` / ``eglGetPlatformDisplayEXT``; the default display as a
fallback), creates an OpenGL core-profile context of at least version 4.3 (Mesa llvmpipe
gives 4.5) and makes it current with no surface: render into a framebuffer object.

PyOpenGL must use its EGL platform: ``PYOPENGL_PLATFORM=egl`` has to be in ``os.environ``
before the first ``import OpenGL`` anywhere in the process. Importing :mod:`viewer.gl`
sets it (if unset); :func:`has_gl` reports a clear reason when it is too late.

A context is current on one thread at a time; make it current (``with ctx:`` or
:meth:`EGLContext.make_current`) on the thread that issues GL calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys

EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
MIN_VERSION = (4, 3)


class GLUnavailableError(RuntimeError):
    """EGL or a suitable OpenGL context cannot be created on this machine."""


def _check_platform() -> None:
    plat = os.environ.get("PYOPENGL_PLATFORM", "")
    if plat != "egl":
        raise GLUnavailableError(
            f"PyOpenGL platform is {plat or 'unset (GLX/default)'!r}, not 'egl': set "
            "PYOPENGL_PLATFORM=egl before the first 'import OpenGL' (importing viewer.gl "
            "first does it)"
        )
    if "OpenGL" in sys.modules:
        from OpenGL import platform

        name = type(platform.PLATFORM).__name__
        if "EGL" not in name:
            raise GLUnavailableError(
                f"OpenGL was imported with the {name} platform before PYOPENGL_PLATFORM=egl "
                "was set; import viewer.gl (or set the variable) before OpenGL"
            )


def _egl_error(what: str) -> GLUnavailableError:
    from OpenGL import EGL

    try:
        code = EGL.eglGetError()
    except Exception:  # pragma: no cover - EGL itself broken
        code = -1
    return GLUnavailableError(f"{what} failed (EGL error 0x{code:04X})")


def _platform_display():
    """A surfaceless EGL display, or the default display; EGL_NO_DISPLAY if neither."""
    from OpenGL import EGL

    client_exts = b""
    with contextlib.suppress(Exception):  # EGL < 1.5 without client extensions
        client_exts = EGL.eglQueryString(EGL.EGL_NO_DISPLAY, EGL.EGL_EXTENSIONS) or b""
    if b"EGL_MESA_platform_surfaceless" in client_exts:
        for fn_name in ("eglGetPlatformDisplay", "eglGetPlatformDisplayEXT"):
            fn = getattr(EGL, fn_name, None)
            if fn is None:
                continue
            try:
                dpy = fn(EGL_PLATFORM_SURFACELESS_MESA, EGL.EGL_DEFAULT_DISPLAY, None)
            except Exception:
                continue
            if dpy and dpy != EGL.EGL_NO_DISPLAY:
                return dpy, "surfaceless"
    return EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY), "default"


class EGLContext:
    """An OpenGL core context (>= 4.3) on a surfaceless EGL display.

    Use as a context manager (made current on enter, released on exit) or call
    :meth:`make_current` / :meth:`release`; :meth:`close` destroys it (idempotent).
    """

    def __init__(self, major: int = 4, minor: int = 5, debug: bool = False) -> None:
        _check_platform()
        from OpenGL import EGL

        self._egl = EGL
        self.display = None
        self.context = None
        dpy, kind = _platform_display()
        if not dpy or dpy == EGL.EGL_NO_DISPLAY:
            raise _egl_error("eglGetDisplay")
        maj, mnr = EGL.EGLint(), EGL.EGLint()
        if not EGL.eglInitialize(dpy, ctypes.pointer(maj), ctypes.pointer(mnr)):
            raise _egl_error(f"eglInitialize ({kind} display)")
        self.display = dpy
        self.display_kind = kind
        self.egl_version = (maj.value, mnr.value)
        try:
            self._create(major, minor, debug)
        except BaseException:
            self.close()
            raise

    def _create(self, major: int, minor: int, debug: bool) -> None:
        EGL = self._egl
        dpy = self.display
        cfg_attribs = (EGL.EGLint * 7)(
            EGL.EGL_SURFACE_TYPE,
            EGL.EGL_PBUFFER_BIT,
            EGL.EGL_RENDERABLE_TYPE,
            EGL.EGL_OPENGL_BIT,
            EGL.EGL_NONE,
            0,
            0,
        )
        config = EGL.EGLConfig()
        n = EGL.EGLint()
        ok = EGL.eglChooseConfig(dpy, cfg_attribs, ctypes.pointer(config), 1, ctypes.pointer(n))
        if not ok or n.value < 1:
            # Surfaceless displays may expose configs without pbuffer support.
            cfg_attribs[1] = 0
            ok = EGL.eglChooseConfig(dpy, cfg_attribs, ctypes.pointer(config), 1, ctypes.pointer(n))
        if not ok or n.value < 1:
            raise _egl_error("eglChooseConfig (OpenGL renderable)")
        if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
            raise _egl_error("eglBindAPI(EGL_OPENGL_API)")
        ctx_attribs = [
            EGL.EGL_CONTEXT_MAJOR_VERSION,
            major,
            EGL.EGL_CONTEXT_MINOR_VERSION,
            minor,
            EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK,
            EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
        ]
        if debug:
            ctx_attribs += [EGL.EGL_CONTEXT_OPENGL_DEBUG, EGL.EGL_TRUE]
        ctx_attribs.append(EGL.EGL_NONE)
        arr = (EGL.EGLint * len(ctx_attribs))(*ctx_attribs)
        ctx = EGL.eglCreateContext(dpy, config, EGL.EGL_NO_CONTEXT, arr)
        if (not ctx or ctx == EGL.EGL_NO_CONTEXT) and (major, minor) > MIN_VERSION:
            arr[1], arr[3] = MIN_VERSION
            ctx = EGL.eglCreateContext(dpy, config, EGL.EGL_NO_CONTEXT, arr)
        if not ctx or ctx == EGL.EGL_NO_CONTEXT:
            raise _egl_error(f"eglCreateContext (OpenGL {major}.{minor} core)")
        self.context = ctx
        self.make_current()
        from OpenGL import GL

        self.gl_version = (
            int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION)),
            int(GL.glGetIntegerv(GL.GL_MINOR_VERSION)),
        )
        self.renderer = GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
        self.version_string = GL.glGetString(GL.GL_VERSION).decode(errors="replace")
        if self.gl_version < MIN_VERSION:
            raise GLUnavailableError(
                f"OpenGL {self.gl_version[0]}.{self.gl_version[1]} core context "
                f"({self.renderer}); 4.3+ is needed for SSBOs"
            )

    # ------------------------------------------------------------------ lifetime

    def make_current(self) -> None:
        EGL = self._egl
        if self.context is None:
            raise GLUnavailableError("the EGL context is closed")
        if not EGL.eglMakeCurrent(
            self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, self.context
        ):
            raise _egl_error("eglMakeCurrent (surfaceless)")

    def is_current(self) -> bool:
        return self.context is not None and self._egl.eglGetCurrentContext() == self.context

    def release(self) -> None:
        """Make no context current on this thread (if this one is current)."""
        EGL = self._egl
        if self.display is not None and self.is_current():
            EGL.eglMakeCurrent(
                self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT
            )

    def close(self) -> None:
        EGL = self._egl
        if self.display is None:
            return
        self.release()
        if self.context is not None:
            EGL.eglDestroyContext(self.display, self.context)
            self.context = None
        # eglTerminate is not called: the display is shared per process by EGL, and
        # terminating it would invalidate other live contexts on it.
        self.display = None

    @property
    def closed(self) -> bool:
        return self.context is None

    def __enter__(self) -> EGLContext:
        self.make_current()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()


@functools.lru_cache(maxsize=1)
def has_gl() -> tuple[bool, str]:
    """Can this process create an OpenGL 4.3+ core context through EGL?

    Returns ``(True, "<renderer> / <version>")`` or ``(False, reason)``; never raises.
    The probe is cached for the process.
    """
    try:
        _check_platform()
        import OpenGL.EGL  # noqa: F401
    except GLUnavailableError as e:
        return False, str(e)
    except Exception as e:  # ImportError, missing libEGL, ...
        return False, f"PyOpenGL/EGL unavailable: {type(e).__name__}: {e}"
    try:
        ctx = EGLContext()
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"
    try:
        return True, f"{ctx.renderer} / {ctx.version_string} ({ctx.display_kind} EGL)"
    finally:
        ctx.close()
