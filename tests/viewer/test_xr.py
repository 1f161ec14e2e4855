"""The OpenXR headset viewer, against Monado (a real OpenXR runtime: null compositor,
simulated HMD, simulated "qwerty" controllers), plus its pure maths.

Monado comes from scripts/build_monado.sh (cached under ~/.cache/pano4d); the tests marked
``xr`` skip with the reason when it is not built or no EGL OpenGL context can be made.

What cannot be driven here: Monado's qwerty controllers take their buttons from keyboard
events of its SDL debug window, which does not exist headless, so the buttons and sticks
stay at rest. The tests read the real action state the runtime reports (all three actions
bound and active, values at rest) and drive the controls through the session's input hook
(``input_script``), which feeds the same ``Controls`` -> ``Playback`` path the controllers
feed, inside the real frame loop.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.gaussians import Gaussians, rgb_to_sh0
from engine.scene import Scene4D, save_scene
from viewer.monado import monado_env, monado_manifest
from viewer.playback import Playback
from viewer.renderer import intrinsics_from_projection
from viewer.xr_gl import GL_RGB10_A2, GL_RGBA8, GL_RGBA16F, GL_SRGB8_ALPHA8, choose_format
from viewer.xr_math import (
    Anchor,
    Controls,
    ControlState,
    comfort_fade,
    eye_view_matrix,
    pose_matrix,
    projection_from_fov,
)

ROOT = Path(__file__).resolve().parents[2]


def _quat_rotate(q_xyzw, v) -> np.ndarray:
    """v rotated by q: q v q* with the Hamilton product written out (independent of
    viewer.xr_math's matrix form)."""
    x, y, z, w = q_xyzw
    u = np.array([x, y, z])
    v = np.asarray(v, dtype=np.float64)
    return 2 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2 * w * np.cross(u, v)


# --------------------------------------------------------------------------- pure maths


def test_projection_from_fov_maps_frustum_edges_to_pixel_edges():
    fov = (-0.9, 0.7, 0.8, -0.6)  # asymmetric, like a real headset's eye
    p = projection_from_fov(*fov, near=0.1, far=100.0)
    w, h = 400, 300
    k = intrinsics_from_projection(p, w, h)
    tl, tr, tu, td = (math.tan(a) for a in fov)
    # A point on each frustum edge lands on that image edge (OpenCV pixels, y down).
    for tx, ty, u, v in (
        (tl, 0.0, 0.0, None),
        (tr, 0.0, w, None),
        (0.0, tu, None, 0.0),
        (0.0, td, None, h),
    ):
        cam = np.array([tx, ty, -1.0, 1.0]) * 3.0  # 3 m in front
        clip = p @ cam
        ndc = clip[:3] / clip[3]
        px = (ndc[0] + 1) / 2 * w
        py = (1 - ndc[1]) / 2 * h
        if u is not None:
            assert px == pytest.approx(u, abs=1e-9)
            assert k["fx"] * tx + k["cx"] == pytest.approx(u, abs=1e-9)
        if v is not None:
            assert py == pytest.approx(v, abs=1e-9)
            assert k["fy"] * -ty + k["cy"] == pytest.approx(v, abs=1e-9)
    assert k["near"] == pytest.approx(0.1) and k["far"] == pytest.approx(100.0)


def test_anchor_puts_the_head_at_the_origin_looking_down_minus_z():
    yaw = math.radians(30.0)  # head turned 30 deg to the right, pitched down 20 deg
    q_yaw = (0.0, math.sin(-yaw / 2), 0.0, math.cos(-yaw / 2))
    head = pose_matrix(q_yaw, (0.4, 1.7, -0.2))
    pitch = pose_matrix((math.sin(-0.35 / 2), 0, 0, math.cos(-0.35 / 2)), (0, 0, 0))
    a = Anchor.from_head(head @ pitch)
    assert a.yaw == pytest.approx(yaw)
    s = a.scene_from_space()
    assert s @ np.array([0.4, 1.7, -0.2, 1.0]) == pytest.approx([0, 0, 0, 1], abs=1e-12)
    fwd_space = _quat_rotate(q_yaw, [0, 0, -1])
    assert s[:3, :3] @ fwd_space == pytest.approx([0, 0, -1], abs=1e-12)
    assert s[:3, :3] @ np.array([0, 1.0, 0]) == pytest.approx([0, 1, 0], abs=1e-12)


def test_eye_view_matrix_is_the_inverse_eye_pose():
    q = (0.1, -0.2, 0.05, 0.97)
    qn = np.array(q) / np.linalg.norm(q)
    eye = pose_matrix(q, (0.03, 1.6, 0.1))
    a = Anchor((0.0, 1.6, 0.0), 0.0)
    v = eye_view_matrix(a.scene_from_space(), eye)
    p_scene = np.array([0.3, -0.2, -2.0])
    # Independent: camera coords = q^-1 (p_space - eye_pos).
    p_space = p_scene + np.array([0.0, 1.6, 0.0])
    qi = (-qn[0], -qn[1], -qn[2], qn[3])
    want = _quat_rotate(qi, p_space - np.array([0.03, 1.6, 0.1]))
    assert (v @ np.append(p_scene, 1.0))[:3] == pytest.approx(want, abs=1e-12)


def test_comfort_fade():
    assert comfort_fade(0.0, 0.5, 0.3) == 1.0
    assert comfort_fade(0.5, 0.5, 0.3) == 1.0
    assert comfort_fade(0.65, 0.5, 0.3) == pytest.approx(0.5)
    assert comfort_fade(0.8, 0.5, 0.3) == 0.0
    assert comfort_fade(0.51, 0.5, 0.0) == 0.0
    xs = np.linspace(0.4, 0.9, 51)
    fades = [comfort_fade(float(x), 0.5, 0.3) for x in xs]
    assert all(b <= a for a, b in zip(fades, fades[1:], strict=False))  # gentle, monotone


def test_controls_map_trigger_grip_and_thumbstick_to_playback():
    pb = Playback(10, fps=10.0)
    c = Controls(pb, scrub_fps=20.0, deadzone=0.2)
    # Trigger: toggles on the press edge only, not while held.
    assert pb.playing
    c.update(ControlState(play_pause=True), 0.1)
    c.update(ControlState(play_pause=True), 0.1)
    assert not pb.playing
    c.update(ControlState(), 0.1)
    c.update(ControlState(play_pause=True), 0.1)
    assert pb.playing
    pb.pause()
    # Thumbstick: full right for 0.25 s at 20 frames/s = 5 frames, in 0.05 s steps.
    c.update(ControlState(), 0.05)
    for _ in range(5):
        c.update(ControlState(scrub=1.0), 0.05)
    assert pb.frame == 5
    # Half-way between deadzone and full: 10 frames/s; left for 0.4 s = -4 frames.
    for _ in range(8):
        c.update(ControlState(scrub=-0.6), 0.05)
    assert pb.frame == 1
    # Loop mode wraps; the deadzone does nothing.
    for _ in range(4):
        c.update(ControlState(scrub=-1.0), 0.05)
    assert pb.frame == 7
    for _ in range(10):
        c.update(ControlState(scrub=0.19), 0.05)
    assert pb.frame == 7
    # "once" mode: scrubbing stops at the end like a slider.
    pb.mode = "once"
    for _ in range(20):
        c.update(ControlState(scrub=1.0), 0.05)
    assert pb.frame == 9
    # Grip: one reset per press.
    assert c.update(ControlState(reset=True), 0.05) is True
    assert c.update(ControlState(reset=True), 0.05) is False


def test_swapchain_format_preference():
    assert choose_format([GL_RGBA8, GL_RGBA16F, GL_SRGB8_ALPHA8]) == GL_SRGB8_ALPHA8
    assert choose_format([GL_RGBA8, GL_RGB10_A2]) == GL_RGB10_A2
    assert choose_format([0x1234, GL_RGBA8]) == GL_RGBA8
    assert choose_format([0x1234]) == 0x1234


# --------------------------------------------------------------------------- against Monado

_MONADO = monado_manifest()
needs_monado = pytest.mark.skipif(
    _MONADO is None, reason="Monado is not built (scripts/build_monado.sh caches it)"
)


def _gl_ok() -> tuple[bool, str]:
    from viewer.gl.context import has_gl

    return has_gl()


BG = (0.1, 0.2, 0.3)
FPS = 8.0
N_FRAMES = 8
RED_AT = (0.0, 0.0, -2.0)  # scene coordinates: 2 m straight ahead of the capture point


def _splats(means, rgb, scale, opacity) -> Gaussians:
    n = len(means)
    return Gaussians(
        means=torch.tensor(means, dtype=torch.float32),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n),
        log_scales=torch.full((n, 3), math.log(scale)),
        opacities=torch.logit(torch.full((n,), opacity)),
        sh=rgb_to_sh0(torch.tensor(rgb, dtype=torch.float32))[:, None],
    )


