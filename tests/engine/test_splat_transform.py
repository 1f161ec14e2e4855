"""Round trips with PlayCanvas splat-transform (the npm CLI, a real third-party tool): what we
write, it reads; what it writes, we read - the same splats, within each format's own
quantisation, upright and facing the same way (axes handled on both sides: its glTF output
is +Y up, its PLY-family files +Y down). splat-transform writes .glb but does not read it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from engine.gaussians import SH_C0
from engine.splats import open_splats, write_splats
from tests.engine.test_splats import _scene

pytestmark = pytest.mark.interop

CACHED = Path(os.environ.get("PANO4D_CACHE", Path.home() / ".cache" / "pano4d"))
TOOL = CACHED / "splat-transform" / "node_modules" / ".bin" / "splat-transform"


@pytest.fixture(scope="module")
def tool():
    exe = str(TOOL) if TOOL.is_file() else shutil.which("splat-transform")
    if not exe:
        pytest.skip("splat-transform is not installed (scripts/install_splat_transform.sh)")
    return exe


def convert(tool: str, src: Path, dst: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(tool).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run(
        [tool, "-w", str(src), str(dst)], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0 and dst.exists(), run.stderr + run.stdout


def close(a, b, pos_tol: float, colour_tol: float) -> None:
    assert len(a) == len(b)
    # splat-transform may reorder (Morton order for compressed formats): match each splat
    # to its nearest neighbour
    dist, ib = torch.cdist(
        a.means.double(), b.means.double(), compute_mode="donot_use_mm_for_euclid_dist"
    ).min(1)
    span = float((b.means.max(0).values - b.means.min(0).values).max())
    assert float(dist.max()) <= pos_tol * span * 3**0.5 + 1e-5
    assert len(set(ib.tolist())) == len(b)  # one to one
    rgb = lambda g: (0.5 + SH_C0 * g.sh[:, 0]).clamp(0, 1)  # noqa: E731
    assert float((rgb(a) - rgb(b)[ib]).abs().max()) <= colour_tol + 1e-5


@pytest.mark.parametrize(
    "ours, theirs, pos_tol, colour_tol",
    [
        ("a.ply", "b.ply", 1e-6, 1e-6),
        ("a.ply", "b.compressed.ply", 2e-3, 2e-2),
        ("a.ply", "b.spz", 2e-3, 2e-2),
        ("a.spz", "b.ply", 2e-3, 2e-2),
        ("a.compressed.ply", "b.ply", 4e-3, 4e-2),
        ("a.ply", "b.glb", 1e-6, 1e-5),
    ],
)
def test_round_trip_through_splat_transform(tool, tmp_path, ours, theirs, pos_tol, colour_tol):
    scene = _scene(frames=1)
    fmt = {".ply": "ply", ".glb": "glb", ".spz": "spz"}.get(Path(ours).suffix, "compressed-ply")
    (src,) = write_splats(scene, tmp_path / ours, fmt)
    convert(tool, src, tmp_path / theirs)
    back = open_splats(tmp_path / theirs)
    close(back.static, scene.frame(0), pos_tol, colour_tol)
    torch.testing.assert_close(
        back.static.means.mean(0), scene.frame(0).means.mean(0), atol=0.02, rtol=0
    )
