"""The Monado OpenXR runtime that ``scripts/build_monado.sh`` builds into the cache: where it
is, and the environment that points OpenXR at it with its null compositor and simulated
headset (``main.py xr --monado``, the tests, ``make vr``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MONADO_VERSION = "25.0.0"  # scripts/build_monado.sh builds this release


def monado_prefix() -> Path:
    """Where scripts/build_monado.sh installs Monado."""
    cache = Path(os.environ.get("PANO4D_CACHE", Path.home() / ".cache" / "pano4d"))
    return cache / f"monado-{MONADO_VERSION}"


def monado_manifest() -> Path | None:
    """The cached Monado's runtime manifest, or None when it has not been built."""
    p = monado_prefix()
    m = p / "share" / "openxr" / "1" / "openxr_monado.json"
    return m if m.is_file() and (p / ".pano4d-complete").exists() else None


def monado_env(controllers: bool = True, runtime_dir: str | None = None) -> dict[str, str]:
    """Environment variables that point OpenXR at the cached Monado with its null compositor
    and simulated HMD (``controllers``: plus simulated "qwerty" controllers). Raises
    :class:`XrUnavailableError` when Monado has not been built."""
    manifest = monado_manifest()
    if manifest is None:
        from .xr import XrUnavailableError

        raise XrUnavailableError(
            f"no Monado build in {monado_prefix()}: run scripts/build_monado.sh first"
        )
    if runtime_dir is None:  # private (0700), one per user, reused
        d = Path(tempfile.gettempdir()) / f"pano4d-xr-{os.getuid()}"
        d.mkdir(mode=0o700, exist_ok=True)
        runtime_dir = str(d)
    env = {
        "XR_RUNTIME_JSON": str(manifest),
        "XRT_COMPOSITOR_NULL": "1",
        "XRT_DEBUG_GUI": "0",
        "XDG_RUNTIME_DIR": runtime_dir,
        "XRT_LOG": "error",  # Monado's "frame late" warnings are noise on a CPU renderer
        "U_PACING_APP_LOG": "error",
        "U_PACING_COMP_LOG": "error",
    }
    if controllers:
        env["QWERTY_ENABLE"] = "1"
    return env