def small_scene() -> Scene4D:
    """A red ball 2 m ahead (static) and a small green ball moving left to right (dynamic)."""
    static = _splats([RED_AT], [[1.0, 0.1, 0.1]], 0.1, 0.99)
    dynamic = [
        _splats([[0.3 * (t - 4), 0.4, -3.0]], [[0.1, 1.0, 0.1]], 0.05, 0.9) for t in range(N_FRAMES)
    ]
    return Scene4D(static, dynamic, FPS)


def script(k: int, state: ControlState) -> ControlState:
    """Trigger at frame 6 (pause), full right stick for frames 9..12, grip at 13."""
    if k == 6:
        return ControlState(play_pause=True)
    if 9 <= k <= 12:
        return ControlState(scrub=1.0)
    if k == 13:
        return ControlState(reset=True)
    return state


@pytest.fixture(scope="module")
def monado_environ():
    if _MONADO is None:
        pytest.skip("Monado is not built (scripts/build_monado.sh caches it)")
    ok, why = _gl_ok()
    if not ok:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {why}")
    saved = dict(os.environ)
    os.environ.update(monado_env(controllers=True))
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def session(monado_environ):
    from viewer.xr import XrConfig, run_xr

    scene = small_scene()
    cfg = XrConfig(frames=16, capture=(2,), background=BG, scrub_fps=24.0)
    return scene, run_xr(scene, cfg, input_script=script)


