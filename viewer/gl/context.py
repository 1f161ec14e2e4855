"""Headless OpenGL 4.3+ core contexts through EGL (no X server, no GPU needed).

:class:`EGLContext` opens an EGL display with no window system: a hardware device
(``EGL_EXT_platform_device``, how a GPU such as NVIDIA's renders headless) when there is
one, else Mesa's surfaceless display (``EGL_PLATFORM_SURFACELESS_MESA``, llvmpipe on a
machine without a GPU), else the default display. It creates an OpenGL core-profile
context of at least version 4.3 (Mesa llvmpipe gives 4.5) and makes it current with no
surface: render into a framebuffer object.

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


def hardware_devices(device_extensions: list[bytes]) -> list[int]:
    """Indices of the EGL devices that are not software rasterisers, in the driver's order.

    device_extensions: each device's ``eglQueryDeviceStringEXT(dev, EGL_EXTENSIONS)``; Mesa
    marks llvmpipe / softpipe devices with ``EGL_MESA_device_software``.
    """
    return [i for i, ext in enumerate(device_extensions) if b"EGL_MESA_device_software" not in ext]


def _device_displays(client_exts: bytes):
    """(display, "device") for each hardware EGL device (EGL_EXT_platform_device): how a
    GPU renders with no X server or Wayland compositor (NVIDIA's headless path)."""
    if b"EGL_EXT_platform_device" not in client_exts:
        return
    from OpenGL import EGL

    try:
        from OpenGL.EGL.EXT.device_base import egl_get_devices, eglQueryDeviceStringEXT
        from OpenGL.EGL.EXT.platform_device import EGL_PLATFORM_DEVICE_EXT

        devices = egl_get_devices()
        exts = [eglQueryDeviceStringEXT(d, EGL.EGL_EXTENSIONS) or b"" for d in devices]
    except Exception:
        return
    for i in hardware_devices(exts):
        with contextlib.suppress(Exception):
            dpy = EGL.eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT, devices[i], None)
            if dpy and dpy != EGL.EGL_NO_DISPLAY:
                yield dpy, "device"


def _surfaceless_displays(client_exts: bytes):
    from OpenGL import EGL

    if b"EGL_MESA_platform_surfaceless" not in client_exts:
        return
    for fn_name in ("eglGetPlatformDisplay", "eglGetPlatformDisplayEXT"):
        fn = getattr(EGL, fn_name, None)
        if fn is None:
            continue
        try:
            dpy = fn(EGL_PLATFORM_SURFACELESS_MESA, EGL.EGL_DEFAULT_DISPLAY, None)
        except Exception:
            continue
        if dpy and dpy != EGL.EGL_NO_DISPLAY:
            yield dpy, "surfaceless"
            return


def _candidate_displays():
    """EGL displays to try, best first: a hardware device (a GPU, no window system needed),
    Mesa's surfaceless platform (its llvmpipe where there is no GPU), the default display."""
    from OpenGL import EGL

    client_exts = b""
    with contextlib.suppress(Exception):  # EGL < 1.5 without client extensions
        client_exts = EGL.eglQueryString(EGL.EGL_NO_DISPLAY, EGL.EGL_EXTENSIONS) or b""
    yield from _device_displays(client_exts)
    yield from _surfaceless_displays(client_exts)
    yield EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY), "default"


def _initialise(dpy, kind: str):
    """(major, minor) EGL version of an initialised display; GLUnavailableError if not."""
    from OpenGL import EGL

    if not dpy or dpy == EGL.EGL_NO_DISPLAY:
        raise GLUnavailableError(f"{kind}: no display")
    maj, mnr = EGL.EGLint(), EGL.EGLint()
    try:
        ok = EGL.eglInitialize(dpy, ctypes.pointer(maj), ctypes.pointer(mnr))
    except Exception:  # PyOpenGL raises EGLError on failure
        ok = False
    if not ok:
        raise GLUnavailableError(f"{kind}: eglInitialize failed")
    return maj.value, mnr.value


def _create_context(dpy, config, attribs):
    """eglCreateContext, EGL_NO_CONTEXT on failure (PyOpenGL raises EGLError for it)."""
    from OpenGL import EGL

    try:
        return EGL.eglCreateContext(dpy, config, EGL.EGL_NO_CONTEXT, attribs)
    except Exception:
        return EGL.EGL_NO_CONTEXT


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}"


class EGLContext:
    """An OpenGL core context (>= 4.3) on a display with no window system (see above).

    Use as a context manager (made current on enter, released on exit) or call
    :meth:`make_current` / :meth:`release`; :meth:`close` destroys it (idempotent).
    """

    def __init__(self, major: int = 4, minor: int = 5, debug: bool = False) -> None:
        _check_platform()
        from OpenGL import EGL

        self._egl = EGL
        self.display = None
        self.context = None
        failed = []
        for dpy, kind in _candidate_displays():  # the first display that gives a context
            try:
                self.egl_version = _initialise(dpy, kind)
                self.display, self.display_kind = dpy, kind
                self._create(major, minor, debug)
                return
            except Exception as e:  # GLUnavailableError, or PyOpenGL's EGLError: the next one
                failed.append(str(e) if str(e).startswith(kind) else f"{kind}: {_one_line(e)}")
                self.close()
        raise GLUnavailableError("no EGL display gave a context (" + "; ".join(failed) + ")")

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
        ctx = _create_context(dpy, config, arr)
        if (not ctx or ctx == EGL.EGL_NO_CONTEXT) and (major, minor) > MIN_VERSION:
            arr[1], arr[3] = MIN_VERSION
            ctx = _create_context(dpy, config, arr)
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
