"""Camera tours for rendered videos: look-around, orbit, or a keyframed path file.

A tour is a list of ``(View, frame_index)`` pairs, one per output video frame. Scene time
advances one animation frame per video frame (looping), so a tour of N frames plays the
scene's loop N / T times.

Path file (JSON, ``pano4d-camera-path`` version 1)::

    {"format": "pano4d-camera-path", "version": 1,
     "keyframes": [
       {"t": 0.0, "yaw": 0,   "pitch": 0,  "fov": 90, "position": [0, 0, 0]},
       {"t": 1.0, "yaw": 180, "pitch": 10, "fov": 70, "position": [0.2, 0, -0.1]}]}

``t`` runs over [0, 1] across the video (strictly increasing; the first must be 0 and the
last 1); yaw/pitch/fov in degrees (fov optional, default ``render --fov``, itself 90 by
default; position optional, metres).
Values are interpolated linearly between keyframes; yaw takes the shorter way round.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .camera import View
from .errors import InputError

MAX_RADIUS = 2.0  # metres: a tour stays near the capture point, where the scene is valid


def look_around(n: int, size: tuple[int, int], fov_deg: float = 90.0) -> list[View]:
    """One full turn of yaw with a gentle pitch swing, from the capture point."""
    return [
        View(
            360.0 * i / n - 180.0,
            12.0 * math.sin(2 * math.pi * i / n),
            fov_deg,
            size[0],
            size[1],
        )
        for i in range(n)
    ]


def orbit(n: int, size: tuple[int, int], fov_deg: float = 90.0, radius: float = 0.3) -> list[View]:
    """The eye circles the capture point at ``radius`` metres while looking ahead along
    the circle: shows the parallax of the 3D scene."""
    views = []
    for i in range(n):
        a = 2 * math.pi * i / n
        pos = (radius * math.sin(a), 0.0, -radius * math.cos(a))
        yaw = math.degrees(a) + 90.0  # tangent to the circle
        views.append(View((yaw + 180.0) % 360.0 - 180.0, 0.0, fov_deg, size[0], size[1], 0.0, pos))
    return views


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


def _number(path: Path, i: int, key: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(path, f"keyframe {i}: '{key}' must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise _fail(path, f"keyframe {i}: '{key}' must be within {lo}..{hi}, got {value}")
    return float(value)


def _read_keyframes(path: Path, fov_deg: float = 90.0) -> list[dict]:
    if path.exists() and not path.is_file():  # a folder, a pipe: never read (it could block)
        raise _fail(path, "not a camera path file (not a regular file)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise _fail(path, "camera path file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"not a readable JSON camera path ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != "pano4d-camera-path":
        raise _fail(path, "not a camera path file (format must be 'pano4d-camera-path')")
    if doc.get("version") != 1:
        raise _fail(path, f"unsupported camera path version {doc.get('version')!r} (expected 1)")
    keys = doc.get("keyframes")
    if not isinstance(keys, list) or len(keys) < 2:
        raise _fail(path, "'keyframes' must list at least two keyframes")
    out = []
    for i, k in enumerate(keys):
        if not isinstance(k, dict):
            raise _fail(path, f"keyframe {i} must be an object")
        unknown = set(k) - {"t", "yaw", "pitch", "fov", "position"}
        if unknown:
            raise _fail(path, f"keyframe {i}: unknown key(s) {', '.join(sorted(unknown))}")
        pos = k.get("position", [0.0, 0.0, 0.0])
        if not isinstance(pos, list) or len(pos) != 3:
            raise _fail(path, f"keyframe {i}: 'position' must be [x, y, z]")
        p = [_number(path, i, "position", v, -MAX_RADIUS, MAX_RADIUS) for v in pos]
        if math.hypot(*p) > MAX_RADIUS:
            raise _fail(path, f"keyframe {i}: position is more than {MAX_RADIUS} m from the centre")
        out.append(
            {
                "t": _number(path, i, "t", k.get("t"), 0.0, 1.0),
                "yaw": _number(path, i, "yaw", k.get("yaw"), -3600.0, 3600.0),
                "pitch": _number(path, i, "pitch", k.get("pitch"), -90.0, 90.0),
                "fov": _number(path, i, "fov", k.get("fov", fov_deg), 1.0, 170.0),
                "position": p,
            }
        )
    ts = [k["t"] for k in out]
    if ts[0] != 0.0 or ts[-1] != 1.0 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise _fail(path, "keyframe times 't' must increase strictly from 0 to 1")
    return out


def from_path_file(
    path: str | Path, n: int, size: tuple[int, int], fov_deg: float = 90.0
) -> list[View]:
    """Views interpolated from a keyframed camera path file (see the module docstring);
    ``fov_deg`` for the keyframes that give none."""
    path = Path(path)
    keys = _read_keyframes(path, fov_deg)
    views = []
    for i in range(n):
        s = i / max(n - 1, 1)
        j = max(idx for idx, k in enumerate(keys[:-1]) if k["t"] <= s)
        a, b = keys[j], keys[j + 1]
        u = (s - a["t"]) / (b["t"] - a["t"])
        dyaw = (b["yaw"] - a["yaw"] + 180.0) % 360.0 - 180.0  # the shorter way round
        yaw = (a["yaw"] + u * dyaw + 180.0) % 360.0 - 180.0
        pos = tuple(pa + u * (pb - pa) for pa, pb in zip(a["position"], b["position"]))
        views.append(
            View(
                yaw,
                a["pitch"] + u * (b["pitch"] - a["pitch"]),
                a["fov"] + u * (b["fov"] - a["fov"]),
                size[0],
                size[1],
                0.0,
                pos,
            )
        )
    return views


def make_tour(kind: str, n: int, size: tuple[int, int], fov_deg: float = 90.0) -> list[View]:
    """``kind`` is "look-around", "orbit" or the path of a camera path file."""
    if n < 1:
        raise InputError(f"a tour needs at least one frame, got {n}")
    if kind == "look-around":
        return look_around(n, size, fov_deg)
    if kind == "orbit":
        return orbit(n, size, fov_deg)
    if not Path(kind).exists() and Path(kind).suffix.lower() != ".json":
        raise InputError(
            f"--tour {kind}: not a tour (look-around, orbit) nor a camera path file (.json)"
        )
    return from_path_file(kind, n, size, fov_deg)