@pytest.mark.xr
def test_full_session_lifecycle(session):
    _, rep = session
    assert "Monado" in rep.runtime
    assert rep.binding == "egl"  # Monado offers XR_MNDX_egl_enable: no X server needed
    assert rep.swapchain_format == "GL_SRGB8_ALPHA8"
    assert rep.reference_space == "stage"
    assert rep.states == [
        "IDLE", "READY", "SYNCHRONIZED", "VISIBLE", "FOCUSED",
        "VISIBLE", "SYNCHRONIZED", "STOPPING", "IDLE", "EXITING",
    ]  # fmt: skip
    assert rep.frames == 16 and len(rep.stats) == 16
    assert rep.exit_reason == "frames done"
    assert all(len(s.eye_cpu_ms) == 2 for s in rep.stats)
    assert any(s.eye_gpu_ms is not None and len(s.eye_gpu_ms) == 2 for s in rep.stats)
    assert all(s.display_period_ms > 0 for s in rep.stats)
    # Every controller profile's bindings were accepted by the runtime.
    assert rep.bindings and all(rep.bindings.values())


def offscreen_reference(scene: Scene4D, caps) -> list[np.ndarray]:
    """[H, W, 3] float renders of the captured eyes by the offscreen renderer, given each
    eye's view / projection matrices and the head's radial order."""
    from OpenGL import GL

    from viewer.offscreen import OffscreenRenderer
    from viewer.sort import radial_keys, sort_back_to_front

    h, w = caps[0].image.shape[:2]
    off = OffscreenRenderer(w, h)
    out = []
    try:
        off.upload(scene)
        for c in caps:
            off.ctx.make_current()
            r = off.renderer
            r.set_frame(c.scene_frame)
            order = sort_back_to_front(radial_keys(r.means(), c.head))
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, off.fbo)
            GL.glViewport(0, 0, w, h)
            GL.glClearColor(*BG, 0.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            r.draw([(c.view, c.projection, (0, 0, w, h))], order)
            out.append(off.read())
    finally:
        off.close()
    return out


def check_eyes(scene: Scene4D, rep) -> None:
    caps = sorted(rep.captures, key=lambda c: c.eye)
    assert [c.eye for c in caps] == [0, 1] and all(c.frame == 2 for c in caps)
    (anchor_frame, anchor), *_ = rep.anchors
    assert anchor_frame == 0 and anchor.yaw == pytest.approx(0.0, abs=1e-6)
    h, w = caps[0].image.shape[:2]
    assert (w, h) == rep.eye_size
    centres = []
    for c, ref in zip(caps, offscreen_reference(scene, caps), strict=True):
        # 1. Same image as the offscreen renderer (8-bit sRGB swapchain, stored as is).
        got = c.image[..., :3].astype(np.float64) / 255.0
        assert np.abs(got - ref).max() <= 2.0 / 255.0
        assert c.image[0, 0, :3] == pytest.approx(np.round(np.array(BG) * 255), abs=1)
        # 2. The red ball's centre where the runtime's eye pose and FOV put it
        #    (independent pinhole model from the raw pose / angles).
        q, pos = c.pose[:4], np.array(c.pose[4:])
        ball = np.array(RED_AT) + np.array(anchor.position)
        x, y, z = _quat_rotate((-q[0], -q[1], -q[2], q[3]), ball - pos)
        tl, tr, tu, td = (math.tan(a) for a in c.fov)
        u = (x / -z - tl) / (tr - tl) * w
        v = (tu - y / -z) / (tu - td) * h
        red = np.clip(got[..., 0] - got[..., 1], 0, None)
        red = np.where(red > 0.5 * red.max(), red, 0.0)
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        mu, mv = (red * xx).sum() / red.sum(), (red * yy).sum() / red.sum()
        assert (mu, mv) == pytest.approx((u, v), abs=0.35)
        centres.append(mu)
    # Stereo: the left eye sees the ball further right than the right eye does.
    assert centres[0] - centres[1] > 2.0


@pytest.mark.xr
def test_both_eyes_match_the_offscreen_renderer_and_the_pinhole_model(session):
    scene, rep = session
    check_eyes(scene, rep)


@pytest.mark.xr
def test_real_action_state_and_controls_move_the_time(session):
    scene, rep = session
    # The runtime's own action state: bound (qwerty controllers), values at rest.
    assert rep.controls_seen > 0
    assert rep.actions_active == {"scrub": True, "play_pause": True, "reset": True}
    pf = rep.playback_frames
    times = [(s.display_time_ns - rep.t0_ns) / 1e9 for s in rep.stats]
    # Playing (frames 0..5): the scene frame follows the runtime's display clock.
    for k in range(6):
        assert pf[k] == math.floor(times[k] * FPS + 1e-6) % N_FRAMES
    # Trigger at 6 paused it: frames 6..8 hold the frame shown at 5.
    assert pf[6] == pf[7] == pf[8] == pf[5]
    # Full right stick for frames 9..12 at 24 frames/s of scrubbing.
    scrubbed = 24.0 * (times[12] - times[8])
    assert pf[12] == (pf[8] + math.floor(scrubbed + 1e-6)) % N_FRAMES
    assert pf[12] != pf[8] and pf[13:] == [pf[12]] * 3  # still paused after scrubbing
    # Grip at 13 re-anchored the view at the head.
    assert [k for k, _ in rep.anchors] == [0, 13]


@pytest.mark.xr
def test_cancel_walks_the_session_down_cleanly(monado_environ):
    from engine.errors import Cancelled
    from engine.progress import CancelToken
    from viewer.xr import XrConfig, run_xr

    cancel = CancelToken()

    def stop_at_4(k: int, state: ControlState) -> ControlState:
        if k >= 4:
            cancel.cancel()
        return state

    with pytest.raises(Cancelled) as info:
        run_xr(small_scene(), XrConfig(), cancel, input_script=stop_at_4)
    rep = info.value.report
    assert rep.exit_reason == "cancelled"
    assert rep.frames >= 4
    assert rep.states[-3:] == ["STOPPING", "IDLE", "EXITING"]


def _cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("xr") / "scene"
    save_scene(small_scene(), d)
    return d


@pytest.mark.xr
@pytest.mark.slow  # 120 frames at the null compositor's pace: ~10 s idle, more when loaded
@needs_monado
def test_cli_renders_120_frames_and_exits_0(scene_dir):
    ok, why = _gl_ok()
    if not ok:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {why}")
    env = {**os.environ, **monado_env(controllers=True)}
    r = _cli(["xr", str(scene_dir), "--frames", "120"], env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "120 frames rendered" in r.stdout
    assert "STOPPING -> IDLE -> EXITING" in r.stdout


@pytest.mark.xr
def test_runtime_missing_gives_one_line_and_exit_2(scene_dir, tmp_path):
    env = {**os.environ, "XR_RUNTIME_JSON": str(tmp_path / "no_such_runtime.json")}
    env.pop("XR_LOADER_DEBUG", None)
    r = _cli(["xr", str(scene_dir), "--frames", "3"], env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no OpenXR runtime available")
    assert "no_such_runtime.json" in lines[0]


@pytest.mark.xr
def test_probe_runs_in_a_subprocess(monkeypatch, tmp_path):
    from viewer.xr_probe import probe

    monkeypatch.setenv("XR_RUNTIME_JSON", str(tmp_path / "none.json"))
    ok, why = probe(timeout=60)
    assert not ok and "no OpenXR runtime" in why
    if _MONADO is None:
        return
    monkeypatch.delenv("QWERTY_ENABLE", raising=False)  # no controllers: the plain HMD
    for k, v in monado_env(controllers=False).items():
        monkeypatch.setenv(k, v)
    ok, why = probe(timeout=60)
    assert ok and "Monado" in why and "Simulated HMD" in why


@pytest.fixture
def xvfb_display(monkeypatch):
    """A private Xvfb for the GLX binding (what SteamVR needs on Linux)."""
    import shutil

    from app.xvfb import start_xvfb, stop_xvfb

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (needed for the GLX binding test)")
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    started = start_xvfb("640x480x24")
    if started is None:
        pytest.skip("Xvfb did not start")
    proc, display = started
    try:
        monkeypatch.setenv("DISPLAY", display)
        yield display
    finally:
        stop_xvfb(proc)


@pytest.mark.xr
def test_glx_binding_renders_the_same_eyes(monado_environ, xvfb_display):
    from viewer.xr import XrConfig, run_xr

    scene = small_scene()
    cfg = XrConfig(frames=3, capture=(2,), background=BG, binding="glx")
    glx = run_xr(scene, cfg)
    assert glx.binding == "glx" and glx.frames == 3
    assert glx.states[-3:] == ["STOPPING", "IDLE", "EXITING"]
    check_eyes(scene, glx)


@pytest.mark.xr
def test_headset_lost_ends_with_a_clear_error(monado_environ, monkeypatch):
    """Monado cannot unplug its simulated HMD, so the LOSS_PENDING state change is injected
    into a live session after 3 frames; the session is torn down and the error names it."""
    from viewer.xr import HeadsetLostError, XrConfig, XrViewer, run_xr

    real_frame = XrViewer._frame

    def frame(self):
        real_frame(self)
        if self.report.frames == 3 and not self._lost:
            self._on_state(self.xr.SessionState.LOSS_PENDING)

    monkeypatch.setattr(XrViewer, "_frame", frame)
    with pytest.raises(HeadsetLostError, match="headset was lost"):
        run_xr(small_scene(), XrConfig(frames=10))
    # The runtime is still usable afterwards: everything was destroyed cleanly.
    monkeypatch.setattr(XrViewer, "_frame", real_frame)
    assert run_xr(small_scene(), XrConfig(frames=2)).frames == 2


@pytest.mark.gl
@pytest.mark.parametrize("fmt", [GL_SRGB8_ALPHA8, GL_RGBA8])
def test_compose_pass_fades_and_encodes_for_the_swapchain_format(fmt):
    """The compose pass on its own (no runtime): an sRGB swapchain stores the eye's values
    as they are, a linear one gets them decoded to linear light; the comfort fade mixes
    towards black. Expected values from the sRGB formula, computed here."""
    ok, why = _gl_ok()
    if not ok:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {why}")
    from OpenGL import GL

    from viewer.gl.context import EGLContext
    from viewer.gl.shaders import load_program
    from viewer.xr_gl import EyeTarget

    colour = (0.8, 0.35, 0.05)
    ctx = EGLContext()
    try:
        prog = load_program("xr_compose")
        target = EyeTarget(16, 8, fmt, prog)
        tex = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, fmt, 16, 8)
        for fade in (1.0, 0.5, 0.0):
            target.begin(colour)  # the cleared eye target: the background colour
            target.compose(tex, fade)
            got = target.read_output()[..., :3].astype(np.float64) / 255.0
            c = np.array(colour) * fade
            if fmt == GL_RGBA8:
                c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
            assert got == pytest.approx(np.broadcast_to(c, got.shape), abs=1.0 / 255.0)
        target.close()
        GL.glDeleteTextures(1, [tex])
        GL.glDeleteProgram(prog)
    finally:
        ctx.close()


def _k_from_fov(fov, w: int, h: int) -> np.ndarray:
    """[3, 3] OpenCV intrinsics of an OpenXR FOV (left, right, up, down) for w x h pixels."""
    tl, tr, tu, td = (math.tan(a) for a in fov)
    fx, fy = w / (tr - tl), h / (tu - td)
    return np.array([[fx, 0, -tl * fx], [0, fy, tu * fy], [0, 0, 1.0]])


def _reference(g: Gaussians, world_to_gl: np.ndarray, fov, w: int, h: int) -> np.ndarray:
    from engine.camera import gl_to_cv
    from engine.lift.raster import rasterize

    out = rasterize(
        g,
        torch.tensor(gl_to_cv(world_to_gl), dtype=torch.float32),
        torch.tensor(_k_from_fov(fov, w, h), dtype=torch.float32),
        w,
        h,
        background=torch.tensor(BG, dtype=torch.float32),
        near=0.05,
        far=1000.0,
        backend="torch",
    )
    return np.clip(out.rgb.numpy(), 0.0, 1.0)


@pytest.mark.xr
def test_swapchain_eyes_match_the_reference_rasteriser(session):
    """Independent of the GL renderer: the pure-torch reference rasteriser, given the
    runtime's raw eye pose and FOV (intrinsics computed here), draws what Monado's
    swapchain images hold."""
    scene, rep = session
    (_, anchor), *_ = rep.anchors
    for c in rep.captures:
        h, w = c.image.shape[:2]
        q, pos = c.pose[:4], np.array(c.pose[4:]) - np.array(anchor.position)
        world_to_gl = np.eye(4)
        for k, axis in enumerate(np.eye(3)):  # rows: the eye's axes in the scene
            world_to_gl[k, :3] = _quat_rotate(q, axis)
        world_to_gl[:3, 3] = -world_to_gl[:3, :3] @ pos
        ref = _reference(scene.frame(c.scene_frame), world_to_gl, c.fov, w, h)
        got = c.image[..., :3].astype(np.float64) / 255.0
        assert np.abs(got - ref).max() <= 2.5 / 255.0


@pytest.mark.gl
def test_asymmetric_eye_frustum_matches_the_reference_rasteriser():
    """Real headsets have asymmetric per-eye FOVs (Monado's simulated HMD does not): the
    eye path with ``projection_from_fov`` against the reference rasteriser with the
    intrinsics of the same angles."""
    ok, why = _gl_ok()
    if not ok:
        pytest.skip(f"no OpenGL 4.3+ context through EGL: {why}")
    from OpenGL import GL

    from viewer.gl.context import EGLContext
    from viewer.gl.shaders import load_program
    from viewer.renderer import SplatRenderer
    from viewer.sort import radial_keys, sort_back_to_front
    from viewer.xr_gl import EyeTarget, draw_eye

    gen = torch.Generator().manual_seed(3)
    n = 300
    g = Gaussians(
        means=torch.randn(n, 3, generator=gen) * torch.tensor([1.5, 1.0, 0.8])
        + torch.tensor([0.0, 0.0, -4.0]),
        quats=torch.randn(n, 4, generator=gen),
        log_scales=torch.randn(n, 3, generator=gen) * 0.4 - 2.5,
        opacities=torch.randn(n, generator=gen),
        sh=rgb_to_sh0(torch.rand(n, 3, generator=gen))[:, None],
    )
    w, h = 96, 80
    fov = (-0.95, 0.62, 0.80, -0.70)
    eye = pose_matrix((0.05, -0.08, 0.02, 0.995), (0.032, 0.0, 0.0))
    view = eye_view_matrix(np.eye(4), eye)
    ctx = EGLContext()
    try:
        r = SplatRenderer()
        r.upload_static(g)
        r.upload_dynamic([])
        prog = load_program("xr_compose")
        target = EyeTarget(w, h, GL_SRGB8_ALPHA8, prog)
        tex = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        GL.glTexStorage2D(GL.GL_TEXTURE_2D, 1, GL_SRGB8_ALPHA8, w, h)
        order = sort_back_to_front(radial_keys(r.means(), eye[:3, 3]))
        proj = projection_from_fov(*fov, 0.05, 1000.0)
        draw_eye(r, target, tex, view, proj, order, 1.0, BG)
        got = target.read_output()[..., :3].astype(np.float64) / 255.0
        target.close()
        r.close()
        GL.glDeleteTextures(1, [tex])
        GL.glDeleteProgram(prog)
    finally:
        ctx.close()
    ref = _reference(g, view, fov, w, h)
    err = np.abs(got - ref)
    # Radial vs per-pixel depth order differ only where splats overlap at similar depth.
    assert np.mean(err) < 1.0 / 255.0 and np.percentile(err, 99) <= 2.5 / 255.0


@pytest.mark.xr
def test_head_outside_the_comfort_radius_fades_the_scene(monado_environ, monkeypatch):
    """Monado's simulated head stays put, so the scene is anchored 0.65 m away from it
    instead (half-way through the 0.5 m + 0.3 m fade): both eyes show the scene at half
    brightness, fading to black."""
    from viewer import xr as xr_mod
    from viewer.xr import XrConfig, run_xr

    real = xr_mod.Anchor.from_head

    def shifted(head):
        a = real(head)
        return xr_mod.Anchor((a.position[0] + 0.65, a.position[1], a.position[2]), a.yaw)

    monkeypatch.setattr(xr_mod.Anchor, "from_head", staticmethod(shifted))
    scene = small_scene()
    rep = run_xr(scene, XrConfig(frames=3, capture=(2,), background=BG))
    caps = sorted(rep.captures, key=lambda c: c.eye)
    assert [round(c.fade, 6) for c in caps] == [0.5, 0.5]
    for c, ref in zip(caps, offscreen_reference(scene, caps), strict=True):
        got = c.image[..., :3].astype(np.float64) / 255.0
        assert np.abs(got - 0.5 * ref).max() <= 2.0 / 255.0
