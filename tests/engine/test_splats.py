"""Splat files both ways (engine.splats): the axes flip against independent geometry, third-
party PLY quirks, each written format read back by an independent reader (plyfile, gsply,
numpy for .splat, pygltflib for the glTF structure) within the format's own quantisation,
and the command line's export / info over every format."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from engine import cli
from engine.errors import FormatError
from engine.gaussians import SH_C0, Gaussians
from engine.lift.raster import quat_to_rotmat
from engine.lift.sh import eval_sh
from engine.scene import Scene4D, open_scene, save_scene
from engine.splats import open_splats, write_splats
from engine.splats.axes import flip
from engine.splats.ply import LOGIT_MAX, read_ply


def _set(n=200, degree=3, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    q = torch.randn(n, 4, generator=g)
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 2,
        quats=q / q.norm(dim=1, keepdim=True),
        log_scales=torch.randn(n, 3, generator=g) * 0.3 - 3,
        opacities=torch.randn(n, generator=g) * 2,
        sh=torch.cat(
            [torch.rand(n, 1, 3, generator=g) * 2 - 1, torch.randn(n, k - 1, 3, generator=g) * 0.2],
            1,
        ),
    )


def _scene(frames=3) -> Scene4D:
    dyn = [_set(50, 3, seed=10 + t) for t in range(frames)]
    return Scene4D(_set(200, 3), dyn, 12.0, {"source": "test"})


def test_flip_turns_the_scene_180_degrees_about_z():
    """Reference geometry: positions and covariances by F = diag(-1, -1, 1); the SH colour in
    direction d after the flip equals the colour in direction F d before (eval_sh)."""
    g = _set(64, 3)
    f = flip(g)
    F = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))
    torch.testing.assert_close(f.means, g.means @ F)

    def cov(x):
        return (
            quat_to_rotmat(x.quats)
            @ torch.diag_embed(x.log_scales.exp() ** 2)
            @ quat_to_rotmat(x.quats).transpose(1, 2)
        )  # noqa: E731

    torch.testing.assert_close(cov(f), F @ cov(g) @ F, atol=1e-6, rtol=1e-5)
    d = torch.nn.functional.normalize(
        torch.randn(64, 3, generator=torch.Generator().manual_seed(1)), dim=1
    )
    torch.testing.assert_close(eval_sh(3, f.sh, d), eval_sh(3, g.sh, d @ F), atol=1e-5, rtol=1e-5)
    back = flip(f, inverse=True)  # back again, bit for bit
    for name, t in g.tensors().items():
        assert torch.equal(getattr(back, name), t), name
    torch.testing.assert_close(flip(f).quats, -g.quats)  # twice the same way: -q, same rotation


def _plyfile_write(path, g: Gaussians, dtype="f4", opacity=None):
    sh = g.sh.numpy()
    n, k = sh.shape[:2]
    cols = {"x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2]}
    cols.update({f"f_dc_{c}": sh[:, 0, c] for c in range(3)})
    rest = sh[:, 1:].transpose(0, 2, 1).reshape(n, -1)
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])})
    cols["opacity"] = g.opacities.numpy() if opacity is None else opacity
    cols.update({f"scale_{i}": g.log_scales[:, i] for i in range(3)})
    cols.update({f"rot_{i}": g.quats[:, i] for i in range(4)})
    arr = np.zeros(n, dtype=[(name, dtype) for name in cols])
    for name, v in cols.items():
        arr[name] = np.asarray(v)
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(path))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_third_party_ply_any_degree_and_type_opens_upright(tmp_path, degree, dtype):
    g = _set(40, degree)
    _plyfile_write(tmp_path / "cap.ply", g, dtype)
    scene = open_splats(tmp_path / "cap.ply")  # no axes comment: the 3DGS convention, y down
    assert scene.meta["axes"] == "y-down" and scene.static.sh_degree == degree
    torch.testing.assert_close(scene.static.means, flip(g, inverse=True).means)
    as_is = open_splats(tmp_path / "cap.ply", axes="y-up")
    torch.testing.assert_close(as_is.static.sh, g.sh)


def test_infinite_opacity_is_clamped_and_nan_refused(tmp_path):
    g = _set(6, 0)
    op = g.opacities.numpy().copy()
    op[0], op[1] = np.inf, -np.inf
    _plyfile_write(tmp_path / "inf.ply", g, opacity=op)
    r = read_ply(tmp_path / "inf.ply")
    assert float(r.opacities[0]) == pytest.approx(LOGIT_MAX) and float(
        r.opacities[1]
    ) == pytest.approx(-LOGIT_MAX)
    assert torch.sigmoid(r.opacities[0]) > 0.9999 and torch.isfinite(r.opacities).all()
    op[2] = np.nan
    _plyfile_write(tmp_path / "nan.ply", g, opacity=op)
    with pytest.raises(FormatError, match="NaN in property 'opacity'"):
        read_ply(tmp_path / "nan.ply")


def _quat_close(a: torch.Tensor, b: torch.Tensor, tol: float):
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    assert float((1 - (a * b).sum(1).abs()).max()) < tol


_FORMATS = [
    ("ply", ".ply", 0.0, 0.0),
    ("compressed-ply", ".compressed.ply", 2e-3, 2e-2),  # 11/10-bit positions per chunk
    ("spz", ".spz", 2e-3, 2e-2),  # 24-bit fixed point, 8-bit colour
    ("splat", ".splat", 1e-6, 3e-3),  # float32 position, 8-bit colour
    ("glb", ".glb", 0.0, 1e-6),
]


@pytest.mark.parametrize("fmt, suffix, pos_tol, colour_tol", _FORMATS)
def test_each_written_format_opens_again_within_its_quantisation(
    tmp_path, fmt, suffix, pos_tol, colour_tol
):
    scene = _scene()
    out = tmp_path / f"frame{suffix}"
    (path,) = write_splats(scene, out, fmt, frame=1)
    back = open_splats(path)  # read into Pano4D's axes again: the flip undone
    want = scene.frame(1)
    assert len(back.static) == len(want)
    span = float((want.means.max(0).values - want.means.min(0).values).max())
    assert float((back.static.means - want.means).abs().max()) <= pos_tol * span + 1e-6
    rgb = lambda g: (0.5 + SH_C0 * g.sh[:, 0]).clamp(0, 1)  # noqa: E731
    assert float((rgb(back.static) - rgb(want)).abs().max()) <= colour_tol + 1e-6
    _quat_close(back.static.quats, want.quats, 2e-3 if fmt in ("ply", "glb") else 0.02)


def test_written_files_read_by_independent_readers(tmp_path):
    """plyfile for PLY (header comments, y-down), gsply for compressed PLY and SPZ, numpy for
    .splat's 32-byte records, pygltflib for the glTF structure."""
    import gsply
    import pygltflib

    scene = _scene()
    want = flip(scene.frame(0))  # what a 3DGS tool should see
    write_splats(scene, tmp_path / "a.ply", "ply")
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert {"axes y-down", "fps 12", "frame 0"} <= set(ply.comments)
    np.testing.assert_array_equal(ply["vertex"]["y"], want.means[:, 1].numpy())
    write_splats(scene, tmp_path / "a.compressed.ply", "compressed-ply")
    gd = gsply.plyread(tmp_path / "a.compressed.ply")
    assert len(gd.means) == len(want) and np.abs(gd.means - want.means.numpy()).max() < 0.05
    write_splats(scene, tmp_path / "a.spz", "spz")
    sd = gsply.read_spz(tmp_path / "a.spz")
    assert np.abs(sd.means - want.means.numpy()).max() < 0.01
    write_splats(scene, tmp_path / "a.splat", "splat")
    rec = np.fromfile(
        tmp_path / "a.splat",
        dtype=[("p", "<f4", 3), ("s", "<f4", 3), ("c", "u1", 4), ("r", "u1", 4)],
    )
    np.testing.assert_allclose(rec["p"], want.means.numpy(), atol=1e-6)
    np.testing.assert_allclose(rec["s"], want.log_scales.exp().numpy(), rtol=1e-6)
    write_splats(scene, tmp_path / "a.glb", "glb")
    gl = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    prim = gl.meshes[0].primitives[0]
    assert prim.mode == 0 and "KHR_gaussian_splatting" in prim.extensions
    assert prim.extensions["KHR_gaussian_splatting"]["kernel"] == "ellipse"
    attrs = (
        json.loads(prim.attributes.to_json())
        if hasattr(prim.attributes, "to_json")
        else prim.attributes.__dict__
    )
    names = set(attrs) | set(getattr(prim.attributes, "__dict__", {}))
    assert gl.accessors[prim.attributes.POSITION].count == len(want)
    assert "KHR_gaussian_splatting" in gl.extensionsUsed and len(names) > 0
    blob = gl.binary_blob()
    acc = gl.accessors[prim.attributes.POSITION]
    view = gl.bufferViews[acc.bufferView]
    pos = np.frombuffer(blob, "<f4", acc.count * 3, view.byteOffset).reshape(-1, 3)
    np.testing.assert_array_equal(pos, scene.frame(0).means.numpy())  # glTF is y-up: as is
    assert acc.min == pos.min(0).tolist() and acc.max == pos.max(0).tolist()


