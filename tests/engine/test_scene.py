"""Native scene folder, standard 3DGS PLY and the atomic-write helpers (engine.scene, fsutil)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from plyfile import PlyData, PlyElement
from safetensors import safe_open

from engine import fsutil, scene
from engine.errors import Cancelled, FormatError, InputError
from engine.gaussians import SH_C0, Gaussians
from engine.progress import CancelToken, Progress
from engine.scene import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Scene4D,
    export_ply_sequence,
    load_scene,
    read_ply,
    save_scene,
    scene_info,
    write_ply,
)
from engine.splats import native

FIELDS = ["means", "quats", "log_scales", "opacities", "sh"]


def make_set(n: int, degree: int = 1, seed: int = 0, offset: float = 0.0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    colours = torch.rand(n, 3, generator=g)
    sh = torch.randn(n, k, 3, generator=g) * 0.3
    sh[:, 0] = (colours - 0.5) / SH_C0
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 5 + offset,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
        log_scales=torch.rand(n, 3, generator=g) * -6 - 1,
        opacities=torch.randn(n, generator=g) * 3,
        sh=sh,
    )


def make_scene(
    degree: int = 1, counts: tuple[int, ...] = (7, 0, 13), n_static: int = 50
) -> Scene4D:
    dyn = [make_set(n, degree, seed=10 + t, offset=100.0 * t) for t, n in enumerate(counts)]
    meta = {"source": "pano.png", "preset": "water", "regions": [{"id": 1, "speed": 0.5}]}
    return Scene4D(make_set(n_static, degree, seed=1), dyn, 12.5, meta)


def assert_sets_equal(a: Gaussians, b: Gaussians) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert y.dtype == torch.float32, name
        assert torch.equal(x, y), name


def disk_bytes(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


# --------------------------------------------------------------------------- Scene4D


def test_scene4d_frame_and_bounds():
    s = make_scene()
    assert s.n_frames == 3
    f2 = s.frame(2)
    assert len(f2) == 50 + 13
    assert torch.equal(f2.means[:50], s.static.means)
    assert torch.equal(f2.means[50:], s.dynamic[2].means)
    assert len(s.frame(1)) == 50
    every = torch.cat([s.static.means, *(d.means for d in s.dynamic)]).numpy()
    lo, hi = s.bounds()
    np.testing.assert_allclose(lo, every.min(0), rtol=0, atol=0)
    np.testing.assert_allclose(hi, every.max(0), rtol=0, atol=0)
    with pytest.raises(IndexError):
        s.frame(3)


def test_scene4d_rejects_bad_construction():
    with pytest.raises(ValueError):
        Scene4D(make_set(3), [], 24.0, {})
    with pytest.raises(ValueError):
        Scene4D(make_set(3, degree=0), [make_set(2, degree=1)], 24.0, {})
    with pytest.raises(ValueError):
        Scene4D(make_set(3), [make_set(2)], 0.0, {})
    empty = Scene4D(Gaussians.empty(0), [Gaussians.empty(0)], 24.0, {})
    assert empty.bounds() == ([0.0] * 3, [0.0] * 3)


# --------------------------------------------------------------------------- native format


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_full_precision_is_exact(tmp_path, mmap):
    s = make_scene(degree=3)
    save_scene(s, tmp_path / "sc", half=False)
    r = load_scene(tmp_path / "sc", mmap=mmap)
    assert r.n_frames == 3 and r.fps == 12.5 and r.meta == s.meta
    assert_sets_equal(s.static, r.static)
    for a, b in zip(s.dynamic, r.dynamic):
        assert_sets_equal(a, b)


def test_round_trip_half_within_fp16_tolerance(tmp_path):
    s = make_scene(degree=2)
    save_scene(s, tmp_path / "sc", half=True)
    r = load_scene(tmp_path / "sc")
    for a, b in zip([s.static, *s.dynamic], [r.static, *r.dynamic]):
        assert torch.equal(a.means, b.means)  # always float32
        for name in FIELDS[1:]:
            x, y = getattr(a, name), getattr(b, name)
            assert y.dtype == torch.float32
            # float16 has 11 significant bits: relative error <= 2^-11 (+ subnormal spacing)
            assert torch.all((x - y).abs() <= x.abs() * 2.0**-11 + 2.0**-24), name
        colour_err = ((a.sh[:, 0] - b.sh[:, 0]).abs() * SH_C0).max() if len(a) else 0.0
        assert colour_err < 2e-4  # documented: < 1.4e-4 for colours in [0, 1]


def test_bytes_on_disk_and_manifest(tmp_path):
    s = make_scene(degree=1)
    folder = tmp_path / "sc"
    n = save_scene(s, folder)
    assert n == disk_bytes(folder)
    m = json.loads((folder / "manifest.json").read_text())
    assert m["format"] == "pano4d-scene" and m["version"] == 2
    assert m["conventions"] == {
        "axes": "+Y up, -Z forward, +X right (OpenGL)",
        "quaternion": "wxyz",
        "scales": "log",
        "opacity": "logit",
        "colour": "0.5 + 0.28209479 * sh_dc",
        "depth": "distance along the ray",
    }
    assert m["frame_count"] == 3 and m["fps"] == 12.5 and m["sh_degree"] == 1
    assert m["counts"] == {"static": 50, "dynamic": [7, 0, 13]}
    assert m["dtypes"] == {
        "means": "float32",
        "quats": "float16",
        "log_scales": "float16",
        "opacities": "float16",
        "sh": "float16",
    }
    assert m["files"]["static"] == "static.safetensors"
    assert m["files"]["dynamic"] == [f"dynamic/frame_{t:04d}.safetensors" for t in range(3)]
    for rel in [m["files"]["static"], *m["files"]["dynamic"]]:
        assert (folder / rel).is_file()
    every = torch.cat([s.static.means, *(d.means for d in s.dynamic)]).numpy()
    np.testing.assert_array_equal(np.float32(m["bounds"]["min"]), every.min(0))
    np.testing.assert_array_equal(np.float32(m["bounds"]["max"]), every.max(0))
    assert m["provenance"] == s.meta
    assert m["created"].endswith("+00:00")
    # each file really holds what the manifest says, read with plain safetensors
    t = safetensors.torch.load_file(str(folder / "dynamic/frame_0002.safetensors"))
    assert sorted(t) == sorted(FIELDS)
    assert t["means"].dtype == torch.float32 and t["sh"].dtype == torch.float16
    assert tuple(t["sh"].shape) == (13, 4, 3)

    info = scene_info(folder)
    assert info["bytes_on_disk"] == n
    assert info["frame_count"] == 3
    assert info["gaussians"] == {
        "static": 50,
        "dynamic_min": 0,
        "dynamic_max": 13,
        "dynamic_total": 20,
        "max_per_frame": 63,
    }
    assert info["duration_s"] == pytest.approx(3 / 12.5)


def test_half_is_about_half_the_size(tmp_path):
    s = make_scene(degree=3, counts=(2000, 3000), n_static=20000)  # sizes differ: "full"
    full = save_scene(s, tmp_path / "full", half=False)
    half = save_scene(s, tmp_path / "half", half=True)
    n = 25000
    # bytes per Gaussian at SH degree 3: 12 + 16 + 12 + 4 + 192 = 236 full, 12 + 8 + 6 + 2 + 96 = 124 half
    assert 236 * n <= full < 236 * n * 1.02
    assert 124 * n <= half < 124 * n * 1.03
    assert 0.50 < half / full < 0.55


def test_values_beyond_fp16_range_are_stored_as_float32(tmp_path):
    s = make_scene(degree=0)
    s.static.opacities[0] = 1e6
    save_scene(s, tmp_path / "sc", half=True)
    m = json.loads((tmp_path / "sc" / "manifest.json").read_text())
    assert m["dtypes"]["opacities"] == "float32" and m["dtypes"]["sh"] == "float16"
    assert load_scene(tmp_path / "sc").static.opacities[0] == 1e6


def test_save_refuses_non_finite_and_writes_nothing(tmp_path):
    s = make_scene()
    s.dynamic[2].log_scales[3, 1] = float("nan")
    with pytest.raises(ValueError, match="frame 2"):
        save_scene(s, tmp_path / "sc")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    real, calls = native._write_file, []

    def flaky(path, tensors):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, tensors)

    monkeypatch.setattr(native, "_write_file", flaky)
    with pytest.raises(OSError, match="disk full"):
        save_scene(make_scene(), tmp_path / "sc")
    assert list(tmp_path.iterdir()) == []  # no final folder, no temporary left


def test_failed_overwrite_keeps_previous_scene(tmp_path, monkeypatch):
    old = make_scene(counts=(3, 4))
    save_scene(old, tmp_path / "sc", half=False)

    def broken(path, tensors):
        raise KeyboardInterrupt

    monkeypatch.setattr(native, "_write_file", broken)
    with pytest.raises(KeyboardInterrupt):
        save_scene(make_scene(counts=(9,)), tmp_path / "sc")
    assert [p.name for p in tmp_path.iterdir()] == ["sc"]
    r = load_scene(tmp_path / "sc")
    assert r.n_frames == 2
    assert_sets_equal(old.static, r.static)


def test_overwrite_replaces_scene(tmp_path):
    save_scene(make_scene(counts=(3, 4, 5, 6)), tmp_path / "sc")
    save_scene(make_scene(counts=(1,)), tmp_path / "sc")
    r = load_scene(tmp_path / "sc")
    assert r.n_frames == 1
    assert sorted(p.name for p in (tmp_path / "sc" / "dynamic").iterdir()) == [
        "frame_0000.safetensors"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["sc"]


def test_save_refuses_to_replace_foreign_folder_or_file(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(InputError, match="not a Pano4D scene"):
        save_scene(make_scene(), foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        save_scene(make_scene(), tmp_path / "file")
    (tmp_path / "empty").mkdir()
    save_scene(make_scene(), tmp_path / "empty")  # an empty folder is fine
    assert load_scene(tmp_path / "empty").n_frames == 3


# --------------------------------------------------------------------------- validation


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _edit_manifest(folder: Path, **changes) -> None:
    m = _manifest(folder)
    m.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))


def _rewrite(folder: Path, rel: str, fn) -> None:
    t = safetensors.torch.load_file(str(folder / rel))
    fn(t)
    safetensors.torch.save_file(t, str(folder / rel))


def _drop_quats(t):
    del t["quats"]


def _nan_opacity(t):
    t["opacities"][1] = float("nan")


def _inf_means(t):
    t["means"][0, 2] = float("inf")


def _wrong_dtype(t):
    t["sh"] = t["sh"].double()


def _shape_mismatch(t):
    for k in t:
        t[k] = t[k][:-1]


def _wrong_k(t):
    t["sh"] = torch.zeros(t["sh"].shape[0], 9, 3, dtype=t["sh"].dtype)


CORRUPTIONS = {
    "missing manifest": (lambda f: (f / "manifest.json").unlink(), "manifest.json", "missing"),
    "bad json": (
        lambda f: (f / "manifest.json").write_text("{not json"),
        "manifest.json",
        "not valid JSON",
    ),
    "json array": (
        lambda f: (f / "manifest.json").write_text("[1, 2]"),
        "manifest.json",
        "not a JSON object",
    ),
    "wrong format": (
        lambda f: _edit_manifest(f, format="other-scene"),
        "manifest.json",
        "not a Pano4D scene",
    ),
    "newer version": (
        lambda f: _edit_manifest(f, version=FORMAT_VERSION + 1),
        "manifest.json",
        "newer Pano4D",
    ),
    "bad frame count": (
        lambda f: _edit_manifest(f, frame_count=5),
        "manifest.json",
        "counts.dynamic",
    ),
    "escaping path": (
        lambda f: _edit_manifest(f, files={**_manifest(f)["files"], "static": "../x.safetensors"}),
        "manifest.json",
        "relative path",
    ),
    "missing frame": (
        lambda f: (f / "dynamic/frame_0001.safetensors").unlink(),
        "frame_0001.safetensors",
        "missing",
    ),
    "garbage file": (
        lambda f: (f / "static.safetensors").write_bytes(b"\x00garbage" * 9),
        "static.safetensors",
        "safetensors",
    ),
    "missing tensor": (
        lambda f: _rewrite(f, "static.safetensors", _drop_quats),
        "static.safetensors",
        "quats",
    ),
    "shape mismatch": (
        lambda f: _rewrite(f, "dynamic/frame_0002.safetensors", _shape_mismatch),
        "frame_0002.safetensors",
        "shape",
    ),
    "wrong sh count": (
        lambda f: _rewrite(f, "static.safetensors", _wrong_k),
        "static.safetensors",
        "'sh' has shape",
    ),
    "nan": (
        lambda f: _rewrite(f, "dynamic/frame_0000.safetensors", _nan_opacity),
        "frame_0000.safetensors",
        "non-finite",
    ),
    "inf mean": (
        lambda f: _rewrite(f, "static.safetensors", _inf_means),
        "static.safetensors",
        "non-finite",
    ),
    "wrong dtype": (
        lambda f: _rewrite(f, "static.safetensors", _wrong_dtype),
        "static.safetensors",
        "float64",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_load_rejects_corrupt_scene(tmp_path, case):
    folder = tmp_path / "sc"
    save_scene(make_scene(counts=(4, 5, 6)), folder)
    corrupt, where, what = CORRUPTIONS[case]
    corrupt(folder)
    with pytest.raises(FormatError) as e:
        load_scene(folder)
    msg = str(e.value)
    assert "\n" not in msg
    assert where in msg and what in msg, msg
    assert e.value.exit_code == 2


def test_load_missing_folder(tmp_path):
    with pytest.raises(FormatError, match="no such scene folder"):
        load_scene(tmp_path / "nope")


def test_scene_info_refuses_a_missing_or_broken_file_as_opening_does(tmp_path):
    folder = tmp_path / "sc"
    save_scene(make_scene(), folder)
    assert scene_info(folder)["format"] == FORMAT_NAME
    static = folder / "static.safetensors"
    whole = static.read_bytes()
    for broken, what in ((whole[: len(whole) // 2], "not a valid safetensors"), (b"", "not a")):
        static.write_bytes(broken)
        with pytest.raises(FormatError, match=what):
            scene_info(folder)
        with pytest.raises(FormatError, match=what):
            load_scene(folder)
    static.write_bytes(whole)
    (folder / "dynamic/frame_0002.safetensors").unlink()
    with pytest.raises(FormatError, match="frame_0002.safetensors: missing"):
        scene_info(folder)
    _edit_manifest(folder, version=99)
    with pytest.raises(FormatError, match="newer Pano4D"):
        scene_info(folder)


# --------------------------------------------------------------------------- PLY

STANDARD_DEG1 = [
    "x",
    "y",
    "z",
    "nx",
    "ny",
    "nz",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "f_rest_0",
    "f_rest_1",
    "f_rest_2",
    "f_rest_3",
    "f_rest_4",
    "f_rest_5",
    "f_rest_6",
    "f_rest_7",
    "f_rest_8",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
]


def labelled_set(n: int, degree: int) -> Gaussians:
    """Every value distinct and decodable: sh[i, k, c] = 1000 i + 10 k + c."""
    k = (degree + 1) ** 2
    i = torch.arange(n, dtype=torch.float32)[:, None, None]
    sh = 1000 * i + 10 * torch.arange(k)[None, :, None] + torch.arange(3)[None, None, :]
    base = torch.arange(n, dtype=torch.float32)[:, None]
    return Gaussians(
        means=base + torch.tensor([0.1, 0.2, 0.3]),
        quats=base + torch.tensor([0.5, 0.6, 0.7, 0.8]),
        log_scales=base - torch.tensor([1.1, 1.2, 1.3]),
        opacities=base[:, 0] + 0.9,
        sh=sh.float(),
    )


@pytest.mark.parametrize("degree", [1, 3])
def test_ply_layout_is_standard_3dgs(tmp_path, degree):
    g = labelled_set(5, degree)
    write_ply(tmp_path / "a.ply", g)
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert not ply.text and ply.byte_order == "<"
    v = ply["vertex"].data
    k = (degree + 1) ** 2
    names = list(v.dtype.names)
    expected = STANDARD_DEG1[:9] + [f"f_rest_{j}" for j in range(3 * (k - 1))] + STANDARD_DEG1[-8:]
    assert names == expected
    if degree == 1:
        assert names == STANDARD_DEG1
    assert all(v.dtype[n] == np.dtype("<f4") for n in names)
    for i in range(5):
        assert [v["x"][i], v["y"][i], v["z"][i]] == pytest.approx([i + 0.1, i + 0.2, i + 0.3])
        assert v["nx"][i] == v["ny"][i] == v["nz"][i] == 0
        assert [v[f"f_dc_{c}"][i] for c in range(3)] == [1000 * i + c for c in range(3)]
        # channel-major: f_rest_{c * (K - 1) + (k - 1)} holds coefficient k of channel c
        for c in range(3):
            for kk in range(1, k):
                assert v[f"f_rest_{c * (k - 1) + kk - 1}"][i] == 1000 * i + 10 * kk + c
        assert v["opacity"][i] == pytest.approx(i + 0.9)
        assert [v[f"scale_{a}"][i] for a in range(3)] == pytest.approx([i - 1.1, i - 1.2, i - 1.3])
        assert [v[f"rot_{a}"][i] for a in range(4)] == pytest.approx(
            [i + 0.5, i + 0.6, i + 0.7, i + 0.8]
        )


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = make_set(300, degree, seed=degree)
    write_ply(tmp_path / "a.ply", g)
    assert_sets_equal(g, read_ply(tmp_path / "a.ply"))
    assert [p.name for p in tmp_path.iterdir()] == ["a.ply"]  # no temporary left


def test_ply_empty_set(tmp_path):
    write_ply(tmp_path / "e.ply", Gaussians.empty(2))
    r = read_ply(tmp_path / "e.ply")
    assert len(r) == 0 and r.sh_degree == 2


def _plyfile_write(path: Path, columns: dict[str, np.ndarray], text: bool = False) -> None:
    n = len(next(iter(columns.values())))
    arr = np.zeros(n, dtype=[(k, v.dtype) for k, v in columns.items()])
    for k, v in columns.items():
        arr[k] = v
    PlyData([PlyElement.describe(arr, "vertex")], text=text).write(str(path))


def _columns(n: int = 4, dtype=np.float32, drop: str | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    names = [n_ for n_ in STANDARD_DEG1 if n_ != drop]
    return {name: rng.standard_normal(n).astype(dtype) for name in names}


def test_read_ply_from_other_writers(tmp_path):
    cols = _columns(dtype=np.float64)
    cols = {"red": np.arange(4, dtype=np.uint8), **cols}  # extra property, doubles
    _plyfile_write(tmp_path / "d.ply", cols)
    g = read_ply(tmp_path / "d.ply")
    assert g.sh_degree == 1
    np.testing.assert_allclose(g.means[:, 1].numpy(), cols["y"].astype(np.float32))
    np.testing.assert_allclose(g.sh[:, 2, 0].numpy(), cols["f_rest_1"].astype(np.float32))
    np.testing.assert_allclose(g.sh[:, 1, 2].numpy(), cols["f_rest_6"].astype(np.float32))
    np.testing.assert_allclose(g.quats[:, 0].numpy(), cols["rot_0"].astype(np.float32))
    _plyfile_write(tmp_path / "a.ply", _columns(), text=True)  # valid ASCII PLY is accepted
    assert len(read_ply(tmp_path / "a.ply")) == 4


def _truncated(path: Path) -> None:
    write_ply(path, make_set(50))
    path.write_bytes(path.read_bytes()[:-100])


def _with_nan(path: Path) -> None:
    cols = _columns()
    cols["scale_1"][2] = np.nan
    _plyfile_write(path, cols)


def _bad_rest(path: Path) -> None:
    cols = _columns()
    del cols["f_rest_8"], cols["f_rest_7"]
    _plyfile_write(path, cols)


BAD_PLY = {
    "garbage": (lambda p: p.write_bytes(b"hello world\nthis is not a ply\n"), "not a readable PLY"),
    "binary garbage": (lambda p: p.write_bytes(os.urandom(500)), "not a readable PLY"),
    "truncated": (_truncated, "not a readable PLY"),
    "missing rot_3": (lambda p: _plyfile_write(p, _columns(drop="rot_3")), "rot_3"),
    "nan": (_with_nan, "NaN in property 'scale_1'"),
    "f_rest count": (_bad_rest, "f_rest"),
    "no vertex": (
        lambda p: PlyData([PlyElement.describe(np.zeros(2, dtype=[("a", "f4")]), "face")]).write(
            str(p)
        ),
        "vertex",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PLY))
def test_read_ply_rejects_bad_files(tmp_path, case):
    make, what = BAD_PLY[case]
    path = tmp_path / "bad.ply"
    make(path)
    with pytest.raises(FormatError) as e:
        read_ply(path)
    assert "\n" not in str(e.value) and "bad.ply" in str(e.value) and what in str(e.value), str(
        e.value
    )


def test_read_ply_missing_file(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read_ply(tmp_path / "none.ply")


def test_export_ply_sequence(tmp_path):
    s = make_scene(degree=1, counts=(7, 0, 13))
    seen = []
    paths = export_ply_sequence(s, tmp_path / "out", progress=lambda st, f, m: seen.append(f))
    assert [p.name for p in paths] == ["frame_0000.ply", "frame_0001.ply", "frame_0002.ply"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in paths]
    from engine.splats.axes import flip

    for t, p in enumerate(paths):
        ply = PlyData.read(str(p))
        assert ply["vertex"].count == 50 + len(s.dynamic[t])
        assert "axes y-down" in ply.comments and f"fps {s.fps:g}" in ply.comments
        assert_sets_equal(flip(s.frame(t)), read_ply(p))  # the 3DGS convention, y down
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_export_ply_sequence_cancel(tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export_ply_sequence(
            make_scene(), tmp_path / "out", progress=Progress("export", None, token)
        )


# --------------------------------------------------------------------------- fsutil


def test_atomic_write_helpers(tmp_path):
    fsutil.atomic_write_bytes(tmp_path / "a.bin", b"one")
    fsutil.atomic_write_bytes(tmp_path / "a.bin", b"two")
    assert (tmp_path / "a.bin").read_bytes() == b"two"
    fsutil.atomic_write_json(
        tmp_path / "a.json", {"p": Path("/x"), "n": np.float32(1.5), "t": (1, 2)}
    )
    assert json.loads((tmp_path / "a.json").read_text()) == {"p": "/x", "n": 1.5, "t": [1, 2]}
    with pytest.raises(TypeError):
        fsutil.atomic_write_json(tmp_path / "a.json", {"x": object()})
    assert json.loads((tmp_path / "a.json").read_text())["n"] == 1.5  # old content kept
    mode = (tmp_path / "a.bin").stat().st_mode & 0o777
    (tmp_path / "plain").write_bytes(b"")
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.json", "plain"]


def test_json_is_strict_non_finite_numbers_become_null(tmp_path):
    """report.json must parse in JavaScript and jq: no NaN / Infinity tokens."""
    nan, inf = float("nan"), float("inf")
    obj = {"a": nan, "b": [1.0, inf, {"c": -inf}], "d": np.float32(nan), "e": np.array([1, nan])}
    fsutil.atomic_write_json(tmp_path / "r.json", obj)

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    back = json.loads((tmp_path / "r.json").read_text(), parse_constant=refuse)
    assert back == {"a": None, "b": [1.0, None, {"c": None}], "d": None, "e": [1.0, None]}


def test_atomic_dir(tmp_path):
    final = tmp_path / "d"
    with fsutil.atomic_dir(final) as tmp:
        assert tmp.parent == tmp_path and tmp.is_dir()
        (tmp / "f").write_text("1")
        assert not final.exists()
    assert (final / "f").read_text() == "1"
    with pytest.raises(RuntimeError), fsutil.atomic_dir(final) as tmp:
        (tmp / "f").write_text("2")
        raise RuntimeError
    assert (final / "f").read_text() == "1"
    with fsutil.atomic_dir(final) as tmp:
        (tmp / "g").write_text("3")
    assert [p.name for p in final.iterdir()] == ["g"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def _shared_scene(frames=4, n=50):
    """Dynamic sets that share means/quats/log_scales and differ in colour and opacity."""
    base = make_scene(counts=(n,) * frames)
    d0 = base.dynamic[0]
    dyn = [Gaussians(d0.means, d0.quats, d0.log_scales, g.opacities, g.sh) for g in base.dynamic]
    return Scene4D(base.static, dyn, base.fps, base.meta)


def _moving_scene(frames=4, n=50):
    """Dynamic sets of one size whose means, scales and colours change every frame."""
    sc = _shared_scene(frames, n)
    g0 = sc.dynamic[0]
    dyn = []
    for t, g in enumerate(sc.dynamic):
        ratio = 1.0 + 0.05 * t * torch.linspace(0.0, 1.0, n)
        dyn.append(
            Gaussians(
                g0.means * ratio[:, None],
                g0.quats,
                g0.log_scales + torch.log(ratio)[:, None],
                g.opacities,
                g.sh,
            )
        )
    return Scene4D(sc.static, dyn, sc.fps, sc.meta)


def test_time_constant_dynamic_fields_are_stored_once(tmp_path):
    sc = _shared_scene()
    assert scene.varying_fields(sc.dynamic) == ["opacities", "sh"]
    size_shared = save_scene(sc, tmp_path / "a", half=False)
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["version"] == 2 and m["dynamic_encoding"] == "delta"
    assert m["dynamic_delta_fields"] == ["opacities", "sh"]
    assert (
        m["files"]["dynamic"][0] is None and (tmp_path / "a" / m["files"]["dynamic_base"]).is_file()
    )
    with safe_open(str(tmp_path / "a" / m["files"]["dynamic"][2]), "pt") as f:
        assert set(f.keys()) == {"opacities", "sh"}
        assert f.get_tensor("sh").dtype == torch.float16  # deltas are always fp16
    r = load_scene(tmp_path / "a")
    assert_sets_equal(sc.dynamic[0], r.dynamic[0])  # the base is exact (float32 here)
    for a, b in zip(sc.dynamic, r.dynamic):
        for name in ("means", "quats", "log_scales"):
            assert torch.equal(getattr(a, name), getattr(b, name))
        # an fp16 delta keeps 11 significant bits of the change
        change = (a.sh - sc.dynamic[0].sh).abs()
        assert ((b.sh - a.sh).abs() <= change * 2**-11 + 1e-7).all()
    # moving geometry costs 6 bytes more per field per Gaussian and frame (fp16 deltas)
    size_moving = save_scene(_moving_scene(), tmp_path / "b", half=False)
    assert 3 * 50 * 12 - 100 < size_moving - size_shared < 3 * 50 * 12 + 600


def test_per_frame_geometry_round_trips_within_fp16_of_the_change(tmp_path):
    sc = _moving_scene(frames=5, n=200)
    save_scene(sc, tmp_path / "m")
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert m["dynamic_delta_fields"] == ["means", "log_scales", "opacities", "sh"]
    r = load_scene(tmp_path / "m")
    for t in range(1, 5):
        moved = (sc.dynamic[t].means - sc.dynamic[0].means).abs()
        err = (r.dynamic[t].means - sc.dynamic[t].means).abs()
        assert (err <= moved * 2**-11 + 1e-6).all()
        assert float(moved.max()) > 0.05  # it really moved
    # static + base complete, then per frame and dynamic Gaussian fp16 deltas of what
    # changes: means 6, log-scales 6, opacity 2, SH degree 1 (4 x 3 values) 24 bytes
    tensors = scene.full_set_bytes(50, 1) + scene.full_set_bytes(200, 1) + 4 * 200 * 38
    assert tensors < disk_bytes(tmp_path / "m") < tensors + 7 * 700  # + headers, manifest


def test_delta_file_missing_or_manifest_wrong_is_a_format_error(tmp_path):
    save_scene(_shared_scene(), tmp_path / "s")
    (tmp_path / "s" / "dynamic" / "base.safetensors").unlink()
    with pytest.raises(FormatError, match="base.safetensors"):
        load_scene(tmp_path / "s")
    save_scene(_shared_scene(), tmp_path / "t")
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    m["dynamic_delta_fields"] = ["means", "colour"]
    (tmp_path / "t" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="dynamic_delta_fields"):
        load_scene(tmp_path / "t")
    m["dynamic_delta_fields"], m["dynamic_encoding"] = ["sh"], "zip"
    (tmp_path / "t" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="dynamic_encoding"):
        load_scene(tmp_path / "t")


def test_a_version_1_scene_still_opens():
    """tests/data/scene_v1 was written by Pano4D's version-1 writer (the last commit that
    had it): 2 frames with the shared-fields layout."""
    folder = Path(__file__).parent.parent / "data" / "scene_v1"
    m = json.loads((folder / "manifest.json").read_text())
    assert m["version"] == 1 and m["dynamic_shared_fields"]
    sc = load_scene(folder)
    assert sc.n_frames == m["frame_count"] and len(sc.static) == m["counts"]["static"]
    for t, n in enumerate(m["counts"]["dynamic"]):
        assert len(sc.dynamic[t]) == n
    assert torch.equal(sc.dynamic[0].means, sc.dynamic[1].means)  # a shared field
    assert not torch.equal(sc.dynamic[0].sh, sc.dynamic[1].sh)
    assert scene.scene_info(folder)["frame_count"] == m["frame_count"]


def test_open_scene_accepts_folder_output_ply_and_sequence(tmp_path):
    sc = _shared_scene(frames=3, n=20)
    save_scene(sc, tmp_path / "run" / "scene")
    a = scene.open_scene(tmp_path / "run" / "scene")
    b = scene.open_scene(tmp_path / "run")  # a generate output folder
    assert a.n_frames == b.n_frames == 3
    # PLY sequence as exported: static first, so the split is recovered exactly
    export_ply_sequence(sc, tmp_path / "ply")
    seq = scene.open_scene(tmp_path / "ply", fps=10)
    assert seq.n_frames == 3 and seq.fps == sc.fps  # the headers' fps wins over the default
    assert len(seq.static) == len(sc.static)
    for t in range(3):
        assert torch.allclose(seq.frame(t).means, sc.frame(t).means)
        assert len(seq.dynamic[t]) == len(sc.dynamic[t])
    single = scene.open_scene(tmp_path / "ply" / "frame_0001.ply")
    assert single.n_frames == 1 and len(single.static) == len(sc.frame(1))


def test_open_scene_errors_are_one_line(tmp_path):
    export_ply_sequence(_shared_scene(frames=3, n=5), tmp_path / "gap")
    (tmp_path / "gap" / "frame_0001.ply").unlink()
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat nonsense\n")
    for target, match in [
        (tmp_path / "gap", "gaps"),
        (tmp_path / "empty", "not a Pano4D scene"),
        (tmp_path / "nope", "not found"),
        (tmp_path / "x.txt", "unknown splat format '.txt'"),
        (tmp_path / "bad.ply", "bad.ply"),
    ]:
        with pytest.raises(FormatError, match=match) as e:
            scene.open_scene(target)
        assert "\n" not in str(e.value)


def test_scene_files_are_readable_by_others(tmp_path):
    """safetensors creates 0600 files; a scene copied to a shared place must stay readable."""
    old = os.umask(0o022)
    try:
        save_scene(_shared_scene(), tmp_path / "s")
    finally:
        os.umask(old)
    for f in (tmp_path / "s").rglob("*.safetensors"):
        assert f.stat().st_mode & 0o044 == 0o044, f
