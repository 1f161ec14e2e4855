"""glTF 2.0 binary (``.glb``) with the Khronos ``KHR_gaussian_splatting`` extension: one
mesh primitive of POINTS whose attributes are the splats - ``POSITION``,
``KHR_gaussian_splatting:ROTATION`` (unit xyzw), ``:SCALE`` (linear), ``:OPACITY``
(after the sigmoid), ``:SH_DEGREE_l_COEF_n`` (RGB per coefficient, the same numbers as a
PLY's f_dc / f_rest) and the fallback ``COLOR_0`` (linear RGBA) for viewers without the
extension; ``kernel`` "ellipse", ``colorSpace`` "srgb_rec709_display". glTF is +Y up, like
Pano4D, so nothing is flipped. three.js, Babylon.js, Cesium and PlayCanvas read it.

glTF is a container, not a codec: the JSON and the binary chunk are written here (the
structure is checked in the tests with pygltflib, an independent reader). Reading takes
float accessors (what this writer and splat-transform produce).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import FormatError
from ..fsutil import atomic_file
from ..gaussians import SH_C0, Gaussians, unit_quats

EXT = "KHR_gaussian_splatting"
FLOAT, POINTS, ARRAY_BUFFER = 5126, 0, 34962
TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}


def _sh_names(degree: int) -> list[str]:
    names = []
    for l in range(degree + 1):
        names += [f"{EXT}:SH_DEGREE_{l}_COEF_{n}" for n in range(2 * l + 1)]
    return names


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def write_glb(path: Path, g: Gaussians) -> None:
    """One static set as a .glb (atomically)."""
    n = len(g)
    a = lambda t: np.ascontiguousarray(t.detach().cpu().float().numpy(), dtype="<f4")  # noqa: E731
    q = unit_quats(g.quats)
    sh = a(g.sh)
    rgb = np.clip(0.5 + SH_C0 * sh[:, 0], 0, 1)
    opacity = a(torch.sigmoid(g.opacities.detach().cpu().float()))
    columns = {
        "POSITION": a(g.means),
        "COLOR_0": np.concatenate([_srgb_to_linear(rgb), opacity[:, None]], 1).astype("<f4"),
        f"{EXT}:ROTATION": a(q[:, [1, 2, 3, 0]]),  # wxyz -> glTF's xyzw
        f"{EXT}:SCALE": a(g.log_scales.exp()),
        f"{EXT}:OPACITY": opacity,
    }
    for k, name in enumerate(_sh_names(g.sh_degree)):
        columns[name] = np.ascontiguousarray(sh[:, k])
    blob, views, accessors, attributes = bytearray(), [], [], {}
    for i, (name, col) in enumerate(columns.items()):
        data = col.tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data),
                      "target": ARRAY_BUFFER})  # fmt: skip
        width = 1 if col.ndim == 1 else col.shape[1]
        acc = {"bufferView": i, "componentType": FLOAT, "count": n, "type": TYPES[width]}
        if name == "POSITION":  # required for POSITION
            acc["min"] = col.min(0).tolist() if n else [0.0] * 3
            acc["max"] = col.max(0).tolist() if n else [0.0] * 3
        accessors.append(acc)
        attributes[name] = i
        blob += data + b"\0" * (-len(data) % 4)
    ext = {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
           "projection": "perspective", "sortingMethod": "cameraDistance"}  # fmt: skip
    doc = {
        "asset": {"version": "2.0", "generator": f"Pano4D {__version__}"},
        "extensionsUsed": [EXT],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "splats"}],
        "meshes": [
            {"primitives": [{"attributes": attributes, "mode": POINTS, "extensions": {EXT: ext}}]}
        ],  # fmt: skip
        "buffers": [{"byteLength": len(blob)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    with atomic_file(path, suffix=".glb") as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<4sII", b"glTF", 2, total))
        f.write(struct.pack("<I4s", len(text), b"JSON") + text)
        f.write(struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob))


def read_glb(path: Path) -> Gaussians:
    """The first KHR_gaussian_splatting primitive of a .glb (float accessors)."""
    raw = Path(path).read_bytes()
    if len(raw) < 20 or raw[:4] != b"glTF":
        raise FormatError(f"{path}: not a binary glTF (.glb) file")
    try:
        jlen, jtype = struct.unpack_from("<I4s", raw, 12)
        doc = json.loads(raw[20 : 20 + jlen])
        off = 20 + jlen
        blen, _ = struct.unpack_from("<I4s", raw, off)
        blob = raw[off + 8 : off + 8 + blen]
        prims = [p for m in doc.get("meshes", []) for p in m["primitives"]]
        prim = next(p for p in prims if EXT in p.get("extensions", {}))
    except (struct.error, ValueError, KeyError, StopIteration) as e:
        raise FormatError(f"{path}: no {EXT} primitive in this glTF ({type(e).__name__})") from None
    attrs = prim["attributes"]

    def column(name: str) -> np.ndarray:
        acc = doc["accessors"][attrs[name]]
        if acc["componentType"] != FLOAT:
            raise FormatError(f"{path}: {name} is not float (quantised glTF splats are not read)")
        view = doc["bufferViews"][acc["bufferView"]]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        try:
            out = np.frombuffer(blob, "<f4", acc["count"] * width, start)
        except ValueError:
            raise FormatError(f"{path}: {name} runs past the end of the file") from None
        return out.reshape(acc["count"], width).copy()

    missing = [k for k in ("POSITION", f"{EXT}:ROTATION", f"{EXT}:SCALE", f"{EXT}:OPACITY",
                           f"{EXT}:SH_DEGREE_0_COEF_0") if k not in attrs]  # fmt: skip
    if missing:
        raise FormatError(f"{path}: the splat primitive lacks {', '.join(missing)}")
    degree = max(d for d in range(4) if all(n in attrs for n in _sh_names(d)))
    sh = np.stack([column(n) for n in _sh_names(degree)], 1)
    xyzw = column(f"{EXT}:ROTATION")
    alpha = np.clip(column(f"{EXT}:OPACITY")[:, 0], 1e-7, 1 - 1e-7)
    t = torch.from_numpy
    return Gaussians(
        means=t(column("POSITION")),
        quats=t(np.ascontiguousarray(xyzw[:, [3, 0, 1, 2]])),
        log_scales=t(np.log(np.maximum(column(f"{EXT}:SCALE"), 1e-12))),
        opacities=t(np.log(alpha / (1 - alpha))),
        sh=t(np.ascontiguousarray(sh)),
    )