def test_sequence_keeps_fps_and_static_split(tmp_path):
    scene = _scene()
    paths = write_splats(scene, tmp_path / "seq", "sequence")
    assert [p.name for p in paths] == ["frame_0000.ply", "frame_0001.ply", "frame_0002.ply"]
    back = open_splats(tmp_path / "seq", fps=99)
    assert back.fps == 12.0 and len(back.static) == len(scene.static) and back.n_frames == 3
    for t in range(3):
        torch.testing.assert_close(back.frame(t).means, scene.frame(t).means)


def test_unknown_and_unsupported_formats_say_what_to_do(tmp_path):
    (tmp_path / "scene.sog").write_bytes(b"PK\x03\x04")
    with pytest.raises(
        FormatError, match="SOG.*recognised but not read.*splat-transform scene.sog"
    ):
        open_splats(tmp_path / "scene.sog")
    (tmp_path / "x.obj").write_text("v 0 0 0")
    with pytest.raises(FormatError, match="unknown splat format '.obj'"):
        open_splats(tmp_path / "x.obj")
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(FormatError, match="32-byte"):
        open_splats(tmp_path / "bad.splat")
    with pytest.raises(FormatError, match="unknown splat format 'usdz'"):
        write_splats(_scene(), tmp_path / "o", "usdz")
    with pytest.raises(FormatError, match="must end with .spz"):
        write_splats(_scene(), tmp_path / "o.ply", "spz")


