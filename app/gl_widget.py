"""The real-time scene view: a ``QOpenGLWidget`` driving :class:`viewer.renderer.SplatRenderer`.

Input: left-drag looks around (grab the world), the wheel zooms, arrow keys turn the head,
W/A/S/D move forward/left/back/right and Q/E down/up while held, R resets the camera.

Sorting never blocks a paint: every paint asks :class:`viewer.sort.BackgroundSorter` for a
new back-to-front order of what the (widened) view frustum holds when the camera
turned/moved enough or the frame changed, and draws with the newest finished order that
belongs to the bound frame (its token's ``frame_id`` and ``count`` match). Until one exists
it keeps the previous order when its indices still fit (same Gaussian count: a frame or two
of slightly stale order), else it sorts synchronously once. On a software rasteriser the
paints while the camera moves draw a coarser subset (:mod:`viewer.lod`), and full detail
returns once it is still. A 16 ms timer applies held movement keys, repaints when a
fresher order arrives and when the camera has settled.

PyOpenGL must use the platform of Qt's context (GLX under X11), so this module sets
``PYOPENGL_PLATFORM=glx`` before importing ``viewer``/``OpenGL`` unless ``OpenGL`` is
already imported (then it is left alone: PyOpenGL's EGL platform also dispatches to a
current GLX context on Mesa).
"""

from __future__ import annotations

import contextlib
import os
import sys

if "OpenGL" not in sys.modules:
    os.environ["PYOPENGL_PLATFORM"] = "glx"

import time  # noqa: E402

import numpy as np  # noqa: E402
from OpenGL import GL  # noqa: E402
from PySide6.QtCore import QPointF, Qt, QTimer, Signal  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtOpenGLWidgets import QOpenGLWidget  # noqa: E402

from engine.camera import gl_projection  # noqa: E402
from engine.scene import Scene4D  # noqa: E402
from viewer.camera import ViewerCamera  # noqa: E402
from viewer.framing import is_object_capture, object_home, sample_means  # noqa: E402
from viewer.lod import LodPolicy, coarse_order, frustum_for, is_software, slack_deg  # noqa: E402
from viewer.renderer import SplatRenderer  # noqa: E402
from viewer.sort import BackgroundSorter, needs_resort  # noqa: E402

NEAR = 0.01  # the reference rasteriser's cull planes (viewer.offscreen uses the same)
FAR = 1e4
ROTATE_STEP_DEG = 3.0  # per arrow-key press (auto-repeat keeps turning)
TICK_MS = 16

_MOVE_KEYS = {
    Qt.Key_W: (1.0, 0.0, 0.0),
    Qt.Key_S: (-1.0, 0.0, 0.0),
    Qt.Key_D: (0.0, 1.0, 0.0),
    Qt.Key_A: (0.0, -1.0, 0.0),
    Qt.Key_E: (0.0, 0.0, 1.0),
    Qt.Key_Q: (0.0, 0.0, -1.0),
}
_ARROWS = {
    Qt.Key_Left: (-ROTATE_STEP_DEG, 0.0),
    Qt.Key_Right: (ROTATE_STEP_DEG, 0.0),
    Qt.Key_Up: (0.0, ROTATE_STEP_DEG),
    Qt.Key_Down: (0.0, -ROTATE_STEP_DEG),
}


def scene_home(scene):
    """Where the camera starts for ``scene``: None (the capture point) for a panorama,
    framed on the bounds for an object capture (viewer/framing.py)."""
    if scene is None or len(scene.static) + len(scene.dynamic[0]) == 0:
        return None
    g = scene.static if len(scene.static) else scene.dynamic[0]
    means = sample_means(g.means)
    return object_home(means) if is_object_capture(means, scene.meta) else None


