"""Explore a 4D scene in an OpenXR headset: ``python main.py xr SCENE [--frames N]``.

:func:`run_xr` opens an OpenXR session on the system's runtime (SteamVR, Monado, ...) and
runs the frame loop on its own thread; :func:`viewer.xr_probe.probe` tells the desktop app,
from a subprocess, whether a headset runtime is there at all, and :mod:`viewer.monado`
points OpenXR at the Monado build the tests and ``--monado`` use.

Session (``XrViewer.run``, all on the frame thread, which owns the GL context):
  instance (``XR_KHR_opengl_enable``, plus ``XR_MNDX_egl_enable`` when offered) -> HMD
  system -> stereo view configuration -> ``xrGetOpenGLGraphicsRequirementsKHR`` -> GL
  context (EGL surfaceless when the runtime offers it, else GLX under X11) -> session ->
  STAGE space (LOCAL when the runtime has no STAGE) and the VIEW space for the head -> action
  set -> one swapchain per eye at the recommended size in the preferred format
  (``viewer.xr_gl.choose_format``) -> frame loop. Every session state is handled: READY
  begins the session, SYNCHRONIZED runs the frame loop without layers, VISIBLE / FOCUSED
  render (input only when FOCUSED), STOPPING ends the session, LOSS_PENDING (headset lost)
  and EXITING leave the loop; ``xrRequestExitSession`` after ``frames`` frames or on cancel
  walks the runtime through STOPPING -> IDLE -> EXITING, so shutdown is the spec's own.

Frame (``XrViewer._frame``): wait -> begin -> locate the eyes (pose + asymmetric FOV) and
the head -> anchor the scene at the head (at start and on grip) -> **one radial sort from
the head position** (``viewer.sort.radial_keys``, orientation-free, shared by both eyes,
redone only when the head moved or the animation frame changed) -> per eye: acquire, draw
the splats into an RGBA16F target with the eye's view and projection (the splat shader
projects each covariance with that eye's intrinsics), compose into the swapchain image
(comfort fade, colour encoding), release -> end with one projection layer. GPU time per eye
(timer queries, read a few frames later, never stalling), CPU time per eye, sort time and
the whole frame are logged (``pano4d.xr`` logger) and kept in the :class:`XrReport`.

Controls: thumbstick / trackpad x scrubs time, trigger toggles play/pause, grip re-anchors
the view (``viewer.xr_math.Controls``, on the same :class:`viewer.playback.Playback` as the
desktop viewer). 6-DoF: the eyes are rendered where they are, so leaning gives parallax;
beyond ``comfort_radius`` from the capture point the scene fades to black over
``fade_width``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import Cancelled, InputError, Pano4DError
from engine.progress import CancelToken
from engine.scene import Scene4D

from .monado import monado_env
from .playback import Playback
from .xr_gl import draw_eye
from .xr_math import (
    Anchor,
    Controls,
    ControlState,
    comfort_fade,
    eye_view_matrix,
    pose_matrix,
    projection_from_fov,
)
from .xr_probe import no_runtime_message

log = logging.getLogger("pano4d.xr")


__all__ = [
    "Capture",
    "FrameStats",
    "HeadsetLostError",
    "XrConfig",
    "XrReport",
    "XrUnavailableError",
    "XrViewer",
    "run_xr",
]


class XrUnavailableError(InputError):
    """No OpenXR runtime, no headset, or no OpenGL support in the runtime (exit 2)."""


class HeadsetLostError(Pano4DError):
    """The runtime lost the headset or the instance during the session (exit 1)."""


# --------------------------------------------------------------------------- config / report


@dataclass(frozen=True)
class XrConfig:
    """Settings of a headset session.

    frames: stop after this many rendered frames (None: until the runtime or the user ends
    the session). reference_space: "stage" (floor-level room space; LOCAL when the runtime
    has none) or "local". binding: "auto" (EGL when offered, else GLX), "egl" or "glx".
    comfort_radius / fade_width: metres from the capture point where the fade starts / ends.
    capture: frame indices whose swapchain images are read back into the report (tests).
    eye_size: swapchain size per eye instead of the runtime's recommended one (benchmarks).
    """

    frames: int | None = None
    reference_space: str = "stage"
    binding: str = "auto"
    near: float = 0.05
    far: float = 1000.0
    comfort_radius: float = 0.5
    fade_width: float = 0.3
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scrub_fps: float = 24.0
    resort_distance: float = 0.005
    capture: tuple[int, ...] = ()
    eye_size: tuple[int, int] | None = None  # (w, h) per eye; None: the runtime's recommended
    start_timeout_s: float = 30.0
    log_every: int = 90

    def __post_init__(self) -> None:
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.frames}")
        if self.reference_space not in ("stage", "local"):
            raise InputError(
                f"reference space must be stage or local, not {self.reference_space!r}"
            )
        if self.binding not in ("auto", "egl", "glx"):
            raise InputError(f"binding must be auto, egl or glx, not {self.binding!r}")
        if not 0 < self.near < self.far:
            raise InputError(f"need 0 < near < far, got {self.near}, {self.far}")


@dataclass
class FrameStats:
    """Timings of one rendered frame, milliseconds. eye_gpu_ms arrives a few frames late
    (timer queries), so it is None for the last frames and where a result was dropped."""

    index: int
    scene_frame: int
    frame_ms: float
    wait_ms: float
    sort_ms: float
    eye_cpu_ms: tuple[float, ...]
    eye_gpu_ms: tuple[float, ...] | None = None
    display_period_ms: float = 0.0
    fade: float = 1.0
    display_time_ns: int = 0  # the runtime's predicted display time of this frame


@dataclass
class Capture:
    """A swapchain image read back after composing: image [H, W, 4] uint8 (row 0 at the
    top, as stored), the eye's world->GL-camera view and GL projection [4, 4]."""

    frame: int
    eye: int
    image: np.ndarray
    view: np.ndarray
    projection: np.ndarray
    scene_frame: int
    fade: float
    head: np.ndarray  # [3] head position in the scene (the radial sort's centre)
    pose: tuple[float, ...] = ()  # the runtime's eye pose: qx qy qz qw, px py pz (app space)
    fov: tuple[float, ...] = ()  # the runtime's angles: left, right, up, down (radians)


