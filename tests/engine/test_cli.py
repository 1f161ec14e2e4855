"""The command line, end to end: bad inputs, generate, resume, export, info, render."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch
from PIL import Image

from engine import checkpoints, cli, config, pipeline
from engine.errors import Cancelled
from engine.progress import CancelToken
from engine.scene import load_scene
from engine.video import has_spherical_metadata, read_mp4
from tests.conftest import ROOT, textured_equirect

TINY = ["--preset", "preview", "--frames", "3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    pano = textured_equirect(128, 256, seed=3)
    Image.fromarray(pano).save(d / "pano.png")
    mask = np.zeros((64, 128), np.uint8)  # half resolution: resampled on load
    mask[8:26, 20:110] = 255
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(np.zeros((64, 128), np.uint8)).save(d / "empty_mask.png")
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(d / "square_mask.png")
    Image.fromarray(pano[:, :200]).save(d / "wrong_aspect.png")
    Image.fromarray(pano[::2, ::2][:60, :120]).save(d / "too_small.png")
    (d / "empty.png").write_bytes(b"")
    (d / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(4000))
    good = (d / "pano.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 3])
    (d / "bad.json").write_text("{not json")
    (d / "unknown_key.json").write_text(
        json.dumps(
            {
                "format": "pano4d-regions",
                "version": 1,
                "regions": [{"name": "a", "mask": "mask.png", "sped": 1}],
            }
        )
    )
    (d / "a_file").write_text("x")
    os.mkfifo(d / "pipe.png")
    (d / "folder").mkdir()
    # per-frame depth: 3 frames (the region moves closer), and the broken kinds
    depth = np.full((3, 128, 256), 5.0, np.float32)
    for t in range(3):
        depth[t, 16:50, 40:220] = 5.0 - t
    np.save(d / "depth3.npy", depth)
    np.save(d / "depth2.npy", depth[:2])
    np.save(d / "depth_square.npy", depth[:, :, :128])
    nan = depth.copy()
    nan[1] = np.nan
    np.save(d / "depth_nan.npy", nan)
    (d / "regions_bom.json").write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(
            {
                "format": "pano4d-regions",
                "version": 1,
                "regions": [{"name": "a", "mask": "mask.png"}],
            }
        ).encode()
    )
    for name, frames in (
        ("depth_dir", (0, 1, 2)),
        ("depth_gaps", (0, 1, 3)),
        ("depth_huge", (0, 1, 2, 99999999999)),
    ):
        (d / name).mkdir()
        for t in frames:
            mm = np.round(depth[min(t, 2)] * 1000).astype(np.uint16)
            Image.fromarray(mm).save(d / name / f"frame_{t:04d}.png")
    return d


def _run(argv, capsys):
    from viewer.commands import register

    code = cli.main(argv, plugins=[register])
    captured = capsys.readouterr()
    return code, captured.err


def _with_depth(name: str):
    def argv(d):
        pano, mask = str(d / "pano.png"), str(d / "mask.png")
        return ["generate", pano, "--mask", mask, "--frames", "3", "--depth", str(d / name)]

    return argv


BAD = {
    "missing panorama": lambda d: ["generate", str(d / "nope.png"), "--mask", str(d / "mask.png")],
    "directory as panorama": lambda d: [
        "generate",
        str(d / "folder"),
        "--mask",
        str(d / "mask.png"),
    ],
    "empty file": lambda d: ["generate", str(d / "empty.png"), "--mask", str(d / "mask.png")],
    "truncated png": lambda d: [
        "generate",
        str(d / "truncated.png"),
        "--mask",
        str(d / "mask.png"),
    ],
    "a pipe as panorama": lambda d: [
        "generate",
        str(d / "pipe.png"),
        "--mask",
        str(d / "mask.png"),
    ],
    "random bytes": lambda d: ["generate", str(d / "noise.jpg"), "--mask", str(d / "mask.png")],
    "wrong aspect": lambda d: [
        "generate",
        str(d / "wrong_aspect.png"),
        "--mask",
        str(d / "mask.png"),
    ],
    "too small": lambda d: ["generate", str(d / "too_small.png"), "--mask", str(d / "mask.png")],
    "missing mask": lambda d: ["generate", str(d / "pano.png"), "--mask", str(d / "nomask.png")],
    "mask aspect": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "square_mask.png"),
    ],
    "empty mask": lambda d: ["generate", str(d / "pano.png"), "--mask", str(d / "empty_mask.png")],
    "regions not json": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--regions",
        str(d / "bad.json"),
    ],
    "regions unknown key": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--regions",
        str(d / "unknown_key.json"),
    ],
    "mask and regions": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--regions",
        str(d / "bad.json"),
    ],
    "nothing to animate": lambda d: ["generate", str(d / "pano.png")],
    "one frame": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--frames",
        "1",
    ],
    "unknown preset": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--preset",
        "ultra",
    ],
    "corrupt depth": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--depth",
        str(d / "noise.jpg"),
    ],
    **{
        f"per-frame depth: {what}": _with_depth(name)
        for what, name in (
            ("wrong frame count", "depth2.npy"),
            ("wrong size", "depth_square.npy"),
            ("a NaN-only frame", "depth_nan.npy"),
            ("a folder with gaps", "depth_gaps"),
            ("a huge frame number", "depth_huge"),
        )
    },
    "mask motion with a regions file": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--regions",
        str(d / "regions_bom.json"),
        "--direction",
        "90",
    ],
    "text size without a text model": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--size",
        "512x256",
    ],
    "out under a file": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--out",
        str(d / "a_file" / "run"),
    ],
    "render into the current folder": lambda d: ["render", str(d / "folder"), "--out", "."],
    "render at an absurd frame rate": lambda d: [
        "render",
        str(d / "folder"),
        "--out",
        str(d / "v.mp4"),
        "--fps",
        "1e308",
    ],
    "out is a file": lambda d: [
        "generate",
        str(d / "pano.png"),
        "--mask",
        str(d / "mask.png"),
        "--out",
        str(d / "a_file"),
    ],
    "info of no scene": lambda d: ["info", str(d / "folder")],
    "export of no scene": lambda d: ["export", str(d / "nope"), "--out", str(d / "x")],
    "render bad size": lambda d: [
        "render",
        str(d / "folder"),
        "--out",
        str(d / "v.mp4"),
        "--size",
        "big",
    ],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_nothing_written(case, files, tmp_path, capsys):
    argv = BAD[case](files)
    if argv[0] == "generate" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, err = _run(argv, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_input_without_out_is_one_line_and_makes_no_out_folder(
    files, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, err = _run(
        ["generate", str(files / "noise.jpg"), "--mask", str(files / "mask.png")], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_generate_end_to_end(files, tmp_path, capsys, monkeypatch):
    """Without --out the run goes to out/NAME (NAME: the panorama's file name), as the
    summary says."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out" / "pano"
    code = cli.main(["generate", str(files / "pano.png"), "--mask", str(files / "mask.png"), *TINY])
    captured = capsys.readouterr()
    err = captured.err
    assert code == 0, err
    assert f"scene:    {Path('out') / 'pano' / 'scene'}" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["static_max_error"] == 0
    assert report["gaussians_static"] > 0 and report["gaussians_dynamic_per_frame"] > 0
    assert report["frames"] == 3
    assert report["psnr_train"] > 15 and report["psnr_native"] > 15
    assert report["gaussians_per_input_pixel"] > 0
    assert "deg/px" in report["psnr_native_resolution"]
    assert report["psnr_headset"] > 15 and "magnified" in report["psnr_headset_resolution"]
    assert report["seam_discontinuity"] < 1.5
    for key in (
        "loop_discontinuity",
        "static_flicker",
        "bytes_on_disk",
        "timings_s",
        "peak_rss_mb",
    ):
        assert key in report
    assert set(report["timings_s"]) == set(pipeline.STAGES) - {"text"}  # no --text-model
    assert not (out / ".pano4d").exists()  # checkpoints removed after success
    scene = load_scene(out / "scene")
    assert scene.n_frames == 3
    video = read_mp4(out / "panorama.mp4")
    assert video.shape[1:] == (128, 256, 3) and has_spherical_metadata(out / "panorama.mp4")
    assert read_mp4(out / "preview.mp4").shape[0] == 16

    code, err = _run(
        ["export", str(out / "scene"), "--format", "ply", "--out", str(tmp_path / "ply")], capsys
    )
    assert code == 0, err
    plys = sorted((tmp_path / "ply").glob("frame_*.ply"))
    assert len(plys) == 3
    v = plyfile.PlyData.read(str(plys[1]))["vertex"]
    assert len(v) == report["gaussians_static"] + report["gaussians_dynamic_per_frame"]
    for name in ("x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"):
        assert np.isfinite(np.asarray(v[name])).all()

    report_json = str(out / "report.json")
    code, err = _run(["export", str(out), "--format", "sequence", "--out", report_json], capsys)
    assert code == 2 and "not a folder" in err and len(err.strip().splitlines()) == 1
    assert report["seam_discontinuity_input"] > 0  # the input's own seam, for comparison

    code = cli.main(["info", str(out / "scene")])
    info = json.loads(capsys.readouterr().out)
    assert code == 0 and info["frame_count"] == 3


def test_everything_animated_reports_no_static_psnr_as_null_not_nan(files, tmp_path, capsys):
    """With nothing static there is nothing to score: report.json says null (strict JSON,
    no NaN token) and the summary says n/a."""
    Image.fromarray(np.full((64, 128), 255, np.uint8)).save(tmp_path / "all.png")
    out = tmp_path / "run"
    code = cli.main(
        ["generate", str(files / "pano.png"), "--mask", str(tmp_path / "all.png"), "--out",
         str(out), *TINY]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0

    def refuse(token):
        raise AssertionError(f"report.json holds {token}")

    report = json.loads((out / "report.json").read_text(), parse_constant=refuse)
    assert report["animated_fraction"] == 1.0
    assert report["psnr_native"] is None and report["psnr_headset"] is None
    assert report["psnr_train"] > 15  # all pixels: still measured
    assert "PSNR n/a at the input's own resolution" in printed and "nan" not in printed


def test_cancel_then_resume(files, tmp_path):
    """A run cancelled during lifting resumes from its checkpoints (animation not redone)."""
    inputs = config.Inputs(files / "pano.png", mask=files / "mask.png")
    cfg = config.build_config("preview", frames=3)
    out = tmp_path / "run"
    token = CancelToken()
    seen = []

    def cancel_in_lift(stage, fraction, message):
        seen.append(stage)
        if stage == "lift" and message.startswith("frame 2/"):
            token.cancel()

    with pytest.raises(Cancelled):
        pipeline.run(inputs, cfg, out, callback=cancel_in_lift, cancel=token)
    state = json.loads((out / ".pano4d" / "state.json").read_text())
    assert state["done"] == ["animate", "depth"]
    assert (out / ".pano4d" / "static.safetensors").is_file()
    assert not (out / "scene").exists() and not (out / "report.json").exists()

    messages = []
    report = pipeline.run(
        inputs, cfg, out, callback=lambda s, f, m: messages.append((s, m)), resume=True
    )
    assert ("animate", "resumed from checkpoint") in messages
    assert any(s == "lift" and m.startswith("frame 2/2") for s, m in messages)
    assert not any(s == "lift" and m.startswith("static") for s, m in messages)
    assert report["static_max_error"] == 0 and (out / "scene" / "manifest.json").is_file()
    manifest = json.loads((out / "scene" / "manifest.json").read_text())
    assert manifest["provenance"]["depth"].startswith("layout prior")  # not "checkpoint"
    assert manifest["provenance"]["regions"] == [
        {"name": "mask", "motion": "flow", "direction_deg": 0.0, "speed_deg_s": 2.0}
    ]


def _stopped_at_depth(files, out):
    """A 3-frame preview run cancelled as its depth stage starts: (its inputs, ``out``)."""
    inputs = config.Inputs(files / "pano.png", mask=files / "mask.png")
    token = CancelToken()

    def stop(stage, fraction, message):
        if stage == "depth":
            token.cancel()

    with pytest.raises(Cancelled):
        pipeline.run(
            inputs, config.build_config("preview", frames=3), out, callback=stop, cancel=token
        )
    return inputs, out


def test_resume_with_other_settings_is_refused(files, tmp_path):
    inputs, out = _stopped_at_depth(files, tmp_path / "run")
    with pytest.raises(Exception, match="other inputs or settings"):
        pipeline.run(inputs, config.build_config("preview", frames=4), out, resume=True)


def test_resume_from_a_damaged_checkpoint_is_one_line(files, tmp_path, capsys):
    """frames.npy cut in half (a disk that filled, a copy that broke off): --resume says
    which checkpoint is damaged and how to start over (exit 2), not an internal error."""
    _, out = _stopped_at_depth(files, tmp_path / "run")
    frames = out / ".pano4d" / "frames.npy"
    frames.write_bytes(frames.read_bytes()[: frames.stat().st_size // 2])
    argv = ["generate", str(files / "pano.png"), "--mask", str(files / "mask.png")]
    code, err = _run([*argv, "--preset", "preview", "--frames", "3", "--out", str(out),
                      "--resume"], capsys)  # fmt: skip
    assert code == 2 and "frames.npy of the unfinished run is damaged" in err, err
    assert "without --resume" in err and len(err.strip().splitlines()) == 1


def test_a_rerun_cut_short_while_saving_leaves_no_mix_of_two_runs(files, tmp_path):
    """An earlier run's videos and report are gone once the new run starts saving: a folder
    cancelled then has the new scene and no report.json (unfinished), and --resume ends it."""
    inputs = config.Inputs(files / "pano.png", mask=files / "mask.png")
    cfg, out = config.build_config("preview", frames=3), tmp_path / "run"
    pipeline.run(inputs, cfg, out)
    earlier = (out / "report.json").read_bytes()
    token = CancelToken()

    def stop(stage, fraction, message):
        if stage == "save" and "panorama.mp4" in message:
            token.cancel()

    cfg2 = config.build_config("preview", frames=4)
    with pytest.raises(Cancelled):
        pipeline.run(inputs, cfg2, out, callback=stop, cancel=token)
    assert not (out / "report.json").exists() and not (out / "preview.mp4").exists()
    assert load_scene(out / "scene").n_frames == 4
    pipeline.run(inputs, cfg2, out, resume=True)
    assert (out / "report.json").read_bytes() != earlier
    assert json.loads((out / "report.json").read_text())["frames"] == 4


def test_the_frames_checkpoint_is_allocated_before_the_animation_is_written(
    files, tmp_path, monkeypatch
):
    """So that a full disk is an OSError (one line) and not a SIGBUS in the memory map."""
    calls = []
    real = pipeline.reserve
    monkeypatch.setattr(pipeline, "reserve", lambda p: (calls.append(Path(p).name), real(p)))
    inputs = config.Inputs(files / "pano.png", mask=files / "mask.png")
    token = CancelToken()

    def stop(stage, fraction, message):
        if stage == "animate" and fraction > 0:
            assert calls == ["frames.npy"]  # before the animator has written a frame
            token.cancel()

    with pytest.raises(Cancelled):
        pipeline.run(inputs, config.build_config("preview", frames=3), tmp_path / "r",
                     callback=stop, cancel=token)  # fmt: skip
    assert calls == ["frames.npy"]


def test_main_py_subprocess_bad_input_and_help(tmp_path):
    """The real entry point: no traceback, exit 2, one line."""
    r = subprocess.run(
        [
            sys.executable,
            "main.py",
            "generate",
            str(tmp_path / "missing.jpg"),
            "--mask",
            "m.png",
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 2
        and len(r.stderr.strip().splitlines()) == 1
        and "Traceback" not in r.stderr
    )
    r = subprocess.run(
        [sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0 and "generate" in r.stdout and "demo" in r.stdout


def test_sigterm_stops_a_run_cleanly_and_it_resumes(files, tmp_path):
    """kill (SIGTERM), as a scheduler sends it: a clean stop with the checkpoints kept and
    no temporary file left, exit 130; the same command with --resume finishes."""
    import signal

    out = tmp_path / "run"
    argv = [sys.executable, "main.py", "generate", str(files / "pano.png"), "--mask",
            str(files / "mask.png"), "--preset", "preview", "--frames", "12", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the pipeline is under way (seconds of work left)
        if "animate" in line or "lift" in line:
            break
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, err
    assert "cancelling (terminated" in err and "--resume" in err and "Traceback" not in err
    assert (out / ".pano4d" / "state.json").is_file() and not (out / "report.json").exists()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    r = subprocess.run([*argv, "--resume"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "report.json").is_file() and not (out / ".pano4d").exists()


def test_render_command(files, tmp_path, capsys):
    out = tmp_path / "run"
    inputs = config.Inputs(files / "pano.png", mask=files / "mask.png")
    pipeline.run(inputs, config.build_config("preview", frames=2), out)
    argv = ["render", str(out), "--out", str(tmp_path / "tour.mp4"), "--size", "96x64"]
    code, err = _run([*argv, "--frames", "5", "--backend", "torch", "--tour", "orbit"], capsys)
    assert code == 0, err
    frames = read_mp4(tmp_path / "tour.mp4")
    assert frames.shape == (5, 64, 96, 3) and frames.mean() > 10
    # a bad camera path is one line, exit 2, no video
    (tmp_path / "path.json").write_text('{"format": "pano4d-camera-path", "version": 1}')
    bad = [
        "render",
        str(out),
        "--out",
        str(tmp_path / "bad.mp4"),
        "--tour",
        str(tmp_path / "path.json"),
    ]
    code, err = _run(bad, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "bad.mp4").exists()


def test_render_to_a_folder_writes_lossless_png_frames(files, tmp_path, capsys):
    import cv2

    from engine.pipeline import render_tour
    from engine.progress import Progress
    from engine.scene import open_scene
    from engine.tour import make_tour

    out = tmp_path / "run"
    pipeline.run(
        config.Inputs(files / "pano.png", mask=files / "mask.png"),
        config.build_config("preview", frames=2),
        out,
    )
    argv = ["render", str(out), "--out", str(tmp_path / "frames") + "/", "--size", "48x32"]
    code, err = _run([*argv, "--frames", "3", "--backend", "torch"], capsys)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    views = make_tour("look-around", 3, (32, 48), 90.0)
    want = list(render_tour(open_scene(out), views, Progress("render")))
    for name, ref in zip(names, want):
        got = cv2.imread(str(tmp_path / "frames" / name), cv2.IMREAD_UNCHANGED)[..., ::-1]
        assert np.array_equal(got, ref)  # lossless: exactly the rendered pixels
    # a folder that holds anything else is never replaced; a wrong suffix is refused
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, err = _run(["render", str(out), "--out", str(tmp_path / "mine"), "--frames", "2"], capsys)
    assert code == 2 and "other files" in err and (tmp_path / "mine" / "notes.txt").is_file()
    code, err = _run(["render", str(out), "--out", str(tmp_path / "a.gif")], capsys)
    assert code == 2 and ".mp4" in err and not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize("depth", ["depth3.npy", "depth_dir"])
def test_per_frame_depth_moves_the_dynamic_gaussians(depth, files, tmp_path, capsys):
    from engine.scene import load_scene

    out = tmp_path / "run"
    argv = ["generate", str(files / "pano.png"), "--mask", str(files / "mask.png"), *TINY]
    code, err = _run([*argv, "--depth", str(files / depth), "--out", str(out)], capsys)
    assert code == 0, err
    m = json.loads((out / "scene" / "manifest.json").read_text())
    assert m["version"] == 2 and "means" in m["dynamic_delta_fields"]
    assert "per frame" in m["provenance"]["depth"]
    sc = load_scene(out / "scene")
    r = [d.means.norm(dim=-1) for d in sc.dynamic]
    ratio = (r[2] / r[0]).median()
    assert abs(float(ratio) - 3.0 / 5.0) < 0.02  # the region came from 5 m to 3 m
    assert torch.equal(sc.dynamic[0].quats, sc.dynamic[2].quats)


def _plugin_raising(exc):
    def register(sub):
        p = sub.add_parser("boom")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(exc))

    return register


def test_gpu_out_of_memory_is_one_line_not_an_internal_error(capsys, monkeypatch, tmp_path):
    import tempfile

    import torch

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the internal error's log

    code = cli.main(["boom"], plugins=[_plugin_raising(torch.OutOfMemoryError("CUDA oom"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "GPU ran out of memory" in err[0]
    code = cli.main(["boom"], plugins=[_plugin_raising(RuntimeError("a bug"))])
    err = capsys.readouterr().err
    assert code == 1 and "internal error: RuntimeError: a bug" in err


def test_file_system_refusals_are_one_line_exit_2(capsys):
    import errno

    denied = PermissionError(errno.EACCES, "Permission denied", "/data/out/scene")
    code = cli.main(["boom"], plugins=[_plugin_raising(denied)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: /data/out/scene: Permission denied (check the path's "
                                 "permissions)"]  # fmt: skip
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out/a.ply")
    assert cli.main(["boom"], plugins=[_plugin_raising(full)]) == 2
    assert capsys.readouterr().err.strip() == "error: /data/out/a.ply: No space left on device"


def test_output_paths_that_cannot_be_made_say_why(files, tmp_path, capsys):
    pano, mask = str(files / "pano.png"), str(files / "mask.png")
    cases = [
        (["generate", pano, "--mask", mask, "--out", str(files / "a_file" / "run")], "is not a folder"),
        (["generate", pano, "--mask", mask, "--out", str(files / "a_file")], "is not a folder"),
        (["render", str(files / "folder"), "--out", "."], "is the current folder"),
        (["export", str(files / "folder"), "--out", str(files / "a_file" / "x.ply")], "is not a folder"),
        (["export", str(files / "folder"), "--out", ""], "output path is empty"),
    ]  # fmt: skip
    for argv, words in cases:
        code, err = _run(argv, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, (argv, err)


def test_an_unwritable_output_folder_is_refused_before_any_work(files, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("root here, and no chattr to make a folder unwritable")
    try:
        argv = ["generate", str(files / "pano.png"), "--mask", str(files / "mask.png"), *TINY]
        code, err = _run([*argv, "--out", str(locked / "run")], capsys)
        assert code == 2 and err.strip().splitlines() == [
            f"error: {locked / 'run'}: cannot write in {locked} (Operation not permitted)"
            if os.geteuid() == 0
            else f"error: {locked / 'run'}: cannot write in {locked} (Permission denied)"
        ]
        code, err = _run(["export", str(files / "folder"), "--out", str(locked / "s")], capsys)
        assert code == 2 and "cannot write in" in err
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_an_unnamed_os_error_stays_an_internal_error(capsys, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = cli.main(["boom"], plugins=[_plugin_raising(OSError("socket closed"))])
    assert code == 1 and "internal error: OSError" in capsys.readouterr().err


def test_a_regions_file_with_a_byte_order_mark_runs(files):
    inputs = config.Inputs(files / "pano.png", regions=files / "regions_bom.json")
    loaded = pipeline.load_inputs(inputs, 3)
    assert [r.name for r in loaded.regions] == ["a"]
    cfg = config.build_config("preview", frames=3)
    assert len(checkpoints.fingerprint(inputs, cfg)) > 10


def test_model_without_svd_animator_is_refused(files, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["generate", str(files / "pano.png"), "--mask", str(files / "mask.png")]
    assert cli.main([*argv, "--model", "some/model", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--animator svd" in err[0]
    assert not out.exists()


def test_default_out_names_the_run_after_its_panorama_or_prompt():
    from engine.cli import default_out

    assert default_out("/data/my park (2).jpg", None) == Path("out") / "my-park-2"
    assert default_out("/data/.hidden.v2.png", None) == Path("out") / "hidden.v2"
    assert default_out(None, "Misty alpine lake at dawn, pine forest") == Path(
        "out/misty-alpine-lake-at"
    )
    assert default_out(None, "…") == Path("out/scene")


def test_a_full_disk_is_one_line_even_when_the_error_names_no_path(tmp_path):
    """ENOSPC from a memory-mapped or buffered write carries no file name; it is still one
    line (exit 2), and the frames checkpoint is allocated up front, so a full disk is that
    OSError and never a SIGBUS while the animation is written."""
    import errno

    from engine.cli import path_error
    from engine.fsutil import reserve

    msg = path_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert msg and "free some space" in msg and "\n" not in msg
    sparse = tmp_path / "frames.npy"
    with open(sparse, "wb") as f:
        f.truncate(8 << 20)
    assert os.stat(sparse).st_blocks * 512 < 1 << 20  # sparse: nothing allocated yet
    reserve(sparse)
    assert os.stat(sparse).st_size == 8 << 20 and os.stat(sparse).st_blocks * 512 >= 8 << 20