def test_cli_export_every_format_and_info_on_a_file(tmp_path, capsys):
    save_scene(_scene(), tmp_path / "s")
    for fmt, out in (("spz", "a.spz"), ("glb", "a.glb"), ("compressed-ply", "a.compressed.ply"),
                     ("splat", "a.splat"), ("ply", "a.ply"), ("sequence", "seq"), ("native", "n")):  # fmt: skip
        code = cli.main(
            ["export", str(tmp_path / "s"), "--format", fmt, "--out", str(tmp_path / out)]
        )
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert "MB per frame" in printed.out
    assert open_scene(tmp_path / "n").n_frames == 3
    assert cli.main(["info", str(tmp_path / "a.spz")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["format"] == "SPZ"
        and info["gaussians"]["static"] == 250
        and info["axes_in_file"] == "y-down"
    )
    # re-export a third-party file: any input, any output
    assert (
        cli.main(
            ["export", str(tmp_path / "a.spz"), "--format", "glb", "--out", str(tmp_path / "b.glb")]
        )
        == 0
    )
    capsys.readouterr()
    code = cli.main(
        [
            "export",
            str(tmp_path / "s"),
            "--format",
            "spz",
            "--out",
            str(tmp_path / "c.spz"),
            "--frame",
            "9",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "outside the scene's frames" in err


def _one_line_exit_2(argv, capsys) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_export_takes_the_format_from_the_suffix_and_refuses_what_it_cannot_tell(tmp_path, capsys):
    save_scene(_scene(), tmp_path / "s")
    for out, kind in (("a.spz", "SPZ"), ("a.compressed.ply", "compressed PLY"), ("b.glb", "glTF")):
        assert cli.main(["export", str(tmp_path / "s"), "--out", str(tmp_path / out)]) == 0
        capsys.readouterr()
        assert (tmp_path / out).is_file()
        assert cli.main(["info", str(tmp_path / out)]) == 0
        assert json.loads(capsys.readouterr().out)["format"].startswith(kind)
    assert "cannot tell the format" in _one_line_exit_2(
        ["export", str(tmp_path / "s"), "--out", str(tmp_path / "x.foo")], capsys
    )
    err = _one_line_exit_2(
        ["export", str(tmp_path / "s"), "--format", "ply", "--out", str(tmp_path / "c.spz")], capsys
    )
    assert "--format spz" in err
    assert not (tmp_path / "x.foo").exists() and not (tmp_path / "c.spz").exists()


def test_a_file_export_creates_its_missing_folders(tmp_path, capsys):
    """... and removes them again when the write is refused (nothing half-written)."""
    empty = Scene4D(_set(0), [_set(0)], 8.0, {})
    with pytest.raises(FormatError, match="nothing to write"):
        write_splats(empty, tmp_path / "gone" / "deeper" / "e.splat", "splat")
    assert not (tmp_path / "gone").exists()
    save_scene(_scene(), tmp_path / "s")
    for name in ("a.ply", "b.spz", "c.glb"):
        out = tmp_path / "new" / "deeper" / name
        assert cli.main(["export", str(tmp_path / "s"), "--out", str(out)]) == 0
        assert open_splats(out).n_frames == 1
    capsys.readouterr()


def test_y_up_exports_reopen_upright_or_are_refused(tmp_path, capsys):
    """A y-up PLY or sequence records it and reopens as it was; a y-up SPZ, .splat or
    compressed PLY could not (no axes field; read as y-down) and is refused, nothing written."""
    scene = _scene()
    save_scene(scene, tmp_path / "s")
    for out in ("up.ply", "seq/"):
        assert cli.main(["export", str(tmp_path / "s"), "--out", str(tmp_path / out),
                         "--out-axes", "y-up"]) == 0  # fmt: skip
        capsys.readouterr()
        again = open_splats(tmp_path / out)
        torch.testing.assert_close(again.frame(0).means, scene.frame(0).means)
    for out in ("up.spz", "up.splat", "up.compressed.ply"):
        err = _one_line_exit_2(
            ["export", str(tmp_path / "s"), "--out", str(tmp_path / out), "--out-axes", "y-up"],
            capsys,
        )
        assert "reopen upside down" in err and not (tmp_path / out).exists()


def test_a_sequence_export_replaces_an_earlier_one_whole_and_no_other_folder(tmp_path, capsys):
    save_scene(_scene(frames=3), tmp_path / "s3")
    save_scene(_scene(frames=2), tmp_path / "s2")
    seq = tmp_path / "seq"
    assert cli.main(["export", str(tmp_path / "s3"), "--out", str(seq)]) == 0
    assert cli.main(["export", str(tmp_path / "s2"), "--out", str(seq)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in seq.iterdir()) == ["frame_0000.ply", "frame_0001.ply"]
    assert open_splats(seq).n_frames == 2
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert "holds other files" in _one_line_exit_2(
        ["export", str(tmp_path / "s2"), "--out", str(mine)], capsys
    )
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # a failure part way leaves the earlier sequence as it was, and no temporary folder
    import engine.splats as splats

    calls = []

    def failing(path, sets, comments):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(path, sets, comments)

    real = splats.write_sets
    splats.write_sets = failing
    try:
        code = cli.main(["export", str(tmp_path / "s3"), "--out", str(seq)])
    finally:
        splats.write_sets = real
    err = capsys.readouterr().err  # progress lines, then the error
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert open_splats(seq).n_frames == 2


def test_declared_fps_out_of_range_falls_back_and_a_truncated_glb_is_one_line(tmp_path, capsys):
    scene = _scene(frames=1)
    write_splats(scene, tmp_path / "a.ply", "ply")
    text = (tmp_path / "a.ply").read_bytes().replace(b"comment fps 12", b"comment fps -5")
    (tmp_path / "neg.ply").write_bytes(text)
    assert open_splats(tmp_path / "neg.ply", fps=8.0).fps == 8.0
    (tmp_path / "inf.ply").write_bytes(text.replace(b"comment fps -5", b"comment fps inf"))
    assert open_splats(tmp_path / "inf.ply", fps=8.0).fps == 8.0
    write_splats(scene, tmp_path / "a.glb", "glb")
    data = (tmp_path / "a.glb").read_bytes()
    (tmp_path / "cut.glb").write_bytes(data[: len(data) * 2 // 3])
    _one_line_exit_2(["info", str(tmp_path / "cut.glb")], capsys)


def test_a_sequence_with_a_huge_frame_number_is_a_gap_not_a_memory_blow_up(tmp_path):
    write_splats(_scene(frames=1), tmp_path / "seq", "sequence")
    (tmp_path / "seq" / "frame_99999999999.ply").write_bytes(b"")
    with pytest.raises(FormatError, match=r"gaps \(frame_0001.ply is missing\)"):
        open_splats(tmp_path / "seq")


def test_a_picked_folder_holding_other_files_gets_a_subfolder(tmp_path):
    from engine.splats import sequence_folder

    assert sequence_folder(tmp_path / "new", "park") == tmp_path / "new"
    write_splats(_scene(frames=2), tmp_path / "seq", "sequence")
    assert sequence_folder(tmp_path / "seq", "park") == tmp_path / "seq"  # an earlier export
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "letter.txt").write_text("mine")
    assert sequence_folder(docs, "park") == docs / "park PLY"
    (docs / "park PLY").mkdir()
    (docs / "park PLY" / "notes.txt").write_text("mine too")
    assert sequence_folder(docs, "park") == docs / "park PLY 2"
    write_splats(_scene(frames=2), sequence_folder(docs, "park"), "sequence")
    assert (docs / "letter.txt").read_text() == "mine" and open_splats(docs / "park PLY 2")


@pytest.mark.parametrize(
    "fmt, name",
    [
        ("spz", "z.spz"),
        ("compressed-ply", "z.compressed.ply"),
        ("glb", "z.glb"),
        ("splat", "z.splat"),
    ],
)
def test_a_zero_quaternion_is_written_as_a_rotation_without_warnings(tmp_path, fmt, name):
    import warnings

    g = _set(64, 0)
    g.quats[3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        write_splats(Scene4D(g, [Gaussians.empty(0)], 8.0), tmp_path / name, fmt)
    q = open_splats(tmp_path / name).static.quats[3]  # the identity in the file's axes
    assert bool(torch.isfinite(q).all()) and abs(float(q.norm()) - 1) < 0.02, q


def test_folder_outputs_whatever_their_name_and_file_manager_litter(tmp_path, capsys):
    save_scene(_scene(frames=2), tmp_path / "s")
    dotted = tmp_path / "run_2026.12.03"
    dotted.mkdir()  # an existing folder is a sequence, dots and all
    assert cli.main(["export", str(tmp_path / "s"), "--out", str(dotted)]) == 0
    assert cli.main(["export", str(tmp_path / "s"), "--out", str(tmp_path / "a.ply") + "/"]) == 0
    capsys.readouterr()
    assert open_splats(dotted).n_frames == 2 and open_splats(tmp_path / "a.ply").n_frames == 2
    (dotted / ".DS_Store").write_bytes(b"\0")  # what a file manager leaves is not the user's
    assert cli.main(["export", str(tmp_path / "s"), "--out", str(dotted)]) == 0
    capsys.readouterr()


def test_the_ply_format_reads_the_output_path_not_a_namesake_in_the_current_folder(
    tmp_path, monkeypatch
):
    (tmp_path / "a.spz").mkdir()  # a folder of that name where the command runs
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormatError, match="give --format spz"):
        write_splats(_scene(), tmp_path / "out" / "a.spz", "ply")


@pytest.mark.parametrize("fmt, suffix", [(f, s) for f, s, *_ in _FORMATS])
def test_an_empty_scene_opens_as_empty_or_is_refused_with_nothing_written(tmp_path, fmt, suffix):
    scene = Scene4D(_set(0, 3), [_set(0, 3)], 12.0, {"source": "test"})
    out = tmp_path / f"empty{suffix}"
    if fmt == "splat":  # records only: an empty file would read as a broken one
        with pytest.raises(FormatError, match="no Gaussians"):
            write_splats(scene, out, fmt, frame=0)
        assert list(tmp_path.iterdir()) == []
        return
    (path,) = write_splats(scene, out, fmt, frame=0)
    assert len(open_splats(path).static) == 0


def test_cli_export_of_an_empty_scene_to_splat_is_one_line_and_exit_2(tmp_path, capsys):
    save_scene(Scene4D(_set(0, 3), [_set(0, 3)], 12.0, {"source": "test"}), tmp_path / "s")
    code = cli.main(["export", str(tmp_path / "s"), "--out", str(tmp_path / "e.splat")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no Gaussians" in err[0], err
    assert not (tmp_path / "e.splat").exists()


def test_info_into_a_closed_pipe_ends_quietly(tmp_path):
    """`info SCENE | head -c1`: the reader goes away; no traceback, no error log, exit 0."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    save_scene(_scene(), tmp_path / "s")
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "info", str(tmp_path / "s")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()  # before the interpreter has even started: every write meets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and err == "", err
