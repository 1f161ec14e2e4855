"""What can run on this machine: CUDA, the model-backed animator and depth backends, the
XR runtime. :func:`probe_all` does the probing (seconds: imports torch/diffusers, reads the
Hugging Face cache, starts the XR runtime in a subprocess), so the app runs it off the UI
thread with :class:`CapabilityProbe` and greys out what cannot run, with the reason.

Model-backed stages are optional parts of the engine: ``engine.animate.svd.probe(spec)`` and
``engine.depth.models.probe(spec)`` return an :class:`engine.hub.ModelProbe`; a module that
is missing says "not in this build". The XR probe (``viewer.xr_probe.probe(timeout) -> (ok,
reason)``) runs in a child process: importing ``xr`` switches PyOpenGL's platform and a
runtime may hang or crash, and neither may touch the app.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

__all__ = ["Capabilities", "CapabilityProbe", "Choice", "probe_all"]

ROOT = Path(__file__).resolve().parent.parent
NOT_IN_BUILD = "not in this build"
DEFAULT_SVD_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"  # engine.animate.svd's
# the depth model the app looks for unless told otherwise (only ever looked up locally)
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


@dataclass(frozen=True)
class Choice:
    """One option of a combo box: ``name`` goes to the engine, ``label`` to the user."""

    name: str
    label: str
    available: bool
    reason: str = ""  # why it cannot run (or where its weights are), one line


@dataclass(frozen=True)
class Capabilities:
    cuda: bool = False
    cuda_reason: str = "not probed yet"
    animators: tuple[Choice, ...] = (Choice("flow", "Flow (weightless, CPU)", True),)
    depth: tuple[Choice, ...] = (Choice("prior", "Layout prior (weightless)", True),)
    devices: tuple[Choice, ...] = field(
        default=(Choice("auto", "Auto", True), Choice("cpu", "CPU", True))
    )
    xr: bool = False
    xr_reason: str = "not probed yet"

    def models(self) -> list[str]:
        """Names of the model-backed choices whose weights were found."""
        return [c.label for c in (*self.animators, *self.depth) if c.available and _model(c)]

    def summary(self) -> str:
        """The status bar line, e.g. ``CUDA: no · models: none · XR: yes``."""
        models = ", ".join(self.models()) or "none"
        return (
            f"CUDA: {'yes' if self.cuda else 'no'} · models: {models} · "
            f"XR: {'yes' if self.xr else 'no'}"
        )

    def tooltip(self) -> str:
        lines = [f"CUDA: {self.cuda_reason}"]
        for c in (*self.animators, *self.depth):
            if _model(c):
                lines.append(
                    f"{c.label}: {'available' if c.available else 'unavailable'} — {c.reason}"
                )
        lines.append(f"XR runtime: {self.xr_reason}")
        return "\n".join(lines)


def _model(c: Choice) -> bool:
    return c.name not in ("flow", "prior")


# ----------------------------------------------------------------------------------------
# probes


def probe_cuda() -> tuple[bool, str]:
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a hard dependency
        return False, f"torch missing ({e})"
    if not torch.cuda.is_available():
        return False, "no CUDA device (torch.cuda.is_available() is False); lifting runs on the CPU"
    try:
        from engine.lift.raster import has_gsplat

        if not has_gsplat():
            return False, "CUDA found but gsplat is missing (pip install gsplat)"
    except ImportError:
        pass
    return True, f"CUDA: {torch.cuda.get_device_name(0)}"


def _pipeline_accepts(name: str) -> bool:
    """Whether engine.config.build_config takes a keyword ``name`` (added by a model-backed
    stage); the app only offers what the engine it runs with can do."""
    try:
        from engine.config import build_config
    except ImportError:
        return False
    return name in inspect.signature(build_config).parameters


def _model_choice(module: str, name: str, label: str, spec: str | None) -> Choice:
    """A model-backed choice from ``module.probe(spec)`` (spec None: the module's default)."""
    try:
        mod = importlib.import_module(module)
        probe = mod.probe
    except (ImportError, AttributeError):
        return Choice(name, label, False, NOT_IN_BUILD)
    try:
        result = probe(spec) if spec is not None else probe(_default_spec(mod, probe))
    except Exception as e:  # a broken probe must not break the app
        return Choice(name, label, False, f"probe failed: {type(e).__name__}: {e}")
    return Choice(name, label, bool(result.available), str(result.reason))


def _default_spec(mod, probe) -> str | None:
    for attr in ("DEFAULT_MODEL", "DEFAULT_SPEC", "DEFAULT_MODEL_ID", "DEFAULT_ID"):
        if isinstance(getattr(mod, attr, None), str):
            return getattr(mod, attr)
    default = inspect.signature(probe).parameters
    first = next(iter(default.values()), None)
    if first is not None and isinstance(first.default, str):
        return first.default
    return None


def _engine_animators() -> tuple[str, ...]:
    try:
        import engine.animate as animate
    except ImportError:  # pragma: no cover - the engine is part of every build
        return ("flow",)
    names = getattr(animate, "ANIMATOR_NAMES", None) or tuple(getattr(animate, "ANIMATORS", {}))
    return tuple(names)


def probe_animators(spec: str | None = None) -> tuple[Choice, ...]:
    """Flow, SVD and Wan. ``spec``: the video model the user named (one field serves both
    model animators: each says whether those weights are its kind); the Wan choice looks
    for its own default while ``spec`` is SVD's default or None."""
    flow = Choice("flow", "Flow (weightless, CPU)", True, "always available")
    choices = [flow]
    wan_spec = None if spec in (None, DEFAULT_SVD_MODEL) else spec
    for name, label, asked in (
        ("svd", "Video diffusion (SVD)", spec),
        ("wan", "Text video model (Wan, uses the scene prompt)", wan_spec),
    ):
        c = _model_choice(f"engine.animate.{name}", name, label, asked)
        if c.available and (name not in _engine_animators() or not _pipeline_accepts("model")):
            c = Choice(name, label, False, "weights found, but " + NOT_IN_BUILD)
        choices.append(c)
    return tuple(choices)


def probe_depth(spec: str | None = None) -> tuple[Choice, ...]:
    prior = Choice("prior", "Layout prior (weightless)", True, "always available")
    model = _model_choice(
        "engine.depth.models", "model", "Depth model", spec or DEFAULT_DEPTH_MODEL
    )
    if model.available and not _pipeline_accepts("depth_model"):
        model = Choice("model", model.label, False, "weights found, but " + NOT_IN_BUILD)
    return prior, model


def probe_xr(timeout: float = 10.0) -> tuple[bool, str]:
    """``viewer.xr_probe.probe`` in a child process (it may hang, crash or switch PyOpenGL)."""
    code = (
        "import sys\n"
        "try:\n"
        "    from viewer.xr_probe import probe\n"
        "except ImportError as e:\n"
        "    print('0\\tnot in this build (' + str(e).replace(chr(10), ' ') + ')'); sys.exit()\n"
        f"ok, reason = probe({timeout!r})\n"
        "print(('1' if ok else '0') + '\\t' + ' '.join(str(reason).split()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        r = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout + 20,
        )
    except subprocess.TimeoutExpired:
        return False, f"the XR runtime did not answer within {timeout + 20:.0f} s"
    lines = [ln for ln in r.stdout.splitlines() if "\t" in ln]
    if r.returncode != 0 or not lines:
        tail = " ".join(r.stderr.split()[-20:])
        return False, f"the XR probe failed (exit {r.returncode}): {tail}"
    flag, reason = lines[-1].split("\t", 1)
    return flag == "1", reason


def warm_up() -> None:
    """Import now, off the UI thread, what the first generate run would import lazily.

    ``torch.optim``'s first optimizer imports ``torch._dynamo`` (and sympy: ~1,000 modules,
    seconds). Imports hold the GIL in long unbroken stretches (unmarshalling, extension
    initialisation), which stalled the UI's event loop by 100-350 ms when it happened inside
    the worker during a run (tests/app/test_responsiveness.py); at start-up, beside the
    probes, nobody waits on it."""
    import engine.pipeline  # noqa: F401  (torch, the stages, safetensors)

    with contextlib.suppress(Exception):  # optional in torch: the run imports it or not
        import torch._dynamo  # noqa: F401


def probe_all(
    *,
    xr: bool = True,
    svd_spec: str | None = None,
    depth_spec: str | None = None,
    warm: bool = True,
) -> Capabilities:
    """Everything the status bar and the Generate panel need; ``warm``: :func:`warm_up`."""
    if warm:
        warm_up()
    cuda, cuda_reason = probe_cuda()
    devices = [Choice("auto", "Auto", True), Choice("cpu", "CPU", True)]
    devices.append(Choice("cuda", "CUDA", cuda, cuda_reason))
    xr_ok, xr_reason = probe_xr() if xr else (False, "not probed")
    return Capabilities(
        cuda=cuda,
        cuda_reason=cuda_reason,
        animators=probe_animators(svd_spec),
        depth=probe_depth(depth_spec),
        devices=tuple(devices),
        xr=xr_ok,
        xr_reason=xr_reason,
    )


class CapabilityProbe(QObject):
    """Runs :func:`probe_all` in a daemon thread; ``ready(Capabilities)`` on the UI thread.

    A plain daemon thread, not a QThread: closing the app while the XR runtime is still
    being asked (seconds) must neither wait for it nor abort at exit."""

    ready = Signal(object)

    def __init__(self, parent=None, **kwargs) -> None:
        super().__init__(parent)
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._run, name="pano4d-probe", daemon=True)
        self.result: Capabilities | None = None

    def _run(self) -> None:
        try:
            caps = probe_all(**self._kwargs)
        except Exception as e:  # never leave the status bar saying "probing"
            text = " ".join(str(e).split())
            caps = Capabilities(cuda_reason=f"probe failed: {text}", xr_reason="probe failed")
        self.result = caps
        with contextlib.suppress(RuntimeError):  # the window (and this object) already gone
            self.ready.emit(caps)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout_ms: int = 60000) -> bool:
        self._thread.join(timeout_ms / 1000)
        return not self._thread.is_alive()


class XrProbe(QObject):
    """:func:`probe_xr` again (a runtime may have started since the app did), in a daemon
    thread; ``ready(ok, reason)`` on the UI thread."""

    ready = Signal(bool, str)

    def __init__(self, parent=None, timeout: float = 10.0) -> None:
        super().__init__(parent)
        self.timeout = timeout
        self._thread = threading.Thread(target=self._run, name="pano4d-xr-probe", daemon=True)

    def _run(self) -> None:
        try:
            ok, reason = probe_xr(self.timeout)
        except Exception as e:  # the menu must not keep saying "looking"
            ok, reason = False, "probe failed: " + " ".join(str(e).split())
        with contextlib.suppress(RuntimeError):
            self.ready.emit(ok, reason)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()