@dataclass
class XrReport:
    runtime: str = ""
    system: str = ""
    binding: str = ""
    gl_renderer: str = ""
    swapchain_format: str = ""
    formats_offered: list[str] = field(default_factory=list)
    eye_size: tuple[int, int] = (0, 0)
    reference_space: str = ""
    states: list[str] = field(default_factory=list)
    frames: int = 0
    stats: list[FrameStats] = field(default_factory=list)
    captures: list[Capture] = field(default_factory=list)
    bindings: dict[str, bool] = field(default_factory=dict)
    controls_seen: int = 0  # frames whose action state was read (session focused)
    actions_active: dict[str, bool] = field(default_factory=dict)  # last read, per action
    playback_frames: list[int] = field(default_factory=list)  # scene frame per rendered frame
    t0_ns: int = 0  # display time of the first frame: playback time 0
    anchors: list[tuple[int, Anchor]] = field(default_factory=list)  # (frame index, anchor)
    exit_reason: str = ""

    def summary(self) -> str:
        """A few lines for the terminal: what ran, how fast."""
        lines = [
            f"VR: {self.runtime} / {self.system}; {self.binding.upper()} binding on "
            f"{self.gl_renderer}; 2 eyes {self.eye_size[0]}x{self.eye_size[1]} "
            f"{self.swapchain_format}; {self.reference_space} space",
            f"{self.frames} frames rendered; session states: {' -> '.join(self.states)}",
        ]
        if self.stats:
            lines.append(timing_line(self.stats))
        return "\n".join(lines)


def _median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def timing_line(stats: list[FrameStats]) -> str:
    """Median per-eye GPU / CPU time, sort and frame time over ``stats``."""
    gpu = [s.eye_gpu_ms for s in stats if s.eye_gpu_ms]
    parts = []
    if gpu:
        for i, name in enumerate(("left", "right")):
            parts.append(f"eye {name} {_median([g[i] for g in gpu]):.2f} ms GPU")
    for i, name in enumerate(("left", "right")):
        parts.append(f"{name} {_median([s.eye_cpu_ms[i] for s in stats]):.2f} ms CPU")
    parts.append(f"sort {_median([s.sort_ms for s in stats]):.2f} ms")
    parts.append(f"frame {_median([s.frame_ms for s in stats]):.2f} ms")
    period = _median([s.display_period_ms for s in stats])
    if period > 0:
        parts.append(f"display period {period:.2f} ms")
    return "median: " + ", ".join(parts)


# --------------------------------------------------------------------------- the viewer


_BINDINGS = {
    # profile: (scrub vector2f, play/pause boolean, reset boolean) input paths, per hand
    "/interaction_profiles/khr/simple_controller": (None, "select/click", "menu/click"),
    "/interaction_profiles/oculus/touch_controller": (
        "thumbstick",
        "trigger/value",
        "squeeze/value",
    ),
    "/interaction_profiles/valve/index_controller": (
        "thumbstick",
        "trigger/click",
        "squeeze/value",
    ),
    "/interaction_profiles/htc/vive_controller": ("trackpad", "trigger/click", "squeeze/click"),
    "/interaction_profiles/microsoft/motion_controller": (
        "thumbstick",
        "trigger/value",
        "squeeze/click",
    ),
}
HANDS = ("/user/hand/left", "/user/hand/right")


