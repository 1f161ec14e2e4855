"""Is an OpenXR runtime with a headset there? :func:`probe` asks ``python -m viewer.xr_probe``
in a subprocess (a crashing runtime cannot take the caller down), which runs :func:`check`.

The subprocess Prints one JSON line
``{"ok": bool, "reason": str}`` (the runtime and headset names, or why not) and exits 0;
any crash of the runtime stays in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def no_runtime_message(e: BaseException) -> str:
    """One line for "no OpenXR runtime": what failed and where the loader looked."""
    where = os.environ.get("XR_RUNTIME_JSON")
    src = (
        f"XR_RUNTIME_JSON={where}"
        if where
        else "the active runtime (~/.config/openxr/1 or /etc/xdg/openxr/1)"
    )
    return (
        f"no OpenXR runtime available ({type(e).__name__}; looked at {src}): start SteamVR "
        "or Monado, or set XR_RUNTIME_JSON"
    )


def check() -> tuple[bool, str]:
    """Instance (with OpenGL support) and HMD system; no session, no graphics."""
    from viewer.xr_gl import import_xr

    xr = import_xr()
    try:
        offered = {e.extension_name.decode() for e in xr.enumerate_instance_extension_properties()}
        inst = xr.create_instance(xr.InstanceCreateInfo(enabled_extension_names=[]))
    except Exception as e:
        return False, no_runtime_message(e)
    try:
        runtime = xr.get_instance_properties(inst).runtime_name.decode(errors="replace")
        if "XR_KHR_opengl_enable" not in offered:
            return False, f"{runtime} has no OpenGL support (XR_KHR_opengl_enable)"
        if "XR_MNDX_egl_enable" not in offered and not os.environ.get("DISPLAY"):
            return False, f"{runtime} needs an X11 display (GLX) and DISPLAY is not set"
        try:
            sid = xr.get_system(
                inst, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY)
            )
        except Exception as e:
            return False, f"{runtime}: no headset connected ({type(e).__name__})"
        system = xr.get_system_properties(inst, sid).system_name.decode(errors="replace")
        return True, f"{runtime} / {system}"
    finally:
        xr.destroy_instance(inst)


def probe(timeout: float = 10.0) -> tuple[bool, str]:
    """Is an OpenXR runtime with a headset there? ``(True, "runtime / system")`` or
    ``(False, reason)``. Runs in a subprocess (``python -m viewer.xr_probe``), so this
    process's OpenGL platform is never touched and a crashing runtime cannot take the caller
    down. Blocks up to ``timeout`` seconds: call it from a background thread."""
    cmd = [sys.executable, "-m", "viewer.xr_probe"]
    try:
        r = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"the OpenXR runtime did not answer within {timeout:g} s"
    except OSError as e:
        return False, f"cannot start the OpenXR probe: {e}"
    for line in reversed(r.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                d = json.loads(line)
                return bool(d["ok"]), str(d["reason"])
            except (ValueError, KeyError):
                break
    return False, f"the OpenXR probe failed (exit code {r.returncode})"


def main() -> int:
    try:
        ok, reason = check()
    except Exception as e:  # an unexpected failure is still one answer
        ok, reason = False, f"OpenXR probe failed: {type(e).__name__}: {e}"
    sys.stdout.flush()
    print(json.dumps({"ok": ok, "reason": reason}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