class SceneGLWidget(QOpenGLWidget):
    """Draws frame :attr:`frame` of a :class:`Scene4D` from :attr:`camera`.

    Signals: ``frameTimeMeasured(ms)`` after every paint (CPU time of paintGL, including a
    ``glFinish`` when :attr:`sync_timing` is on, so the number covers the GPU work too);
    ``playToggleRequested()`` for Space; ``glFailed(message)`` when the context is
    unusable (older than OpenGL 4.3, shader errors) — the widget then only clears.
    """

    frameTimeMeasured = Signal(float)
    glFailed = Signal(str)
    playToggleRequested = Signal()  # Space reached the view (no window shortcut took it)

    def __init__(self, scene: Scene4D | None = None, parent=None) -> None:
        super().__init__(parent)
        self.camera = ViewerCamera()
        self.background = (0.0, 0.0, 0.0)
        self.sync_timing = True
        self.gl_error: str | None = None
        self.renderer: SplatRenderer | None = None
        self.sorter = BackgroundSorter()
        self.last_frame_ms: float | None = None
        self._scene = scene
        self._frame = 0
        self._generation = 0  # bumped per upload; part of every sort's frame_id
        self._order: np.ndarray | None = None  # order used by the last paint
        self._order_key: tuple[int, int] | None = None  # (generation, frame) it belongs to
        self._order_seq = -1
        self._order_count = -1  # Gaussians of the frame the order was made for
        self._order_state = None  # camera state the order was culled for
        self._request_states: dict[int, object] = {}  # request seq -> camera state
        self._last_request = 0
        self.lod = LodPolicy(software=False)
        self._coarse_drawn = False
        self._painted_state = None  # camera state of the last paint (motion detection)
        self._requested_key: tuple[int, int] | None = None
        self._requested_state = None
        self._held: set[int] = set()
        self._press: QPointF | None = None
        self._last_tick = time.perf_counter()
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumSize(160, 120)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    # ------------------------------------------------------------------ state

    @property
    def scene(self) -> Scene4D | None:
        return self._scene

    @property
    def frame(self) -> int:
        return self._frame

    def set_scene(self, scene: Scene4D | None) -> None:
        """Show another scene (uploaded now if the GL context exists, else on init)."""
        self._scene = scene
        self._frame = 0
        self.camera.frame(scene_home(scene))
        if self.renderer is not None:
            self.makeCurrent()
            try:
                self._upload()
            finally:
                self.doneCurrent()
        self.update()

    def set_frame(self, t: int) -> None:
        n = self._scene.n_frames if self._scene is not None else 1
        t = int(t)
        if not 0 <= t < n:
            raise IndexError(f"frame {t} out of range 0..{n - 1}")
        if t != self._frame:
            self._frame = t
            self.update()

    # ------------------------------------------------------------------ GL

    def initializeGL(self) -> None:
        ctx = self.context()
        ctx.aboutToBeDestroyed.connect(self._cleanup)
        fmt = ctx.format()
        if (fmt.majorVersion(), fmt.minorVersion()) < (4, 3):
            self._fail(
                f"OpenGL {fmt.majorVersion()}.{fmt.minorVersion()} context; the viewer needs 4.3+"
            )
            return
        try:
            self.renderer = SplatRenderer()
            name = GL.glGetString(GL.GL_RENDERER) or b""
            self.lod = LodPolicy(software=is_software(name.decode(errors="replace")))
            self._upload()
        except Exception as e:  # shader compile errors, driver limits
            self.renderer = None
            self._fail(f"OpenGL renderer failed: {type(e).__name__}: {e}")

    def _fail(self, message: str) -> None:
        self.gl_error = message
        self.glFailed.emit(message)

    def _upload(self) -> None:
        r = self.renderer
        if r is None:
            return
        self._generation += 1
        self._order = None
        self._order_key = None
        self._requested_key = None
        self._requested_state = None
        if self._scene is None:
            r.upload_dynamic([])
            r.upload_static(_empty_gaussians())
            return
        r.upload_static(self._scene.static)
        r.upload_dynamic(self._scene.dynamic, defer=True)  # the window stays responsive

    def _cleanup(self) -> None:
        """Free GL objects while the context still exists (its aboutToBeDestroyed)."""
        if self.renderer is None:
            return
        self.makeCurrent()
        try:
            self.renderer.close()
        finally:
            self.renderer = None
            self.doneCurrent()

    def shutdown(self) -> None:
        """Stop the timer and the sorter thread (GL objects go with the context)."""
        self._timer.stop()
        self.sorter.close(timeout=2.0)

    def paintGL(self) -> None:
        t0 = time.perf_counter()
        bg = self.background
        GL.glClearColor(float(bg[0]), float(bg[1]), float(bg[2]), 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        r = self.renderer
        if r is None or self._scene is None:
            return
        dpr = self.devicePixelRatio()
        w, h = max(1, round(self.width() * dpr)), max(1, round(self.height() * dpr))
        r.set_frame(self._frame)
        view = self.camera.view(h, w)
        view_gl = view.world_to_camera_gl()
        proj = gl_projection(view, NEAR, FAR)
        order = self._pick_order(r, view)
        state = self.camera.state
        if self._painted_state is not None and state.moved_since(self._painted_state, 0.01, 1e-4):
            self.lod.moved(t0)
        self._painted_state = state
        k = 1
        self._coarse_drawn = self.lod.coarse(t0)
        if self._coarse_drawn:
            order, k = coarse_order(order, r.count, self.lod.budget)
        r.draw([(view_gl, proj, (0, 0, w, h))], order, lod_scale=k)
        if self.sync_timing:
            GL.glFinish()
        ms = (time.perf_counter() - t0) * 1e3
        self.last_frame_ms = ms
        self.frameTimeMeasured.emit(ms)

    def _pick_order(self, r: SplatRenderer, view) -> np.ndarray:
        key = (self._generation, self._frame)
        state = self.camera.state
        view_gl = view.world_to_camera_gl()
        if self._requested_key != key or needs_resort(self._requested_state, state):
            if r.count > 0 and not self.sorter.closed:
                frustum = frustum_for(view, r.radii(), NEAR)
                # RuntimeError: the sorter is shutting down (the window is closing)
                with contextlib.suppress(RuntimeError):
                    seq = self.sorter.request(r.means(), view_gl, frame_id=key, frustum=frustum)
                    recent = dict(list(self._request_states.items())[-8:])
                    self._request_states = {**recent, seq: state}
                    self._last_request = seq
            self._requested_key, self._requested_state = key, state
        latest = self.sorter.latest()
        if latest is not None:
            order, token = latest
            if token.frame_id == key and token.count == r.count and token.seq > self._order_seq:
                self._order, self._order_key, self._order_seq = order, key, token.seq
                self._order_count = token.count
                self._order_state = self._request_states.get(token.seq)
        # an order culled for a view the camera has turned away from misses splats
        covers = self._order_state is not None and not state.moved_since(
            self._order_state, slack_deg(view), 0.05
        )
        if self._order is not None and self._order_key == key and covers:
            return self._order
        if (
            self._order is not None
            and self._order_key is not None
            and self._order_key[0] == self._generation
            and self._order_count == r.count
            and covers
        ):
            return self._order  # previous frame's order: indices valid, slightly stale
        # nothing usable yet: sort once, synchronously (what this view's frustum holds)
        order = r.sort(view_gl, NEAR, frustum_for(view, r.radii(), NEAR))
        # from now on only the sorter's answer to the newest request can replace it
        self._order, self._order_key, self._order_seq = order, key, self._last_request - 1
        self._order_count, self._order_state = r.count, state
        return order

    def wait_for_sort(self, timeout: float = 10.0) -> bool:
        """Block until the sorter has finished the newest request (tests, screenshots)."""
        return self.sorter.wait(timeout=timeout)

    def grab_frame(self) -> np.ndarray:
        """The widget's framebuffer as uint8 [H, W, 3] RGB, row 0 at the top."""
        img = self.grabFramebuffer().convertToFormat(QImage.Format_RGB888)
        h, w, bpl = img.height(), img.width(), img.bytesPerLine()
        buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl)
        return buf.reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()

    # ------------------------------------------------------------------ input

    def _tick(self) -> None:
        now = time.perf_counter()
        dt, self._last_tick = min(now - self._last_tick, 0.1), now
        if self._held:
            f = sum(_MOVE_KEYS[k][0] for k in self._held)
            rt = sum(_MOVE_KEYS[k][1] for k in self._held)
            up = sum(_MOVE_KEYS[k][2] for k in self._held)
            before = self.camera.position
            self.camera.move(f, rt, up, dt)
            if self.camera.position != before:
                self.update()
        latest = self.sorter.latest()
        if latest is not None and latest[1].seq > self._order_seq:
            token = latest[1]
            if token.frame_id == (self._generation, self._frame):
                self.update()  # a fresher order for this frame is ready
        if self._coarse_drawn and not self.lod.coarse(now):
            self.update()  # the camera settled: draw full detail

    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.LeftButton:
            self._press = e.position()
            e.accept()
        else:
            super().mousePressEvent(e)

    def mouseMoveEvent(self, e) -> None:
        if self._press is not None and e.buttons() & Qt.LeftButton:
            p = e.position()
            self.camera.drag(p.x() - self._press.x(), p.y() - self._press.y(), self.height())
            self._press = p
            self.update()
            e.accept()
        else:
            super().mouseMoveEvent(e)

    def mouseReleaseEvent(self, e) -> None:
        if e.button() == Qt.LeftButton:
            self._press = None
            e.accept()
        else:
            super().mouseReleaseEvent(e)

    def wheelEvent(self, e) -> None:
        steps = e.angleDelta().y() / 120.0
        if steps:
            self.camera.zoom(steps)
            self.update()
        e.accept()

    def keyPressEvent(self, e) -> None:
        k = e.key()
        if k in _MOVE_KEYS:
            if not e.isAutoRepeat():
                self._held.add(k)
        elif k in _ARROWS:
            self.camera.rotate(*_ARROWS[k])
            self.update()
        elif k == Qt.Key_R:
            self.camera.reset()
            self.update()
        elif k == Qt.Key_Space and not e.isAutoRepeat():
            self.playToggleRequested.emit()
        else:
            super().keyPressEvent(e)
            return
        e.accept()

    def keyReleaseEvent(self, e) -> None:
        if e.key() in _MOVE_KEYS and not e.isAutoRepeat():
            self._held.discard(e.key())
            e.accept()
        else:
            super().keyReleaseEvent(e)

    def focusOutEvent(self, e) -> None:
        self._held.clear()  # no runaway movement when a key is released elsewhere
        super().focusOutEvent(e)


def _empty_gaussians():
    from engine.gaussians import Gaussians

    return Gaussians.empty()


__all__ = ["FAR", "NEAR", "SceneGLWidget"]