class XrViewer:
    """One headset session on the calling thread; see the module doc. Use :func:`run_xr`."""

    def __init__(self, scene: Scene4D, config: XrConfig = XrConfig()) -> None:
        from .xr_gl import import_xr

        self.xr = import_xr()
        self.scene = scene
        self.cfg = config
        self.report = XrReport()
        self.playback = Playback(scene.n_frames, scene.fps)
        self.controls = Controls(self.playback, config.scrub_fps)
        self._stop = threading.Event()
        self._exit_requested = False
        self._running = False
        self._done = False
        self._state = None
        self._lost = ""
        self._handles: dict[str, Any] = {}
        self._anchor: Anchor | None = None
        self._order: np.ndarray | None = None
        self._sorted_for: tuple[np.ndarray, int] | None = None
        self._prev_time: int | None = None
        self._reset_pending = False
        # Optional (frame index, runtime input) -> input to apply: automation and tests
        # drive the controls through it; None applies the controllers' state as read.
        self.input_script: Callable[[int, ControlState], ControlState] | None = None

    def request_stop(self) -> None:
        """Ask the session to end (thread-safe); the frame thread walks it down cleanly."""
        self._stop.set()

    # ------------------------------------------------------------------ setup

    def _create_instance(self) -> tuple[Any, bool]:
        xr = self.xr
        try:
            offered = {
                e.extension_name.decode() for e in xr.enumerate_instance_extension_properties()
            }
        except Exception as e:
            raise XrUnavailableError(no_runtime_message(e)) from None
        if "XR_KHR_opengl_enable" not in offered:
            raise XrUnavailableError(
                "the OpenXR runtime has no OpenGL support (XR_KHR_opengl_enable)"
            )
        want_egl = self.cfg.binding == "egl" or (
            self.cfg.binding == "auto" and "XR_MNDX_egl_enable" in offered
        )
        if want_egl and "XR_MNDX_egl_enable" not in offered:
            raise XrUnavailableError("--binding egl: the runtime does not offer XR_MNDX_egl_enable")
        if not want_egl and not os.environ.get("DISPLAY"):
            raise XrUnavailableError(
                "the OpenXR runtime needs a GLX (X11) OpenGL context but DISPLAY is not set"
            )
        exts = ["XR_KHR_opengl_enable"] + (["XR_MNDX_egl_enable"] if want_egl else [])
        info = xr.InstanceCreateInfo(
            application_info=xr.ApplicationInfo(
                application_name="Pano4D", application_version=1, engine_name="pano4d"
            ),
            enabled_extension_names=exts,
        )
        try:
            inst = xr.create_instance(info)
        except Exception as e:
            raise XrUnavailableError(no_runtime_message(e)) from None
        props = xr.get_instance_properties(inst)
        self.report.runtime = props.runtime_name.decode(errors="replace")
        return inst, want_egl

    def _setup(self) -> None:
        xr = self.xr
        h = self._handles
        h["instance"], egl = self._create_instance()
        inst = h["instance"]
        try:
            sid = xr.get_system(
                inst, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY)
            )
        except Exception as e:
            raise XrUnavailableError(
                f"{self.report.runtime}: no headset available ({type(e).__name__})"
            ) from None
        h["system"] = sid
        self.report.system = xr.get_system_properties(inst, sid).system_name.decode(
            errors="replace"
        )
        vct = xr.ViewConfigurationType.PRIMARY_STEREO
        views = xr.enumerate_view_configuration_views(inst, sid, vct)
        if len(views) != 2:
            raise XrUnavailableError(
                f"{self.report.system}: expected 2 stereo views, got {len(views)}"
            )
        req = xr.get_opengl_graphics_requirements_khr(inst, sid)  # before the session (spec)
        self._make_gl(egl, req)
        h["session"] = xr.create_session(
            inst, xr.SessionCreateInfo(system_id=sid, next=self._gl.pointer)
        )
        self._make_spaces()
        self._make_actions()
        self._make_swapchains(views)
        self._make_renderer()

    def _make_gl(self, egl: bool, req: Any) -> None:
        from OpenGL import GL

        from .xr_gl import EglBinding, GlxBinding

        try:
            self._gl = EglBinding(self.xr) if egl else GlxBinding(self.xr)
        except (RuntimeError, OSError) as e:  # GLUnavailableError is a RuntimeError
            kind = "EGL" if egl else "GLX"
            raise XrUnavailableError(
                f"cannot create the {kind} OpenGL context for VR: {e}"
            ) from None
        self._gl.make_current()
        have = (
            int(GL.glGetIntegerv(GL.GL_MAJOR_VERSION)),
            int(GL.glGetIntegerv(GL.GL_MINOR_VERSION)),
        )
        lo = req.min_api_version_supported
        if have < (lo.major, lo.minor):
            raise XrUnavailableError(
                f"the runtime needs OpenGL {lo.major}.{lo.minor}+, this context is "
                f"{have[0]}.{have[1]}"
            )
        self.report.binding = self._gl.kind
        self.report.gl_renderer = self._gl.renderer

    def _make_spaces(self) -> None:
        xr = self.xr
        s = self._handles["session"]
        offered = set(xr.enumerate_reference_spaces(s))
        kind = xr.ReferenceSpaceType.STAGE
        if self.cfg.reference_space == "local" or kind not in offered:
            kind = xr.ReferenceSpaceType.LOCAL
        self.report.reference_space = kind.name.lower()
        self._handles["space"] = xr.create_reference_space(
            s, xr.ReferenceSpaceCreateInfo(reference_space_type=kind)
        )
        self._handles["view_space"] = xr.create_reference_space(
            s, xr.ReferenceSpaceCreateInfo(reference_space_type=xr.ReferenceSpaceType.VIEW)
        )

    def _make_actions(self) -> None:
        xr = self.xr
        inst, s = self._handles["instance"], self._handles["session"]
        aset = xr.create_action_set(
            inst,
            xr.ActionSetCreateInfo(
                action_set_name="pano4d", localized_action_set_name="Pano4D", priority=0
            ),
        )
        self._handles["action_set"] = aset
        hands = [xr.string_to_path(inst, p) for p in HANDS]

        def action(name: str, kind: Any, label: str) -> Any:
            return xr.create_action(
                aset,
                xr.ActionCreateInfo(
                    action_type=kind,
                    action_name=name,
                    localized_action_name=label,
                    subaction_paths=hands,
                ),
            )

        self._actions = {
            "scrub": action("scrub", xr.ActionType.VECTOR2F_INPUT, "Scrub time"),
            "play_pause": action("play_pause", xr.ActionType.BOOLEAN_INPUT, "Play / pause"),
            "reset": action("reset_view", xr.ActionType.BOOLEAN_INPUT, "Reset view"),
        }
        for profile, paths in _BINDINGS.items():
            pairs = []
            for hand in HANDS:
                for act, sub in zip(("scrub", "play_pause", "reset"), paths, strict=True):
                    if sub is not None:
                        pairs.append((self._actions[act], f"{hand}/input/{sub}"))
            binds = [
                xr.ActionSuggestedBinding(action=a, binding=xr.string_to_path(inst, p))
                for a, p in pairs
            ]
            try:
                xr.suggest_interaction_profile_bindings(
                    inst,
                    xr.InteractionProfileSuggestedBinding(
                        interaction_profile=xr.string_to_path(inst, profile),
                        suggested_bindings=binds,
                    ),
                )
                self.report.bindings[profile] = True
            except Exception as e:  # a runtime may not know every profile
                log.info("bindings for %s rejected: %s", profile, type(e).__name__)
                self.report.bindings[profile] = False
        xr.attach_session_action_sets(s, xr.SessionActionSetsAttachInfo(action_sets=[aset]))

    def _make_swapchains(self, views: Any) -> None:
        xr = self.xr
        from .xr_gl import choose_format, format_name

        s = self._handles["session"]
        offered = [int(f) for f in xr.enumerate_swapchain_formats(s)]
        fmt = choose_format(offered)
        self.report.formats_offered = [format_name(f) for f in offered]
        self.report.swapchain_format = format_name(fmt)
        self._swapchains = []
        for v in views:
            w, hgt = v.recommended_image_rect_width, v.recommended_image_rect_height
            if self.cfg.eye_size is not None:  # clamped to what the runtime allows
                w = max(1, min(int(self.cfg.eye_size[0]), v.max_image_rect_width))
                hgt = max(1, min(int(self.cfg.eye_size[1]), v.max_image_rect_height))
            sc = xr.create_swapchain(
                s,
                xr.SwapchainCreateInfo(
                    usage_flags=xr.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT
                    | xr.SwapchainUsageFlags.SAMPLED_BIT,
                    format=fmt,
                    sample_count=1,
                    width=w,
                    height=hgt,
                    face_count=1,
                    array_size=1,
                    mip_count=1,
                ),
            )
            images = xr.enumerate_swapchain_images(sc, xr.SwapchainImageOpenGLKHR)
            self._swapchains.append((sc, [int(im.image) for im in images], w, hgt))
        self.report.eye_size = (self._swapchains[0][2], self._swapchains[0][3])
        self._fmt = fmt

    def _make_renderer(self) -> None:
        from .gl.shaders import load_program
        from .renderer import SplatRenderer
        from .xr_gl import EyeTarget, GpuTimer

        self._renderer = SplatRenderer()
        self._renderer.upload_static(self.scene.static)
        self._renderer.upload_dynamic(self.scene.dynamic)
        self._compose = load_program("xr_compose")
        self._targets = [
            EyeTarget(w, h, self._fmt, self._compose) for _, _, w, h in self._swapchains
        ]
        self._timer = GpuTimer(len(self._targets))

    # ------------------------------------------------------------------ events

    def _poll_events(self) -> None:
        xr = self.xr
        inst = self._handles["instance"]
        while True:
            try:
                ev = xr.poll_event(inst)
            except xr.EventUnavailable:
                return
            kind = xr.StructureType(ev.type)
            if kind == xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                e = ctypes.cast(
                    ctypes.byref(ev), ctypes.POINTER(xr.EventDataSessionStateChanged)
                ).contents
                self._on_state(xr.SessionState(e.state))
            elif kind == xr.StructureType.EVENT_DATA_INSTANCE_LOSS_PENDING:
                self._lost = "the OpenXR runtime is going away (instance loss pending)"
                self._done = True
            elif kind == xr.StructureType.EVENT_DATA_INTERACTION_PROFILE_CHANGED:
                log.info("controller profile changed")

    def _on_state(self, state: Any) -> None:
        xr = self.xr
        S = xr.SessionState
        self._state = state
        self.report.states.append(state.name)
        log.info("session state %s", state.name)
        s = self._handles["session"]
        if state == S.READY:
            xr.begin_session(
                s,
                xr.SessionBeginInfo(
                    primary_view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO
                ),
            )
            self._running = True
        elif state == S.STOPPING:
            xr.end_session(s)
            self._running = False
        elif state == S.LOSS_PENDING:
            self._lost = f"{self.report.system}: the headset was lost (session loss pending)"
            self._done = True
        elif state == S.EXITING:
            self._done = True

    # ------------------------------------------------------------------ loop

    def run(self) -> XrReport:
        """Set up, run the frame loop until done, tear down. Raises XrUnavailableError,
        HeadsetLostError or Cancelled (after a clean shutdown)."""
        xr = self.xr
        try:
            self._setup()
            self._loop()
        except (xr.SessionLostError, xr.InstanceLostError) as e:
            self._lost = (
                f"{self.report.system or 'the headset'}: lost during the session "
                f"({type(e).__name__}); reconnect it and start VR again"
            )
        finally:
            self._teardown()
        if self._lost:
            raise HeadsetLostError(self._lost)
        return self.report

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._done:
            self._poll_events()
            if self._done:
                break
            wants_exit = self._stop.is_set() or (
                self.cfg.frames is not None and self.report.frames >= self.cfg.frames
            )
            if wants_exit and not self._exit_requested and self._running:
                self.xr.request_exit_session(self._handles["session"])
                self._exit_requested = True
                self.report.exit_reason = "cancelled" if self._stop.is_set() else "frames done"
            if not self._running:
                # no state yet, or (with --frames: tests, benchmarks) a session parked in
                # IDLE that never gets READY (a headset asleep): give up after the timeout;
                # an interactive session may wait in IDLE for the user to put the headset on
                waiting = self._state is None or (
                    self.cfg.frames is not None and self.report.frames == 0
                )
                if waiting and time.monotonic() - t0 > self.cfg.start_timeout_s:
                    raise XrUnavailableError(
                        f"{self.report.runtime}: the session did not become ready within "
                        f"{self.cfg.start_timeout_s:g} s (is the headset on and the runtime "
                        "started?)"
                    )
                if self._stop.is_set() and not self._exit_requested:
                    break  # never started: nothing to walk down
                time.sleep(0.005)
                continue
            self._frame()

    def _frame(self) -> None:
        xr = self.xr
        s = self._handles["session"]
        t_wait = time.perf_counter()
        fs = xr.wait_frame(s)
        t_begin = time.perf_counter()
        xr.begin_frame(s)
        S = xr.SessionState
        dt = 0.0
        if self._prev_time is not None:
            dt = max(0.0, (fs.predicted_display_time - self._prev_time) / 1e9)
        if self._prev_time is None:
            self.report.t0_ns = fs.predicted_display_time
        self._prev_time = fs.predicted_display_time
        state = self._read_controls() if self._state == S.FOCUSED else ControlState()
        if self.input_script is not None:
            state = self.input_script(self.report.frames, state)
        if self.controls.update(state, dt):
            self._reset_pending = True
        self.playback.advance(dt)
        layers = []
        stats = None
        done = self.cfg.frames is not None and self.report.frames >= self.cfg.frames
        if fs.should_render and self._state in (S.VISIBLE, S.FOCUSED) and not done:
            layer, stats = self._render(fs.predicted_display_time)
            if layer is not None:
                layers = [ctypes.byref(layer)]
        xr.end_frame(
            s,
            xr.FrameEndInfo(
                display_time=fs.predicted_display_time,
                environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE,
                layers=layers,
            ),
        )
        if stats is not None:
            stats.wait_ms = (t_begin - t_wait) * 1e3
            stats.frame_ms = (time.perf_counter() - t_begin) * 1e3
            stats.display_period_ms = fs.predicted_display_period / 1e6
            stats.display_time_ns = fs.predicted_display_time
            self._record(stats)

    def _read_controls(self) -> ControlState:
        xr = self.xr
        s = self._handles["session"]
        try:
            xr.sync_actions(
                s,
                xr.ActionsSyncInfo(
                    active_action_sets=[xr.ActiveActionSet(action_set=self._handles["action_set"])]
                ),
            )
        except xr.SessionNotFocused:  # focus went away since the last event: no input
            return ControlState()
        a = self._actions
        stick = xr.get_action_state_vector2f(s, xr.ActionStateGetInfo(action=a["scrub"]))
        pp = xr.get_action_state_boolean(s, xr.ActionStateGetInfo(action=a["play_pause"]))
        rs = xr.get_action_state_boolean(s, xr.ActionStateGetInfo(action=a["reset"]))
        self.report.controls_seen += 1
        self.report.actions_active = {
            "scrub": bool(stick.is_active),
            "play_pause": bool(pp.is_active),
            "reset": bool(rs.is_active),
        }
        return ControlState(
            scrub=float(stick.current_state.x) if stick.is_active else 0.0,
            play_pause=bool(pp.current_state) if pp.is_active else False,
            reset=bool(rs.current_state) if rs.is_active else False,
        )

    def _head(self, t: int, eyes: list[np.ndarray]) -> np.ndarray:
        """[4, 4] head -> app space at display time ``t`` (VIEW space); mean eye as fallback."""
        xr = self.xr
        loc = xr.locate_space(self._handles["view_space"], self._handles["space"], t)
        need = (
            xr.SpaceLocationFlags.POSITION_VALID_BIT | xr.SpaceLocationFlags.ORIENTATION_VALID_BIT
        )
        if int(loc.location_flags) & int(need) == int(need):
            p = loc.pose
            return _pose(p)
        m = eyes[0].copy()
        m[:3, 3] = 0.5 * (eyes[0][:3, 3] + eyes[1][:3, 3])
        return m

    def _sort(self, head_scene: np.ndarray) -> float:
        """One radial back-to-front sort from the head, reused while the head stays within
        ``resort_distance`` and the animation frame is unchanged. Returns its ms (0: reused)."""
        from .sort import radial_keys, sort_back_to_front

        frame = self._renderer.frame
        prev = self._sorted_for
        if (
            self._order is not None
            and prev is not None
            and prev[1] == frame
            and float(np.linalg.norm(prev[0] - head_scene)) <= self.cfg.resort_distance
        ):
            return 0.0
        t = time.perf_counter()
        keys = radial_keys(self._renderer.means(), head_scene)
        self._order = sort_back_to_front(keys)
        self._sorted_for = (head_scene.copy(), frame)
        return (time.perf_counter() - t) * 1e3

    def _render(self, t: int) -> tuple[Any, FrameStats | None]:
        xr = self.xr
        s, space = self._handles["session"], self._handles["space"]
        vs, views = xr.locate_views(
            s,
            xr.ViewLocateInfo(
                view_configuration_type=xr.ViewConfigurationType.PRIMARY_STEREO,
                display_time=t,
                space=space,
            ),
        )
        need = xr.ViewStateFlags.POSITION_VALID_BIT | xr.ViewStateFlags.ORIENTATION_VALID_BIT
        if int(vs.view_state_flags) & int(need) != int(need):
            return None, None  # no tracking: submit no layer this frame
        eyes = [_pose(v.pose) for v in views]
        head = self._head(t, eyes)
        if self._anchor is None or self._reset_pending:
            self._anchor = Anchor.from_head(head)
            self._reset_pending = False
            self._order = None
            self.report.anchors.append((self.report.frames, self._anchor))
            log.info(
                "view anchored at the head: %s, yaw %.1f deg",
                self._anchor.position,
                math.degrees(self._anchor.yaw),
            )
        to_scene = self._anchor.scene_from_space()
        head_scene = (to_scene @ head)[:3, 3]
        fade = comfort_fade(
            float(np.linalg.norm(head_scene)), self.cfg.comfort_radius, self.cfg.fade_width
        )
        self._renderer.set_frame(self.playback.frame)
        sort_ms = self._sort(head_scene)
        layer_views = [xr.CompositionLayerProjectionView() for _ in views]
        cpu = []
        index = self.report.frames
        for i, (v, lv) in enumerate(zip(views, layer_views, strict=True)):
            cpu.append(self._eye(i, v, lv, eye_view_matrix(to_scene, eyes[i]), fade, index))
        self._layer = xr.CompositionLayerProjection(space=space, views=layer_views)
        self.report.frames += 1
        self.report.playback_frames.append(self._renderer.frame)
        self._collect_gpu_times()
        stats = FrameStats(index, self._renderer.frame, 0.0, 0.0, sort_ms, tuple(cpu), fade=fade)
        return self._layer, stats

    def _eye(self, i: int, v: Any, lv: Any, view_gl: np.ndarray, fade: float, index: int) -> float:
        """Render eye ``i`` (runtime view ``v``) and fill its projection layer view ``lv``;
        returns the eye's CPU milliseconds."""
        f = v.fov
        angles = (f.angle_left, f.angle_right, f.angle_up, f.angle_down)
        proj = projection_from_fov(*angles, self.cfg.near, self.cfg.far)
        p = v.pose.position
        raw = ((*_xyzw(v.pose.orientation), p.x, p.y, p.z), angles)
        ms = self._draw_eye(i, view_gl, proj, fade, index, raw)
        lv.pose, lv.fov = v.pose, v.fov
        sc, _, w, h = self._swapchains[i]
        lv.sub_image.swapchain = sc
        lv.sub_image.image_rect.offset[:] = [0, 0]
        lv.sub_image.image_rect.extent[:] = [w, h]
        return ms

    def _collect_gpu_times(self) -> None:
        """Close this frame's timer queries; file a finished older frame's eye GPU times."""
        gpu = self._timer.next_frame()
        if gpu is not None and self.report.stats:
            # the result belongs to the frame `depth` frames back
            back = len(self.report.stats) - (self._timer.depth - 1)
            if 0 <= back < len(self.report.stats):
                self.report.stats[back].eye_gpu_ms = tuple(gpu)

    def _draw_eye(
        self,
        i: int,
        view_gl: np.ndarray,
        proj: np.ndarray,
        fade: float,
        index: int,
        raw: tuple[tuple[float, ...], tuple[float, ...]],
    ) -> float:
        """Acquire, draw, compose, (capture), release one eye; returns the CPU ms spent
        issuing its GL work (after the swapchain image became available)."""
        xr = self.xr
        sc, images, w, h = self._swapchains[i]
        target = self._targets[i]
        idx = xr.acquire_swapchain_image(sc, xr.SwapchainImageAcquireInfo())
        xr.wait_swapchain_image(sc, xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION))
        t0 = time.perf_counter()
        self._timer.begin(i)
        draw_eye(
            self._renderer,
            target,
            images[idx],
            view_gl,
            proj,
            self._order,
            fade,
            self.cfg.background,
        )
        self._timer.end()
        if index in self.cfg.capture:
            self.report.captures.append(
                Capture(
                    index,
                    i,
                    target.read_output(),
                    view_gl,
                    proj,
                    self._renderer.frame,
                    fade,
                    self._sorted_for[0].copy() if self._sorted_for else np.zeros(3),
                    *raw,
                )
            )
        xr.release_swapchain_image(sc, xr.SwapchainImageReleaseInfo())
        return (time.perf_counter() - t0) * 1e3

    def _record(self, st: FrameStats) -> None:
        self.report.stats.append(st)
        log.debug(
            "frame %d: eyes %s ms CPU, sort %.2f ms, frame %.2f ms",
            st.index,
            ", ".join(f"{x:.2f}" for x in st.eye_cpu_ms),
            st.sort_ms,
            st.frame_ms,
        )
        n = len(self.report.stats)
        if self.cfg.log_every and n % self.cfg.log_every == 0:
            log.info(
                "frames %d-%d: %s",
                n - self.cfg.log_every,
                n - 1,
                timing_line(self.report.stats[-self.cfg.log_every :]),
            )

    # ------------------------------------------------------------------ teardown

    def _teardown(self) -> None:
        xr = self.xr
        h = self._handles
        gl = getattr(self, "_gl", None)
        if gl is not None:
            try:
                gl.make_current()
                self._free_gl()
            except Exception as e:  # keep tearing down the OpenXR side
                log.warning("freeing GL resources failed: %s", e)
        for sc, *_ in getattr(self, "_swapchains", []):
            _quiet(xr.destroy_swapchain, sc)
        for name, fn in (
            ("action_set", xr.destroy_action_set),
            ("view_space", xr.destroy_space),
            ("space", xr.destroy_space),
            ("session", xr.destroy_session),
            ("instance", xr.destroy_instance),
        ):
            if name in h:
                _quiet(fn, h.pop(name))
        if gl is not None:
            gl.close()

    def _free_gl(self) -> None:
        from OpenGL import GL

        for t in getattr(self, "_targets", []):
            t.close()
        if hasattr(self, "_timer"):
            self._timer.close()
        if hasattr(self, "_renderer"):
            self._renderer.close()
        if getattr(self, "_compose", 0):
            GL.glDeleteProgram(self._compose)


def _xyzw(q: Any) -> tuple[float, float, float, float]:
    return (float(q.x), float(q.y), float(q.z), float(q.w))


def _pose(p: Any) -> np.ndarray:
    """[4, 4] of an ``XrPosef``."""
    return pose_matrix(_xyzw(p.orientation), (p.position.x, p.position.y, p.position.z))


def _quiet(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as e:
        log.warning("%s failed during shutdown: %s", getattr(fn, "__name__", fn), e)


# --------------------------------------------------------------------------- entry point


def run_xr(
    scene: Scene4D,
    config: XrConfig = XrConfig(),
    cancel: CancelToken | None = None,
    input_script: Callable[[int, ControlState], ControlState] | None = None,
) -> XrReport:
    """Run a headset session for ``scene`` with the frame loop on its own thread; returns
    the report when the session has ended. ``cancel`` (e.g. Ctrl-C) ends the session the
    spec's way and then raises :class:`Cancelled` (its ``report`` attribute holds the
    report). ``input_script``: see :attr:`XrViewer.input_script`."""
    cancel = cancel or CancelToken()
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            viewer = XrViewer(scene, config)
            viewer.input_script = input_script
            box["viewer"] = viewer
            box["report"] = viewer.run()
        except BaseException as e:  # re-raised on the caller's thread
            box["error"] = e

    th = threading.Thread(target=body, name="pano4d-xr-frame-loop", daemon=True)
    th.start()
    while th.is_alive():
        th.join(0.05)
        if cancel.cancelled and "viewer" in box:
            box["viewer"].request_stop()
    if "error" in box:
        raise box["error"]
    if cancel.cancelled:
        e = Cancelled("VR session cancelled")
        e.report = box["report"]  # type: ignore[attr-defined]
        raise e
    return box["report"]


def cmd_xr(args: Any) -> int:
    """``main.py xr SCENE [--frames N] [--monado] [--space stage|local] [--binding ...]``."""
    from engine.cli import cancel_on_sigint
    from engine.scene import open_scene

    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    scene = open_scene(args.scene, axes=args.axes)
    if args.monado:
        os.environ.update(monado_env(controllers=True))
    config = XrConfig(frames=args.frames, reference_space=args.space, binding=args.binding)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("xr: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
        log.propagate = False
    cancel = CancelToken()
    with cancel_on_sigint(cancel):
        report = run_xr(scene, config, cancel)
    print(report.summary())
    return 0


def register_xr(sub: Any) -> None:
    """Add the ``xr`` command to the CLI's subparsers."""
    x = sub.add_parser("xr", help="explore a scene in an OpenXR headset (SteamVR, Monado)")
    x.add_argument(
        "scene",
        help="a scene folder, a generate output folder, a splat file or a frame_*.ply folder",
    )
    from engine.cli import add_axes_option

    add_axes_option(x)
    x.add_argument("--frames", type=int, help="render this many frames, then exit")
    x.add_argument(
        "--monado",
        action="store_true",
        help="use the Monado build of scripts/build_monado.sh (simulated headset, no display)",
    )
    x.add_argument("--space", default="stage", choices=["stage", "local"])
    x.add_argument(
        "--binding",
        default="auto",
        choices=["auto", "egl", "glx"],
        help="OpenGL binding: EGL when the runtime offers it (auto), or GLX under X11",
    )
    x.add_argument(
        "-v", "--verbose", action="store_true", help="log every frame's timings, not every 90th"
    )
    x.set_defaults(func=cmd_xr)
